#!/usr/bin/env python3
"""Edge hardening (issue 12, item 9): stale serving while the origin is down.

1. The origin's Cache-Control: segments, parts and init segments carry stale-if-error (they never
   change); playlists and the MPD carry stale-if-error=0 (a stale live playlist would hold a
   player at an old live point instead of letting it retry or fail over).
2. A stub origin whose objects live 1 s; an edge with stale_if_error = 60s. The stub dies; past
   the objects' max-age:
   - a segment whose answer said "max-age=1, stale-if-error=3" is served from cache with
     x-cache: STALE, byte for byte, then 502 once its own 3 s are over (the origin's N wins over
     the edge's 60 s);
   - a segment whose answer named no stale-if-error is served STALE under the edge's default;
   - a playlist (by Content-Type, and by path without one) that named none is never served stale:
     502.
3. An edge with stale_if_error = 0s serves no stale copy of the segment that named none: 502.
4. An origin that is up but answers 503: the segments are served STALE (RFC 5861 counts 500,
   502, 503 and 504 as errors); the playlist gets the origin's 503.
"""
import http.server
import re
import threading
import time

from swtest import (run, Origin, check, ffmpeg_publish, log, parse_media_playlist, parse_metrics,
                    wait_for)
from test_edge_http import Edge

STREAM = "sie"
CC = {
    "/live/st/own.m4s": ("video/mp4", "public, max-age=1, stale-if-error=3"),
    "/live/st/none.m4s": ("video/mp4", "public, max-age=1"),
    "/live/st/v.m3u8": ("application/vnd.apple.mpegurl", "public, max-age=1"),
    "/live/st/untyped.m3u8": (None, "public, max-age=1"),
}


def body_of(path):
    return (path.encode() + b"\n") * 2000


class Stub:
    def __init__(self):
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.server.failing:
                    body = b"overloaded\n"
                    self.send_response(503)
                    self.send_header("cache-control", "no-store")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                ctype, cc = CC.get(self.path, ("text/plain", "no-store"))
                body = body_of(self.path)
                self.send_response(200 if self.path in CC else 404)
                if ctype:
                    self.send_header("content-type", ctype)
                self.send_header("cache-control", cc)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.failing = False  # True: every request gets 503
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def origin_headers():
    o = Origin()
    pub = ffmpeg_publish(o.srt_url(f"live/{STREAM}"), seconds=60, size="320x240")

    def ready():
        st, _, body = o.get(f"/live/{STREAM}/v.m3u8", timeout=3)
        if st != 200:
            return None
        text = body.decode()
        pl = parse_media_playlist(text)
        init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', text)
        part = re.findall(r'#EXT-X-PART:[^\n]*URI="([^"]+)"', text)
        if len(pl["segments"]) < 2 or init is None or not part:
            return None
        return pl, init.group(1), part[-1]

    got = wait_for(ready, 30, interval=0.2)
    check(got is not None, "the origin has segments, parts and an init segment")
    if got is None:
        return
    pl, init, part = got
    base = f"/live/{STREAM}/"
    media = {"segment": base + pl["segments"][-1]["uri"], "init segment": base + init,
             "part": base + part}
    lists = {"multivariant playlist": base + "index.m3u8", "media playlist": base + "v.m3u8",
             "blocking playlist": base + f"v.m3u8?_HLS_msn={pl['next_msn'] - 1}&_HLS_part=0",
             "MPD": base + "manifest.mpd"}
    for what, path in media.items():
        st, hdr, _ = o.get(path)
        cc = hdr.get("cache-control", "")
        m = re.search(r"stale-if-error=(\d+)", cc)
        check(st == 200 and m is not None and int(m.group(1)) >= 3600 and "immutable" in cc,
              f"origin {what}: {st} cache-control {cc!r}")
    for what, path in lists.items():
        st, hdr, _ = o.get(path)
        cc = hdr.get("cache-control", "")
        check(st == 200 and "stale-if-error=0" in cc and "max-age=" in cc,
              f"origin {what}: {st} cache-control {cc!r}")
    pub.stop()
    check(o.stop_clean(), "origin exits 0")


def timed_get(e, path):
    t0 = time.monotonic()
    st, hdr, body = e.get(path, timeout=15)
    return st, hdr, body, time.monotonic() - t0


