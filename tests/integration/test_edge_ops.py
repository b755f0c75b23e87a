#!/usr/bin/env python3
"""The edge's operations: SIGHUP reloads the certificate (a connection opened before keeps working,
a new handshake sees the new certificate; a broken key is refused and the old one stays), the
signing keys ([protect] rotation) and the access log (reopened after logrotate moved it); the
access log has one line per request with every field; changes that need a restart are named in
the log; SIGHUP moves the edge from origin A to origin B (a slow download and an upstream fetch in
flight over the reload complete byte for byte, new objects come from B, health checks leave A for
B; a bad origin URL is refused, named in the log, and B stays; a fetch held by A that fails after
the reload fails over to B); SIGTERM lets a slow download finish (and cuts one only after
drain_timeout), refuses new connections meanwhile, and exits 0."""
import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import swtest
from swtest import check, http_get, parse_metrics, log, wait_for
from test_edge_http import KEY1, Edge, Stub, body_for, sw_sign

KEY2 = "k2-secret-fedcba9876543210"


def make_cert(d, cn):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=" + cn, "-days", "1",
                    "-keyout", os.path.join(d, "k.pem"), "-out", os.path.join(d, "c.pem")],
                   check=True, timeout=60, capture_output=True)


def tls_conn(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(s, server_hostname="localhost")


def get_on(s, path, close=False):
    """One HTTP/1.1 GET on an open socket; returns (status, body)."""
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{'Connection: close' if close else ''}\r\n\r\n"
              .replace("\r\n\r\n\r\n", "\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        if not b:
            return 0, b""
        buf += b
    head, _, rest = buf.partition(b"\r\n\r\n")
    n = int(re.search(rb"content-length: *(\d+)", head, re.I).group(1))
    while len(rest) < n:
        b = s.recv(65536)
        if not b:
            break
        rest += b
    return int(head.split()[1]), rest[:n]


def reload(e, what):
    """SIGHUP; True once the edge logs that it reloaded, False if it logs a failure."""
    def counts():
        out = e.output()
        return out.count("reloaded:"), out.count("reload failed")
    before = counts()
    e.signal(signal.SIGHUP)
    e.sent_signal = None
    ok = wait_for(lambda: counts() != before, 10)
    log(f"reload ({what}): {'done' if ok else 'no answer'}")
    return ok is not None and counts()[0] > before[0]


def tls_and_keys(stub):
    d = swtest.tmpdir("sw-edge-tls-")
    make_cert(d, "before.example")
    staged = swtest.tmpdir("sw-edge-tls-new-")
    make_cert(staged, "after.example")
    tport = swtest.free_port()
    logf = os.path.join(d, "access.log")
    base_conf = (f"tls_listen = 127.0.0.1:{tport}\ntls_cert = {d}/c.pem\ntls_key = {d}/k.pem\n"
                 f"access_log = {logf}\n[protect /sec/]\nkey = k1:{KEY1}\n")
    e = Edge(stub.url, base_conf, name="edge-ops")

    # Certificate reload.
    old = tls_conn(tport)
    old_der = old.getpeercert(binary_form=True)
    st1, _ = get_on(old, "/healthz")
    for n in ("c.pem", "k.pem"):
        shutil.copyfile(os.path.join(staged, n), os.path.join(d, n))
    check(reload(e, "cert"), "SIGHUP with a new certificate: reloaded")
    st2, _ = get_on(old, "/healthz")
    check(st1 == 200 and st2 == 200, f"a TLS connection from before the reload keeps working ({st1}, {st2})")
    new = tls_conn(tport)
    new_der = new.getpeercert(binary_form=True)
    check(new_der != old_der and get_on(new, "/healthz")[0] == 200,
          "a new handshake gets the new certificate")
    new.close()
    old.close()
    with open(os.path.join(d, "k.pem"), "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
    check(not reload(e, "broken") and re.search(r"reload failed.*k\.pem", e.output()) is not None,
          "a broken key: reload failed, naming the file")
    s = tls_conn(tport)
    check(s.getpeercert(binary_form=True) == new_der, "the previous certificate stays in use")
    s.close()
    shutil.copyfile(os.path.join(staged, "k.pem"), os.path.join(d, "k.pem"))

    # Signing keys: add k2 next to k1, then drop k1.
    now = int(time.time())
    t1 = sw_sign(KEY1.encode(), "k1", "/sec/", now + 600)
    t2 = sw_sign(KEY2.encode(), "k2", "/sec/", now + 600)
    check(e.get("/sec/a?" + t1)[0] == 200 and e.get("/sec/a?" + t2)[0] == 403,
          "before: k1 accepted, k2 refused")
    with open(e.conf, "a") as f:
        f.write(f"key = k2:{KEY2}\n")
    check(reload(e, "k2"), "SIGHUP with a second key: reloaded")
    check(e.get("/sec/a?" + t1)[0] == 200 and e.get("/sec/a?" + t2)[0] == 200,
          "rotating: both keys accepted")
    with open(e.conf) as f:
        text = f.read().replace(f"key = k1:{KEY1}\n", "")
    with open(e.conf, "w") as f:
        f.write(text)
    check(reload(e, "drop k1"), "SIGHUP without k1: reloaded")
    st, _, b = e.get("/sec/a?" + t1)
    check(st == 403 and e.get("/sec/a?" + t2)[0] == 200, f"after: k1 refused ({st} {b[:60]!r}), k2 accepted")

    # A change that needs a restart is named, the rest applies.
    with open(e.conf) as f:
        text = f.read().replace("cache_size = 64M", "cache_size = 128M")
    with open(e.conf, "w") as f:
        f.write(text)
    check(reload(e, "cache") and re.search(r"new cache_size=134217728 needs a restart", e.output()),
          "cache_size change: logged as needing a restart")

    # Access log: one line per request, with every field.
    with open(logf) as f:
        before = len(f.read().splitlines())
    reqs = [("/obj/log1", {}), ("/obj/log1", {}), ("/obj/log1", {"Range": "bytes=0-9"}),
            ("/nothing/%2e%2e/x", {}), ("/healthz", {}), ("/sec/a", {})]
    for p, h in reqs:
        http_get(e.base + p, headers=h)
    subprocess.run(["curl", "-s", "-o", "/dev/null", "--http2-prior-knowledge", e.base + "/obj/log1?utm=1"],
                   timeout=20)
    time.sleep(0.2)
    with open(logf) as f:
        lines = f.read().splitlines()[before:]
    check(len(lines) == len(reqs) + 1, f"one access-log line per request ({len(lines)} for {len(reqs) + 1})")
    fields = ("time=", "peer=127.0.0.1:", "proto=", "method=GET", "path=\"", "status=", "bytes=",
              "duration_ms=", "cache=")
    check(all(all(f in ln for f in fields) for ln in lines), "every line has time, peer, protocol, "
          "method, path, status, bytes, duration, cache status")
    if len(lines) == len(reqs) + 1:
        check("cache=MISS" in lines[0] and "upstream_ms=" in lines[0] and "status=200" in lines[0]
              and f"bytes={200000}" in lines[0], f"a miss: cache=MISS, upstream_ms ({lines[0]})")
        check("cache=HIT" in lines[1] and "upstream_ms" not in lines[1], f"a hit ({lines[1]})")
        check("status=206" in lines[2] and "bytes=10 " in lines[2], f"a range ({lines[2]})")
        check("status=400" in lines[3] and 'path="/nothing/%2e%2e/x"' in lines[3], f"a 400 ({lines[3]})")
        check("status=403" in lines[5], f"a 403 ({lines[5]})")
        check("proto=HTTP/2" in lines[6] and 'path="/obj/log1?utm=1"' in lines[6], f"h2c ({lines[6]})")

    # logrotate: move the file, SIGHUP, the next line goes to a new file.
    os.rename(logf, logf + ".1")
    http_get(e.base + "/healthz?after-move")
    check(reload(e, "reopen"), "SIGHUP after the log moved: reloaded")
    http_get(e.base + "/healthz?after-reopen")
    time.sleep(0.2)
    with open(logf + ".1") as f:
        moved = f.read()
    new_lines = open(logf).read().splitlines() if os.path.exists(logf) else []
    check("after-move" in moved and "after-reopen" not in moved and len(new_lines) == 1 and
          "after-reopen" in new_lines[0], f"reopened: the moved file ends before the reload, the new one "
          f"has the next line ({len(new_lines)} lines)")
    check(e.alive() and e.get("/healthz")[0] == 200, "alive and serving after five reloads")
    check(e.stop_clean(), "edge exits 0 after the reloads")


def slow_reader(port, path, rate, first_chunk_cb=None, max_s=30):
    """Downloads `path` at about `rate` bytes/s with a small receive buffer. Returns (bytes, secs)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    buf = b""
    t0 = time.monotonic()
    called = False
    try:
        while time.monotonic() - t0 < max_s:
            b = s.recv(16384)
            if not b:
                break
            buf += b
            if not called and len(buf) > 1_000_000 and first_chunk_cb:
                called = True
                first_chunk_cb()
            time.sleep(len(b) / rate)
            if b"\r\n\r\n" in buf:
                head, _, body = buf.partition(b"\r\n\r\n")
                m = re.search(rb"content-length: *(\d+)", head, re.I)
                if m and len(body) >= int(m.group(1)):
                    break
    except (socket.timeout, ConnectionError):
        pass
    s.close()
    return buf.partition(b"\r\n\r\n")[2], time.monotonic() - t0


def edge_metrics(e):
    return parse_metrics(e.get("/metrics", timeout=3)[2])


def write_origin(e, url):
    with open(e.conf) as f:
        text = re.sub(r"(?m)^origin = .*$", f"origin = {url}", f.read())
    with open(e.conf, "w") as f:
        f.write(text)


def reload_origins():
    a, b = Stub(), Stub()
    e = Edge(a.url, "cache_size = 128M\nworkers = 2\n", name="edge-reload-origins")
    st, _, body = e.get("/obj/r1")
    check(st == 200 and body == body_for("r1") and a.count("/obj/r1") == 1,
          f"origin A only: /obj/r1 from A ({st}, {len(body)} bytes)")
    check(wait_for(lambda: a.count("/healthz") > 0, 5), "A is health-checked")

    # In flight over the reload: a 16 MB download read at 4 MB/s, and a fetch the stub answers
    # half now and half 1.5 s later (the edge's fetch from A is still open during the reload).
    got = {}

    def slow_big():
        got["big"] = slow_reader(e.port, "/big/rl", 4_000_000)[0]

    def slow_half():
        got["slow"] = e.get("/slow/rl", timeout=20)

    threads = [threading.Thread(target=slow_big), threading.Thread(target=slow_half)]
    for t in threads:
        t.start()
    check(wait_for(lambda: a.count("/slow/rl") == 1 and a.count("/big/rl") == 1, 5),
          "both requests reached A")
    write_origin(e, b.url)
    check(reload(e, "origin B"), "SIGHUP with origin B instead of A: reloaded")
    check(f"reload: origins now {b.url}" in e.output(), "the log names the new origin list")
    time.sleep(0.5)  # a health check of A sent before the reload may still arrive
    a_checks = a.count("/healthz")
    time.sleep(2.5)
    check(a.count("/healthz") == a_checks and b.count("/healthz") >= 2,
          f"health checks stopped for A ({a_checks} -> {a.count('/healthz')}) and run on B "
          f"({b.count('/healthz')})")
    log("stopping origin A")
    a.close()
    a.srv.server_close()
    for t in threads:
        t.join(30)
    check(hashlib.sha256(got.get("big", b"")).digest() == hashlib.sha256(body_for("rl", 16_000_000)).digest(),
          f"the 16 MB download in flight over the reload completes ({len(got.get('big', b''))} bytes)")
    st, _, body = got.get("slow", (0, {}, b""))
    check(st == 200 and body == body_for("rl", 100_000),
          f"the fetch from A in flight over the reload completes ({st}, {len(body)} bytes)")

    ok = True
    for i in range(4):  # new connections: both workers
        st, _, body = e.get(f"/obj/new{i}")
        ok = ok and st == 200 and body == body_for(f"new{i}")
        ok = ok and b.count(f"/obj/new{i}") == 1 and a.count(f"/obj/new{i}") == 0
    check(ok, "with A stopped, new objects come from B on every worker")
    m = edge_metrics(e)
    check(m.get(f'shortwave_edge_upstream_healthy{{upstream="{b.url}"}}') == 1 and
          not any(f'upstream="{a.url}"' in k for k in m) and m.get("shortwave_edge_upstream_failovers_total") == 0,
          "metrics: B healthy, A gone, no failover")
    st, hdr, body = e.get("/obj/r1")
    check(st == 200 and body == body_for("r1") and hdr.get("x-cache", "").startswith("HIT"),
          f"what A filled stays cached ({st}, {hdr.get('x-cache')})")

    bad = "http://127.0.0.1:1/not-a-base"
    write_origin(e, bad)
    check(reload(e, "bad origin URL"), "SIGHUP with a bad origin URL: the rest reloads")
    check(re.search(r"reload: origin/parent list refused: bad origin URL: " + re.escape(bad) +
                    r"; the running one stays \(origins " + re.escape(b.url), e.output()) is not None,
          "the bad origin URL is refused, named in the log; B stays")
    st, _, body = e.get("/obj/after-bad")
    check(st == 200 and b.count("/obj/after-bad") == 1, f"and the edge keeps fetching from B ({st})")
    check(e.alive() and e.stop_clean(), "edge exits 0 after the origin reloads")
    b.close()


class Hole:
    """An origin that accepts connections and never answers, until close_all()."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(c)

    def asked(self, path):
        """Whether a request for `path` has arrived on one of the connections."""
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            c.settimeout(0.05)
            try:
                if f"GET {path} ".encode() in c.recv(4096, socket.MSG_PEEK):
                    return True
            except OSError:
                pass
        return False

    def close_all(self):
        self.sock.close()
        with self.lock:
            for c in self.conns:
                c.close()


def reload_then_fail_over():
    hole, b = Hole(), Stub()
    e = Edge(hole.url, name="edge-reload-failover")
    got = {}
    t = threading.Thread(target=lambda: got.update(r=e.get("/obj/held", timeout=20)))
    t.start()
    check(wait_for(lambda: hole.asked("/obj/held"), 5), "a fetch is held by origin A")
    write_origin(e, b.url)
    check(reload(e, "origin B"), "SIGHUP with origin B instead of A: reloaded")
    hole.close_all()
    t.join(20)
    st, _, body = got.get("r", (0, {}, b""))
    check(st == 200 and body == body_for("held") and b.count("/obj/held") == 1,
          f"A fails it after the reload: it fails over to B, from the new list ({st})")
    check(f"trying {b.url}" in e.output(), "the log shows the failover to B")
    check(e.stop_clean(), "edge exits 0")
    b.close()


def drain(stub):
    size = 16_000_000
    want = body_for("big", size)
    e = Edge(stub.url, "cache_size = 128M\n", name="edge-drain")
    st, _, b = e.get("/big/big")
    check(st == 200 and b == want, f"a 16 MB object is cached ({st}, {len(b)})")
    refused = {}

    def on_first():
        e.signal(signal.SIGTERM)
        time.sleep(0.3)
        try:
            socket.create_connection(("127.0.0.1", e.port), timeout=2).close()
            refused["v"] = False
        except OSError:
            refused["v"] = True

    body, secs = slow_reader(e.port, "/big/big", 4_000_000, on_first)
    check(hashlib.sha256(body).digest() == hashlib.sha256(want).digest(),
          f"SIGTERM during a slow download: it completes ({len(body)} bytes in {secs:.1f} s)")
    check(refused.get("v") is True, "no new connections are accepted while draining")
    t0 = time.monotonic()
    ok = wait_for(lambda: not e.alive(), 15)
    check(ok and e.p.returncode == 0, f"then the edge exits 0 ({e.p.returncode}, {time.monotonic() - t0:.1f} s after)")

    # The same over h2c: curl at 4 MB/s, SIGTERM after a second.
    e = Edge(stub.url, "cache_size = 128M\n", name="edge-drain-h2")
    e.get("/big/big")
    out = os.path.join(swtest.tmpdir(), "big")
    c = subprocess.Popen(["curl", "-s", "--http2-prior-knowledge", "--limit-rate", "4M", "-o", out,
                          "-w", "%{http_code} %{http_version}", e.base + "/big/big"],
                         stdout=subprocess.PIPE)
    time.sleep(1.0)
    e.signal(signal.SIGTERM)
    res = c.communicate(timeout=30)[0].decode()
    with open(out, "rb") as f:
        got = f.read()
    check(res == "200 2" and hashlib.sha256(got).digest() == hashlib.sha256(want).digest(),
          f"SIGTERM during an HTTP/2 download: it completes ({res}, {len(got)} bytes)")
    ok = wait_for(lambda: not e.alive(), 15)
    check(ok and e.p.returncode == 0, f"then the edge exits 0 ({e.p.returncode})")

    # A download slower than drain_timeout is cut at drain_timeout, and the edge still exits 0.
    e = Edge(stub.url, "cache_size = 128M\n[http]\ndrain_timeout = 1s\n", name="edge-drain-cut")
    e.get("/big/big")
    t = {}

    def watch():
        e.p.wait(20)
        t["exit"] = time.monotonic()

    def on_first2():
        t["term"] = time.monotonic()
        e.signal(signal.SIGTERM)
        threading.Thread(target=watch, daemon=True).start()

    body, secs = slow_reader(e.port, "/big/big", 1_000_000, on_first2)
    check(len(body) < size, f"a download slower than drain_timeout 1s is cut ({len(body)} of {size} bytes)")
    ok = wait_for(lambda: "exit" in t, 15)
    cut = t.get("exit", 99) - t.get("term", 0)
    check(ok and e.p.returncode == 0 and 0.9 < cut < 4,
          f"cut after drain_timeout, and the edge exits 0 ({e.p.returncode}, {cut:.1f} s after SIGTERM)")


def main():
    stub = Stub()
    tls_and_keys(stub)
    reload_origins()
    reload_then_fail_over()
    drain(stub)
    stub.close()


if __name__ == "__main__":
    swtest.run(main)
