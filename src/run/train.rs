//! The one training loop. Per step, for a batch of observed fields `u_obs` with masks M:
//!
//! ```text
//! (M_ctx, M_qry) ~ partition(M),  t ~ U(t_eps, 1),  ε ~ N(0, I)
//! u_t  = α_t u_obs + σ_t ε
//! loss = Σ M_qry ⊙ (u_φ(t, M_ctx ⊙ u_t, M_ctx) − u_obs)² / Σ M_qry
//! ```
//!
//! (the official code's normalisation: mean over the batch's query entries). Complete fields
//! are never used: `truth` is not even read from the file.

use super::checkpoint::{self, LoopState};
use super::optim::{ema_update, named_vars, AdamW};
use super::progress::Progress;
use super::{mix_seed, open_device, resources, RunDir, RunInfo};
use crate::config::{LrSchedule, Precision, Reflections, TrainConfig};
use crate::data::{Dims, FieldSet, Normalizer, Truth};
use crate::dist::Group;
use crate::method::mask_tensor;
use crate::method::precond::Precond;
use crate::method::schedule::AlphaSigma;
use crate::method::symmetry::{random_reflections, random_shifts, reflected, shifted, Holds};
use crate::method::Partition;
use crate::model::UNet;
use anyhow::{bail, ensure, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::io::Write;
use std::path::Path;
use tch::{nn::VarStore, Device, Kind, Tensor};

/// Set by [`request_stop`]; read by the training loop after each step.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks the training running in this process to stop after its current step, as a spent time
/// budget does: the checkpoint and both weights files are written, and `train` returns its
/// summary with `stopped` set. For embedders (the Python module's Ctrl-C); the command line
/// stops on signals instead, keeping the last checkpoint.
pub fn request_stop() {
    STOP.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Forgets a stop request left over from an earlier training in this process. Embedders call
/// it before starting a training, not the loop itself: a request made while a slow set-up is
/// still running must not be dropped when the loop starts.
pub fn clear_stop_request() {
    STOP.store(false, std::sync::atomic::Ordering::SeqCst);
}

/// What a finished training reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainSummary {
    pub steps: usize,
    pub last_loss: f64,
    pub best_val: Option<f64>,
    /// Best held-out MSE and its step (the weights `model.safetensors` holds).
    pub best_score: Option<f64>,
    pub best_step: usize,
    pub seconds: f64,
    pub steps_per_s: f64,
    /// Why training ended before its step budget (time budget, early stopping).
    pub stopped: Option<String>,
}

/// A field set on the device plus its masks for the partition.
pub(crate) struct Fields {
    values: Tensor,
    masks: Vec<Vec<u8>>,
    dims: Dims,
}

impl Fields {
    pub(crate) fn new(set: &FieldSet, device: Device) -> Fields {
        let d = set.dims;
        let values = Tensor::from_slice(&set.values)
            .view([set.n as i64, d.planes() as i64, d.h as i64, d.w as i64])
            .to_device(device);
        let masks = set.mask.chunks_exact(d.len()).map(<[u8]>::to_vec).collect();
        Fields { values, masks, dims: d }
    }
}

/// The context–query loss of a batch `idx` (see the module doc), averaged over its query
/// entries, of which only the samples `shard` (`[start, end)`) are computed: every random draw
/// is made for the whole batch, so the shards of a group's ranks sum to one process's loss.
/// `visits` (when given) says how many times each sample's field was drawn before: a guided
/// prior partition then takes that field's guided draws in turn.
#[allow(clippy::too_many_arguments)]
fn batch_loss(
    net: &UNet,
    cfg: &TrainConfig,
    precond: &Precond,
    f: &Fields,
    idx: &[usize],
    visits: Option<&[usize]>,
    rng: &mut ChaCha8Rng,
    shard: (usize, usize),
) -> Result<Tensor> {
    let (schedule, contexts) = (&cfg.schedule, cfg.contexts(f.dims));
    let device = f.values.device();
    let index = Tensor::from_slice(&idx.iter().map(|&i| i as i64).collect::<Vec<_>>()).to_device(device);
    let x = f.values.index_select(0, &index);
    let splits: Vec<_> = idx
        .iter()
        .enumerate()
        .map(|(b, &i)| contexts.split_visit(&f.masks[i], visits.map(|v| v[b]), rng))
        .collect::<Result<_>>()?;
    let ctx = mask_tensor(splits.iter().map(|s| s.context.as_slice()), f.dims, device);
    let qry = mask_tensor(splits.iter().map(|s| s.query.as_slice()), f.dims, device);
    let [x, ctx, qry] = if cfg.shift_symmetry == [0, 0] {
        [x, ctx, qry]
    } else {
        let shifts = random_shifts(cfg.shift_symmetry, f.dims, idx.len(), rng);
        [&x, &ctx, &qry].map(|v| shifted(v, &shifts))
    };
    let [x, ctx, qry] = if cfg.reflections == Reflections::None {
        [x, ctx, qry]
    } else {
        let gs = random_reflections(cfg.reflections, cfg.shift_symmetry, idx.len(), rng);
        [(&x, Holds::Values), (&ctx, Holds::Masks), (&qry, Holds::Masks)]
            .map(|(v, holds)| reflected(v, &gs, cfg.periodic, holds))
    };
    // t = t_eps + (1 − t_eps) U^p: p = 1 is uniform (the paper); p > 1 spends more steps at low
    // noise, where the single-step ensemble evaluates the model.
    let u = Tensor::rand([idx.len() as i64], (Kind::Float, device));
    let u = if cfg.time_power == 1.0 { u } else { u.pow_tensor_scalar(cfg.time_power) };
    let mut t = u * (1.0 - schedule.t_eps) + schedule.t_eps;
    if cfg.time_low_share > 0.0 {
        // A share of the batch at exactly δ = t_eps, the single-step ensemble's time.
        let low = Tensor::rand([idx.len() as i64], (Kind::Float, device)).lt(cfg.time_low_share);
        t = t.where_self(&low.logical_not(), &t.full_like(schedule.t_eps));
    }
    let (a, s) = schedule.alpha_sigma(&t);
    let x_t = &x * a + x.randn_like() * s;
    let count = qry.sum(Kind::Float).clamp_min(1.0);
    // A view of this rank's samples (the whole batch for a single process).
    let (start, len) = (shard.0 as i64, (shard.1 - shard.0) as i64);
    let [x, x_t, ctx, qry, t] = [&x, &x_t, &ctx, &qry, &t].map(|v| v.narrow(0, start, len));
    let pred = precond.denoise(|c, input| net.forward_raw(c, input), &t, &(&ctx * x_t), &ctx);
    Ok(((pred - x).square() * &qry).sum(Kind::Float) / count)
}

/// One optimisation step on the fields `idx` of `f`: the context–query loss, backward,
/// gradient clipping, AdamW and the EMA update; returns (loss, gradient norm before clipping).
/// Its random streams depend only on `(cfg.seed, step)`, so a resumed run repeats it exactly.
/// In a group each rank computes its shard of the batch and the gradients are summed before
/// clipping, so every rank takes the step one process would; only rank 0 keeps the EMA.
#[allow(clippy::too_many_arguments)]
pub(crate) fn optimisation_step(
    net: &UNet,
    cfg: &TrainConfig,
    precond: &Precond,
    opt: &mut AdamW,
    ema: &[(String, Tensor)],
    f: &Fields,
    idx: &[usize],
    visits: Option<&[usize]>,
    step: usize,
    lr: f64,
    group: &Group,
) -> Result<(f64, f64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(cfg.seed, 1, step as u64));
    tch::manual_seed(mix_seed(cfg.seed, 6, step as u64) as i64);
    opt.zero_grad();
    let shard = group.shard(idx.len());
    let loss_v = resources::torch(&format!("training step {step}"), || -> Result<f64> {
        let loss = batch_loss(net, cfg, precond, f, idx, visits, &mut rng, shard)?;
        loss.backward();
        Ok(loss.double_value(&[]))
    })??;
    let loss_v = group.sum_gradients(&opt.params, &[loss_v]).with_context(|| format!("training step {step}"))?[0];
    if !loss_v.is_finite() {
        bail!("training loss became {loss_v} at step {step}; the last checkpoint is kept. Lower optim.lr or check the data scale");
    }
    let grad_norm = opt.clip_grad_norm(cfg.optim.grad_clip);
    opt.step(lr);
    if group.is_leader() {
        ema_update(ema, &opt.params, cfg.ema_decay, step);
    }
    Ok((loss_v, grad_norm))
}

