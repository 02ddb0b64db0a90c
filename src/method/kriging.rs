//! The kriging interpolant of a context: the skip term and input plane of the denoiser when
//! `denoiser.interpolant = "krige"` (see `precond`). A stationary covariance per channel,
//! fitted once on the run's normalised training observations (`lacuna_core::baseline::krige`,
//! the kriging baseline's fit), turns each plane's context into its best linear predictor:
//!
//! ```text
//! y = x_t / α = x0 + s ε on the context,  s = σ/α
//! E[x0 | y] = m + C_{·O} (C_OO + (τ² + s²) I)⁻¹ (y_O − m)
//! ```
//!
//! with C the fitted covariance (on a torus the periodised one), τ² its nugget and m its mean.
//! At t = t_eps this is simple kriging of the observations; as t grows the noise term shrinks
//! it toward the mean, as `E[x0 | x_t]` does. Per plane the system is dense over its context
//! sites (a batched Cholesky in float64); `C_{·O} w` for every site is one FFT convolution of
//! the weights scattered on the grid. On a Gaussian field with the true covariance this is the
//! Bayes completion, so the network only has to learn what a Gaussian prior misses.

use anyhow::{ensure, Result};
use lacuna_core::baseline::krige::{torus_table, CovModel};
use tch::{Kind, Tensor};

/// Grids with more sites than this are refused: the dense solve per plane is O(n³) in its
/// context sites.
pub const MAX_SITES: usize = 64 * 64;

/// At most this many covariance entries per batch of dense systems (16 M: 128 MB in float64,
/// as much again for their lag index); planes beyond it are solved in further chunks.
const MAX_SYSTEM_ENTRIES: i64 = 16 << 20;

/// Added to the diagonal, relative to the variance: keeps the Cholesky of a smooth covariance
/// on a dense context well-posed without changing the predictor measurably.
const JITTER: f64 = 1e-6;

/// Fitted covariances of a run's channels laid out on its grid. Plain numbers (the tensors are
/// made per call, a few thousand values): inference workers share it across threads.
#[derive(Debug, Clone)]
pub struct Kriging {
    h: i64,
    w: i64,
    channels: i64,
    /// `[C, (2h−1)(2w−1)]`: the covariance at signed lag (dy, dx), index
    /// `(dy + h − 1)(2w − 1) + dx + w − 1`.
    lags: Vec<f64>,
    /// `[C, H', W']`: the same on the FFT grid H'×W' (the torus h×w when periodic, else 2h×2w,
    /// where a circular convolution is the linear one), lag (dy, dx) at (dy mod H', dx mod W').
    grid: Vec<f64>,
    fft: (i64, i64),
    /// Per channel: fitted mean, and nugget + jitter.
    mean: Vec<f64>,
    nugget: Vec<f64>,
}

impl Kriging {
    /// The kriging interpolant of `models` (one per channel) on an h×w grid.
    pub fn new(models: &[CovModel], h: usize, w: usize, periodic: bool) -> Result<Kriging> {
        ensure!(!models.is_empty(), "kriging interpolant: no covariance model");
        ensure!(
            h * w <= MAX_SITES,
            "denoiser.interpolant = \"krige\" solves a dense system over each field's context: grids up to {MAX_SITES} sites, these fields have {h}×{w}; use interpolant = \"fill\""
        );
        let (hi, wi) = (h as i64, w as i64);
        let (lh, lw) = (2 * h - 1, 2 * w - 1);
        let (fh, fw) = if periodic { (h, w) } else { (2 * h, 2 * w) };
        let mut lags = Vec::with_capacity(models.len() * lh * lw);
        let mut grid = Vec::with_capacity(models.len() * fh * fw);
        for model in models {
            let torus = periodic.then(|| torus_table(model, h, w));
            let at = |dy: i64, dx: i64| match &torus {
                Some(t) => t[dy.rem_euclid(hi) as usize * w + dx.rem_euclid(wi) as usize],
                None => model.cov(((dy * dy + dx * dx) as f64).sqrt()),
            };
            for dy in -(hi - 1)..hi {
                for dx in -(wi - 1)..wi {
                    lags.push(at(dy, dx));
                }
            }
            // The FFT grid: lag (dy, dx) at (dy mod H', dx mod W'); lags ±h (only on the doubled
            // grid) never meet two sites of the field and stay 0.
            for r in 0..fh as i64 {
                for c in 0..fw as i64 {
                    let dy = if r < fh as i64 - r { r } else { r - fh as i64 };
                    let dx = if c < fw as i64 - c { c } else { c - fw as i64 };
                    grid.push(if dy.abs() < hi && dx.abs() < wi { at(dy, dx) } else { 0.0 });
                }
            }
        }
        Ok(Kriging {
            h: hi,
            w: wi,
            channels: models.len() as i64,
            lags,
            grid,
            fft: (fh as i64, fw as i64),
            mean: models.iter().map(|m| m.mean).collect(),
            nugget: models.iter().map(|m| m.nugget + JITTER * m.variance.max(1e-12)).collect(),
        })
    }

