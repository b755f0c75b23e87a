#!/usr/bin/env python3
"""The DVR window survives a crash, not only a clean stop: after kill -9 of the origin in the middle
of a segment whose parts players had fetched, a restart keeps every complete segment of the earlier
run in the ?dvr=1 playlists, served byte for byte; the segment in progress (and a file whose index
line never made it) is dropped, and numbering goes on past it, so that no number names two
different media. A torn last line of index.log is skipped."""
import os
import shutil
import signal
import time

from swtest import Origin, check, ffmpeg_publish, parse_media_playlist, run, wait_for

CONF = "[hls]\nsegment_duration = 1s\nlive_segments = 3\n"


def playlist(o, path):
    st, _, body = o.get(path, timeout=3)
    return parse_media_playlist(body.decode()) if st == 200 else None


def gaps(o, path):
    """The media sequence numbers a playlist marks with EXT-X-GAP."""
    st, _, body = o.get(path, timeout=3)
    out, msn, gap = set(), None, False
    for ln in body.decode().splitlines() if st == 200 else []:
        if ln.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            msn = int(ln.split(":", 1)[1])
        elif ln == "#EXT-X-GAP":
            gap = True
        elif ln and not ln.startswith("#"):
            if gap:
                out.add(msn)
            msn, gap = msn + 1, False
    return out


def crash_mid_segment(o, pub):
    """Sends SIGKILL to the origin right after a player fetched a part of the segment in progress;
    returns that segment's number."""
    in_progress = None
    for _ in range(100):
        pl = playlist(o, "/live/dvr/v.m3u8")
        if pl and pl["open_parts"]:
            p = pl["open_parts"][-1]
            st, _, body = o.get(f"/live/dvr/{p['uri']}")
            if st == 200 and body:
                in_progress = p["msn"]
                o.signal(signal.SIGKILL)
                break
        time.sleep(0.05)
    check(in_progress is not None, f"{o.name}: a part of segment {in_progress} in progress was "
                                   f"served, then the origin got SIGKILL")
    if in_progress is not None:
        o.p.wait(5)
    pub.stop()
    check(not o.died_badly(), f"{o.name} died of the SIGKILL we sent, nothing else")
    return in_progress


def fetch_all(o, into):
    """Fetches every complete segment the DVR playlists list, as players do."""
    for k in ("v", "a"):
        pl = playlist(o, f"/live/dvr/{k}.m3u8?dvr=1")
        for s in pl["segments"] if pl else []:
            st, _, body = o.get(f"/live/dvr/{s['uri']}")
            if st == 200 and s["uri"] not in into:
                into[s["uri"]] = (s["msn"], body)


