//! The conditional U-Net predicting the clean field (x0), for snapshots and trajectories.
//!
//! Input channels `[M_ctx, M_ctx ⊙ u_t]` (2C), output C. Sinusoidal embedding of `1000·t`
//! (the raw t ∈ [1e-3, 1] of the official code leaves the fast frequencies unused),
//! GroupNorm/SiLU residual blocks with the time embedding added, stride-2 convolutions down,
//! nearest-neighbour + convolution up, softmax self-attention at the lowest resolution.
//! Fields whose sides are not multiples of 2^(levels−1) are zero-padded (mask 0) and cropped.
//!
//! A trajectory arrives as `[B, T·C, H, W]` and runs as `[B·T, C, H, W]`: every convolution is
//! per frame (the 1×3×3 factorised convolutions of the spec's video U-Net). The *space-time*
//! network adds, after every level's residual blocks (down, middle, up), attention over the T
//! frames of each site: `[B·h·w, T, F]`, softmax(QKᵀ/√d + b_h(j − i)) V with a learned bias per
//! head and relative frame offset (clipped at ±`max_frame_offset`), its output projection
//! starting at zero (so training starts from the per-frame network). Without it the network is
//! the *snapshot* model, applied frame by frame.

use super::autocast::{cpu_has_amx_bf16, Autocast};
use super::circular_pad::circular_pad;
use anyhow::{ensure, Context, Result};
use tch::nn;
use tch::{Device, Kind, Tensor};

pub use crate::config::network::{Precision, UNetConfig};

fn groups(ch: i64) -> i64 {
    [8, 4, 2, 1].into_iter().find(|g| ch % g == 0).unwrap_or(1)
}

/// A 3×3 convolution. On a periodic domain its input is first padded circularly
/// ([`circular_pad`], one fused op).
#[derive(Debug)]
struct Conv3 {
    conv: nn::Conv2D,
    periodic: bool,
}

impl nn::Module for Conv3 {
    fn forward(&self, xs: &Tensor) -> Tensor {
        if self.periodic {
            circular_pad(xs).apply(&self.conv)
        } else {
            xs.apply(&self.conv)
        }
    }
}

fn conv3(p: nn::Path, cin: i64, cout: i64, stride: i64, periodic: bool) -> Conv3 {
    let padding = if periodic { 0 } else { 1 };
    Conv3 { conv: nn::conv2d(p, cin, cout, 3, nn::ConvConfig { padding, stride, ..Default::default() }), periodic }
}

fn conv1(p: nn::Path, cin: i64, cout: i64) -> nn::Conv2D {
    nn::conv2d(p, cin, cout, 1, Default::default())
}

#[derive(Debug)]
struct ResBlock {
    norm1: nn::GroupNorm,
    conv1: Conv3,
    time: nn::Linear,
    norm2: nn::GroupNorm,
    conv2: Conv3,
    skip: Option<nn::Conv2D>,
}

impl ResBlock {
    fn new(p: nn::Path, cin: i64, cout: i64, tdim: i64, periodic: bool) -> ResBlock {
        ResBlock {
            norm1: nn::group_norm(&p / "norm1", groups(cin), cin, Default::default()),
            conv1: conv3(&p / "conv1", cin, cout, 1, periodic),
            time: nn::linear(&p / "time", tdim, cout, Default::default()),
            norm2: nn::group_norm(&p / "norm2", groups(cout), cout, Default::default()),
            conv2: conv3(&p / "conv2", cout, cout, 1, periodic),
            skip: (cin != cout).then(|| conv1(&p / "skip", cin, cout)),
        }
    }

    fn forward(&self, x: &Tensor, temb: &Tensor) -> Tensor {
        let h = x.apply(&self.norm1).silu().apply(&self.conv1);
        let h = h + temb.apply(&self.time).unsqueeze(-1).unsqueeze(-1);
        let h = h.apply(&self.norm2).silu().apply(&self.conv2);
        match &self.skip {
            Some(s) => x.apply(s) + h,
            None => x + h,
        }
    }
}

#[derive(Debug)]
struct Attention {
    norm: nn::GroupNorm,
    qkv: nn::Conv2D,
    proj: nn::Conv2D,
    heads: i64,
}

impl Attention {
    fn new(p: nn::Path, ch: i64, heads: i64) -> Attention {
        Attention {
            norm: nn::group_norm(&p / "norm", groups(ch), ch, Default::default()),
            qkv: conv1(&p / "qkv", ch, 3 * ch),
            proj: conv1(&p / "proj", ch, ch),
            heads,
        }
    }

