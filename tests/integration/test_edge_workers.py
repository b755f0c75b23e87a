#!/usr/bin/env python3
"""shortwave-edge with several worker loops (issue 3): one libuv loop per thread, the listen ports
shared with SO_REUSEPORT, one cache and one overlay per process.

Run with --workers 2, then --workers 4 (more loops than this machine's cores):
  (a) both (all) workers serve: connections land on each, as the per-worker counters show;
  (b) 200 concurrent clients, one connection each, on one cold object the origin streams slowly:
      exactly one origin request, and every client gets the origin's bytes;
  (c) websocket viewers whose upgrades reached different workers all receive a pin (one overlay,
      one Redis reader, on the main loop);
  (d) SIGHUP with a new certificate reaches every worker: new handshakes on many connections, which
      land on every worker, all see it; connections from before keep working;
  (f) /metrics totals equal what was sent: requests, bytes out (counted on the wire here), upstream
      fetches and body bytes, the time-to-first-byte histogram count, the per-worker sum;
  (e) SIGTERM exits 0 promptly with keep-alive connections open on every worker.
  (g) bad websocket upgrades, checked on the worker they reach, get their 4xx and are counted once.
Plus bad input for the new key (workers = -1, a word, too many) and the default: one worker per
CPU of the affinity mask (taskset -c 1: one).
"""
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "overlay"))

import swtest  # noqa: E402
from swtest import Proc, check, parse_metrics, free_port, http_get, log, redis_server, run, wait_for  # noqa: E402
from overlay_fixture import node  # noqa: E402

SLOW_SIZE = 1 << 20


def body_for(path, size):
    """Deterministic bytes of `size` for `path`, so a client can check what it got."""
    seed = hashlib.sha256(path.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


class Stub:
    """An origin that counts the requests per path. /obj/SIZE/NAME answers SIZE bytes at once;
    /slow/NAME streams 1 MiB over about a second, so that many clients wait on it."""

    def __init__(self):
        import http.server
        stub = self
        self.hits = {}
        self.lock = threading.Lock()

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                path = self.path.split("?")[0]
                with stub.lock:
                    stub.hits[path] = stub.hits.get(path, 0) + 1
                if path == "/healthz":
                    return self.answer(b"ok\n", slow=False)
                m = re.match(r"^/obj/(\d+)/[\w.-]+$", path)
                if m:
                    return self.answer(body_for(path, int(m.group(1))), slow=False)
                if re.match(r"^/slow/[\w.-]+$", path):
                    return self.answer(body_for(path, SLOW_SIZE), slow=True)
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()

            def answer(self, body, slow):
                self.send_response(200)
                self.send_header("content-type", "application/octet-stream")
                self.send_header("cache-control", "max-age=60")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                step = 64 * 1024 if slow else len(body) or 1
                for i in range(0, len(body), step):
                    self.wfile.write(body[i:i + step])
                    self.wfile.flush()
                    if slow:
                        time.sleep(0.06)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.srv.server_address[1]}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def count(self, path):
        with self.lock:
            return self.hits.get(path, 0)


def make_cert(d, cn):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=" + cn, "-days", "1",
                    "-keyout", os.path.join(d, "k.pem"), "-out", os.path.join(d, "c.pem")],
                   check=True, timeout=60, capture_output=True)


