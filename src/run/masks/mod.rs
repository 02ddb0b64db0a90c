//! `lacuna masks`: the Work II mask prior. Fit it on the observation masks of a data file, draw
//! masks from it (guided toward real masks or not), compare generated with real masks, and
//! fill a prior partition's bank of draws before training or inference.
//!
//! A prior directory holds `prior.toml` (the [`PriorConfig`], grid size included),
//! `prior.safetensors` (the network), `fit.jsonl` (the loss log) and `provenance.json` (version,
//! command line, time, the hash of the masks it was fitted on).

use super::optim::{named_vars, AdamW};
use super::progress::Progress;
use super::{mix_seed, open_device};
use crate::data::npy::{write_npz, Array, Npz};
use crate::data::{Dims, FieldSet, Truth};
use crate::method::mask_prior::{self, BfnSchedule, GuideTo};
use crate::method::partition::{site_mask, Contexts, MaskBank, GUIDANCE_PER_SITE};
use crate::method::Partition;
use crate::model::{MaskNet, UNetConfig};
use anyhow::{bail, ensure, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Device, Kind, Tensor};

/// Unguided draws kept for intersections and for the multi-step sampler's random contexts.
pub const FREE_POOL: usize = 256;

/// Draws per network call of the mask prior's sampler (`masks sample --chunk`).
pub const CHUNK: usize = 64;

/// How a mask prior is fitted and sampled; saved as `prior.toml`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PriorConfig {
    /// Grid of the masks (set by `fit` from the data).
    pub h: usize,
    pub w: usize,
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    /// Steps of the deterministic sampler.
    pub sample_steps: usize,
    pub device: crate::config::Device,
    pub schedule: BfnSchedule,
    pub model: UNetConfig,
    /// Share of the sites observed in the masks it was fitted on (set by `fit`; a prior of
    /// complete masks gives contexts that are the whole observation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_share: Option<f64>,
}

impl Default for PriorConfig {
    fn default() -> Self {
        PriorConfig {
            h: 0,
            w: 0,
            steps: 1000,
            batch: 32,
            lr: 2e-3,
            seed: 0,
            sample_steps: 20,
            device: crate::config::Device::Cpu,
            schedule: BfnSchedule::default(),
            model: MaskNet::default_config(),
            observed_share: None,
        }
    }
}

impl PriorConfig {
    pub fn validate(&self) -> Result<()> {
        ensure!(self.steps >= 1 && self.batch >= 1, "mask prior: steps and batch must be at least 1");
        ensure!(self.lr > 0.0 && self.lr.is_finite(), "mask prior: lr must be positive");
        ensure!(self.sample_steps >= 1, "mask prior: sample_steps must be at least 1");
        self.schedule.validate()?;
        self.model.validate()
    }
}

/// The site masks (`[H·W]`, 1 = observed in any channel) of a file: a field file (its `mask`,
/// never-observable sites excluded) or a masks-only file with just `mask` `[N, C|1, H, W]`.
pub fn load_site_masks(path: &Path) -> Result<(Dims, Vec<Vec<u8>>)> {
    let mut npz = Npz::open(path)?;
    if npz.contains("values") {
        let set = FieldSet::load(path, Truth::Never)?;
        let d = set.dims;
        let masks = set.mask.chunks_exact(d.len()).map(|m| site_mask(m, d)).collect();
        return Ok((Dims { t: 1, c: 1, ..d }, masks));
    }
    let m = npz.get("mask")?.with_context(|| format!("{}: neither 'values' nor 'mask'", path.display()))?;
    ensure!(m.shape.len() == 4, "{}: 'mask' must be [N, C, H, W], got {:?}", path.display(), m.shape);
    let (n, c, h, w) = (m.shape[0], m.shape[1], m.shape[2], m.shape[3]);
    let d = Dims { t: 1, c, h, w };
    let flat: Vec<u8> = m.to_f32().iter().map(|&v| u8::from(v != 0.0)).collect();
    ensure!(n >= 1, "{}: no masks", path.display());
    Ok((Dims { t: 1, c: 1, h, w }, flat.chunks_exact(d.len()).map(|k| site_mask(k, d)).collect()))
}

fn write_masks(path: &Path, d: Dims, masks: &[Vec<u8>], provenance: &crate::provenance::Provenance) -> Result<()> {
    let flat: Vec<u8> = masks.iter().flatten().copied().collect();
    let mut arrays = BTreeMap::new();
    arrays.insert("mask".to_string(), Array::from_bool(vec![masks.len(), 1, d.h, d.w], &flat));
    arrays.insert("provenance".to_string(), Array::from_bytes(&serde_json::to_vec_pretty(provenance)?));
    write_npz(path, &arrays)
}

