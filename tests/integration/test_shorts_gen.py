#!/usr/bin/env python3
"""The synthetic live-commerce shows are what their labels say (issue 13, acceptance 1).

tests/shorts/gen_show.py renders three tuning-set shows (seed 2: a slate with buying and a chat
spike; seed 9: a camera cut, a moment without a pin and one whose pin is too old to start it;
seed 5: a loudness burst and a moment without a pin), and this test measures the media and reads
the events back, independently of the generator's own bookkeeping:
  1. the same seed gives the same events and labels; the TS holds H.264 320x180 at 15 fps with a
     keyframe every 2 s, and AAC; the events file is the offline format of issue 13;
  2. the labels follow the boundary rules, recomputed here from the events (pin, last add of the
     burst) and the excitement; moments do not overlap; decoys are >= 70 s from everything;
  3. loudness (ffmpeg's ebur128, short-term): loud where a label says excitement, from its onset
     (within a second) to its end, near the show's level elsewhere, silent under a slate;
  4. video: the slate's P-frames are tiny, a camera cut is a burst of bytes.
"""
import json
import os
import re
import statistics
import subprocess
import sys

from swtest import check, log, run, tmpdir

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shorts"))
import gen_show  # noqa: E402

SEEDS = {2: {"slate_buying", "chat_spike"}, 9: {"camera_cut"}, 5: {"loudness", "chat_spike"}}


def probe_video(ts):
    """[(t, size, key)] of the video packets, t on the media timeline (0 at the first frame)."""
    r = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries",
                        "packet=pts_time,size,flags", "-of", "csv=p=0", ts],
                       capture_output=True, text=True, timeout=60, check=True)
    pk = []
    for line in r.stdout.split():
        f = line.split(",")
        pk.append((float(f[0]), int(f[1]), "K" in f[2]))
    pk.sort()
    return [(t - pk[0][0], size, key) for t, size, key in pk]


def short_term(ts, offset):
    """[(t, S)]: ebur128's short-term loudness every 100 ms, t on the media timeline."""
    r = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", ts, "-map", "0:a",
                        "-af", "ebur128", "-f", "null", "-"],
                       capture_output=True, text=True, timeout=120)
    out = []
    for m in re.finditer(r"t: *([0-9.]+) .*? S: *(\S+)", r.stderr):
        try:
            s = float(m.group(2))
        except ValueError:  # "-inf" or "nan" in digital silence
            s = -200.0
        out.append((float(m.group(1)) - offset, s if s > -200 else -200.0))
    return out


def rule(onset, excite_end, last_add, pins):
    """The issue's boundary rules, written again here from its text."""
    recent = [p for p in pins if onset - 25 <= p <= onset]
    start = max(recent) if recent else onset - 8
    end = max(excite_end, last_add) + 5
    if end - start < 15:
        end = start + 15
    if end - start > 60:
        end = start + 60
    return start, end


