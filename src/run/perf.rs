//! `lacuna bench perf`: our training step, single-step K-ensemble and multi-step sampler timed
//! side by side with the PyTorch reference (`scripts/torch_reference.py`) on the same network,
//! weights and shapes, after checking that both compute the same function.
//!
//! Each task runs `warmup` untimed and `reps` timed repetitions on each side; the report gives
//! the median and the min–max spread per side and the ratio of medians (ours / reference).
//! Ratios, not absolute times, are what carry over between machines.

use super::checkpoint;
use super::optim::{named_vars, AdamW};
use super::train::{build_model, optimisation_step, Fields};
use crate::config::TrainConfig;
use crate::data::{Dims, FieldSet, Pattern};
use crate::method::ensemble::{self, Inference, Members, Weighting};
use crate::method::precond::Precond;
use crate::method::NetDenoiser;
use crate::method::Partition;
use crate::model::UNet;
use anyhow::{bail, ensure, Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// What to time and how.
#[derive(Clone, Debug)]
pub struct PerfOptions {
    pub size: usize,
    pub channels: usize,
    pub batch: usize,
    pub reps: usize,
    pub warmup: usize,
    /// K of the single-step ensemble (and of the sampler's first and last ensembles).
    pub ensemble: usize,
    /// Steps of the multi-step sampler.
    pub sampler_steps: usize,
    pub device: crate::config::Device,
    pub python: PathBuf,
    pub reference: PathBuf,
    /// Scratch directory for the exchanged weights and inputs.
    pub work: PathBuf,
    pub tasks: Vec<Task>,
    /// Inference worker threads on a CPU: `None` = one per intra-op thread (as `impute`), 0 or 1 = off.
    pub workers: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Train,
    Ensemble,
    Sampler,
}

impl Task {
    fn name(self) -> &'static str {
        match self {
            Task::Train => "train",
            Task::Ensemble => "ensemble",
            Task::Sampler => "sampler",
        }
    }

    /// The ratio the performance issue asks for (ours / reference).
    pub fn target(self) -> f64 {
        match self {
            Task::Train => 1.0,
            Task::Ensemble => 0.5,
            Task::Sampler => 0.8,
        }
    }
}

/// Median and spread of one side's repetitions.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Timing {
    pub seconds: Vec<f64>,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Timing {
    fn new(mut seconds: Vec<f64>) -> Result<Timing> {
        ensure!(!seconds.is_empty(), "no repetitions were timed");
        let raw = seconds.clone();
        seconds.sort_by(f64::total_cmp);
        let n = seconds.len();
        let median = if n % 2 == 1 { seconds[n / 2] } else { 0.5 * (seconds[n / 2 - 1] + seconds[n / 2]) };
        Ok(Timing { seconds: raw, median, min: seconds[0], max: seconds[n - 1] })
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct TaskResult {
    pub task: Task,
    pub what: String,
    pub ours: Timing,
    pub reference: Timing,
    pub ratio: f64,
    pub target: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct PerfReport {
    pub device: String,
    pub threads: i32,
    pub max_abs_diff: f64,
    pub output_scale: f64,
    pub results: Vec<TaskResult>,
}

impl PerfReport {
    /// The Markdown table printed by the command and quoted in the README.
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| task | ours median (min–max) | reference median (min–max) | ours / reference | target |\n|---|---|---|---|---|\n",
        );
        let f = |t: &Timing| format!("{:.1} ms ({:.1}–{:.1})", t.median * 1e3, t.min * 1e3, t.max * 1e3);
        for r in &self.results {
            s += &format!(
                "| {} | {} | {} | **{:.2}** | ≤ {:.1} |\n",
                r.what,
                f(&r.ours),
                f(&r.reference),
                r.ratio,
                r.target
            );
        }
        s
    }
}

/// The Python of the project's torch environment: `$LACUNA_PYTHON`, else the set-up script's
/// cache (`$LACUNA_TORCH_HOME`, `$XDG_CACHE_HOME/lacuna/torch-2.11.0`, `~/.cache/...`).
pub fn default_python() -> PathBuf {
    if let Some(p) = std::env::var_os("LACUNA_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("LACUNA_TORCH_HOME").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
        cache.join("lacuna").join("torch-2.11.0")
    });
    home.join("bin").join("python")
}