/// Files of a prior directory.
fn config_path(dir: &Path) -> PathBuf {
    dir.join("prior.toml")
}
fn weights_path(dir: &Path) -> PathBuf {
    dir.join("prior.safetensors")
}

/// What `fit` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FitSummary {
    pub masks: usize,
    pub steps: usize,
    pub last_loss: f64,
    pub seconds: f64,
}

/// Fits the mask prior on the observation masks of `data` into `out`.
pub fn fit(data: &Path, out: &Path, cfg: &PriorConfig, quiet: bool) -> Result<FitSummary> {
    cfg.validate()?;
    ensure!(
        !weights_path(out).exists(),
        "{}: already holds a mask prior; choose another --out or remove it",
        out.display()
    );
    let (d, masks) = load_site_masks(data)?;
    ensure!(
        masks.iter().any(|m| m.iter().any(|&v| v != 0)),
        "{}: no observed site in any mask; there is nothing to learn",
        data.display()
    );
    let share = observed_share(&masks);
    if share == 1.0 {
        eprintln!(
            "warning: {}: every site is observed in every mask; the prior will learn to draw complete masks, and a partition built on it has nothing to query",
            data.display()
        );
    }
    let cfg = PriorConfig { h: d.h, w: d.w, observed_share: Some(share), ..cfg.clone() };
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    crate::atomic::write_bytes(&config_path(out), toml::to_string(&cfg)?.as_bytes())?;
    let provenance = crate::provenance::Provenance::now(env!("CARGO_PKG_VERSION"), &[data])?
        .with("steps", cfg.steps)
        .with("seed", cfg.seed);
    crate::atomic::write_bytes(&out.join("provenance.json"), &serde_json::to_vec_pretty(&provenance)?)?;
    let device = open_device(&cfg.device)?;
    tch::manual_seed(mix_seed(cfg.seed, 11, 0) as i64);
    let vs = VarStore::new(device);
    let net = MaskNet::new(&vs.root(), &cfg.model)?;
    let mut opt = AdamW::new(&vs, 0.9, 0.999, 0.0);
    let flat: Vec<f32> = masks.iter().flatten().map(|&v| v as f32).collect();
    let all = Tensor::from_slice(&flat).view([masks.len() as i64, 1, d.h as i64, d.w as i64]).to_device(device);
    let log = out.join("fit.jsonl");
    let mut log_file = std::fs::File::create(&log).with_context(|| format!("{}: cannot create", log.display()))?;
    let progress = Progress::new("masks fit", 0, cfg.steps, quiet);
    let (mut window, mut last) = ((0.0, 0usize), f64::NAN);
    for step in 1..=cfg.steps {
        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(cfg.seed, 12, step as u64));
        tch::manual_seed(mix_seed(cfg.seed, 13, step as u64) as i64);
        let idx: Vec<i64> = (0..cfg.batch).map(|_| rng.gen_range(0..masks.len()) as i64).collect();
        let batch = all.index_select(0, &Tensor::from_slice(&idx).to_device(device));
        // Cosine decay after a short warm-up.
        let warm = (step as f64 / 100.0).min(1.0);
        let lr = cfg.lr * warm * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / cfg.steps as f64).cos()).max(0.02);
        opt.zero_grad();
        let loss = super::resources::torch(&format!("mask prior step {step}"), || {
            let t = Tensor::rand([cfg.batch as i64], (Kind::Float, device));
            let l = mask_prior::loss(&net, &cfg.schedule, &batch, &t);
            l.backward();
            l.double_value(&[])
        })?;
        if !loss.is_finite() {
            bail!("mask prior loss became {loss} at step {step}; lower --lr");
        }
        opt.clip_grad_norm(1.0);
        opt.step(lr);
        last = loss;
        window = (window.0 + loss, window.1 + 1);
        if step % 100 == 0 || step == cfg.steps {
            let mean = window.0 / window.1 as f64;
            writeln!(log_file, "{}", serde_json::json!({"step": step, "loss_mean": mean, "lr": lr}))?;
            progress.update(step, &format!("loss {mean:.4}"), true);
            window = (0.0, 0);
        } else {
            progress.update(step, &format!("loss {loss:.4}"), false);
        }
        if step % 500 == 0 || step == cfg.steps {
            super::checkpoint::save_weights(&weights_path(out), &named_vars(&vs))?;
        }
    }
    Ok(FitSummary { masks: masks.len(), steps: cfg.steps, last_loss: last, seconds: progress.elapsed() })
}

