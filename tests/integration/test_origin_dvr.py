#!/usr/bin/env python3
"""The DVR window: the whole window is addressable (?dvr=1 lists it), segments are written to disk,
and they survive a restart of the origin; a publisher that comes back after the restart continues
the media sequence (it never goes back)."""
import os
import time

from swtest import Origin, check, ffmpeg_publish, parse_media_playlist, run, wait_for


def main():
    o = Origin(extra_conf="[hls]\nlive_segments = 3\n")
    pub = ffmpeg_publish(o.srt_url("live/dvr"), seconds=None, size="320x240", name="pub1")
    check(wait_for(lambda: o.get("/live/dvr/v.m3u8", timeout=2)[0] == 200, 15), "stream up")
    full = wait_for(lambda: (lambda p: p if len(p["segments"]) >= 6 else None)(
        parse_media_playlist(o.get("/live/dvr/v.m3u8?dvr=1")[2].decode())), 30, 0.5)
    check(full is not None, "the DVR playlist grows past the live window")
    live = parse_media_playlist(o.get("/live/dvr/v.m3u8")[2].decode())
    check(len(live["segments"]) <= 3, f"the live playlist keeps a short window ({len(live['segments'])})")
    check(full and full["segments"][0]["msn"] < live["segments"][0]["msn"],
          "the DVR playlist starts earlier than the live one")
    st, _, body = o.get("/live/dvr/index.m3u8?dvr=1")
    check(st == 200 and "v.m3u8?dvr=1" in body.decode(), "the DVR multivariant points at DVR playlists")
    first = full["segments"][0]
    st, _, seg0 = o.get(f"/live/dvr/{first['uri']}")
    check(st == 200 and len(seg0) > 0, "the oldest segment is served")
    time.sleep(1)
    check(os.path.exists(os.path.join(o.data, "dvr", "v", f"{first['msn']}.m4s")),
          "segments are on disk under data/NAME/v/")
    last_msn = parse_media_playlist(o.get("/live/dvr/v.m3u8?dvr=1")[2].decode())["next_msn"]
    pub.stop()
    time.sleep(1)
    check(o.stop_clean(), "origin exits 0")

    # Restart on the same data folder: old segments are still served, from disk.
    o2 = Origin(data=o.data, name="origin2")
    st, hdr, again = o2.get(f"/live/dvr/{first['uri']}")
    check(st == 200 and again == seg0, f"after a restart the same segment is served, byte for byte ({st})")
    st, _, init0 = o2.get(f"/live/dvr/{first['map']}")
    check(st == 200, "and its init segment")
    check(o2.get("/live/dvr/v/999999.m4s")[0] == 404, "an absent segment is 404")
    check(o2.get("/api/streams/dvr")[0] == 200, "the stream is known again, offline")
    pub2 = ffmpeg_publish(o2.srt_url("live/dvr"), seconds=None, size="320x240", name="pub2")
    pl = wait_for(lambda: (lambda r: parse_media_playlist(r[2].decode()) if r[0] == 200 else None)(
        o2.get("/live/dvr/v.m3u8", timeout=2)), 20, 0.25)
    check(pl is not None, "a returning publisher is served after the restart")
    if pl:
        got = pl["segments"][0]["msn"] if pl["segments"] else pl["next_msn"]
        check(got >= last_msn, f"the media sequence continues after the restart ({last_msn} -> {got})")
        new_map = pl["segments"][0]["map"] if pl["segments"] else None
        check(new_map is not None and new_map != first["map"],
              f"the new run's init segment has a new name ({first['map']} -> {new_map})")
        check(o2.get(f"/live/dvr/{first['map']}")[2] == init0,
              "the earlier run's init segment is untouched, so its segments still decode")
        # Both tracks' timelines came back, over the same numbers up to the earlier run's last:
        # audio that had not reached video's last cut when the publisher stopped ends its run
        # with a gap segment of that number instead of one number short (and unrestorable).
        dvr = {}
        for name in ("v", "a"):
            st, _, body = o2.get(f"/live/dvr/{name}.m3u8?dvr=1")
            dvr[name] = parse_media_playlist(body.decode()) if st == 200 else None
        runs = {k: [x["msn"] for x in p["segments"] if x["msn"] < got] if p else []
                for k, p in dvr.items()}
        check(runs["v"] and runs["a"] == runs["v"] and runs["v"][-1] == got - 1,
              f"after the restart the DVR playlists list the earlier run in both tracks, audio's "
              f"too (video {runs['v'][:1]}..{runs['v'][-1:]}, audio {runs['a'][:1]}.."
              f"{runs['a'][-1:]}, the new run from {got})")
    pub2.stop()
    check(o2.alive() and not o2.died_badly(), "origin still running")
    check(o2.stop_clean(), "origin exits 0")


if __name__ == "__main__":
    run(main)
