#!/usr/bin/env python3
"""`shortwave-origin --analyze FILE.ts --events FILE.jsonl`: the shorts detector over a recorded
show (issue 13, "Offline"). A 40 s TS from ffmpeg's lavfi sources whose audio starts 2 s before its
video and is 20 dB louder from 20 s to 25 s of the audio's own clock; events files in every
spelling the format allows. Checks: exit 0 and one JSON array on stdout; through
--analyze-signals, that t = 0 is the first video frame, that the measured loudness of the burst is
10+ LU above the rest exactly where the burst is on that timeline, and that the events arrive as
parsed (t and ts_ms alike, fields flat or under data, product_id as sku's alias, unknown types
skipped, sorted by time); a bad events line stops it with exit 2 naming the line; a missing TS is
exit 2 naming the file."""
import json
import os
import statistics
import subprocess
import time

from swtest import BIN, check, log, run, tmpdir

ORIGIN = os.path.join(BIN, "shortwave-origin")
VIDEO_DELAY = 2.0          # the video starts this long after the audio
BURST = (20.0, 25.0)       # the loud part, on the audio's own clock
EPOCH = 1764322200000      # stream_start's epoch_ms in the ts_ms spelling


def make_show(path):
    """40 s, 320x180: a sine with a +20 dB burst, the video delayed by VIDEO_DELAY."""
    argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-itsoffset", str(VIDEO_DELAY), "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-af", f"volume=enable='between(t,{BURST[0]},{BURST[1]})':volume=20dB",
            "-t", "40", "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "0",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mpegts", path]
    subprocess.run(argv, check=True, timeout=120)


def analyze(*args):
    t0 = time.monotonic()
    r = subprocess.run([ORIGIN, *args], capture_output=True, timeout=60)
    return r.returncode, r.stdout.decode(), r.stderr.decode(), time.monotonic() - t0


def write(d, name, lines):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))
    return path


