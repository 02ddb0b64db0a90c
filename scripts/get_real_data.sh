#!/usr/bin/env bash
# Real geophysical data from package registries (no root needed): Debian `ferret-datasets`
# (NOAA PMEL, public domain, NetCDF-3) unpacked into the project's cache, and COADS monthly SST
# imported with its real ship-observation gaps and land from the matching etopo120 relief.
#
#   bash scripts/get_real_data.sh            # → ~/.cache/lacuna/real (override: LACUNA_REAL_DATA)
#
# Writes $DEST/coads_sst.npz (12 months, 90×180, 2°; land as static_mask) and prints the path
# of the ferret data directory.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${LACUNA_REAL_DATA:-${XDG_CACHE_HOME:-$HOME/.cache}/lacuna/real}"
BIN="${LACUNA_BIN:-$root/target/release/lacuna}"
mkdir -p "$DEST"
cd "$DEST"
data="$DEST/ferret/usr/share/ferret-vis/data"
if [ ! -f "$data/coads_climatology.cdf" ]; then
    deb="$(ls ferret-datasets_*_all.deb 2>/dev/null | head -n1 || true)"
    if [ -z "$deb" ]; then
        apt-get download ferret-datasets >&2
        deb="$(ls ferret-datasets_*_all.deb | head -n1)"
    fi
    rm -rf ferret.partial && dpkg -x "$deb" ferret.partial && rm -rf ferret && mv ferret.partial ferret
fi
[ -x "$BIN" ] || { echo "get_real_data: build lacuna first (make build)" >&2; exit 1; }
"$BIN" data import "$data/coads_climatology.cdf" --var SST --out "$DEST/coads_sst.npz" \
    --observable "$data/etopo120.cdf:ROSE<0"
echo "$data"
