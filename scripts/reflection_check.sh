#!/usr/bin/env bash
# Declared reflections on Kolmogorov 32² snapshots with 20% pixels (docs/results.md, "Declared
# reflections"): trains today's defaults (`periodic`, shift symmetry 8,1) with and without
# training-time reflections, imputes the test fields with and without reflected members, and
# prints the missing-entry MSE of each pair beside fitted kriging. MSE at a fixed step count
# does not depend on machine load; the runs take ~15 minutes on 2 cores at 1000 steps.
#   usage: scripts/reflection_check.sh [OUT_DIR] [STEPS] [GROUP]     (GROUP: rot180 by default)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
make -C "$root" --no-print-directory build >/dev/null
L="$root/target/release/lacuna"
out="${1:-reflection-check}"
steps="${2:-1000}"
group="${3:-rot180}"
mkdir -p "$out"
cd "$out"
[ -f train.npz ] || $L --quiet data gen kolmogorov --size 32 --n 2000 --mask pixel:0.2 --seed 11 --out train.npz
[ -f test.npz ] || $L --quiet data gen kolmogorov --size 32 --n 100 --mask pixel:0.2 --seed 12 --out test.npz
mse() { $L --quiet eval --truth test.npz --pred "$1" | sed -n 's/^MSE, missing entries: *//p'; }
for r in none "$group"; do
  [ -f "run-$r/bench-done" ] || {
    rm -rf "run-$r"
    $L --quiet train --data train.npz --out "run-$r" --periodic --shift-symmetry 8,1 --reflections "$r" \
      --steps "$steps" --score-every 0 --patience 0 >/dev/null
    touch "run-$r/bench-done"
  }
done
for r in none "$group"; do
  for i in none "$group"; do
    $L --quiet impute --run "run-$r" --data test.npz --out "imp-$r-$i.npz" --reflections "$i" >/dev/null
    echo "trained with $r, members $i: $(mse "imp-$r-$i.npz")"
  done
done
$L --quiet baseline krige --data test.npz --train train.npz --out krige.npz >/dev/null
echo "kriging, fitted covariance: $(mse krige.npz)"
