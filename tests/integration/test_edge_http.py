#!/usr/bin/env python3
"""The edge's HTTP semantics against a stub origin it cannot tell from a real one, plus one check
against the real origin: Range (206 with the exact slice, suffix and open ranges, 416, several
ranges as 206 multipart/byteranges parsed part by part, adjacent ones as one part, overlapping ones
and absurd lists answered 200 whole), Range (one or several) served from an object still filling
once its bytes are there, If-None-Match -> 304, HEAD (Content-Length, no body on the wire), signed URLs per
[protect] prefix (valid, expired, tampered, wrong prefix, wrong address, unprotected path), and the
purge API (a purged key is a MISS again; refused from an address outside admin_allow or without
the admin token)."""
import base64
import functools
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.parse

import swtest
from swtest import Proc, check, free_port, http_get, log, wait_for

SIZE = 200_000
KEY1 = "k1-secret-0123456789abcdef"


@functools.lru_cache(maxsize=16)
def body_for(name, size=SIZE):
    """Deterministic bytes, different at every offset, so a wrong slice cannot pass."""
    out = bytearray()
    i = 0
    seed = name.encode()
    while len(out) < size:
        out += hashlib.sha256(seed + i.to_bytes(4, "big")).digest()
        i += 1
    return bytes(out[:size])


class Stub:
    """An origin with precise control: /obj/* (Content-Length, ETag, max-age=60; /big/*: 16 MB), /slow/* (the
    first half, then the rest 1.5 s later), /chunked/* (no length, two chunks 1 s apart),
    /sec/*, /ipsec/* and /open/* (small objects). Counts requests per path."""

    def __init__(self):
        self.counts = {}
        self.lock = threading.Lock()
        stub = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                path = self.path.split("?")[0]
                with stub.lock:
                    stub.counts[path] = stub.counts.get(path, 0) + 1
                name = path.rsplit("/", 1)[-1]
                if path.startswith("/chunked/"):
                    data = body_for(name, 100_000)
                    self.send_response(200)
                    self.send_header("cache-control", "max-age=60")
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    for part in (data[:50_000], data[50_000:]):
                        self.wfile.write(b"%x\r\n" % len(part) + part + b"\r\n")
                        self.wfile.flush()
                        time.sleep(1.0)
                    self.wfile.write(b"0\r\n\r\n")
                    return
                size = 100_000 if path.startswith("/slow/") else SIZE
                if path.startswith("/big/"):
                    size = 16_000_000
                if path.startswith(("/sec/", "/ipsec/", "/open/")):
                    size = 1000
                data = body_for(name, size)
                self.send_response(200)
                self.send_header("cache-control", "max-age=60")
                self.send_header("etag", f'"v1-{name}"')
                self.send_header("content-type", "application/octet-stream")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                if path.startswith("/slow/"):
                    self.wfile.write(data[:50_000])
                    self.wfile.flush()
                    time.sleep(1.5)
                    self.wfile.write(data[50_000:])
                else:
                    self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def count(self, path):
        with self.lock:
            return self.counts.get(path, 0)

    def close(self):
        self.srv.shutdown()


class Edge(Proc):
    """shortwave-edge with a config file written into a fresh folder."""

    def __init__(self, origin, conf="", name="edge"):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.dir = swtest.tmpdir("sw-edge-conf-")
        self.conf = os.path.join(self.dir, "edge.conf")
        with open(self.conf, "w") as f:
            # The stub origins serve /obj/, /sec/, /big/...: forward every path, the edge's
            # behaviour before forward_prefixes (test_edge_paths tests the default list).
            f.write(f"listen = 127.0.0.1:{self.port}\norigin = {origin}\ncache_size = 64M\n"
                    "forward_prefixes = /\n" + conf)
        super().__init__([os.path.join(swtest.BIN, "shortwave-edge"), "-c", self.conf], name)
        ok = wait_for(lambda: http_get(self.base + "/healthz", timeout=1)[0] == 200 or not self.alive(), 10)
        if not ok or not self.alive():
            raise RuntimeError(f"edge did not start:\n{self.output()}")

    def get(self, path, **kw):
        return http_get(self.base + path, **kw)


