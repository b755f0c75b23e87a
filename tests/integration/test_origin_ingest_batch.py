#!/usr/bin/env python3
"""A demux thread hands its events to the loop in batches (issue 12, item 11).

Each access unit used to take the event list's lock and call uv_async_send() on its own: about
80 hand-offs a second for a 30 fps publisher with AAC (30 video + 47 audio frames). Now a demux
thread collects what one read of its socket gives and appends it in one go, before it blocks
again. /metrics counts the events, the hand-offs and the loop's wake-ups; over a 6 s window of
one 360p30 publisher this checks that hand-offs are well below events (at most 0.7 of them:
before the change they were equal), that the loop wakes at most once per hand-off, that nothing
was lost on the way (the parts keep coming, no sample dropped) and that the batching holds no
frame back: a part's last frame, which waits for no other frame, is servable within 10 ms (the
median) of libsrt making its bytes available. A batch held until the next read would add a frame
interval (33 ms) to that. /api/latency's other figures include the wait for a part to fill and
the encoder's jitter, so they are printed, not checked.
"""
import json
import time

from swtest import run, Origin, check, ffmpeg_publish, log, parse_metrics, wait_for

WINDOW_S = 6.0


def counts(o):
    st, _, body = o.get("/metrics", timeout=5)
    if st != 200:
        return None
    m = parse_metrics(body)
    return {k: m.get("shortwave_origin_ingest_%s_total" % k, -1)
            for k in ("events", "handoffs", "wakeups")}


def stream(o, name):
    st, _, body = o.get("/api/streams/" + name, timeout=5)
    return json.loads(body) if st == 200 else None


def main():
    o = Origin()
    pub = ffmpeg_publish(o.srt_url("live/batch"), seconds=40, size="640x360", rate=30,
                         name="ffmpeg-batch")
    try:
        live = wait_for(lambda: (stream(o, "batch") or {}).get("parts", 0) >= 6, 20, 0.2)
        check(bool(live), "the publisher is live with parts")
        time.sleep(1.0)  # past the first segment, with both tracks flowing
        c0, s0, t0 = counts(o), stream(o, "batch"), time.monotonic()
        time.sleep(WINDOW_S)
        c1, s1, t1 = counts(o), stream(o, "batch"), time.monotonic()
        dt = t1 - t0
        check(c0 is not None and c1 is not None and min(c0.values()) >= 0,
              "/metrics has shortwave_origin_ingest_{events,handoffs,wakeups}_total")
        ev = (c1["events"] - c0["events"]) / dt
        ho = (c1["handoffs"] - c0["handoffs"]) / dt
        wk = (c1["wakeups"] - c0["wakeups"]) / dt
        log("over %.1f s: %.1f events/s, %.1f hand-offs/s, %.1f loop wake-ups/s" % (dt, ev, ho,
                                                                                   wk))
        # 30 video frames and 46.9 AAC frames (48 kHz) a second; allow for the clock of the
        # window and a slow start.
        check(60 <= ev <= 95, "one 30 fps publisher with AAC makes about 77 events/s (%.1f)" % ev)
        check(0 < ho <= 0.7 * ev, "hand-offs are batched: %.1f/s for %.1f events/s (at most "
              "0.7 of them)" % (ho, ev))
        check(0 < wk <= ho + 1, "the loop wakes at most once per hand-off (%.1f/s for %.1f/s)"
              % (wk, ho))
        parts = s1["parts"] - s0["parts"] if s0 and s1 else 0
        # 6 video and 7 audio parts per 2 s segment by default: 39 in 6 s; a window may cut
        # one of each short.
        check(parts >= WINDOW_S / 2 * 13 - 3, "parts keep coming (%d in %.1f s)" % (parts, dt))
        check(s1 is not None and s1.get("dropped_samples", 0) == 0 and
              s1.get("discontinuities", 0) == 0,
              "no sample dropped, no discontinuity: %s" % (
                  {k: (s1 or {}).get(k) for k in ("dropped_samples", "discontinuities")}))
        st, _, body = o.get("/api/latency", timeout=5)
        lat = json.loads(body) if st == 200 else {}
        log("/api/latency: p50 %s, p99 %s ms (for information: a part's first frame waits "
            "for the part to fill, and an encoder sharing a busy machine jitters)" % (
                lat.get("p50_ms"), lat.get("p99_ms")))
        v, a = lat.get("video", {}), lat.get("audio", {})
        check(v.get("samples", 0) > 0 and a.get("samples", 0) > 0 and
              v["samples"] + a["samples"] == lat.get("samples") and
              min(v.get("p99_ms", 0), a.get("p99_ms", 0)) <= lat["p99_ms"] <=
              max(v.get("p99_ms", 0), a.get("p99_ms", 0)),
              "/api/latency by track: video p50 %s p99 %s ms, audio p50 %s p99 %s ms" % (
                  v.get("p50_ms"), v.get("p99_ms"), a.get("p50_ms"), a.get("p99_ms")))
        # A part's last frame waits for no other frame: what it sees is the origin's own delay
        # (reading, demuxing, the hand-off, packaging). ffmpeg sends each frame in a burst that
        # libsrt makes readable at once, 33 ms after the one before, when the demux thread is
        # already blocked in its read (it sleeps 20 ms at most): about a millisecond here. A
        # batch held until the next read would add a frame interval (33 ms), and a clock started
        # at the sleep before a read that then waited for its bytes almost as much.
        last = lat.get("last_frame", {})
        check(0 < last.get("samples", 0) < lat["samples"] and 0 <= last.get("p50_ms", -1) <= 10,
              "/api/latency of parts' last frames (the origin's own delay): p50 %s, p99 %s ms "
              "(%s samples)" % (last.get("p50_ms"), last.get("p99_ms"), last.get("samples")))
    finally:
        pub.stop()
        check(o.stop_clean(), "origin exits 0 on SIGTERM")


run(main)