def check_events(seed, events, labels):
    ok = all("type" in e and isinstance(e.get("t"), (int, float)) for e in events)
    ok = ok and [e["t"] for e in events] == sorted(e["t"] for e in events)
    for e in events:
        if e["type"] == "add_to_cart":
            ok = ok and isinstance(e["sku"], str) and isinstance(e["qty"], int) and e["qty"] >= 1
        elif e["type"] == "chat_rate":
            ok = ok and e["count"] >= 0 and e["window_s"] == 5
        elif e["type"] == "product_pinned":
            ok = ok and all(e.get(k) for k in ("sku", "title", "currency", "image"))
            ok = ok and re.fullmatch(r"[0-9]+\.[0-9]{2}", e["price"]) is not None
        elif e["type"] == "product_unpinned":
            ok = ok and bool(e["sku"])
        else:
            ok = False
    check(ok, f"seed {seed}: {len(events)} events in the offline format, in time order")
    chats = [e["t"] for e in events if e["type"] == "chat_rate"]
    check(all(abs(b - a - 5) < 1e-6 for a, b in zip(chats, chats[1:])) and chats[0] == 5,
          f"seed {seed}: a chat_rate every 5 s")

    for m in labels["moments"]:
        pins = [e["t"] for e in events if e["type"] == "product_pinned" and e["sku"] == m["sku"]
                and e["t"] <= m["onset"]]
        adds = [e["t"] for e in events if e["type"] == "add_to_cart" and e["sku"] == m["sku"]
                and m["buy_start"] <= e["t"] <= m["buy_end"]]
        # The burst's adds are well above the product's background (one per 20 to 90 s).
        rate = len(adds) / max(m["buy_end"] - m["buy_start"], 1e-3)
        start, end = rule(m["onset"], m["excite_end"], max(adds), pins)
        check(abs(start - m["start"]) < 2e-3 and abs(end - m["end"]) < 2e-3
              and 3 <= m["buy_start"] - m["onset"] <= 8 and len(adds) >= 6 and rate >= 0.3,
              f"seed {seed}: moment {m['sku']} [{m['start']}, {m['end']}] follows the rules "
              f"(pin {m['pin']}: {m['start_why']}, end: {m['end_why']}; {len(adds)} adds at "
              f"{rate:.2f}/s from onset + {m['buy_start'] - m['onset']:.1f} s)")
    ms = labels["moments"]
    check(all(15 <= m["end"] - m["start"] <= 60 for m in ms)
          and all(a["end"] <= b["start"] for a, b in zip(ms, ms[1:])),
          f"seed {seed}: moments last 15 to 60 s and do not overlap")

    def span(x):
        if x["kind"] == "moment":
            ts = [x["start"], x["end"]] + [x["pin_t"]] * (x["pin_t"] is not None)
            return min(ts), max(ts)
        return x["start"], x["end"]

    gaps = [max(span(b)[0] - span(a)[1], span(a)[0] - span(b)[1])
            for d in labels["decoys"] for a, b in [(d, x) for x in ms + labels["decoys"]
                                                   if x is not d]]
    check(all(g >= 70 - 1e-3 for g in gaps),
          f"seed {seed}: decoys are >= 70 s from everything (closest {min(gaps or [0]):.1f} s)")


def check_audio(seed, labels, st):
    """Short-term loudness: a 3 s window, so a window [t-3, t] is wholly inside or outside."""
    loud = [(m["onset"], m["excite_end"], m["gain_db"]) for m in labels["moments"]]
    loud += [(d["start"], d["end"], d["gain_db"]) for d in labels["decoys"]
             if d["kind"] == "loudness"]
    silent = [(d["start"], d["end"]) for d in labels["decoys"] if d["kind"] == "slate_buying"]
    events = [(a, b) for a, b, _ in loud] + silent

    def near(t, margin):
        return any(a - margin <= t <= b + 3 + margin for a, b in events)

    calm = [s for t, s in st if t > 3.5 and not near(t, 0.5)]
    level = statistics.median(calm)
    dev = max(abs(s - level) for s in calm)
    check(-33 <= level <= -27 and dev <= 2.5,
          f"seed {seed}: the host's level {level:.1f} LUFS (labels: {labels['base_lufs']}), "
          f"within {dev:.1f} LU of it away from events")
    for a, b, g in loud:
        inside = [s - level for t, s in st if a + 3.2 <= t <= b]
        before = [s - level for t, s in st if a - 1 <= t <= a]
        onset = [s - level for t, s in st if a + 0.9 <= t <= a + 1.1]
        after = [s - level for t, s in st if b + 3.2 <= t <= b + 4]
        check(inside and min(inside) >= g - 4 and max(before) <= 2.5 and min(onset) >= 3
              and max(after) <= 2.5,
              f"seed {seed}: excitement [{a:.1f}, {b:.1f}] +{g} dB: S {min(inside):+.1f} to "
              f"{max(inside):+.1f} LU inside, {max(before):+.1f} before the onset, "
              f"{min(onset):+.1f} 1 s after it, {max(after):+.1f} after its end")
    for a, b in silent:
        inside = [s for t, s in st if a + 3.1 <= t <= b]
        check(inside and max(inside) < -70,
              f"seed {seed}: silence under the slate [{a:.1f}, {b:.1f}] (S at most "
              f"{max(inside):.0f} LUFS)")


