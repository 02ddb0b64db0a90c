#!/usr/bin/env python3
"""OSTIA monthly SST under real infrared clouds (PyPI `iris-sample-data`) → lacuna NPZ.

`ostia_monthly.nc` is the Met Office OSTIA analysis (satellite + in situ, gap-free over the ocean),
monthly means April 2006 – September 2010 (54 months) on a 5°S–5°N belt of 18 × 432 cells, land
masked (26% of the belt). `toa_brightness_stereographic.nc` is one real EUMETSAT/Met Office
top-of-atmosphere infrared scene (North Atlantic, 160 × 256) whose cold pixels (BT < THRESHOLD,
270 K by default) are cloud. The clouds are real in shape, size and cover; they are pasted over
the SST, so here they do not follow the SST (missing at random, unlike safrica).

Each month (north up, °C) is cut into 16 × 32 tiles (rows 1–16 of the 18, 13 tiles across the
first 416 columns); each tile keeps its own land as a per-field `static_mask`, the reason
lacuna's NPZ contract allows one static mask per field. Every tile is covered by a 16 × 32
window of the cloud scene at a random height (inside the scene's disc). The scene's columns are
cut into 32-wide stripes: windows of training tiles come from the even stripes, those of test
tiles from the odd ones, so test occlusions are unseen yet have the same cloud climate. A window is drawn
again while it leaves less than MIN_CLEAR of the tile's ocean clear.

Months [0, SPLIT) give the training file (no truth), months [SPLIT, 54) the test file (with
`truth`, NaN on land). Usage:

    python tools/convert_ostia.py SAMPLE_DATA_DIR OUT_DIR [--split 44] [--threshold 270] [--seed 0]

Writes OUT_DIR/ostia-train.npz and OUT_DIR/ostia-test.npz (float32 values [N, 1, 16, 32], uint8
mask and static_mask, 1 = observed / ocean) and prints their cloud cover. Needs numpy and
netCDF4 (`pip install numpy netCDF4 iris-sample-data`; the wheel bundles libnetcdf). Licence:
UK Open Government Licence, "Contains public sector information licensed under the Open
Government Licence v3.0" (Met Office, via iris-sample-data).
"""
import argparse
import os

import netCDF4
import numpy as np

TILE = (16, 32)
MIN_CLEAR = 0.1
# Column stripes of the scene as wide as a window, alternating: train and test windows never share a pixel.
TRAIN_STRIPES = tuple((x, x + 32) for x in range(0, 256, 64))
TEST_STRIPES = tuple((x, x + 32) for x in range(32, 256, 64))


def read(path, var):
    with netCDF4.Dataset(path) as d:
        a = d.variables[var][:]
    return np.ma.filled(a.astype(np.float32), np.nan)


def tiles(a):
    """(F, 16, 416) → (F·13, 16, 32), west to east."""
    f, h, w = a.shape
    th, tw = TILE
    return a.reshape(f, h, w // tw, tw).transpose(0, 2, 1, 3).reshape(-1, th, tw)


def cloud_window(bt, stripes, rng, threshold):
    """A random TILE window of the scene inside `stripes`, fully inside the disc: 1 = clear."""
    th, tw = TILE
    while True:
        x0, x1 = stripes[rng.integers(len(stripes))]
        x = rng.integers(x0, x1 - tw + 1)
        y = rng.integers(0, bt.shape[0] - th + 1)
        w = bt[y : y + th, x : x + tw]
        if np.isfinite(w).all():
            return (w >= threshold).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sample_data", help="the iris_sample_data/sample_data directory")
    ap.add_argument("out")
    ap.add_argument("--split", type=int, default=44, help="first test month")
    ap.add_argument("--threshold", type=float, default=270.0, help="cloud where BT < this (K)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    sst = read(os.path.join(a.sample_data, "ostia_monthly.nc"), "surface_temperature")  # (54, 18, 432), K
    bt = read(os.path.join(a.sample_data, "toa_brightness_stereographic.nc"), "data")  # (160, 256), K
    assert sst.shape[1:] == (18, 432) and sst.shape[0] > a.split > 0, sst.shape
    land = ~np.isfinite(sst)
    assert (land == land[0]).all(), "OSTIA's land should not change between months"
    # North up, rows 1–16, the first 416 columns; °C.
    sst = sst[:, ::-1, :][:, 1:17, :416] - np.float32(273.15)
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    for name, months, stripes in (
        ("train", slice(0, a.split), TRAIN_STRIPES),
        ("test", slice(a.split, None), TEST_STRIPES),
    ):
        truth = tiles(sst[months])[:, None]
        ocean = np.isfinite(truth).astype(np.uint8)
        mask = np.zeros_like(ocean)
        for i in range(truth.shape[0]):
            while True:
                m = cloud_window(bt, stripes, rng, a.threshold) & ocean[i, 0]
                if m.sum() >= MIN_CLEAR * ocean[i, 0].sum():
                    mask[i, 0] = m
                    break
        values = np.where(mask == 1, truth, np.float32(np.nan)).astype(np.float32)
        arrays = dict(values=values, mask=mask, static_mask=ocean)
        if name == "test":
            arrays["truth"] = truth.astype(np.float32)
        path = os.path.join(a.out, f"ostia-{name}.npz")
        np.savez(path, **arrays)
        cover = 1 - mask.sum() / ocean.sum()
        print(
            f"{path}: {truth.shape[0]} tiles {TILE[0]}×{TILE[1]}, {100 * (1 - ocean.mean()):.1f}% land, "
            f"cloud over {100 * cover:.1f}% of the ocean"
        )


if __name__ == "__main__":
    main()