/// `scripts/torch_reference.py` under the working directory, else beside the checkout the
/// binary was built in (`target/release/lacuna` → `scripts/`).
pub fn default_reference() -> PathBuf {
    let local = PathBuf::from("scripts/torch_reference.py");
    if local.exists() {
        return local;
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(|root| root.join("scripts/torch_reference.py")))
        .filter(|p| p.exists())
        .unwrap_or(local)
}

/// The reference script with the network it must load (model config and weights files).
struct Reference<'a> {
    opts: &'a PerfOptions,
    config_json: &'a Path,
    weights: &'a Path,
}

impl Reference<'_> {
    /// Runs `MODE --config … --weights … --channels … ARGS`; returns its stdout.
    fn call(&self, mode: &str, args: &[(&str, String)]) -> Result<String> {
        let opts = self.opts;
        let mut cmd = Command::new(&opts.python);
        cmd.arg(&opts.reference).arg(mode);
        cmd.arg("--config").arg(self.config_json).arg("--weights").arg(self.weights);
        cmd.arg("--channels").arg(opts.channels.to_string());
        for (flag, value) in args {
            cmd.arg(flag).arg(value);
        }
        let out = cmd
            .output()
            .with_context(|| format!("cannot run {} (set --python or LACUNA_PYTHON)", opts.python.display()))?;
        if !out.status.success() {
            bail!(
                "the PyTorch reference failed ({}):\n{}",
                opts.reference.display(),
                String::from_utf8_lossy(&out.stderr).trim_end()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The timed shape: snapshots of `channels` × `size`².
fn d_of(opts: &PerfOptions) -> Dims {
    Dims { t: 1, c: opts.channels, h: opts.size, w: opts.size }
}

/// Random fields with pixel observations (20% observed) of the timed shape.
fn problem(opts: &PerfOptions) -> Result<FieldSet> {
    let d = d_of(opts);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut values = Vec::with_capacity(opts.batch * d.len());
    let mut mask = Vec::with_capacity(opts.batch * d.len());
    for _ in 0..opts.batch {
        let m = Pattern::Pixel { observed: 0.2 }.draw(d, &mut rng);
        values.extend(
            m.iter()
                .map(|&o| o as f32 * rand_distr::Distribution::<f32>::sample(&rand_distr::StandardNormal, &mut rng)),
        );
        mask.extend(m);
    }
    FieldSet::new(opts.batch, d, values, mask, None)
}

fn time_reps(reps: usize, warmup: usize, device: Device, mut f: impl FnMut() -> Result<()>) -> Result<Timing> {
    let sync = || {
        if let Device::Cuda(n) = device {
            tch::Cuda::synchronize(n as i64);
        }
    };
    for _ in 0..warmup {
        f()?;
    }
    sync();
    let mut secs = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t0 = Instant::now();
        f()?;
        sync();
        secs.push(t0.elapsed().as_secs_f64());
    }
    Timing::new(secs)
}

/// Max |ours − reference| of one forward pass on the same weights and a random input, and the
/// output's scale (max |ours|).
fn check_same_function(reference: &Reference, net: &UNet) -> Result<(f64, f64)> {
    let opts = reference.opts;
    let d = (opts.batch as i64, opts.channels as i64, opts.size as i64, opts.size as i64);
    tch::manual_seed(3);
    let mask = Tensor::rand([d.0, d.1, d.2, d.3], (Kind::Float, Device::Cpu)).lt(0.5).to_kind(Kind::Float);
    let context = Tensor::randn([d.0, d.1, d.2, d.3], (Kind::Float, Device::Cpu)) * &mask;
    let t = Tensor::rand([d.0], (Kind::Float, Device::Cpu)) * 0.999 + 1e-3;
    let inputs = opts.work.join("inputs.safetensors");
    Tensor::write_safetensors(&[("t", &t), ("context", &context), ("context_mask", &mask)], &inputs)?;
    // The reference is the published parameterisation: 1000·t, inputs [mask, context].
    let published = Precond {
        config: crate::config::DenoiserConfig::legacy(),
        schedule: Default::default(),
        channels: opts.channels as i64,
        periodic: false,
        kriging: None,
    };
    let dev = net.device();
    let ours = tch::no_grad(|| {
        published.denoise(
            |c, x| net.forward_raw(c, x),
            &t.to_device(dev),
            &context.to_device(dev),
            &mask.to_device(dev),
        )
    })
    .to_device(Device::Cpu);
    let out = opts.work.join("reference-out.safetensors");
    let path = |p: &Path| p.display().to_string();
    reference.call("check", &[("--inputs", path(&inputs)), ("--out", path(&out))])?;
    let theirs = Tensor::read_safetensors(&out)?
        .into_iter()
        .find(|(n, _)| n == "out")
        .map(|(_, t)| t)
        .context("the reference wrote no `out` tensor")?;
    ensure!(theirs.size() == ours.size(), "reference output shape {:?} ≠ ours {:?}", theirs.size(), ours.size());
    let diff = (&ours - &theirs).abs().max().double_value(&[]);
    let scale = ours.abs().max().double_value(&[]);
    Ok((diff, scale))
}

/// Runs the comparison (see the module doc).
pub fn run(opts: &PerfOptions, quiet: bool) -> Result<PerfReport> {
    ensure!(opts.reps >= 1 && opts.batch >= 1 && opts.size >= 4, "perf needs reps ≥ 1, batch ≥ 1 and size ≥ 4");
    ensure!(opts.ensemble >= 1 && opts.sampler_steps >= 2, "perf needs --ensemble ≥ 1 and --sampler-steps ≥ 2");
    ensure!(opts.reference.exists(), "{}: reference script not found (pass --reference)", opts.reference.display());
    std::fs::create_dir_all(&opts.work).with_context(|| format!("{}: cannot create", opts.work.display()))?;
    let device = super::open_device(&opts.device)?;
    // The PyTorch reference is the published network: time it with the same parameterisation
    // and arithmetic (float32; `auto` would be bfloat16 on an AMX CPU).
    let cfg = TrainConfig {
        batch: opts.batch,
        device: opts.device,
        denoiser: crate::method::precond::DenoiserConfig::legacy(),
        model: crate::config::UNetConfig { precision: crate::config::Precision::Float32, ..Default::default() },
        ..TrainConfig::default()
    };
    let precond = Precond::of(&cfg, d_of(opts), None)?;
    // The reference draws pixel contexts; time ours with the same partition.
    let Partition::Pixel { context_ratio, .. } = cfg.partition else {
        bail!("internal: perf times the pixel partition")
    };
    let (vs, net) = build_model(&cfg, d_of(opts), device)?;
    let weights = opts.work.join("weights.safetensors");
    checkpoint::save_weights(&weights, &named_vars(&vs))?;
    let config_json = opts.work.join("model.json");
    crate::atomic::write_bytes(&config_json, serde_json::to_string(&cfg.model)?.as_bytes())?;
    // Inference as `impute` runs it (checked against the reference in this form).
    crate::model::prefer_channels_last(&vs);

    let reference = Reference { opts, config_json: &config_json, weights: &weights };
    let (max_abs_diff, output_scale) = check_same_function(&reference, &net)?;
    let tol = 1e-4 * output_scale.max(1.0);
    ensure!(
        max_abs_diff <= tol,
        "ours and the reference compute different functions: max |difference| {max_abs_diff:.3e} > {tol:.1e}"
    );
    if !quiet {
        eprintln!("same function: max |ours − reference| = {max_abs_diff:.2e} (outputs up to {output_scale:.2})");
    }

    let set = problem(opts)?;
    let fields = Fields::new(&set, device);
    let masks: Vec<Vec<u8>> = set.mask.chunks_exact(set.dims.len()).map(<[u8]>::to_vec).collect();
    let u_obs = Tensor::from_slice(&set.values)
        .view([set.n as i64, set.dims.c as i64, set.dims.h as i64, set.dims.w as i64])
        .to_device(device);
    let workers = match opts.workers {
        None => super::impute::cpu_workers(&vs, &net)?,
        Some(n) if n >= 2 && device == Device::Cpu => Some(crate::model::Workers::new(&vs, &net, n)?),
        Some(_) => None,
    };
    let max_batch = super::impute::max_batch(&cfg.model, set.dims, workers.is_some())?;
    let mut results = Vec::new();
    for &task in &opts.tasks {
        let what = match task {
            Task::Train => format!("training step (batch {}, {}²)", opts.batch, opts.size),
            Task::Ensemble => format!("single-step ensemble K={} ({} fields)", opts.ensemble, opts.batch),
            Task::Sampler => {
                format!("multi-step sampler, {} steps, K={} ({} fields)", opts.sampler_steps, opts.ensemble, opts.batch)
            }
        };
        if !quiet {
            eprintln!("timing {what}: ours …");
        }
        let ours = match task {
            Task::Train => {
                // A fresh copy of the initial weights (NCHW, as `train` has them), so the timed
                // steps leave the inference timings' network alone.
                let (tvs, tnet) = build_model(&cfg, d_of(opts), device)?;
                let (ema_vs, _ema_net) = build_model(&cfg, d_of(opts), device)?;
                let ema = named_vars(&ema_vs);
                let mut opt = AdamW::new(&tvs, cfg.optim.beta1, cfg.optim.beta2, cfg.optim.weight_decay);
                let idx: Vec<usize> = (0..set.n).collect();
                let mut step = 0;
                time_reps(opts.reps, opts.warmup, device, || {
                    step += 1;
                    optimisation_step(
                        &tnet,
                        &cfg,
                        &precond,
                        &mut opt,
                        &ema,
                        &fields,
                        &idx,
                        None,
                        step,
                        cfg.optim.lr,
                        &crate::dist::Group::single(),
                    )
                    .map(|_| ())
                })?
            }
            Task::Ensemble | Task::Sampler => {
                let den = NetDenoiser { net: &net, precond: &precond, max_batch, workers: workers.as_ref() };
                let inf = Inference {
                    ensemble: Members::of(&cfg, opts.ensemble),
                    steps: opts.sampler_steps,
                    weighting: Weighting::Linear,
                };
                let mut rngs: Vec<ChaCha8Rng> = (0..set.n as u64).map(ChaCha8Rng::seed_from_u64).collect();
                time_reps(opts.reps, opts.warmup, device, || {
                    let out = if task == Task::Ensemble {
                        ensemble::single_step(
                            &den,
                            &cfg.schedule,
                            &cfg.contexts(set.dims),
                            &u_obs,
                            &masks,
                            inf.ensemble,
                            &mut rngs,
                        )?
                    } else {
                        ensemble::multi_step(
                            &den,
                            &cfg.schedule,
                            &cfg.contexts(set.dims),
                            &u_obs,
                            &masks,
                            &inf,
                            &mut rngs,
                        )?
                    };
                    ensure!(out.size()[0] == set.n as i64, "internal: wrong output batch");
                    Ok(())
                })?
            }
        };
        if !quiet {
            eprintln!("timing {what}: reference …");
        }
        let stdout = reference.call(
            "time",
            &[
                ("--task", task.name().into()),
                ("--batch", opts.batch.to_string()),
                ("--size", opts.size.to_string()),
                ("--reps", opts.reps.to_string()),
                ("--warmup", opts.warmup.to_string()),
                ("--ensemble", opts.ensemble.to_string()),
                ("--steps", opts.sampler_steps.to_string()),
                ("--context-ratio", context_ratio.to_string()),
                ("--device", opts.device.to_string()),
            ],
        )?;
        let line =
            stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).context("the reference printed no JSON")?;
        let v: serde_json::Value = serde_json::from_str(line).context("the reference's JSON line")?;
        let secs: Vec<f64> = v["seconds"]
            .as_array()
            .context("the reference's JSON has no `seconds`")?
            .iter()
            .filter_map(serde_json::Value::as_f64)
            .collect();
        let reference = Timing::new(secs)?;
        let ratio = ours.median / reference.median;
        if !quiet {
            eprintln!(
                "  ours {:.1} ms, reference {:.1} ms, ratio {ratio:.2}",
                ours.median * 1e3,
                reference.median * 1e3
            );
        }
        results.push(TaskResult { task, what, ours, reference, ratio, target: task.target() });
    }
    Ok(PerfReport {
        device: format!("{device:?}"),
        threads: tch::get_num_threads(),
        max_abs_diff,
        output_scale,
        results,
    })
}
