//! Imputation with a trained run: the single-step context ensemble (`steps = 1`) or the
//! multi-step ensemble sampler drawing posterior samples. Observations are pasted back exactly.

use super::progress::Progress;
use super::{mix_seed, open_device, RunDir, RunInfo};
use crate::config::TrainConfig;
use crate::data::field::FieldStream;
use crate::data::npy::NpzWriter;
use crate::data::Normalizer;
use crate::method::ensemble::{self, Inference, Members, Weighting};
use crate::method::NetDenoiser;
use anyhow::{bail, ensure, Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use tch::Tensor;

#[derive(Clone, Debug)]
pub struct ImputeOptions {
    /// K context masks averaged per estimate.
    pub ensemble: usize,
    /// 1 = single-step ensemble; more = multi-step sampler with this many steps.
    pub steps: usize,
    /// Posterior samples to write (multi-step only).
    pub samples: usize,
    pub weighting: Weighting,
    pub seed: u64,
    /// Fields per forward chunk.
    pub chunk: usize,
    /// Overrides the device the run was trained on.
    pub device: Option<crate::config::Device>,
    /// Use the last weights instead of the best-scoring ones.
    pub last: bool,
    /// The ensemble's contexts, when not the run's inference default: a share of the
    /// observation, or chosen on the data (`Contexts::Auto`, the default of Work II runs).
    pub context_ratio: Option<Contexts>,
    /// The circular shift ensemble members are rolled by, when not the run's declared
    /// symmetry (`[0, 0]`: none).
    pub shifts: Option<[usize; 2]>,
    /// The reflections ensemble members are mapped by, when not the run's declared group.
    pub reflections: Option<crate::config::Reflections>,
    /// Apply the run to fields of another grid size than it was trained on (a convolutional
    /// prior can be meant to transfer); refused otherwise.
    pub other_grid: bool,
}

impl Default for ImputeOptions {
    fn default() -> Self {
        ImputeOptions {
            ensemble: 10,
            steps: 1,
            samples: 0,
            weighting: Weighting::Linear,
            seed: 0,
            chunk: 16,
            device: None,
            last: false,
            context_ratio: None,
            shifts: None,
            reflections: None,
            other_grid: false,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ImputeSummary {
    pub fields: usize,
    pub missing_entries: usize,
    pub seconds: f64,
    /// What `Contexts::Auto` measured and chose.
    pub contexts: Option<super::context_choice::ContextChoice>,
}

/// The contexts of the ensemble at inference, when not the run's default.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Contexts {
    /// Pixel runs: the share of the observation kept in each context (1 = the whole
    /// observation, 0 = the training ratio). Block and Work II runs: 1 = the whole
    /// observation, 0 = the training rule (blocks dropped, intersections with prior draws).
    Ratio(f64),
    /// Whichever of the whole observation and the training rule completes the data's own
    /// observed entries better when some are hidden (`context_choice`).
    Auto,
}

impl std::str::FromStr for Contexts {
    type Err = String;
    fn from_str(s: &str) -> Result<Contexts, String> {
        match s.trim() {
            "auto" => Ok(Contexts::Auto),
            v => v.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)).map(Contexts::Ratio).ok_or_else(|| {
                format!("{s:?}: expected a share in [0, 1] (1: the whole observation, 0: the training rule) or `auto`")
            }),
        }
    }
}

/// A trained run loaded for inference.
pub struct LoadedRun {
    pub config: TrainConfig,
    pub norm: Normalizer,
    pub info: RunInfo,
    _vs: tch::nn::VarStore,
    pub net: crate::model::UNet,
    /// CPU worker threads for inference (none on a GPU).
    pub workers: Option<crate::model::Workers>,
    /// The mask prior of a Work II run.
    pub prior: Option<super::masks::LoadedPrior>,
    /// The interpolant the run chose at its start (`interpolant.json`).
    pub interpolant: super::interpolant::Chosen,
}

impl LoadedRun {
    /// The run in `run_dir` with its kept weights (the best-scoring ones when training scored),
    /// or its last ones with `last`.
    pub fn open(run_dir: &Path, device: Option<&crate::config::Device>, last: bool) -> Result<LoadedRun> {
        let run = RunDir(run_dir.to_path_buf());
        ensure!(run_dir.is_dir(), "{}: no such run directory", run_dir.display());
        let config = TrainConfig::load_run(&run.config())?;
        let norm = Normalizer::load(&run.norm())?;
        let info: RunInfo = serde_json::from_str(
            &std::fs::read_to_string(run.info()).with_context(|| format!("{}: cannot read", run.info().display()))?,
        )
        .with_context(|| format!("{}: corrupt run info", run.info().display()))?;
        ensure!(
            norm.mean.len() == info.dims.c && norm.std.len() == info.dims.c,
            "{}: statistics for {} channels, the run has {}",
            run.norm().display(),
            norm.mean.len(),
            info.dims.c
        );
        let device_name = *device.unwrap_or(&config.device);
        let device = open_device(&device_name)?;
        let (vs, net) = super::train::build_model(&config, info.dims, device)?;
        let weights = if last && run.last_model().exists() { run.last_model() } else { run.model() };
        super::checkpoint::load_weights(&weights, &super::optim::named_vars(&vs))?;
        crate::model::prefer_channels_last(&vs);
        let workers = cpu_workers(&vs, &net)?;
        let prior = super::masks::open_run_prior(&config.partition, run_dir, Some(&device_name))?;
        let interpolant = super::interpolant::for_run(&config, &run.interpolant())?;
        Ok(LoadedRun { config, norm, info, _vs: vs, net, workers, prior, interpolant })
    }
}

/// One inference worker per intra-op thread on a CPU with at least two; none otherwise.
pub fn cpu_workers(vs: &tch::nn::VarStore, net: &crate::model::UNet) -> Result<Option<crate::model::Workers>> {
    let n = tch::get_num_threads().max(1) as usize;
    if net.device() != tch::Device::Cpu || n < 2 {
        return Ok(None);
    }
    Ok(Some(crate::model::Workers::new(vs, net, n)?))
}

/// Rows per model call: CPU workers push at most 16 rows at a time through the network, so
/// their calls may be larger (fewer thread launches) without more activation memory.
pub fn max_batch(model: &crate::model::UNetConfig, d: crate::data::Dims, workers: bool) -> Result<usize> {
    super::resources::inference_batch(model, d, if workers { 256 } else { 64 })
}

/// Fills the gaps of `data` with the run in `run_dir`; writes `mean`, `mask` and, when asked,
/// `samples` `[N, S, C, H, W]` and `std` to `out`.
pub fn impute(run_dir: &Path, data: &Path, out: &Path, opts: &ImputeOptions, quiet: bool) -> Result<ImputeSummary> {
    ensure!(opts.ensemble >= 1, "--ensemble must be at least 1");
    ensure!(opts.steps >= 1, "--steps must be at least 1");
    ensure!(opts.samples == 0 || opts.steps >= 2, "--samples needs the multi-step sampler (--steps 2 or more); the single-step ensemble gives the posterior mean only");
    let run_files: Vec<PathBuf> =
        std::fs::read_dir(run_dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    let mut inputs: Vec<&Path> = run_files.iter().map(PathBuf::as_path).collect();
    inputs.push(data);
    crate::atomic::refuse_overwriting_inputs(&inputs, &[out])?;
    let mut run = LoadedRun::open(run_dir, opts.device.as_ref(), opts.last)?;
    if let Some(s) = opts.shifts {
        ensure!(
            s == [0, 0] || run.config.periodic,
            "--shifts needs a periodic run (trained with --periodic): a zero-padded network sees the border, and a shifted field is not one it learned"
        );
        // 0,0 turns the rolled members off but keeps the declared symmetry, which
        // `shift-reflect` still needs.
        match s {
            [0, 0] => run.config.inference_shifts = false,
            s => (run.config.shift_symmetry, run.config.inference_shifts) = (s, true),
        }
    }
    if let Some(r) = opts.reflections {
        run.config.reflections = r;
    }
    run.config.check_shift_reflect().context("--reflections")?;
    // The file is read and written a chunk of fields at a time: memory stays bounded by the
    // chunk, whatever the file size.
    let mut stream = FieldStream::open(data)?;
    let (n, d) = (stream.n, stream.dims);
    ensure!(
        d.c == run.info.dims.c,
        "{}: fields have {} channels, the run {} was trained on {}",
        data.display(),
        d.c,
        run_dir.display(),
        run.info.dims.c
    );
    // Any frame count works (per-frame convolutions, attention over relative offsets), but a
    // trajectory model is not a snapshot model and the other way round.
    ensure!(
        (d.t > 1) == (run.info.dims.t > 1) || !run.net.is_space_time(),
        "{}: {} samples, but the run {} was trained on {} samples",
        data.display(),
        d.describe(),
        run_dir.display(),
        run.info.dims.describe()
    );
    ensure!(
        (d.h, d.w) == (run.info.dims.h, run.info.dims.w) || opts.other_grid,
        "{}: fields are {}×{}, the run {} was trained on {}×{}; pass --other-grid to apply it anyway",
        data.display(),
        d.h,
        d.w,
        run_dir.display(),
        run.info.dims.h,
        run.info.dims.w
    );
    run.config.check_grid(d).with_context(|| data.display().to_string())?;
    // Work II runs choose by default: their whole-observation contexts won by 16% on OSTIA's
    // clouds and lost by 7% on COADS's ship tracks, and the choice on hidden observations
    // picked the better one on both (docs/results.md §8).
    let contexts = match opts.context_ratio {
        None if matches!(run.config.partition, crate::method::Partition::Prior { .. }) => Some(Contexts::Auto),
        c => c,
    };
    // The preconditioning depends on the denoiser, schedule and periodicity, not on the
    // contexts: the choice below and the imputation share it.
    let precond = crate::method::precond::Precond::of(&run.config, d, run.interpolant.kriging_covariance())?;
    let chosen = match contexts {
        None => None,
        Some(Contexts::Ratio(r)) => {
            set_context_ratio(&mut run.config, r)?;
            None
        }
        Some(Contexts::Auto) => {
            match super::context_choice::choose(&run, &precond, data, opts.ensemble, opts.seed, quiet) {
                Ok(choice) => {
                    set_context_ratio(&mut run.config, choice.ratio)?;
                    Some(choice)
                }
                // Chosen by default, not asked for: fields too sparse to hide anything from keep
                // the training rule.
                Err(e) if opts.context_ratio.is_none() => {
                    if !quiet {
                        eprintln!(
                            "impute: keeping the training rule's contexts, the choice could not be measured: {e:#}"
                        );
                    }
                    None
                }
                Err(e) => return Err(e),
            }
        }
    };
    run.config = run.config.for_inference();
    let max_batch = max_batch(&run.config.model, d, run.workers.is_some())?;
    let den = NetDenoiser { net: &run.net, precond: &precond, max_batch, workers: run.workers.as_ref() };
    let device = run.net.device();
    let len = d.len();
    let s_count = if opts.steps >= 2 { opts.samples.max(1) } else { 0 };
    let shape = d.shape(n);
    let mut writer = NpzWriter::new(out);
    let mean_slot = writer.add_f32("mean", shape.clone())?;
    let mask_slot = writer.add_bool("mask", shape.clone())?;
    let samples_slot = if s_count > 0 {
        let mut s_shape = d.shape(n);
        s_shape.insert(1, s_count);
        Some(writer.add_f32("samples", s_shape)?)
    } else {
        None
    };
    let std_slot = if s_count > 1 { Some(writer.add_f32("std", shape)?) } else { None };
    let weights = if opts.last { run_dir.join("model-last.safetensors") } else { run_dir.join("model.safetensors") };
    let provenance = crate::provenance::Provenance::now(env!("CARGO_PKG_VERSION"), &[data, &weights])?
        .with("run", run_dir.display().to_string())
        .with("ensemble", opts.ensemble)
        .with("steps", opts.steps)
        .with("samples", s_count)
        .with("seed", opts.seed)
        .with("last_weights", opts.last)
        .with("inference_context_ratio", run.config.inference_context_ratio)
        .with("inference_contexts", inference_contexts(&run.config.partition))
        .with("inference_shifts", run.config.inference_shift())
        .with("reflections", run.config.reflections);
    let provenance = match &chosen {
        Some(c) => provenance.with("context_choice", c),
        None => provenance,
    };
    writer.add_bytes("provenance", &serde_json::to_vec_pretty(&provenance)?)?;

    // Network evaluations per field: K contexts, times the samples and steps of the sampler.
    let members = opts.ensemble * s_count.max(1);
    // Progress comes per chunk: with a large ensemble, chunks shrink (down to one field) so it
    // still moves. Results do not depend on the chunking (one random stream per field).
    let chunk = opts.chunk.max(1).min((160 / members).max(1));
    if !quiet {
        let evaluations = crate::memory::product(&[n, members, opts.steps]);
        if evaluations > 100_000 {
            eprintln!(
                "impute: {n} fields × {members} members × {} steps = {evaluations} network evaluations; progress per chunk of {chunk} field(s)",
                opts.steps,
            );
        }
    }
    let progress = Progress::new("impute", 0, n, quiet);
    let members = Members::of(&run.config, opts.ensemble);
    let inf = Inference { ensemble: members, steps: opts.steps, weighting: opts.weighting };
    let (mut done, mut missing) = (0usize, 0usize);
    while let Some(set) = stream.next_chunk(chunk)? {
        let nb = set.n;
        // One random stream per field (and per sample), so chunking never changes the numbers.
        let field_seed = |i: usize| mix_seed(opts.seed, 7, (done + i) as u64);
        if done == 0 {
            warn_if_other_scale(&set, &run.norm, data, run_dir);
        }
        let mut norm_set = set.clone();
        run.norm.apply(&mut norm_set);
        let masks: Vec<Vec<u8>> = set.mask.chunks_exact(len).map(<[u8]>::to_vec).collect();
        let u = Tensor::from_slice(&norm_set.values)
            .view([nb as i64, d.planes() as i64, d.h as i64, d.w as i64])
            .to_device(device);
        let mut mean = vec![0f32; nb * len];
        let mut samples = vec![0f32; nb * s_count * len];
        // Work II: guided prior draws for this chunk's masks, K per mask (cached across chunks).
        super::masks::prepare(&run.config.partition, run.prior.as_ref(), &masks, d, opts.ensemble, opts.seed, quiet)?;
        if opts.steps == 1 {
            let (sched, part) = (&run.config.schedule, run.config.contexts(d));
            let mut rngs: Vec<ChaCha8Rng> = (0..nb).map(|i| ChaCha8Rng::seed_from_u64(field_seed(i))).collect();
            let m = ensemble::single_step(&den, sched, &part, &u, &masks, members, &mut rngs)?;
            copy_out(&m, &mut mean)?;
        } else {
            // S samples of each field, batched: rows ordered field-major.
            let u_rep = u.repeat_interleave_self_int(s_count as i64, 0, None);
            let m_rep: Vec<Vec<u8>> = masks.iter().flat_map(|m| std::iter::repeat_n(m.clone(), s_count)).collect();
            let (sched, part) = (&run.config.schedule, run.config.contexts(d));
            let mut rngs: Vec<ChaCha8Rng> = (0..nb * s_count)
                .map(|r| ChaCha8Rng::seed_from_u64(mix_seed(field_seed(r / s_count), 8, (r % s_count) as u64)))
                .collect();
            let x = ensemble::multi_step(&den, sched, &part, &u_rep, &m_rep, &inf, &mut rngs)?;
            copy_out(&x, &mut samples)?;
            let avg = x.view([nb as i64, s_count as i64, d.planes() as i64, d.h as i64, d.w as i64]).mean_dim(
                1,
                false,
                tch::Kind::Float,
            );
            copy_out(&avg, &mut mean)?;
        }
        // The first field of the chunk with a non-finite value (samples are `[nb, S, …]`).
        let bad = mean
            .iter()
            .position(|v| !v.is_finite())
            .map(|k| k / len)
            .or_else(|| samples.iter().position(|v| !v.is_finite()).map(|k| k / (s_count * len)));
        if let Some(field) = bad {
            let files = RunDir(run_dir.to_path_buf());
            bail!(
                "the network returned a non-finite value (field {}); {} or {} is corrupt (retrain, or impute with --last)",
                done + field,
                files.model().display(),
                files.norm().display()
            );
        }
        run.norm.invert(&mut mean, d.c, d.sites());
        run.norm.invert(&mut samples, d.c, d.sites());
        // Paste the observations back exactly (no round trip through normalisation).
        for (k, (&o, &v)) in set.mask.iter().zip(&set.values).enumerate() {
            if o != 0 {
                mean[k] = v;
                for s in 0..s_count {
                    samples[((k / len) * s_count + s) * len + k % len] = v;
                }
            }
        }
        // Never-observable sites (static_mask) have no value to impute.
        for k in (0..nb * len).filter(|&k| !set.is_observable(k)) {
            mean[k] = f32::NAN;
            for s in 0..s_count {
                samples[((k / len) * s_count + s) * len + k % len] = f32::NAN;
            }
        }
        writer.append_f32(mean_slot, &mean)?;
        writer.append_bool(mask_slot, &set.mask)?;
        if let Some(slot) = samples_slot {
            writer.append_f32(slot, &samples)?;
        }
        if let Some(slot) = std_slot {
            let std: Vec<f32> = (0..nb * len)
                .map(|j| {
                    let (i, k) = (j / len, j % len);
                    let vals = (0..s_count).map(|s| samples[(i * s_count + s) * len + k] as f64);
                    let var = vals.map(|v| (v - mean[j] as f64).powi(2)).sum::<f64>() / (s_count - 1) as f64;
                    var.sqrt() as f32
                })
                .collect();
            writer.append_f32(slot, &std)?;
        }
        missing += (0..nb * len).filter(|&k| set.mask[k] == 0 && set.is_observable(k)).count();
        done += nb;
        progress.update(done, "", done == n);
    }
    if missing == 0 {
        bail!("{}: every entry is observed, nothing is missing; there is nothing to impute", data.display());
    }
    writer.finish()?;
    Ok(ImputeSummary { fields: n, missing_entries: missing, seconds: progress.elapsed(), contexts: chosen })
}

/// Sets the ensemble's contexts of `cfg` to share `r` of the observation (pixel runs; 0 = the
/// training ratio), or for block and Work II runs to the whole observation (1) or the training
/// rule (0).
pub(super) fn set_context_ratio(cfg: &mut TrainConfig, r: f64) -> Result<()> {
    use crate::method::Partition;
    match cfg.partition {
        Partition::Pixel { .. } => {
            ensure!((0.0..=1.0).contains(&r), "--context-ratio must be in [0, 1] (0: the training ratio), got {r}")
        }
        Partition::Block { .. } => ensure!(
            r == 0.0 || r == 1.0,
            "--context-ratio on a block-partition run is 1 (the whole observation) or 0 (drop blocks as in training), got {r}"
        ),
        Partition::Prior { .. } => ensure!(
            r == 0.0 || r == 1.0,
            "--context-ratio on a Work II run is 1 (the whole observation) or 0 (its intersections with prior draws, as in training), got {r}"
        ),
        ref p => bail!(
            "--context-ratio applies to runs trained with the pixel, block, prior or intersect partition; this one used {}",
            p.name()
        ),
    }
    cfg.inference_context_ratio = r;
    // Work II's whole-observation contexts: every member sees all of M, as a pixel run's do at
    // ratio 1, and no prior draws are needed.
    if r == 1.0 && matches!(cfg.partition, Partition::Prior { .. }) {
        cfg.partition = Partition::Pixel { context_ratio: 1.0, query_ratio: None };
    }
    Ok(())
}

/// Warns when the observed values of `set` sit far outside the run's training statistics
/// (another variable, other units): the network was never trained on such inputs.
fn warn_if_other_scale(set: &crate::data::FieldSet, norm: &Normalizer, data: &Path, run_dir: &Path) {
    let here = Normalizer::fit(set);
    for c in 0..set.dims.c.min(norm.mean.len()) {
        let shift = (here.mean[c] - norm.mean[c]).abs() / norm.std[c];
        let ratio = here.std[c] / norm.std[c];
        if shift > 3.0 || !(0.2..=5.0).contains(&ratio) {
            eprintln!(
                "warning: {}: channel {c} has observed mean {:.4} and std {:.4}, the run {} was trained on mean {:.4} and std {:.4}; other units or another variable?",
                data.display(),
                here.mean[c],
                here.std[c],
                run_dir.display(),
                norm.mean[c],
                norm.std[c]
            );
        }
    }
}

/// What an imputation's ensemble contexts were, for its provenance: the whole observation, or
/// the partition's draws.
fn inference_contexts(partition: &crate::method::Partition) -> &'static str {
    use crate::method::Partition;
    match partition {
        Partition::Pixel { context_ratio, .. } if *context_ratio >= 1.0 => "whole observation",
        Partition::Block { drop: 0, .. } => "whole observation",
        p => p.name(),
    }
}

fn copy_out(t: &Tensor, dst: &mut [f32]) -> Result<()> {
    let v: Vec<f32> = Vec::try_from(t.to_device(tch::Device::Cpu).to_kind(tch::Kind::Float).flatten(0, -1))?;
    ensure!(v.len() == dst.len(), "internal: output size mismatch");
    dst.copy_from_slice(&v);
    Ok(())
}
