//! Scoring while training: the single-step K-context ensemble of the current EMA weights on a
//! fixed held-out set, as missing-entry MSE in data units (the learning curve, checkpoint
//! selection and early stopping read it).
//!
//! ```text
//! with truth:     score = mean over missing observable entries (μ̂_K − truth)²
//! without truth:  hide H ⊂ M, complete from M' = M − H, score = mean over H (μ̂_K − u_obs)²
//! ```
//!
//! What is hidden without truth (`score.holdout`): `context` hides what one draw of the
//! training partition hides (its query: the observation pattern's own structure, whatever it
//! is), or any [`Holdout`] (`pixel:0.7`, `cloud:0.3`, `other`). The draws, the noise and the
//! contexts are seeded once, so successive scores differ only by the weights.

use super::mix_seed;
use crate::config::TrainConfig;
use crate::data::holdout::{holdout, Hide, Holdout};
use crate::data::{Dims, FieldSet, Normalizer};
use crate::method::ensemble::{self, Members};
use crate::method::NetDenoiser;
use crate::model::UNet;
use anyhow::{ensure, Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use tch::{Device, Tensor};

/// A fixed held-out set ready to score weights on.
pub struct Scorer {
    /// Normalised inputs (0 off the kept mask), on the training device.
    u: Tensor,
    masks: Vec<Vec<u8>>,
    /// Data units; entries outside `scored` are never read.
    target: Vec<f32>,
    scored: Vec<bool>,
    dims: Dims,
    pub ensemble: usize,
    seed: u64,
    /// MSE of the Bayes oracle's completion on the same entries, when given.
    pub oracle_mse: Option<f64>,
    /// `truth` (missing entries scored) or `holdout` (hidden observed entries scored).
    pub kind: &'static str,
}

impl Scorer {
    /// Scores on `set` (data units; at most `fields` of it): against its truth when it has one,
    /// else on entries hidden by `hide`. `oracle` is an imputation file of the same fields.
    pub fn new(
        set: &FieldSet,
        cfg: &TrainConfig,
        norm: &Normalizer,
        device: Device,
        oracle: Option<&Path>,
    ) -> Result<Scorer> {
        let s = &cfg.score;
        let n = set.n.min(s.fields);
        ensure!(n >= 1, "no fields to score on (give --score-data or keep a validation share)");
        let set = set.select(&(0..n).collect::<Vec<_>>());
        let len = set.dims.len();
        let (kept, target, scored, kind) = match &set.truth {
            Some(truth) => {
                let scored: Vec<bool> =
                    (0..n * len).map(|k| set.mask[k] == 0 && set.is_observable(k) && truth[k].is_finite()).collect();
                (set.clone(), truth.clone(), scored, "truth")
            }
            None => {
                let hidden = hide_entries(&set, cfg, &s.holdout.parse()?)?;
                let scored: Vec<bool> = (0..n * len).map(|k| set.mask[k] != 0 && hidden.mask[k] == 0).collect();
                (hidden, set.values.clone(), scored, "holdout")
            }
        };
        ensure!(scored.iter().any(|&b| b), "the scoring fields have no entry to score");
        let oracle_mse = match oracle {
            None => None,
            Some(path) => {
                ensure!(kind == "truth", "--score-oracle needs scoring fields with truth");
                let mut npz = crate::data::npy::Npz::open(path)?;
                let mean = npz.get("mean")?.with_context(|| format!("{}: no `mean` array", path.display()))?.to_f32();
                ensure!(
                    mean.len() >= n * len,
                    "{}: the oracle holds fewer entries than the scoring fields",
                    path.display()
                );
                Some(mse(&mean[..n * len], &target, &scored))
            }
        };
        let mut normed = kept.clone();
        norm.apply(&mut normed);
        let d = set.dims;
        let u = Tensor::from_slice(&normed.values)
            .view([n as i64, d.planes() as i64, d.h as i64, d.w as i64])
            .to_device(device);
        let masks = kept.mask.chunks_exact(len).map(<[u8]>::to_vec).collect();
        Ok(Scorer { u, masks, target, scored, dims: d, ensemble: s.ensemble, seed: cfg.seed, oracle_mse, kind })
    }

    /// How many entries a score averages over.
    pub fn scored(&self) -> usize {
        self.scored.iter().filter(|&&b| b).count()
    }

    /// The kept (input) masks, for partitions that prepare draws per mask.
    pub fn masks(&self) -> &[Vec<u8>] {
        &self.masks
    }

    /// Missing-entry MSE (data units) of `net`'s single-step ensemble.
    pub fn score(
        &self,
        net: &UNet,
        cfg: &TrainConfig,
        precond: &crate::method::precond::Precond,
        norm: &Normalizer,
    ) -> Result<f64> {
        let icfg = cfg.for_inference();
        let den = NetDenoiser { net, precond, max_batch: 64, workers: None };
        let mut rngs: Vec<ChaCha8Rng> =
            (0..self.masks.len()).map(|i| ChaCha8Rng::seed_from_u64(mix_seed(self.seed, 9, i as u64))).collect();
        let out = ensemble::single_step(
            &den,
            &cfg.schedule,
            &icfg.contexts(self.dims),
            &self.u,
            &self.masks,
            Members::of(cfg, self.ensemble),
            &mut rngs,
        )?;
        let mut pred: Vec<f32> = Vec::try_from(out.to_device(Device::Cpu).flatten(0, -1))?;
        norm.invert(&mut pred, self.dims.c, self.dims.sites());
        Ok(mse(&pred, &self.target, &self.scored))
    }
}

/// The fields of `set` with the entries chosen by `how` hidden (truth-free scoring).
fn hide_entries(set: &FieldSet, cfg: &TrainConfig, how: &Hide) -> Result<FieldSet> {
    let len = set.dims.len();
    let mut kept = match how {
        Hide::Context => {
            let draw = cfg.contexts(set.dims);
            let mask = (0..set.n)
                .map(|i| {
                    let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(cfg.seed, 10, i as u64));
                    Ok(draw.split(&set.mask[i * len..(i + 1) * len], &mut rng)?.context)
                })
                .collect::<Result<Vec<Vec<u8>>>>()?
                .concat();
            let mut out = FieldSet::new(set.n, set.dims, set.values.clone(), mask, None)?;
            out.observable = set.observable.clone();
            out
        }
        Hide::Holdout(h) => holdout(set, h, mix_seed(cfg.seed, 10, 0))?,
    };
    // A partition whose context is all of M (MissDiff) hides nothing: hide pixels instead.
    if kept.mask == set.mask {
        kept =
            holdout(set, &Holdout::Pattern(crate::data::Pattern::Pixel { observed: 0.7 }), mix_seed(cfg.seed, 10, 1))?;
    }
    kept.truth = None;
    Ok(kept)
}

fn mse(pred: &[f32], target: &[f32], scored: &[bool]) -> f64 {
    let (mut sse, mut n) = (0f64, 0usize);
    for ((&p, &t), _) in pred.iter().zip(target).zip(scored).filter(|(_, &s)| s) {
        sse += (p as f64 - t as f64).powi(2);
        n += 1;
    }
    sse / n.max(1) as f64
}