/// Learning rate at `step` (1-based) for the cosine and constant schedules. With a time
/// budget the cosine runs over the steps or the budget, whichever is nearer its end
/// (`seconds`: training time spent so far).
fn scheduled_lr(cfg: &TrainConfig, step: usize, plateau_lr: f64, seconds: f64) -> f64 {
    let o = &cfg.optim;
    let warm = if o.warmup > 0 { (step as f64 / o.warmup as f64).min(1.0) } else { 1.0 };
    match o.lr_schedule {
        LrSchedule::Constant => o.lr * warm,
        LrSchedule::Plateau => plateau_lr * warm,
        LrSchedule::Cosine => {
            let span = cfg.steps.saturating_sub(o.warmup).max(1) as f64;
            let mut p = (step.saturating_sub(o.warmup) as f64 / span).min(1.0);
            if let Some(budget) = cfg.time_budget {
                // The warm-up's share of the budget is its share of the steps.
                let warm_s = budget * o.warmup as f64 / cfg.steps.max(1) as f64;
                p = p.max(((seconds - warm_s) / (budget - warm_s).max(1e-9)).clamp(0.0, 1.0));
            }
            (o.min_lr + 0.5 * (o.lr - o.min_lr) * (1.0 + (std::f64::consts::PI * p).cos())) * warm
        }
    }
}

