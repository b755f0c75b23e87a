#!/usr/bin/env python3
"""Request bodies on the sw HTTP core (tests/tools/httpd_test), with real clients.

One h2load client opens 256 HTTP/2 streams at once on one connection, each uploading 1 MiB
(POST /len). The server may buffer 2 MiB of bodies per connection (twice max_body_bytes): the
streams past that are reset with REFUSED_STREAM, the others answered with their length. Meanwhile
another client's GETs on their own connection keep a normal latency, a third client's upload is
served, and the server's peak RSS (VmHWM) stays within a bound far below the 256 MiB the flood
carries. Then bodies on methods that take none: GET over HTTP/1.1 (400, connection closed) and over
HTTP/2 (400, then RST_STREAM NO_ERROR).

Environment: SW_TEST_BIN (folder holding httpd_test). Every wait has a deadline; the server gets
TERM (then KILL) on every exit path and must exit 0 after TERM.
"""
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_http_core import BIN, HELLO, Server, check, raw, run  # noqa: E402

MIB = 1024 * 1024
STREAMS = 256
# h2load keeps 256 streams open until it has made ROUNDS x 256 requests: refused streams end
# fast, and the flood lasts about 2 s here, long enough to watch another client meanwhile.
ROUNDS = 256
RSS_BOUND_MIB = 32  # growth of the peak RSS over the idle server's RSS


def proc_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError("no %s in /proc/%d/status" % (field, pid))


def get_hello(s):
    """One keep-alive GET /hello on socket `s`; returns the seconds it took."""
    t0 = time.monotonic()
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    buf = b""
    while not buf.endswith(HELLO):
        b = s.recv(4096)
        if not b:
            raise AssertionError("victim connection closed")
        buf += b
    check_quiet(buf.startswith(b"HTTP/1.1 200 "), "victim GET answered 200")
    return time.monotonic() - t0


def check_quiet(cond, what):
    if not cond:
        raise AssertionError(what)


def stats(srv):
    rc, out, _ = run(["curl", "-sS", "--max-time", "10", srv.base + "/stats"])
    check(rc == 0, "GET /stats")
    return {k.decode(): int(v) for k, v in re.findall(rb"^(\w+) (\d+)$", out, re.M)}


