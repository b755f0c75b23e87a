#!/usr/bin/env python3
"""The origin's control API against web pages and open ports (issue 12, item 7).

- POST /api/rooms/ROOM/events takes only Content-Type: application/json (415 otherwise), so a
  page in a browser on a trusted host cannot post a simple cross-site request (a form, or a fetch
  with a text/plain body) that needs no preflight.
- No wildcard CORS on the control API (its JSON answers, a preflight); /api/time, the players'
  DASH UTCTiming source, keeps it.
- api_token is mandatory when the HTTP listener is not on loopback: the origin refuses to start
  (and --check-config fails) without one; SHORTWAVE_API_TOKEN in the environment supplies it.
"""
import os
import subprocess
import urllib.error
import urllib.request

from swtest import BIN, run, Origin, check, free_port, tmpdir

ORIGIN = os.path.join(BIN, "shortwave-origin")


def request(o, method, path, body=None, headers=None):
    req = urllib.request.Request(o.base + path, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def content_type_and_cors():
    o = Origin()
    try:
        pin = (b'{"type":"product_pinned","data":{"sku":"S1","title":"Kettle","price":"19.99",'
               b'"currency":"EUR","image":"https://shop.test/k.jpg","stock":3}}')
        for ctype in (None, "text/plain", "application/x-www-form-urlencoded",
                      "multipart/form-data; boundary=x", "application/jsonp", "text/json"):
            h = {"content-type": ctype} if ctype else {}
            st, _, body = request(o, "POST", "/api/rooms/r1/events", pin, h)
            check(st == 415 and b"application/json" in body,
                  f"POST with Content-Type {ctype!r}: 415 ({st} {body[:80]!r})")
        # The right type gets past that check to the next one (the room is not live: 409).
        for ctype in ("application/json", "application/json; charset=utf-8", "Application/JSON"):
            st, _, body = request(o, "POST", "/api/rooms/r1/events", pin, {"content-type": ctype})
            check(st == 409 and b"not live" in body,
                  f"POST with Content-Type {ctype!r} is taken (409 not live: {st} {body[:80]!r})")

        for path in ("/api/streams", "/api/latency", "/api/rooms/r1/events", "/api/nothing"):
            st, h, _ = request(o, "GET", path)
            check("access-control-allow-origin" not in h, f"GET {path} ({st}): no CORS header")
        st, h, _ = request(o, "OPTIONS", "/api/rooms/r1/events",
                           headers={"origin": "https://evil.example",
                                    "access-control-request-method": "POST"})
        check("access-control-allow-origin" not in h and "access-control-allow-methods" not in h,
              f"a preflight for a POST is not granted ({st})")
        st, h, _ = request(o, "GET", "/api/time")
        check(st == 200 and h.get("access-control-allow-origin") == "*",
              "/api/time (DASH UTCTiming) keeps its CORS header")
    finally:
        o.stop_clean()


def token_required():
    conf = os.path.join(tmpdir(), "origin.conf")
    data = tmpdir("sw-data-")
    env = {k: v for k, v in os.environ.items() if k != "SHORTWAVE_API_TOKEN"}

    def start(http, extra="", environ=None, check_only=False):
        with open(conf, "w") as f:
            f.write(f"srt = 127.0.0.1:{free_port()}\nhttp = {http}\ndata = {data}\n{extra}")
        argv = [ORIGIN, "-c", conf] + (["--check-config"] if check_only else [])
        try:
            r = subprocess.run(argv, capture_output=True, timeout=5, env=environ or env)
            return r.returncode, r.stderr.decode() + r.stdout.decode()
        except subprocess.TimeoutExpired as e:
            return None, (e.stderr or b"").decode()

    for http in (f"0.0.0.0:{free_port()}", f"[::]:{free_port()}", f"192.0.2.1:{free_port()}"):
        for check_only in (True, False):
            rc, out = start(http, check_only=check_only)
            check(rc == 2 and "api_token is required" in out and "SHORTWAVE_API_TOKEN" in out,
                  f"http = {http} without api_token{' (--check-config)' if check_only else ''}: "
                  f"refused (rc {rc}: {out.strip()[:160]})")
    rc, out = start(f"0.0.0.0:{free_port()}", "api_token = a-long-operator-token\n", check_only=True)
    check(rc == 0 and "configuration ok" in out, f"with api_token in the file: ok ({out.strip()})")
    rc, out = start(f"0.0.0.0:{free_port()}", environ=dict(env, SHORTWAVE_API_TOKEN="tok-from-env"),
                    check_only=True)
    check(rc == 0 and "configuration ok" in out, f"with SHORTWAVE_API_TOKEN: ok ({out.strip()})")
    for http in (f"127.0.0.1:{free_port()}", f"127.0.0.2:{free_port()}", f"[::1]:{free_port()}"):
        rc, out = start(http, check_only=True)
        check(rc == 0, f"http = {http} (loopback) needs no token ({out.strip()})")


def main():
    content_type_and_cors()
    token_required()


run(main)
