#!/usr/bin/env python3
"""Origin acceptance 5: bad input never crashes the daemon and never disturbs other streams.
Random bytes over SRT, a TS with no video PID, truncated PES packets, a resolution change
mid-stream, timestamps that jump back or wrap at 2^33, and a publisher that stalls for 30 s: each
gives a clear log line and a defined outcome, while a control stream keeps its pace."""
import json
import os
import random
import signal
import subprocess
import time

from swtest import (Origin, PacedSender, check, ffmpeg_publish, log, make_ts, parse_media_playlist,
                    run, tmpdir, wait_for)


def playlist(o, name, kind="v", q=""):
    st, _, body = o.get(f"/live/{name}/{kind}.m3u8{q}", timeout=3)
    return parse_media_playlist(body.decode()) if st == 200 else None


def parts_now(o, name):
    st, _, body = o.get(f"/api/streams/{name}", timeout=3)
    return json.loads(body).get("parts", 0) if st == 200 else 0


def decodes(o, path, seconds=4):
    r = subprocess.run(["ffmpeg", "-hide_banner", "-v", "error", "-nostdin", "-i", o.base + path,
                        "-t", str(seconds), "-f", "null", "-"], capture_output=True, timeout=60)
    return r.returncode == 0, r.stderr.decode()[:300]


