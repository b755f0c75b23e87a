#!/usr/bin/env python3
"""Shorts benchmark: the moment detector's analysis CPU per stream, beside ffmpeg's stream copy of
the same input in the same run. Prints figures; it is not a test and always exits 0.

    python3 bench/shorts_bench.py [--seed 7] [--minutes 5] [--runs 5]

It renders one synthetic show (tests/shorts/gen_show.py, H.264 320x180 15 fps + AAC mono 48 kHz),
then alternates `shortwave-origin --analyze show.ts --events events.jsonl` (audio decoded, EBU R128
short-term loudness every 100 ms, every video packet's size, the detector) and
`ffmpeg -i show.ts -c copy -f null -`, and reports each one's CPU (user + system of the child) as
a percentage of one core per second of media: what analysing one live stream costs. The media
cost of the analysis is the audio decode and the loudness, which do not depend on the picture's
size: a 1080p show costs the same but for the demuxing of bigger packets. Goal: under 1 % of a
core per stream.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_of(argv):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return r.returncode, cpu, r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7, help="show seed (a tuning seed; default 7)")
    ap.add_argument("--minutes", type=float, default=5, help="show length (default 5)")
    ap.add_argument("--runs", type=int, default=5, help="runs of each (default 5)")
    ap.add_argument("--origin", default=os.path.join(ROOT, "build", "bin", "shortwave-origin"))
    a = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="shortwave-shorts-bench-") as tmp:
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "shorts", "gen_show.py"),
                        str(a.seed), tmp, "--minutes", str(a.minutes)], check=True,
                       stdout=subprocess.DEVNULL, timeout=600)
        ts, ev = os.path.join(tmp, "show.ts"), os.path.join(tmp, "events.jsonl")
        dur = float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                                    "-of", "csv=p=0", ts], capture_output=True,
                                   check=True).stdout)
        print(f"show: seed {a.seed}, {dur:.1f} s, {os.path.getsize(ts)} bytes, "
              f"{sum(1 for _ in open(ev))} events")
        ana, cp = [], []
        moments = None
        for _ in range(a.runs):
            rc, cpu, out = cpu_of([a.origin, "--analyze", ts, "--events", ev])
            if rc != 0:
                print(f"--analyze failed (rc {rc})")
                return
            moments = len(json.loads(out))
            ana.append(cpu)
            rc, cpu, _ = cpu_of(["ffmpeg", "-nostdin", "-v", "error", "-i", ts, "-c", "copy",
                                 "-f", "null", "-"])
            cp.append(cpu)
        a_pct = statistics.median(ana) / dur * 100
        c_pct = statistics.median(cp) / dur * 100
        print(f"analysis: {statistics.median(ana):.2f} s CPU (min {min(ana):.2f}, max "
              f"{max(ana):.2f}) for {dur:.0f} s of media: {a_pct:.3f} % of a core per stream "
              f"({moments} moments found)")
        print(f"ffmpeg -c copy -f null: {statistics.median(cp):.2f} s CPU: {c_pct:.3f} % of a core")
        print(f"analysis / stream copy: {a_pct / c_pct:.1f}x")
        print(f"goal: under 1 % of a core per stream: {'goal met' if a_pct < 1 else 'goal missed'}")


main()
