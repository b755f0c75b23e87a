#!/usr/bin/env python3
"""More of the origin: HEVC + Opus end to end, HTTP/2 (h2c) returning the same bytes as HTTP/1.1,
a DASH segment streamed while it is being written, and caller mode (the origin pulls from a remote
SRT listener named in its config)."""
import hashlib
import socket
import subprocess
import time

from swtest import (Origin, Proc, check, ffmpeg_publish, free_udp_port, log, parse_media_playlist,
                    run, wait_for)


def up(o, name):
    return o.get(f"/live/{name}/v.m3u8", timeout=2)[0] == 200


def main():
    pull_port = free_udp_port()
    o = Origin(extra_conf=f"[pull cam]\nurl = srt://127.0.0.1:{pull_port}?latency=120\n")

    # HEVC + Opus.
    hevc = ffmpeg_publish(o.srt_url("live/hevc"), seconds=None, size="640x360", vcodec="libx265",
                          acodec="libopus", name="hevc")
    check(wait_for(lambda: up(o, "hevc"), 20), "HEVC + Opus stream is served")
    st, _, body = o.get("/live/hevc/index.m3u8")
    text = body.decode()
    log(text)
    check("hvc1." in text and "opus" in text, "multivariant says hvc1 and opus")
    r = subprocess.run(["ffmpeg", "-hide_banner", "-v", "error", "-nostdin", "-i",
                        o.base + "/live/hevc/index.m3u8", "-t", "4", "-f", "null", "-"],
                       capture_output=True, timeout=60)
    check(r.returncode == 0 and not r.stderr.strip(),
          f"ffmpeg decodes HEVC + Opus through the origin ({r.stderr.decode()[:200]})")

    # HTTP/2 with prior knowledge returns the same bytes as HTTP/1.1.
    pl = parse_media_playlist(o.get("/live/hevc/v.m3u8")[2].decode())
    seg = pl["segments"][0]["uri"] if pl["segments"] else None
    if seg:
        url = f"{o.base}/live/hevc/{seg}"
        h1 = subprocess.run(["curl", "-sf", "--http1.1", url], capture_output=True, timeout=20).stdout
        h2 = subprocess.run(["curl", "-sf", "--http2-prior-knowledge", url], capture_output=True,
                            timeout=20).stdout
        ng = subprocess.run(["nghttp", "-n", "-s", url], capture_output=True, timeout=20)
        check(h1 and hashlib.sha256(h1).digest() == hashlib.sha256(h2).digest(),
              f"h2c and HTTP/1.1 return the same segment ({len(h1)} bytes)")
        check(ng.returncode == 0, f"nghttp fetches over h2c ({ng.stderr.decode()[:100]})")
        v = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_version}",
                            "--http2-prior-knowledge", url], capture_output=True, timeout=20)
        check(v.stdout == b"2", f"curl saw HTTP/2 ({v.stdout!r})")

    # DASH low latency: the segment being written is sent as it grows, chunked.
    pl = parse_media_playlist(o.get("/live/hevc/v.m3u8")[2].decode())
    nxt = pl["next_msn"] + 1  # the one after the segment in progress: not started yet
    s = socket.create_connection(("127.0.0.1", o.http_port), timeout=10)
    t0 = time.monotonic()
    s.sendall(f"GET /live/hevc/v/{nxt}.m4s HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    first_body_at = None
    while time.monotonic() - t0 < 10:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
        if first_body_at is None and b"\r\n\r\n" in data and len(data.split(b"\r\n\r\n", 1)[1]) > 0:
            first_body_at = time.monotonic() - t0
        if data.endswith(b"\r\n0\r\n\r\n"):
            break
    done_at = time.monotonic() - t0
    s.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode().lower()
    check("transfer-encoding: chunked" in head, "a segment not yet complete is sent chunked")
    check(first_body_at is not None and done_at - first_body_at > 0.5,
          f"its first bytes come well before its last ({first_body_at} s, done at {done_at:.2f} s)")
    full = o.get(f"/live/hevc/v/{nxt}.m4s")[2]
    body = data.split(b"\r\n\r\n", 1)[1]
    dechunked = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        n = int(size_line, 16)
        if n == 0:
            break
        dechunked += rest[:n]
        body = rest[n + 2:]
    check(dechunked == full and len(full) > 0, f"the streamed bytes are the segment's ({len(dechunked)} vs {len(full)})")
    hevc.stop()

    # Caller mode: a remote SRT listener (srt-live-transmit) that the origin connects to.
    enc = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-f", "lavfi", "-i",
         "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine", "-t", "60", "-c:v", "libx264",
         "-preset", "veryfast", "-g", "50", "-c:a", "aac", "-f", "mpegts", "-"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    lst = Proc(["srt-live-transmit", "-q", "file://con", f"srt://127.0.0.1:{pull_port}?mode=listener"],
               "slt-listener", stdin=enc.stdout)
    enc.stdout.close()
    check(wait_for(lambda: up(o, "cam"), 20), "caller mode: the pulled stream is served as 'cam'")
    lst.stop()
    enc.kill()
    check(o.alive() and not o.died_badly(), "origin still running")
    check(o.stop_clean(), "origin exits 0 on SIGTERM")


if __name__ == "__main__":
    run(main)
