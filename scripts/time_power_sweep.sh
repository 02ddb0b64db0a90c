#!/usr/bin/env bash
# Sweep of the training-time distribution t = t_eps + (1 − t_eps) U^p for the pixel partition
# and MissDiff on the demo's data (GRF 32×32, 20% pixels), 1000 steps each, seed 0.
# Prints the missing-entry MSE of the single-step K=10 ensemble. About 6 min per run on 2 cores.
#   usage: scripts/time_power_sweep.sh [OUT_DIR] [STEPS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
make -C "$root" --no-print-directory build >/dev/null
L="$root/target/release/lacuna"
out="${1:-sweep-out}"
steps="${2:-1000}"
mkdir -p "$out" && cd "$out"
# The same fields as `lacuna demo` (train seed 0, test seed 1000003).
$L data gen grf --out train.npz --n 2000 --size 32 --seed 0 --mask pixel:0.2 >/dev/null
$L data gen grf --out test.npz --n 100 --size 32 --seed 1000003 --mask pixel:0.2 >/dev/null
echo "| time_power | partition | MSE missing |"
echo "|---|---|---|"
for p in 1 2 3; do
  echo "time_power = $p.0" > "p$p.toml"
  for part in pixel missdiff; do
    run="run-$part-p$p"
    rm -rf "$run"
    $L --quiet train --data train.npz --out "$run" --config "p$p.toml" --partition "$part" --steps "$steps" >/dev/null
    $L --quiet impute --run "$run" --data test.npz --out "$run.npz" >/dev/null
    mse=$($L eval --pred "$run.npz" --truth test.npz | awk '/MSE, missing entries/ {print $4}')
    echo "| $p | $part | $mse |"
  done
done