class Edge(Proc):
    def __init__(self, origin, workers, redis_url, certdir):
        self.port, self.tls_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}"
        self.workers = workers
        d = swtest.tmpdir("sw-edge-workers-")
        self.conf = os.path.join(d, "edge.conf")
        with open(self.conf, "w") as f:
            f.write(f"listen = 127.0.0.1:{self.port}\norigin = {origin}\nworkers = {workers}\n"
                    f"cache_size = 64M\nlog_level = info\nedge_name = edge-w\nredis = {redis_url}\n"
                    "forward_prefixes = /\n"  # the stub serves /obj/ and /slow/
                    f"tls_listen = 127.0.0.1:{self.tls_port}\ntls_cert = {certdir}/c.pem\n"
                    f"tls_key = {certdir}/k.pem\n[http]\ndrain_timeout = 3s\n")
        super().__init__([os.path.join(swtest.BIN, "shortwave-edge"), "-c", self.conf],
                         f"edge-w{workers}")
        ok = wait_for(lambda: http_get(self.base + "/healthz", timeout=1)[0] == 200 or not self.alive(), 15)
        if not ok or not self.alive():
            raise RuntimeError(f"edge did not start:\n{self.output()}")

    def metrics(self):
        """(metrics dict, bytes of the whole response on the wire)."""
        raw = raw_get(self.port, "/metrics")
        return parse_metrics(raw.partition(b"\r\n\r\n")[2]), len(raw)

    def per_worker(self):
        m, _ = self.metrics()
        return [m.get(f'shortwave_edge_worker_requests_total{{worker="{i}"}}', -1)
                for i in range(self.workers)]