/// A fitted prior, ready to draw from.
pub struct LoadedPrior {
    pub config: PriorConfig,
    _vs: VarStore,
    net: MaskNet,
    device: Device,
}

impl LoadedPrior {
    pub fn open(dir: &Path, device: Option<&crate::config::Device>) -> Result<LoadedPrior> {
        let text = std::fs::read_to_string(config_path(dir)).with_context(|| {
            format!("{}: not a mask prior (no prior.toml; make one with `lacuna masks fit`)", dir.display())
        })?;
        let config: PriorConfig =
            toml::from_str(&text).with_context(|| format!("{}: corrupt", config_path(dir).display()))?;
        config.validate()?;
        let device = open_device(device.unwrap_or(&config.device))?;
        let vs = VarStore::new(device);
        let net = MaskNet::new(&vs.root(), &config.model)?;
        super::checkpoint::load_weights(&weights_path(dir), &named_vars(&vs))?;
        Ok(LoadedPrior { config, _vs: vs, net, device })
    }

    /// One draw per stream, guided toward `guide.masks[i]` when given (see [`mask_prior::draw`]).
    pub fn draw(&self, rngs: &mut [ChaCha8Rng], guide: Option<&GuideTo>) -> Result<Vec<Vec<u8>>> {
        self.draw_chunked(rngs, guide, CHUNK)
    }

    /// [`LoadedPrior::draw`] with `chunk` draws per network call (the draws are the same for
    /// any chunk; only the cost changes).
    pub fn draw_chunked(&self, rngs: &mut [ChaCha8Rng], guide: Option<&GuideTo>, chunk: usize) -> Result<Vec<Vec<u8>>> {
        let c = &self.config;
        super::resources::torch("mask prior sampling", || {
            mask_prior::draw(&self.net, &c.schedule, c.sample_steps, (c.h, c.w), rngs, guide, self.device, chunk)
        })?
    }

    fn check_grid(&self, d: Dims, what: &str) -> Result<()> {
        ensure!(
            (self.config.h, self.config.w) == (d.h, d.w),
            "the mask prior was fitted on {}×{} masks, {what} is {}×{}",
            self.config.h,
            self.config.w,
            d.h,
            d.w
        );
        Ok(())
    }
}

/// What a partition makes of observation masks, over many splits of each: the mean share of
/// the observed entries its contexts keep (`|M_ctx| / |M|`), and the smallest and the mean
/// probability that an observed entry is queried (query balance, spec §9 T1).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PartitionStats {
    pub context_share: f64,
    pub query_min: f64,
    pub query_mean: f64,
}

/// [`PartitionStats`] of the training partition of `cfg` (its prior, if any, read from the
/// path the configuration names) on `masks` (`[T, C, H, W]` each), `splits` splits per mask,
/// with a bank of its own (the configuration's is left alone).
pub fn partition_stats(
    cfg: &crate::config::TrainConfig,
    masks: &[Vec<u8>],
    d: Dims,
    splits: usize,
    seed: u64,
) -> Result<PartitionStats> {
    let mut partition = cfg.partition.clone();
    let prior = match &mut partition {
        Partition::Prior { prior, bank, .. } => {
            *bank = MaskBank::default();
            Some(LoadedPrior::open(prior, None)?)
        }
        _ => None,
    };
    prepare(&partition, prior.as_ref(), masks, d, 1, seed, true)?;
    let contexts = Contexts { partition: &partition, dims: d, in_time: cfg.context_in_time };
    let s = split_stats(&contexts, masks, splits, mix_seed(seed, 17, 0))?;
    ensure!(s.entries > 0, "no observed entry in the masks to split");
    Ok(PartitionStats { context_share: s.context_share, query_min: s.query_min, query_mean: s.query_mean })
}

/// Where a run keeps the copy of its mask prior (so the run directory is self-contained).
pub const RUN_PRIOR: &str = "mask-prior";