def read_signals(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# The same show's events in two spellings: t, and ts_ms after a stream_start (with fields under
# data and product_id for sku). Out of time order on purpose, with an unknown type in each.
EVENTS_T = [
    '{"type": "product_pinned", "t": 10, "sku": "KETTLE-1", "title": "Kettle", "price": "19.99"}',
    '{"type": "add_to_cart", "t": 24.5, "sku": "KETTLE-1", "qty": 2}',
    '{"type": "viewer_count", "t": 5, "count": 120}',
    '{"type": "add_to_cart", "t": 23, "sku": "KETTLE-1"}',
    '{"type": "chat_rate", "t": 21, "count": 80, "window_s": 5}',
    '{"type": "product_unpinned", "t": 35, "sku": "KETTLE-1"}',
]
EVENTS_MS = [
    json.dumps({"type": "stream_start", "epoch_ms": EPOCH}),
    json.dumps({"type": "product_pinned", "ts_ms": EPOCH + 10000,
                "data": {"product_id": "KETTLE-1", "title": "Kettle"}}),
    json.dumps({"type": "add_to_cart", "ts_ms": EPOCH + 24500, "data": {"sku": "KETTLE-1", "qty": 2}}),
    json.dumps({"type": "viewer_count", "ts_ms": EPOCH + 5000, "data": {"count": 120}}),
    json.dumps({"type": "add_to_cart", "ts_ms": EPOCH + 23000, "product_id": "KETTLE-1"}),
    json.dumps({"type": "chat_rate", "ts_ms": EPOCH + 21000, "data": {"count": 80, "window_s": 5}}),
    json.dumps({"type": "product_unpinned", "ts_ms": EPOCH + 35000, "data": {"product_id": "KETTLE-1"}}),
]
EXPECTED_EVENTS = [
    {"signal": "event", "t": 10.0, "type": "product_pinned", "sku": "KETTLE-1"},
    {"signal": "event", "t": 21.0, "type": "chat_rate", "count": 80, "window_s": 5},
    {"signal": "event", "t": 23.0, "type": "add_to_cart", "sku": "KETTLE-1", "qty": 1},
    {"signal": "event", "t": 24.5, "type": "add_to_cart", "sku": "KETTLE-1", "qty": 2},
    {"signal": "event", "t": 35.0, "type": "product_unpinned", "sku": "KETTLE-1"},
]


def check_moments(out, what):
    try:
        moments = json.loads(out)
    except ValueError as e:
        check(False, f"{what}: stdout is JSON ({e}: {out[:200]!r})")
        return
    ok = isinstance(moments, list) and all(
        isinstance(m, dict) and {"start", "end", "score", "sku", "evidence"} <= m.keys()
        for m in moments)
    check(ok, f"{what}: stdout is one JSON array of moments ({len(moments) if ok else out[:200]!r})")


def main():
    d = tmpdir()
    ts = os.path.join(d, "show.ts")
    make_show(ts)

    # --- the t spelling, with the signals dumped ---
    ev_t = write(d, "events.jsonl", EVENTS_T)
    sig_t = os.path.join(d, "signals-t.jsonl")
    rc, out, err, took = analyze("--analyze", ts, "--events", ev_t, "--analyze-signals", sig_t)
    log(f"analysis of 40 s took {took:.2f} s")
    check(rc == 0, f"--analyze exits 0 (rc {rc}: {err.strip()[:300]})")
    check_moments(out, "--analyze")
    sig = read_signals(sig_t)
    check(sig and sig[0].get("signal") == "start" and sig[0].get("t0") == "video"
          and sig[0].get("audio") is True, f"the signals start with the start line ({sig[:1]})")

    video = [s for s in sig if s["signal"] == "video"]
    loud = [s for s in sig if s["signal"] == "loudness"]
    events = [s for s in sig if s["signal"] == "event"]
    # -t 40 ends both at 40 s of the audio's clock: 38 s of video.
    check(abs(len(video) - (40 - VIDEO_DELAY) * 30) <= 2 and video[0]["t"] == 0 and video[0]["key"] is True,
          f"t = 0 is the first video frame, a keyframe ({len(video)} frames, first {video[:1]})")
    check(all(b["t"] > a["t"] for a, b in zip(video, video[1:])) and
          abs(video[-1]["t"] - (len(video) - 1) / 30) < 0.01,
          f"video frames every 1/30 s in order (last at {video[-1]['t'] if video else None})")
    keys = [v["t"] for v in video if v["key"]]
    check(len(keys) >= 37 and all(abs(b - a - 1) < 0.01 for a, b in zip(keys, keys[1:])),
          f"a keyframe every second ({len(keys)} keyframes)")
    check(all(v["bytes"] > 0 for v in video), "every frame has its size")

    # The audio starts VIDEO_DELAY before the video: its first values are before t = 0.
    check(loud and abs(loud[0]["t"] - (-VIDEO_DELAY + 0.1)) < 0.06,
          f"the first loudness value is 100 ms into the audio, at t = {-VIDEO_DELAY + 0.1:.1f} "
          f"(got {loud[0]['t'] if loud else None})")
    steps = [b["t"] - a["t"] for a, b in zip(loud, loud[1:])]
    check(steps and all(abs(s - 0.1) < 0.002 for s in steps),
          f"a loudness value every 100 ms ({len(loud)} values, steps {min(steps):.4f} to {max(steps):.4f})")

    # The burst, on the media timeline: [BURST[0] - VIDEO_DELAY, BURST[1] - VIDEO_DELAY].
    b0, b1 = BURST[0] - VIDEO_DELAY, BURST[1] - VIDEO_DELAY
    quiet = statistics.median(s["lufs"] for s in loud if 4 <= s["t"] <= b0 - 1)
    burst = statistics.median(s["lufs"] for s in loud if b0 + 3 <= s["t"] <= b1)
    log(f"quiet level {quiet:.2f} LUFS, burst {burst:.2f} LUFS")
    check(burst - quiet >= 10 and burst - quiet <= 25,
          f"the burst is 10+ LU above the rest ({burst - quiet:.1f} LU; 20 dB of gain)")
    above = [s["t"] for s in loud if s["lufs"] is not None and s["lufs"] > quiet + 10]
    # Short-term loudness is the mean energy over 3 s: with the burst R times the quiet energy
    # (20 dB of gain, less what clips), x seconds of it in the window make it 10 LU up when
    # (R x + 3 - x) / 3 = 10. So it rises x after the burst begins and falls 3 - x after it ends.
    ratio = 10 ** ((burst - quiet) / 10)
    x = 3 * 9 / (ratio - 1)
    check(above and abs(above[0] - (b0 + x)) <= 0.25,
          f"it rises where the burst begins on the video's timeline: {b0:.0f} s + {x:.2f} "
          f"(first value 10 LU up at {above[0] if above else None}; {BURST[0] + x:.1f} would "
          f"mean t = 0 at the first audio)")
    check(above and abs(above[-1] - (b1 + 3 - x)) <= 0.25 and
          all(b0 <= t <= b1 + 3 for t in above),
          f"and falls 3 s after it ends, less {x:.2f} ({above[-1] if above else None}, expected "
          f"{b1 + 3 - x:.2f}); nothing else is 10 LU up")

    check([{k: e[k] for k in e} for e in events] == EXPECTED_EVENTS,
          f"the events arrive as parsed, sorted by t, the unknown type skipped ({events})")
    # Interleaved in time order with the media: each event comes after every signal before it.
    order_ok = True
    last_media = -1e9
    for s in sig[1:]:
        if s["signal"] == "event":
            order_ok &= s["t"] >= last_media - 0.0001
        else:
            last_media = max(last_media, s["t"])
    check(order_ok, "events are fed interleaved with the media in time order")

    # --- the ts_ms spelling gives the same events ---
    ev_ms = write(d, "events-ms.jsonl", EVENTS_MS)
    sig_ms = os.path.join(d, "signals-ms.jsonl")
    rc, out2, err, _ = analyze("--analyze", ts, "--events", ev_ms, "--analyze-signals", sig_ms)
    check(rc == 0, f"the ts_ms spelling: exit 0 ({err.strip()[:300]})")
    check_moments(out2, "the ts_ms spelling")
    sig2 = read_signals(sig_ms)
    check(sig2 == sig, "ts_ms after stream_start, fields under data and product_id give exactly "
          "the signals of the t spelling")

    # --- no events: no moments ---
    rc, out, err, _ = analyze("--analyze", ts)
    check(rc == 0 and json.loads(out) == [], f"without --events: exit 0 and [] ({rc}, {out!r})")

    # --- a bad line stops it, named ---
    bad = write(d, "bad.jsonl", [EVENTS_T[0], "", '{"type": "add_to_cart", "t": 12, "sku": "A", "qty": -3}',
                                 EVENTS_T[1]])
    rc, out, err, _ = analyze("--analyze", ts, "--events", bad)
    check(rc == 2 and "bad.jsonl:3:" in err and "qty" in err and out == "",
          f"a negative qty on line 3: exit 2 naming the line, nothing on stdout ({rc}: {err.strip()})")
    bad = write(d, "bad2.jsonl", [EVENTS_T[0], '{"type": "add_to_cart", "ts_ms": 1764322210000, "sku": "A"}'])
    rc, out, err, _ = analyze("--analyze", ts, "--events", bad)
    check(rc == 2 and "bad2.jsonl:2:" in err and "stream_start" in err,
          f"ts_ms without stream_start: exit 2 naming line 2 ({rc}: {err.strip()})")
    bad = write(d, "bad3.jsonl", ['{"type": "add_to_cart", "t": 1, "sku": "A"', EVENTS_T[1]])
    rc, out, err, _ = analyze("--analyze", ts, "--events", bad)
    check(rc == 2 and "bad3.jsonl:1:" in err and "invalid JSON" in err,
          f"a line that is not JSON: exit 2 naming line 1 ({rc}: {err.strip()})")
    rc, out, err, _ = analyze("--analyze", ts, "--events", os.path.join(d, "nope.jsonl"))
    check(rc == 2 and "nope.jsonl" in err and "cannot open" in err,
          f"a missing events file: exit 2, named ({rc}: {err.strip()})")

    # --- a missing or unreadable TS ---
    missing = os.path.join(d, "missing.ts")
    rc, out, err, _ = analyze("--analyze", missing, "--events", ev_t)
    check(rc == 2 and "missing.ts" in err and "cannot open" in err and out == "",
          f"a missing TS: exit 2 with a message naming it ({rc}: {err.strip()})")
    junk = os.path.join(d, "junk.ts")
    with open(junk, "wb") as f:
        f.write(os.urandom(2000))
    rc, out, err, _ = analyze("--analyze", junk)
    check(rc == 2 and "junk.ts" in err and out == "",
          f"random bytes: exit 2 with a message naming the file ({rc}: {err.strip()})")

    # --- flags ---
    rc, out, err, _ = analyze("--events", ev_t)
    check(rc == 2 and "--analyze" in err, f"--events without --analyze is refused ({err.strip()})")
    rc, out, err, _ = analyze("--analyze", ts, "--srt", "127.0.0.1:1")
    check(rc == 2 and "--analyze takes only" in err, f"a daemon flag with --analyze is refused ({err.strip()})")
    rc, out, err, _ = analyze("--analyze", ts, "--log-level", "loud")
    check(rc == 2 and "log_level" in err, f"a bad --log-level is refused ({err.strip()})")
    r = subprocess.run([ORIGIN, "--help"], capture_output=True, timeout=20)
    check(b"--analyze FILE" in r.stdout and b"--analyze-signals" in r.stdout,
          "--help shows --analyze, --events and --analyze-signals")


if __name__ == "__main__":
    run(main)
