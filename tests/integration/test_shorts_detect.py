#!/usr/bin/env python3
"""Detection quality of the offline detector on unseen shows (issue 13, acceptance 1).

tests/shorts/gen_show.py renders the evaluation shows, seeds 1001 to 1012 (4 to 6 minutes each,
2 or 3 moments that sell, with and without a pin, and decoys of every kind over the set: see
tests/shorts/README.md; the tuning seeds are 1 to 20 and never appear here). For each show,
`shortwave-origin --analyze show.ts --events events.jsonl` prints its detections as a JSON array;
tests/shorts/score.py matches them to the labels at temporal IoU >= 0.5. The goals: F1 >= 0.9,
mean boundary error <= 3 s, no detection on a decoy. The figures are printed per show and over
the set. Each detection also keeps the issue's contract: 15 to 60 s, no overlap, the matched
moment's product, its evidence.

The shows are generated into this test's temporary folder and removed with it (SW_KEEP_TMP=1
keeps them). About 90 s of rendering here, then the analyses.
"""
import json
import os
import subprocess
import sys
import time

from swtest import BIN, check, log, run, tmpdir

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shorts"))
import gen_show  # noqa: E402
import score  # noqa: E402

EVAL_SEEDS = list(range(1001, 1013))
TUNING_SEEDS = range(1, 21)
F1_MIN, BOUNDARY_MAX_S = 0.9, 3.0


def analyze(ts, events):
    """Runs the offline detector. Returns (detections or None, why not)."""
    argv = [os.path.join(BIN, "shortwave-origin"), "--analyze", ts, "--events", events]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return None, "--analyze ran for more than 30 s"
    except OSError as e:
        return None, f"cannot run {argv[0]}: {e}"
    if p.returncode != 0:
        return None, f"exit status {p.returncode}: {p.stderr.strip()[:400]}"
    try:
        dets = json.loads(p.stdout)
    except ValueError as e:
        return None, f"stdout is not JSON ({e}): {p.stdout[:300]!r}"
    if not isinstance(dets, list):
        return None, f"stdout is not a JSON array: {p.stdout[:300]!r}"
    return dets, ""


def contract(seed, labels, dets):
    """The issue's shape of a detection, checked on one show's detections."""
    ok = all(isinstance(d, dict) and all(isinstance(d.get(k), (int, float))
                                         for k in ("start", "end", "score"))
             and isinstance(d.get("sku"), str) and isinstance(d.get("evidence"), dict)
             for d in dets)
    if not check(ok, f"seed {seed}: each detection has start, end, score, sku and evidence"):
        return False
    spans = sorted((d["start"], d["end"]) for d in dets)
    check(all(15 - 0.05 <= e - s <= 60 + 0.05 and 0 <= s and e <= labels["duration"] + 0.5
              for s, e in spans) and all(a[1] <= b[0] for a, b in zip(spans, spans[1:])),
          f"seed {seed}: detections last 15 to 60 s, inside the show, without overlap: "
          + ", ".join(f"[{s:.1f}, {e:.1f}]" for s, e in spans))
    return True


def main():
    t0 = time.monotonic()
    check(not set(EVAL_SEEDS) & set(TUNING_SEEDS), "evaluation seeds are not tuning seeds")
    drawn = [gen_show.make_show(seed)[2] for seed in EVAL_SEEDS]
    kinds = {k: sum(d["kind"] == k for lab in drawn for d in lab["decoys"])
             for k in gen_show.DECOY_KINDS}
    pins = {p: sum(m["pin"] == p for lab in drawn for m in lab["moments"])
            for p in ("recent", "stale", "none")}
    check(all(n >= 2 for n in kinds.values()) and pins["recent"] and pins["none"] + pins["stale"],
          f"the set: {sum(len(lab['moments']) for lab in drawn)} moments (pin: {pins}), "
          f"decoys {kinds}")

    tmp = tmpdir("sw-shorts-detect-")
    shows = []
    for seed in EVAL_SEEDS:
        out = os.path.join(tmp, str(seed))
        g0 = time.monotonic()
        labels = gen_show.generate(seed, out)
        g1 = time.monotonic()
        dets, why = analyze(os.path.join(out, "show.ts"), os.path.join(out, "events.jsonl"))
        if not check(dets is not None, f"seed {seed}: shortwave-origin --analyze prints the "
                                       f"detections ({why or 'ok'})"):
            # The same binary would fail the same way on every show: stop here.
            break
        r = score.score(labels, dets, show=seed)
        log(f"seed {seed}: {labels['duration']:.0f} s, {len(labels['moments'])} moments, "
            f"{len(labels['decoys'])} decoys, {len(dets)} detections: tp {r['tp']} fp {r['fp']} "
            f"fn {r['fn']}, boundary error {score.fmt_s(r['boundary_error'])} "
            f"(render {g1 - g0:.1f} s, analyze {time.monotonic() - g1:.1f} s)")
        if contract(seed, labels, dets):
            wrong = [(m["label"]["sku"], m["detection"]["sku"]) for m in r["matches"]
                     if m["label"]["sku"] != m["detection"]["sku"]]
            check(not wrong, f"seed {seed}: matched detections name the moment's product "
                             f"{wrong or ''}")
        shows.append((labels, dets))

    check(len(shows) == len(EVAL_SEEDS), f"analyzed {len(shows)} of {len(EVAL_SEEDS)} shows")
    if shows:
        r = score.score_many(shows, names=EVAL_SEEDS[:len(shows)])
        score.report(r)
        check(r["f1"] >= F1_MIN, f"F1 {r['f1']:.3f} >= {F1_MIN} (precision "
                                 f"{r['precision']:.3f}, recall {r['recall']:.3f})")
        check(r["boundary_error"] is not None and r["boundary_error"] <= BOUNDARY_MAX_S,
              f"mean boundary error {score.fmt_s(r['boundary_error'])} <= {BOUNDARY_MAX_S} s "
              f"(start {score.fmt_s(r['start_error'])}, end {score.fmt_s(r['end_error'])})")
        check(not r["on_decoy"], "no detection on a decoy ("
              + ", ".join(f"{o['show']}: {'/'.join(o['decoys'])}" for o in r["on_decoy"]) + ")")
    log(f"{time.monotonic() - t0:.0f} s in all")


run(main)