/// For a prior partition: opens the prior once on `device` (so an unreadable prior fails
/// before anything is copied), copies it into `run_dir` and returns the configuration that
/// points at the copy (relative to the run directory) with the opened prior. Other partitions
/// pass through, with no prior.
pub fn adopt_prior(
    cfg: &crate::config::TrainConfig,
    run_dir: &Path,
    device: &crate::config::Device,
) -> Result<(crate::config::TrainConfig, Option<LoadedPrior>)> {
    let mut cfg = cfg.clone();
    let Partition::Prior { prior, .. } = &mut cfg.partition else { return Ok((cfg, None)) };
    let src = run_dir.join(&*prior);
    let dst = run_dir.join(RUN_PRIOR);
    let loaded = LoadedPrior::open(&src, Some(device))?;
    if src != dst {
        std::fs::create_dir_all(&dst).with_context(|| format!("{}: cannot create", dst.display()))?;
        for f in [config_path(&src), weights_path(&src)] {
            let to = dst.join(f.file_name().context("prior file name")?);
            std::fs::copy(&f, &to).with_context(|| format!("cannot copy {} to {}", f.display(), to.display()))?;
        }
    }
    *prior = PathBuf::from(RUN_PRIOR);
    Ok((cfg, Some(loaded)))
}

/// The prior of a run's partition, if it has one (`prior` relative to the run directory).
pub fn open_run_prior(
    partition: &Partition,
    run_dir: &Path,
    device: Option<&crate::config::Device>,
) -> Result<Option<LoadedPrior>> {
    match partition {
        Partition::Prior { prior, .. } => Ok(Some(LoadedPrior::open(&run_dir.join(prior), device)?)),
        _ => Ok(None),
    }
}

/// A stable 64-bit hash of a mask (FNV-1a), so a mask's guided draws do not depend on which
/// other masks are drawn with it.
fn mask_hash(m: &[u8]) -> u64 {
    m.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// The guidance weight of a prior partition on `d` fields: its own, or the default per site.
pub fn guidance_weight(weight: Option<f64>, d: Dims) -> f64 {
    weight.unwrap_or(GUIDANCE_PER_SITE * d.sites() as f64)
}

/// Tops the bank's pool of unguided draws up to [`FREE_POOL`] (draw i from stream i of `seed`,
/// so the pool is the same however it was filled).
fn fill_free_pool(bank: &MaskBank, prior: &LoadedPrior, seed: u64) -> Result<()> {
    let free = bank.free_len();
    if free >= FREE_POOL {
        return Ok(());
    }
    let mut rngs: Vec<ChaCha8Rng> =
        (free..FREE_POOL).map(|i| ChaCha8Rng::seed_from_u64(mix_seed(seed, 14, i as u64))).collect();
    let drawn = prior.draw(&mut rngs, None)?;
    let draws_share = observed_share(&drawn);
    let fitted_on = prior.config.observed_share.unwrap_or(0.0);
    if free == 0 && (draws_share > 0.99 || fitted_on > 0.99) {
        eprintln!(
            "warning: the mask prior was fitted on masks with {:.1}% of the sites observed and draws {:.1}%; intersected with the data's masks its draws keep nearly all of each observation, so the context is the whole observation and there is almost nothing to query. Fit the prior on the data's own incomplete masks",
            100.0 * fitted_on,
            100.0 * draws_share
        );
    }
    bank.add_free(drawn);
    Ok(())
}

/// Masks on which [`unguided_share`] is measured (at most).
const SHARE_MASKS: usize = 1024;

/// The expected share of the observed sites that an unguided context `M̂ ⊙ M` keeps on
/// `masks` (`[C, H, W]` each): `Σ_i |M_i ⊙ M̂_i| / Σ_i |M_i|` over up to [`SHARE_MASKS`] masks,
/// mask i paired with draw i (mod the pool) of the bank's unguided pool, which it fills.
pub fn unguided_share(bank: &MaskBank, prior: &LoadedPrior, masks: &[Vec<u8>], d: Dims, seed: u64) -> Result<f64> {
    prior.check_grid(d, "the data")?;
    fill_free_pool(bank, prior, seed)?;
    let free = bank.free_draws();
    ensure!(!free.is_empty(), "internal: the mask prior drew no unguided masks");
    let sites: Vec<Vec<u8>> = masks.iter().take(SHARE_MASKS).map(|m| site_mask(m, d)).collect();
    let paired: Vec<Vec<u8>> = (0..sites.len()).map(|i| free[i % free.len()].clone()).collect();
    Ok(context_share(&sites, &paired))
}

/// What the guide-only-when-sparse rule made of a guided prior partition on training masks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GuidanceChoice {
    /// The share of the observed sites an unguided context keeps ([`unguided_share`]).
    pub unguided_share: f64,
    /// The partition's `guide_below`: guided when the share is below it.
    pub guide_below: f64,
    pub guided: bool,
}