    /// `E[x0 | y]` at every site of every plane (module doc): `y` `[B, P, H, W]` noisy
    /// observations of x0 where `mask` is 1 (anything elsewhere), `noise` `[B]` their noise
    /// variance s² per sample. Planes are grouped per frame, channel `p mod C`. A plane with no
    /// context site is its mean. Float32 out, float64 inside.
    pub fn predict(&self, y: &Tensor, mask: &Tensor, noise: &Tensor) -> Tensor {
        self.predict_in_chunks(y, mask, noise, MAX_SYSTEM_ENTRIES)
    }

    /// [`Kriging::predict`], solving at most `max_entries / n²` planes at a time.
    fn predict_in_chunks(&self, y: &Tensor, mask: &Tensor, noise: &Tensor, max_entries: i64) -> Tensor {
        let (b, p, h, w) = y.size4().expect("kriging input is 4-D");
        assert_eq!((h, w), (self.h, self.w), "kriging interpolant fitted on another grid");
        assert_eq!(p % self.channels, 0, "planes are not a multiple of the fitted channels");
        let (planes, sites, dev) = (b * p, h * w, y.device());
        tch::no_grad(|| {
            // Per plane: values, context, noise variance and channel.
            let y = y.to_kind(Kind::Double).reshape([planes, sites]);
            let known = mask.reshape([planes, sites]).gt(0.5);
            let noise = noise.to_kind(Kind::Double).view([b, 1]).expand([b, p], false).reshape([planes]);
            let chan = Tensor::arange(p, (Kind::Int64, dev)).remainder(self.channels).repeat([b]);
            let counts = known.sum_dim_intlist([1i64].as_slice(), false, Kind::Int64);
            let n = counts.max().int64_value(&[]).max(1);
            // The dense systems of a chunk of planes hold chunk·n² entries (and their lag index):
            // bounded, so many planes (trajectories, large inference batches) do not exhaust memory.
            let chunk = (max_entries / (n * n)).clamp(1, planes);
            let parts: Vec<Tensor> = (0..planes)
                .step_by(chunk as usize)
                .map(|start| {
                    let len = chunk.min(planes - start);
                    let [y, known, noise, chan, counts] =
                        [&y, &known, &noise, &chan, &counts].map(|t| t.narrow(0, start, len));
                    self.predict_planes(&y, &known, &noise, &chan, &counts)
                })
                .collect();
            Tensor::cat(&parts, 0).view([b, p, h, w]).to_kind(Kind::Float)
        })
    }

