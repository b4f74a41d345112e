#!/usr/bin/env python3
"""Per-kernel time of one training step from an Nsight Compute CSV (docs/gpu.md).

    ncu --metrics gpu__time_duration.sum --csv --clock-control none --cache-control none \
        anvil train ... run.steps=3 > step.csv
    tools/kernel_table.py step.csv

The kernel list is cut where --step-start matches (the first kernel of each forward, the
token embedding by default); the step reported is the last piece as long as the one before
it (the first step differs by the GEMM tuning launches, the last piece may be a validation
forward). Prints the kernels grouped by category and by name, with times in ms.
"""
import argparse
import collections
import csv
import re
import sys

CATEGORIES = [  # first match wins
    ("gemm", r"gemm|xmma|cutlass|nvjet|cublas|splitK|sm90_"),
    ("attention", r"attention|flash|fmha"),
    ("cross-entropy", r"cross_entropy|softmax"),
    ("norm", r"norm"),
    ("optimizer", r"adamw|muon|global_norm|sum_of_squares|clip"),
    ("embedding", r"embedding|iota"),
    ("column sums", r"column_sum"),
]


def category(name):
    for label, pattern in CATEGORIES:
        if re.search(pattern, name, re.IGNORECASE):
            return label
    return "other"


def read_kernels(path):
    rows = []
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]  # skip the program's own output
    for row in csv.DictReader(lines):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        value = float(row["Metric Value"].replace(",", ""))
        scale = {"nsecond": 1e-6, "usecond": 1e-3, "msecond": 1.0, "ns": 1e-6, "us": 1e-3, "ms": 1.0}
        rows.append((row["Kernel Name"], value * scale.get(row.get("Metric Unit", "nsecond"), 1e-6)))
    return rows


def last_step(rows, start):
    cuts = [i for i, (name, _) in enumerate(rows) if re.search(start, name)] + [len(rows)]
    pieces = [rows[a:b] for a, b in zip(cuts, cuts[1:])]
    for before, piece in reversed(list(zip(pieces, pieces[1:]))):
        if [n for n, _ in before] == [n for n, _ in piece]:
            return piece
    sys.exit(f"no two consecutive steps with the same kernels (cut at {start!r}: {len(pieces)} pieces)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("csv")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--step-start", default=r"^[^(]*embedding(_vec)?_kernel", help="regex of a step's first kernel")
    args = parser.parse_args()
    rows = read_kernels(args.csv)
    if not rows:
        sys.exit(f"{args.csv}: no gpu__time_duration.sum rows")
    step = last_step(rows, args.step_start)
    total = sum(t for _, t in step)
    print(f"{len(rows)} kernels profiled; last step: {len(step)} kernels, {total:.2f} ms of kernel time")
    by_category = collections.Counter()
    by_name = collections.Counter()
    calls = collections.Counter()
    for name, t in step:
        by_category[category(name)] += t
        short = re.sub(r"\(.*", "", name)[:90]
        by_name[short] += t
        calls[short] += 1
    for label, t in by_category.most_common():
        print(f"  {label:<14} {t:8.2f} ms {100 * t / total:5.1f}%")
    print(f"top {args.top} kernels:")
    for name, t in by_name.most_common(args.top):
        print(f"  {t:8.3f} ms {100 * t / total:5.1f}% {calls[name]:4d} calls  {name}")


if __name__ == "__main__":
    main()
