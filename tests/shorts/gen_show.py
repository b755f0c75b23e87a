#!/usr/bin/env python3
"""Generates one synthetic live-commerce show from a seed (issue 13, acceptance 1).

    gen_show.py SEED OUTDIR [--minutes M]

writes OUTDIR/show.ts (MPEG-TS, H.264 + AAC, from ffmpeg's lavfi sources), OUTDIR/events.jsonl
(the room's events, in the format of `shortwave-origin --analyze --events`) and OUTDIR/labels.json
(the true moments with the boundaries the issue's rules give them, and the decoys). Everything is
drawn from random.Random(SEED), so one seed always gives the same show; README.md in this folder
describes the grammar. Python's standard library only, plus ffmpeg on PATH.
"""
import argparse
import json
import math
import os
import random
import subprocess
import sys
import time

WIDTH, HEIGHT, FPS, GOP_S = 320, 180, 15, 2
SAMPLE_RATE = 48000

# A show's length when --minutes is not given: 4 to 6 minutes.
SHOW_MIN_S, SHOW_MAX_S = 240, 360
# Nothing happens in the first 30 s (the detector's rolling levels need some history) nor in the
# last 10 s (a moment must end, tail included, inside the media).
START_MARGIN_S, END_MARGIN_S = 30.0, 10.0
# A decoy is this far, edge to edge, from every moment and every other decoy: farther than the
# 60 s loudness window, the 25 s pin lookback and the 8 s lag, so that no decoy can lend a
# moment its loudness, its pin or its buying, and no two decoys can add up to a moment.
DECOY_GAP_S = 70.0
# Moments are at least this far apart (each sells a different product).
MOMENT_GAP_S = 30.0
# The boundary rules (see labels()).
PIN_LOOKBACK_S, LEAD_S, TAIL_S, MIN_S, MAX_S = 25.0, 8.0, 5.0, 15.0, 60.0
# A burst of buying has at least this many add_to_cart events, so that it is a burst at any rate
# drawn (0.6 to 2 adds per second), not a handful of adds.
BURST_MIN_ADDS = 6
CHAT_PERIOD_S = 5.0

DECOY_KINDS = ["loudness", "chat_spike", "slate_buying", "unbought_pin", "camera_cut"]
# Sources unlike testsrc2 and busy enough that the frame after the cut is a burst of bytes
# (testsrc, calmer than testsrc2, was not).
CUT_SOURCES = ["mandelbrot", "life", "sierpinski"]

ADJECTIVES = ["Silk", "Ceramic", "Bamboo", "Copper", "Linen", "Glass", "Walnut", "Wool", "Matte",
              "Velvet", "Cotton", "Steel"]
NOUNS = ["Scarf", "Mug", "Lamp", "Kettle", "Tote", "Serum", "Candle", "Blender", "Jacket",
         "Speaker", "Wallet", "Teapot"]


def r3(x):
    return round(x, 3)


def products(rng, seed, n):
    """n products with the fields a product_pinned carries (docs/overlay-protocol.md)."""
    currency = rng.choice(["EUR", "USD", "GBP"])
    out = []
    for i in range(n):
        sku = f"sku-{seed}-{i + 1:02d}"
        out.append({"sku": sku, "title": f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}",
                    "price": f"{rng.randint(5, 149)}.{rng.choice([0, 49, 90, 95, 99]):02d}",
                    "currency": currency, "image": f"https://cdn.example.com/products/{sku}.jpg",
                    "stock": rng.randint(20, 500)})
    return out


def burst(rng, t0, length, rate):
    """Poisson add_to_cart times from t0 (the first add is at t0) for `length` seconds, with at
    least BURST_MIN_ADDS adds (a draw with fewer is drawn again, a bounded number of times)."""
    for _ in range(100):
        ts = [t0]
        t = t0
        while True:
            t += rng.expovariate(rate)
            if t > t0 + length:
                break
            ts.append(t)
        if len(ts) >= BURST_MIN_ADDS:
            return ts
    # The rates and lengths drawn make 100 short draws in a row practically impossible; an even
    # spread keeps the generator total anyway.
    return [t0 + length * i / (BURST_MIN_ADDS - 1) for i in range(BURST_MIN_ADDS)]


def qty(rng, p_one):
    r = rng.random()
    return 1 if r < p_one else (2 if r < p_one + (1 - p_one) * 0.7 else 3)


