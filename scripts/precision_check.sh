#!/usr/bin/env bash
# The network's arithmetic, float32 against bfloat16 mixed precision (`--precision`), on
# Kolmogorov 32² snapshots with 20% pixels (docs/results.md §0, "Mixed precision"): trains
# today's defaults (`periodic`, shift symmetry 8,1) for STEPS steps with each, one after the
# other, scoring the EMA weights on the test fields every 250 steps, and prints each run's
# seconds per step (from step 50) and curve beside fitted kriging. Accuracy at a fixed step
# does not depend on machine load, the seconds do: run it with nothing else on the machine.
#   usage: scripts/precision_check.sh [OUT_DIR] [STEPS]      (~10 minutes at 1000 steps here)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
make -C "$root" --no-print-directory build >/dev/null
L="$root/target/release/lacuna"
out="${1:-precision-check}"
steps="${2:-1000}"
mkdir -p "$out"
cd "$out"
[ -f train.npz ] || $L --quiet data gen kolmogorov --size 32 --n 2000 --mask pixel:0.2 --seed 11 --out train.npz
[ -f test.npz ] || $L --quiet data gen kolmogorov --size 32 --n 100 --mask pixel:0.2 --seed 12 --out test.npz
for p in float32 bfloat16; do
  [ -f "run-$p/bench-done" ] || {
    rm -rf "run-$p"
    $L --quiet train --data train.npz --out "run-$p" --periodic --shift-symmetry 8,1 --precision "$p" \
      --steps "$steps" --score-every 250 --score-data test.npz --patience 0 >/dev/null
    touch "run-$p/bench-done"
  }
done
for p in float32 bfloat16; do
  python3 - "run-$p/metrics.jsonl" "$p" <<'PY'
import json, sys
path, name = sys.argv[1], sys.argv[2]
seconds, scores = {}, []
for line in open(path):
    d = json.loads(line)
    if "loss_mean" in d and d["step"] not in seconds:
        seconds[d["step"]] = d["seconds"]
    if "score_mse" in d:
        scores.append(f"{d['step']}: {d['score_mse']:.3f}")
last = max(seconds)
rate = (seconds[last] - seconds[50]) / (last - 50) if 50 in seconds and last > 50 else float("nan")
print(f"{name}: {rate:.3f} s per step from step 50; held-out MSE by step: {', '.join(scores)}")
PY
done
[ -f krige.npz ] || $L --quiet baseline krige --data test.npz --train train.npz --out krige.npz >/dev/null
echo "kriging, fitted covariance: $($L --quiet eval --truth test.npz --pred krige.npz | sed -n 's/^MSE, missing entries: *//p')"
