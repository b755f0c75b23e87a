#!/usr/bin/env python3
"""Edge hardening (issue 12, item 5): an edge forwards only what players need.

One origin with a publisher, redis-server, an edge with the default forward_prefixes (/live/,
/shorts/), a parent edge, and a child edge that fetches through that parent.

1. Through the edge, the origin's /api/streams (publisher addresses), /api/streams/NAME,
   /api/latency and /metrics are not reachable: 404, or the edge's own /metrics; spellings that
   normalize to them are 404 or 400 too. The edge's own /metrics, /healthz, the watch page and
   an overlay websocket upgrade still work; playlists, the MPD, init segments and segments come
   through byte for byte; the MPD's UTCTiming URL, resolved as a player does, is answered (by the
   edge's clock).
2. Parents: a child edge fetches playlists and segments through a parent edge with the same
   default list; neither forwards /api/streams, even for a request that carries the hop marker.
3. The list is configurable: forward_prefixes = /live/fwd/v.m3u8, /api/latency forwards exactly
   those (a prefix without a trailing / matches that path, or that path followed by / or ?); a
   SIGHUP applies a longer list.
"""
import datetime
import os
import re
import signal
import socket
import urllib.parse

from swtest import (run, Origin, check, ffmpeg_publish, log, parse_media_playlist, redis_server,
                    wait_for)
from test_edge_basic import Edge
from test_edge_http import Edge as ConfEdge

STREAM = "fwd"


