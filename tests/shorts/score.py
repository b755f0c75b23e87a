#!/usr/bin/env python3
"""Scores detected moments against labelled ones (issue 13, acceptance 1).

    score.py LABELS.json DETECTIONS.json [LABELS.json DETECTIONS.json ...]

LABELS.json is what gen_show.py writes ({"moments": [...], "decoys": [...]}; a plain list whose
true moments have "kind": "moment" and whose decoys have another kind works too). DETECTIONS.json
is what `shortwave-origin --analyze` prints: a JSON array of {"start", "end", ...}, seconds.

Within each show, detections and labelled moments are matched one to one, greedily by temporal
IoU (the highest pair first), a pair counting only at IoU >= 0.5. Over all the shows given it
prints precision, recall, F1, the mean absolute boundary error of the matched pairs (start, end
and both together), and every false positive with the decoys it overlaps. Exits 0 whatever the
figures; the tests decide what is good enough.

As a module: score(labels, detections) for one show, score_many([(labels, detections), ...]) for
a set; both return a dict (see score_many()).
"""
import json
import sys

IOU_MIN = 0.5


def iou(a, b):
    """Temporal intersection over union of two (start, end) intervals; 0 if either is empty."""
    inter = min(a[1], b[1]) - max(a[0], b[0])
    union = max(a[1], b[1]) - min(a[0], b[0])
    if inter <= 0 or union <= 0:
        return 0.0
    return inter / union


def split_labels(labels):
    """(moments, decoys) from either form of a labels file."""
    if isinstance(labels, dict):
        return list(labels.get("moments", [])), list(labels.get("decoys", []))
    moments = [x for x in labels if x.get("kind", "moment") == "moment"]
    return moments, [x for x in labels if x.get("kind", "moment") != "moment"]


