#!/usr/bin/env python3
"""Edge acceptance 1: shortwave-edge in front of a live origin. Playlists, segments and the MPD come
through intact over HTTP/1.1 and h2c; ffmpeg plays through it; a second fetch is a cache HIT; 50
concurrent requests for a segment not yet written collapse into one upstream fetch; a blocking
LL-HLS playlist request works through the edge; with the origin gone, cached objects are still
served and uncached ones get a quick 502; SIGTERM exits 0."""
import hashlib
import os
import re
import signal
import subprocess
import threading
import time

import swtest
from swtest import (run, parse_metrics, Origin, Proc, check, ffmpeg_publish, free_port, http_get, log,
                    parse_media_playlist, wait_for)


class Edge(Proc):
    def __init__(self, origins, name="edge", extra=()):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        argv = [os.path.join(swtest.BIN, "shortwave-edge"), "--listen", f"127.0.0.1:{self.port}",
                "--cache-size", "64M", "--log-level", "info"]
        for o in origins:
            argv += ["--origin", o]
        super().__init__(argv + list(extra), name)
        ok = wait_for(lambda: http_get(self.base + "/healthz", timeout=1)[0] == 200 or not self.alive(), 10)
        if not ok or not self.alive():
            raise RuntimeError(f"edge did not start:\n{self.output()}")

    def get(self, path, **kw):
        return http_get(self.base + path, **kw)

    def metrics(self):
        return parse_metrics(self.get("/metrics", timeout=3)[2])


def origin_requests(o):
    st, _, body = o.get("/metrics", timeout=3)
    total = 0.0
    for ln in body.decode("utf-8", "replace").splitlines():
        if ln.startswith("shortwave_http_requests_total"):
            total += float(ln.rsplit(" ", 1)[1])
    return total


def sha(b):
    return hashlib.sha256(b).hexdigest()


def curl_h2(url, path_out):
    r = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-o", path_out, "-w",
                        "%{http_code} %{http_version}", "--max-time", "10", url],
                       capture_output=True, timeout=20)
    return r.stdout.decode().strip()


def stub_origin():
    """A tiny origin answering /live/stub/priv (private), /live/stub/nostore (no-store) and
    /healthz."""
    import http.server

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            cc = {"/live/stub/priv": "private, max-age=60",
                  "/live/stub/nostore": "no-store"}.get(self.path, "no-store")
            body = f"body of {self.path}\n".encode()
            self.send_response(200)
            self.send_header("cache-control", cc)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def uncacheable():
    srv = stub_origin()
    e = Edge([f"http://127.0.0.1:{srv.server_address[1]}"], name="edge-stub")
    for path in ("/live/stub/priv", "/live/stub/nostore"):
        a = e.get(path)
        b = e.get(path)
        check(a[0] == 200 and b[0] == 200 and a[2] == f"body of {path}\n".encode() and
              a[1].get("x-cache") == "MISS" and b[1].get("x-cache") == "MISS",
              f"uncacheable {path} served and not cached ({a[0]} {a[1].get('x-cache')}, "
              f"{b[0]} {b[1].get('x-cache')})")
    check(e.stop_clean(), "stub edge exits 0")
    srv.shutdown()


