"""Fixtures for tests/integration/test_overlay*.py: a stub origin, an edge with --redis, the node
websocket client (tests/overlay/ws_client.mjs) run as a subprocess, and viewer tokens minted as
edge/token.h specifies (HMAC-SHA256, base64url)."""
import base64
import hashlib
import hmac
import http.server
import json
import os
import queue
import subprocess
import threading
import time
import urllib.parse

import swtest
from swtest import Proc, free_port, http_get, parse_metrics, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("SW_SOURCE", os.path.join(HERE, "..", ".."))
CLIENT = os.path.join(SOURCE, "tests", "overlay", "ws_client.mjs")
VIDEO = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg1.m4s\n"


def stub_origin():
    """An origin that serves /live/*/index.m3u8 and /live/*/seg*.m4s (cacheable 1 s)."""
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.endswith(".m3u8"):
                body, ctype = VIDEO, "application/vnd.apple.mpegurl"
            elif self.path.endswith(".m4s"):
                body, ctype = hashlib.sha256(self.path.encode()).digest() * 2048, "video/mp4"
            else:
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("content-type", ctype)
            self.send_header("cache-control", "max-age=1")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


class Edge(Proc):
    def __init__(self, origin, redis_url, name="edge", conf="", tls=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}"
        d = swtest.tmpdir("sw-edge-ov-")
        cfg = os.path.join(d, "edge.conf")
        text = f"edge_name = {name}\n" + conf
        if tls is not None:
            self.tls_port = free_port()
            self.wss = f"wss://127.0.0.1:{self.tls_port}"
            text += (f"tls_listen = 127.0.0.1:{self.tls_port}\ntls_cert = {tls[0]}\n"
                     f"tls_key = {tls[1]}\n")
        with open(cfg, "w") as f:
            f.write(text)
        argv = [os.path.join(swtest.BIN, "shortwave-edge"), "-c", cfg, "--listen",
                f"127.0.0.1:{self.port}", "--origin", origin, "--redis", redis_url,
                "--cache-size", "16M", "--log-level", "info"]
        super().__init__(argv, name)
        ok = wait_for(lambda: http_get(self.base + "/healthz", timeout=1)[0] == 200 or not self.alive(), 10)
        if not ok or not self.alive():
            raise RuntimeError(f"edge did not start:\n{self.output()}")

    def metrics(self):
        return parse_metrics(http_get(self.base + "/metrics", timeout=3)[2])


def node(mode, *args, timeout=120):
    """Runs one scenario of ws_client.mjs and returns its JSON summary."""
    r = subprocess.run(["node", CLIENT, mode, *map(str, args)], capture_output=True,
                       timeout=timeout, cwd=SOURCE)
    out = r.stdout.decode("utf-8", "replace").strip().splitlines()
    if r.returncode != 0 or not out:
        raise RuntimeError(f"node {mode} failed ({r.returncode}): {r.stdout!r} {r.stderr[-2000:]!r}")
    return json.loads(out[-1])


class Viewer:
    """One interactive websocket client (ws_client.mjs interactive): send lines, read events."""

    def __init__(self, url, origin=None):
        argv = ["node", CLIENT, "interactive", url] + ([origin] if origin else [])
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, cwd=SOURCE, start_new_session=True)
        self.events = []
        self.q = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for ln in self.p.stdout:
            try:
                ev = json.loads(ln)
            except ValueError:
                continue
            self.events.append(ev)
            self.q.put(ev)

    def send(self, obj):
        line = "send " + (obj if isinstance(obj, str) else json.dumps(obj))
        self.p.stdin.write(line.encode() + b"\n")
        self.p.stdin.flush()

    def wait(self, pred, timeout=5):
        """The first event (seen before or after this call) that matches, or None."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for ev in self.events[seen:]:
                if pred(ev):
                    return ev
            seen = len(self.events)
            try:
                self.q.get(timeout=0.05)
            except queue.Empty:
                pass
        return None

    def msg(self, pred, timeout=5):
        ev = self.wait(lambda e: e.get("ev") == "msg" and pred(e["m"]), timeout)
        return ev["m"] if ev else None

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.close()
            except OSError:
                pass
            try:
                self.p.wait(3)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(3)


def mint_token(key, prefix, exp_s, kid=None):
    """A viewer token (edge/token.h): sw_exp, sw_prefix, [sw_kid], sw_sig over PREFIX \\n EXP."""
    msg = f"{prefix}\n{exp_s}".encode()
    sig = base64.urlsafe_b64encode(hmac.new(key.encode(), msg, hashlib.sha256).digest()).rstrip(b"=")
    q = {"sw_exp": str(exp_s), "sw_prefix": prefix}
    if kid:
        q["sw_kid"] = kid
    q["sw_sig"] = sig.decode()
    return urllib.parse.urlencode(q, quote_via=urllib.parse.quote, safe="")


def make_cert(d):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-days", "1", "-keyout", os.path.join(d, "k.pem"), "-out",
                    os.path.join(d, "c.pem")], check=True, timeout=60, capture_output=True)
    return os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