def raw_get(port, path, timeout=10):
    """One GET on a new connection (Connection: close); returns every byte the edge sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        buf = b""
        while True:
            b = s.recv(65536)
            if not b:
                return buf
            buf += b


def status_body(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]) if head else 0, body


def grew(before, after):
    return [a - b for a, b in zip(after, before)]


def tls_conn(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(s, server_hostname="localhost")


def tls_healthz(s):
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    buf = b""
    while b"ok\n" not in buf:
        b = s.recv(4096)
        if not b:
            return False
        buf += b
    return buf.startswith(b"HTTP/1.1 200")


def all_workers_serve(e):
    before = e.per_worker()
    n = 20 * e.workers
    ok = sum(status_body(raw_get(e.port, "/healthz"))[0] == 200 for _ in range(n))
    g = grew(before, e.per_worker())
    log(f"(a) {n} connections over {e.workers} workers: {g} (each count includes a /metrics)")
    check(ok == n, f"(a) {ok}/{n} health checks answered")
    check(all(x > 1 for x in g), f"(a) every worker served some of {n} connections: {g}")
    m, _ = e.metrics()
    check(m.get("shortwave_edge_workers") == e.workers, f"(a) metrics say {e.workers} workers")


def one_fetch_for_200(e, stub):
    path = f"/slow/seg-{e.workers}.m4s"
    before = e.per_worker()
    argv = [os.path.join(swtest.TEST_BIN, "fanout_probe"), "-n", "200", "--timeout", "30000",
            e.base + path]
    r = subprocess.run(argv, capture_output=True, timeout=60)
    recs = [json.loads(ln) for ln in r.stdout.decode().splitlines() if ln.startswith("{")]
    want = hashlib.sha256(body_for(path, SLOW_SIZE)).hexdigest()
    ok = [x for x in recs if x["status"] == 200 and not x["err"] and x["bytes"] == SLOW_SIZE]
    check(len(ok) == 200, f"(b) {len(ok)}/200 clients got 200 and {SLOW_SIZE} bytes")
    check({x["sha256"] for x in ok} == {want}, "(b) every client got exactly the origin's bytes")
    check(stub.count(path) == 1, f"(b) the origin was asked {stub.count(path)} time(s) for {path}")
    g = grew(before, e.per_worker())
    check(all(x > 1 for x in g), f"(b) the 200 clients reached every worker: {g}")
    late = raw_get(e.port, path)
    head = late.partition(b"\r\n\r\n")[0]
    check(status_body(late)[1] == body_for(path, SLOW_SIZE) and
          re.search(rb"(?im)^x-cache: HIT\r?$", head) is not None,
          "(b) a later request is a HIT with the same bytes")


def viewers_get_pin(e, rport):
    before = e.per_worker()
    n = 40
    r = node("fanout", f"{e.ws}/overlay/wk{e.workers}", rport, f"wk{e.workers}", n)
    g = grew(before, e.per_worker())
    log(f"(c) {n} viewers, upgrades per worker {g}; XADD to client max {r.get('max_ms')} ms")
    check(all(x > 0 for x in g), f"(c) the upgrades reached every worker: {g}")
    check(r.get("live") == n and r.get("received") == n and r.get("wrong") == 0,
          f"(c) all {n} viewers went live and got the pin ({r.get('live')}, {r.get('received')})")
    ack = r.get("ack") or {}
    check(ack.get("type") == "cart_ack", f"(c) add_to_cart through a worker acknowledged ({ack})")
    m, _ = e.metrics()
    check(m.get("shortwave_edge_overlay_redis_up") == 1, "(c) the one overlay is connected")


def reload_cert(e, certdir, staged):
    old = [tls_conn(e.tls_port) for _ in range(4)]
    old_der = old[0].getpeercert(binary_form=True)
    before = e.per_worker()
    for n in ("c.pem", "k.pem"):
        with open(os.path.join(staged, n), "rb") as src, open(os.path.join(certdir, n), "wb") as dst:
            dst.write(src.read())
    # Settings only a restart applies are named in the log, and a password is not.
    with open(e.conf) as f:
        text = f.read()
    text = text.replace(f"workers = {e.workers}", f"workers = {e.workers + 1}")
    text = re.sub(r"redis = redis://", "redis = redis://:hunter2secret@", text)
    text = text.replace("[http]\n", "overlay_send_queue = 300\n[http]\n")
    with open(e.conf, "w") as f:
        f.write(text)
    count0 = e.output().count("reloaded:")
    e.signal(signal.SIGHUP)
    e.sent_signal = None
    check(wait_for(lambda: e.output().count("reloaded:") > count0, 10),
          "(d) SIGHUP: the edge logged reloaded")
    out = e.output()
    check(f"reloaded: {e.workers} worker(s)" in out, f"(d) on {e.workers} workers")
    for what in (f"new workers={e.workers + 1} needs a restart", "new overlay_send_queue=300 needs a restart",
                 "new redis=redis://***@127.0.0.1"):
        check(what in out, f"(d) the log says: {what}")
    check("hunter2secret" not in out, "(d) the redis password is not logged")
    m, _ = e.metrics()
    check(m.get("shortwave_edge_workers") == e.workers and m.get("shortwave_edge_overlay_redis_up") == 1,
          "(d) the running workers and overlay stay as they were")
    n = 10 * e.workers
    ders = set()
    ok = 0
    for _ in range(n):
        s = tls_conn(e.tls_port)
        ders.add(s.getpeercert(binary_form=True))
        ok += tls_healthz(s)
        s.close()
    g = grew(before, e.per_worker())
    check(ok == n and len(ders) == 1 and old_der not in ders,
          f"(d) {n} new handshakes, spread over the workers {g}, all got the new certificate "
          f"({len(ders)} distinct, old seen: {old_der in ders})")
    check(all(x > 0 for x in g), f"(d) those connections reached every worker: {g}")
    check(all(tls_healthz(s) for s in old), "(d) connections from before the reload keep working")
    for s in old:
        s.close()


def totals(e, stub):
    """What the edge sent, counted here on the wire, against its own /metrics."""
    m0, b0 = e.metrics()
    paths = [f"/obj/{1000 + 37 * i}/t{e.workers}-{i}" for i in range(30)]
    wire = b0  # the first /metrics response is counted once it has gone out
    sent_requests = 1
    intact = 0
    for p in paths:
        raw = raw_get(e.port, p)
        intact += status_body(raw) == (200, body_for(p, int(p.split("/")[2])))
        wire += len(raw)
        sent_requests += 1
    check(intact == len(paths), f"(f) {intact}/{len(paths)} objects came through intact")
    fetched = sum(int(p.split("/")[2]) for p in paths)

    def key(m, k):
        return m.get(k, 0) - m0.get(k, 0)

    def reqs(m):
        return sum(v for k, v in m.items() if k.startswith("shortwave_edge_requests_total{"))

    def workers(m):
        return sum(v for k, v in m.items() if k.startswith("shortwave_edge_worker_requests_total{"))

    # Request counts are shared atomics, current at once; the HTTP and fetcher figures of the
    # other workers are copied at the end of their loop iteration: poll briefly for those.
    got = {}
    polls = 0
    deadline = time.monotonic() + 5
    while True:
        m, b = e.metrics()
        polls += 1
        got = {
            "requests": (reqs(m) - reqs(m0), sent_requests + polls - 1),
            "per-worker sum": (workers(m) - workers(m0), len(paths) + polls),
            "bytes_out": (key(m, "shortwave_edge_bytes_out_total"), wire),
            "fetches": (key(m, "shortwave_edge_upstream_fetches_started_total"), len(paths)),
            "completed": (key(m, "shortwave_edge_upstream_fetches_completed_total"), len(paths)),
            "body bytes": (key(m, "shortwave_edge_upstream_body_bytes_total"), fetched),
            "ttfb count": (key(m, "shortwave_edge_upstream_ttfb_seconds_count"), len(paths)),
            "misses": (key(m, "shortwave_edge_cache_misses_total"), len(paths)),
        }
        if all(a == b_ for a, b_ in got.values()) or time.monotonic() > deadline:
            break
        wire += b
        time.sleep(0.05)
    log(f"(f) after {polls} /metrics poll(s): " + ", ".join(f"{k} {a:.0f}/{w}" for k, (a, w) in got.items()))
    for k, (a, w) in got.items():
        check(a == w, f"(f) metrics {k}: {a:.0f}, sent {w}")
    check(all(stub.count(p) == 1 for p in paths), "(f) the origin saw each object once")


def raw_send(port, data):
    """Sends raw bytes on a new connection; returns the status of the first answer (0: none)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        buf = b""
        while b"\r\n" not in buf:
            b = s.recv(4096)
            if not b:
                break
            buf += b
    m = re.match(rb"HTTP/1\.1 (\d{3})", buf)
    return int(m.group(1)) if m else 0


