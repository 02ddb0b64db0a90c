#!/usr/bin/env python3
"""Where the U-Net's CPU time goes, behind the design choices of `lacuna bench perf` (README,
"Performance"). Uses the reference U-Net of scripts/torch_reference.py (same network as lacuna's).

    ~/.cache/lacuna/torch-2.11.0/bin/python scripts/profile_unet.py     # about 3 minutes on 2 cores

Prints: (1) inference time per field, NCHW vs channels-last (NHWC) weights; (2) the share of
convolutions and of GroupNorm/SiLU in NHWC inference; (3) a training step NCHW vs NHWC and the
share of GroupNorm's backward in each; (4) a 160-row batch with libtorch's intra-op threads vs
the rows split over single-threaded worker threads (what lacuna's `model::Workers` does).
"""
import os
import sys
import threading
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import UNet  # noqa: E402

CFG = {"channels": 32, "mults": [1, 2, 2], "res_blocks": 1, "attention": True, "heads": 2}
FMT = {False: torch.contiguous_format, True: torch.channels_last}


def inputs(b):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, 1, 32, 32, generator=g)
    m = (torch.rand(b, 1, 32, 32, generator=g) < 0.5).float()
    return torch.rand(b, generator=g), x * m, m


def median(f, reps=5):
    f()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2]


def share(prof, names):
    rows = prof.key_averages()
    total = sum(r.self_cpu_time_total for r in rows)
    return sum(r.self_cpu_time_total for r in rows if any(n in r.key for n in names)) / total


def main():
    torch.manual_seed(0)
    net = UNet(1, CFG).eval()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    print("\n(1) inference, ms per field")
    for b in (16, 64, 160):
        t, c, m = inputs(b)
        row = []
        for cl in (False, True):
            n = net.to(memory_format=FMT[cl])
            with torch.inference_mode():
                row.append(median(lambda: n(t, c, m)) / b * 1e3)
        print(f"  batch {b:3d}: NCHW {row[0]:.2f}  NHWC {row[1]:.2f}  speed-up {row[0] / row[1]:.2f}x")

    print("\n(2) NHWC inference, batch 64: share of self time")
    n = net.to(memory_format=torch.channels_last)
    t, c, m = inputs(64)
    with torch.inference_mode(), torch.profiler.profile() as p:
        for _ in range(3):
            n(t, c, m)
    print(f"  convolutions {share(p, ['convolution']):.0%}, GroupNorm + SiLU {share(p, ['group_norm', 'silu']):.0%}")

    print("\n(3) training step, batch 16")
    t, c, m = inputs(16)
    for cl in (False, True):
        torch.manual_seed(0)
        tn = UNet(1, CFG).to(memory_format=FMT[cl])
        opt = torch.optim.Adam(tn.parameters(), 1e-3)

        def step():
            loss = ((tn(t, c, m) - c) ** 2 * m).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

        secs = median(step)
        with torch.profiler.profile() as p:
            for _ in range(3):
                step()
        gn = share(p, ["native_group_norm_backward"])
        print(f"  {'NHWC' if cl else 'NCHW'}: {secs * 1e3:.0f} ms, GroupNorm backward {gn:.0%} of self time")

    print("\n(4) 160 rows, NHWC: intra-op threads vs single-threaded workers (16 rows per call)")
    n = net.to(memory_format=torch.channels_last)
    t, c, m = inputs(160)
    threads = torch.get_num_threads()

    def intra():
        with torch.inference_mode():
            for s in range(0, 160, 16):
                n(t[s:s + 16], c[s:s + 16], m[s:s + 16])

    def workers():
        def work(lo, hi):
            torch.set_num_threads(1)
            with torch.inference_mode():
                for s in range(lo, hi, 16):
                    n(t[s:s + 16], c[s:s + 16], m[s:s + 16])
        bounds = [(160 * i // threads, 160 * (i + 1) // threads) for i in range(threads)]
        th = [threading.Thread(target=work, args=b) for b in bounds]
        [x.start() for x in th]
        [x.join() for x in th]

    a = median(intra)
    b = median(workers)
    torch.set_num_threads(threads)
    print(f"  intra-op {a * 1e3:.0f} ms, {threads} workers {b * 1e3:.0f} ms, speed-up {a / b:.2f}x")


if __name__ == "__main__":
    main()