/// The fields of the batch at `step` and how many times each was drawn before (its visit):
/// `batch / contexts_per_field` distinct fields, each repeated for its context draws. A field
/// is drawn once per epoch, so its visits count epochs times the repeats.
fn batch_fields(cfg: &TrainConfig, step: usize, n: usize) -> (Vec<usize>, Vec<usize>) {
    let r = cfg.contexts_per_field.max(1);
    batch_indices(cfg.seed, step, (cfg.batch / r).max(1), n)
        .into_iter()
        .flat_map(|(i, epoch)| (0..r).map(move |j| (i, epoch * r + j)))
        .unzip()
}

/// (index, epoch) of each sample of the batch at `step`: consecutive slices of per-epoch
/// shuffles of `0..n`.
fn batch_indices(seed: u64, step: usize, batch: usize, n: usize) -> Vec<(usize, usize)> {
    let start = (step - 1) * batch;
    let mut out = Vec::with_capacity(batch);
    let mut cache: Option<(usize, Vec<usize>)> = None;
    for pos in start..start + batch {
        let epoch = pos / n;
        if cache.as_ref().map(|c| c.0) != Some(epoch) {
            let mut perm: Vec<usize> = (0..n).collect();
            perm.shuffle(&mut ChaCha8Rng::seed_from_u64(mix_seed(seed, 3, epoch as u64)));
            cache = Some((epoch, perm));
        }
        out.push((cache.as_ref().map(|c| c.1[pos % n]).unwrap_or(0), epoch));
    }
    out
}

/// For a guided prior partition: the smallest and the mean number of distinct guided contexts
/// a training field saw in steps `1..=steps` (its guided draws used in turn, so the lesser of
/// its visits and the draws the bank holds for it).
fn guided_contexts_seen(cfg: &TrainConfig, f: &Fields, steps: usize) -> Option<(usize, f64)> {
    let Partition::Prior { rho: Some(_), bank, .. } = &cfg.partition else { return None };
    let n = f.masks.len();
    let mut visits = vec![0usize; n];
    for step in 1..=steps {
        for i in batch_fields(cfg, step, n).0 {
            visits[i] += 1;
        }
    }
    let seen: Vec<usize> = f
        .masks
        .iter()
        .zip(&visits)
        .map(|(m, &v)| v.min(bank.guided_len(&crate::method::partition::site_mask(m, f.dims))))
        .collect();
    let min = seen.iter().copied().min()?;
    Some((min, seen.iter().sum::<usize>() as f64 / n as f64))
}

/// Validation loss with the EMA weights and a fixed random stream (comparable across checks).
fn validation_loss(net: &UNet, cfg: &TrainConfig, precond: &Precond, f: &Fields) -> Result<f64> {
    let n = f.masks.len().min(512);
    let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(cfg.seed, 2, 0));
    tch::manual_seed(mix_seed(cfg.seed, 2, 1) as i64);
    let idx: Vec<usize> = (0..n).collect();
    let mut total = 0.0;
    let mut count = 0.0;
    tch::no_grad(|| -> Result<()> {
        for chunk in idx.chunks(cfg.batch.max(1)) {
            total += batch_loss(net, cfg, precond, f, chunk, None, &mut rng, (0, chunk.len()))?.double_value(&[])
                * chunk.len() as f64;
            count += chunk.len() as f64;
        }
        Ok(())
    })?;
    Ok(total / count.max(1.0))
}