def stale_through_edge():
    stub = Stub()
    e = Edge(stub.url, "stale_if_error = 60s\n", name="edge-stale")
    e0 = Edge(stub.url, "stale_if_error = 0s\n", name="edge-nostale")
    for d in (e, e0):
        for path in CC:
            st, hdr, body = d.get(path)
            check(st == 200 and body == body_of(path) and hdr.get("x-cache") == "MISS",
                  f"{d.name}: {path} fetched ({st} {hdr.get('x-cache')})")
        st, hdr, _ = d.get("/live/st/none.m4s")
        check(st == 200 and hdr.get("x-cache") == "HIT", f"{d.name}: then a HIT ({st} {hdr.get('x-cache')})")
    t_fetch = time.monotonic()

    log("the stub origin stops")
    stub.stop()
    time.sleep(max(0.0, t_fetch + 1.3 - time.monotonic()))  # past max-age=1
    for path in ("/live/st/own.m4s", "/live/st/none.m4s"):
        st, hdr, body, dt = timed_get(e, path)
        check(st == 200 and hdr.get("x-cache") == "STALE" and body == body_of(path) and dt < 3,
              f"origin down: {path} -> {st} x-cache {hdr.get('x-cache')} ({dt * 1000:.0f} ms)")
    for path in ("/live/st/v.m3u8", "/live/st/untyped.m3u8"):
        st, hdr, body, dt = timed_get(e, path)
        check(st in (502, 504) and b"upstream" in body and dt < 3,
              f"origin down: playlist {path} is never stale -> {st} {body[:50]!r}")
    st, hdr, body, dt = timed_get(e0, "/live/st/none.m4s")
    check(st in (502, 504) and hdr.get("x-cache") != "STALE",
          f"stale_if_error = 0s: /live/st/none.m4s -> {st} ({body[:50]!r})")
    st, hdr, body, dt = timed_get(e0, "/live/st/own.m4s")
    check(st == 200 and hdr.get("x-cache") == "STALE",
          f"stale_if_error = 0s: the origin's own stale-if-error=3 still applies -> {st} "
          f"{hdr.get('x-cache')}")

    time.sleep(max(0.0, t_fetch + 4.6 - time.monotonic()))  # past max-age=1 + stale-if-error=3
    st, hdr, body, dt = timed_get(e, "/live/st/own.m4s")
    check(st in (502, 504) and hdr.get("x-cache") != "STALE",
          f"past its own stale-if-error=3 (not the edge's 60 s): {st} {body[:50]!r}")
    st, hdr, body, dt = timed_get(e, "/live/st/none.m4s")
    check(st == 200 and hdr.get("x-cache") == "STALE" and body == body_of("/live/st/none.m4s"),
          f"the edge's 60 s still cover the other segment: {st} {hdr.get('x-cache')}")
    m = parse_metrics(e.get("/metrics", timeout=3)[2])
    check(m.get("shortwave_edge_stale_served_total", 0) >= 3,
          f"stale answers counted ({m.get('shortwave_edge_stale_served_total')})")
    check(e.alive() and e0.alive(), "the edges are alive")
    check(e.stop_clean() and e0.stop_clean(), "edges exit 0 on SIGTERM")


def stale_on_5xx():
    stub = Stub()
    e = Edge(stub.url, "stale_if_error = 60s\n", name="edge-5xx")
    for path in CC:
        st, hdr, _ = e.get(path)
        check(st == 200 and hdr.get("x-cache") == "MISS", f"edge-5xx: {path} fetched ({st})")
    t_fetch = time.monotonic()
    log("the stub origin answers 503 to everything")
    stub.srv.failing = True
    time.sleep(max(0.0, t_fetch + 1.3 - time.monotonic()))
    for path in ("/live/st/own.m4s", "/live/st/none.m4s"):
        st, hdr, body = e.get(path, timeout=10)
        check(st == 200 and hdr.get("x-cache") == "STALE" and body == body_of(path),
              f"origin answers 503: {path} -> {st} x-cache {hdr.get('x-cache')}")
    st, hdr, body = e.get("/live/st/v.m3u8", timeout=10)
    check(st == 503 and body == b"overloaded\n",
          f"origin answers 503: the playlist gets the origin's answer ({st} {body[:30]!r})")
    check(e.stop_clean(), "edge-5xx exits 0 on SIGTERM")
    stub.stop()


def main():
    log("1. the origin's Cache-Control")
    origin_headers()
    log("2. and 3. stale answers from the edge")
    stale_through_edge()
    log("4. an origin that answers 503")
    stale_on_5xx()


if __name__ == "__main__":
    run(main)
