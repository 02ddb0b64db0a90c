#!/usr/bin/env python3
"""The PyTorch reference for `lacuna bench perf`: lacuna's U-Net written in PyTorch, and the
training step, K-context ensemble and multi-step sampler written the way the paper's official
code does them (K sequential forward passes, masks drawn with torch.rand on the device, the
library Adam, clip_grad_norm_). It is given every advantage the official code lacks: it runs
inference under torch.inference_mode() and shares nothing with lacuna's process.

Weights are exchanged through safetensors with lacuna's parameter names, so both sides can be
checked to compute the same function before they are timed.

    python scripts/torch_reference.py check --config CFG.json --weights W --inputs IN --out OUT
    python scripts/torch_reference.py time  --config CFG.json --weights W --task train|ensemble|sampler \
        --batch B --size H --channels C --reps R [--warmup N] [--ensemble K] [--steps S] [--device D]

`time` prints one JSON line: {"task": ..., "seconds": [one per repetition]}.
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file


def groups(ch):
    return next(g for g in (8, 4, 2, 1) if ch % g == 0)


def conv3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, tdim):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups(cin), cin)
        self.conv1 = conv3(cin, cout)
        self.time = nn.Linear(tdim, cout)
        self.norm2 = nn.GroupNorm(groups(cout), cout)
        self.conv2 = conv3(cout, cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(temb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.skip(x) if self.skip is not None else x) + h


class Attention(nn.Module):
    def __init__(self, ch, heads):
        super().__init__()
        self.norm = nn.GroupNorm(groups(ch), ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)
        self.heads = heads

    def forward(self, x):
        b, c, h, w = x.shape
        dh = c // self.heads
        qkv = self.qkv(self.norm(x)).view(b, 3, self.heads, dh, h * w)
        q, k, v = qkv[:, 0].transpose(-1, -2), qkv[:, 1], qkv[:, 2].transpose(-1, -2)
        attn = torch.softmax(q @ k / math.sqrt(dh), dim=-1)
        out = (attn @ v).transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj(out)


class Level(nn.Module):
    def __init__(self, blocks, sample):
        super().__init__()
        self.res = nn.ModuleList(blocks)
        if sample is not None:
            # lacuna names the resampling convolution "downsample" / "upsample"
            setattr(self, sample[0], sample[1])
        self.sample_name = sample[0] if sample is not None else None


class Mid(nn.Module):
    def __init__(self, ch, tdim, attention, heads):
        super().__init__()
        self.res1 = ResBlock(ch, ch, tdim)
        self.attn = Attention(ch, heads) if attention else None
        self.res2 = ResBlock(ch, ch, tdim)


class UNet(nn.Module):
    """lacuna's `model::UNet` (src/model/unet.rs), parameter for parameter."""

    def __init__(self, channels, cfg, inputs=2):
        """`cfg` is the run's `[model]` table; `inputs` the input planes per channel (2: mask and
        context; 3 with the default `[denoiser] fill_input`, the context's interpolant added)."""
        super().__init__()
        base, mults = cfg["channels"], cfg["mults"]
        self.base, self.levels = base, len(mults)
        tdim = 4 * base
        widths = [m * base for m in mults]
        self.conv_in = conv3(inputs * channels, base)
        skips, ch = [base], base
        self.down = nn.ModuleList()
        for l, w in enumerate(widths):
            blocks = []
            for _ in range(cfg["res_blocks"]):
                blocks.append(ResBlock(ch, w, tdim))
                ch = w
                skips.append(ch)
            sample = None
            if l + 1 < len(widths):
                sample = ("downsample", conv3(ch, ch, 2))
                skips.append(ch)
            self.down.append(Level(blocks, sample))
        self.mid = Mid(ch, tdim, cfg["attention"], cfg["heads"])
        self.up = nn.ModuleDict()
        for l in reversed(range(len(widths))):
            w = widths[l]
            blocks = []
            for _ in range(cfg["res_blocks"] + 1):
                blocks.append(ResBlock(ch + skips.pop(), w, tdim))
                ch = w
            self.up[str(l)] = Level(blocks, ("upsample", conv3(ch, ch)) if l > 0 else None)
        self.time1 = nn.Linear(base, tdim)
        self.time2 = nn.Linear(tdim, tdim)
        self.norm_out = nn.GroupNorm(groups(ch), ch)
        self.conv_out = conv3(ch, channels)

    def time_embedding(self, cond):
        half = self.base // 2
        scale = math.log(10000.0) / max(half - 1, 1)
        freqs = torch.exp(torch.arange(half, device=cond.device, dtype=torch.float32) * -scale)
        args = cond.float()[:, None] * freqs[None, :]
        return torch.cat([args.sin(), args.cos()], 1)

    def forward(self, t, context, context_mask):
        """The published parameterisation: the raw network at noise condition 1000·t."""
        return self.forward_raw(t.float() * 1000.0, torch.cat([context_mask, context], 1))

    def forward_raw(self, cond, x):
        """The network itself (lacuna's `UNet::forward_raw`, snapshots, zero padding): noise
        condition `cond` [B] as the run's `[denoiser] noise_cond` makes it, input planes `x`
        [B, inputs·C, H, W] as its parameterisation assembles them."""
        h0, w0 = x.shape[-2:]
        mult = 1 << (self.levels - 1)
        ph, pw = (mult - h0 % mult) % mult, (mult - w0 % mult) % mult
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        temb = self.time2(F.silu(self.time1(self.time_embedding(cond))))
        h = self.conv_in(x)
        hs = [h]
        for level in self.down:
            for b in level.res:
                h = b(h, temb)
                hs.append(h)
            if level.sample_name:
                h = level.downsample(h)
                hs.append(h)
        h = self.mid.res1(h, temb)
        if self.mid.attn is not None:
            h = self.mid.attn(h)
        h = self.mid.res2(h, temb)
        for l in reversed(range(self.levels)):
            level = self.up[str(l)]
            for b in level.res:
                h = b(torch.cat([h, hs.pop()], 1), temb)
            if level.sample_name:
                h = level.upsample(F.interpolate(h, scale_factor=2, mode="nearest"))
        out = self.conv_out(F.silu(self.norm_out(h)))
        return out[:, :, :h0, :w0]


