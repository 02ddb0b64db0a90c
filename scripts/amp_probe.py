#!/usr/bin/env python3
"""One training step of the U-Net's PyTorch copy (scripts/torch_reference.py; batch 16, 32²,
the default 32-64-64 network with 3 input planes) in float32, under bfloat16 autocast on the CPU
(`bf16`, what lacuna's `precision = "bfloat16"` does) and with channels-last weights (`cl`).
Steps are timed in interleaved rounds (8 steps each); prints the minimum and the median over
rounds, ms per step. Run it with nothing else on the machine.

    "$LIBTORCH/../../../../bin/python" scripts/amp_probe.py [ROUNDS]   (the torch of scripts/setup.sh)
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as R  # noqa: E402

torch.set_num_threads(2)


def make_step(mode):
    torch.manual_seed(0)
    cfg = {"channels": 32, "mults": [1, 2, 2], "res_blocks": 1, "attention": True, "heads": 4}
    net = R.UNet(1, cfg, inputs=3)
    x, cond = torch.randn(16, 3, 32, 32), torch.rand(16)
    if mode == "cl":
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), 1e-3)

    def step():
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"):
            y = net.forward_raw(cond, x)
        y.float().square().mean().backward()
        opt.step()

    return step


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    modes = ["fp32", "bf16", "cl"]
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
        print(f"{m:5s} min {t[0]:6.1f}  median {t[len(t) // 2]:6.1f} ms per step")


if __name__ == "__main__":
    main()
