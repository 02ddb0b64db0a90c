//! Baselines with the same input/output contract as `impute`: classical per-field inpainting,
//! kriging with a covariance estimated from the incomplete training data, and a low-rank +
//! diagonal Gaussian fitted by EM on the gappy data. (MissDiff and Ambient Diffusion are
//! partitions of the one training loop, see `method::partition`.)

pub mod gaussian;
pub mod inpaint;
pub mod krige;
pub mod temporal;

pub use inpaint::Inpaint;

use crate::config::DenoiserConfig;
use crate::data::npy::NpzWriter;
use crate::data::{Dims, FieldSet, Truth};
use anyhow::{ensure, Context, Result};
use std::path::Path;

/// The h×w grid the sites of a plane lie on (row-major), and whether it wraps around.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub h: usize,
    pub w: usize,
    pub periodic: bool,
}

impl Grid {
    /// The site at (r, c): wrapped on a torus, `None` off a bordered grid.
    pub(crate) fn at(&self, r: i64, c: i64) -> Option<usize> {
        let (h, w) = (self.h as i64, self.w as i64);
        if self.periodic {
            return Some((r.rem_euclid(h) * w + c.rem_euclid(w)) as usize);
        }
        (r >= 0 && c >= 0 && r < h && c < w).then(|| (r * w + c) as usize)
    }

    /// A grid with borders.
    pub fn plane(h: usize, w: usize) -> Grid {
        Grid { h, w, periodic: false }
    }

    /// Euclidean distance between sites `i` and `j`; on a torus to the nearest image.
    pub(crate) fn distance(&self, i: usize, j: usize) -> f64 {
        let (dy, dx) = self.lag(i, j);
        (dy * dy + dx * dx).sqrt()
    }