def new_moment(rng, sku):
    """A moment that sells, on a timeline where its onset is 0."""
    m = {"kind": "moment", "sku": sku, "excite_s": rng.uniform(6, 15),
         "gain_db": rng.uniform(9, 15), "lag_s": rng.uniform(3, 8),
         "burst_s": rng.uniform(8, 20), "rate": rng.uniform(0.6, 2.0),
         "chat_mult": rng.uniform(1.5, 3.0)}
    r = rng.random()
    # About 0.6 of the moments pin their product 4 to 20 s before the onset; a few pinned it long
    # before (30 to 45 s, a pin too old to start the moment); the others have no pin.
    m["pin"] = "recent" if r < 0.6 else ("stale" if r < 0.75 else "none")
    m["pin_at"] = {"recent": -rng.uniform(4, 20), "stale": -rng.uniform(30, 45),
                   "none": None}[m["pin"]]
    adds = burst(rng, m["lag_s"], m["burst_s"], m["rate"])
    m["adds"] = [(t, qty(rng, 0.9)) for t in adds]
    excite_end = m["excite_s"]
    m["unpin_at"] = None
    if m["pin"] != "none" and rng.random() < 0.5:
        m["unpin_at"] = max(excite_end, adds[-1]) + rng.uniform(0, 20)
    start, end, _, _ = boundaries(0.0, excite_end, adds[-1], m["pin_at"])
    times = [start, end, adds[-1]] + [x for x in (m["pin_at"], m["unpin_at"]) if x is not None]
    m["span"] = (min(times), max(times))
    return m


def new_decoy(rng, kind, sku):
    """A decoy of `kind`, on a timeline where it begins at 0 (slate_buying: where its buying
    begins)."""
    d = {"kind": kind, "sku": None}
    if kind == "loudness":
        d["excite_s"], d["gain_db"] = rng.uniform(6, 15), rng.uniform(9, 15)
        # Half of them raise the chat a little too: excitement without buying is still no short.
        d["chat_mult"] = rng.uniform(1.3, 2.0) if rng.random() < 0.5 else 1.0
        d["span"] = (0.0, d["excite_s"])
    elif kind == "chat_spike":
        d["chat_mult"] = 5.0
        d["span"] = (0.0, rng.uniform(10, 20))
    elif kind == "slate_buying":
        d["sku"] = sku
        length = rng.uniform(8, 15)
        adds = burst(rng, 0.0, length, rng.uniform(0.6, 2.0))
        d["adds"] = [(t, qty(rng, 0.9)) for t in adds]
        d["color"] = "0x%06x" % rng.randrange(0x1000000)
        d["span"] = (-rng.uniform(3, 6), adds[-1] + rng.uniform(2, 5))
    elif kind == "unbought_pin":
        d["sku"] = sku
        d["unpin_at"] = rng.uniform(10, 40) if rng.random() < 0.5 else None
        d["span"] = (0.0, max(30.0, d["unpin_at"] or 0.0))
    elif kind == "camera_cut":
        d["source"] = rng.choice(CUT_SOURCES)
        d["source_seed"] = rng.randrange(1 << 30)
        d["span"] = (0.0, rng.uniform(8, 30))
    return d


def boundaries(onset, excite_end, last_add, pin_t):
    """The issue's rules: start at the pin if it came at most 25 s before the onset, else 8 s
    before the onset; end 5 s after the later of the excitement's end and the burst's last add;
    15 to 60 s long (shorter: the end moves later; longer: the end is cut at start + 60).
    Returns (start, end, start_why, end_why)."""
    if pin_t is not None and onset - PIN_LOOKBACK_S <= pin_t <= onset:
        start, start_why = pin_t, "pin"
    else:
        start, start_why = onset - LEAD_S, "lead"
    if last_add > excite_end:
        end, end_why = last_add + TAIL_S, "buying"
    else:
        end, end_why = excite_end + TAIL_S, "excitement"
    if end - start < MIN_S:
        end, end_why = start + MIN_S, "min"
    elif end - start > MAX_S:
        end, end_why = start + MAX_S, "max"
    return start, end, start_why, end_why


def gap(a, b):
    return MOMENT_GAP_S if a["kind"] == "moment" and b["kind"] == "moment" else DECOY_GAP_S


