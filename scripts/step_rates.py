#!/usr/bin/env python3
"""Seconds per training step of runs, from their metrics.jsonl: the median, minimum and maximum
over the intervals between consecutive logged steps (how steady the machine was during a run).

    usage: scripts/step_rates.py RUN_DIR [RUN_DIR ...]
    e.g.   scripts/step_rates.py docs/bench/curves-fused/kolmogorov-32-pixel-20/seed-*/run-*
"""
import json
import sys


def rates(run):
    seen = {}
    with open(f"{run}/metrics.jsonl") as f:
        for line in f:
            d = json.loads(line)
            if "loss_mean" in d and d["step"] not in seen:  # a step's first line
                seen[d["step"]] = d["seconds"]
    steps = sorted(seen)
    return sorted((seen[b] - seen[a]) / (b - a) for a, b in zip(steps, steps[1:]))


if len(sys.argv) < 2:
    sys.exit(__doc__)
for run in sys.argv[1:]:
    r = rates(run)
    if not r:
        print(f"{run}: fewer than two logged steps")
        continue
    print(f"{run}: median {r[len(r) // 2]:.3f}, min {r[0]:.3f}, max {r[-1]:.3f} s per step ({len(r)} intervals)")