def main():
    tmp = tmpdir()
    o = Origin(extra_conf="[srt]\nstall_timeout = 10s\nprobe_timeout = 3s\n")
    control = ffmpeg_publish(o.srt_url("live/control"), seconds=None, size="320x240", name="control")
    check(wait_for(lambda: playlist(o, "control"), 15), "control stream up")
    t_start = time.monotonic()
    parts_start = parts_now(o, "control")

    # 1. Random bytes over SRT.
    rnd = PacedSender(random.Random(7).randbytes(600_000), o.srt_url("live/noise"), name="noise")
    check(wait_for(lambda: "noise" in o.output() and "not MPEG-TS" in o.output(), 15),
          "random bytes: the publisher is dropped with a clear reason (not MPEG-TS)")
    rnd.stop()
    check(playlist(o, "noise") is None, "random bytes: nothing is served for that name")

    # 2. A TS with no video PID: served as audio-only HLS.
    audio_only = make_ts(os.path.join(tmp, "audio.ts"), 12, video=False)
    aud = PacedSender(audio_only, o.srt_url("live/radio"), bitrate=300_000, name="radio")
    ok = wait_for(lambda: playlist(o, "radio", "a"), 15)
    check(ok, "no video PID: the audio playlist is served")
    st, _, body = o.get("/live/radio/index.m3u8")
    check(st == 200 and "mp4a.40.2" in body.decode() and "avc1" not in body.decode(),
          "no video PID: the multivariant playlist is audio-only")
    check(o.get("/live/radio/v.m3u8")[0] == 404, "no video PID: the video playlist is 404")
    if ok:
        good, err = decodes(o, "/live/radio/index.m3u8", 3)
        check(good, f"no video PID: ffmpeg decodes the audio-only stream ({err})")
    aud.stop()

    # 3. Truncated PES packets: drop every 40th TS packet of a good stream.
    good_ts = make_ts(os.path.join(tmp, "good.ts"), 14)
    pkts = [good_ts[i:i + 188] for i in range(0, len(good_ts), 188)]
    holes = b"".join(p for i, p in enumerate(pkts) if i % 40 != 39)
    cut = PacedSender(holes, o.srt_url("live/holes"), bitrate=1_200_000, name="holes")
    check(wait_for(lambda: (playlist(o, "holes") or {}).get("segments"), 20),
          "truncated PES: the stream is still packaged and served")
    st, _, body = o.get("/api/streams/holes")
    log(f"truncated PES: {body.decode()[:300]}")
    cut.stop()

    # 4. A resolution change mid-stream (timestamps continue).
    a = make_ts(os.path.join(tmp, "r1.ts"), 6, size="320x240")
    b = make_ts(os.path.join(tmp, "r2.ts"), 8, size="480x270", extra=("-output_ts_offset", "6"))
    res = PacedSender(a + b, o.srt_url("live/resize"), bitrate=1_200_000, name="resize")
    changed = wait_for(lambda: (lambda p: p if p and len({s["map"] for s in p["segments"]}) > 1 else None)(
        playlist(o, "resize", q="?dvr=1")), 30, 0.5)
    check(changed is not None, "resolution change: a new init segment (EXT-X-MAP) appears")
    if changed:
        i = next(i for i, s in enumerate(changed["segments"]) if s["map"] != changed["segments"][0]["map"])
        check(changed["segments"][i]["discontinuity"], "resolution change: EXT-X-DISCONTINUITY with it")
        st, _, body = o.get("/api/streams/resize")
        check(json.loads(body).get("video", {}).get("width") == 480, "resolution change: the API shows 480 wide")
    res.stop()

    # 5. Timestamps that jump back: the same file twice, back to back.
    jump = PacedSender(a + a, o.srt_url("live/jump"), bitrate=1_200_000, name="jump")
    disc = wait_for(lambda: (lambda p: p if p and any(s["discontinuity"] for s in p["segments"]) else None)(
        playlist(o, "jump", q="?dvr=1")), 30, 0.5)
    check(disc is not None, "timestamps jump back: EXT-X-DISCONTINUITY")
    if disc:
        msns = [s["msn"] for s in disc["segments"]]
        check(msns == list(range(msns[0], msns[0] + len(msns))), "timestamps jump back: msn keep counting")
    check("discontinuity" in o.output() and "jump" in o.output(), "timestamps jump back: logged")
    jump.stop()

    # 6. Timestamps that wrap at 2^33 (95443.7 s): no discontinuity, steady segments.
    wrap = make_ts(os.path.join(tmp, "wrap.ts"), 12, extra=("-output_ts_offset", "95439"))
    wr = PacedSender(wrap, o.srt_url("live/wrap"), bitrate=1_200_000, name="wrap")
    full = wait_for(lambda: (lambda p: p if p and len(p["segments"]) >= 5 else None)(
        playlist(o, "wrap", q="?dvr=1")), 30, 0.5)
    check(full is not None, "2^33 wrap: the stream goes on past the wrap")
    if full:
        check(not any(s["discontinuity"] for s in full["segments"]), "2^33 wrap: no discontinuity")
        durs = [s["duration"] for s in full["segments"]]
        check(all(0.9 <= d <= 2.1 for d in durs), f"2^33 wrap: segment durations stay sane ({durs})")
    wr.stop()

    # 7. A publisher that stalls for 30 s (SIGSTOP), then resumes.
    stall = ffmpeg_publish(o.srt_url("live/stall"), seconds=None, size="320x240", name="stall")
    check(wait_for(lambda: playlist(o, "stall"), 15), "stalling publisher up")
    stall.signal(signal.SIGSTOP)
    t = time.monotonic()
    gone = wait_for(lambda: json.loads(o.get("/api/streams/stall")[2]).get("live") is False, 40, 0.5)
    check(gone, f"stall: the publisher is dropped ({time.monotonic() - t:.1f} s after it stopped)")
    log_lines = [l for l in o.output().splitlines() if "stall" in l and ("left" in l or "unpublish" in l)]
    check(log_lines, f"stall: a clear log line ({log_lines[-1] if log_lines else ''})")
    time.sleep(max(0, 30 - (time.monotonic() - t)))
    stall.signal(signal.SIGCONT)
    check(playlist(o, "stall", q="?dvr=1") is not None, "stall: what was published stays served")
    stall.stop()

    # The control stream kept its pace through all of it, and the origin is alive.
    elapsed = time.monotonic() - t_start
    made = parts_now(o, "control") - parts_start
    expected = elapsed / 0.334 * 2  # video and audio parts
    log(f"control: {made} parts in {elapsed:.1f} s (about {expected:.0f} expected)")
    check(made >= 0.9 * expected, f"the control stream was undisturbed ({made} of ~{expected:.0f} parts)")
    good, err = decodes(o, "/live/control/index.m3u8", 4)
    check(good, f"the control stream still decodes ({err})")
    control.stop()
    check(o.alive() and not o.died_badly(), "origin still running")
    check(o.stop_clean(), "origin exits 0 on SIGTERM")


if __name__ == "__main__":
    run(main)