def test_flood(srv, tmp):
    body = os.path.join(tmp, "body")
    with open(body, "wb") as f:
        f.write(bytes(range(256)) * (MIB // 256))
    victim = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    base_lat = [get_hello(victim) for _ in range(20)]
    rss0 = proc_kib(srv.proc.pid, "VmRSS")
    print("      idle server: VmRSS %d KiB, GET median %.2f ms" %
          (rss0, statistics.median(base_lat) * 1000))

    flood = subprocess.Popen(
        ["h2load", "-n", str(STREAMS * ROUNDS), "-c", "1", "-m", str(STREAMS), "-t", "1", "-d", body,
         srv.base + "/len"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # another client's upload, on its own connection, while the flood runs
    time.sleep(0.05)
    upload = subprocess.Popen(
        ["curl", "-sS", "--max-time", "20", "--http2-prior-knowledge", "--data-binary",
         "@" + body, srv.base + "/len"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lat = []
    deadline = time.monotonic() + 40
    try:
        while flood.poll() is None and time.monotonic() < deadline:
            lat.append(get_hello(victim))
            time.sleep(0.01)
        hwm = proc_kib(srv.proc.pid, "VmHWM")
        growth = (hwm - rss0) / 1024
        check(growth < RSS_BOUND_MIB, "peak RSS %.1f MiB over idle (< %d MiB) under %d streams "
              "of 1 MiB uploads" % (growth, RSS_BOUND_MIB, STREAMS))
        check(flood.poll() is not None, "h2load finished within 40 s")
    finally:
        if flood.poll() is None:
            flood.kill()
        out, err = flood.communicate(timeout=10)
    uout, uerr = upload.communicate(timeout=30)
    text = out.decode()
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    rq = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                   r"(\d+) failed, (\d+) errored", text)
    if m is None or rq is None:
        print(text[-2000:], err.decode()[-1000:])
    check(m is not None and rq is not None, "h2load printed its counts")
    ok = int(m.group(1))
    print("      h2load:", rq.group(0), "|", m.group(0))
    st = stats(srv)
    print("      server:", st)
    check(ok >= 1, "some of the %d uploads were served whole (%d)" % (STREAMS * ROUNDS, ok))
    check(int(m.group(3)) == 0 and int(m.group(4)) == 0, "no 4xx or 5xx: refused streams are reset")
    # the other client's upload is one more served body
    check(st["bodies_refused"] >= 1 and ok + st["bodies_refused"] == STREAMS * ROUNDS,
          "every other upload refused with REFUSED_STREAM (%d refused + %d served = %d)"
          % (st["bodies_refused"], ok, STREAMS * ROUNDS))
    check(st["body_bytes"] == 0, "no body bytes held once the uploads are over")
    check(uout == b"%d\n" % MIB, "another client's 1 MiB upload served meanwhile (%r %s)"
          % (uout[:20], uerr.decode()[-200:]))
    check(len(lat) >= 3, "victim GETs made during the flood (%d)" % len(lat))
    med, worst = statistics.median(lat), max(lat)
    print("      victim GET during the flood: median %.2f ms, worst %.2f ms (%d requests)"
          % (med * 1000, worst * 1000, len(lat)))
    check(med < 0.05 and worst < 1.0, "another client's GETs keep a normal latency")
    victim.close()


def test_bodyless(srv, tmp):
    out = raw(srv, b"GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
              b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 400 ") and out.count(b"HTTP/1.1") == 1,
          "HTTP/1.1 GET with a body: 400, connection closed (%r)" % out[:40])
    out = raw(srv, b"OPTIONS /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    check(out.startswith(b"HTTP/1.1 400 "), "HTTP/1.1 OPTIONS with a body: 400")
    out = raw(srv, b"DELETE /len HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
              b"Connection: close\r\n\r\nabc")
    check(out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"\r\n\r\n3\n"),
          "HTTP/1.1 DELETE with a body is served (the edge's purge API takes a form body)")
    out = raw(srv, b"GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
              b"Connection: close\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 200 ") and out.endswith(HELLO),
          "HTTP/1.1 GET with Content-Length: 0 is served")
    body = os.path.join(tmp, "small")
    with open(body, "wb") as f:
        f.write(b"z" * 300000)
    rc, out, err = run(["nghttp", "-v", "-t", "20", "-H", ":method: GET", "-d", body,
                        srv.base + "/hello"])
    text = out.decode(errors="replace")
    check(":status: 400" in text, "HTTP/2 GET with a body: 400")
    check(re.search(r"recv RST_STREAM frame <length=4, flags=0x00, stream_id=\d+>\s+"
                    r"\(error_code=NO_ERROR", text) is not None,
          "HTTP/2 GET with a body: RST_STREAM NO_ERROR ends the upload")
    rc, out, err = run(["curl", "-sS", "--max-time", "20", "--http2-prior-knowledge",
                        srv.base + "/hello"])
    check(rc == 0 and out == HELLO, "h2c GET without a body still served")


def main():
    for tool in ("h2load", "nghttp", "curl"):
        if shutil.which(tool) is None:
            print("FAIL", tool, "not installed")
            return 1
    if not os.path.exists(os.path.join(BIN, "httpd_test")):
        print("httpd_test not built in", BIN)
        return 1
    # Under AddressSanitizer every freed body waits in a quarantine of up to 256 MiB, which the
    # peak RSS would measure instead of the server; a small one keeps the bound meaningful there.
    opts = os.environ.get("ASAN_OPTIONS", "")
    os.environ["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "quarantine_size_mb=8"
    srv = Server()
    tmp = tempfile.mkdtemp(prefix="sw-http-body-")
    try:
        test_flood(srv, tmp)
        test_bodyless(srv, tmp)
        check(srv.proc.poll() is None, "server alive")
    finally:
        rc = srv.stop()
        err = srv.proc.stderr.read().decode()
        if rc != 0:
            print(err[-3000:])
        shutil.rmtree(tmp, ignore_errors=True)
    check(rc == 0, "httpd_test exits 0 on SIGTERM (rc %s)" % rc)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print("FAIL", e)
        sys.exit(1)