# The VP schedule with linear beta (spec §2.2): log a_t = -t²(b_max - b_min)/4 - t b_min/2.
BETA_MIN, BETA_MAX, T_EPS = 0.1, 20.0, 1e-3


def alpha_sigma(t):
    a = torch.exp(-0.25 * t**2 * (BETA_MAX - BETA_MIN) - 0.5 * t * BETA_MIN)
    return a, torch.sqrt(torch.clamp(1 - a**2, min=0.0))


def scalar_as(t, b, device):
    a, s = alpha_sigma(torch.full((b,), float(t), device=device))
    return a.view(-1, 1, 1, 1), s.view(-1, 1, 1, 1)


def pixel_context(mask, ratio):
    """The official pixel sampler: keep each observed site with probability `ratio`."""
    return mask * (torch.rand_like(mask) < ratio).float()


def load_net(args, device):
    cfg = json.loads(open(args.config).read())
    net = UNet(args.channels, cfg).to(device)
    state = load_file(args.weights)
    missing = set(net.state_dict()) ^ set(state)
    if missing:
        sys.exit(f"torch_reference: weight names differ from lacuna's: {sorted(missing)[:8]}")
    net.load_state_dict(state)
    return net


def check(args):
    net = load_net(args, "cpu").eval()
    inp = load_file(args.inputs)
    with torch.inference_mode():
        out = net(inp["t"], inp["context"], inp["context_mask"])
    save_file({"out": out.contiguous()}, args.out)