    /// `x + proj(softmax(QKᵀ/√d) V)` over the H·W positions, per head.
    fn forward(&self, x: &Tensor) -> Tensor {
        let (b, c, h, w) = x.size4().expect("attention input is 4-D");
        let dh = c / self.heads;
        let qkv = x.apply(&self.norm).apply(&self.qkv).view([b, 3, self.heads, dh, h * w]);
        let q = qkv.select(1, 0).transpose(-1, -2);
        let k = qkv.select(1, 1);
        let v = qkv.select(1, 2).transpose(-1, -2);
        let attn = (q.matmul(&k) / (dh as f64).sqrt()).softmax(-1, Kind::Float);
        let out = attn.matmul(&v).transpose(-1, -2).reshape([b, c, h, w]);
        x + out.apply(&self.proj)
    }
}

/// Attention over the frames of every site (see the module doc).
#[derive(Debug)]
struct FrameAttention {
    norm: nn::LayerNorm,
    qkv: nn::Linear,
    proj: nn::Linear,
    /// `[heads, 2·max_offset + 1]`: the bias of offset j − i.
    bias: Tensor,
    heads: i64,
    max_offset: i64,
}

impl FrameAttention {
    fn new(p: nn::Path, ch: i64, heads: i64, max_offset: i64) -> FrameAttention {
        let zero = nn::LinearConfig { ws_init: nn::Init::Const(0.0), bs_init: Some(nn::Init::Const(0.0)), bias: true };
        FrameAttention {
            norm: nn::layer_norm(&p / "norm", vec![ch], Default::default()),
            qkv: nn::linear(&p / "qkv", ch, 3 * ch, Default::default()),
            proj: nn::linear(&p / "proj", ch, ch, zero),
            bias: p.zeros("bias", &[heads, 2 * max_offset + 1]),
            heads,
            max_offset,
        }
    }

    /// `x + attention over frames` for `x` = `[B·T, F, h, w]`, frames consecutive per sample.
    fn forward(&self, x: &Tensor, frames: i64) -> Tensor {
        let (bt, f, h, w) = x.size4().expect("frame attention input is 4-D");
        let (b, n, dh) = (bt / frames, bt / frames * h * w, f / self.heads);
        let seq = x.view([b, frames, f, h * w]).permute([0, 3, 1, 2]).reshape([n, frames, f]);
        let qkv = seq.apply(&self.norm).apply(&self.qkv).view([n, frames, 3, self.heads, dh]).permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.select(0, 0), qkv.select(0, 1), qkv.select(0, 2));
        let pos = Tensor::arange(frames, (Kind::Int64, x.device()));
        let offset = (pos.unsqueeze(0) - pos.unsqueeze(1)).clamp(-self.max_offset, self.max_offset) + self.max_offset;
        let bias = self.bias.index_select(1, &offset.flatten(0, -1)).view([self.heads, frames, frames]);
        let attn = (q.matmul(&k.transpose(-1, -2)) / (dh as f64).sqrt() + bias).softmax(-1, Kind::Float);
        let out = attn.matmul(&v).permute([0, 2, 1, 3]).reshape([n, frames, f]).apply(&self.proj);
        x + out.view([b, h * w, frames, f]).permute([0, 2, 3, 1]).reshape([bt, f, h, w])
    }
}

/// The network. Build it inside a `VarStore` so its weights can be saved and loaded by name.
#[derive(Debug)]
pub struct UNet {
    config: UNetConfig,
    /// The forward pass runs in bfloat16 autocast (`config.precision`, `auto` resolved).
    bf16: bool,
    /// Circular padding (a periodic domain).
    periodic: bool,
    out_channels: i64,
    /// Input planes per output channel (2: mask and values; 3 with the fill plane).
    inputs: i64,
    /// Frame attention after each down level, the middle, and each up level (space-time only).
    frame_attn: Option<FrameAttentions>,
    time1: nn::Linear,
    time2: nn::Linear,
    conv_in: Conv3,
    down: Vec<(Vec<ResBlock>, Option<Conv3>)>,
    mid1: ResBlock,
    mid_attn: Option<Attention>,
    mid2: ResBlock,
    up: Vec<(Vec<ResBlock>, Option<Conv3>)>,
    norm_out: nn::GroupNorm,
    conv_out: Conv3,
    device: Device,
}