def needed(items):
    """Seconds the items take in this order, with the gaps they need between them."""
    if not items:
        return 0.0
    total = sum(it["span"][1] - it["span"][0] for it in items)
    return total + sum(gap(a, b) for a, b in zip(items, items[1:]))


def arrange(rng, moments, decoys, usable):
    """An order of the moments and the decoys that fits in `usable` seconds, or None (a few
    random orders are tried)."""
    for _ in range(40):
        order = moments + decoys
        rng.shuffle(order)
        if needed(order) <= usable:
            return order
    return None


def place(rng, moments, decoys, usable):
    """Orders the items and spreads the slack between them at random. Keeps as many decoys as fit,
    dropping them from the end of `decoys` (a 4 to 6 minute show holds one to three of them
    beside its moments: see README.md). Returns the placed items, each with its "at" (where its
    own timeline's 0 falls in the show)."""
    order = None
    for k in range(len(decoys), -1, -1):
        order = arrange(rng, moments, decoys[:k], usable)
        if order is not None:
            break
    if order is None:
        raise SystemExit(f"gen_show: {len(moments)} moments do not fit in the show; "
                         f"give more --minutes")
    slack = usable - needed(order)
    weights = [rng.random() for _ in range(len(order) + 1)]
    shares = [slack * w / sum(weights) for w in weights]
    t = START_MARGIN_S
    prev = None
    for it, share in zip(order, shares):
        if prev is not None:
            t += gap(prev, it)
        t += share
        it["at"] = t - it["span"][0]
        t += it["span"][1] - it["span"][0]
        prev = it
    return order