def raw(port, data, timeout=5, src=None):
    """Sends raw bytes, returns everything read until the server closes or `timeout` passes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(src, 0) if src else None)
    s.sendall(data)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except socket.timeout:
        pass
    except ConnectionResetError:
        # The server answered and closed with our bytes unread: the kernel resets the
        # connection, and may drop its answer with it.
        out += b"<reset>"
    s.close()
    return out


def request(port, method, path, headers=None, body=None, src=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                   source_address=(src, 0) if src else None)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    c.close()
    return out


def multipart(h, b):
    """Reads a multipart/byteranges body strictly (RFC 9110 section 14.6, RFC 2046 section 5.1):
    each part's length comes from its Content-Range, and the delimiter must follow it exactly.
    Returns [(content-range, content-type or None, bytes)]; raises ValueError on any deviation."""
    m = re.fullmatch(r"multipart/byteranges; boundary=([0-9A-Za-z'()+_,./:=?-]{1,70})",
                     h.get("content-type", ""))
    if not m:
        raise ValueError(f"content-type {h.get('content-type')!r}")
    delim = b"--" + m.group(1).encode()
    if not b.startswith(delim + b"\r\n"):
        raise ValueError(f"no opening delimiter: {b[:40]!r}")
    pos, parts = len(delim) + 2, []
    while True:
        end = b.find(b"\r\n\r\n", pos)
        if end < 0:
            raise ValueError(f"part {len(parts)}: no end of its header fields")
        fields = {}
        for line in b[pos:end].decode("latin-1").split("\r\n"):
            name, colon, value = line.partition(":")
            if not colon:
                raise ValueError(f"part {len(parts)}: bad field {line!r}")
            fields[name.strip().lower()] = value.strip()
        cr = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", fields.get("content-range", ""))
        if not cr:
            raise ValueError(f"part {len(parts)}: content-range {fields.get('content-range')!r}")
        pos = end + 4 + int(cr.group(2)) - int(cr.group(1)) + 1
        parts.append((cr.group(0), fields.get("content-type"), b[end + 4:pos]))
        if b[pos:pos + 2 + len(delim)] != b"\r\n" + delim:
            raise ValueError(f"part {len(parts) - 1}: no delimiter after its bytes")
        pos += 2 + len(delim)
        if b[pos:] == b"--\r\n":
            return parts
        if b[pos:pos + 2] != b"\r\n":
            raise ValueError(f"after part {len(parts) - 1}: {b[pos:pos + 10]!r}")
        pos += 2


def expect_parts(h, b, full, spans, ctype="application/octet-stream"):
    """True if (h, b) is a multipart/byteranges answer carrying exactly `spans` (inclusive
    (first, last) pairs) of `full`, in that order, with a Content-Length equal to the body's."""
    try:
        parts = multipart(h, b)
    except ValueError as err:
        log(f"multipart: {err}")
        return False
    want = [(f"bytes {a}-{z}/{len(full)}", ctype, full[a:z + 1]) for a, z in spans]
    if parts != want:
        log(f"multipart parts: {[(cr, ct, len(d)) for cr, ct, d in parts]}")
    return parts == want and h.get("content-length") == str(len(b)) and "content-range" not in h


def sw_sign(key: bytes, kid: str, prefix: str, exp: int, client_ip: str = None) -> str:
    """The README's minting snippet, verbatim."""
    msg = f"{prefix}\n{exp}" + (f"\n{client_ip}" if client_ip else "")
    sig = hmac.new(key, msg.encode(), hashlib.sha256).digest()
    q = {"sw_exp": exp, "sw_prefix": prefix, "sw_kid": kid}
    if client_ip:
        q["sw_ip"] = 1
    q["sw_sig"] = base64.urlsafe_b64encode(sig).rstrip(b"=").decode()
    return urllib.parse.urlencode(q, quote_via=urllib.parse.quote, safe="")


