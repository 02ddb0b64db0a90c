#!/usr/bin/env bash
# Guards re-layouts that must not change results: a fixed train + impute (same seed, same
# generated data, CPU, one intra-op thread so reductions run in one order) and the SHA-256 of the
# imputed `mean` and `samples` arrays, and of the quick bench suite's tables at a 20-step budget
# (one seed; the seconds column dropped), compared with the hashes in scripts/repro_hash.txt.
# Kernels differ between CPU families (AVX2 / AVX-512), so the stored hashes hold on the machine
# that stored them; `--store` writes this machine's hashes (do it on the old code, then compare
# on the new).
#   usage: scripts/repro_hash.sh [--store]     (LACUNA_BIN=PATH: that binary instead of this checkout's)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -n "${LACUNA_BIN:-}" ]; then L="$(realpath "$LACUNA_BIN")"; else
  make -C "$root" --no-print-directory build >/dev/null
  L="$root/target/release/lacuna"
fi
stored="$root/scripts/repro_hash.txt"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
cd "$work"
$L --quiet data gen grf --out train.npz --n 96 --size 16 --length-scale 3 --mask pixel:0.3 --seed 5
$L --quiet data gen grf --out test.npz --n 8 --size 16 --length-scale 3 --mask pixel:0.3 --seed 6
$L --quiet train --data train.npz --out run --steps 40 --batch 8 --seed 3 --score-every 20 --patience 0 >/dev/null
$L --quiet impute --run run --data test.npz --out single.npz --ensemble 4 --seed 7 >/dev/null
$L --quiet impute --run run --data test.npz --out multi.npz --ensemble 2 --steps 5 --samples 2 --seed 7 >/dev/null
$L --quiet bench --suite quick --steps 20 --seeds 1 --out quick >/dev/null
now="$(python3 - <<'PY'
import hashlib, zipfile
for f, a in [("single.npz", "mean"), ("multi.npz", "mean"), ("multi.npz", "samples")]:
    print(f"{f}:{a} {hashlib.sha256(zipfile.ZipFile(f).read(a + '.npy')).hexdigest()}")
# The quick suite's table: its method and metric columns (the first four) and seed count (the
# last), without the seconds and any descriptive columns added since (context share, query
# balance), and without the separator rows whose width follows the columns.
rows = []
for line in open("quick/results.md"):
    if line.startswith("|---"):
        continue
    cells = line.rstrip("\n").split(" | ")
    rows.append(" | ".join(cells[:4] + cells[-1:]) if line.startswith("| ") and len(cells) > 3 else line)
print(f"quick/results.md {hashlib.sha256(''.join(rows).encode()).hexdigest()}")
PY
)"
echo "$now"
if [ "${1:-}" = --store ]; then
  printf '%s\n' "$now" > "$stored"
  echo "stored in $stored"
elif [ -f "$stored" ]; then
  if [ "$now" = "$(cat "$stored")" ]; then echo "identical to $stored"; else
    echo "DIFFERENT from $stored:" >&2; cat "$stored" >&2; exit 1
  fi
else
  echo "no stored hashes yet ($stored): run with --store on the reference code" >&2
  exit 1
fi
