#!/usr/bin/env bash
# The shift ensemble at inference: the same trained weights imputing the same test fields with
# the K members rolled by random multiples of a declared shift (and their predictions rolled
# back) against plain members (`impute --shifts 0,0`), at K = 4, 10, 40 and two imputation seeds.
# A periodic network is exactly equivariant only to shifts its strides divide (4 sites for the
# default 3-level U-Net), so rolled members differ where the plain ones repeat the same error.
#   usage: bash scripts/shift_ensemble_check.sh RUN TEST.npz ROWS,COLS [OUT_DIR]
#   e.g.   bash scripts/shift_ensemble_check.sh docs/bench/curves/kolmogorov-32-pixel-20/seed-0/run-pixel \
#              docs/bench/curves/kolmogorov-32-pixel-20/seed-0/test.npz 8,1
# (RUN must be a periodic run; the law of the fields must be invariant under the shift.)
# Accuracy only: no seconds are compared, so it may share the machine.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
make -C "$root" --no-print-directory build >/dev/null
L="${LACUNA_BIN:-$root/target/release/lacuna}"
run="$1" test="$2" shift_step="$3" out="${4:-shift-ensemble-check}"
mkdir -p "$out"
printf '%-8s %4s %5s %12s\n' shifts K seed "MSE missing"
for shifts in 0,0 "$shift_step"; do
  for k in 4 10 40; do
    for seed in 0 1; do
      pred="$out/pred-${shifts/,/x}-k$k-s$seed.npz"
      $L --quiet impute --run "$run" --data "$test" --out "$pred" --ensemble "$k" --seed "$seed" --shifts "$shifts" >/dev/null
      mse=$($L --quiet eval --pred "$pred" --truth "$test" | sed -n 's/^MSE, missing entries: *//p')
      printf '%-8s %4s %5s %12s\n' "$shifts" "$k" "$seed" "$mse"
    done
  done
done | tee "$out/table.txt"
