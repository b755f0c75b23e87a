#!/usr/bin/env python3
"""Edge acceptance 4: the origin dies and comes back; a second origin takes over.

1. Origin + publisher + edge. A segment and the playlist go through the edge (the segment is
   cached). The origin is SIGKILLed: the cached segment is still served, byte for byte; the
   playlist (1 s lifetime), a blocking playlist reload and an uncached segment fail fast with a
   502/504 and a body that says why; the edge marks the origin down and does not crash.
2. The origin restarts on the same ports with the same data folder, the publisher again: the edge
   sees it healthy by itself and serves fresh playlists (newer segments than before the kill).
3. Two origins, each with a publisher of the stream: the first is SIGKILLed and requests still
   succeed through the second, with the edge's failover counter growing."""
import signal
import time

from swtest import (run, Origin, check, ffmpeg_publish, log, parse_media_playlist, wait_for)
from test_edge_basic import Edge, sha

STREAM = "live/fo"
FAST_S = 3.0  # "fail fast": well under the upstream timeouts (connect 2 s, first byte 10 s)


def has_segments(base_get, n=2):
    st, _, body = base_get(f"/{STREAM}/v.m3u8", timeout=2)
    if st != 200:
        return None
    pl = parse_media_playlist(body.decode())
    return pl if len(pl["segments"]) >= n else None


def healthy(e, o):
    return e.metrics().get(f'shortwave_edge_upstream_healthy{{upstream="{o.base}"}}')


def timed_get(e, path):
    t0 = time.monotonic()
    st, hdr, body = e.get(path, timeout=15)
    return st, hdr, body, time.monotonic() - t0


def origin_dies_and_returns():
    o = Origin()
    pub = ffmpeg_publish(o.srt_url(STREAM), seconds=120, size="320x240")
    e = Edge([o.base])
    pl = wait_for(lambda: has_segments(o.get), 30, interval=0.2)
    check(pl is not None, "origin has two segments")
    seg = f"/{STREAM}/" + pl["segments"][-1]["uri"]
    st_o, _, body_o = o.get(seg)
    st, _, body = e.get(seg)
    check(st == 200 and body == body_o, f"{seg} through the edge ({st}, {len(body)} bytes)")
    st, _, plb = e.get(f"/{STREAM}/v.m3u8")
    check(st == 200, f"playlist through the edge ({st})")
    before = parse_media_playlist(plb.decode())["next_msn"]
    check(wait_for(lambda: healthy(e, o) == 1, 5), "the edge reports the origin healthy")

    log("SIGKILL to the origin")
    o.signal(signal.SIGKILL)
    o.p.wait(5)
    pub.stop()
    time.sleep(1.2)  # past the playlist's max-age=1

    st, hdr, body, dt = timed_get(e, seg)
    check(st == 200 and sha(body) == sha(body_o) and dt < FAST_S,
          f"cached segment served with the origin dead ({st}, x-cache {hdr.get('x-cache')}, "
          f"{dt * 1000:.0f} ms)")
    for what, path in (("playlist", f"/{STREAM}/v.m3u8"),
                       ("blocking playlist", f"/{STREAM}/v.m3u8?_HLS_msn={before + 2}&_HLS_part=0"),
                       ("uncached segment", f"/{STREAM}/v/{before + 50}.m4s")):
        st, _, body, dt = timed_get(e, path)
        check(st in (502, 504) and dt < FAST_S and b"upstream" in body,
              f"{what} with the origin dead: {st} in {dt * 1000:.0f} ms, body {body[:70]!r}")
    check(wait_for(lambda: healthy(e, o) == 0, 10), "the edge's health checks mark the origin down")
    check(e.alive(), "the edge is alive")

    log("origin restarts on the same ports with the same data")
    o2 = Origin(data=o.data, http_port=o.http_port, srt_port=o.srt_port, name="origin-again")
    pub2 = ffmpeg_publish(o2.srt_url(STREAM), seconds=120, size="320x240", name="ffmpeg-again")
    t0 = time.monotonic()
    check(wait_for(lambda: healthy(e, o2) == 1, 10),
          f"the edge sees it healthy again by itself ({time.monotonic() - t0:.1f} s)")

    def fresh():
        st, _, body = e.get(f"/{STREAM}/v.m3u8", timeout=5)
        if st != 200:
            return None
        pl = parse_media_playlist(body.decode())
        return pl if pl["next_msn"] > before + 1 else None

    pl2 = wait_for(fresh, 30, interval=0.5)
    check(pl2 is not None, f"fresh playlists through the edge again (next msn "
          f"{pl2['next_msn'] if pl2 else '?'} > {before + 1}, {time.monotonic() - t0:.1f} s "
          "after the restart)")
    if pl2:
        seg2 = f"/{STREAM}/" + pl2["segments"][-1]["uri"]
        st, _, body = e.get(seg2)
        check(st == 200 and body == o2.get(seg2)[2], f"new segment {seg2} equals the origin's")
    check(e.alive() and not e.died_badly(), "the edge never crashed")
    check(e.stop_clean(), "edge exits 0 on SIGTERM")
    pub2.stop()
    check(o2.stop_clean(), "restarted origin exits 0 on SIGTERM")


def failover_to_second():
    a = Origin(name="origin-a")
    b = Origin(name="origin-b")
    pa = ffmpeg_publish(a.srt_url(STREAM), seconds=90, size="320x240", name="ffmpeg-a")
    pb = ffmpeg_publish(b.srt_url(STREAM), seconds=90, size="320x240", name="ffmpeg-b")
    e = Edge([a.base, b.base], name="edge-2origins")
    check(wait_for(lambda: has_segments(a.get) and has_segments(b.get), 30, interval=0.2),
          "both origins have segments")
    st, _, _ = e.get(f"/{STREAM}/v.m3u8")
    check(st == 200, f"playlist through the edge with both origins up ({st})")
    f0 = e.metrics().get("shortwave_edge_upstream_failovers_total", 0)

    log("SIGKILL to the first origin")
    a.signal(signal.SIGKILL)
    a.p.wait(5)
    pa.stop()
    time.sleep(1.2)
    results = []
    for i in range(5):
        st, _, body, dt = timed_get(e, f"/{STREAM}/v.m3u8")
        results.append((st, dt))
        pl = parse_media_playlist(body.decode()) if st == 200 else None
        if pl is None:
            break
        # Each playlist lives 1 s: the next loop is another upstream fetch.
        time.sleep(1.1)
    check(all(st == 200 for st, _ in results),
          f"playlists keep coming through the second origin: {[(s, round(d, 2)) for s, d in results]}")
    seg = f"/{STREAM}/" + pl["segments"][-1]["uri"] if pl else None
    if seg:
        st, _, body = e.get(seg)
        check(st == 200 and body == b.get(seg)[2], f"{seg} comes from the second origin")
    f1 = e.metrics().get("shortwave_edge_upstream_failovers_total", 0)
    check(f1 > f0, f"the failover counter grew ({f0:.0f} -> {f1:.0f})")
    check(wait_for(lambda: healthy(e, a) == 0, 10) and healthy(e, b) == 1,
          "health: first origin down, second up")
    check(e.alive() and not e.died_badly(), "the edge never crashed")
    check(e.stop_clean(), "edge exits 0 on SIGTERM")
    pb.stop()
    check(b.stop_clean(), "second origin exits 0 on SIGTERM")


def main():
    origin_dies_and_returns()
    failover_to_second()


if __name__ == "__main__":
    run(main)