/// Splits sample indices into (train, validation) with a seeded shuffle.
fn split_validation(n: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(mix_seed(seed, 4, 0)));
    let mut n_val = (n as f64 * fraction).round() as usize;
    if fraction > 0.0 && n_val == 0 && n >= 2 {
        n_val = 1;
    }
    n_val = n_val.min(n.saturating_sub(1));
    let val = idx.split_off(n - n_val);
    (idx, val)
}

fn append_metrics(path: &Path, value: serde_json::Value) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("{}: cannot append", path.display()))?;
    writeln!(f, "{value}")?;
    Ok(())
}

/// Keeps the metrics of steps up to `step` (a resumed run rewrites what came after).
fn truncate_metrics(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| s as usize <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    crate::atomic::write_bytes(path, kept.as_bytes())
}

/// Builds the network for samples of `dims` on `device` with the seeded initialisation: the
/// space-time network for trajectories unless `model.space_time` says otherwise.
pub fn build_model(cfg: &TrainConfig, dims: Dims, device: Device) -> Result<(VarStore, UNet)> {
    tch::manual_seed(mix_seed(cfg.seed, 5, 0) as i64);
    let vs = VarStore::new(device);
    let zero_output = cfg.denoiser.skip == crate::method::precond::Skip::Fill;
    cfg.check_grid(dims)?;
    let net = UNet::with_inputs(
        &vs.root(),
        dims.c as i64,
        cfg.denoiser.inputs(),
        &cfg.model,
        cfg.model.space_time_for(dims.t),
        cfg.periodic,
    )?;
    if zero_output {
        // With a skip, training starts from the skip itself (x̂0 = fill off the context).
        tch::no_grad(|| {
            for (name, mut v) in vs.variables() {
                if name.starts_with("conv_out.") {
                    let _ = v.zero_();
                }
            }
        });
    }
    Ok((vs, net))
}

/// Trains on `data` into `run_dir` (or continues the run there with `resume`), holding the
/// directory's lock throughout. A new run that fails before its first checkpoint leaves no
/// directory behind (when it created it).
pub fn train(data: &Path, run_dir: &Path, cfg: &TrainConfig, resume: bool, quiet: bool) -> Result<TrainSummary> {
    train_in_group(data, run_dir, cfg, resume, quiet, &Group::single())
}

/// [`train`] as one rank of a data-parallel group: rank 0 holds the lock and writes the run
/// directory exactly as a single process would; the other ranks write nothing (on `resume`
/// they read the run's checkpoint, so the directory must be visible to every rank).
pub fn train_in_group(
    data: &Path,
    run_dir: &Path,
    cfg: &TrainConfig,
    resume: bool,
    quiet: bool,
    group: &Group,
) -> Result<TrainSummary> {
    cfg.validate()?;
    ensure!(
        cfg.batch >= group.world(),
        "a group of {} ranks needs a batch of at least {} (each rank computes a share of it); --batch is {}",
        group.world(),
        group.world(),
        cfg.batch
    );
    if !group.is_leader() {
        crate::data::field::ensure_readable_file(data)?;
        return train_locked(data, &RunDir(run_dir.to_path_buf()), cfg, resume, true, group);
    }
    let run = RunDir(run_dir.to_path_buf());
    if resume {
        run.ensure_resumable()?;
    }
    crate::data::field::ensure_readable_file(data)?;
    let created = !run_dir.exists();
    std::fs::create_dir_all(run_dir).with_context(|| format!("{}: cannot create run directory", run_dir.display()))?;
    // Under the lock, so a run in progress is named as such rather than as a finished one.
    let lock = super::lock::RunLock::acquire(run_dir)?;
    if resume {
        ensure!(run.checkpoint().exists(), "{}: no checkpoint to resume from", run.checkpoint().display());
    } else if run.checkpoint().exists() || run.model().exists() {
        bail!(
            "{}: already holds a trained run; pass --resume to continue it, or choose another --out",
            run_dir.display()
        );
    }
    let result = train_locked(data, &run, cfg, resume, quiet, group);
    if result.is_err() && created && !run.checkpoint().exists() {
        drop(lock);
        let _ = std::fs::remove_dir_all(run_dir);
    }
    result
}

