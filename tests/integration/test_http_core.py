#!/usr/bin/env python3
"""Drives tests/tools/httpd_test (the sw HTTP core) with real clients: curl (HTTP/1.1 and h2c prior
knowledge), nghttp, h2load, and raw sockets for slowloris, oversized and malformed heads.

Environment: SW_TEST_BIN (folder holding httpd_test). Every wait has a deadline; the server gets
TERM (then KILL) on every exit path and must exit 0 after TERM.
"""
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

BIN = os.environ.get("SW_TEST_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "tests")
HEADER_TIMEOUT_MS = 1000
HELLO = b"Hello from shortwave\n"
BIG_LEN = 1024 * 1024


def big_body():
    return bytes(((i * 7 + i // 251) & 0xFF) for i in range(BIG_LEN))


class Server:
    def __init__(self):
        exe = os.path.join(BIN, "httpd_test")
        self.proc = subprocess.Popen(
            [exe, "--listen", "127.0.0.1:0", "--header-timeout", str(HEADER_TIMEOUT_MS),
             "--idle-timeout", "5000", "--max-header", "4096", "--log", "info"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()  # the server prints it once listening
        m = re.match(r"listening (\d+)", line)
        if not m:
            self.stop()
            raise RuntimeError("httpd_test did not start: %r" % line)
        self.port = int(m.group(1))
        self.base = "http://127.0.0.1:%d" % self.port

    def stop(self):
        """TERM, then KILL after a deadline. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


def run(args, timeout=60):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  ", what)


def curl(srv, path, *extra):
    rc, out, err = run(["curl", "-sS", "--max-time", "20"] + list(extra) + [srv.base + path])
    check(rc == 0, "curl %s %s exits 0 (%s)" % (" ".join(a[:24] for a in extra), path,
                                                  err.decode()[-200:] if rc else ""))
    return out, err


def raw(srv, data, timeout=5.0):
    """Sends `data`, reads until the server closes or `timeout`. Returns the bytes read."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            out += b
        return out
    finally:
        s.close()


def test_curl_h1(srv, big):
    out, _ = curl(srv, "/hello")
    check(out == HELLO, "HTTP/1.1 /hello body")
    rc, out, err = run(["curl", "-sv", "--max-time", "20", srv.base + "/hello",
                        srv.base + "/hello"])
    check(rc == 0 and out == HELLO * 2, "keep-alive: two requests, two bodies")
    check(b"Re-using existing connection" in err, "keep-alive: connection reused")
    t0 = time.monotonic()
    out, _ = curl(srv, "/stream")
    dt = time.monotonic() - t0
    check(out == b"".join(b"chunk %d\n" % i for i in range(1, 6)), "chunked /stream body")
    check(dt >= 0.2, "/stream took %.3f s (5 writes 50 ms apart)" % dt)
    out, err = curl(srv, "/stream", "-v")
    check(b"transfer-encoding: chunked" in err.lower(), "/stream is chunked on HTTP/1.1")
    t0 = time.monotonic()
    out, _ = curl(srv, "/hold?ms=300")
    dt = time.monotonic() - t0
    check(out == b"held 300\n" and dt >= 0.3, "/hold?ms=300 answered after %.3f s" % dt)
    out, _ = curl(srv, "/big")
    check(out == big, "HTTP/1.1 /big: 1 MiB byte for byte")
    out, _ = curl(srv, "/big", "-I")
    check(b"Content-Length: 1048576" in out and out.endswith(b"\r\n\r\n"),
          "HEAD /big: headers with Content-Length, no body")
    out, _ = curl(srv, "/hello", "--http1.0")
    check(out == HELLO, "HTTP/1.0 /hello")
    out, _ = curl(srv, "/stream", "--http1.0")
    check(out.endswith(b"chunk 5\n"), "HTTP/1.0 /stream is close-delimited")
    out, _ = curl(srv, "/echo", "--data-binary", "x" * 5000)
    check(out == b"x" * 5000, "POST /echo body round trip")


def test_curl_h2(srv, big):
    # curl 7.88.1 cannot reuse a prior-knowledge connection (curl/curl#10634, fixed in 8.0),
    # so each curl call makes one request here; nghttp and h2load cover multiplexing.
    h2 = "--http2-prior-knowledge"
    out, err = curl(srv, "/hello", h2, "-v")
    check(out == HELLO and b"HTTP/2 200" in err, "h2c /hello")
    out, _ = curl(srv, "/stream", h2)
    check(out == b"".join(b"chunk %d\n" % i for i in range(1, 6)), "h2c /stream")
    out, _ = curl(srv, "/big", h2)
    check(out == big, "h2c /big: 1 MiB byte for byte")
    out, _ = curl(srv, "/big", h2, "-I")
    check(b"content-length: 1048576" in out, "h2c HEAD /big keeps content-length")
    out, _ = curl(srv, "/hold?ms=200", h2)
    check(out == b"held 200\n", "h2c /hold")
    out, _ = curl(srv, "/echo", h2, "--data-binary", "y" * 70000)
    check(out == b"y" * 70000, "h2c POST /echo 70000 bytes")


def test_nghttp(srv):
    # scripts/deps.sh installs it: missing is a failure, never a silent pass.
    check(shutil.which("nghttp") is not None, "nghttp installed (nghttp2-client)")
    rc, out, err = run(["nghttp", "-v", "-t", "20", srv.base + "/hello", srv.base + "/stream",
                        srv.base + "/hold?ms=100"])
    check(rc == 0, "nghttp -v exits 0")
    check(out.count(b":status: 200") == 3, "nghttp: three 200 responses on one connection")
    check(HELLO in out and b"chunk 5\n" in out and b"held 100\n" in out, "nghttp: bodies")
    rc, out, err = run(["nghttp", "-n", "-t", "20", "-s", srv.base + "/big"])
    check(rc == 0, "nghttp /big")


def h2load(srv, *extra):
    rc, out, err = run(["h2load"] + list(extra) + [srv.base + "/hello"], timeout=120)
    text = out.decode()
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    rq = re.search(r"finished in ([\d.]+\w+), ([\d.]+) req/s", text)
    check(rc == 0 and m is not None, "h2load %s ran" % " ".join(extra))
    print("     ", rq.group(0) if rq else "", "|", m.group(0))
    return int(m.group(1))


def test_h2load(srv):
    check(shutil.which("h2load") is not None, "h2load installed (nghttp2-client)")
    check(h2load(srv, "-n", "1000", "-c", "10", "-m", "10") == 1000, "h2load h2c: 1000 2xx")
    check(h2load(srv, "--h1", "-n", "1000", "-c", "10", "-m", "10") == 1000,
          "h2load --h1 pipelined: 1000 2xx")


def test_raw(srv):
    out = raw(srv, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hold?ms=50 HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    parts = out.split(b"HTTP/1.1 200 OK\r\n")
    check(len(parts) == 4 and parts[1].endswith(HELLO) and parts[2].endswith(b"held 50\n")
          and parts[3].endswith(HELLO), "pipelined requests answered in order")
    check(b"Connection: close" in parts[3], "Connection: close honoured")

    out = raw(srv, b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 431 "), "oversized header: 431 (%r)" % out[:40])
    out = raw(srv, b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000)
    check(out.startswith(b"HTTP/1.1 431 "), "oversized incomplete head: 431")
    out = raw(srv, b"GET/hello HTTP/1.1\r\nHost: x\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 400 "), "malformed request line: 400 (%r)" % out[:40])
    out = raw(srv, b"GET /hello\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 400 "), "HTTP/0.9 request: 400")
    out = raw(srv, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 411 "), "chunked request body: 411")
    out = raw(srv, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 413 "), "body over max_body_bytes: 413")

    # slowloris: a partial head, then silence; the server closes after header_timeout
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    t0 = time.monotonic()
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
    closed = False
    for _ in range(8):  # dribble a header line every 100 ms, then wait
        try:
            s.sendall(b"X-A: b\r\n")
        except OSError:
            break
        time.sleep(0.1)
    try:
        closed = s.recv(100) == b""
    except (ConnectionResetError, socket.timeout):
        closed = True
    dt = time.monotonic() - t0
    s.close()
    check(closed and HEADER_TIMEOUT_MS / 1000 - 0.1 <= dt <= HEADER_TIMEOUT_MS / 1000 + 2,
          "slowloris closed after %.2f s" % dt)

    # a held request whose client goes away: the server must carry on
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(b"GET /hold?ms=2000 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.1)
    s.close()


def main():
    if not os.path.exists(os.path.join(BIN, "httpd_test")):
        print("httpd_test not built in", BIN)
        return 1
    big = big_body()
    check(hashlib.sha1(big).hexdigest() != "", "expected /big body built")
    srv = Server()
    try:
        test_curl_h1(srv, big)
        test_curl_h2(srv, big)
        test_nghttp(srv)
        test_h2load(srv)
        test_raw(srv)
        time.sleep(0.3)
        out, _ = curl(srv, "/hello")
        check(out == HELLO, "server still answers /hello at the end")
        out, _ = curl(srv, "/stats")
        print("     ", out.decode().replace("\n", " | "))
        check(srv.proc.poll() is None, "server alive")
    finally:
        rc = srv.stop()
        err = srv.proc.stderr.read().decode()
        if rc != 0:
            print(err[-3000:])
    check(rc == 0, "httpd_test exits 0 on SIGTERM (rc %s)" % rc)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print("FAIL", e)
        sys.exit(1)
