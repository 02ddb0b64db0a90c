#!/usr/bin/env bash
# The README's data figures: a few samples of every data kind and observation pattern, drawn by
# `lacuna plot` (left column truth, right column the observed entries, grey = missing).
#   usage: scripts/data_figures.sh [OUT_DIR]   (default docs/img; about a minute on 2 cores)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
make -C "$root" --no-print-directory build >/dev/null
L="$root/target/release/lacuna"
out="${1:-$root/docs/img}"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fig() { # name kind mask rows [gen options...]
  local name="$1" kind="$2" mask="$3" rows="$4"
  shift 4
  $L --quiet data gen "$kind" --out "$tmp/$name.npz" --n "$rows" --seed 1 --mask "$mask" "$@" >/dev/null
  $L plot "$tmp/$name.npz" --out "$out/$name.png" --n "$rows" --zoom 2
}
fig data-grf grf pixel:0.2 3 --size 64
fig data-kolmogorov kolmogorov block:3:1 3 --per-run 3
fig data-shallow-water shallow-water block:3:4 1 --size 64
fig data-advection advection swath:0.5 3
fig pattern-cloud grf cloud:0.4 3 --size 64
fig pattern-sensors grf sensors:300 3 --size 64
