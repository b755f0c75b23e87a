#!/usr/bin/env python3
"""Edge upstream fetcher (edge/include/edge/upstream.h) against real servers, through
tests/tools/upstream_probe: streaming chunks as they are written, a 1 MiB body byte for byte,
failover past a dead port, an upstream killed mid-body, health checks marking an upstream down and
up again, 100 concurrent fetches over few connections, h2c prior knowledge and a blocking LL-HLS
playlist request against shortwave-origin."""
import hashlib
import os
import re
import signal
import subprocess
import time

from swtest import (TEST_BIN, Origin, Proc, check, ffmpeg_publish, log, parse_media_playlist,
                    run, wait_for)

PROBE = os.path.join(TEST_BIN, "upstream_probe")
HTTPD = os.path.join(TEST_BIN, "httpd_test")
# Ports 23000-23999 only; a fixed port lets the health test restart the server on it.
PORT_BASE = 23000 + (os.getpid() % 400) * 2


def httpd(port):
    pr = Proc([HTTPD, "--listen", f"127.0.0.1:{port}"], f"httpd-{port}")
    ok = wait_for(lambda: "listening" in pr.output() or not pr.alive(), 10)
    if not ok or not pr.alive():
        raise RuntimeError(f"httpd_test did not start on {port}:\n{pr.output()}")
    return pr


def parse_kv(line):
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line))


def probe(args, timeout=60):
    """Runs the probe to its end; returns (fetch dicts by id, stats dict, node dicts, output)."""
    t0 = time.monotonic()
    r = subprocess.run([PROBE] + args, capture_output=True, timeout=timeout)
    out = r.stdout.decode("utf-8", "replace")
    err = r.stderr.decode("utf-8", "replace")
    fetches, stats, nodes = {}, {}, []
    for ln in out.splitlines():
        if ln.startswith("fetch "):
            fetches[int(ln.split()[1])] = parse_kv(ln)
        elif ln.startswith("stats "):
            stats = parse_kv(ln)
        elif ln.startswith("node "):
            nodes.append(parse_kv(ln))
    check(r.returncode == 0 and "closed" in out,
          f"probe {' '.join(args[-2:])} exited 0 after closing (rc {r.returncode}, "
          f"{time.monotonic() - t0:.2f} s)")
    if r.returncode != 0 or "ERROR: " in err:
        print(f"--- probe stderr ---\n{err[-4000:]}")
    check("AddressSanitizer" not in err and "LeakSanitizer" not in err and "runtime error" not in err,
          "probe: no sanitizer report")
    return fetches, stats, nodes, out + err