def ranges(e, stub):
    full = body_for("a")
    st, h, b = e.get("/obj/a", headers={"Range": "bytes=100-199"})
    check(st == 206 and b == full[100:200] and h.get("content-range") == f"bytes 100-199/{SIZE}"
          and h.get("content-length") == "100",
          f"Range 100-199 on a miss -> 206 with the slice ({st}, {h.get('content-range')}, {len(b)} bytes)")
    st, h, b = e.get("/obj/a", headers={"Range": "bytes=1000-5999"})
    # The miss above answered as soon as its bytes were in; the fetch may still be running.
    check(st == 206 and b == full[1000:6000] and h.get("x-cache") in ("HIT", "HIT-FILLING"),
          f"Range 1000-5999 on a cached object -> the slice ({st}, {h.get('x-cache')})")
    st, h, b = e.get("/obj/a", headers={"Range": "bytes=-500"})
    check(st == 206 and b == full[-500:] and h.get("content-range") == f"bytes {SIZE - 500}-{SIZE - 1}/{SIZE}",
          f"suffix range -500 -> the last 500 bytes ({st}, {h.get('content-range')})")
    st, h, b = e.get("/obj/a", headers={"Range": f"bytes={SIZE - 1000}-"})
    check(st == 206 and b == full[-1000:], f"open range {SIZE - 1000}- -> the tail ({st}, {len(b)})")
    st, h, b = e.get("/obj/a", headers={"Range": f"bytes=0-{SIZE * 10}"})
    check(st == 206 and b == full and h.get("content-range") == f"bytes 0-{SIZE - 1}/{SIZE}",
          f"a last position past the end is clipped ({st}, {h.get('content-range')})")
    st, h, b = e.get("/obj/a", headers={"Range": f"bytes={SIZE}-{SIZE + 10}"})
    check(st == 416 and h.get("content-range") == f"bytes */{SIZE}" and b == b"",
          f"range past the end -> 416 with bytes */{SIZE} ({st}, {h.get('content-range')})")
    st, h, b = e.get("/obj/a", headers={"Range": "bytes=0-9,20-29"})
    check(st == 206 and expect_parts(h, b, full, [(0, 9), (20, 29)]) and h.get("accept-ranges") == "bytes",
          f"two ranges -> 206 multipart/byteranges, each part its slice ({st}, {h.get('content-type')}, "
          f"{len(b)} bytes)")
    boundary = h.get("content-type")
    st, h, b = e.get("/obj/a", headers={"Range": f"bytes={SIZE - 100}-,0-0,5000-5999"})
    check(st == 206 and expect_parts(h, b, full, [(SIZE - 100, SIZE - 1), (0, 0), (5000, 5999)]),
          f"three ranges, suffix first -> three parts in the client's order ({st}, {len(b)} bytes)")
    check(h.get("content-type") != boundary, f"a new boundary per response ({h.get('content-type')})")
    sixteen = [(i * 1000, i * 1000 + 9) for i in range(16)]
    st, h, b = e.get("/obj/a", headers={"Range": "bytes=" + ",".join(f"{a}-{z}" for a, z in sixteen)})
    check(st == 206 and expect_parts(h, b, full, sixteen), f"16 ranges -> 16 parts ({st})")
    st, h, b = e.get("/obj/a", headers={"Range": f"bytes=0-9,{SIZE}-{SIZE + 5},100-109"})
    check(st == 206 and expect_parts(h, b, full, [(0, 9), (100, 109)]),
          f"two ranges and an unsatisfiable one -> the two parts ({st})")
    st, h, b = e.get("/obj/a", headers={"Range": f"bytes=0-9,{SIZE}-"})
    check(st == 206 and b == full[:10] and h.get("content-range") == f"bytes 0-9/{SIZE}" and
          h.get("content-type") == "application/octet-stream",
          f"one range left after dropping an unsatisfiable one -> a plain 206 ({st}, {h.get('content-type')})")
    st, h, b = e.get("/obj/a", headers={"Range": "bytes=0-99,100-199"})
    check(st == 206 and b == full[:200] and h.get("content-range") == f"bytes 0-199/{SIZE}",
          f"adjacent ranges coalesce into a plain 206 ({st}, {h.get('content-range')})")
    st, h, b = e.get("/obj/a", headers={"Range": "bytes=0-99,50-150"})
    check(st == 200 and b == full, f"overlapping ranges -> 200 whole ({st})")
    st, h, b = e.get("/obj/a", headers={"Range": "bytes=0-9,20-29", "If-Range": '"v1-a"'})
    check(st == 206 and expect_parts(h, b, full, [(0, 9), (20, 29)]),
          f"If-Range with our ETag, two ranges -> 206 ({st})")
    st, h, b = e.get("/obj/a", headers={"Range": "bytes=0-9,20-29", "If-Range": '"other"'})
    check(st == 200 and b == full, f"If-Range with another ETag, two ranges -> 200 whole ({st})")
    absurd = "bytes=" + ",".join(f"{i}-{i}" for i in range(0, 2400, 2))
    t0 = time.monotonic()
    st, h, b = e.get("/obj/a", headers={"Range": absurd})
    check(st == 200 and b == full and time.monotonic() - t0 < 3,
          f"1200 ranges -> 200 whole, no per-range work ({st}, {time.monotonic() - t0:.2f} s)")
    st, h, b = e.get("/obj/a", headers={"Range": "items=0-9"})
    check(st == 200 and b == full, f"another unit -> 200 whole ({st})")
    st, h, b = e.get("/obj/a", headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    check(st == 200 and b == full, f"If-Range with another ETag -> 200 whole ({st})")
    st, h, b = e.get("/obj/a", headers={"Range": "bytes=0-9", "If-Range": '"v1-a"'})
    check(st == 206 and b == full[:10], f"If-Range with our ETag -> 206 ({st})")
    check(stub.count("/obj/a") == 1, f"all of it from one origin request ({stub.count('/obj/a')})")

    # An object still filling: bytes already there go out at once, later ones as they arrive.
    slow = body_for("b", 100_000)
    res = {}

    def fetch(tag, rng):
        t = time.monotonic()
        res[tag] = e.get("/slow/b", headers={"Range": rng}) + (time.monotonic() - t,)

    th = threading.Thread(target=fetch, args=("whole", "bytes=0-"))
    th.start()
    time.sleep(0.4)  # the first half is in the edge, the rest is 1.1 s away
    fetch("early", "bytes=1000-1999")
    th2 = threading.Thread(target=fetch, args=("late", "bytes=90000-90999"))
    th2.start()
    th3 = threading.Thread(target=fetch, args=("multi", "bytes=1000-1999,90000-90999,0-9"))
    th3.start()
    th.join(10)
    th2.join(10)
    th3.join(10)
    st, h, b, dt = res["early"]
    check(st == 206 and b == slow[1000:2000] and h.get("x-cache") == "HIT-FILLING" and dt < 0.8,
          f"Range inside the bytes already there, while filling: 206 at once ({st}, {h.get('x-cache')}, {dt:.2f} s)")
    st, h, b, dt = res["late"]
    check(st == 206 and b == slow[90000:91000] and dt > 0.5,
          f"Range past what arrived: answered once the bytes come ({st}, {dt:.2f} s)")
    check(res["whole"][0] == 206 and res["whole"][2] == slow, "the fetcher's own open range is whole")
    st, h, b, dt = res["multi"]
    check(st == 206 and expect_parts(h, b, slow, [(1000, 1999), (90000, 90999), (0, 9)]) and dt > 0.5,
          f"several ranges while filling: multipart, the later part once its bytes come ({st}, {dt:.2f} s)")

    # A chunked origin answer has no length while it fills: Range is ignored (200 whole); once
    # complete, Range works.
    ch = body_for("c", 100_000)
    res2 = {}
    th = threading.Thread(target=lambda: res2.setdefault("w", e.get("/chunked/c")))
    th.start()
    time.sleep(0.4)
    st, h, b = e.get("/chunked/c", headers={"Range": "bytes=0-99"})
    th.join(10)
    check(st == 200 and b == ch and "accept-ranges" not in h,
          f"Range on an object of unknown length still filling -> 200 whole ({st}, {len(b)})")
    st, h, b = e.get("/chunked/c", headers={"Range": "bytes=0-99"})
    check(st == 206 and b == ch[:100] and h.get("content-range") == "bytes 0-99/100000",
          f"... and 206 once it is complete ({st}, {h.get('content-range')})")


def conditional_and_head(e):
    full = body_for("a")
    st, h, b = e.get("/obj/a", headers={"If-None-Match": '"v1-a"'})
    check(st == 304 and b == b"" and h.get("etag") == '"v1-a"',
          f"If-None-Match with the ETag -> 304, no body ({st}, etag {h.get('etag')})")
    st, h, b = e.get("/obj/a", headers={"If-None-Match": 'W/"v1-a", "x"'})
    check(st == 304, f"weak comparison in a list -> 304 ({st})")
    st, h, b = e.get("/obj/a", headers={"If-None-Match": '"v0-a"'})
    check(st == 200 and b == full, f"another ETag -> 200 ({st})")
    st, h, b = e.get("/obj/a", headers={"If-None-Match": "*"})
    check(st == 304, f"If-None-Match: * -> 304 ({st})")
    st, h, b = e.get("/obj/a", headers={"If-None-Match": '"v1-a"', "Range": "bytes=0-9"})
    check(st == 304, f"If-None-Match wins over Range ({st})")
    # HEAD: the same head as GET, and not one body byte on the wire: the next pipelined response
    # must start right after the head.
    out = raw(e.port, b"HEAD /obj/a HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n"
              b"Connection: close\r\n\r\n")
    head, _, rest = out.partition(b"\r\n\r\n")
    check(head.startswith(b"HTTP/1.1 200") and f"content-length: {SIZE}".encode() in head.lower()
          and b"accept-ranges: bytes" in head.lower() and rest.startswith(b"HTTP/1.1 200"),
          f"HEAD: 200, Content-Length {SIZE}, no body before the next response ({rest[:12]!r})")
    st, h, b = request(e.port, "HEAD", "/obj/a", {"Range": "bytes=0-9"})
    check(st == 206 and h.get("content-length") == "10" and b == b"",
          f"HEAD with Range: 206, Content-Length 10 ({st}, {h.get('content-length')})")
    st, gh, gb = request(e.port, "GET", "/obj/a", {"Range": "bytes=10-19,-5"})
    st2, h, b = request(e.port, "HEAD", "/obj/a", {"Range": "bytes=10-19,-5"})
    check(st == 206 and expect_parts(gh, gb, full, [(10, 19), (SIZE - 5, SIZE - 1)]) and st2 == 206 and
          h.get("content-length") == str(len(gb)) and h.get("content-type", "").startswith("multipart/byteranges")
          and b == b"", f"HEAD with two ranges: 206, the GET's Content-Length ({st2}, {h.get('content-length')}, "
          f"GET body {len(gb)})")

    # The same over h2c (curl with prior knowledge).
    d = swtest.tmpdir()
    out = os.path.join(d, "b")

    def curl(*args):
        r = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "--max-time", "10", "-o", out,
                            "-D", "-", "-w", "%{http_version}"] + list(args) + [e.base + "/obj/a"],
                           capture_output=True, timeout=20)
        with open(out, "rb") as f:
            return r.stdout.decode("latin-1"), f.read()

    hd, b = curl("-r", "5000-5099")
    check(hd.startswith("HTTP/2 206") and f"content-range: bytes 5000-5099/{SIZE}" in hd and
          b == full[5000:5100], f"h2c Range -> 206 with the slice ({hd[:12]!r}, {len(b)} bytes)")
    hd, b = curl("-r", "5000-5099,0-99")
    fields = dict(line.split(": ", 1) for line in hd.split("\r\n")[1:] if ": " in line)
    check(hd.startswith("HTTP/2 206") and expect_parts(fields, b, full, [(5000, 5099), (0, 99)]),
          f"h2c two ranges -> 206 multipart/byteranges ({hd[:12]!r}, {fields.get('content-type')}, {len(b)} bytes)")
    hd, b = curl("-r", f"{SIZE + 5}-")
    check(hd.startswith("HTTP/2 416") and f"content-range: bytes */{SIZE}" in hd, f"h2c 416 ({hd[:12]!r})")
    hd, b = curl("-H", 'If-None-Match: "v1-a"')
    check(hd.startswith("HTTP/2 304") and b == b"", f"h2c If-None-Match -> 304 ({hd[:12]!r})")
    hd, b = curl("-I")  # with -I curl writes the head into the output file too, then nothing
    check(hd.startswith("HTTP/2 200") and f"content-length: {SIZE}" in hd and
          b.startswith(b"HTTP/2 200") and b.endswith(b"\r\n\r\n"),
          f"h2c HEAD: Content-Length {SIZE}, no body ({hd[:12]!r})")