def bad_upgrades(e):
    """Bad /overlay/ requests, checked on whichever worker they reach, each counted once."""
    up = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    cases = [
        (f"GET /overlay/bad%20room HTTP/1.1\r\nHost: x\r\n{up}{key}\r\n", 404),
        (f"GET /overlay/{'r' * 65} HTTP/1.1\r\nHost: x\r\n{up}{key}\r\n", 404),
        ("GET /overlay/room1 HTTP/1.1\r\nHost: x\r\n\r\n", 426),
        (f"GET /overlay/room1 HTTP/1.1\r\nHost: x\r\n{up}\r\n", 426),
        (f"POST /overlay/room1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n{up}{key}\r\n", 426),
    ]
    m0, _ = e.metrics()
    before = e.per_worker()
    rounds = 4 * e.workers
    wrong = []
    for _ in range(rounds):
        for req, want in cases:
            st = raw_send(e.port, req.encode())
            if st != want:
                wrong.append((req.split("\r\n")[0][:40], st, want))
    n = rounds * len(cases)
    check(not wrong, f"(g) {n} bad upgrades answered with the right 4xx (wrong: {wrong[:3]})")
    g = grew(before, e.per_worker())
    check(all(x > 0 for x in g), f"(g) they reached every worker: {g}")
    m1, _ = e.metrics()
    refused = m1.get("shortwave_edge_overlay_refused_total", 0) - m0.get("shortwave_edge_overlay_refused_total", 0)
    check(refused == n, f"(g) overlay refused_total counted each once across workers: {refused:.0f}/{n}")
    check(e.alive() and status_body(raw_get(e.port, "/healthz"))[0] == 200, "(g) the edge still serves")


