#!/usr/bin/env python3
"""What circular padding costs a whole training step of the U-Net (forward, backward, Adam;
batch 16, 32², the default 32-64-64 network with 3 input planes), by pad implementation: zero
padding inside the convolution (`zero`, no periodicity), the concatenation of opposite rows and
columns that lacuna's periodic network does (`cat`), one index_select over a precomputed index
(`index`), libtorch's circular pad mode (`circ`), and a custom autograd function that writes the
padded tensor with one copy and folds the halo's gradient back with one copy and strip adds
(`fn`: what a C++ autograd op could do; tch has no custom autograd). The network is
scripts/torch_reference.py's (lacuna's U-Net in PyTorch). Steps are timed in interleaved rounds
(every variant once per round, 8 steps each) so that a machine whose speed drifts treats them
alike; prints the minimum and the median over rounds, ms per step.

    "$LIBTORCH/../../../../bin/python" scripts/pad_unet_bench.py [ROUNDS]   (the torch of scripts/setup.sh)

Run it with nothing else on the machine."""
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as R  # noqa: E402

torch.set_num_threads(2)


def cat_pad(x):
    h, w = x.shape[2], x.shape[3]
    x = torch.cat([x[:, :, :, w - 1 :], x, x[:, :, :, :1]], 3)
    return torch.cat([x[:, :, h - 1 :], x, x[:, :, :1]], 2)


_index = {}


def index_pad(x):
    b, c, h, w = x.shape
    if (h, w) not in _index:
        rows, cols = torch.arange(-1, h + 1) % h, torch.arange(-1, w + 1) % w
        _index[(h, w)] = (rows[:, None] * w + cols[None, :]).reshape(-1)
    return x.reshape(b, c, h * w).index_select(2, _index[(h, w)]).reshape(b, c, h + 2, w + 2)


def circ_pad(x):
    return F.pad(x, (1, 1, 1, 1), mode="circular")


class CircularPad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        b, c, h, w = x.shape
        out = x.new_empty(b, c, h + 2, w + 2)
        out[:, :, 1 : h + 1, 1 : w + 1] = x
        out[:, :, 1 : h + 1, 0] = x[:, :, :, w - 1]
        out[:, :, 1 : h + 1, w + 1] = x[:, :, :, 0]
        out[:, :, 0] = out[:, :, h]
        out[:, :, h + 1] = out[:, :, 1]
        return out

    @staticmethod
    def backward(ctx, g):
        h, w = g.shape[2] - 2, g.shape[3] - 2
        gx = g[:, :, 1 : h + 1, 1 : w + 1].contiguous()
        gx[:, :, :, w - 1] += g[:, :, 1 : h + 1, 0]
        gx[:, :, :, 0] += g[:, :, 1 : h + 1, w + 1]
        gx[:, :, h - 1] += g[:, :, 0, 1 : w + 1]
        gx[:, :, 0] += g[:, :, h + 1, 1 : w + 1]
        gx[:, :, h - 1, w - 1] += g[:, :, 0, 0]
        gx[:, :, h - 1, 0] += g[:, :, 0, w + 1]
        gx[:, :, 0, w - 1] += g[:, :, h + 1, 0]
        gx[:, :, 0, 0] += g[:, :, h + 1, w + 1]
        return gx


PADS = {"cat": cat_pad, "index": index_pad, "circ": circ_pad, "fn": CircularPad.apply}


class PaddedConv(nn.Conv2d):
    def __init__(self, pad, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pad = pad

    def forward(self, x):
        return F.conv2d(self.pad(x), self.weight, self.bias, self.stride, 0)


def make_step(mode):
    if mode == "zero":
        R.conv3 = lambda cin, cout, stride=1: nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
    else:
        R.conv3 = lambda cin, cout, stride=1: PaddedConv(PADS[mode], cin, cout, 3, stride=stride)
    torch.manual_seed(0)
    cfg = {"channels": 32, "mults": [1, 2, 2], "res_blocks": 1, "attention": True, "heads": 4}
    net = R.UNet(1, cfg, inputs=3)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x, cond = torch.randn(16, 3, 32, 32), torch.rand(16)

    def step():
        opt.zero_grad()
        net.forward_raw(cond, x).square().mean().backward()
        opt.step()

    return step


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 3, 7, 8, dtype=torch.float64)
    for name, pad in PADS.items():
        assert torch.equal(pad(x), cat_pad(x)), name
        assert torch.allclose(torch.autograd.grad(pad(x), x, g)[0], torch.autograd.grad(cat_pad(x), x, g)[0]), name
    modes = ["zero", *PADS]
    steps = {m: make_step(m) for m in modes}
    times = {m: [] for m in modes}
    for m in modes:
        for _ in range(3):
            steps[m]()
    for _ in range(rounds):
        for m in modes:
            start = time.perf_counter()
            for _ in range(8):
                steps[m]()
            times[m].append((time.perf_counter() - start) / 8 * 1e3)
    for m in modes:
        t = sorted(times[m])
        print(f"{m:6s} min {t[0]:6.1f}  median {t[len(t) // 2]:6.1f} ms per step")


if __name__ == "__main__":
    main()
