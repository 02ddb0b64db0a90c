#!/usr/bin/env bash
# The README's figure: the committed COADS SST slice (real ship-track gaps, land from relief)
# completed by thin-plate (biharmonic) inpainting and by kriging with a covariance fitted to the
# observations (its std panel too), drawn as a map by `lacuna plot`.
#   bash scripts/readme_figure.sh [OUT.png]     (default docs/figures/coads-map.png)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${LACUNA_BIN:-$root/target/release/lacuna}"
out="${1:-$root/docs/figures/coads-map.png}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
nc="$root/tests/data/coads_sst_slice.nc"
"$BIN" --quiet data import "$nc" --var SST --observable "$nc:ROSE<0" --out "$tmp/coads.npz" >/dev/null
"$BIN" baseline biharmonic --data "$tmp/coads.npz" --out "$tmp/biharmonic.npz" >/dev/null
"$BIN" baseline krige --data "$tmp/coads.npz" --train "$tmp/coads.npz" --out "$tmp/krige.npz" >/dev/null
"$BIN" plot "$tmp/coads.npz" --pred "$tmp/biharmonic.npz" --pred "$tmp/krige.npz" --n 2 --out "$out"