def check_video(seed, labels, pk):
    keys = [i for i, (_, _, k) in enumerate(pk) if k]
    check(keys[:3] == [0, 30, 60] and all(b - a == 30 for a, b in zip(keys, keys[1:])),
          f"seed {seed}: a keyframe every 30 frames (2 s), {len(keys)} in all")
    spans = [(d["start"], d["end"]) for d in labels["decoys"]
             if d["kind"] in ("slate_buying", "camera_cut")]
    base = [s for t, s, k in pk
            if not k and not any(a - 1 <= t <= b + 1 for a, b in spans)]
    med = statistics.median(base)
    check(med > 1000, f"seed {seed}: the moving picture's P-frames: median {med:.0f} bytes")
    for d in labels["decoys"]:
        a, b = d["start"], d["end"]
        if d["kind"] == "slate_buying":
            # x264 refines a new still picture for a few frames after the cut and after each
            # keyframe (100 to 200 bytes); then a P-frame is a skip of some 17 bytes.
            inside = [s for t, s, k in pk if a + 0.2 <= t <= b - 0.2 and not k]
            check(inside and statistics.median(inside) <= 0.01 * med
                  and max(inside) <= 0.1 * med,
                  f"seed {seed}: the slate [{a:.1f}, {b:.1f}] encodes to tiny P-frames "
                  f"(median {statistics.median(inside or [0]):.0f} bytes, at most "
                  f"{max(inside or [0])}, {len(inside)} frames)")
        elif d["kind"] == "camera_cut":
            # x264 codes the frame after a cut mostly intra: about twice a P-frame of this busy
            # picture. A cut that falls on a keyframe shows nothing in the sizes.
            for edge in (a, b):
                near = [(s, k) for t, s, k in pk if edge - 0.07 <= t <= edge + 0.07]
                if any(k for _, k in near):
                    log(f"seed {seed}: the camera cut at {edge:.1f} s falls on a keyframe")
                    continue
                cut = max(s for s, _ in near)
                check(cut >= 1.8 * med,
                      f"seed {seed}: the camera cut ({d['source']}) at {edge:.1f} s is a burst "
                      f"of bytes ({cut} vs a median P-frame of {med:.0f})")


def main():
    tmp = tmpdir("sw-shorts-gen-")
    for seed, kinds in SEEDS.items():
        a, b = gen_show.make_show(seed)[1:], gen_show.make_show(seed)[1:]
        check(json.dumps(a) == json.dumps(b), f"seed {seed}: events and labels are deterministic")
        out = os.path.join(tmp, str(seed))
        r = subprocess.run([sys.executable, os.path.join(os.path.dirname(gen_show.__file__),
                                                         "gen_show.py"), str(seed), out],
                           capture_output=True, text=True, timeout=120)
        log(r.stdout.strip() + r.stderr.strip()[-1000:])
        check(r.returncode == 0, f"seed {seed}: gen_show.py exits 0")
        if r.returncode != 0:
            continue
        with open(os.path.join(out, "labels.json")) as f:
            labels = json.load(f)
        with open(os.path.join(out, "events.jsonl")) as f:
            events = [json.loads(line) for line in f]
        check(json.dumps(labels) == json.dumps(a[1]) and events == a[0],
              f"seed {seed}: the files hold what make_show() drew")
        check({d["kind"] for d in labels["decoys"]} == kinds,
              f"seed {seed}: its decoys are {sorted(kinds)}")
        ts = os.path.join(out, "show.ts")
        r = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                            "stream=codec_type,codec_name,width,height,r_frame_rate,start_time:"
                            "format=duration,start_time", "-of", "json", ts],
                           capture_output=True, text=True, timeout=60, check=True)
        info = json.loads(r.stdout)
        streams = {s["codec_type"]: s for s in info["streams"]}
        v, au = streams.get("video", {}), streams.get("audio", {})
        dur = float(info["format"]["duration"])
        check(v.get("codec_name") == "h264" and (v.get("width"), v.get("height")) == (320, 180)
              and v.get("r_frame_rate") == "15/1" and au.get("codec_name") == "aac"
              and abs(dur - labels["duration"]) < 0.5,
              f"seed {seed}: H.264 320x180 15 fps + AAC, {dur:.1f} s "
              f"(labels: {labels['duration']} s)")
        check_events(seed, events, labels)
        # ffmpeg starts its clock at the earliest stream (audio, with the AAC encoder's priming
        # packet); the media timeline starts at the first video frame.
        offset = float(v["start_time"]) - float(info["format"]["start_time"])
        check_audio(seed, labels, short_term(ts, offset))
        check_video(seed, labels, probe_video(ts))


run(main)