def ws_upgrade(base, path):
    """Sends a websocket upgrade; returns the status line of the answer."""
    host, port = base.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        data = b""
        while b"\r\n" not in data and len(data) < 4096:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def iso_age(text):
    """Seconds between now and an ISO 8601 UTC time ("2026-12-08T01:20:06.123Z"), or None."""
    try:
        t = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return abs((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())


def media_paths(o):
    """Paths of the newest segment and its init segment (video), from the origin's playlist."""
    st, _, body = o.get(f"/live/{STREAM}/v.m3u8", timeout=3)
    if st != 200:
        return None
    text = body.decode()
    pl = parse_media_playlist(text)
    init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', text)
    if len(pl["segments"]) < 2 or init is None:
        return None
    return f"/live/{STREAM}/" + pl["segments"][-1]["uri"], f"/live/{STREAM}/" + init.group(1)


def hidden(e, what):
    """The origin's control API and metrics are not reachable through edge `e`."""
    for path in ("/api/streams", f"/api/streams/{STREAM}", "/api/latency", "/api/rooms",
                 "//api/streams", "/api/./streams", "/%61pi/streams", "/livex/x", "/LIVE/x",
                 "/live", "/shortsx"):
        st, _, body = e.get(path, timeout=5)
        check(st == 404 and b"publisher" not in body and b"127.0.0.1" not in body,
              f"{what}: {path} -> {st} {body[:40]!r}")
    for path in (f"/live/../api/streams", f"/live/%2e%2e/api/streams", f"/live/x%2F..%2F..%2Fapi"):
        st, _, body = e.get(path, timeout=5)
        check(st == 400, f"{what}: {path} refused -> {st} {body[:50]!r}")
    st, _, body = e.get("/metrics", timeout=5)
    text = body.decode("utf-8", "replace")
    check(st == 200 and "shortwave_edge_requests_total" in text and "shortwave_origin" not in text,
          f"{what}: /metrics is the edge's own ({st}, no shortwave_origin_* line)")


def main():
    o = Origin()
    pub = ffmpeg_publish(o.srt_url(f"live/{STREAM}"), seconds=90, size="320x240")
    redis, rurl, _ = redis_server()
    e = Edge([o.base], extra=("--redis", rurl))
    paths = wait_for(lambda: media_paths(o), 30, interval=0.2)
    check(paths is not None, "the origin has two segments and an init segment")
    seg, init = paths
    st, _, body = o.get("/api/streams", timeout=3)
    check(st == 200 and b"publisher" in body, "the origin's /api/streams lists the publisher")

    log("1. what an edge forwards, and what it answers itself")
    n0 = e.metrics().get("shortwave_edge_not_forwarded_total", 0)
    hidden(e, "edge")
    n1 = e.metrics().get("shortwave_edge_not_forwarded_total", 0)
    check(n1 - n0 >= 11, f"counted in shortwave_edge_not_forwarded_total ({n0:.0f} -> {n1:.0f})")
    st, _, body = e.get("/healthz")
    check(st == 200 and body == b"ok\n", f"/healthz {st}")
    st, hdr, body = e.get(f"/watch/{STREAM}")
    check(st == 200 and hdr.get("content-type", "").startswith("text/html"),
          f"/watch/{STREAM}: {st} {hdr.get('content-type')}")
    line = ws_upgrade(e.base, f"/overlay/{STREAM}")
    check(line.startswith("HTTP/1.1 101"), f"/overlay/{STREAM} websocket upgrade: {line!r}")
    for path in (f"/live/{STREAM}/index.m3u8", f"/live/{STREAM}/v.m3u8", f"/live/{STREAM}/a.m3u8",
                 f"/live/{STREAM}/manifest.mpd", init, seg, f"/%6Cive/{STREAM}/v.m3u8"):
        st, _, body = e.get(path)
        check(st == 200 and len(body) > 0, f"{path} through the edge: {st}, {len(body)} bytes")
    for path in (init, seg):
        check(e.get(path)[2] == o.get(path)[2], f"{path}: the origin's bytes")
    mpd_url = e.base + f"/live/{STREAM}/manifest.mpd"
    st, _, mpd = e.get(f"/live/{STREAM}/manifest.mpd")
    m = re.search(rb'<UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="([^"]+)"', mpd)
    check(m is not None, f"the MPD names an http-iso UTCTiming source ({m.group(1) if m else None})")
    if m:
        url = urllib.parse.urljoin(mpd_url, m.group(1).decode())
        log(f"a player resolves it to {url}")
        check(url.startswith(e.base), "that source is on the edge")
        st, hdr, body = e.get(url[len(e.base):])
        age = iso_age(body.decode("utf-8", "replace"))
        check(st == 200 and age is not None and age < 5 and hdr.get("cache-control") == "no-store",
              f"UTCTiming through the edge: {st} {body[:40]!r} ({age} s off)")

    log("2. a child edge behind a parent edge")
    parent = Edge([o.base], name="edge-parent")
    child = Edge([o.base], name="edge-child", extra=("--parent", parent.base))
    h0 = parent.metrics().get("shortwave_edge_hop_requests_total", 0)
    for path in (f"/live/{STREAM}/v.m3u8", f"/live/{STREAM}/manifest.mpd", seg):
        st, _, body = child.get(path)
        check(st == 200 and len(body) > 0, f"{path} through child and parent: {st}")
    check(child.get(seg)[2] == o.get(seg)[2], "the segment through the tier is the origin's")
    h1 = parent.metrics().get("shortwave_edge_hop_requests_total", 0)
    check(h1 - h0 >= 3, f"the parent answered the child ({h0:.0f} -> {h1:.0f} hop requests)")
    hidden(child, "child")
    st, _, body = parent.get("/api/streams", headers={"x-sw-hop": "0123456789abcdef"})
    check(st == 404 and b"publisher" not in body,
          f"parent: /api/streams with the hop marker -> {st}")

    log("3. a configured list")
    c = ConfEdge(o.base, f"forward_prefixes = /live/{STREAM}/v.m3u8, /api/latency\n",
                 name="edge-conf")
    for path, want in ((f"/live/{STREAM}/v.m3u8", 200), (f"/live/{STREAM}/a.m3u8", 404),
                       (seg, 404), ("/api/latency", 200), ("/api/latencyx", 404),
                       ("/api/streams", 404)):
        st, _, body = c.get(path, timeout=5)
        check(st == want, f"configured list: {path} -> {st} (want {want})")
    with open(c.conf) as f:
        text = f.read().replace("/api/latency\n", f"/api/latency, /live/{STREAM}/a.m3u8\n")
    with open(c.conf, "w") as f:
        f.write(text)
    c.signal(signal.SIGHUP)
    c.sent_signal = None
    check(wait_for(lambda: c.output().count("reloaded") > 0, 10), "SIGHUP with one more prefix")
    st, _, _ = c.get(f"/live/{STREAM}/a.m3u8", timeout=5)
    check(st == 200, f"after the reload: /live/{STREAM}/a.m3u8 -> {st}")

    for d in (c, child, parent, e):
        check(d.stop_clean(), f"{d.name} exits 0 on SIGTERM")
    pub.stop()
    check(o.stop_clean(), "origin exits 0")
    redis.stop()


if __name__ == "__main__":
    run(main)