#[derive(Debug)]
struct FrameAttentions {
    down: Vec<FrameAttention>,
    mid: FrameAttention,
    up: Vec<FrameAttention>,
}

impl UNet {
    /// A network for fields with `channels` channels fed `[mask, values]`; with `space_time`,
    /// attention over frames.
    pub fn new(p: &nn::Path, channels: i64, config: &UNetConfig, space_time: bool) -> Result<UNet> {
        UNet::with_inputs(p, channels, 2, config, space_time, false)
    }

    /// A network fed `inputs` planes per channel (see [`UNet::forward_raw`]); `periodic`: the
    /// fields wrap around in both space directions and every convolution pads circularly.
    pub fn with_inputs(
        p: &nn::Path,
        channels: i64,
        inputs: i64,
        config: &UNetConfig,
        space_time: bool,
        periodic: bool,
    ) -> Result<UNet> {
        config.validate()?;
        ensure!(inputs >= 1, "internal: a network needs at least one input plane per channel");
        let base = config.channels;
        let tdim = 4 * base;
        let widths: Vec<i64> = config.mults.iter().map(|m| m * base).collect();
        let levels = widths.len();
        let conv_in = conv3(p / "conv_in", inputs * channels, base, 1, periodic);
        let mut skips = vec![base];
        let mut ch = base;
        let mut down = Vec::new();
        for (l, &w) in widths.iter().enumerate() {
            let dp = p / "down" / l;
            let mut blocks = Vec::new();
            for i in 0..config.res_blocks {
                blocks.push(ResBlock::new(&dp / "res" / i, ch, w, tdim, periodic));
                ch = w;
                skips.push(ch);
            }
            let ds = (l + 1 < levels).then(|| conv3(&dp / "downsample", ch, ch, 2, periodic));
            if ds.is_some() {
                skips.push(ch);
            }
            down.push((blocks, ds));
        }
        let mid1 = ResBlock::new(p / "mid" / "res1", ch, ch, tdim, periodic);
        let mid_attn = config.attention.then(|| Attention::new(p / "mid" / "attn", ch, config.heads));
        let mid2 = ResBlock::new(p / "mid" / "res2", ch, ch, tdim, periodic);
        let mut up = Vec::new();
        for (l, &w) in widths.iter().enumerate().rev() {
            let upp = p / "up" / l;
            let mut blocks = Vec::new();
            for i in 0..=config.res_blocks {
                let skip = skips.pop().expect("one skip per down block");
                blocks.push(ResBlock::new(&upp / "res" / i, ch + skip, w, tdim, periodic));
                ch = w;
            }
            let us = (l > 0).then(|| conv3(&upp / "upsample", ch, ch, 1, periodic));
            up.push((blocks, us));
        }
        let bf16 = match config.precision {
            Precision::Float32 => false,
            Precision::Bfloat16 => true,
            Precision::Auto => p.device() == Device::Cpu && cpu_has_amx_bf16(),
        };
        let mut net = UNet {
            config: config.clone(),
            bf16,
            periodic,
            out_channels: channels,
            inputs,
            frame_attn: None,
            time1: nn::linear(p / "time1", base, tdim, Default::default()),
            time2: nn::linear(p / "time2", tdim, tdim, Default::default()),
            conv_in,
            down,
            mid1,
            mid_attn,
            mid2,
            up,
            norm_out: nn::group_norm(p / "norm_out", groups(ch), ch, Default::default()),
            conv_out: conv3(p / "conv_out", ch, channels, 1, periodic),
            device: p.device(),
        };
        // Created last, so the per-frame layers draw the same initial weights as the snapshot
        // network's under the same seed.
        net.frame_attn = space_time.then(|| {
            let make = |q: nn::Path, ch: i64| FrameAttention::new(q, ch, config.heads, config.max_frame_offset);
            FrameAttentions {
                down: widths.iter().enumerate().map(|(l, &w)| make(p / "frames" / "down" / l, w)).collect(),
                mid: make(p / "frames" / "mid", *widths.last().unwrap_or(&base)),
                up: widths.iter().enumerate().rev().map(|(l, &w)| make(p / "frames" / "up" / l, w)).collect(),
            }
        });
        Ok(net)
    }