def signed(stub):
    conf = (f"[protect /sec/]\nkey = k1:{KEY1}\n"
            f"[protect /ipsec/]\nkey = k1:{KEY1}\nrequire_ip = yes\n")
    e = Edge(stub.url, conf, name="edge-signed")
    now = int(time.time())
    key = KEY1.encode()
    good = sw_sign(key, "k1", "/sec/room1/", now + 600)
    st, _, b = e.get("/sec/room1/x?" + good)
    check(st == 200 and b == body_for("x", 1000), f"valid token -> 200 ({st})")
    st, _, b = e.get("/sec/room1/x")
    check(st == 403 and b"malformed" in b, f"no token -> 403 malformed ({st} {b[:80]!r})")
    st, _, b = e.get("/sec/room1/x?" + sw_sign(key, "k1", "/sec/room1/", now - 5))
    check(st == 403 and b"expired" in b, f"expired token -> 403 with the reason ({st} {b[:80]!r})")
    bad = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    st, _, b = e.get("/sec/room1/x?" + bad)
    check(st == 403 and b"signature" in b, f"tampered signature -> 403 ({st} {b[:80]!r})")
    longer = good.replace(f"sw_exp={now + 600}", f"sw_exp={now + 6000}")
    st, _, b = e.get("/sec/room1/x?" + longer)
    check(st == 403 and b"signature" in b, f"extended expiry -> 403 ({st})")
    st, _, b = e.get("/sec/room2/x?" + good)
    check(st == 403 and b"prefix" in b, f"token for another prefix -> 403 prefix ({st} {b[:80]!r})")
    st, _, b = e.get("/sec/room1/x?" + sw_sign(b"another-key-0123456789", "k1", "/sec/room1/", now + 600))
    check(st == 403 and b"signature" in b, f"signed with another key -> 403 ({st})")
    st, _, b = e.get("/ipsec/r/x?" + sw_sign(key, "k1", "/ipsec/r/", now + 600, "127.0.0.1"))
    check(st == 200, f"require_ip, token bound to our address -> 200 ({st})")
    st, _, b = e.get("/ipsec/r/x?" + sw_sign(key, "k1", "/ipsec/r/", now + 600, "10.1.2.3"))
    check(st == 403 and b"address" in b, f"token bound to another address -> 403 ({st} {b[:100]!r})")
    st, _, b = e.get("/ipsec/r/x?" + sw_sign(key, "k1", "/ipsec/r/", now + 600))
    check(st == 403 and b"address" in b, f"require_ip and an unbound token -> 403 ({st} {b[:100]!r})")
    st, _, b = e.get("/open/x")
    check(st == 200, f"unprotected path needs no token ({st})")
    st, _, b = e.get("/sec/room1/%2e%2e/x?" + good)
    check(st == 400, f"encoded .. under a protected prefix -> 400 before any token check ({st})")
    check(e.stop_clean(), "signed-URL edge exits 0")