def test_httpd():
    pa = PORT_BASE
    a = httpd(pa)
    base = f"http://127.0.0.1:{pa}"

    # Chunks are delivered as the server writes them (5 writes 50 ms apart).
    f, st, _, out = probe(["--origin", base, "--chunks", "/stream"])
    s = f.get(0, {})
    first, last = float(s.get("first_chunk_ms", -1)), float(s.get("last_chunk_ms", -1))
    log(f"/stream: chunks {s.get('chunks')}, first chunk {first:.1f} ms, last {last:.1f} ms")
    check(s.get("status") == "200" and s.get("err") == "0" and s.get("bytes") == "40",
          "/stream: 200, 40 bytes, no error")
    check(s.get("chunks") == "5", f"/stream: 5 chunks delivered separately ({s.get('chunks')})")
    check(0 <= first < 120 and last - first > 150,
          f"/stream: first chunk well before the last ({first:.1f} ms vs {last:.1f} ms)")

    # /big byte for byte, compared with curl.
    ref = hashlib.sha256(subprocess.run(["curl", "-s", "--max-time", "20", base + "/big"],
                                        capture_output=True, timeout=30).stdout).hexdigest()
    f, st, _, _ = probe(["--origin", base, "/big"])
    b = f.get(0, {})
    log(f"/big: {b.get('bytes')} bytes in {b.get('chunks')} chunks, ttfb {b.get('ttfb_ms')} ms, "
        f"total {b.get('total_ms')} ms")
    check(b.get("bytes") == str(1 << 20) and b.get("sha256") == ref,
          "/big: 1 MiB, sha256 equal to curl's download")

    # Failover: the first origin is a dead port.
    dead = f"http://127.0.0.1:{pa + 1}"
    f, st, nodes, _ = probe(["--origin", dead, "--origin", base, "/hello"])
    h = f.get(0, {})
    check(h.get("status") == "200" and h.get("err") == "0", "failover: dead first origin, 200 from the second")
    check(st.get("failovers") == "1", f"failover: failovers=1 ({st.get('failovers')})")
    check(st.get("errors", "").split(",")[0] == "1", f"failover: one connect error counted ({st.get('errors')})")

    # 100 concurrent fetches of one URL over HTTP/1.1 keep-alive: few connections.
    t0 = time.monotonic()
    f, st, _, _ = probe(["--origin", base, "--repeat", "100", "--max-host-conns", "8", "/big"])
    dt = time.monotonic() - t0
    good = sum(1 for v in f.values() if v.get("status") == "200" and v.get("sha256") == ref)
    log(f"100 x /big over HTTP/1.1: {good} good, connections {st.get('connects')}, {dt:.2f} s, "
        f"ttfb histogram {st.get('ttfb_hist')}")
    check(good == 100, f"100 concurrent fetches all complete with the right body ({good})")
    check(0 < int(st.get("connects", 999)) <= 8, f"... over at most 8 connections ({st.get('connects')})")
    check(dt < 30, f"... within 30 s ({dt:.2f} s)")
    check(st.get("in_flight") == "0", "... nothing left in flight")

    # h2c prior knowledge against the sw server, 100 at once (see the libcurl note in the report).
    t0 = time.monotonic()
    f, st, _, out = probe(["--origin", f"h2c://127.0.0.1:{pa}", "--repeat", "100", "/big"])
    dt = time.monotonic() - t0
    good = sum(1 for v in f.values() if v.get("status") == "200" and v.get("sha256") == ref)
    log(f"100 x /big over h2c: {good} good, connections {st.get('connects')}, {dt:.2f} s")
    check(good == 100, f"100 concurrent h2c fetches complete with the right body ({good})")

    # Upstream killed mid-body: an error after partial data.
    pr = subprocess.Popen([PROBE, "--origin", base, "--chunks", "/stream"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    line = pr.stdout.readline().decode()
    check(line.startswith("chunk 0 1 "), f"mid-body: first chunk arrived ({line.strip()})")
    a.signal(signal.SIGKILL)
    a.p.wait(5)
    try:
        rest, err = pr.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        pr.kill()
        rest, err = pr.communicate()
    m = [parse_kv(ln) for ln in rest.decode().splitlines() if ln.startswith("fetch ")]
    d = m[0] if m else {}
    log(f"mid-body kill: bytes {d.get('bytes')}, err {d.get('err')}, reason {d.get('reason')}")
    check(d.get("status") == "200" and int(d.get("bytes", 0)) > 0 and int(d.get("bytes", 0)) < 40
          and d.get("err", "0") != "0", "mid-body: on_done reports an error after partial data")
    check(pr.returncode == 0 and b"Sanitizer" not in err, "mid-body: probe exited cleanly")

    # Health checks: an upstream marked down when it dies and up when it comes back.
    pb = pa + 1
    bsrv = httpd(pb)
    pr = Proc([PROBE, "--origin", f"http://127.0.0.1:{pb}", "--health-interval", "100",
               "--health-fails", "2", "--health-path", "/hello", "--watch", "6000"], "probe-health")
    time.sleep(0.5)
    t_kill = time.monotonic()
    bsrv.signal(signal.SIGKILL)
    bsrv.p.wait(5)
    down = wait_for(lambda: "healthy=0" in pr.output(), 5)
    t_down = time.monotonic() - t_kill
    check(down, f"health: dead upstream marked down ({t_down:.2f} s after the kill)")
    bsrv = httpd(pb)
    t_up0 = time.monotonic()
    up = wait_for(lambda: pr.output().count("healthy=1") >= 1 and
                  pr.output().rfind("healthy=1") > pr.output().rfind("healthy=0"), 5)
    check(up, f"health: restarted upstream marked up again ({time.monotonic() - t_up0:.2f} s)")
    wait_for(lambda: not pr.alive(), 15)
    out = pr.output()
    check("is down" in out and "is up again" in out, "health: both transitions logged")
    check(pr.p.returncode == 0 and "Sanitizer" not in out, "health: probe exited cleanly")
    bsrv.stop()


def test_origin():
    o = Origin(http_port=PORT_BASE + 2, srt_port=PORT_BASE + 3)
    pub = ffmpeg_publish(o.srt_url("live/up"), seconds=60, size="640x360")
    ok = wait_for(lambda: o.get("/live/up/v.m3u8", timeout=2)[0] == 200, 20)
    check(ok, "origin: media playlist served")
    if not ok:
        return
    # h2c prior knowledge against the origin.
    f, st, _, _ = probe(["--origin", f"h2c://127.0.0.1:{o.http_port}", "/live/up/v.m3u8", "/healthz"])
    check(f.get(0, {}).get("status") == "200" and f.get(0, {}).get("err") == "0" and
          f.get(1, {}).get("status") == "200", "origin: playlist and /healthz over h2c prior knowledge")

    # A blocking LL-HLS request for the next part returns once it is written.
    held = []
    for _ in range(5):
        pl = parse_media_playlist(o.get("/live/up/v.m3u8")[2].decode())
        msn, part = pl["next_msn"], len(pl["open_parts"])
        path = f"/live/up/v.m3u8?_HLS_msn={msn}&_HLS_part={part}"
        f, st, _, _ = probe(["--origin", o.base, "--first-byte-timeout", "10000", path])
        r = f.get(0, {})
        if r.get("status") != "200" or r.get("err") != "0":
            check(False, f"origin: blocking request {msn}.{part} answered ({r})")
            return
        held.append(float(r.get("ttfb_ms", 0)))
    log(f"blocking requests held for {', '.join(f'{h:.0f}' for h in held)} ms")
    check(len(held) == 5 and max(held) > 20 and max(held) < 5000,
          "origin: blocking requests were held until the part existed, then answered")

    # A segment: bytes equal to a direct download.
    pl = parse_media_playlist(o.get("/live/up/v.m3u8")[2].decode())
    seg = pl["segments"][-1]["uri"] if pl["segments"] else None
    if seg:
        ref = hashlib.sha256(o.get("/live/up/" + seg)[2]).hexdigest()
        f, st, _, _ = probe(["--origin", o.base, "/live/up/" + seg])
        check(f.get(0, {}).get("sha256") == ref, f"origin: segment {seg} equal to a direct download")
    pub.stop()
    check(o.stop_clean(), "origin stopped cleanly")


def main():
    if not os.path.exists(PROBE):
        check(False, f"{PROBE} is built")
        return
    test_httpd()
    test_origin()


if __name__ == "__main__":
    run(main)