def term_with_open_connections(e):
    before = e.per_worker()
    socks = []
    for _ in range(8 * e.workers):
        s = socket.create_connection(("127.0.0.1", e.port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    for s in socks:
        s.recv(4096)
    g = grew(before, e.per_worker())
    check(all(x > 0 for x in g), f"(e) keep-alive connections open on every worker: {g}")
    t0 = time.monotonic()
    rc = e.stop(timeout=15)
    dt = time.monotonic() - t0
    check(rc == 0, f"(e) SIGTERM: exit status {rc}" + ("" if rc == 0 else "\n" + e.output()[-4000:]))
    check(dt < 5, f"(e) it exited promptly ({dt:.2f} s; drain_timeout is 3 s)")
    for s in socks:
        s.close()


def bad_workers_values(stub):
    exe = os.path.join(swtest.BIN, "shortwave-edge")
    for v in ("-1", "two", "100000", ""):
        r = subprocess.run([exe, "--origin", stub.base, "--workers", v, "--check-config"],
                           capture_output=True, timeout=20)
        check(r.returncode == 2 and b"workers" in r.stderr,
              f"--workers {v!r} refused with exit 2 naming the key ({r.returncode}, {r.stderr[:120]!r})")
    r = subprocess.run([exe, "--origin", stub.base, "--workers", "3", "--check-config"],
                       capture_output=True, timeout=20)
    check(r.returncode == 0, f"--workers 3 accepted ({r.returncode})")
    # Workers that cannot start: the others are stopped and joined, and the edge exits 1 at once.
    d = swtest.tmpdir("sw-edge-w-bad-")
    bad = os.path.join(d, "bad.pem")
    with open(bad, "w") as f:
        f.write("not a certificate\n")
    t0 = time.monotonic()
    r = subprocess.run([exe, "--origin", stub.base, "--workers", "3", "--listen",
                        f"127.0.0.1:{free_port()}", "--tls-listen", f"127.0.0.1:{free_port()}",
                        "--tls-cert", bad, "--tls-key", bad], capture_output=True, timeout=30)
    check(r.returncode == 1 and b"cannot load certificate" in r.stderr and time.monotonic() - t0 < 10,
          f"3 workers with a bad certificate: exit 1 with the reason ({r.returncode}, "
          f"{r.stderr[-160:]!r})")


def default_count(stub):
    """No workers key: one per CPU of the affinity mask, so taskset -c 1 gives one."""
    exe = os.path.join(swtest.BIN, "shortwave-edge")
    for prefix, want in (([], len(os.sched_getaffinity(0))), (["taskset", "-c", "1"], 1)):
        port = free_port()
        p = Proc(prefix + [exe, "--listen", f"127.0.0.1:{port}", "--origin", stub.base],
                 "edge-default")
        wait_for(lambda: http_get(f"http://127.0.0.1:{port}/healthz", timeout=1)[0] == 200
                 or not p.alive(), 15)
        st, _, body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=3)
        m = re.search(rb"(?m)^shortwave_edge_workers (\d+)$", body)
        got = int(m.group(1)) if m else None
        check(st == 200 and got == want, f"{' '.join(prefix) or 'no taskset'}: {got} worker(s), "
              f"expected {want}")
        check(p.stop_clean(), "that edge exits 0")


def one_run(workers, stub, rurl, rport):
    log(f"---- {workers} workers")
    certdir, staged = swtest.tmpdir("sw-edge-w-cert-"), swtest.tmpdir("sw-edge-w-new-")
    make_cert(certdir, "before.example")
    make_cert(staged, "after.example")
    e = Edge(stub.base, workers, rurl, certdir)
    all_workers_serve(e)
    one_fetch_for_200(e, stub)
    viewers_get_pin(e, rport)
    reload_cert(e, certdir, staged)
    totals(e, stub)
    bad_upgrades(e)
    check(e.alive() and not e.died_badly(), "the edge is alive")
    term_with_open_connections(e)


def main():
    stub = Stub()
    redis, rurl, rport = redis_server()
    bad_workers_values(stub)
    default_count(stub)
    for workers in (2, 4):
        one_run(workers, stub, rurl, rport)
    check(redis.stop_clean(), "redis exits")
    stub.srv.shutdown()


if __name__ == "__main__":
    run(main)
