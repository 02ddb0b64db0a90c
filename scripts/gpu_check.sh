#!/usr/bin/env bash
# The perf comparison on a GPU machine. Builds nothing there: it runs the binary built on the
# CPU machine (carry target/release/lacuna) against the PyTorch reference, both on CUDA, and
# prints the same ratio table as on the CPU. The binary links libtorch 2.11.0; this script
# points it at the libtorch of the machine's own torch (which must be 2.11.x).
#
#   bash scripts/gpu_check.sh [extra `lacuna bench perf` options, e.g. --batch 64 --size 64]
#
#   LACUNA_PYTHON   python with torch and safetensors (default: python3)
#   LACUNA_BIN      the lacuna binary (default: target/release/lacuna)
#   OUT             if set, the JSON report is also written there (perf-gpu.json)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${LACUNA_PYTHON:-python3}"
BIN="${LACUNA_BIN:-target/release/lacuna}"
[ -x "$BIN" ] || { echo "gpu_check: $BIN not found; build it on the CPU machine and carry it" >&2; exit 1; }
TORCH_LIB="$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$PY" - <<'PY'
import torch
assert torch.cuda.is_available(), "gpu_check: no CUDA device visible to torch"
assert torch.__version__.startswith("2.11"), f"gpu_check: torch {torch.__version__}, the binary needs 2.11"
print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}")
PY
json=()
[ -n "${OUT:-}" ] && json=(--json "$OUT/perf-gpu.json")
"$BIN" bench perf --device cuda --python "$PY" --reference scripts/torch_reference.py "${json[@]}" "$@"
