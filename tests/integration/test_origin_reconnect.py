#!/usr/bin/env python3
"""Origin acceptance 4: a publisher that disconnects and reconnects gives EXT-X-DISCONTINUITY and
continuing media sequence numbers, and a player that kept polling keeps playing."""
import re
import subprocess
import time

from swtest import (run, Origin, Proc, check, ffmpeg_publish, log, parse_media_playlist,
                    wait_for)


def main():
    o = Origin()
    pub = ffmpeg_publish(o.srt_url("live/rc"), seconds=None, size="640x360", name="pub1")
    check(wait_for(lambda: o.get("/live/rc/v.m3u8", timeout=2)[0] == 200, 15), "stream is up")
    time.sleep(2)
    # A player that keeps polling through the reconnect: ffmpeg's HLS reader, 24 s of media.
    player = Proc(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-stats_period", "1",
                   "-progress", "pipe:1", "-i", o.base + "/live/rc/index.m3u8", "-t", "24",
                   "-f", "null", "-"], "player")
    time.sleep(6)
    before = parse_media_playlist(o.get("/live/rc/v.m3u8")[2].decode())
    pub.stop()
    log("publisher 1 stopped")
    time.sleep(2)
    pub2 = ffmpeg_publish(o.srt_url("live/rc"), seconds=None, size="640x360", name="pub2")

    def has_disc():
        pl = parse_media_playlist(o.get("/live/rc/v.m3u8")[2].decode())
        return pl if any(s["discontinuity"] for s in pl["segments"]) and \
            pl["segments"][-1]["msn"] > before["next_msn"] + 1 else None
    after = wait_for(has_disc, 20, 0.25)
    check(after is not None, "EXT-X-DISCONTINUITY appears after the reconnect")
    if after:
        msns = [s["msn"] for s in after["segments"]]
        check(msns == list(range(msns[0], msns[0] + len(msns))) and msns[0] >= before["media_sequence"],
              f"media sequence continues without going back ({before['media_sequence']}.. then {msns})")
        d = next(s for s in after["segments"] if s["discontinuity"])
        check(d["parts"] and d["parts"][0]["independent"],
              "the discontinuity segment starts with an independent part (a keyframe)")
        a = parse_media_playlist(o.get("/live/rc/a.m3u8")[2].decode())
        check(any(s["discontinuity"] for s in a["segments"]), "the audio playlist has it too")
        seen = [s["msn"] for s in a["segments"]]
        check(seen and seen == list(range(seen[0], seen[0] + len(seen))), "audio msn continue")

    ok = wait_for(lambda: not player.alive(), 60, 0.5)
    out = player.output()
    frames = [int(x) for x in re.findall(r"^frame=(\d+)", out, re.M)]
    log(f"player: exit {player.p.returncode}, frames {frames[-1] if frames else 0}")
    check(ok and player.p.returncode == 0, f"the polling player finishes 24 s of media (rc {player.p.returncode})")
    # Media time follows the wall clock across the 2-3 s gap, so 24 s of timestamps hold about
    # 21 s of frames. Before the reconnect the player could have had at most ~12 s (6 s of play
    # plus the three segments it starts behind live): 500 frames means it played on after it.
    check(frames and frames[-1] >= 500, f"the player decoded through the reconnect ({frames[-1] if frames else 0} frames)")

    pub2.stop()
    check(o.alive() and not o.died_badly(), "origin still running")
    check(o.stop_clean(), "origin exits 0 on SIGTERM")


if __name__ == "__main__":
    run(main)