def problem(args, device):
    """Random fields and pixel observation masks (observed fraction 0.2) of the timed shape."""
    g = torch.Generator(device="cpu").manual_seed(0)
    shape = (args.batch, args.channels, args.size, args.size)
    x = torch.randn(shape, generator=g).to(device)
    m = (torch.rand(shape, generator=g) < 0.2).float().to(device)
    return x, m


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, reps, warmup, device):
    for _ in range(warmup):
        fn()
    sync(device)
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def run_time(args):
    device = args.device
    net = load_net(args, device)
    x0, m = problem(args, device)
    ratio = args.context_ratio

    if args.task == "train":
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.95, 0.999))

        def step():
            ctx = pixel_context(m, ratio)
            qry = m * (1 - ctx)
            t = torch.rand(x0.shape[0], device=device) * (1 - T_EPS) + T_EPS
            a, s = alpha_sigma(t)
            x_t = a.view(-1, 1, 1, 1) * x0 + s.view(-1, 1, 1, 1) * torch.randn_like(x0)
            pred = net(t, ctx * x_t, ctx)
            loss = ((pred - x0) ** 2 * qry).sum() / qry.sum().clamp(min=1.0)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            return loss.item()

        secs = timed(step, args.reps, args.warmup, device)
    else:
        net.eval()
        u_obs = m * x0
        b = x0.shape[0]

        def ensemble(x_obs, k):
            """mean over K sequential passes of net(t_eps, ctx_k ⊙ u_δ,k, ctx_k) (official: range(10))."""
            a, s = scalar_as(T_EPS, b, device)
            t = torch.full((b,), T_EPS, device=device)
            acc = torch.zeros_like(x_obs)
            for _ in range(k):
                u_delta = m * (a * x_obs + s * torch.randn_like(x_obs))
                ctx = pixel_context(m, ratio)
                acc = acc + net(t, ctx * u_delta, ctx)
            return acc / k

        def single():
            with torch.inference_mode():
                mu = ensemble(u_obs, args.ensemble)
                return (1 - m) * mu + m * u_obs

        def sampler():
            """spec §4.2, with the DDIM step written correctly; one random context per step."""
            with torch.inference_mode():
                mu0 = ensemble(u_obs, args.ensemble)
                ts = torch.linspace(1.0, T_EPS, args.steps + 1).tolist()
                a1, s1 = scalar_as(ts[0], b, device)
                x = a1 * u_obs + s1 * torch.randn_like(u_obs)
                for s, t in zip(ts[:-1], ts[1:]):
                    ctx = pixel_context(torch.ones_like(m), 0.2 * ratio)
                    pred = net(torch.full((b,), s, device=device), ctx * x, ctx)
                    model_mu = s * mu0 + (1 - s) * pred
                    a_s, s_s = scalar_as(s, b, device)
                    eps_obs = (x - a_s * u_obs) / s_s
                    eps_unobs = (x - a_s * model_mu) / s_s
                    eps = m * eps_obs + (1 - m) * eps_unobs
                    a_t, s_t = scalar_as(t, b, device)
                    x = a_t * (x - s_s * eps) / a_s + s_t * eps
                tf = torch.full((b,), ts[-1], device=device)
                acc = torch.zeros_like(x)
                for _ in range(args.ensemble):
                    ctx = pixel_context(torch.ones_like(m), 0.2 * ratio)
                    acc = acc + net(tf, ctx * x, ctx)
                return (1 - m) * acc / args.ensemble + m * u_obs

        secs = timed(single if args.task == "ensemble" else sampler, args.reps, args.warmup, device)
    print(json.dumps({"task": args.task, "seconds": secs, "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "device": device}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["check", "time"])
    p.add_argument("--config", required=True, help="JSON of lacuna's model config")
    p.add_argument("--weights", required=True)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--inputs")
    p.add_argument("--out")
    p.add_argument("--task", choices=["train", "ensemble", "sampler"])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--ensemble", type=int, default=10)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--context-ratio", type=float, default=0.7)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    if args.mode == "check":
        if not (args.inputs and args.out):
            sys.exit("torch_reference check: --inputs and --out are required")
        check(args)
    else:
        if not args.task:
            sys.exit("torch_reference time: --task is required")
        run_time(args)


if __name__ == "__main__":
    main()
