#!/usr/bin/env bash
# The denoiser's interpolant, the fill against kriging (`--interpolant`; docs/results.md §0,
# "The kriging interpolant"): retrains a finished bench run twice with its own configuration,
# fields and scoring file, once with each interpolant, for STEPS steps or SECONDS of training,
# and prints each run's held-out curve (the EMA weights scored on the bench's test fields).
# The bench run is only read. Accuracy at a fixed step does not depend on machine load; a time
# budget does: give SECONDS only with nothing else running.
#   usage: scripts/interpolant_check.sh BENCH_RUN_DIR OUT_DIR STEPS [SECONDS]
#   e.g.   scripts/interpolant_check.sh docs/bench/results/grf-32-pixel-20/seed-0/run-pixel grf-check 2000
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
make -C "$root" --no-print-directory build >/dev/null
L="$root/target/release/lacuna"
run="$(cd "$1" && pwd)"
out="$2"
steps="$3"
seconds="${4:-}"
[ -f "$run/config.toml" ] || { echo "$run: no config.toml (not a run directory)" >&2; exit 2; }
data="$(dirname "$run")/train.npz"
[ -f "$data" ] || { echo "$data: the bench's training fields are not beside the run" >&2; exit 2; }
mkdir -p "$out"
for i in fill krige; do
  cfg="$out/$i.toml"
  # The bench's configuration with this interpolant, these steps, and no early stop.
  python3 - "$run/config.toml" "$cfg" "$i" "$steps" "$seconds" <<'PY'
import re, sys
src, dst, interp, steps, seconds = sys.argv[1:]
text = open(src).read()
text = re.sub(r"^interpolant = .*\n", "", text, flags=re.M)
text = re.sub(r"^\[denoiser\]\n", f'[denoiser]\ninterpolant = "{interp}"\n', text, flags=re.M)
text = re.sub(r"^steps = .*$", f"steps = {steps}", text, count=1, flags=re.M)
text = re.sub(r"^(val_every|checkpoint_every) = .*$", rf"\1 = {steps}", text, flags=re.M)
text = re.sub(r"^time_budget = .*\n", "", text, flags=re.M)
if seconds:
    text = re.sub(r"^(steps = .*)$", rf"\1\ntime_budget = {seconds}", text, count=1, flags=re.M)
text = re.sub(r"^patience = .*$", "patience = 0", text, flags=re.M)
open(dst, "w").write(text)
PY
  [ -f "$out/run-$i/bench-done" ] || {
    rm -rf "$out/run-$i"
    $L train --config "$cfg" --data "$data" --out "$out/run-$i" 2>&1 | grep -E '^interpolant|^trained' || true
    touch "$out/run-$i/bench-done"
  }
done
for i in fill krige; do
  python3 - "$out/run-$i/metrics.jsonl" "$i" <<'PY'
import json, sys
path, name = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(path)]
scores = [r for r in rows if "score_mse" in r]
print(f"{name}: " + "  ".join(
    f"step {r['step']} ({r['seconds']:.0f} s) {r['score_mse']:.5g}"
    + (f" ({r['score_ratio']:.3f}x)" if r.get("score_ratio") else "") for r in scores))
PY
done