def main():
    uncacheable()
    o = Origin()
    pub = ffmpeg_publish(o.srt_url("live/eb"), seconds=120, size="640x360")
    e = Edge([o.base])
    def two_segments():
        st, _, body = o.get("/live/eb/v.m3u8", timeout=2)
        return st == 200 and len(parse_media_playlist(body.decode())["segments"]) >= 2

    ok = wait_for(two_segments, 30, interval=0.2)
    check(ok, "origin has two segments")

    # Basic objects through the edge, HTTP/1.1.
    for path in ("/live/eb/index.m3u8", "/live/eb/v.m3u8", "/live/eb/manifest.mpd"):
        st, hdr, body = e.get(path)
        check(st == 200 and len(body) > 0 and hdr.get("access-control-allow-origin") == "*",
              f"edge GET {path} -> 200 with CORS (got {st})")
    pl = parse_media_playlist(e.get("/live/eb/v.m3u8")[2].decode())
    seg = pl["segments"][0]
    seg_path = "/live/eb/" + seg["uri"]
    st_o, _, body_o = o.get(seg_path)
    st, hdr, body = e.get(seg_path)
    check(st == 200 and st_o == 200 and sha(body) == sha(body_o),
          f"segment {seg_path} through the edge equals the origin's ({len(body)} bytes)")
    check(hdr.get("x-cache") in ("MISS", "HIT", "HIT-FILLING"), f"x-cache set ({hdr.get('x-cache')})")
    st, hdr, body2 = e.get(seg_path)
    check(st == 200 and hdr.get("x-cache") == "HIT" and body2 == body_o,
          f"second fetch is a HIT (x-cache {hdr.get('x-cache')}, age {hdr.get('age')})")
    init_uri = seg["map"]
    if init_uri:
        st, _, ib = e.get("/live/eb/" + init_uri)
        check(st == 200 and ib == o.get("/live/eb/" + init_uri)[2], "init segment equal")

    # h2c.
    tmp = swtest.tmpdir()
    for path in ("/live/eb/index.m3u8", "/live/eb/v.m3u8", "/live/eb/manifest.mpd", seg_path):
        out = os.path.join(tmp, "h2.out")
        res = curl_h2(e.base + path, out)
        good = res == "200 2"
        if path == seg_path:
            with open(out, "rb") as f:
                good = good and sha(f.read()) == sha(body_o)
        check(good, f"h2c GET {path} -> {res}")

    # HTTPS on the edge's TLS listener: ALPN gives HTTP/2 (or HTTP/1.1 when asked), same bytes.
    cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                    "/CN=localhost", "-days", "1", "-keyout", key, "-out", cert],
                   capture_output=True, timeout=60, check=True)
    tls_port = free_port()
    et = Edge([o.base], name="edge-tls",
              extra=("--tls-listen", f"127.0.0.1:{tls_port}", "--tls-cert", cert, "--tls-key", key))
    for flag, want in (("--http2", "200 2"), ("--http1.1", "200 1.1")):
        out = os.path.join(tmp, "tls.out")
        r = subprocess.run(["curl", "-sk", flag, "-o", out, "-w", "%{http_code} %{http_version}",
                            f"https://127.0.0.1:{tls_port}{seg_path}"], capture_output=True,
                           timeout=30)
        res = r.stdout.decode()
        with open(out, "rb") as f:
            same = sha(f.read()) == sha(body_o)
        check(res == want and same, f"HTTPS {flag} GET {seg_path} -> {res}, same bytes {same}")
    check(et.stop_clean(), "the TLS edge exits 0 on SIGTERM")

    # OPTIONS / 405 / 400.
    st, hdr, _ = e.get("/live/eb/v.m3u8", method="OPTIONS")
    check(st == 204 and hdr.get("access-control-allow-origin") == "*", f"OPTIONS preflight 204 ({st})")
    st, _, _ = e.get("/live/eb/v.m3u8", method="DELETE")
    check(st == 405, f"DELETE -> 405 ({st})")
    st, _, body = e.get("/live/%2e%2e/secret")
    check(st == 400 and len(body) > 0, f"bad path -> 400 with a reason ({st} {body[:60]!r})")

    # ffmpeg plays through the edge.
    r = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-i",
                        e.base + "/live/eb/index.m3u8", "-t", "6", "-f", "null", "-"],
                       capture_output=True, timeout=60)
    check(r.returncode == 0, f"ffmpeg plays through the edge (rc {r.returncode} {r.stderr[-300:]!r})")

    # Collapsing: 50 clients ask for the next segment before it exists.
    pl = parse_media_playlist(e.get("/live/eb/v.m3u8")[2].decode())
    nxt = f"/live/eb/v/{pl['next_msn'] + 1}.m4s"
    m0 = e.metrics()
    o0 = origin_requests(o)
    t0 = time.monotonic()
    results = [None] * 50

    def worker(i):
        results[i] = http_get(e.base + nxt, timeout=20)

    ths = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(30)
    m1 = e.metrics()
    o1 = origin_requests(o)
    secs = time.monotonic() - t0
    bodies = {sha(r[2]) for r in results if r and r[0] == 200}
    n200 = sum(1 for r in results if r and r[0] == 200)
    check(n200 == 50 and len(bodies) == 1, f"50 concurrent requests for {nxt}: {n200} x 200, "
          f"{len(bodies)} distinct bodies")
    st_o, _, body_o = o.get(nxt)
    check(bodies == {sha(body_o)}, "collapsed bytes equal the origin's")
    dm = m1.get("shortwave_edge_cache_misses_total", 0) - m0.get("shortwave_edge_cache_misses_total", 0)
    dc = m1.get("shortwave_edge_cache_collapsed_total", 0) - m0.get("shortwave_edge_cache_collapsed_total", 0)
    check(dm == 1 and dc == 49, f"edge: misses +{dm}, collapsed +{dc}")
    # Besides the one fetch and the /metrics reads, every worker health-checks the origin once a
    # second: 50 uncollapsed requests would exceed this by far.
    workers = int(m1.get("shortwave_edge_workers", 1))
    bound = 3 + workers * (int(secs) + 2)
    check(o1 - o0 <= bound, f"origin requests grew by {o1 - o0} in {secs:.1f} s, at most {bound} "
          f"(one fetch, /metrics, {workers} worker(s) health-checking once a second)")

    # A blocking LL-HLS playlist request for the next part.
    pl = parse_media_playlist(e.get("/live/eb/v.m3u8")[2].decode())
    msn, part = (pl["next_msn"], len(pl["open_parts"]))
    t0 = time.monotonic()
    st, hdr, body = e.get(f"/live/eb/v.m3u8?_HLS_msn={msn}&_HLS_part={part}", timeout=15)
    dt = time.monotonic() - t0
    got = parse_media_playlist(body.decode()) if st == 200 else {"parts": [], "segments": []}
    segd = next((s for s in got["segments"] if s["msn"] == msn), None)
    want = f"v/{msn + 1}.0.m4s" if segd is not None and len(segd["parts"]) == part else f"v/{msn}.{part}.m4s"
    check(st == 200 and any(p["uri"] == want for p in got["parts"]),
          f"blocking playlist {msn}.{part} through the edge has {want} ({st}, {dt:.2f}s)")

    # SIGTERM with requests in flight (held by the origin, collapsed on one fetch) exits 0.
    e2 = Edge([o.base], name="edge2")
    held = [None] * 5

    def hold(i):
        held[i] = http_get(e2.base + f"/live/eb/v.m3u8?_HLS_msn={msn + 3}&_HLS_part=0", timeout=15)

    hts = [threading.Thread(target=hold, args=(i,)) for i in range(5)]
    for t in hts:
        t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    check(e2.stop_clean(), "edge with held requests exits 0 on SIGTERM")
    check(time.monotonic() - t0 < 5, f"and promptly ({time.monotonic() - t0:.2f}s)")
    for t in hts:
        t.join(20)

    # Origin gone: cached objects still served, uncached ones 502 quickly.
    o.stop()
    pub.stop()
    st, hdr, body = e.get(seg_path, timeout=5)
    check(st == 200 and sha(body) == sha(body2), f"cached segment served with the origin down ({st})")
    t0 = time.monotonic()
    st, hdr, body = e.get("/live/eb/v/999999.m4s", timeout=10)
    dt = time.monotonic() - t0
    check(st == 502 and dt < 3 and len(body) > 0, f"uncached path -> 502 in {dt:.2f}s ({st} {body[:80]!r})")

    mt = e.metrics()
    check(any(k.startswith("shortwave_edge_requests_total{") for k in mt), "metrics list requests")
    check(e.stop_clean(), "edge exits 0 on SIGTERM")


if __name__ == "__main__":
    run(main)
