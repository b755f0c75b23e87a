#!/usr/bin/env python3
"""Origin acceptance 2: a blocking playlist request for a part that does not exist yet is answered
within 50 ms of that part being written; preload-hinted parts are held and served; delta updates
(_HLS_skip=YES) give playlists that an hls.js-style parser accepts and that agree with the full
playlist."""
import statistics
import time

from swtest import run, Origin, check, ffmpeg_publish, log, parse_media_playlist, wait_for


def main():
    o = Origin()
    pub = ffmpeg_publish(o.srt_url("live/blk"), seconds=90, size="640x360")
    ok = wait_for(lambda: o.get("/live/blk/v.m3u8", timeout=2)[0] == 200, 15)
    check(ok, "media playlist served")

    delays = []
    waits = []
    for i in range(40):
        st, hdr, body = o.get("/live/blk/v.m3u8")
        pl = parse_media_playlist(body.decode())
        # The next part: after the last one listed, in the open segment or a new one.
        if pl["open_parts"]:
            msn, part = pl["next_msn"], len(pl["open_parts"])
        else:
            msn, part = pl["next_msn"], 0
        t_req = time.time()
        st, hdr, body = o.get(f"/live/blk/v.m3u8?_HLS_msn={msn}&_HLS_part={part}", timeout=10)
        t_recv = time.time()
        if st != 200:
            check(False, f"blocking request {msn}.{part} answered 200 (got {st})")
            break
        ready = int(hdr.get("x-sw-part-ready-us", "0")) / 1e6
        got = parse_media_playlist(body.decode())
        # Asking for one past the last part of a segment that then completes means asking for
        # the first part of the next segment.
        seg = next((s for s in got["segments"] if s["msn"] == msn), None)
        want = f"v/{msn + 1}.0.m4s" if seg is not None and len(seg["parts"]) == part else f"v/{msn}.{part}.m4s"
        has = any(p["uri"] == want for p in got["parts"])
        if not has:
            check(False, f"blocked playlist contains part {msn}.{part}")
            break
        delays.append((t_recv - ready) * 1000)
        waits.append((t_recv - t_req) * 1000)
    check(len(delays) == 40, f"40 blocking requests answered with the part they asked for ({len(delays)})")
    if delays:
        log(f"answer after part written: p50 {statistics.median(delays):.2f} ms, "
            f"max {max(delays):.2f} ms; held for p50 {statistics.median(waits):.0f} ms")
        check(max(delays) < 50, f"every blocking request answered within 50 ms of its part (max {max(delays):.2f} ms)")
        check(statistics.median(waits) > 20, "requests were really held (not answered from an old playlist)")

    # A request more than two segments ahead is refused.
    pl = parse_media_playlist(o.get("/live/blk/v.m3u8")[2].decode())
    st, _, _ = o.get(f"/live/blk/v.m3u8?_HLS_msn={pl['next_msn'] + 3}")
    check(st == 400, f"_HLS_msn three segments ahead gives 400 (got {st})")
    for q in ("_HLS_part=1", "_HLS_msn=abc", "_HLS_msn=1&_HLS_msn=2", "_HLS_skip=maybe",
              "_HLS_msn=-1", "_HLS_msn=99999999999999999999999"):
        st, _, body = o.get(f"/live/blk/v.m3u8?{q}")
        check(st == 400 and len(body) > 0, f"bad query {q!r} gives 400 with a reason ({st} {body[:60]!r})")

    # The preload hint: ask for the hinted part before it exists; it comes when written.
    pl = parse_media_playlist(o.get("/live/blk/v.m3u8")[2].decode())
    hint = pl["preload_hint"]
    check(hint is not None, f"playlist has a preload hint ({hint})")
    if hint:
        t = time.time()
        st, hdr, body = o.get(f"/live/blk/{hint}", timeout=10)
        check(st == 200 and len(body) > 100 and body[4:8] in (b"moof", b"styp"),
              f"preload-hinted part served when written ({st}, {len(body)} bytes, "
              f"{(time.time() - t) * 1000:.0f} ms)")

    # Delta updates: wait for a DVR playlist longer than CAN-SKIP-UNTIL, then compare.
    def long_enough():
        full = parse_media_playlist(o.get("/live/blk/v.m3u8?dvr=1")[2].decode())
        return full if len(full["segments"]) >= 9 else None
    full = wait_for(long_enough, 40, 0.5)
    check(full is not None, "DVR playlist grows past CAN-SKIP-UNTIL")
    if full:
        msn = full["next_msn"]
        st, _, body = o.get(f"/live/blk/v.m3u8?dvr=1&_HLS_msn={msn}&_HLS_skip=YES", timeout=10)
        text = body.decode()
        try:
            delta = parse_media_playlist(text)
            parsed = True
        except Exception as e:  # the parser's own complaint is the failure
            log(f"delta playlist did not parse: {e}\n{text}")
            parsed = False
        check(st == 200 and parsed, "delta playlist parses")
        if parsed:
            check(delta["skipped"] > 0 and "#EXT-X-SKIP:SKIPPED-SEGMENTS=" in text,
                  f"delta playlist skips old segments ({delta['skipped']})")
            check(delta["media_sequence"] == full["media_sequence"],
                  "delta keeps EXT-X-MEDIA-SEQUENCE")
            full2 = parse_media_playlist(o.get(f"/live/blk/v.m3u8?dvr=1")[2].decode())
            by_msn = {s["msn"]: s for s in full2["segments"]}
            same = all(s["uri"] == by_msn[s["msn"]]["uri"] and
                       abs(s["duration"] - by_msn[s["msn"]]["duration"]) < 1e-6
                       for s in delta["segments"] if s["msn"] in by_msn)
            check(delta["segments"] and same,
                  "segments after the skip match the full playlist's, msn for msn")
            check(delta["segments"][0]["pdt"] is not None and delta["segments"][0]["map"],
                  "first segment after the skip has PROGRAM-DATE-TIME and MAP")

    pub.stop()
    check(o.alive() and not o.died_badly(), "origin still running")
    check(o.stop_clean(), "origin exits 0 on SIGTERM")


if __name__ == "__main__":
    run(main)
