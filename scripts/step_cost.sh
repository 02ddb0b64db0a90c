#!/usr/bin/env bash
# Training seconds for STEPS steps (default 300; batch 16, no scoring) of the published recipe,
# today's defaults without and with `periodic` (and, when asked, `shift`: periodic with the
# Kolmogorov shift symmetry 8,1; `nofill`: that without the fill's sweeps and CG iterations;
# `bf16`: periodic with the network's forward in bfloat16 autocast, `bf16zero` the same unpadded),
# one after another on the fields of a curves bench (docs/results.md §0). Prints the seconds
# per step over the whole run and from step 50 on (past the first steps' start-up).
# Run it with nothing else on the machine.
#   usage: [STEPS=N] [LACUNA=BINARY] scripts/step_cost.sh FIELDS_DIR [OUT_DIR] ["CONFIGS"]
#          (FIELDS_DIR holds train.npz; CONFIGS default "published defaults periodic";
#          LACUNA: another build to time, e.g. a copy of an older commit's, instead of this one's)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${LACUNA:-}" ]; then make -C "$root" --no-print-directory build >/dev/null; fi
L="${LACUNA:-$root/target/release/lacuna}"
fields="$1"
out="${2:-step-cost}"
configs="${3:-published defaults periodic}"
steps="${STEPS:-300}"
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
printf 'time_low_share = 0.5\nperiodic = true\nshift_symmetry = [8, 1]\n' > "$out/shift.toml"
printf 'time_low_share = 0.5\nperiodic = true\nshift_symmetry = [8, 1]\n[denoiser]\nfill_sweeps = 0\nfill_cg = 0\n' > "$out/nofill.toml"
printf 'time_low_share = 0.5\nperiodic = true\n[model]\nprecision = "bfloat16"\n' > "$out/bf16.toml"
printf 'time_low_share = 0.5\n[model]\nprecision = "bfloat16"\n' > "$out/bf16zero.toml"
for c in $configs; do
  rm -rf "$out/run-$c"
  $L --quiet train --data "$fields/train.npz" --out "$out/run-$c" --config "$out/$c.toml" \
    --steps "$steps" --score-every 0 --patience 0 >/dev/null
  python3 - "$out/run-$c/metrics.jsonl" "$c" "$steps" <<'PY'
import json, sys
path, name, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
# The first line of each step (a validation step writes a second one).
seconds, last = {}, None
for line in open(path):
    d = json.loads(line)
    if "loss_mean" in d and d["step"] not in seconds:
        seconds[d["step"]] = d["seconds"]
        if d["step"] == steps:
            last = d
later = (seconds[steps] - seconds[50]) / (steps - 50) if 50 in seconds and steps > 50 else float("nan")
print(f"{name}: {last['seconds']:.1f} s for {steps} steps ({last['seconds'] / steps:.3f} s per step, "
      f"{later:.4f} from step 50), loss_mean {last['loss_mean']:.7f}")
PY
done