    /// Sinusoidal embedding of the noise condition c with `dim` features:
    /// `[sin(f_j·c), cos(f_j·c)]`, `f_j = 10000^(−j/(dim/2 − 1))`.
    fn time_embedding(&self, cond: &Tensor) -> Tensor {
        let half = self.config.channels / 2;
        let scale = (10000f64).ln() / ((half - 1).max(1) as f64);
        let freqs = (Tensor::arange(half, (Kind::Float, cond.device())) * -scale).exp();
        let args = cond.to_kind(Kind::Float).unsqueeze(1) * freqs.unsqueeze(0);
        Tensor::cat(&[args.sin(), args.cos()], 1)
    }

    /// The network itself: output `[B, T·C, H, W]` for noise conditions `cond` `[B]` and inputs
    /// `[B, T·inputs·C, H, W]`, grouped per frame as the denoiser parameterisation assembles them.
    /// In bfloat16 arithmetic ([`UNet::precision`]) the body runs in an autocast region and
    /// the output returns to float32.
    pub fn forward_raw(&self, cond: &Tensor, input: &Tensor) -> Tensor {
        let _autocast = self.bf16.then(|| Autocast::bf16(self.device).expect("libtorch's autocast switch"));
        let (b, in_planes, h, w) = input.size4().expect("4-D input");
        let frames = in_planes / (self.inputs * self.out_channels);
        let planes = frames * self.out_channels;
        // Frames become rows: every convolution is per frame.
        let mut x = input.reshape([b * frames, self.inputs * self.out_channels, h, w]);
        let t = if frames > 1 { cond.repeat_interleave_self_int(frames, 0, None) } else { cond.shallow_clone() };
        let mult = 1i64 << (self.config.mults.len() - 1);
        let (ph, pw) = ((mult - h % mult) % mult, (mult - w % mult) % mult);
        if ph > 0 || pw > 0 {
            x = x.constant_pad_nd([0, pw, 0, ph]);
        }
        let over_frames = |x: Tensor, attn: Option<&FrameAttention>| match attn {
            Some(a) => a.forward(&x, frames),
            None => x,
        };
        let fa = self.frame_attn.as_ref();
        let temb = self.time_embedding(&t).apply(&self.time1).silu().apply(&self.time2);
        let mut h_ = x.apply(&self.conv_in);
        let mut hs = vec![h_.shallow_clone()];
        for (l, (blocks, ds)) in self.down.iter().enumerate() {
            for (i, b) in blocks.iter().enumerate() {
                h_ = b.forward(&h_, &temb);
                if i + 1 == blocks.len() {
                    h_ = over_frames(h_, fa.map(|f| &f.down[l]));
                }
                hs.push(h_.shallow_clone());
            }
            if let Some(ds) = ds {
                h_ = h_.apply(ds);
                hs.push(h_.shallow_clone());
            }
        }
        h_ = self.mid1.forward(&h_, &temb);
        if let Some(a) = &self.mid_attn {
            h_ = a.forward(&h_);
        }
        h_ = over_frames(h_, fa.map(|f| &f.mid));
        h_ = self.mid2.forward(&h_, &temb);
        for (l, (blocks, us)) in self.up.iter().enumerate() {
            for b in blocks {
                let skip = hs.pop().expect("skip");
                h_ = b.forward(&Tensor::cat(&[&h_, &skip], 1), &temb);
            }
            h_ = over_frames(h_, fa.map(|f| &f.up[l]));
            if let Some(us) = us {
                let (hh, ww) = (h_.size()[2], h_.size()[3]);
                h_ = h_.upsample_nearest2d([2 * hh, 2 * ww], None, None).apply(us);
            }
        }
        let out = h_.apply(&self.norm_out).silu().apply(&self.conv_out);
        out.narrow(2, 0, h).narrow(3, 0, w).reshape([b, planes, h, w]).to_kind(Kind::Float)
    }

    /// The arithmetic the forward pass runs in (`auto` resolved for this machine).
    pub fn precision(&self) -> Precision {
        if self.bf16 {
            Precision::Bfloat16
        } else {
            Precision::Float32
        }
    }

    /// Whether the network attends over frames.
    pub fn is_space_time(&self) -> bool {
        self.frame_attn.is_some()
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn out_channels(&self) -> i64 {
        self.out_channels
    }
}

/// Stores every 4-D weight of `vs` in channels-last (NHWC) order. oneDNN then runs every
/// convolution in NHWC without reordering activations per call: on the 2-core EPYC of the
/// perf bench this makes inference forwards 1.1–1.55× faster (`scripts/profile_unet.py`).
/// Values are unchanged; only strides move. Call it after loading weights, for inference.
pub fn prefer_channels_last(vs: &nn::VarStore) {
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            if v.dim() == 4 {
                let nhwc = v.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
                v.set_data(&nhwc);
            }
        }
    });
}

