#!/usr/bin/env bash
# What the guide-only-when-sparse rule of `--partition prior` (guide_below, default 0.3) chooses
# on each Work II data set: a mask prior fitted on the training masks (600 steps, as the benches
# fit it), then `lacuna masks compare` on those masks reports the share of the observed sites an
# unguided context M̂ ⊙ M keeps and whether the default guides. The real sets need
# `bash scripts/get_real_data.sh` first (COADS is the committed slice with its own gaps, before
# the bench's held-out masking, which removes more).
#   usage: bash scripts/guidance_rule_check.sh [OUT_DIR]     (about 20 minutes on 2 cores)
#   SETS="coads ncep ostia" bash scripts/guidance_rule_check.sh   # only those rows
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
make -C "$root" --no-print-directory build >/dev/null
L="${LACUNA_BIN:-$root/target/release/lacuna}"
out="${1:-guidance-rule}"
mkdir -p "$out"
slice="$root/tests/data/coads_sst_slice.nc"
[ -f "$out/coads.npz" ] || $L --quiet data import "$slice" --var SST --observable "$slice:ROSE<0" --out "$out/coads.npz"
for c in 0.5 0.8 0.9; do
  [ -f "$out/grf-cloud-$c.npz" ] || $L --quiet data gen grf --size 32 --n 400 --mask "cloud:$c" --seed 0 --out "$out/grf-cloud-$c.npz"
done
sets=("grf-cloud-0.5:$out/grf-cloud-0.5.npz" "grf-cloud-0.8:$out/grf-cloud-0.8.npz" "grf-cloud-0.9:$out/grf-cloud-0.9.npz"
      "coads:$out/coads.npz" "ncep:$root/data/real/safrica-train.npz" "ostia:$root/data/real/ostia-train.npz")
{
printf '| data (training masks) | observed share | unguided context share | default prior |\n|---|---|---|---|\n'
for entry in "${sets[@]}"; do
  case " ${SETS:-all} " in *" all "*|*" ${entry%%:*} "*) ;; *) continue ;; esac
  name="${entry%%:*}"; data="${entry#*:}"
  [ -f "$data" ] || { echo "| $name | missing: $data (scripts/get_real_data.sh) | | |"; continue; }
  [ -f "$out/prior-$name/prior.safetensors" ] || $L --quiet masks fit --data "$data" --out "$out/prior-$name" --steps 600 >/dev/null
  $L --quiet masks compare --prior "$out/prior-$name" --data "$data" --n 64 --json > "$out/compare-$name.json"
  python3 - "$name" "$out/compare-$name.json" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
obs = r["comparison"]["real"]["fraction_mean"]
print(f"| {name} | {obs:.3f} | {r['unguided_share']:.3f} | {'guided' if r['default_guides'] else 'unguided intersection'} |")
PY
done
} | tee "$out/rule.md"
