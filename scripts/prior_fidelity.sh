#!/usr/bin/env bash
# How many fitting steps and sampler steps a mask prior needs to draw masks like the real ones:
# fits one prior per fitting length on TRAIN's masks, then `lacuna masks compare --check` (the
# §6 tolerance: observed-fraction mean and sd within 0.05, two-point correlation within 0.1 at
# every lag) of 256 draws at each sampler length against TEST's masks and against TRAIN's own.
# A sampler length only changes the prior.toml of a copy; the fitted weights are shared.
#   usage: bash scripts/prior_fidelity.sh TRAIN.npz TEST.npz [OUT_DIR] ["FIT_STEPS"] ["SAMPLE_STEPS"]
#   e.g.   bash scripts/prior_fidelity.sh data/real/ostia-train.npz data/real/ostia-test.npz \
#            prior-fidelity "600 1000 3000" "20 50 100"     (about 10 minutes on 2 cores)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
make -C "$root" --no-print-directory build >/dev/null
L="${LACUNA_BIN:-$root/target/release/lacuna}"
train="$1"; test="$2"; out="${3:-prior-fidelity}"
fits="${4:-600 1000 3000}"; samplers="${5:-20 50 100}"
mkdir -p "$out"
printf '| fit steps | sampler steps | vs | Δ fraction mean | Δ fraction sd | max Δ correlation | check |\n|---|---|---|---|---|---|---|\n'
for f in $fits; do
  [ -f "$out/fit-$f/prior.safetensors" ] || $L --quiet masks fit --data "$train" --out "$out/fit-$f" --steps "$f" --seed 0 >/dev/null
  for s in $samplers; do
    p="$out/fit-$f-s$s"
    rm -rf "$p" && cp -r "$out/fit-$f" "$p"
    sed -i "s/^sample_steps = .*/sample_steps = $s/" "$p/prior.toml"
    for against in test train; do
      data="$test"; [ "$against" = train ] && data="$train"
      $L --quiet masks compare --prior "$p" --data "$data" --n 256 --json --draws-only > "$p/compare-$against.json"
      python3 - "$p/compare-$against.json" "$f" "$s" "$against" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["comparison"]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {c['fraction_mean_diff']:.3f} | {c['fraction_sd_diff']:.3f} "
      f"| {c['correlation_max_diff']:.3f} | {'within' if c['within'] else 'outside'} |")
PY
    done
  done
done