def purge(stub):
    e = Edge(stub.url, name="edge-purge")
    e.get("/obj/p")
    st, h, _ = e.get("/obj/p")
    check(h.get("x-cache") == "HIT", f"cached before the purge ({h.get('x-cache')})")
    st, h, b = request(e.port, "POST", "/api/purge?key=" + urllib.parse.quote("/obj//p?utm=1", safe=""))
    check(st == 200 and json.loads(b) == {"purged": 1}, f"purge key -> {st} {b!r}")
    st, h, _ = e.get("/obj/p")
    check(h.get("x-cache") == "MISS" and stub.count("/obj/p") == 2,
          f"after the purge: MISS, a second origin request ({h.get('x-cache')}, {stub.count('/obj/p')})")
    st, h, b = request(e.port, "POST", "/api/purge?key=/obj/nothing")
    check(st == 200 and json.loads(b) == {"purged": 0}, f"purge of nothing -> 0 ({b!r})")
    for n in ("q1", "q2", "r1"):
        e.get("/obj/" + n)
    st, h, b = request(e.port, "DELETE", "/api/purge", {"Content-Type": "application/x-www-form-urlencoded"},
                       body="prefix=%2Fobj%2Fq")
    check(st == 200 and json.loads(b) == {"purged": 2}, f"purge prefix /obj/q (form body) -> 2 ({b!r})")
    check(e.get("/obj/r1")[1].get("x-cache") == "HIT", "an object outside the prefix stays")
    check(e.get("/obj/q1")[1].get("x-cache") == "MISS", "an object inside the prefix is gone")
    st, _, _ = request(e.port, "GET", "/api/purge?key=/obj/r1")
    check(st == 405, f"GET /api/purge -> 405 ({st})")
    st, _, _ = request(e.port, "POST", "/api/purge")
    check(st == 400, f"purge without key or prefix -> 400 ({st})")
    st, _, b = request(e.port, "POST", "/api/purge?key=/obj/r1", src="127.0.0.2")
    check(st == 403 and b"admin_allow" in b, f"from 127.0.0.2 (not in the default loopback list) -> 403 ({st})")
    check(e.get("/obj/r1")[1].get("x-cache") == "HIT", "the refused purge removed nothing")
    check(e.stop_clean(), "purge edge exits 0")

    e = Edge(stub.url, "admin_allow = 127.0.0.0/8\nadmin_token = s3cret-token\n", name="edge-purge-token")
    e.get("/obj/t")
    st, _, b = request(e.port, "POST", "/api/purge?key=/obj/t", src="127.0.0.2")
    check(st == 403 and b"token" in b, f"allowed address, no token -> 403 ({st} {b!r})")
    st, _, b = request(e.port, "POST", "/api/purge?key=/obj/t", {"Authorization": "Bearer wrong-token!"})
    check(st == 403, f"wrong token -> 403 ({st})")
    st, _, b = request(e.port, "POST", "/api/purge?key=/obj/t", {"Authorization": "Bearer s3cret-token"},
                       src="127.0.0.2")
    check(st == 200 and json.loads(b) == {"purged": 1}, f"127.0.0.2 in 127.0.0.0/8 with the token -> purged ({b!r})")
    m = e.get("/metrics")[2].decode()
    check("shortwave_edge_purged_objects_total 1" in m, "metrics count the purged object")
    check(e.stop_clean(), "token edge exits 0")