def make_show(seed, minutes=None):
    """Draws the whole show. Returns (show, events, labels); no file is written."""
    rng = random.Random(seed)
    # The length is drawn even when it is given, so that --minutes changes only the length and
    # where things fall, not what the show holds.
    drawn = float(rng.randint(SHOW_MIN_S, SHOW_MAX_S))
    duration = float(round(minutes * 60)) if minutes else drawn
    prods = products(rng, seed, rng.randint(4, 6))
    skus = [p["sku"] for p in prods]
    n_moments = rng.choice([2, 2, 3])
    moment_skus = rng.sample(skus, n_moments)
    others = [s for s in skus if s not in moment_skus]
    moments = [new_moment(rng, s) for s in moment_skus]
    # Every show has at least one decoy, and the first one's kind goes round with the seed, so
    # that any five consecutive seeds hold every kind; the others come in a random order and stay
    # if they fit.
    first = DECOY_KINDS[seed % len(DECOY_KINDS)]
    rest = [k for k in DECOY_KINDS if k != first]
    rng.shuffle(rest)
    decoys = [new_decoy(rng, k, rng.choice(others)) for k in [first] + rest]
    margins = START_MARGIN_S + END_MARGIN_S
    if not minutes:
        # A drawn length too short for the moments and the first decoy grows, up to 6 minutes.
        fit = needed(sorted(moments + decoys[:1], key=lambda it: it["kind"] != "moment"))
        duration = max(duration, min(float(SHOW_MAX_S), float(math.ceil(fit + margins))))
    items = place(rng, moments, decoys, duration - margins)

    show = {"seed": seed, "duration": duration, "base_lufs": rng.uniform(-32, -28),
            "noise_seed": rng.randrange(1 << 30),
            # The host's level wanders by at most 1.5 dB: two slow sines, 40-90 s and 20-35 s.
            "wander": [(0.9, rng.uniform(40, 90), rng.uniform(0, 2 * math.pi)),
                       (0.6, rng.uniform(20, 35), rng.uniform(0, 2 * math.pi))],
            "loud": [], "silent": [], "slates": [], "cuts": []}
    events = []
    chat_mult = []  # (start, end, multiplier)
    labels = {"seed": seed, "duration": duration, "moments": [], "decoys": []}
    by_sku = {p["sku"]: p for p in prods}

    def pin(t, sku):
        events.append(dict({"type": "product_pinned", "t": r3(t)}, **by_sku[sku]))

    def unpin(t, sku):
        events.append({"type": "product_unpinned", "t": r3(t), "sku": sku})

    def cart(t, sku, q):
        events.append({"type": "add_to_cart", "t": r3(t), "sku": sku, "qty": q})

    for it in items:
        at = it["at"]
        if it["kind"] == "moment":
            onset, excite_end = at, at + it["excite_s"]
            show["loud"].append((onset, excite_end, it["gain_db"]))
            pin_t = at + it["pin_at"] if it["pin_at"] is not None else None
            if pin_t is not None:
                pin(pin_t, it["sku"])
            if it["unpin_at"] is not None:
                unpin(at + it["unpin_at"], it["sku"])
            for t, q in it["adds"]:
                cart(at + t, it["sku"], q)
            buy_start, buy_end = at + it["adds"][0][0], at + it["adds"][-1][0]
            chat_mult.append((onset, buy_end, it["chat_mult"]))
            start, end, start_why, end_why = boundaries(onset, excite_end, buy_end, pin_t)
            labels["moments"].append({
                "start": r3(start), "end": r3(end), "sku": it["sku"], "kind": "moment",
                "onset": r3(onset), "excite_end": r3(excite_end),
                "gain_db": round(it["gain_db"], 1),
                "pin": it["pin"], "pin_t": r3(pin_t) if pin_t is not None else None,
                "buy_start": r3(buy_start), "buy_end": r3(buy_end),
                "adds": sum(q for _, q in it["adds"]), "lag_s": r3(buy_start - onset),
                "start_why": start_why, "end_why": end_why})
            continue
        a, b = at + it["span"][0], at + it["span"][1]
        d = {"start": r3(a), "end": r3(b), "sku": it["sku"], "kind": it["kind"]}
        if it["kind"] == "loudness":
            show["loud"].append((a, b, it["gain_db"]))
            d["gain_db"] = round(it["gain_db"], 1)
            if it["chat_mult"] > 1:
                chat_mult.append((a, b, it["chat_mult"]))
        elif it["kind"] == "chat_spike":
            chat_mult.append((a, b, it["chat_mult"]))
        elif it["kind"] == "slate_buying":
            show["silent"].append((a, b))
            show["slates"].append((a, b, it["color"]))
            for t, q in it["adds"]:
                cart(at + t, it["sku"], q)
            d["buy_start"], d["buy_end"] = r3(at), r3(at + it["adds"][-1][0])
        elif it["kind"] == "unbought_pin":
            pin(a, it["sku"])
            if it["unpin_at"] is not None:
                unpin(at + it["unpin_at"], it["sku"])
        elif it["kind"] == "camera_cut":
            show["cuts"].append((a, b, it["source"], it["source_seed"]))
            d["source"] = it["source"]
        labels["decoys"].append(d)

    # Background buying: every product, one add per 20 to 90 s on average, all show long.
    for p in prods:
        rate = 1.0 / rng.uniform(20, 90)
        t = rng.expovariate(rate)
        while t < duration - 1:
            cart(t, p["sku"], qty(rng, 0.85))
            t += rng.expovariate(rate)

    # The chat service's rate every 5 s: a noisy normal count around the show's mean, multiplied
    # where a moment or a decoy raises it.
    chat_mean = rng.uniform(15, 60)
    t = CHAT_PERIOD_S
    while t < duration:
        mult = max([m for a, b, m in chat_mult if a < t <= b + CHAT_PERIOD_S] + [1.0])
        mean = chat_mean * mult
        count = max(0, round(rng.gauss(mean, 0.15 * mean)))
        events.append({"type": "chat_rate", "t": r3(t), "count": count,
                       "window_s": CHAT_PERIOD_S})
        t += CHAT_PERIOD_S

    order = {"product_pinned": 0, "add_to_cart": 1, "chat_rate": 2, "product_unpinned": 3}
    events.sort(key=lambda e: (e["t"], order[e["type"]], e.get("sku", "")))
    labels["moments"].sort(key=lambda m: m["start"])
    labels["decoys"].sort(key=lambda m: m["start"])
    labels["products"] = prods
    labels["base_lufs"] = round(show["base_lufs"], 1)
    return show, events, labels


