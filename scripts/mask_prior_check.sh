#!/usr/bin/env bash
# Work II acceptance: a mask prior fitted on cloud-type (and swath) masks draws masks whose
# observed-fraction distribution and two-point correlation match the real ones within the stated
# tolerance (|Δ mean|, |Δ sd| of the observed fraction ≤ 0.05; |Δ correlation| ≤ 0.1 at every
# lag), checked by `lacuna masks compare --check` (exit status 1 otherwise).
#
#   bash scripts/mask_prior_check.sh [OUT_DIR]      (about 10 minutes on 2 cores)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${LACUNA_BIN:-$root/target/release/lacuna}"
OUT="${1:-mask-prior-check}"
mkdir -p "$OUT"
status=0
for pattern in cloud:0.5 swath:0.5; do
    name="${pattern%%:*}"
    "$BIN" --quiet data gen grf --n 1000 --mask "$pattern" --seed 1 --out "$OUT/$name.npz"
    [ -f "$OUT/prior-$name/prior.safetensors" ] || "$BIN" --quiet masks fit --data "$OUT/$name.npz" --out "$OUT/prior-$name" --steps 600
    echo "## $pattern"
    "$BIN" --quiet masks compare --prior "$OUT/prior-$name" --data "$OUT/$name.npz" --n 256 --check || status=1
done
exit $status