/// Applies `guide_below` of a guided prior partition (see [`Partition::Prior`]): measures the
/// unguided context share on the training `masks` and, when it is at least `guide_below`,
/// turns the partition into the unguided intersection (ρ unset). Other partitions, and
/// `guide_below = 1`, are left as they are (`None`).
pub fn choose_guidance(
    partition: &mut Partition,
    prior: Option<&LoadedPrior>,
    masks: &[Vec<u8>],
    d: Dims,
    seed: u64,
) -> Result<Option<GuidanceChoice>> {
    let Partition::Prior { rho, guide_below, bank, .. } = partition else { return Ok(None) };
    if rho.is_none() || *guide_below >= 1.0 {
        return Ok(None);
    }
    let prior = prior.context("internal: a prior partition needs its loaded prior")?;
    let share = unguided_share(bank, prior, masks, d, seed)?;
    let guided = share < *guide_below;
    if !guided {
        *rho = None;
    }
    Ok(Some(GuidanceChoice { unguided_share: share, guide_below: *guide_below, guided }))
}

/// Fills the bank of a prior partition for the observation masks `masks` (`[C, H, W]` each):
/// the free pool, and, when guided, at least `min_draws` guided draws per distinct site mask.
/// Does nothing for other partitions.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    partition: &Partition,
    prior: Option<&LoadedPrior>,
    masks: &[Vec<u8>],
    d: Dims,
    min_draws: usize,
    seed: u64,
    quiet: bool,
) -> Result<()> {
    let Partition::Prior { rho, weight, draws, guidance_loss, bank, .. } = partition else {
        return Ok(());
    };
    let prior = prior.context("internal: a prior partition needs its loaded prior")?;
    prior.check_grid(d, "the data")?;
    let started = std::time::Instant::now();
    fill_free_pool(bank, prior, seed)?;
    if let Some(rho) = rho {
        let want = (*draws).max(min_draws);
        let mut seen = HashSet::new();
        let mut anchor_to = Vec::new();
        let mut rngs = Vec::new();
        for m in masks {
            let sites = site_mask(m, d);
            let have = bank.guided_len(&sites);
            if have >= want || !seen.insert(sites.clone()) {
                continue;
            }
            for j in have..want {
                rngs.push(ChaCha8Rng::seed_from_u64(mix_seed(seed ^ mask_hash(&sites), 15, j as u64)));
                anchor_to.push(sites.clone());
            }
        }
        if !anchor_to.is_empty() {
            let progress = Progress::new("guided masks", 0, anchor_to.len(), quiet);
            let guide_w = guidance_weight(*weight, d);
            let mut drawn = Vec::with_capacity(anchor_to.len());
            for (lo, hi) in (0..anchor_to.len()).step_by(512).map(|lo| (lo, (lo + 512).min(anchor_to.len()))) {
                let g = GuideTo { masks: &anchor_to[lo..hi], rho: *rho, weight: guide_w, loss: *guidance_loss };
                drawn.extend(prior.draw(&mut rngs[lo..hi], Some(&g))?);
                progress.update(hi, "", hi == anchor_to.len());
            }
            // Share of the observed sites a guided context keeps. Below ρ/2 the anchors did not
            // hold: the guidance pushed the draws toward "all missing" (contexts near empty).
            let share = context_share(&anchor_to, &drawn);
            if share < 0.5 * rho {
                eprintln!(
                    "warning: guided mask draws keep {:.1}% of the observed sites as context (anchors: {:.0}%); the guidance drives them toward empty masks, so their contexts are topped up with observed sites at random to the anchor share (no structure learned from the prior). Lower --guidance (now {guide_w:.1}), try --guidance-loss anchors, or use --partition intersect",
                    100.0 * share,
                    100.0 * rho
                );
            } else if !quiet {
                eprintln!("mask prior: guided contexts keep {:.1}% of the observed sites", 100.0 * share);
            }
            for (sites, m) in anchor_to.iter().zip(drawn) {
                bank.add_guided(sites, vec![m]);
            }
        }
    }
    if !quiet && started.elapsed().as_secs_f64() > 2.0 {
        eprintln!("mask prior: draws ready in {:.1} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}

pub use lacuna_core::mask_stats::{
    compare, context_share, mask_stats, observed_share, query_probabilities, split_stats, Comparison, MaskStats,
    CORRELATION_TOL, FRACTION_TOL,
};

mod report;
pub use report::{compare_report, sample_to_file, CompareReport, PartitionProbe, Sampled};

#[cfg(test)]
mod tests;