def ffmpeg_argv(show, out_path):
    """The ffmpeg command that renders `show`: testsrc2 with the slates and the camera cuts laid
    over it for their spans; pink noise at the show's level, wandering slowly, louder where the
    host is excited and silent under the slates."""
    dur = show["duration"]
    inputs = ["-f", "lavfi", "-i", f"testsrc2=s={WIDTH}x{HEIGHT}:r={FPS}:d={dur}"]
    graph = []
    last = "0:v"
    n = 1
    overlays = [(a, b, f"color=c={c}:s={WIDTH}x{HEIGHT}:r={FPS},"
                 f"drawbox=x=40:y=30:w=240:h=120:color=white@0.85:t=fill,"
                 f"drawbox=x=60:y=50:w=200:h=20:color=black:t=fill")
                for a, b, c in show["slates"]]
    for a, b, src, sseed in show["cuts"]:
        overlays.append((a, b, {
            "mandelbrot": f"mandelbrot=s={WIDTH}x{HEIGHT}:r={FPS}",
            "life": f"life=s={WIDTH}x{HEIGHT}:r={FPS}:mold=10:ratio=0.3:seed={sseed}",
            "sierpinski": f"sierpinski=s={WIDTH}x{HEIGHT}:r={FPS}:seed={sseed}"}[src]))
    for a, b, spec in overlays:
        # Whole frames: the overlay covers frames round(a * FPS) to round(b * FPS) - 1 of the
        # picture, so its edges are within half a frame of the labels'. (An offset in seconds
        # would be truncated to the source's 1/FPS time base, and the span with it.)
        first, end = round(a * FPS), round(b * FPS)
        inputs += ["-f", "lavfi", "-i", spec]
        graph.append(f"[{n}:v]trim=end_frame={end - first},format=yuv420p,settb=1/{FPS},"
                     f"setpts=PTS-STARTPTS+{first}[o{n}]")
        graph.append(f"[{last}][o{n}]overlay=eof_action=pass[v{n}]")
        last = f"v{n}"
        n += 1
    graph.append(f"[{last}]format=yuv420p[v]")

    # anoisesrc's pink noise at amplitude 0.05 measures -40.6 LUFS (ebur128): scale from there.
    amp = 0.05 * 10 ** ((show["base_lufs"] + 40.6) / 20)
    inputs += ["-f", "lavfi", "-i",
               f"anoisesrc=color=pink:amplitude={amp:.5f}:seed={show['noise_seed']}:"
               f"sample_rate={SAMPLE_RATE}:d={dur}"]
    wander = "+".join(f"{a}*sin(2*PI*t/{p:.3f}+{ph:.3f})" for a, p, ph in show["wander"])
    chain = [f"volume='pow(10,({wander})/20)':eval=frame"]
    for a, b, g in show["loud"]:
        chain.append(f"volume={g:.2f}dB:enable='between(t,{a:.3f},{b:.3f})'")
    for a, b in show["silent"]:
        chain.append(f"volume=0:enable='between(t,{a:.3f},{b:.3f})'")
    graph.append(f"[{n}:a]" + ",".join(chain) + "[a]")

    return (["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y"] + inputs +
            ["-filter_complex", ";".join(graph), "-map", "[v]", "-map", "[a]",
             "-c:v", "libx264", "-preset", "ultrafast", "-g", str(FPS * GOP_S),
             "-keyint_min", str(FPS * GOP_S), "-sc_threshold", "0", "-threads", "1",
             "-c:a", "aac", "-b:a", "64k", "-ac", "1", "-ar", str(SAMPLE_RATE),
             "-fflags", "+bitexact", "-flags", "+bitexact", "-f", "mpegts", out_path])


def generate(seed, outdir, minutes=None):
    """Writes show.ts, events.jsonl and labels.json into outdir. Returns the labels."""
    show, events, labels = make_show(seed, minutes)
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "events.jsonl"), "w") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")
    with open(os.path.join(outdir, "labels.json"), "w") as f:
        json.dump(labels, f, indent=1)
        f.write("\n")
    ts = os.path.join(outdir, "show.ts")
    r = subprocess.run(ffmpeg_argv(show, ts + ".tmp"), capture_output=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({r.returncode}): {r.stderr.decode()[-2000:]}")
    os.replace(ts + ".tmp", ts)
    return labels


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("seed", type=int)
    ap.add_argument("outdir")
    ap.add_argument("--minutes", type=float,
                    help="the show's length (default: 4 to 6, drawn); a short show may hold no "
                    "decoy")
    args = ap.parse_args()
    t0 = time.monotonic()
    labels = generate(args.seed, args.outdir, args.minutes)
    kinds = ", ".join(d["kind"] for d in labels["decoys"]) or "none"
    print(f"seed {args.seed}: {labels['duration']:.0f} s, {len(labels['moments'])} moments, "
          f"decoys: {kinds}; rendered in {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
