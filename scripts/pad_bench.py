"""Cost of a circularly padded 3x3 convolution against a zero-padded one, forward + backward,
batch 16, at the U-Net's level shapes (docs/results.md, "Where today's step goes"). Pads: the
concatenation of opposite rows and columns (what lacuna's periodic network does), an
index_select over a precomputed index, libtorch's circular pad mode, and a tensor that is
already padded (the convolution alone, without its own padding). Minimum of 3 rounds, ms.

    "$LIBTORCH/../../../../bin/python" scripts/pad_bench.py    (the torch of scripts/setup.sh)

Run it with nothing else on the machine."""
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)


def cat_pad(x):
    h, w = x.shape[2], x.shape[3]
    x = torch.cat([x[:, :, h - 1 :], x, x[:, :, :1]], 2)
    return torch.cat([x[:, :, :, w - 1 :], x, x[:, :, :, :1]], 3)


def index_pad(x):
    b, c, h, w = x.shape
    rows = torch.arange(-1, h + 1) % h
    cols = torch.arange(-1, w + 1) % w
    index = (rows[:, None] * w + cols[None, :]).reshape(-1)
    return x.reshape(b, c, h * w).index_select(2, index).reshape(b, c, h + 2, w + 2)


def best_ms(f, reps=30):
    for _ in range(3):
        f()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            f()
        best = min(best, (time.perf_counter() - start) / reps * 1e3)
    return round(best, 3)


for channels, side in [(32, 32), (64, 16), (128, 8), (128, 4)]:
    x = torch.randn(16, channels, side, side, requires_grad=True)
    padded = torch.randn(16, channels, side + 2, side + 2, requires_grad=True)
    weight = torch.randn(channels, channels, 3, 3, requires_grad=True)
    row = {
        "zero": best_ms(lambda: F.conv2d(x, weight, padding=1).sum().backward()),
        "pre-padded": best_ms(lambda: F.conv2d(padded, weight).sum().backward()),
        "cat": best_ms(lambda: F.conv2d(cat_pad(x), weight).sum().backward()),
        "index_select": best_ms(lambda: F.conv2d(index_pad(x), weight).sum().backward()),
        "circular": best_ms(lambda: F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), weight).sum().backward()),
    }
    print(f"{channels} channels, {side}²:", row, flush=True)