fn train_locked(
    data: &Path,
    run: &RunDir,
    cfg: &TrainConfig,
    resume: bool,
    quiet: bool,
    group: &Group,
) -> Result<TrainSummary> {
    let run_dir = run.0.as_path();
    let leader = group.is_leader();
    let set = FieldSet::load(data, Truth::Never)?;
    cfg.partition.check_fits(set.dims)?;
    let most_observed = set.mask.chunks_exact(set.dims.len()).map(|m| m.iter().filter(|&&v| v != 0).count()).max();
    ensure!(
        most_observed.unwrap_or(0) >= 2,
        "{}: no field has two observed entries; a context and a query need at least one each",
        data.display()
    );
    // A prior partition's prior is copied into the run, and the saved config points at the copy.
    // Rank 0 copies it; the other ranks read it where the configuration points (no writes).
    let (mut adopted, prior) = if leader {
        super::masks::adopt_prior(cfg, run_dir, &cfg.device)?
    } else {
        (cfg.clone(), super::masks::open_run_prior(&cfg.partition, run_dir, Some(&cfg.device))?)
    };
    let all_masks: Vec<Vec<u8>> = set.mask.chunks_exact(set.dims.len()).map(<[u8]>::to_vec).collect();
    // Guide only when the unguided context would be sparse (`guide_below`); the saved
    // configuration is what was trained, so inference follows the choice, and so does a
    // resumed run (runs saved before the rule existed always guided).
    let guidance = if resume {
        if let Partition::Prior { rho, .. } = &mut adopted.partition {
            let saved = TrainConfig::load_run(&run.config())?;
            if matches!(saved.partition, Partition::Prior { rho: None, .. }) {
                *rho = None;
            }
        }
        None
    } else {
        super::masks::choose_guidance(&mut adopted.partition, prior.as_ref(), &all_masks, set.dims, adopted.seed)?
    };
    if let (Some(g), false) = (guidance, quiet) {
        eprintln!(
            "mask prior: unguided contexts keep {:.1}% of the observed sites; {}",
            100.0 * g.unguided_share,
            if g.guided {
                "guiding the draws toward the observations".to_string()
            } else {
                format!(
                    "that is dense enough, so the unguided intersection is trained (guide_below {}; set it to 1 to guide anyway)",
                    g.guide_below
                )
            }
        );
    }
    let cfg = &adopted;
    let (train_idx, val_idx) = split_validation(set.n, cfg.val_fraction, cfg.seed);
    if val_idx.is_empty() && cfg.score.data.is_none() && !quiet {
        eprintln!(
            "warning: {}: {} field(s), none held out for validation or scoring; training runs unchecked and the last weights are kept (give more fields, or --score-data)",
            data.display(),
            set.n
        );
    }
    let mut train_set = set.select(&train_idx);
    let mut val_set = set.select(&val_idx);
    let norm = if resume && !leader {
        Normalizer::load(&run.norm())?
    } else if resume {
        let info: RunInfo = serde_json::from_str(
            &std::fs::read_to_string(run.info()).with_context(|| format!("{}: cannot read", run.info().display()))?,
        )
        .with_context(|| format!("{}: corrupt run info", run.info().display()))?;
        ensure!(
            info.dims == set.dims && info.n_train == train_idx.len(),
            "{}: the run was trained on {} fields of {}, this file gives {} of {}; resume with the same data",
            data.display(),
            info.n_train,
            info.dims.describe(),
            train_idx.len(),
            set.dims.describe()
        );
        Normalizer::load(&run.norm())?
    } else if !leader {
        Normalizer::fit(&train_set)
    } else {
        let norm = Normalizer::fit(&train_set);
        norm.save(&run.norm())?;
        cfg.save(&run.config())?;
        let info = RunInfo {
            lacuna_version: env!("CARGO_PKG_VERSION").into(),
            data: data.display().to_string(),
            n_train: train_idx.len(),
            n_val: val_idx.len(),
            dims: set.dims,
            partition: cfg.partition.name().into(),
            provenance: Some(run_provenance(data, cfg)?),
        };
        crate::atomic::write_bytes(&run.info(), serde_json::to_string_pretty(&info)?.as_bytes())?;
        let _ = std::fs::remove_file(run.metrics());
        if let Some(g) = guidance {
            append_metrics(
                &run.metrics(),
                serde_json::json!({"step": 0, "unguided_context_share": g.unguided_share, "guided": g.guided}),
            )?;
        }
        norm
    };
    norm.apply(&mut train_set);
    norm.apply(&mut val_set);
    let chosen = super::interpolant::for_training(cfg, &train_set, &run.interpolant(), resume, leader, quiet)?;
    let precond = Precond::of(cfg, set.dims, chosen.kriging_covariance())?;
    // What the weights files carry besides the tensors: enough to use them without the run.
    let weights_meta = if leader { weights_metadata(cfg, &norm, run)? } else { Default::default() };

    let field_bytes = resources::unet_bytes_per_field(&cfg.model, set.dims, true);
    resources::check_fits(
        &format!("training with batch {} on {} samples", cfg.batch, set.dims.describe()),
        cfg.batch as u64 * field_bytes + (set.values.len() as u64) * 8,
        "lower --batch or the model size (model.channels, model.mults)",
    )?;
    let device = rank_device(open_device(&cfg.device)?, group);
    let (vs, net) = build_model(cfg, set.dims, device)?;
    // The EMA store owns the tensors that `ema` refers to; it lives until the end of training.
    let (ema_vs, ema_net) = build_model(cfg, set.dims, device)?;
    let mut opt = AdamW::new(&vs, cfg.optim.beta1, cfg.optim.beta2, cfg.optim.weight_decay);
    let ema = named_vars(&ema_vs);
    let mut state = if resume {
        let s = checkpoint::load(&run.checkpoint(), &mut opt, &ema)?;
        if leader {
            truncate_metrics(&run.metrics(), s.step)?;
        }
        if !quiet {
            eprintln!("resuming {} from step {}", run_dir.display(), s.step);
        }
        s
    } else {
        tch::no_grad(|| {
            for ((_, e), (_, p)) in ema.iter().zip(&opt.params) {
                e.shallow_clone().copy_(p);
            }
        });
        LoopState { lr: cfg.optim.lr, ..Default::default() }
    };
    // `auto` arithmetic depends on the machine: say which one this run trains in.
    if leader {
        let precision = serde_json::to_value(net.precision())?;
        append_metrics(&run.metrics(), serde_json::json!({"step": state.step, "precision": precision}))?;
        if !quiet && net.precision() == Precision::Bfloat16 {
            eprintln!(
                "network arithmetic: bfloat16 mixed precision (float32 weights){}",
                match cfg.model.precision {
                    Precision::Auto => "; this CPU has AMX-BF16 (--precision float32 to turn it off)",
                    _ => "",
                }
            );
        }
    }
    // Every rank starts from rank 0's weights (and, on resume, its step).
    let params: Vec<Tensor> = opt.params.iter().map(|(_, p)| p.shallow_clone()).collect();
    group.sync_from_leader(&params).context("sharing rank 0's weights")?;
    let said = group.leader_says(&[state.step as f64])?;
    ensure!(
        said[0] as usize == state.step,
        "rank {} resumes from step {}, rank 0 from step {}: the ranks see different checkpoints",
        group.rank(),
        state.step,
        said[0]
    );
    ensure!(
        state.step <= cfg.steps,
        "the checkpoint is at step {}, beyond the requested {} steps",
        state.step,
        cfg.steps
    );
    ensure!(
        !state.finished(cfg.steps, cfg.time_budget),
        "{}: the run is finished (step {} of {}{}); nothing to do. Pass --steps N above {} (or a longer --time-budget) to train on",
        run_dir.display(),
        state.step,
        cfg.steps,
        cfg.time_budget.map(|b| format!(", {:.0} s of a {b:.0} s budget", state.seconds)).unwrap_or_default(),
        state.step
    );

    super::masks::prepare(&cfg.partition, prior.as_ref(), &all_masks, set.dims, 1, cfg.seed, quiet)?;
    let scorer = if leader { scorer(cfg, &set, &val_idx, &norm, device)? } else { None };
    if let Some(sc) = &scorer {
        super::masks::prepare(&cfg.partition, prior.as_ref(), sc.masks(), set.dims, sc.ensemble, cfg.seed, true)?;
    }
    let train_f = Fields::new(&train_set, device);
    let val_f = (leader && val_set.n > 0).then(|| Fields::new(&val_set, device));
    let progress =
        Progress::new("train", state.step, cfg.steps, quiet).with_deadline(cfg.time_budget.map(|b| b - state.seconds));
    let mut last_loss = f64::NAN;
    let mut window = (0.0, 0usize);
    let start_step = state.step;
    let mut stopped = None;
    while state.step < cfg.steps {
        if let Some(budget) = cfg.time_budget.filter(|&b| stopped.is_none() && state.seconds >= b) {
            stopped = Some(format!("time budget of {budget:.0} s spent"));
        }
        let step = state.step + 1;
        // Rank 0 decides whether to go on and at what rate (its clock and scores rule the group).
        let said =
            group.leader_says(&[stopped.is_none() as u8 as f64, scheduled_lr(cfg, step, state.lr, state.seconds)])?;
        if said[0] == 0.0 {
            break;
        }
        let lr = said[1];
        let (idx, visits) = batch_fields(cfg, step, train_set.n);
        let clock = std::time::Instant::now();
        let (loss_v, grad_norm) =
            optimisation_step(&net, cfg, &precond, &mut opt, &ema, &train_f, &idx, Some(&visits), step, lr, group)?;
        state.seconds += clock.elapsed().as_secs_f64();
        state.step = step;
        last_loss = loss_v;
        window.0 += loss_v;
        window.1 += 1;
        // The last step of the run: the step budget, or the time budget about to run out.
        let last = state.finished(cfg.steps, cfg.time_budget);

        if !leader {
            continue;
        }
        if stopped.is_none() && STOP.swap(false, std::sync::atomic::Ordering::SeqCst) {
            stopped = Some("stop requested (interrupt)".to_string());
        }
        if step % cfg.log_every == 0 || last {
            let mean = window.0 / window.1 as f64;
            append_metrics(
                &run.metrics(),
                serde_json::json!({"step": step, "loss": loss_v, "loss_mean": mean, "lr": lr, "grad_norm": grad_norm, "steps_per_s": progress.rate(step), "seconds": state.seconds}),
            )?;
            progress.update(step, &format!("loss {mean:.4}  lr {lr:.2e}"), true);
            window = (0.0, 0);
        } else {
            progress.update(step, &format!("loss {loss_v:.4}"), false);
        }
        if let Some(vf) = &val_f {
            if step % cfg.val_every == 0 || last {
                let v = resources::torch("validation", || validation_loss(&ema_net, cfg, &precond, vf))??;
                let improved = state.best_val.is_none_or(|b| v < b * (1.0 - 1e-4));
                if improved {
                    state.best_val = Some(v);
                    state.plateau_bad = 0;
                } else {
                    state.plateau_bad += 1;
                    if cfg.optim.lr_schedule == LrSchedule::Plateau && state.plateau_bad > cfg.optim.plateau_patience {
                        state.lr = (state.lr * cfg.optim.plateau_factor).max(cfg.optim.min_lr);
                        state.plateau_bad = 0;
                    }
                }
                append_metrics(
                    &run.metrics(),
                    serde_json::json!({"step": step, "val_loss": v, "best_val": state.best_val}),
                )?;
            }
        }
        if let Some(sc) = &scorer {
            if step % cfg.score.every == 0 || last {
                let mse = resources::torch("scoring", || sc.score(&ema_net, cfg, &precond, &norm))??;
                if !mse.is_finite() {
                    bail!("the held-out score became {mse} at step {step}; the best weights so far are kept");
                }
                let improved = state.best_score.is_none_or(|b| mse < b * (1.0 - 1e-4));
                if improved {
                    state.best_score = Some(mse);
                    state.best_step = step;
                    state.score_bad = 0;
                    checkpoint::save_weights_with(&run.model(), &ema, &weights_meta)?;
                } else {
                    state.score_bad += 1;
                }
                let ratio = sc.oracle_mse.map(|o| mse / o.max(1e-30));
                append_metrics(
                    &run.metrics(),
                    serde_json::json!({"step": step, "seconds": state.seconds, "score_mse": mse, "score_ratio": ratio,
                        "score_kind": sc.kind, "best_score": state.best_score, "best_step": state.best_step}),
                )?;
                let shown = ratio.map(|r| format!(" ({r:.3}× oracle)")).unwrap_or_default();
                progress.note(&format!("step {step}: held-out MSE {mse:.5}{shown}, best at step {}", state.best_step));
                if cfg.score.patience > 0 && state.score_bad >= cfg.score.patience {
                    stopped = Some(format!(
                        "no better held-out score in {} scores (best {:.5} at step {})",
                        state.score_bad,
                        state.best_score.unwrap_or(f64::NAN),
                        state.best_step
                    ));
                }
            }
        }
        let stop_now = stopped.is_some() || last;
        if step % cfg.checkpoint_every == 0 || stop_now {
            if scorer.is_none() {
                checkpoint::save_weights_with(&run.model(), &ema, &weights_meta)?;
            }
            checkpoint::save_weights_with(&run.last_model(), &ema, &weights_meta)?;
            checkpoint::save(&run.checkpoint(), &opt, &ema, &state)?;
        }
    }
    if let (true, Some((min, mean))) = (leader, guided_contexts_seen(cfg, &train_f, state.step)) {
        append_metrics(
            &run.metrics(),
            serde_json::json!({"step": state.step, "guided_contexts_min": min, "guided_contexts_mean": mean}),
        )?;
    }
    if let Some(why) = &stopped {
        if !quiet {
            eprintln!("stopped at step {}: {why}", state.step);
        }
    }
    let seconds = progress.elapsed();
    Ok(TrainSummary {
        steps: state.step,
        last_loss,
        best_val: state.best_val,
        best_score: state.best_score,
        best_step: state.best_step,
        seconds,
        steps_per_s: (state.step - start_step) as f64 / seconds.max(1e-9),
        stopped,
    })
}

