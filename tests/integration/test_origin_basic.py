#!/usr/bin/env python3
"""Origin acceptance 1: an ffmpeg publisher over SRT is served as LL-HLS and DASH within 3 s;
ffmpeg decodes both through the origin; segments and parts last what the playlist says."""
import json
import os
import subprocess
import time

from swtest import (run, Origin, check, ffmpeg_publish, log, parse_media_playlist, tmpdir,
                    wait_for)


def packets_duration(init, media, tmp):
    """Sum of the packet durations ffprobe reads from init+media (seconds)."""
    path = os.path.join(tmp, "probe.mp4")
    with open(path, "wb") as f:
        f.write(init + media)
    r = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "0", "-show_entries",
                        "packet=duration_time", "-of", "csv=p=0", path],
                       capture_output=True, timeout=30)
    vals = [float(x) for x in r.stdout.decode().split() if x.strip() not in ("", "N/A")]
    return sum(vals), len(vals), r.stderr.decode().strip()


def main():
    o = Origin()
    t0 = time.monotonic()
    pub = ffmpeg_publish(o.srt_url("live/demo"), seconds=60)

    def ready():
        for path in ("/live/demo/index.m3u8", "/live/demo/v.m3u8", "/live/demo/a.m3u8",
                     "/live/demo/manifest.mpd"):
            if o.get(path, timeout=2)[0] != 200:
                return None
        return time.monotonic() - t0

    took = wait_for(ready, 15)
    check(took is not None, "multivariant, media playlists and MPD served")
    if took is not None:
        log(f"first playlists and MPD served {took:.2f} s after the publisher started")
        check(took <= 3.0, f"served within 3 s of publishing (took {took:.2f} s)")

    st, hdr, body = o.get("/live/demo/index.m3u8")
    text = body.decode()
    log("multivariant:\n" + text)
    check("#EXT-X-STREAM-INF" in text and "avc1." in text and "mp4a.40.2" in text,
          "multivariant lists H.264 + AAC")
    check("RESOLUTION=1280x720" in text, "multivariant says 1280x720")
    check(hdr.get("access-control-allow-origin") == "*", "CORS header on playlists")

    # Let a few segments complete, then decode through the origin with ffmpeg, HLS and DASH.
    wait_for(lambda: len(parse_media_playlist(o.get("/live/demo/v.m3u8")[2].decode())["segments"]) >= 3,
             20, 0.25)
    for what, path in (("HLS", "/live/demo/index.m3u8"), ("DASH", "/live/demo/manifest.mpd")):
        r = subprocess.run(["ffmpeg", "-hide_banner", "-v", "error", "-nostdin", "-i",
                            o.base + path, "-t", "10", "-f", "null", "-"],
                           capture_output=True, timeout=90)
        err = r.stderr.decode().strip()
        check(r.returncode == 0 and err == "",
              f"ffmpeg decodes 10 s of {what} without errors (rc={r.returncode}) {err[:300]}")

    # Durations: every listed segment and part against what the playlist claims, within a frame.
    frame = 1 / 30 + 1e-3
    tmp = tmpdir()
    for kind, init_frame in (("v", frame), ("a", 1024 / 48000 + 1e-3)):
        st, hdr, body = o.get(f"/live/demo/{kind}.m3u8")
        check(st == 200 and "max-age=1" in hdr.get("cache-control", ""),
              f"{kind}.m3u8 is 200 with a short max-age")
        pl = parse_media_playlist(body.decode())
        text = body.decode()
        for tag in ("EXT-X-PART-INF", "EXT-X-SERVER-CONTROL", "EXT-X-MAP", "EXT-X-PROGRAM-DATE-TIME",
                    "EXT-X-PRELOAD-HINT", "EXT-X-RENDITION-REPORT", "EXT-X-TARGETDURATION"):
            check(tag in text, f"{kind}.m3u8 has {tag}")
        check("CAN-BLOCK-RELOAD=YES" in text and "PART-HOLD-BACK=" in text and
              "CAN-SKIP-UNTIL=" in text, f"{kind}.m3u8 server control is complete")
        init_uri = pl["segments"][0]["map"] if pl["segments"] else None
        st, hdr, init = o.get(f"/live/demo/{init_uri}")
        check(st == 200 and "immutable" in hdr.get("cache-control", ""),
              f"{kind} init segment served immutable")
        bad = []
        for seg in pl["segments"]:
            st, hdr, data = o.get(f"/live/demo/{seg['uri']}")
            d, n, err = packets_duration(init, data, tmp)
            if st != 200 or abs(d - seg["duration"]) > init_frame or err:
                bad.append((seg["uri"], seg["duration"], d, err[:100]))
        check(pl["segments"] and not bad,
              f"{len(pl['segments'])} {kind} segments last what EXTINF says (bad: {bad[:3]})")
        bad = []
        for part in pl["parts"]:
            st, hdr, data = o.get(f"/live/demo/{part['uri']}")
            d, n, err = packets_duration(init, data, tmp)
            if st != 200 or abs(d - part["duration"]) > init_frame or err:
                bad.append((part["uri"], part["duration"], d, err[:100]))
        check(pl["parts"] and not bad,
              f"{len(pl['parts'])} {kind} parts last what EXT-X-PART says (bad: {bad[:3]})")
        if kind == "v":
            # GOP 60 at 30 fps and 2 s segments: a keyframe starts each segment and no other part.
            flags = [[p["independent"] for p in seg["parts"]] for seg in pl["segments"] if seg["parts"]]
            check(flags and all(f[0] and not any(f[1:]) for f in flags),
                  f"INDEPENDENT=YES exactly on each segment's first part ({flags[:2]})")

    st, hdr, body = o.get("/live/demo/manifest.mpd")
    mpd = body.decode()
    check('type="dynamic"' in mpd and "SegmentTimeline" in mpd and "UTCTiming" in mpd and
          "availabilityTimeOffset" in mpd, "MPD is dynamic, low-latency, with a timeline")
    check(hdr.get("content-type", "").startswith("application/dash+xml"), "MPD content type")

    st, _, body = o.get("/api/latency")
    log(f"frame to servable part (the origin's own figure): {body.decode().strip()}")
    check(st == 200 and json.loads(body).get("samples", 0) > 0, "/api/latency reports figures")

    pub.stop()
    check(not o.died_badly() and o.alive(), "origin still running")
    check(o.stop_clean(), "origin exits 0 on SIGTERM")


if __name__ == "__main__":
    run(main)