/// Copies of a network sharing its weights (same storage, no copy), one per CPU worker thread.
///
/// On a CPU, libtorch parallelises each operation over its intra-op threads and synchronises
/// after every one, which costs a U-Net on small fields dearly. Splitting the batch over
/// single-threaded workers instead keeps each core busy on its own rows (a 160-row batch 1.23×
/// faster on 2 cores, `scripts/profile_unet.py`; `lacuna bench perf --workers 0` compares). `tch::Tensor` is `Send` but not
/// `Sync`, so each worker owns its copy behind a mutex.
pub struct Workers {
    nets: Vec<std::sync::Mutex<UNet>>,
    _stores: Vec<nn::VarStore>,
}

/// Rows a worker pushes through the network at once: small enough that a layer's activations
/// stay in a core's L2 cache.
const WORKER_ROWS: i64 = 16;

impl Workers {
    /// `n` copies of `net` (whose weights live in `vs`) on the CPU.
    pub fn new(vs: &nn::VarStore, net: &UNet, n: usize) -> Result<Workers> {
        ensure!(net.device == Device::Cpu, "CPU workers need a network on the CPU");
        let source = vs.variables();
        let mut nets = Vec::with_capacity(n);
        let mut stores = Vec::with_capacity(n);
        for _ in 0..n {
            let store = nn::VarStore::new(Device::Cpu);
            let copy = UNet::with_inputs(
                &store.root(),
                net.out_channels,
                net.inputs,
                &net.config,
                net.is_space_time(),
                net.periodic,
            )?;
            tch::no_grad(|| -> Result<()> {
                for (name, mut var) in store.variables() {
                    let src =
                        source.get(&name).with_context(|| format!("internal: worker weight {name} has no source"))?;
                    var.set_data(src);
                }
                Ok(())
            })?;
            nets.push(std::sync::Mutex::new(copy));
            stores.push(store);
        }
        Ok(Workers { nets, _stores: stores })
    }

    /// Worker threads available to `denoise`.
    pub fn len(&self) -> usize {
        self.nets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// `f` over the rows of `inputs` (each `[B, …]`): rows split evenly over the workers, each
    /// worker single-threaded and calling `f` on at most `WORKER_ROWS` rows at a time, without
    /// gradients; the outputs concatenated in row order. The intra-op thread count is restored
    /// afterwards.
    pub fn map_rows(&self, inputs: &[&Tensor], f: impl Fn(&UNet, &[Tensor]) -> Tensor + Sync) -> Result<Tensor> {
        let b = inputs[0].size()[0];
        let parts = (self.nets.len() as i64).min(b).max(1);
        let per = (b + parts - 1) / parts;
        let threads = tch::get_num_threads();
        tch::set_num_threads(1);
        let f = &f;
        let result = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..parts)
                .filter(|p| p * per < b)
                .map(|p| {
                    let (start, len) = (p * per, per.min(b - p * per));
                    let rows: Vec<Tensor> = inputs.iter().map(|x| x.narrow(0, start, len)).collect();
                    let worker = &self.nets[p as usize];
                    scope.spawn(move || -> Result<Tensor> {
                        // OpenMP's thread count is per thread: set it where the work runs.
                        tch::set_num_threads(1);
                        let net = worker.lock().map_err(|_| anyhow::anyhow!("a worker thread panicked earlier"))?;
                        super::resources::torch("model forward", || {
                            tch::no_grad(|| {
                                let mut outs = Vec::new();
                                let mut s = 0;
                                while s < len {
                                    let l = WORKER_ROWS.min(len - s);
                                    let chunk: Vec<Tensor> = rows.iter().map(|x| x.narrow(0, s, l)).collect();
                                    outs.push(f(&net, &chunk));
                                    s += l;
                                }
                                Tensor::cat(&outs, 0)
                            })
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().map_err(|_| anyhow::anyhow!("a model worker thread panicked"))?)
                .collect::<Result<Vec<Tensor>>>()
        });
        tch::set_num_threads(threads);
        Ok(Tensor::cat(&result?, 0))
    }
}

#[cfg(test)]
mod tests;
