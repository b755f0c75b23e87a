#!/usr/bin/env python3
"""TLS with ALPN on the sw HTTP core, driven through tests/tools/httpd_test --tls with real clients:
curl (h2 and http/1.1 over TLS), nghttp, h2load, openssl s_client, Python's ssl module, and raw
sockets for plaintext, garbage and silent clients. The certificate is self-signed, made at run time
in a temporary folder with the openssl CLI; a reload (SIGHUP) swaps it for one with another CN, and
a reload with a broken key must fail and keep the old one.

Environment: SW_TEST_BIN (folder holding httpd_test). Ports come from 22000-22999 on 127.0.0.1.
Every wait has a deadline; the server must exit 0 after SIGTERM.
"""
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import swtest
from swtest import check, log, wait_for

HEADER_TIMEOUT_MS = 1000
HELLO = b"Hello from shortwave\n"
BIG_LEN = 1024 * 1024


def big_body():
    return bytes(((i * 7 + i // 251) & 0xFF) for i in range(BIG_LEN))


def pick_port():
    """A free TCP port in 22000-22999 (bounded tries)."""
    for _ in range(200):
        port = random.randint(22000, 22999)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port in 22000-22999")


def make_cert(d, cn):
    """Writes c.pem and k.pem (self-signed, RSA 2048, one day) into `d`."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + cn,
                    "-days", "1", "-keyout", os.path.join(d, "k.pem"), "-out",
                    os.path.join(d, "c.pem")], check=True, timeout=60, capture_output=True)


def run(args, timeout=60, stdin=None):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                       input=stdin)
    return p.returncode, p.stdout, p.stderr


class Server(swtest.Proc):
    def __init__(self, certdir):
        for _ in range(5):  # another process may take a port between the probe and the bind
            self.port, self.tls_port = pick_port(), pick_port()
            if self.port == self.tls_port:
                continue
            super().__init__([os.path.join(swtest.TEST_BIN, "httpd_test"),
                              "--listen", "127.0.0.1:%d" % self.port, "--tls", str(self.tls_port),
                              "--cert", os.path.join(certdir, "c.pem"),
                              "--key", os.path.join(certdir, "k.pem"),
                              "--header-timeout", str(HEADER_TIMEOUT_MS), "--idle-timeout", "5000",
                              "--max-header", "4096", "--log", "debug"], "httpd_test")
            if wait_for(lambda: "tls %d" % self.tls_port in self.output() or not self.alive(), 10) \
                    and self.alive():
                break
        else:
            raise RuntimeError("httpd_test did not start:\n" + self.output())
        self.plain = "http://127.0.0.1:%d" % self.port
        self.base = "https://127.0.0.1:%d" % self.tls_port

    def stats(self):
        rc, out, _ = run(["curl", "-sS", "--max-time", "10", self.plain + "/stats"])
        m = re.search(rb"bad_requests (\d+)", out)
        return int(m.group(1)) if rc == 0 and m else -1


def curl(srv, path, *extra):
    """Returns (rc, body, http_version) over TLS."""
    rc, out, err = run(["curl", "-sSk", "--max-time", "30", "-w", "\n%{http_version}"]
                       + list(extra) + [srv.base + path])
    body, _, ver = out.rpartition(b"\n")
    if rc != 0:
        log("curl %s %s: %s" % (" ".join(extra), path, err.decode()[-300:]))
    return rc, body, ver.decode()


def s_client(srv, *extra, data=b""):
    rc, out, err = run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.tls_port]
                       + list(extra), timeout=20, stdin=data)
    return out.decode("utf-8", "replace") + err.decode("utf-8", "replace")


def tls_socket(srv, alpn=None, timeout=10):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def read_until_closed(s, deadline_s, pace=None):
    out = bytearray()
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            b = s.recv(65536)
        except (ConnectionResetError, socket.timeout, ssl.SSLError, OSError):
            break
        if not b:
            break
        out += b
        if pace:
            time.sleep(pace)
    return bytes(out)


def raw_exchange(srv, data, timeout=5.0):
    """Sends `data` to the TLS port; returns (bytes read until close, seconds, closed)."""
    s = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=timeout)
    t0 = time.monotonic()
    closed = False
    out = b""
    try:
        if data:
            s.sendall(data)
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                closed = True
                break
            except socket.timeout:
                break
            if not b:
                closed = True
                break
            out += b
    finally:
        s.close()
    return out, time.monotonic() - t0, closed


def test_curl(srv, big):
    for path, want in (("/hello", HELLO), ("/big", big)):
        rc2, b2, v2 = curl(srv, path, "--http2")
        rc1, b1, v1 = curl(srv, path, "--http1.1")
        check(rc2 == 0 and v2 == "2", "curl -k --http2 %s: HTTP/%s" % (path, v2))
        check(rc1 == 0 and v1 == "1.1", "curl -k --http1.1 %s: HTTP/%s" % (path, v1))
        h = hashlib.sha256
        check(h(b2).digest() == h(b1).digest() == h(want).digest(),
              "%s: same sha256 over h2 and http/1.1 (%d bytes)" % (path, len(b2)))
    rc, b, v = curl(srv, "/hello", "--no-alpn")
    check(rc == 0 and v == "1.1" and b == HELLO, "no ALPN: HTTP/1.1 by default")
    rc, b, v = curl(srv, "/stream", "--http2")
    check(rc == 0 and b == b"".join(b"chunk %d\n" % i for i in range(1, 6)), "h2 over TLS /stream")
    rc, b, v = curl(srv, "/stream", "--http1.1")
    check(rc == 0 and b.endswith(b"chunk 5\n"), "http/1.1 over TLS chunked /stream")
    rc, b, v = curl(srv, "/echo", "--http2", "--data-binary", "y" * 70000)
    check(rc == 0 and b == b"y" * 70000, "h2 over TLS POST /echo 70000 bytes")
    rc, b, v = curl(srv, "/echo", "--http1.1", "--data-binary", "x" * 70000)
    check(rc == 0 and b == b"x" * 70000, "http/1.1 over TLS POST /echo 70000 bytes")
    rc, out, err = run(["curl", "-sSk", "--max-time", "20", "-v", srv.base + "/hello",
                        srv.base + "/hello", "--http1.1"])
    check(rc == 0 and out == HELLO * 2 and b"Re-using existing connection" in err,
          "http/1.1 keep-alive over TLS")
    # the plain listener of the same server still speaks h2c with prior knowledge
    rc, out, err = run(["curl", "-sS", "--max-time", "20", "--http2-prior-knowledge", "-w",
                        "%{http_version}", srv.plain + "/hello"])
    check(rc == 0 and out == HELLO + b"2", "plain listener: h2c prior knowledge unchanged")


def test_nghttp_h2load(srv):
    if shutil.which("nghttp") is None or shutil.which("h2load") is None:
        check(False, "nghttp and h2load installed (nghttp2-client)")
        return
    rc, out, err = run(["nghttp", "-v", "-t", "20", srv.base + "/hello"])
    check(rc == 0 and b":status: 200" in out and HELLO in out, "nghttp -v https://.../hello")
    rc, out, err = run(["nghttp", "-n", "-t", "30", "-s", srv.base + "/big", srv.base + "/big",
                        srv.base + "/stream"])
    check(rc == 0, "nghttp: two /big and /stream multiplexed over TLS")
    for extra in ([], ["--h1"]):
        rc, out, err = run(["h2load"] + extra + ["-n", "2000", "-c", "20", "-m", "10",
                                                 srv.base + "/hello"], timeout=120)
        text = out.decode()
        m = re.search(r"status codes: (\d+) 2xx", text)
        proto = re.search(r"Application protocol: (\S+)", text)
        check(rc == 0 and m is not None and int(m.group(1)) == 2000,
              "h2load %s-n 2000 -c 20 -m 10 over TLS: %s 2xx (%s)"
              % (" ".join(extra) + " " if extra else "", m.group(1) if m else "?",
                 proto.group(1) if proto else "?"))


def test_s_client(srv):
    out = s_client(srv, "-alpn", "h2")
    check("ALPN protocol: h2" in out, "openssl s_client -alpn h2: ALPN protocol: h2")
    out = s_client(srv, "-alpn", "http/1.1")
    check("ALPN protocol: http/1.1" in out, "openssl s_client -alpn http/1.1")
    out = s_client(srv, "-tls1_2", "-alpn", "h2")
    check("ALPN protocol: h2" in out and re.search(r"Protocol\s*: TLSv1.2", out) is not None,
          "TLS 1.2 with ALPN h2")
    out = s_client(srv, "-tls1_3")
    if not check("New, TLSv1.3" in out and "No ALPN negotiated" in out, "TLS 1.3 without ALPN"):
        log(out[-3000:])
    # The server's order picks AES-128-GCM from a client offering AES-256 first (s_client's
    # default order); a client that puts ChaCha20 first (no AES instructions) gets ChaCha20.
    check("Cipher is TLS_AES_128_GCM_SHA256" in out, "TLS 1.3: AES-128-GCM chosen over AES-256")
    out = s_client(srv, "-tls1_3", "-ciphersuites",
                   "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256")
    check("Cipher is TLS_CHACHA20_POLY1305_SHA256" in out, "TLS 1.3: ChaCha20 for a client "
          "that prefers it")
    # A handshake the server refuses gets its alert before the close, not just a closed socket.
    out = s_client(srv, "-tls1_1")
    check("alert protocol version" in out, "TLS 1.1 client: protocol_version alert")
    out = s_client(srv, "-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256")
    check("Cipher is ECDHE-RSA-AES128-GCM-SHA256" in out, "TLS 1.2: AES-128-GCM chosen")
    # a TLS 1.2 client asking to renegotiate is refused (SSL_OP_NO_RENEGOTIATION)
    p = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.tls_port,
                          "-tls1_2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(b"R\n", timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate(timeout=10)
    check(b"RENEGOTIATING" in out and b"no renegotiation" in out,
          "TLS 1.2 renegotiation refused")


def test_python_ssl(srv, big):
    # Pipelined HTTP/1.1 behind a held request, more than the server's input buffer holds: the
    # transport must hold decrypted input back and resume it once the held answer is out.
    s = tls_socket(srv, alpn=["http/1.1"])
    check(s.selected_alpn_protocol() == "http/1.1", "python ssl: ALPN http/1.1")
    held = b"GET /hold?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n"
    many = b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 40 + b"\r\n\r\n"
    last = b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    n = 300  # about 24 KB of heads: several times the 5 KB input buffer
    s.sendall(held + many * (n - 1) + last)
    out = read_until_closed(s, 20)
    s.close()
    check(out.count(b"HTTP/1.1 200 OK\r\n") == n + 1 and out.count(HELLO) == n
          and out.find(b"held 300") < out.find(HELLO),
          "pipelined over TLS: %d responses in order (%d read)" % (n + 1, out.count(HELLO)))

    # a slow reader of several /big: the output soft limit stops reading, then resumes
    s = tls_socket(srv, alpn=["http/1.1"])
    s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * 4
              + b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    time.sleep(0.5)
    out = read_until_closed(s, 60)
    s.close()
    bodies = [p.split(b"\r\n\r\n", 1)[-1][:BIG_LEN] for p in out.split(b"HTTP/1.1 200 OK\r\n")[1:]]
    check(len(bodies) == 5 and all(b == big for b in bodies), "five pipelined /big over TLS with a late reader (%d bytes)"
          % len(out))


def test_bad_clients(srv):
    before = srv.stats()
    out, dt, closed = raw_exchange(srv, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    check(closed and b"HTTP/1.1" not in out and dt < 2,
          "plaintext HTTP on the TLS port: closed after %.3f s" % dt)
    out, dt, closed = raw_exchange(srv, bytes(random.getrandbits(8) for _ in range(517)))
    check(closed and dt < 2, "garbage instead of a ClientHello: closed after %.3f s" % dt)
    out, dt, closed = raw_exchange(srv, b"\x16\x03\x01\x00\x60\x01\x00\x00\x5c" + b"\x01" * 0x5c)
    check(closed and dt < 2, "malformed ClientHello record: closed after %.3f s (%r)"
          % (dt, out[:8]))
    check(srv.stats() >= before + 3, "handshake failures counted in bad_requests (%d -> %d)"
          % (before, srv.stats()))
    out, dt, closed = raw_exchange(srv, b"", timeout=HEADER_TIMEOUT_MS / 1000 + 5)
    check(closed and HEADER_TIMEOUT_MS / 1000 - 0.1 <= dt <= HEADER_TIMEOUT_MS / 1000 + 2,
          "TCP without a ClientHello: closed by header_timeout after %.2f s" % dt)
    out, dt, closed = raw_exchange(srv, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                                   timeout=HEADER_TIMEOUT_MS / 1000 + 5)
    check(closed and HEADER_TIMEOUT_MS / 1000 - 0.1 <= dt <= HEADER_TIMEOUT_MS / 1000 + 2,
          "half a ClientHello, then silence: closed after %.2f s" % dt)
    rc, b, v = curl(srv, "/hello", "--http2")
    check(rc == 0 and b == HELLO and srv.alive(), "server still answers after bad clients")


def subject(srv):
    out = s_client(srv, "-alpn", "h2")
    m = re.search(r"subject=\s*CN\s*=\s*(\S+)", out)
    return m.group(1) if m else None


def test_reload(srv, certdir):
    check(subject(srv) == "localhost", "certificate before reload: CN = localhost")
    staged = swtest.tmpdir("sw-tls-new-")
    make_cert(staged, "reloaded.example")  # slow (RSA key generation): before the clock starts
    # A connection opened before the reload keeps its certificate and keeps working. It makes one
    # request first: a connection that never sent one is closed after header_timeout (1 s).
    old = tls_socket(srv, alpn=["http/1.1"])
    old_der = old.getpeercert(binary_form=True)
    old.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    first = b""
    for _ in range(50):
        first += old.recv(65536)
        if first.endswith(HELLO):
            break
    for name in ("c.pem", "k.pem"):
        shutil.copyfile(os.path.join(staged, name), os.path.join(certdir, name))
    srv.signal(signal.SIGHUP)
    srv.sent_signal = None
    check(wait_for(lambda: "reloaded" in srv.output(), 10) is not None, "SIGHUP: reloaded")
    old.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    out = read_until_closed(old, 10)
    old.close()
    check(first.endswith(HELLO) and out.endswith(HELLO) and old_der is not None,
          "keep-alive connection from before the reload still answers (idle timeout 5 s)")
    check(subject(srv) == "reloaded.example", "new connections see CN = reloaded.example")
    rc, b, v = curl(srv, "/big", "--http2")
    check(rc == 0 and len(b) == BIG_LEN, "serving over h2 after the reload")
    new = tls_socket(srv)
    check(new.getpeercert(binary_form=True) != old_der, "a new connection gets the new certificate")
    new.close()

    with open(os.path.join(certdir, "k.pem"), "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
    srv.signal(signal.SIGHUP)
    srv.sent_signal = None
    m = wait_for(lambda: re.search(r"reload failed: (.*)", srv.output()), 10)
    check(m is not None and "k.pem" in m.group(1), "reload with a broken key fails, naming the "
                                                   "file: %s" % (m.group(1) if m else None))
    check(subject(srv) == "reloaded.example", "the previous certificate stays in use")
    rc, b, v = curl(srv, "/hello", "--http1.1")
    check(rc == 0 and b == HELLO, "serving after the failed reload")
    check(srv.alive(), "server alive after reloads")


def test_bad_files(certdir):
    """httpd_test refuses a missing or mismatched key with a reason naming the file."""
    other = swtest.tmpdir("sw-tls-other-")
    make_cert(other, "other")
    exe = os.path.join(swtest.TEST_BIN, "httpd_test")
    port = pick_port()
    rc, out, err = run([exe, "--tls", str(port), "--cert", os.path.join(certdir, "c.pem"), "--key",
                        os.path.join(other, "k.pem")], timeout=20)
    check(rc != 0 and b"key does not match the certificate" in err and b"k.pem" in err,
          "mismatched key refused: %s" % err.decode().strip())
    rc, out, err = run([exe, "--tls", str(port), "--cert", "/nonexistent/c.pem", "--key",
                        os.path.join(other, "k.pem")], timeout=20)
    check(rc != 0 and b"/nonexistent/c.pem" in err, "missing certificate refused: %s"
          % err.decode().strip())


def main():
    if shutil.which("openssl") is None:
        check(False, "the openssl CLI is installed (Debian package openssl)")
        return
    certdir = swtest.tmpdir("sw-tls-")
    make_cert(certdir, "localhost")
    big = big_body()
    srv = Server(certdir)
    log("httpd_test: plain %d, tls %d" % (srv.port, srv.tls_port))
    test_curl(srv, big)
    test_nghttp_h2load(srv)
    test_s_client(srv)
    test_python_ssl(srv, big)
    test_bad_clients(srv)
    test_reload(srv, certdir)
    test_bad_files(certdir)
    log("stats: " + run(["curl", "-sS", srv.plain + "/stats"])[1].decode().replace("\n", " | "))
    check(not srv.died_badly() and srv.alive(), "server did not crash")
    check(srv.stop_clean(), "httpd_test exits 0 on SIGTERM")


if __name__ == "__main__":
    swtest.run(main)
