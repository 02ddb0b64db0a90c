#!/usr/bin/env bash
# Cost of a guided mask-prior draw (Work II), one mask per network call (how guided draws were
# made before batching) against the default batched sampler, in the same run and on the same
# prior and masks: GRF 32² masks under 90% cloud, a prior fitted for 300 steps (its quality does
# not change the cost), 64 guided draws per timing, each setting timed three times in turn.
# The draws are identical for any chunk (checked below); only the seconds differ. Run it with
# nothing else on the machine; the ratio is what carries over between machines.
#   usage: bash scripts/guided_draw_cost.sh [OUT_DIR]      (about 2 minutes on 2 cores)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
make -C "$root" --no-print-directory build >/dev/null
L="${LACUNA_BIN:-$root/target/release/lacuna}"
out="${1:-guided-draw-cost}"
mkdir -p "$out"
[ -f "$out/masks.npz" ] || $L --quiet data gen grf --size 32 --n 64 --mask cloud:0.9 --seed 0 --out "$out/masks.npz"
[ -f "$out/prior/prior.safetensors" ] || $L --quiet masks fit --data "$out/masks.npz" --out "$out/prior" --steps 300 >/dev/null
batched=$($L --quiet masks sample --prior "$out/prior" --guide "$out/masks.npz" --n 1 --out "$out/warm.npz" | sed -n 's/.*(\([0-9.]*\) ms per mask, \([0-9]*\) per.*/\2/p')
for rep in 1 2 3; do
  for chunk in 1 "$batched"; do
    $L --quiet masks sample --prior "$out/prior" --guide "$out/masks.npz" --n 1 --chunk "$chunk" \
      --out "$out/draws-$chunk.npz" | sed -n "s/^drew \([0-9]*\) guided masks in \([0-9.]*\)s (\([0-9.]*\) ms per mask.*/rep $rep chunk $chunk: \3 ms per guided mask/p"
  done
done | tee "$out/times.txt"
"${LACUNA_VENV:-$HOME/.cache/lacuna/torch-2.11.0}/bin/python" - "$out" "$batched" <<'PY'
import sys, numpy as np
out, batched = sys.argv[1], sys.argv[2]
a, b = (np.load(f"{out}/draws-{c}.npz")["mask"] for c in ("1", batched))
assert np.array_equal(a, b), "the draws depend on the chunk"
t = {}
for line in open(f"{out}/times.txt"):
    words = line.split()
    t.setdefault(words[3].rstrip(":"), []).append(float(words[4]))
one, many = np.median(t["1"]), np.median(t[batched])
print(f"median ms per guided mask: one per call {one:.1f}, {batched} per call {many:.1f}; "
      f"batched / one-at-a-time = {many / one:.3f} (same draws)")
PY
