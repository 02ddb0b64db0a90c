#!/usr/bin/env python3
"""NCEP southern-Africa forecast (Debian `python-grib-doc`, examples/safrica.grib2) → lacuna NPZ.

The file holds a 0–72 h forecast, 3-hourly (25 frames, 140×210 polar stereographic), of
precipitable water (complete) and the model's cloud-top brightness temperature. Clouds hide the
field where BT < THRESHOLD (270 K by default): an occlusion that sits where the moisture is,
i.e. missing not at random, with the complete field known for scoring.

Each frame is cut into TILE×TILE tiles (default 32: 4×6 per frame); frames [0, SPLIT) give the
training file (values NaN under clouds, no truth), frames [SPLIT, 25) the test file (with
`truth`). Usage:

    python tools/convert_safrica.py safrica.grib2 OUT_DIR [--tile 32] [--split 20] [--threshold 270]

Writes OUT_DIR/safrica-train.npz and OUT_DIR/safrica-test.npz (float32 values / truth
[N, 1, T, T], uint8 mask, 1 = cloud-free) and prints the cloud cover of each. Needs numpy and
pygrib (`pip install numpy pygrib`; the wheel bundles ecCodes).
"""
import argparse
import numpy as np
import pygrib


def tiles(a, t):
    """(F, H, W) → (F·(H//t)·(W//t), t, t), row-major tiles of every frame."""
    f, h, w = a.shape
    a = a[:, : h // t * t, : w // t * t].reshape(f, h // t, t, w // t, t)
    return a.transpose(0, 1, 3, 2, 4).reshape(-1, t, t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("grib")
    ap.add_argument("out")
    ap.add_argument("--tile", type=int, default=32)
    ap.add_argument("--split", type=int, default=20, help="first test frame")
    ap.add_argument("--threshold", type=float, default=270.0, help="cloud where BT < this (K)")
    a = ap.parse_args()
    with pygrib.open(a.grib) as g:
        msgs = list(g)
    pw = np.array([m.values for m in msgs if m.name == "Precipitable water"], np.float32)
    bt = np.array([m.values for m in msgs if m.name == "Brightness temperature"], np.float32)
    assert pw.shape == bt.shape and pw.shape[0] > a.split > 0, (pw.shape, bt.shape)
    assert np.isfinite(pw).all(), "precipitable water should be complete"
    clear = (bt >= a.threshold).astype(np.uint8)
    import os

    os.makedirs(a.out, exist_ok=True)
    for name, frames in (("train", slice(0, a.split)), ("test", slice(a.split, None))):
        truth = tiles(pw[frames], a.tile)[:, None]
        mask = tiles(clear[frames], a.tile)[:, None]
        values = np.where(mask == 1, truth, np.float32(np.nan)).astype(np.float32)
        arrays = dict(values=values, mask=mask)
        if name == "test":
            arrays["truth"] = truth
        path = os.path.join(a.out, f"safrica-{name}.npz")
        np.savez(path, **arrays)
        print(f"{path}: {truth.shape[0]} tiles {a.tile}×{a.tile}, cloud cover {100 * (1 - mask.mean()):.1f}%")


if __name__ == "__main__":
    main()