    /// |offset| from site `j` to site `i` (rows, columns); on a torus the wrapped one.
    pub(crate) fn lag(&self, i: usize, j: usize) -> (f64, f64) {
        let (dy, dx) = ((i / self.w).abs_diff(j / self.w), (i % self.w).abs_diff(j % self.w));
        if self.periodic {
            (dy.min(self.h - dy) as f64, dx.min(self.w - dx) as f64)
        } else {
            (dy as f64, dx as f64)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    Nearest,
    Harmonic,
    Biharmonic,
    Telea,
    /// Kriging with a Matérn covariance fitted to the training data (needs `--train`).
    Krige,
    /// Kriging of the residuals of a least-squares plane fitted to each field's observations
    /// (regression kriging: a gradient such as SST's north–south one; needs `--train`).
    KrigeTrend,
    /// Low-rank + diagonal Gaussian fitted by EM on the training data (needs `--train`).
    EmGaussian,
    /// Trajectories: persistence of the last filled frame, the next observation for the first
    /// frame, an 11×11 distance-weighted mean where neither exists (the paper's "temporal
    /// consistency" baseline).
    Temporal,
    /// The interpolant lacuna's default denoiser starts from (the engine's `method::precond::fill`:
    /// by default the thin-plate interpolant, iterated from a coarse-to-fine start until
    /// converged), on its own: what the network adds is the learned model's excess over this.
    Fill,
}

#[derive(Clone, Debug)]
pub struct BaselineOptions {
    /// Rank of the EM Gaussian.
    pub rank: usize,
    pub iters: usize,
    /// Moving-neighbourhood size for kriging fields with many observations.
    pub neighbours: usize,
    pub seed: u64,
    /// The fields are periodic (simulated on a torus): `fill`, `harmonic`, `biharmonic`,
    /// `krige` and `krige-trend` wrap around (see their modules).
    pub periodic: bool,
    /// `fill`: the engine's interpolant (a tensor function; the engine's `baseline::run` sets
    /// it), so that this crate needs no tensor library.
    pub fill: Option<FillFn>,
}

/// The `fill` baseline's interpolant: one field's values and mask, its dims, the denoiser
/// settings (sweeps, CG iterations) and periodicity → the interpolated planes.
pub type FillFn = fn(&[f32], &[u8], Dims, &DenoiserConfig, bool) -> Result<Vec<f32>>;

impl Default for BaselineOptions {
    fn default() -> Self {
        BaselineOptions { rank: 32, iters: 20, neighbours: 100, seed: 0, periodic: false, fill: None }
    }
}

/// One completed field: its mean and, for the probabilistic baselines, the variance per entry.
type Completion = (Vec<f32>, Option<Vec<f32>>);

enum Fitted {
    Inpaint(Inpaint),
    Temporal,
    Fill(DenoiserConfig, FillFn),
    /// Covariance models per channel, and whether a plane is fitted and removed per field first.
    Krige(Vec<krige::CovModel>, bool),
    Gaussian(gaussian::LowRankGaussian),
}

/// Completes every field of `data` with `method` and writes `mean`, `mask` (and `std` for the
/// probabilistic baselines) to `out`, with a `provenance` record (JSON bytes: version,
/// command line, time, input hashes, method and options). Returns the number of fields.
pub fn run(method: Baseline, data: &Path, train: Option<&Path>, out: &Path, opts: &BaselineOptions) -> Result<usize> {
    let inputs: Vec<&Path> = std::iter::once(data).chain(train).collect();
    crate::atomic::refuse_overwriting_inputs(&inputs, &[out])?;
    let set = FieldSet::load(data, Truth::Never)?;
    let load_train = || -> Result<FieldSet> {
        let p = train.with_context(|| format!("the {method:?} baseline learns from data: pass --train TRAIN.npz"))?;
        let t = FieldSet::load(p, Truth::Never)?;
        ensure!(
            t.dims == set.dims,
            "{}: fields are {}, but {} has {}",
            p.display(),
            t.dims.describe(),
            data.display(),
            set.dims.describe()
        );
        Ok(t)
    };
    let fitted = match method {
        Baseline::Nearest => Fitted::Inpaint(Inpaint::Nearest),
        Baseline::Harmonic => Fitted::Inpaint(Inpaint::Harmonic),
        Baseline::Biharmonic => Fitted::Inpaint(Inpaint::Biharmonic),
        Baseline::Telea => Fitted::Inpaint(Inpaint::Telea),
        Baseline::Temporal => Fitted::Temporal,
        Baseline::Fill => Fitted::Fill(
            DenoiserConfig::default(),
            opts.fill.context("the fill baseline needs the engine's interpolant (lacuna::baseline::run)")?,
        ),
        Baseline::Krige => Fitted::Krige(krige::fit_set(&load_train()?, opts.neighbours, opts.periodic)?, false),
        Baseline::KrigeTrend => {
            Fitted::Krige(krige::fit_set(&krige::detrended(&load_train()?), opts.neighbours, opts.periodic)?, true)
        }
        Baseline::EmGaussian => {
            let t = load_train()?;
            // More factors than a quarter of the fields would fit noise.
            let rank = opts.rank.min(t.n / 4).max(1);
            Fitted::Gaussian(gaussian::LowRankGaussian::fit(&t, rank, opts.iters, opts.seed)?)
        }
    };
    let (dims, len, sites) = (set.dims, set.dims.len(), set.dims.sites());
    let complete_one = |f: usize| -> Result<Completion> {
        let (x, known) = (&set.values[f * len..(f + 1) * len], &set.mask[f * len..(f + 1) * len]);
        match &fitted {
            Fitted::Inpaint(m) => Ok((
                // Per plane: each frame of a trajectory on its own (the spec's per-frame baselines).
                (0..dims.planes())
                    .flat_map(|c| {
                        let r = c * sites..(c + 1) * sites;
                        m.fill_with(&x[r.clone()], &known[r], dims.h, dims.w, opts.periodic)
                    })
                    .collect(),
                None,
            )),
            Fitted::Temporal => Ok((temporal::fill(x, known, dims), None)),
            Fitted::Fill(cfg, fill) => {
                let f = fill(x, known, dims, cfg, opts.periodic)?;
                Ok((f.iter().zip(x.iter().zip(known)).map(|(&p, (&v, &k))| if k != 0 { v } else { p }).collect(), None))
            }
            Fitted::Krige(models, trend) => {
                let (mut mean, mut var) = (Vec::with_capacity(len), Vec::with_capacity(len));
                // Per plane, with its channel's model (shared by the frames of a trajectory).
                for p in 0..dims.planes() {
                    let (model, r) = (&models[p % dims.c], p * sites..(p + 1) * sites);
                    let (x, known) = (&x[r.clone()], &known[r]);
                    let plane = if *trend { krige::Plane::fit(x, known, dims.h, dims.w) } else { krige::Plane::ZERO };
                    let resid = plane.remove(x, dims.w);
                    let grid = Grid { h: dims.h, w: dims.w, periodic: opts.periodic };
                    let (m, v) = krige::krige_channel(model, &resid, known, grid, opts.neighbours)?;
                    // Observations exactly as given (the plane round trip rounds).
                    let restored = plane.restore(&m, dims.w);
                    mean.extend(
                        restored.iter().zip(x.iter().zip(known)).map(|(&p, (&v, &k))| if k != 0 { v } else { p }),
                    );
                    var.extend(v);
                }
                Ok((mean, Some(var)))
            }
            Fitted::Gaussian(g) => {
                let (m, v) = g.complete(x, known)?;
                Ok((m, Some(v)))
            }
        }
    };
    // Fields are independent: spread them over the cores, keep the output in order.
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(set.n);
    let results: Vec<Result<Completion>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let complete_one = &complete_one;
                s.spawn(move || (t..set.n).step_by(threads).map(|f| (f, complete_one(f))).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<(usize, Result<_>)> =
            handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect();
        all.sort_by_key(|(f, _)| *f);
        all.into_iter().map(|(_, r)| r).collect()
    });
    let shape = dims.shape(set.n);
    let mut w = NpzWriter::new(out);
    let mean_slot = w.add_f32("mean", shape.clone())?;
    let mask_slot = w.add_bool("mask", shape.clone())?;
    let probabilistic = matches!(fitted, Fitted::Krige(..) | Fitted::Gaussian(_));
    let std_slot = if probabilistic { Some(w.add_f32("std", shape)?) } else { None };
    let provenance = crate::provenance::Provenance::now(env!("CARGO_PKG_VERSION"), &inputs)?
        .with("baseline", format!("{method:?}").to_lowercase())
        .with("rank", opts.rank)
        .with("iters", opts.iters)
        .with("neighbours", opts.neighbours)
        .with("seed", opts.seed)
        .with("periodic", opts.periodic);
    w.add_bytes("provenance", &serde_json::to_vec_pretty(&provenance)?)?;
    for (f, r) in results.into_iter().enumerate() {
        let (mut mean, mut var) = r.with_context(|| format!("field {f}"))?;
        // Never-observable sites (static_mask) get no value, as from `impute`.
        for k in (0..len).filter(|&k| !set.is_observable(f * len + k)) {
            mean[k] = f32::NAN;
            if let Some(v) = var.as_mut() {
                v[k] = f32::NAN;
            }
        }
        w.append_f32(mean_slot, &mean)?;
        w.append_bool(mask_slot, &set.mask[f * len..(f + 1) * len])?;
        if let (Some(slot), Some(v)) = (std_slot, var) {
            w.append_f32(
                slot,
                &v.iter().map(|v| if v.is_nan() { f32::NAN } else { v.max(0.0).sqrt() }).collect::<Vec<_>>(),
            )?;
        }
    }
    w.finish()?;
    Ok(set.n)
}