def interval(x, what):
    """(start, end) of a label or a detection; ValueError if it has none that makes sense."""
    try:
        s, e = float(x["start"]), float(x["end"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{what}: expected an object with numeric start and end, got {x!r}")
    if not (s == s and e == e) or e < s:
        raise ValueError(f"{what}: start {s} and end {e} do not make an interval")
    return s, e


def match(moments, detections):
    """Greedy one-to-one matching by IoU >= IOU_MIN, the highest IoU first (ties: the earlier
    label, then the earlier detection). Returns [(moment index, detection index, iou)]."""
    pairs = []
    for i, m in enumerate(moments):
        for j, d in enumerate(detections):
            v = iou(interval(m, f"label {i}"), interval(d, f"detection {j}"))
            if v >= IOU_MIN:
                pairs.append((-v, i, j))
    pairs.sort()
    used_m, used_d, out = set(), set(), []
    for v, i, j in pairs:
        if i not in used_m and j not in used_d:
            used_m.add(i)
            used_d.add(j)
            out.append((i, j, -v))
    return sorted(out)


def score(labels, detections, show=None):
    """Scores one show. See score_many() for the dict returned."""
    return score_many([(labels, detections)], names=[show])


def score_many(shows, names=None):
    """Scores a set of shows, each (labels, detections), matched within itself. Returns
    {"tp", "fp", "fn", "precision", "recall", "f1",
     "start_error", "end_error", "boundary_error": mean absolute seconds over the matched pairs
       (boundary_error over starts and ends together), None without a match,
     "matches": [{"show", "label", "detection", "iou", "start_error", "end_error"}],
     "false_positives": [{"show", "detection", "decoys": [kinds it overlaps]}],
     "misses": [{"show", "label"}],
     "on_decoy": [{"show", "detection", "decoys", "matched"}]: every detection that overlaps a
       decoy, matched or not}.
    Precision is 1 when nothing was detected, recall 1 when nothing was labelled; F1 is their
    harmonic mean (0 when both are 0)."""
    names = names or [None] * len(shows)
    matches, fps, misses, on_decoy = [], [], [], []
    n_det = n_lab = 0
    for k, (labels, detections) in enumerate(shows):
        show = names[k] if names[k] is not None else k
        moments, decoys = split_labels(labels)
        if not isinstance(detections, list):
            raise ValueError(f"show {show}: detections must be a JSON array")
        n_det += len(detections)
        n_lab += len(moments)
        pairs = match(moments, detections)
        for i, j, v in pairs:
            (ms, me), (ds, de) = interval(moments[i], "label"), interval(detections[j], "det")
            matches.append({"show": show, "label": moments[i], "detection": detections[j],
                            "iou": v, "start_error": abs(ds - ms), "end_error": abs(de - me)})
        matched_m = {i for i, _, _ in pairs}
        matched_d = {j for _, j, _ in pairs}
        misses += [{"show": show, "label": m} for i, m in enumerate(moments) if i not in matched_m]
        for j, d in enumerate(detections):
            span = interval(d, f"show {show} detection {j}")
            hit = []
            for n, x in enumerate(decoys):
                xs, xe = interval(x, f"show {show} decoy {n}")
                if min(span[1], xe) > max(span[0], xs):
                    hit.append(x.get("kind", "?"))
            if hit:
                on_decoy.append({"show": show, "detection": d, "decoys": hit,
                                 "matched": j in matched_d})
            if j not in matched_d:
                fps.append({"show": show, "detection": d, "decoys": hit})
    tp = len(matches)
    precision = tp / n_det if n_det else 1.0
    recall = tp / n_lab if n_lab else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0

    def mean(xs):
        return sum(xs) / len(xs) if xs else None

    starts = [m["start_error"] for m in matches]
    ends = [m["end_error"] for m in matches]
    return {"tp": tp, "fp": len(fps), "fn": len(misses), "precision": precision,
            "recall": recall, "f1": f1, "start_error": mean(starts), "end_error": mean(ends),
            "boundary_error": mean(starts + ends), "matches": matches, "false_positives": fps,
            "misses": misses, "on_decoy": on_decoy}


def fmt_s(x):
    return "n/a" if x is None else f"{x:.2f} s"


def report(r, out=sys.stdout):
    """Prints a score_many() result: the figures, then every false positive and miss."""
    print(f"moments {r['tp'] + r['fn']}, detections {r['tp'] + r['fp']}: "
          f"tp {r['tp']}, fp {r['fp']}, fn {r['fn']}", file=out)
    print(f"precision {r['precision']:.3f}  recall {r['recall']:.3f}  F1 {r['f1']:.3f}", file=out)
    print(f"mean boundary error {fmt_s(r['boundary_error'])} (start {fmt_s(r['start_error'])}, "
          f"end {fmt_s(r['end_error'])}, over {r['tp']} matched)", file=out)
    for f in r["false_positives"]:
        d = f["detection"]
        where = "on decoy " + ", ".join(f["decoys"]) if f["decoys"] else "on no decoy"
        print(f"  false positive: show {f['show']} [{float(d['start']):.1f}, "
              f"{float(d['end']):.1f}] sku {d.get('sku')} {where}", file=out)
    for m in r["misses"]:
        lab = m["label"]
        print(f"  missed: show {m['show']} [{float(lab['start']):.1f}, {float(lab['end']):.1f}] "
              f"sku {lab.get('sku')}", file=out)
    for o in r["on_decoy"]:
        if o["matched"]:
            d = o["detection"]
            print(f"  matched detection overlapping decoy {', '.join(o['decoys'])}: show "
                  f"{o['show']} [{float(d['start']):.1f}, {float(d['end']):.1f}]", file=out)


def main(argv):
    if len(argv) < 2 or len(argv) % 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    shows, names = [], []
    for lp, dp in zip(argv[0::2], argv[1::2]):
        with open(lp) as f:
            labels = json.load(f)
        with open(dp) as f:
            detections = json.load(f)
        shows.append((labels, detections))
        names.append(labels.get("seed", lp) if isinstance(labels, dict) else lp)
    try:
        r = score_many(shows, names)
    except ValueError as e:
        print(f"score.py: {e}", file=sys.stderr)
        return 2
    report(r)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
