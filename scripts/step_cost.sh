#!/usr/bin/env bash
# Training seconds for 300 steps (batch 16, no scoring) of the published recipe, today's
# defaults without and with `periodic`, one after another on the fields of a curves bench
# (docs/results.md §0). Run it with nothing else on the machine.
#   usage: scripts/step_cost.sh FIELDS_DIR [OUT_DIR]     (FIELDS_DIR holds train.npz)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
make -C "$root" --no-print-directory build >/dev/null
L="$root/target/release/lacuna"
fields="$1"
out="${2:-step-cost}"
mkdir -p "$out"
cat > "$out/published.toml" <<'TOML'
inference_context_ratio = 0
time_low_share = 0
[denoiser]
skip = "none"
fill_input = false
noise_cond = "time"
fill_sweeps = 0
fill_cg = 0
[optim]
lr = 0.001
TOML
printf 'time_low_share = 0.5\n' > "$out/defaults.toml"
printf 'time_low_share = 0.5\nperiodic = true\n' > "$out/periodic.toml"
for c in published defaults periodic; do
  rm -rf "$out/run-$c"
  $L --quiet train --data "$fields/train.npz" --out "$out/run-$c" --config "$out/$c.toml" \
    --steps 300 --score-every 0 --patience 0 >/dev/null
  grep '"step":300,' "$out/run-$c/metrics.jsonl" | head -1 | python3 -c "
import json, sys
d = json.loads(sys.stdin.read())
print(f\"$c: {d['seconds']:.1f} s for 300 steps ({d['seconds'] / 300:.3f} s per step), loss_mean {d['loss_mean']:.7f}\")"
done
