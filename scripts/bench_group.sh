#!/usr/bin/env bash
# Steps/s and samples/s of data-parallel training on this machine: one process against a group
# of two over loopback Gloo (the same global batch, so every row does the same work per step),
# one configuration after another. Run it with nothing else on the machine; on 2 cores the
# honest expectation is no speed-up (the two ranks share the cores one process already uses).
#
#   bash scripts/bench_group.sh                 (about 3 minutes on 2 cores)
#
#   STEPS (200) SIZE (32) BATCH (16)  the training steps, field side and global batch
#   DEVICE                            `cuda` adds a one-GPU row (the GPU check)
#   LACUNA_BIN                        the binary (default: target/release/lacuna, built if missing)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${LACUNA_BIN:-$root/target/release/lacuna}"
[ -x "$BIN" ] || make -C "$root" --no-print-directory build >/dev/null
STEPS="${STEPS:-200}" SIZE="${SIZE:-32}" BATCH="${BATCH:-16}"
tmp="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
"$BIN" --quiet data gen grf --out "$tmp/train.npz" --n 512 --size "$SIZE" --mask pixel:0.3 >/dev/null
cat > "$tmp/bench.toml" <<TOML
steps = $STEPS
batch = $BATCH
val_every = 1000000000
checkpoint_every = 1000000000
[score]
every = 0
TOML
port=$((29500 + RANDOM % 1000))

# run NAME PROCESSES THREADS [extra train flags]: prints the table row of one configuration.
run() {
  local name="$1" n="$2" threads="$3"; shift 3
  local out="$tmp/run-$name"
  local line
  if [ "$n" = 1 ]; then
    line="$(OMP_NUM_THREADS=$threads "$BIN" --quiet train --data "$tmp/train.npz" --out "$out" \
      --config "$tmp/bench.toml" "$@")"
  else
    port=$((port + 1))
    for r in $(seq 1 $((n - 1))); do
      OMP_NUM_THREADS=$threads MASTER_ADDR=127.0.0.1 MASTER_PORT=$port WORLD_SIZE=$n RANK=$r LOCAL_RANK=$r \
        "$BIN" --quiet train --data "$tmp/train.npz" --out "$out" --config "$tmp/bench.toml" "$@" &
    done
    line="$(OMP_NUM_THREADS=$threads MASTER_ADDR=127.0.0.1 MASTER_PORT=$port WORLD_SIZE=$n RANK=0 LOCAL_RANK=0 \
      "$BIN" --quiet train --data "$tmp/train.npz" --out "$out" --config "$tmp/bench.toml" "$@")"
    wait
  fi
  # "trained N steps in Xs (Y steps/s): ..."
  local rate
  rate="$(sed -n 's/.*(\([0-9.]*\) steps\/s).*/\1/p' <<<"$line")"
  [ -n "$rate" ] || { echo "bench_group: no rate in: $line" >&2; exit 1; }
  echo "$name $n $threads $rate"
}

rows=()
rows+=("$(run one-process 1 2)")
rows+=("$(run two-ranks 2 1)")
[ "${DEVICE:-}" = cuda ] && rows+=("$(run one-gpu 1 2 --device cuda)")

base="$(awk '{print $4}' <<<"${rows[0]}")"
echo "Data-parallel training, $STEPS steps of a global batch of $BATCH on ${SIZE}² GRF fields (loopback Gloo)"
echo
echo "| configuration | processes | threads each | steps/s | samples/s | vs one process |"
echo "|---|---|---|---|---|---|"
for r in "${rows[@]}"; do
  read -r name n threads rate <<<"$r"
  awk -v name="$name" -v n="$n" -v t="$threads" -v rate="$rate" -v b="$BATCH" -v base="$base" \
    'BEGIN { printf "| %s | %d | %d | %.2f | %.1f | %.2f× |\n", name, n, t, rate, rate * b, rate / base }'
done
