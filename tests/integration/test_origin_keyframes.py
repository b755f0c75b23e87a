#!/usr/bin/env python3
"""A publisher that sends one keyframe and then none (issue 12, item 3).

x264 with an infinite keyframe interval and no scene-cut keyframes: before, the origin kept
adding to one open segment (and audio's, which follows video's cuts) for as long as the publisher
stayed, in memory. Now a video segment is cut at four times the target without a keyframe: the
playlists list complete segments of at most that length in both tracks, the origin logs it once
with what to change, and /metrics counts the cuts. The media stays decodable from the start.
"""
import subprocess

from swtest import (run, Origin, check, ffmpeg_publish, log, parse_metrics, parse_media_playlist,
                    wait_for)


def main():
    o = Origin(extra_conf="[hls]\nsegment_duration = 1s\npart_duration = 334ms\n")
    pub = ffmpeg_publish(o.srt_url("live/nokey"), seconds=30, size="320x180",
                         extra_out=["-x264-params", "keyint=infinite:scenecut=0:min-keyint=1"],
                         name="ffmpeg-nokey")
    try:
        def playlist(track):
            st, _, body = o.get(f"/live/nokey/{track}.m3u8", timeout=3)
            return parse_media_playlist(body.decode()) if st == 200 else None

        ok = wait_for(lambda: (playlist("v") or {"segments": []})["segments"][2:], 25)
        v, a = playlist("v"), playlist("a")
        check(bool(ok), f"video segments complete without keyframes ({len(v['segments'])})")
        durs = [s["duration"] for s in v["segments"]]
        check(durs and all(3.9 <= d <= 4.05 for d in durs),
              f"each video segment is cut at 4 x 1 s (within a frame): {durs}")
        firsts = [s["parts"][0] for s in v["segments"][1:] if s["parts"]]
        firsts += v["open_parts"][:1]
        check(firsts and not any(p["independent"] for p in firsts),
              f"segments after the first start without a keyframe (no INDEPENDENT=YES on "
              f"{len(firsts)} first parts)")
        adurs = [s["duration"] for s in a["segments"]]
        check(len(adurs) >= len(durs) - 1 and all(3.9 <= d <= 4.1 for d in adurs),
              f"audio segments follow video's cuts: {adurs}")
        out = o.output()
        check(out.count("no keyframe for 4.0 s") == 1 and "keyframe interval" in out,
              "one log line for many cuts, saying what to change")
        st, _, body = o.get("/metrics")
        m = parse_metrics(body)
        cuts = m.get('shortwave_stream_forced_cuts_total{stream="nokey"}', 0)
        check(cuts >= 3, f"shortwave_stream_forced_cuts_total counts them ({cuts})")
        # The first segment starts with the one keyframe: ffmpeg decodes the playlist from there.
        r = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-i",
                            o.base + "/live/nokey/index.m3u8?dvr=1", "-t", "6", "-f", "null", "-"],
                           capture_output=True, timeout=60)
        check(r.returncode == 0, f"ffmpeg decodes it ({r.stderr.decode()[-300:]})")
    finally:
        pub.stop()
        o.stop_clean()


run(main)