    /// The kriging mean of `N` planes `[N, sites]` (float64 values, bool context), with their
    /// noise variances, channels and context sizes `[N]`; `[N, h, w]` float64.
    fn predict_planes(&self, y: &Tensor, known: &Tensor, noise: &Tensor, chan: &Tensor, counts: &Tensor) -> Tensor {
        let (h, w, dev) = (self.h, self.w, y.device());
        let planes = y.size()[0];
        let opts = (Kind::Int64, dev);
        let (c, (fh, fw)) = (self.channels, self.fft);
        let per_channel = |v: &[f64], shape: &[i64]| Tensor::from_slice(v).view(shape).to_device(dev);
        let mean = per_channel(&self.mean, &[c]).index_select(0, chan);
        let n = counts.max().int64_value(&[]);
        let base = mean.view([planes, 1, 1]).expand([planes, h, w], false);
        if n == 0 {
            return base.copy();
        }
        // The context sites of each plane first (stable: ascending site order), padded to n.
        let order = known.to_kind(Kind::Int64).argsort_stable(true, 1, true);
        let idx = order.narrow(1, 0, n);
        let valid = Tensor::arange(n, opts).view([1, n]).lt_tensor(&counts.view([planes, 1])).to_kind(Kind::Double);
        let (ys, xs) = (idx.floor_divide_scalar(w), idx.remainder(w));
        let dy = ys.unsqueeze(2) - ys.unsqueeze(1) + (h - 1);
        let dx = xs.unsqueeze(2) - xs.unsqueeze(1) + (w - 1);
        let lag = (dy * (2 * w - 1) + dx).view([planes, n * n]);
        let table = per_channel(&self.lags, &[c, (2 * h - 1) * (2 * w - 1)]).index_select(0, chan);
        let pair = valid.unsqueeze(2) * valid.unsqueeze(1);
        // Padding rows are the identity, so the padded system is still positive definite.
        let diag: Tensor =
            (per_channel(&self.nugget, &[c]).index_select(0, chan) + noise).view([planes, 1]) * &valid + (1.0 - &valid);
        let k = table.gather(1, &lag, false).view([planes, n, n]) * pair + diag.diag_embed(0, -2, -1);
        let r = (y.gather(1, &idx, false) - mean.view([planes, 1])) * &valid;
        let l = k.linalg_cholesky(false);
        let weights = r.unsqueeze(2).cholesky_solve(&l, false).squeeze_dim(2) * &valid;
        // C_{·O} w: the weights on the grid, convolved with the covariance by FFT.
        let scattered = Tensor::zeros([planes, fh * fw], (Kind::Double, dev));
        let at = ys * fw + xs;
        let scattered = scattered.scatter_add(1, &at, &weights).view([planes, fh, fw]);
        let spec =
            per_channel(&self.grid, &[c, fh, fw]).fft_rfft2(None::<&[i64]>, [-2, -1], "backward").index_select(0, chan);
        let conv = (scattered.fft_rfft2(None::<&[i64]>, [-2, -1], "backward") * spec).fft_irfft2(
            Some([fh, fw].as_slice()),
            [-2, -1],
            "backward",
        );
        conv.narrow(1, 0, h).narrow(2, 0, w) + base
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn model() -> CovModel {
        CovModel { mean: 0.3, smoothness: 1.5, variance: 1.2, length_scale: 2.5, nugget: 0.01 }
    }

    /// The dense predictor written out per plane in float64: the definition the batched,
    /// padded, FFT version must equal.
    fn direct(models: &[CovModel], y: &Tensor, mask: &Tensor, noise: &[f64], periodic: bool) -> Tensor {
        let (b, p, h, w) = y.size4().unwrap();
        let out = Tensor::zeros([b, p, h, w], (Kind::Double, Device::Cpu));
        for bi in 0..b {
            for pi in 0..p {
                let m = models[(pi % models.len() as i64) as usize];
                let torus = periodic.then(|| torus_table(&m, h as usize, w as usize));
                let cov = |i: i64, j: i64| {
                    let (dy, dx) = (i / w - j / w, i % w - j % w);
                    match &torus {
                        Some(t) => t[(dy.rem_euclid(h) * w + dx.rem_euclid(w)) as usize],
                        None => m.cov(((dy * dy + dx * dx) as f64).sqrt()),
                    }
                };
                let yv: Vec<f64> = Vec::try_from(y.get(bi).get(pi).flatten(0, -1).to_kind(Kind::Double)).unwrap();
                let mv: Vec<f32> = Vec::try_from(mask.get(bi).get(pi).flatten(0, -1)).unwrap();
                let obs: Vec<i64> = (0..h * w).filter(|&i| mv[i as usize] > 0.5).collect();
                let n = obs.len() as i64;
                let mut kv = vec![0.0; (n * n) as usize];
                for (a, &i) in obs.iter().enumerate() {
                    for (c, &j) in obs.iter().enumerate() {
                        kv[a * n as usize + c] =
                            cov(i, j) + if a == c { m.nugget + JITTER * m.variance + noise[bi as usize] } else { 0.0 };
                    }
                }
                let rhs: Vec<f64> = obs.iter().map(|&i| yv[i as usize] - m.mean).collect();
                let wts = Tensor::linalg_solve(
                    &Tensor::from_slice(&kv).view([n, n]),
                    &Tensor::from_slice(&rhs).view([n, 1]),
                    true,
                )
                .view([n]);
                let wts: Vec<f64> = Vec::try_from(wts).unwrap();
                let pred: Vec<f64> = (0..h * w)
                    .map(|s| m.mean + obs.iter().zip(&wts).map(|(&j, &v)| cov(s, j) * v).sum::<f64>())
                    .collect();
                out.get(bi).get(pi).copy_(&Tensor::from_slice(&pred).view([h, w]));
            }
        }
        out
    }

    #[test]
    fn the_batched_predictor_is_the_dense_kriging_mean_on_a_plane_and_on_a_torus() {
        tch::manual_seed(5);
        let models = [model(), CovModel { mean: -0.1, smoothness: 0.5, variance: 0.8, length_scale: 4.0, nugget: 0.0 }];
        let y = Tensor::randn([3, 2, 9, 7], (Kind::Float, Device::Cpu));
        let mask = y.rand_like().lt(0.3).to_kind(Kind::Float);
        // One plane with no context: its mean everywhere.
        let _ = mask.get(2).get(1).fill_(0.0);
        let noise = [1e-4, 0.3, 2.0];
        for periodic in [false, true] {
            let k = Kriging::new(&models, 9, 7, periodic).unwrap();
            let got = k.predict(&y, &mask, &Tensor::from_slice(&noise)).to_kind(Kind::Double);
            let want = direct(&models, &y, &mask, &noise, periodic);
            let diff = (&got - &want).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "periodic {periodic}: batched kriging differs from the dense one by {diff}");
            let empty = got.get(2).get(1);
            assert!((empty - models[1].mean).abs().max().double_value(&[]) < 1e-6);
            // Solved a few planes at a time (as many planes are), the same numbers.
            let chunked =
                k.predict_in_chunks(&y, &mask, &Tensor::from_slice(&noise), 2 * 30 * 30).to_kind(Kind::Double);
            assert!((chunked - &got).abs().max().double_value(&[]) < 1e-9);
        }
    }

    /// With a small noise the predictor interpolates the context; with a huge one it is the mean.
    #[test]
    fn noise_moves_the_predictor_from_the_observations_to_the_mean() {
        tch::manual_seed(6);
        let m = CovModel { nugget: 0.0, ..model() };
        let k = Kriging::new(&[m], 12, 12, true).unwrap();
        let y = Tensor::randn([2, 1, 12, 12], (Kind::Float, Device::Cpu));
        let mask = y.rand_like().lt(0.25).to_kind(Kind::Float);
        let got = k.predict(&y, &mask, &Tensor::from_slice(&[0.0f64, 1e8]));
        let on_ctx = ((got.get(0) - y.get(0)) * mask.get(0)).abs().max().double_value(&[]);
        assert!(on_ctx < 1e-3, "the context is not interpolated: {on_ctx}");
        assert!((got.get(1) - m.mean).abs().max().double_value(&[]) < 1e-4);
    }

    #[test]
    fn a_grid_too_large_for_the_dense_solve_is_refused() {
        let err = Kriging::new(&[model()], 65, 64, false).unwrap_err().to_string();
        assert!(err.contains("interpolant = \"fill\""), "{err}");
    }
}