/// The provenance of a new run: this command, the hashes of its data (and scoring files), and
/// the settings that make it reproducible.
fn run_provenance(data: &Path, cfg: &TrainConfig) -> Result<crate::provenance::Provenance> {
    let mut inputs = vec![data];
    inputs.extend(cfg.score.data.as_deref());
    inputs.extend(cfg.score.oracle.as_deref());
    Ok(crate::provenance::Provenance::now(env!("CARGO_PKG_VERSION"), &inputs)?
        .with("seed", cfg.seed)
        .with("steps", cfg.steps)
        .with("partition", cfg.partition.name()))
}

/// The metadata of a run's weights files: the lacuna version, the training configuration
/// (TOML), the normalisation (JSON) and the run's record (`run.json`), so the weights alone say
/// what they are and how to feed them (`x_norm = (x − mean) / std` per channel).
fn weights_metadata(
    cfg: &TrainConfig,
    norm: &Normalizer,
    run: &RunDir,
) -> Result<std::collections::HashMap<String, String>> {
    let mut meta = std::collections::HashMap::new();
    meta.insert("lacuna_version".to_string(), env!("CARGO_PKG_VERSION").to_string());
    meta.insert("config".to_string(), toml::to_string(cfg)?);
    meta.insert("norm".to_string(), serde_json::to_string(norm)?);
    if let Ok(info) = std::fs::read_to_string(run.info()) {
        meta.insert("run".to_string(), info);
    }
    // The interpolant the run chose and its covariance: what the network's third input is.
    if let Ok(chosen) = std::fs::read_to_string(run.interpolant()) {
        meta.insert("interpolant".to_string(), chosen);
    }
    Ok(meta)
}