def main():
    o = Origin(extra_conf=CONF)
    pub = ffmpeg_publish(o.srt_url("live/dvr"), seconds=None, size="320x240", gop=30, name="pub1")
    full = wait_for(lambda: (lambda p: p if p and len(p["segments"]) >= 5 else None)(
        playlist(o, "/live/dvr/v.m3u8?dvr=1")), 30, 0.25)
    check(full is not None, "the DVR playlist lists 5 segments")

    # Fetch every complete segment of both tracks, as players of the earlier run did.
    before = {}
    fetch_all(o, before)
    check(len(before) >= 8, f"segments of both tracks fetched before the crash ({len(before)})")

    in_progress = crash_mid_segment(o, pub)
    if in_progress is None:
        return

    data = os.path.join(o.data, "dvr")
    # What a crash can leave besides: a segment renamed into place whose index line was never
    # appended (here the one in progress, made up from an earlier file), and a torn last line.
    last_uri = max((u for u in before if u.startswith("v/")), key=lambda u: before[u][0])
    shutil.copy(os.path.join(data, last_uri), os.path.join(data, "v", f"{in_progress}.m4s"))
    with open(os.path.join(data, "index.log"), "ab") as f:
        f.write(b"seg v 424242 0 90000 17")

    o2 = Origin(data=o.data, name="origin2", extra_conf=CONF)
    same = [u for u, (_, b) in before.items() if o2.get(f"/live/dvr/{u}")[2] == b]
    check(len(same) == len(before),
          f"after the crash every segment fetched before is served byte for byte "
          f"({len(same)} of {len(before)})")
    check(o2.get(f"/live/dvr/v/{in_progress}.m4s")[0] == 404,
          f"the file of segment {in_progress}, with no index line, was dropped (404)")
    check(not os.path.exists(os.path.join(data, "v", f"{in_progress}.m4s")), "and deleted")

    pub2 = ffmpeg_publish(o2.srt_url("live/dvr"), seconds=None, size="320x240", gop=30,
                          name="pub2")
    live = wait_for(lambda: (lambda p: p if p and p["segments"] else None)(
        playlist(o2, "/live/dvr/v.m3u8")), 20, 0.25)
    check(live is not None, "a returning publisher is served after the crash")
    if live:
        first_new = live["segments"][0]["msn"]
        check(in_progress < first_new <= in_progress + 3,
              f"numbering continues past the segment in progress and its unlogged file, not past "
              f"the torn line ({in_progress} -> {first_new})")
        # Audio closes its segment at video's cut, a little after it: wait until both list it.
        def listed(k):
            p = playlist(o2, f"/live/dvr/{k}.m3u8?dvr=1")
            return p if p and first_new in [s["msn"] for s in p["segments"]] else None
        wait_for(lambda: listed("v") and listed("a"), 10, 0.25)
        dvr = {k: playlist(o2, f"/live/dvr/{k}.m3u8?dvr=1") for k in ("v", "a")}
        for k in ("v", "a"):
            p = dvr[k]
            msns = [s["msn"] for s in p["segments"]] if p else []
            old = sorted(m for u, (m, _) in before.items() if u.startswith(k + "/"))
            check(p is not None and set(old) <= set(msns) and first_new in msns,
                  f"{k}.m3u8?dvr=1 lists the earlier run ({old[:1]}..{old[-1:]}) and the new one "
                  f"(from {first_new}): {msns[:1]}..{msns[-1:]}")
            lost = gaps(o2, f"/live/dvr/{k}.m3u8?dvr=1")
            check(in_progress in lost and all(m not in lost for m in old),
                  f"{k}: the lost numbers are EXT-X-GAP ({sorted(lost)}), never a fetched one")
            uris = {s["msn"]: s["uri"] for s in p["segments"]} if p else {}
            changed = [m for u, (m, b) in before.items()
                       if u.startswith(k + "/") and o2.get(f"/live/dvr/{uris.get(m, u)}")[2] != b]
            check(not changed, f"{k}: every number listed before the crash names the same bytes "
                               f"({changed or 'all same'})")
        st, _, body = o2.get("/live/dvr/index.m3u8?dvr=1")
        check(st == 200 and "v.m3u8?dvr=1" in body.decode(), "the DVR multivariant is served")
        st, _, body = o2.get("/live/dvr/manifest.mpd?dvr=1")
        check(st == 200 and body.count(b"<Period") >= 2,
              f"the DVR MPD lists the earlier run's Period and the new one ({st})")
        st, _, body = o2.get(f"/live/dvr/v/{in_progress}.0.m4s")
        check(st == 404, f"no part is served under the number in progress at the crash ({st})")
    # A second crash, with nothing made up this time: what both runs served stays as it was.
    wait_for(lambda: (lambda p: p if p and len(p["segments"]) >= 2 else None)(
        playlist(o2, "/live/dvr/v.m3u8")), 10, 0.25)
    fetch_all(o2, before)
    in_progress2 = crash_mid_segment(o2, pub2)
    if in_progress2 is None:
        return
    o3 = Origin(data=o.data, name="origin3", extra_conf=CONF)
    pub3 = ffmpeg_publish(o3.srt_url("live/dvr"), seconds=None, size="320x240", gop=30,
                          name="pub3")
    live = wait_for(lambda: (lambda p: p if p and p["segments"] else None)(
        playlist(o3, "/live/dvr/v.m3u8")), 20, 0.25)
    first_new = live["segments"][0]["msn"] if live else None
    check(live is not None and in_progress2 < first_new <= in_progress2 + 2,
          f"after a second crash numbering continues past its segment in progress "
          f"({in_progress2} -> {first_new})")
    same = [u for u, (_, b) in before.items() if o3.get(f"/live/dvr/{u}")[2] == b]
    check(len(same) == len(before),
          f"every segment either run served is served byte for byte ({len(same)} of {len(before)})")
    p = playlist(o3, "/live/dvr/v.m3u8?dvr=1")
    msns = [s["msn"] for s in p["segments"]] if p else []
    check(msns and msns[0] == 0 and set(m for _, (m, _) in before.items()) <= set(msns),
          f"the DVR playlist lists both earlier runs ({msns[:1]}..{msns[-1:]})")
    pub3.stop()
    check(o3.alive() and not o3.died_badly(), "origin still running")
    check(o3.stop_clean(), "origin exits 0")


if __name__ == "__main__":
    run(main)
