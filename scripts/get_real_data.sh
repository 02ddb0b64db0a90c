#!/usr/bin/env bash
# Real geophysical data from package registries (no root needed), unpacked into the project's
# cache:
#  - Debian `ferret-datasets` (NOAA PMEL, public domain, NetCDF-3): COADS monthly SST imported
#    with its real ship-observation gaps and land from the matching etopo120 relief;
#  - Debian `python-grib-doc` (examples, MIT licence): NCEP's southern-Africa forecast
#    `safrica.grib2`, converted by tools/convert_safrica.py (numpy + pygrib from PyPI, in a
#    virtual environment in the cache) into 32×32 tiles of precipitable water with cloud masks
#    from the model's own brightness temperature (BT < 270 K), truth known;
#  - PyPI `iris-sample-data` (Met Office, UK Open Government Licence): OSTIA monthly SST on a
#    5°S–5°N belt, converted by tools/convert_ostia.py into 16×32 tiles with their own land as
#    a per-tile static_mask, under real infrared cloud masks from the package's satellite scene.
#
#   bash scripts/get_real_data.sh            # → ~/.cache/lacuna/real (override: LACUNA_REAL_DATA)
#
# Writes $DEST/coads_sst.npz (12 months, 90×180, 2°; land as static_mask), and
# data/real/safrica-{train,test}.npz and data/real/ostia-{train,test}.npz in the repository
# (what suites/safrica.toml and suites/ostia.toml read); prints the path of the ferret data
# directory.
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
# safrica: GRIB2 (JPEG2000-packed) has no Rust reader; convert once with Python.
grib="$DEST/grib/usr/share/doc/python-grib-doc/examples/safrica.grib2"
if [ ! -f "$grib" ]; then
    deb="$(ls python-grib-doc_*_all.deb 2>/dev/null | head -n1 || true)"
    if [ -z "$deb" ]; then
        apt-get download python-grib-doc >&2
        deb="$(ls python-grib-doc_*_all.deb | head -n1)"
    fi
    rm -rf grib.partial && dpkg -x "$deb" grib.partial && rm -rf grib && mv grib.partial grib
fi
venv="$DEST/tools-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import numpy, pygrib, netCDF4, iris_sample_data" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "numpy>=1.24" "pygrib>=2.1.5" "netCDF4>=1.6" "iris-sample-data>=2.4" >&2
fi
mkdir -p "$root/data/real"
"$venv/bin/python" "$root/tools/convert_safrica.py" "$grib" "$root/data/real" >&2
# OSTIA is NetCDF-4 (HDF5): converted with the netCDF4 wheel, which bundles libnetcdf.
samples="$("$venv/bin/python" -c 'import iris_sample_data, os; print(os.path.join(os.path.dirname(iris_sample_data.__file__), "sample_data"))')"
"$venv/bin/python" "$root/tools/convert_ostia.py" "$samples" "$root/data/real" >&2
echo "$data"