/// The device of this rank: in a group, CUDA device `n` means `n + LOCAL_RANK`, so the ranks
/// on one machine use one GPU each.
fn rank_device(device: Device, group: &Group) -> Device {
    match device {
        Device::Cuda(n) if group.world() > 1 => Device::Cuda(n + group.local_rank()),
        d => d,
    }
}

/// The held-out scorer of a run: its `score.data` file (truth-scored when it has truth), or
/// the validation share of the training file (scored on hidden observations); none when
/// scoring is off or there is nothing to score on.
fn scorer(
    cfg: &TrainConfig,
    set: &FieldSet,
    val_idx: &[usize],
    norm: &Normalizer,
    device: Device,
) -> Result<Option<super::score::Scorer>> {
    if cfg.score.every == 0 {
        return Ok(None);
    }
    let held = match &cfg.score.data {
        Some(path) => FieldSet::load(path, Truth::IfPresent)?,
        None if val_idx.is_empty() => return Ok(None),
        None => set.select(val_idx),
    };
    ensure!(
        held.dims == set.dims,
        "the scoring fields are {}, the training fields {}",
        held.dims.describe(),
        set.dims.describe()
    );
    super::score::Scorer::new(&held, cfg, norm, device, cfg.score.oracle.as_deref()).map(Some)
}

#[cfg(test)]
mod tests;
