#!/usr/bin/env python3
"""The scorer of the detector (tests/shorts/score.py) on hand-made cases (issue 13, acceptance 1).

Perfect matches, shifted boundaries, IoU exactly 0.5 (a match) and just under it (a miss and a
false positive), greedy matching by IoU rather than by order, one detection for one label, no
matching across shows, a false positive on a decoy and a matched detection overlapping one, no
detections at all, the plain-list form of the labels, malformed input, and the command line.
"""
import io
import json
import os
import subprocess
import sys

from swtest import check, run, tmpdir

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shorts"))
import score  # noqa: E402

SCORE_PY = os.path.join(os.path.dirname(score.__file__), "score.py")


def near(a, b):
    return a is not None and abs(a - b) < 1e-9


def moment(s, e, sku="a"):
    return {"start": s, "end": e, "sku": sku, "kind": "moment"}


def labels(moments, decoys=()):
    return {"moments": list(moments), "decoys": list(decoys)}


def main():
    two = labels([moment(30, 60), moment(120, 150, "b")])

    r = score.score(two, [{"start": 30, "end": 60, "score": 3}, {"start": 120, "end": 150}])
    check(r["tp"] == 2 and r["fp"] == 0 and r["fn"] == 0 and r["f1"] == 1.0
          and r["boundary_error"] == 0.0, f"perfect: F1 {r['f1']}, error {r['boundary_error']}")

    r = score.score(two, [{"start": 32, "end": 59}, {"start": 119, "end": 154}])
    check(r["tp"] == 2 and near(r["start_error"], 1.5) and near(r["end_error"], 2.5)
          and near(r["boundary_error"], 2.0),
          f"shifted by +2/-1 and -1/+4 s: start {r['start_error']}, end {r['end_error']}, "
          f"both {r['boundary_error']}")

    one = labels([moment(0, 20)])
    r = score.score(one, [{"start": 10, "end": 20}])
    check(r["tp"] == 1 and near(r["matches"][0]["iou"], 0.5),
          f"IoU exactly 0.5 is a match ({r['tp']})")
    r = score.score(one, [{"start": 10.1, "end": 20}])
    check(r["tp"] == 0 and r["fp"] == 1 and r["fn"] == 1 and r["f1"] == 0.0
          and r["boundary_error"] is None,
          f"IoU 0.495: a miss and a false positive (tp {r['tp']}, fp {r['fp']}, fn {r['fn']})")

    # The second detection fits better (IoU 0.95 against 0.82): greedy by IoU takes it although
    # the first one comes first; the first is then a false positive.
    r = score.score(one, [{"start": 2, "end": 22}, {"start": 0, "end": 19}])
    check(r["tp"] == 1 and r["matches"][0]["detection"]["start"] == 0 and r["fp"] == 1
          and near(r["precision"], 0.5) and r["recall"] == 1.0,
          "greedy by IoU, not by order: the better detection is the match")

    # One detection cannot count for two labels, nor two detections for one.
    r = score.score(labels([moment(0, 20), moment(21, 41)]), [{"start": 0, "end": 41}])
    check(r["tp"] == 0 and r["fn"] == 2, "one long detection over two moments matches none")
    r = score.score(one, [{"start": 0, "end": 20}, {"start": 0, "end": 20}])
    check(r["tp"] == 1 and r["fp"] == 1, "a duplicate detection is a false positive")

    # Shows are matched each within itself.
    r = score.score_many([(one, []), (labels([]), [{"start": 0, "end": 20}])], names=["x", "y"])
    check(r["tp"] == 0 and r["fn"] == 1 and r["fp"] == 1
          and r["false_positives"][0]["show"] == "y", "no matching across shows")
    r = score.score_many([(one, [{"start": 1, "end": 20}]), (two, [{"start": 30, "end": 62}])])
    check(r["tp"] == 2 and r["fn"] == 1 and near(r["recall"], 2 / 3) and r["precision"] == 1.0
          and near(r["f1"], 0.8) and near(r["boundary_error"], 0.75),
          f"pooled over shows: P {r['precision']}, R {r['recall']:.3f}, F1 {r['f1']:.3f}, "
          f"error {r['boundary_error']}")

    decoyed = labels([moment(100, 130)], [{"start": 10, "end": 25, "kind": "slate_buying"},
                                          {"start": 200, "end": 215, "kind": "loudness"}])
    r = score.score(decoyed, [{"start": 5, "end": 30}, {"start": 100, "end": 131},
                              {"start": 60, "end": 80}])
    fps = sorted((f["detection"]["start"], f["decoys"]) for f in r["false_positives"])
    check(r["tp"] == 1 and fps == [(5, ["slate_buying"]), (60, [])]
          and [(o["decoys"], o["matched"]) for o in r["on_decoy"]] == [(["slate_buying"], False)],
          f"a false positive on the slate decoy is named, one elsewhere is not: {fps}")
    r = score.score(labels([moment(100, 130)], [{"start": 128, "end": 140, "kind": "loudness"}]),
                    [{"start": 100, "end": 131}])
    check(r["tp"] == 1 and r["on_decoy"] and r["on_decoy"][0]["matched"],
          "a matched detection that overlaps a decoy is still reported on the decoy")
    out = io.StringIO()
    score.report(score.score(decoyed, [{"start": 5, "end": 30, "sku": "z"}]), out)
    check("false positive: show 0 [5.0, 30.0] sku z on decoy slate_buying" in out.getvalue()
          and "missed: show 0 [100.0, 130.0]" in out.getvalue(),
          "the report names the false positive's decoy and the miss")

    r = score.score(two, [])
    check(r["precision"] == 1.0 and r["recall"] == 0.0 and r["f1"] == 0.0 and r["fn"] == 2,
          "no detections: recall 0, F1 0")
    r = score.score([moment(0, 20), {"start": 50, "end": 60, "kind": "chat_spike"}],
                    [{"start": 0, "end": 20}, {"start": 52, "end": 58}])
    check(r["tp"] == 1 and r["fp"] == 1 and r["false_positives"][0]["decoys"] == ["chat_spike"],
          "labels as a plain list: kind moment is a moment, any other kind a decoy")

    bad = 0
    for dets in ([{"start": 1}], [{"start": "x", "end": 2}], [{"start": 5, "end": 1}], {"a": 1}):
        try:
            score.score(one, dets)
        except ValueError:
            bad += 1
    check(bad == 4, f"malformed detections raise ValueError ({bad} of 4)")

    tmp = tmpdir("sw-shorts-score-")
    paths = []
    for name, obj in (("l1", dict(one, seed=7)), ("d1", [{"start": 0, "end": 20}]),
                      ("l2", two), ("d2", [{"start": 300, "end": 320}])):
        paths.append(os.path.join(tmp, name + ".json"))
        with open(paths[-1], "w") as f:
            json.dump(obj, f)
    p = subprocess.run([sys.executable, SCORE_PY] + paths, capture_output=True, text=True,
                       timeout=30)
    check(p.returncode == 0 and "precision 0.500  recall 0.333  F1 0.400" in p.stdout
          and "mean boundary error 0.00 s" in p.stdout
          and f"false positive: show {paths[2]} [300.0, 320.0]" in p.stdout,
          f"the command line scores files in pairs: {p.stdout.strip()!r}")
    p = subprocess.run([sys.executable, SCORE_PY, paths[0]], capture_output=True, text=True,
                       timeout=30)
    check(p.returncode == 2 and "LABELS.json DETECTIONS.json" in p.stderr,
          "an odd number of files is a usage error")


run(main)