def real_origin():
    """One Range check against the real origin and a published stream."""
    from swtest import Origin, ffmpeg_publish, parse_media_playlist
    o = Origin()
    ffmpeg_publish(o.srt_url("live/rg"), seconds=60, size="320x240")
    ok = wait_for(lambda: o.get("/live/rg/v.m3u8", timeout=2)[0] == 200 and
                  len(parse_media_playlist(o.get("/live/rg/v.m3u8")[2].decode())["segments"]) >= 1, 30, 0.2)
    check(ok, "origin has a segment")
    if not ok:
        return
    seg = "/live/rg/" + parse_media_playlist(o.get("/live/rg/v.m3u8")[2].decode())["segments"][0]["uri"]
    _, _, whole = o.get(seg)
    e = Edge(o.base, name="edge-real")
    a, b = len(whole) // 3, len(whole) // 3 + 9999
    st, h, body = e.get(seg, headers={"Range": f"bytes={a}-{b}"})
    check(st == 206 and body == whole[a:b + 1] and h.get("content-range") == f"bytes {a}-{b}/{len(whole)}",
          f"real origin segment: Range {a}-{b} through the edge is the origin's slice ({st}, {len(body)} bytes)")
    check(e.stop_clean(), "edge in front of the real origin exits 0")


def main():
    stub = Stub()
    e = Edge(stub.url)
    ranges(e, stub)
    conditional_and_head(e)
    m = e.get("/metrics")[2].decode()
    check("shortwave_edge_upstream_ttfb_seconds_count" in m and
          "shortwave_edge_upstream_ttfb_seconds_bucket{le=\"+Inf\"}" in m,
          "metrics carry the upstream time-to-first-byte histogram")
    check(e.stop_clean(), "edge exits 0")
    signed(stub)
    purge(stub)
    if os.path.exists(os.path.join(swtest.BIN, "shortwave-origin")):
        real_origin()
    else:
        check(False, "shortwave-origin is built (needed for the real-origin check)")
    stub.close()


if __name__ == "__main__":
    swtest.run(main)
