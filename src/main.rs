//! `lacuna`: the command line. Parses arguments, calls the library, prints results.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use lacuna::config::TrainConfig;
use lacuna::data::advection::AdvectionSpec;
use lacuna::data::grf::GrfSpec;
use lacuna::data::kolmogorov::KolmogorovSpec;
use lacuna::data::shallow_water::ShallowWaterSpec;
use lacuna::data::synth::{generate_in_time, grf_oracle, Generator};
use lacuna::data::{FieldSet, Pattern, Truth};
use lacuna::method::{Partition, Weighting};
use lacuna::run::{demo, eval, impute, train};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "lacuna",
    version,
    about = "Learn diffusion priors of physical fields from incomplete observations, and fill gaps with them"
)]
struct Cli {
    /// No progress output.
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a denoiser on partially observed fields (an .npz of values and masks).
    Train(TrainArgs),
    /// Fill the gaps of partially observed fields with a trained run.
    Impute(ImputeArgs),
    /// Score a completion against complete fields.
    Eval(EvalArgs),
    /// Generate data, train, impute and score, all on fields the demo makes itself.
    Demo(DemoArgs),
    /// Make and inspect data sets.
    #[command(subcommand)]
    Data(DataCommand),
    /// PNG of the first fields of a data file: truth, observed, completions and their errors.
    Plot(PlotArgs),
    /// Complete fields with a classical or Gaussian baseline (same output as `impute`).
    Baseline(BaselineArgs),
    /// Run a suite of data × pattern × method end to end and tabulate the scores.
    Bench(BenchArgs),
    /// Learning curves of trained runs (their held-out scores) as a PNG and a CSV, with
    /// reference lines for classical baselines and the Bayes floor.
    Curves(CurvesArgs),
    /// Work II's learned mask prior: fit it on observation masks, draw from it, check it.
    #[command(subcommand)]
    Masks(MasksCommand),
}

#[derive(Subcommand)]
enum MasksCommand {
    /// Fit a mask prior (Bayesian Flow Network) on the observation masks of a data file.
    Fit(MasksFitArgs),
    /// Draw masks from a prior (written as `mask` [N, 1, H, W]), optionally guided toward the
    /// masks of a data file.
    Sample(MasksSampleArgs),
    /// Compare the prior's draws with the real masks (observed fraction, two-point correlation,
    /// missing regions) and report the query probabilities of its partitions.
    Compare(MasksCompareArgs),
}

#[derive(Args)]
struct MasksFitArgs {
    /// Data (.npz with `mask`, or `values` whose non-finite entries are the gaps).
    #[arg(long)]
    data: PathBuf,
    /// Prior directory to create.
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    steps: Option<usize>,
    #[arg(long)]
    batch: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    /// β(1) of the accuracy schedule β(t) = β(1) t².
    #[arg(long)]
    beta1: Option<f64>,
    /// Steps of the sampler used when drawing from this prior.
    #[arg(long)]
    sample_steps: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long)]
    device: Option<String>,
}

#[derive(Args)]
struct MasksSampleArgs {
    #[arg(long)]
    prior: PathBuf,
    /// Draws (per mask of --guide when given).
    #[arg(long, default_value_t = 16)]
    n: usize,
    /// Guide each draw toward the masks of this data file (observation-aligned guidance).
    #[arg(long)]
    guide: Option<PathBuf>,
    #[command(flatten)]
    guidance: GuidanceArgs,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    out: PathBuf,
}

/// Observation-aligned guidance of mask-prior draws.
#[derive(Args)]
struct GuidanceArgs {
    /// Share ρ of observed sites anchored per guided draw, in (0, 1].
    #[arg(long, default_value_t = lacuna::method::partition::DEFAULT_RHO)]
    rho: f64,
    /// Guidance weight w_g (default 0.1·H·W).
    #[arg(long)]
    guidance: Option<f64>,
}

#[derive(Args)]
struct MasksCompareArgs {
    #[arg(long)]
    prior: PathBuf,
    /// Real masks to compare with (data or masks file on the prior's grid).
    #[arg(long)]
    data: PathBuf,
    /// Unguided draws to compare.
    #[arg(long, default_value_t = 512)]
    n: usize,
    /// The guided partition whose query probabilities are reported.
    #[command(flatten)]
    guidance: GuidanceArgs,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Exit with status 1 when the draws are outside the stated tolerance.
    #[arg(long)]
    check: bool,
    /// Print the comparison as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct BenchArgs {
    #[command(subcommand)]
    what: Option<BenchWhat>,
    /// `quick` (under 30 min on 2 cores), `decompose` (information gap vs model error on GRFs),
    /// `paper` (the paper's tables; hours) or a suite TOML file.
    #[arg(long, default_value = "quick")]
    suite: String,
    /// Shorthand for `--suite quick`.
    #[arg(long, conflicts_with = "suite")]
    quick: bool,
    /// Output directory; an interrupted bench continues where it stopped when run again.
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
    /// Override the suite's number of seeds.
    #[arg(long)]
    seeds: Option<usize>,
    /// Override the suite's training steps per learned method.
    #[arg(long)]
    steps: Option<usize>,
    /// Compute nothing: write the tables from the results already in --out.
    #[arg(long)]
    report: bool,
}

#[derive(Subcommand)]
enum BenchWhat {
    /// Speed against the PyTorch reference (scripts/torch_reference.py) on the same network:
    /// training step, single-step K-ensemble, multi-step sampler; checks equality first.
    Perf(PerfArgs),
}

#[derive(Args)]
struct PerfArgs {
    /// Field side.
    #[arg(long, default_value_t = 32)]
    size: usize,
    #[arg(long, default_value_t = 1)]
    channels: usize,
    /// Fields per training batch and per imputation call.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Timed repetitions per task and side.
    #[arg(long, default_value_t = 7)]
    reps: usize,
    /// Untimed repetitions first.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// K of the context ensembles.
    #[arg(long, default_value_t = 10)]
    ensemble: usize,
    /// Steps of the multi-step sampler.
    #[arg(long, default_value_t = 50)]
    sampler_steps: usize,
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Python with torch (default: the set-up script's environment, or $LACUNA_PYTHON).
    #[arg(long)]
    python: Option<PathBuf>,
    /// The reference script (default: scripts/torch_reference.py of this checkout).
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Which tasks to time.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "train,ensemble,sampler")]
    tasks: Vec<lacuna::run::perf::Task>,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// CPU inference worker threads (default: one per intra-op thread, as `impute`; 0 = off).
    #[arg(long)]
    workers: Option<usize>,
}

#[derive(Args)]
struct BaselineArgs {
    #[arg(value_enum)]
    method: lacuna::baseline::Baseline,
    /// Fields to complete (`values`, `mask`).
    #[arg(long)]
    data: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// Incomplete training fields, for the methods that learn (krige, em-gaussian).
    #[arg(long)]
    train: Option<PathBuf>,
    /// em-gaussian: rank of the low-rank part.
    #[arg(long, default_value_t = 32)]
    rank: usize,
    /// em-gaussian: EM iterations.
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// krige: nearest observed sites used per missing site when a field has over 1200.
    #[arg(long, default_value_t = 100)]
    neighbours: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// fill: the fields are periodic in both directions (the interpolant wraps around).
    #[arg(long)]
    periodic: bool,
}

#[derive(Args)]
struct PlotArgs {
    /// Data file (`values`, `mask`, and `truth` if present).
    data: PathBuf,
    /// Imputation outputs (`mean`) of the same file, one column each.
    #[arg(long = "pred")]
    preds: Vec<PathBuf>,
    #[arg(long)]
    out: PathBuf,
    /// Number of fields (rows; one row per channel).
    #[arg(long, default_value_t = 4)]
    n: usize,
    /// Pixels per grid cell (default: panels about 128 pixels wide).
    #[arg(long)]
    zoom: Option<usize>,
}

#[derive(Clone, Copy, ValueEnum)]
enum PartitionKind {
    Pixel,
    Block,
    Missdiff,
    /// Ambient Diffusion: context drops 10% more sites, loss on all observed.
    Ambient,
    /// Work II: context = M̂ ⊙ M with M̂ drawn from a mask prior (--prior) guided toward M.
    Prior,
    /// Work II ablation: the unguided intersection M1 ⊙ M2 with the mask prior (--prior).
    Intersect,
}

#[derive(Args)]
struct TrainArgs {
    /// Training fields (.npz with `values` and `mask`; `truth` is never read).
    #[arg(long)]
    data: PathBuf,
    /// Run directory to create (config, statistics, checkpoints, metrics).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum)]
    partition: Option<PartitionKind>,
    /// Pixel and ambient partitions: share of observed sites kept in the context.
    #[arg(long)]
    context_ratio: Option<f64>,
    /// Pixel partition: draw the query independently with this ratio (official code) instead of
    /// taking the observed rest.
    #[arg(long)]
    query_ratio: Option<f64>,
    /// Block partition: the observation grid is G×G blocks.
    #[arg(long)]
    grid: Option<usize>,
    /// Block partition: observed blocks moved from context to query.
    #[arg(long)]
    drop_blocks: Option<usize>,
    /// Prior and intersect partitions: the mask prior directory (`lacuna masks fit`).
    #[arg(long)]
    prior: Option<PathBuf>,
    /// Prior partition: share ρ of observed sites anchored in each guided draw, in (0, 1).
    #[arg(long)]
    rho: Option<f64>,
    /// Prior partition: guidance weight w_g (default 0.1·H·W).
    #[arg(long)]
    guidance: Option<f64>,
    /// Prior partition: guided draws per training mask.
    #[arg(long)]
    draws: Option<usize>,
    /// Trajectories: draw the context once per site for every frame (shared, the default) or
    /// anew in every frame (per-frame, the official code).
    #[arg(long, value_enum)]
    context_in_time: Option<lacuna::method::partition::InTime>,
    /// Trajectories: train the snapshot network (no attention over frames, applied frame by
    /// frame) instead of the space-time one.
    #[arg(long)]
    snapshot_model: bool,
    /// The fields are periodic in both space directions (e.g. a simulation on a torus): the
    /// network pads circularly and the fill wraps around.
    #[arg(long)]
    periodic: bool,
    /// Circular shifts the fields' law is invariant under, as ROWS,COLS (needs --periodic):
    /// each training sample and its masks are shifted by random multiples of them (0 = none
    /// in that direction), e.g. 1,1 for a stationary field on a torus.
    #[arg(long, value_name = "ROWS,COLS", value_parser = parse_shift)]
    shift_symmetry: Option<[usize; 2]>,
    #[arg(long)]
    steps: Option<usize>,
    #[arg(long)]
    batch: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long)]
    device: Option<String>,
    /// Stop after this much training time (`90s`, `30m`, `1h30m`; a bare number is seconds);
    /// the learning rate decays over it. Training ends at --steps or the budget, whichever
    /// comes first.
    #[arg(long, value_parser = parse_duration)]
    time_budget: Option<f64>,
    /// Score the weights every N steps on held-out fields (0 = never; default 250): the
    /// learning curve in metrics.jsonl, and `model.safetensors` keeps the best-scoring weights.
    #[arg(long)]
    score_every: Option<usize>,
    /// Held-out fields to score on (default: the validation share of --data). With `truth`,
    /// scored on the missing entries; without, on observed entries hidden from the input.
    #[arg(long)]
    score_data: Option<PathBuf>,
    /// The Bayes oracle's completion of --score-data (`lacuna data krige`): scores are also
    /// logged as ratios to its MSE.
    #[arg(long, requires = "score_data")]
    score_oracle: Option<PathBuf>,
    /// Early stopping: stop after N scores without improvement (0 = never).
    #[arg(long)]
    patience: Option<usize>,
    /// TOML file with any of the training settings (flags override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint (its own config; --steps and
    /// --time-budget may extend it).
    #[arg(long)]
    resume: bool,
}

/// `ROWS,COLS` as two non-negative integers.
fn parse_shift(s: &str) -> Result<[usize; 2], String> {
    let parts: Vec<Result<usize, _>> = s.split(',').map(|p| p.trim().parse::<usize>()).collect();
    match parts.as_slice() {
        [Ok(r), Ok(c)] => Ok([*r, *c]),
        _ => Err(format!("{s:?}: expected ROWS,COLS, two non-negative integers such as 8,1")),
    }
}

/// Seconds in `90s`, `30m`, `1h30m`, `2h` or a bare number of seconds.
fn parse_duration(s: &str) -> Result<f64, String> {
    let secs = match s.trim().parse::<f64>() {
        Ok(v) => v,
        Err(_) => humantime::parse_duration(s.trim())
            .map_err(|e| format!("{e}; write a duration like 90s, 30m or 1h30m"))?
            .as_secs_f64(),
    };
    if secs > 0.0 && secs.is_finite() {
        Ok(secs)
    } else {
        Err("the time budget must be positive".into())
    }
}

#[derive(Args)]
struct CurvesArgs {
    /// A run and its label, `NAME=DIR` (repeatable).
    #[arg(long = "run", value_parser = parse_named::<PathBuf>, required = true)]
    runs: Vec<(String, PathBuf)>,
    /// A reference line, `NAME=MSE` (repeatable): a classical baseline's or the oracle's MSE
    /// on the same held-out fields.
    #[arg(long = "line", value_parser = parse_named::<f64>)]
    lines: Vec<(String, f64)>,
    /// X axis: training seconds or steps.
    #[arg(long, value_enum, default_value_t = lacuna::run::curves::Axis::Seconds)]
    x: lacuna::run::curves::Axis,
    #[arg(long, default_value = "learning curves")]
    title: String,
    /// The PNG to write; the CSV goes beside it.
    #[arg(long)]
    out: PathBuf,
}

/// `NAME=VALUE` for repeatable labelled arguments.
fn parse_named<T: std::str::FromStr>(s: &str) -> Result<(String, T), String>
where
    T::Err: std::fmt::Display,
{
    let (name, value) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected NAME=VALUE"))?;
    let v = value.parse::<T>().map_err(|e| format!("{value:?}: {e}"))?;
    Ok((name.to_string(), v))
}

#[derive(Args)]
struct ImputeArgs {
    #[arg(long)]
    run: PathBuf,
    /// Fields to complete (.npz with `values` and `mask`; `truth` is never read).
    #[arg(long)]
    data: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// K, the number of context masks averaged.
    #[arg(long, default_value_t = 10)]
    ensemble: usize,
    /// 1: single-step ensemble (posterior mean); more: multi-step sampler.
    #[arg(long, default_value_t = 1)]
    steps: usize,
    /// Posterior samples to draw with the multi-step sampler (written as `samples` and `std`).
    #[arg(long, default_value_t = 0)]
    samples: usize,
    /// How the multi-step sampler shifts weight from E[u0|u_obs] to E[u0|u_t].
    #[arg(long, value_enum, default_value_t = Weighting::Linear)]
    weighting: Weighting,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fields processed per chunk.
    #[arg(long, default_value_t = 16)]
    chunk: usize,
    #[arg(long)]
    device: Option<String>,
    /// Use the run's last weights, not the ones with the best held-out score.
    #[arg(long)]
    last: bool,
    /// Pixel-partition runs: share of the observation kept in each ensemble context (default:
    /// the run's inference ratio; 1 = the whole observation).
    #[arg(long)]
    context_ratio: Option<f64>,
    /// Apply the run to fields of another grid size than it was trained on (refused
    /// otherwise: a convolutional prior may transfer, but it is a choice to make).
    #[arg(long)]
    other_grid: bool,
}

#[derive(Args)]
struct EvalArgs {
    /// Imputation output (`mean`, `mask`).
    #[arg(long, required_unless_present = "holdout")]
    pred: Option<PathBuf>,
    /// File with the complete fields (`truth`; NaN entries are not scored).
    #[arg(long, required_unless_present = "holdout")]
    truth: Option<PathBuf>,
    /// Held-out evaluation where no complete truth exists: hide the observed entries that
    /// PATTERN does not observe (`cloud:0.3`, `pixel:0.8`, ... or `other`: the real occlusion
    /// of the next field of the file), complete `--data` with `--run` or `--baseline`, and score
    /// on the hidden entries. Files go to `--out`.
    #[arg(long, value_name = "PATTERN", conflicts_with_all = ["pred", "truth", "oracle"])]
    holdout: Option<lacuna::data::holdout::Holdout>,
    /// Data to hold out from (with --holdout).
    #[arg(long, requires = "holdout")]
    data: Option<PathBuf>,
    /// Trained run completing the held-out data (with --holdout). It must not have seen the
    /// hidden entries: train it on other fields, or on `OUT/held.npz`, which is written
    /// identically for the same PATTERN, data and --seed (`lacuna bench` file cases do this).
    #[arg(long, requires = "holdout", conflicts_with = "baseline")]
    run: Option<PathBuf>,
    /// Baseline completing the held-out data instead of a run (with --holdout).
    #[arg(long, value_enum, requires = "holdout")]
    baseline: Option<lacuna::baseline::Baseline>,
    /// Training data for the baselines that learn (krige, em-gaussian).
    #[arg(long, requires = "baseline")]
    train: Option<PathBuf>,
    /// Directory for the held-out file and the completion (with --holdout).
    #[arg(long, default_value = "holdout-out")]
    out: PathBuf,
    /// Seed of the hiding pattern and of the ensemble (with --holdout).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to write the metrics as JSON (default: next to --pred, `.eval.json`).
    #[arg(long)]
    json: Option<PathBuf>,
    /// The Bayes-optimal completion of the same data (`lacuna data krige` output): also report
    /// its MSE and the prediction's MSE as a ratio to it.
    #[arg(long)]
    oracle: Option<PathBuf>,
}

#[derive(Args)]
struct DemoArgs {
    /// Directory for the generated data, runs and predictions.
    #[arg(long, default_value = "demo-out")]
    out: PathBuf,
    /// The fields: Kolmogorov-flow turbulence (where a learned prior earns its keep) or
    /// Gaussian random fields (where kriging is optimal by construction).
    #[arg(long, value_enum, default_value_t = demo::DemoData::Kolmogorov)]
    data: demo::DemoData,
    #[arg(long, default_value_t = 4000)]
    steps: usize,
    /// Training time per learned method (`240s`, `4m`; default 4 minutes): training ends at
    /// --steps or here, whichever comes first.
    #[arg(long, value_parser = parse_duration, default_value = "4m")]
    time_budget: f64,
    #[arg(long, default_value_t = 2000)]
    train_fields: usize,
    #[arg(long, default_value_t = 100)]
    test_fields: usize,
    #[arg(long, default_value = "pixel:0.2")]
    mask: Pattern,
    #[arg(long, default_value_t = 32)]
    size: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also train the MissDiff baseline with the same budget and compare.
    #[arg(long)]
    compare: bool,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Generate a data set with known truth.
    Gen(GenArgs),
    /// Shapes, observed fraction and value statistics of an .npz.
    Info { file: PathBuf },
    /// Exact Bayes completion of a GRF set (kriging with the true covariance), as an imputation file.
    Krige(KrigeArgs),
    /// Read variables of a NetCDF-3 file into an .npz (fill values → gaps, axes kept).
    Import(ImportArgs),
}

#[derive(Args)]
struct ImportArgs {
    /// NetCDF-3 file (classic or 64-bit offset).
    file: PathBuf,
    /// Variable to import, one channel each (repeat for several; same grid).
    #[arg(long = "var", required = true)]
    vars: Vec<String>,
    /// Output .npz (default: the input name with .npz).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Sites that can ever be observed, written as `static_mask`: `all`, `ever-observed`, or
    /// `FILE.nc:VAR<OP>VALUE` on the same grid (OP: <, <=, >, >=), e.g. `etopo120.cdf:ROSE<0`.
    #[arg(long, default_value = "all")]
    observable: lacuna::data::netcdf::Observable,
}

#[derive(Clone, Copy, ValueEnum)]
enum DataKind {
    /// Gaussian random field, Matérn spectrum (default 32×32).
    Grf,
    /// Navier–Stokes vorticity, Kolmogorov forcing, Re 1000 (default 64×64 from 128²).
    Kolmogorov,
    /// Linearised rotating shallow water, channels h, u, v (default 32×32).
    ShallowWater,
    /// A random field carried by a random constant velocity (default 64×64).
    Advection,
}

#[derive(Args, Clone)]
struct GrfArgs {
    /// GRF: Matérn length scale in grid cells (default size/8).
    #[arg(long)]
    length_scale: Option<f64>,
    /// GRF: Matérn smoothness ν.
    #[arg(long, default_value_t = 1.5)]
    smoothness: f64,
    /// GRF: variance of each site.
    #[arg(long, default_value_t = 1.0)]
    variance: f64,
}

impl GrfArgs {
    fn spec(&self, size: usize) -> Result<GrfSpec> {
        if size < 2 || self.smoothness <= 0.0 || self.variance <= 0.0 {
            bail!("GRF needs size ≥ 2, smoothness > 0 and variance > 0");
        }
        let mut s = GrfSpec::new(size);
        if let Some(l) = self.length_scale {
            if l <= 0.0 {
                bail!("--length-scale must be positive");
            }
            s.length_scale = l;
        }
        s.smoothness = self.smoothness;
        s.variance = self.variance;
        Ok(s)
    }
}

#[derive(Args, Clone)]
struct FlowArgs {
    /// Kolmogorov: simulation grid side (default 2 × size); snapshots are its spectral truncation.
    #[arg(long)]
    resolution: Option<usize>,
    /// Kolmogorov: viscosity ν (Re = 1/ν).
    #[arg(long, default_value_t = 1e-3)]
    viscosity: f64,
    /// Kolmogorov: simulated time before the first snapshot of a run.
    #[arg(long, default_value_t = 30.0)]
    spinup: f64,
    /// Kolmogorov: time between snapshots of one run.
    #[arg(long, default_value_t = 2.0)]
    interval: f64,
    /// Kolmogorov: snapshots taken from each simulation run.
    #[arg(long, default_value_t = 20)]
    per_run: usize,
}

#[derive(Args)]
struct GenArgs {
    #[arg(value_enum)]
    kind: DataKind,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 1000)]
    n: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Observation pattern: pixel:P, block:G:M, swath:P, sensors:N or cloud:COVER.
    #[arg(long, default_value = "pixel:0.2")]
    mask: Pattern,
    /// Grid side (fields are size×size, periodic); the default depends on the kind.
    #[arg(long)]
    size: Option<usize>,
    /// Divide the generated values by this (e.g. 38 for the official code's vorticity units).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Frames per sample: more than 1 writes trajectories `[N, T, C, H, W]` (kolmogorov,
    /// shallow-water, advection), observed by the same sensors in every frame.
    #[arg(long, default_value_t = 1)]
    frames: usize,
    /// Native intervals between frames (Kolmogorov: --interval; shallow water: a tenth of its
    /// spin-up steps; advection: one cell at the top speed).
    #[arg(long, default_value_t = 1)]
    stride: usize,
    /// Draw the observation mask anew in every frame (a moving swath or cloud) instead of
    /// keeping it static in time.
    #[arg(long)]
    mask_per_frame: bool,
    #[command(flatten)]
    grf: GrfArgs,
    #[command(flatten)]
    flow: FlowArgs,
}

impl GenArgs {
    fn generator(&self) -> Result<Generator> {
        let size = self.size.unwrap_or(match self.kind {
            DataKind::Grf | DataKind::ShallowWater => 32,
            DataKind::Kolmogorov | DataKind::Advection => 64,
        });
        if size < 4 {
            bail!("--size must be at least 4");
        }
        // The solvers' spectral arrays (the simulation grid is up to 4× the output side).
        lacuna::memory::check_fits(
            &format!("a {size}×{size} generator"),
            lacuna::memory::product(&[size, size, 16, 16 * 16]),
            "lower --size",
        )?;
        let snapshots = match self.kind {
            DataKind::Grf => Generator::Grf(self.grf.spec(size)?),
            DataKind::Kolmogorov => {
                let f = &self.flow;
                let resolution = f.resolution.unwrap_or(2 * size);
                let positive = |v: f64| v.is_finite() && v > 0.0;
                let valid = resolution >= size
                    && positive(f.viscosity)
                    && f.spinup.is_finite()
                    && f.spinup >= 0.0
                    && positive(f.interval)
                    && f.per_run > 0;
                if !valid {
                    bail!(
                        "Kolmogorov needs --resolution ≥ --size, --viscosity > 0, --spinup ≥ 0, --interval > 0, --per-run ≥ 1"
                    );
                }
                let spec = KolmogorovSpec {
                    resolution,
                    size,
                    viscosity: f.viscosity,
                    spinup: f.spinup,
                    interval: f.interval,
                    ..Default::default()
                };
                Generator::Kolmogorov { spec, per_run: f.per_run }
            }
            DataKind::ShallowWater => Generator::ShallowWater(ShallowWaterSpec { size, ..Default::default() }),
            DataKind::Advection => Generator::Advection(AdvectionSpec { size, ..Default::default() }),
        };
        if self.mask_per_frame && self.frames == 1 {
            bail!("--mask-per-frame needs trajectories (--frames > 1)");
        }
        Generator::trajectories(snapshots, self.frames, self.stride)
    }
}

#[derive(Args)]
struct KrigeArgs {
    /// GRF data (`values`, `mask`) made with the same field parameters (its size is read from it).
    #[arg(long)]
    data: PathBuf,
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    grf: GrfArgs,
}

fn train_config(a: &TrainArgs) -> Result<TrainConfig> {
    let mut cfg = match &a.config {
        Some(p) => TrainConfig::load(p)?,
        None => TrainConfig::default(),
    };
    match a.partition {
        Some(PartitionKind::Pixel) => cfg.partition = Partition::default(),
        Some(PartitionKind::Block) => cfg.partition = Partition::Block { grid: 3, drop: 1 },
        Some(PartitionKind::Missdiff) => cfg.partition = Partition::MissDiff,
        Some(PartitionKind::Ambient) => cfg.partition = Partition::Ambient { keep: 0.9 },
        Some(kind @ (PartitionKind::Prior | PartitionKind::Intersect)) => {
            let dir = a
                .prior
                .as_ref()
                .context("--partition prior and intersect need --prior DIR (make one with `lacuna masks fit`)")?;
            cfg.partition = Partition::Prior {
                prior: std::fs::canonicalize(dir).with_context(|| format!("{}: no such mask prior", dir.display()))?,
                rho: matches!(kind, PartitionKind::Prior).then_some(lacuna::method::partition::DEFAULT_RHO),
                weight: None,
                draws: lacuna::method::partition::default_draws(),
                bank: Default::default(),
            };
        }
        None => {}
    }
    let prior_flags = a.prior.is_some() || a.rho.is_some() || a.guidance.is_some() || a.draws.is_some();
    if prior_flags && !matches!(cfg.partition, Partition::Prior { .. }) {
        bail!("--prior, --rho, --guidance and --draws apply to --partition prior or intersect");
    }
    match &mut cfg.partition {
        Partition::Pixel { context_ratio, query_ratio } => {
            if let Some(r) = a.context_ratio {
                *context_ratio = r;
            }
            if a.query_ratio.is_some() {
                *query_ratio = a.query_ratio;
            }
            if a.grid.is_some() || a.drop_blocks.is_some() {
                bail!("--grid and --drop-blocks apply to --partition block");
            }
        }
        Partition::Block { grid, drop } => {
            if let Some(g) = a.grid {
                *grid = g;
            }
            if let Some(d) = a.drop_blocks {
                *drop = d;
            }
            if a.context_ratio.is_some() || a.query_ratio.is_some() {
                bail!("--context-ratio and --query-ratio apply to --partition pixel");
            }
        }
        Partition::MissDiff => {
            if a.context_ratio.is_some() || a.query_ratio.is_some() || a.grid.is_some() || a.drop_blocks.is_some() {
                bail!("--partition missdiff takes no partition parameters");
            }
        }
        Partition::Ambient { keep } => {
            if let Some(r) = a.context_ratio {
                *keep = r;
            }
            if a.query_ratio.is_some() || a.grid.is_some() || a.drop_blocks.is_some() {
                bail!("--partition ambient takes only --context-ratio (the share of observed sites kept)");
            }
        }
        Partition::Prior { rho, weight, draws, .. } => {
            if a.context_ratio.is_some() || a.query_ratio.is_some() || a.grid.is_some() || a.drop_blocks.is_some() {
                bail!("--partition prior takes --prior, --rho, --guidance and --draws");
            }
            if (a.rho.is_some() || a.guidance.is_some()) && rho.is_none() {
                bail!("--rho and --guidance steer the guided prior partition; --partition intersect is unguided");
            }
            if a.rho.is_some() {
                *rho = a.rho;
            }
            if a.guidance.is_some() {
                *weight = a.guidance;
            }
            if let Some(d) = a.draws {
                *draws = d;
            }
        }
    }
    if let Some(t) = a.context_in_time {
        cfg.context_in_time = t;
    }
    if a.snapshot_model {
        cfg.model.space_time = Some(false);
    }
    if a.periodic {
        cfg.periodic = true;
    }
    if let Some(s) = a.shift_symmetry {
        cfg.shift_symmetry = s;
    }
    if let Some(s) = a.steps {
        cfg.steps = s;
    }
    if let Some(b) = a.batch {
        cfg.batch = b;
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    if let Some(d) = &a.device {
        cfg.device = d.clone();
    }
    if a.time_budget.is_some() {
        cfg.time_budget = a.time_budget;
    }
    if let Some(n) = a.score_every {
        cfg.score.every = n;
    }
    if let Some(p) = &a.score_data {
        cfg.score.data =
            Some(std::fs::canonicalize(p).with_context(|| format!("{}: no such scoring file", p.display()))?);
    }
    if let Some(p) = &a.score_oracle {
        cfg.score.oracle =
            Some(std::fs::canonicalize(p).with_context(|| format!("{}: no such oracle file", p.display()))?);
    }
    if let Some(n) = a.patience {
        cfg.score.patience = n;
    }
    cfg.validate()?;
    Ok(cfg)
}

fn run_train(a: &TrainArgs, quiet: bool) -> Result<()> {
    let cfg = if a.resume {
        if a.config.is_some()
            || a.partition.is_some()
            || a.context_ratio.is_some()
            || a.query_ratio.is_some()
            || a.grid.is_some()
            || a.drop_blocks.is_some()
            || a.batch.is_some()
            || a.seed.is_some()
            || a.context_in_time.is_some()
            || a.snapshot_model
            || a.periodic
            || a.shift_symmetry.is_some()
            || a.score_every.is_some()
            || a.score_data.is_some()
            || a.patience.is_some()
        {
            bail!("--resume continues the run with its saved config; only --steps, --time-budget (to extend it) and --device may be given");
        }
        let run = lacuna::run::RunDir(a.out.clone());
        run.ensure_resumable()?;
        let mut cfg = TrainConfig::load_run(&run.config())?;
        if let Some(s) = a.steps {
            cfg.steps = s;
        }
        if let Some(d) = &a.device {
            cfg.device = d.clone();
        }
        if a.time_budget.is_some() {
            cfg.time_budget = a.time_budget;
        }
        cfg
    } else {
        train_config(a)?
    };
    let s = train::train(&a.data, &a.out, &cfg, a.resume, quiet)?;
    let val = s.best_val.map(|v| format!(", best validation loss {v:.5}")).unwrap_or_default();
    let score = s
        .best_score
        .map(|v| format!("; kept the weights of step {} (held-out MSE {v:.5})", s.best_step))
        .unwrap_or_default();
    println!(
        "trained {} steps in {:.1}s ({:.2} steps/s): last loss {:.5}{val}{score}; run in {}",
        s.steps,
        s.seconds,
        s.steps_per_s,
        s.last_loss,
        a.out.display()
    );
    Ok(())
}

fn run_impute(a: &ImputeArgs, quiet: bool) -> Result<()> {
    let opts = impute::ImputeOptions {
        ensemble: a.ensemble,
        steps: a.steps,
        samples: a.samples,
        weighting: a.weighting,
        seed: a.seed,
        chunk: a.chunk,
        device: a.device.clone(),
        last: a.last,
        context_ratio: a.context_ratio,
        other_grid: a.other_grid,
    };
    let s = impute::impute(&a.run, &a.data, &a.out, &opts, quiet)?;
    println!(
        "imputed {} missing entries in {} fields in {:.1}s → {}",
        s.missing_entries,
        s.fields,
        s.seconds,
        a.out.display()
    );
    Ok(())
}

fn print_metrics(m: &eval::Metrics) {
    println!("MSE, whole field (observations pasted): {:.6}", m.mse_field);
    println!("MSE, missing entries:                   {:.6}", m.mse_missing);
    println!("relative L2, missing entries:           {:.4}", m.rel_l2_missing);
    println!("MSE / variance, missing entries:        {:.4}", m.nmse_missing);
    println!("missing entries: {} of {}", m.missing_entries, m.entries);
    println!("power-spectrum log10 error:             {:.4}", m.spectrum_log_error);
    if let Some(p) = m.psnr_missing {
        println!("PSNR, missing entries (truth range):    {p:.2} dB");
    }
    if let (Some(c), Some(r)) = (m.crps_missing, m.spread_skill) {
        println!("CRPS, missing entries:                  {c:.6}");
        println!("spread / skill, missing entries:        {r:.3}");
    }
    if let (Some(o), Some(r)) = (m.oracle_mse_missing, m.ratio_to_oracle) {
        println!("Bayes oracle MSE, missing entries:      {o:.6}");
        println!("MSE / oracle MSE:                       {r:.3}");
    }
}

/// `eval --holdout`: hide, complete, return (prediction, held-out file).
fn holdout_completion(a: &EvalArgs, how: &lacuna::data::holdout::Holdout, quiet: bool) -> Result<(PathBuf, PathBuf)> {
    let data = a.data.as_ref().context("--holdout needs --data FILE")?;
    let set = FieldSet::load(data, Truth::Never)?;
    let held = lacuna::data::holdout::holdout(&set, how, a.seed)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("{}: cannot create", a.out.display()))?;
    let held_path = a.out.join("held.npz");
    held.save(&held_path)?;
    let pred = a.out.join("pred.npz");
    match (&a.run, a.baseline) {
        (Some(run), None) => {
            let opts = impute::ImputeOptions { seed: a.seed, ..Default::default() };
            impute::impute(run, &held_path, &pred, &opts, quiet)?;
        }
        (None, Some(b)) => {
            let opts = lacuna::baseline::BaselineOptions::default();
            lacuna::baseline::run(b, &held_path, a.train.as_deref(), &pred, &opts)?;
        }
        _ => bail!("--holdout needs what completes the data: --run RUN or --baseline METHOD"),
    }
    let hidden = set.mask.iter().zip(&held.mask).filter(|(&m, &k)| m != 0 && k == 0).count();
    println!("held out {hidden} observed entries of {}; completion in {}", data.display(), pred.display());
    Ok((pred, held_path))
}

fn run_eval(a: &EvalArgs, quiet: bool) -> Result<()> {
    let (pred, truth) = match &a.holdout {
        Some(how) => holdout_completion(a, how, quiet)?,
        None => (
            a.pred.clone().context("--pred is required without --holdout")?,
            a.truth.clone().context("--truth is required without --holdout")?,
        ),
    };
    let mut m = eval::eval_files(&pred, &truth)?;
    if let Some(o) = &a.oracle {
        let om = eval::eval_files(o, &truth).with_context(|| format!("scoring the oracle {}", o.display()))?;
        eval::add_oracle(&mut m, &om)?;
    }
    print_metrics(&m);
    let json = a.json.clone().unwrap_or_else(|| pred.with_extension("eval.json"));
    let inputs: Vec<&Path> =
        [Some(pred.as_path()), Some(truth.as_path()), a.oracle.as_deref()].into_iter().flatten().collect();
    lacuna::atomic::refuse_overwriting_inputs(&inputs, &[&json])?;
    lacuna::atomic::write_bytes(&json, serde_json::to_string_pretty(&m)?.as_bytes())?;
    println!("metrics written to {}", json.display());
    Ok(())
}

fn run_demo(a: &DemoArgs, quiet: bool) -> Result<()> {
    let opts = demo::DemoOptions {
        data: a.data,
        size: a.size,
        train_fields: a.train_fields,
        test_fields: a.test_fields,
        pattern: a.mask.clone(),
        steps: a.steps,
        time_budget: Some(a.time_budget),
        ensemble: 10,
        seed: a.seed,
        compare: a.compare,
    };
    let report = demo::demo(&a.out, &opts, quiet)?;
    let what = match a.data {
        demo::DemoData::Kolmogorov => "Kolmogorov-flow vorticity",
        demo::DemoData::Grf => "Gaussian random fields",
    };
    println!(
        "\n{what} {0}×{0}, observed {1}; {2} test fields, scored on the missing entries:\n",
        a.size, a.mask, a.test_fields
    );
    println!("| method | MSE missing | MSE / variance | whole-field MSE | train s |");
    println!("|---|---|---|---|---|");
    for r in &report.rows {
        println!(
            "| {} | {:.4} | {:.3} | {:.4} | {:.0} |",
            r.method, r.metrics.mse_missing, r.metrics.nmse_missing, r.metrics.mse_field, r.train_seconds
        );
    }
    let best_classical = report
        .rows
        .iter()
        .filter(|r| !r.learned && r.train_seconds > 0.0)
        .min_by(|x, y| x.metrics.mse_missing.total_cmp(&y.metrics.mse_missing));
    if let (Some(c), Some(l)) = (best_classical, report.rows.iter().find(|r| r.learned)) {
        println!(
            "\n{}: {:.2}× the MSE of {}, the best classical method here",
            l.method,
            l.metrics.mse_missing / c.metrics.mse_missing.max(1e-30),
            c.method
        );
    }
    lacuna::atomic::write_bytes(&a.out.join("demo.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
    println!(
        "panel (truth, observed, lacuna, {}, errors): {}",
        best_classical.map_or("classical", |c| c.method.as_str()),
        report.panel.display()
    );
    println!("files in {}", a.out.display());
    Ok(())
}

fn run_masks(c: &MasksCommand, quiet: bool) -> Result<()> {
    use lacuna::run::masks;
    match c {
        MasksCommand::Fit(a) => {
            let mut cfg = masks::PriorConfig::default();
            if let Some(v) = a.steps {
                cfg.steps = v;
            }
            if let Some(v) = a.batch {
                cfg.batch = v;
            }
            if let Some(v) = a.lr {
                cfg.lr = v;
            }
            if let Some(v) = a.beta1 {
                cfg.schedule.beta1 = v;
            }
            if let Some(v) = a.sample_steps {
                cfg.sample_steps = v;
            }
            if let Some(v) = a.seed {
                cfg.seed = v;
            }
            if let Some(v) = &a.device {
                cfg.device = v.clone();
            }
            let s = masks::fit(&a.data, &a.out, &cfg, quiet)?;
            println!(
                "fitted the mask prior on {} masks: {} steps, final loss {:.4}, {:.1}s → {}",
                s.masks,
                s.steps,
                s.last_loss,
                s.seconds,
                a.out.display()
            );
        }
        MasksCommand::Sample(a) => {
            let guide = a.guide.as_deref().map(|g| (g, a.guidance.rho, a.guidance.guidance));
            let (n, share) = masks::sample_to_file(&a.prior, a.n, guide, a.seed, &a.out)?;
            println!("drew {n} masks → {}", a.out.display());
            if let Some(share) = share {
                println!("guided contexts M̂ ⊙ M keep {:.1}% of the guiding masks' observed sites", 100.0 * share);
            }
        }
        MasksCommand::Compare(a) => {
            let report =
                masks::compare_report(&a.prior, &a.data, a.n, (a.guidance.rho, a.guidance.guidance), a.seed, quiet)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
            if a.check && !report.comparison.within {
                bail!("the prior's draws are outside the stated tolerance");
            }
        }
    }
    Ok(())
}

fn run_data(c: &DataCommand, quiet: bool) -> Result<()> {
    match c {
        DataCommand::Gen(a) => {
            if a.n == 0 {
                bail!("--n must be at least 1");
            }
            let generator = a.generator()?;
            let started = std::time::Instant::now();
            let progress = |done: usize, total: usize| {
                // Only long generations report (Kolmogorov runs take seconds each).
                let slow = started.elapsed().as_secs_f64() > 2.0;
                if !quiet && slow && (done.is_multiple_of((total / 20).max(1)) || done == total) {
                    eprintln!(
                        "  {done}/{total} {}  {:.0}s",
                        if total == a.n { "fields" } else { "runs" },
                        started.elapsed().as_secs_f64()
                    );
                }
            };
            let set = generate_in_time(&generator, a.n, &a.mask, a.mask_per_frame, a.seed, a.scale, &progress)?;
            set.save(&a.out)?;
            println!(
                "wrote {} {} {} {} ({:.1}% observed, {}) to {} in {:.1}s",
                a.n,
                a.kind.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default(),
                if set.dims.t > 1 { "trajectories of" } else { "fields" },
                set.dims.describe(),
                100.0 * set.observed_fraction(),
                a.mask,
                a.out.display(),
                started.elapsed().as_secs_f64()
            );
        }
        DataCommand::Import(a) => {
            let out = a.out.clone().unwrap_or_else(|| a.file.with_extension("npz"));
            lacuna::atomic::refuse_overwriting_inputs(&[&a.file], &[&out])?;
            let im = lacuna::data::netcdf::import(&a.file, &a.vars, &a.observable)?;
            let mut arrays = im.set.arrays();
            for (role, name, coord) in &im.axes {
                arrays.insert(
                    format!("coord_{role}_{name}"),
                    lacuna::data::npy::Array::from_f64(vec![coord.len()], coord),
                );
            }
            lacuna::data::npy::write_npz(&out, &arrays)?;
            let s = &im.set;
            let observable = s.observable.as_ref().map_or(s.dims.len(), |ok| ok.iter().filter(|&&o| o != 0).count());
            let observed = s.mask.iter().filter(|&&m| m != 0).count();
            println!(
                "wrote {} field(s) of {}×{}×{} ({}) to {}: {:.1}% of sites never observable, {:.1}% of the observable entries missing",
                s.n,
                s.dims.c,
                s.dims.h,
                s.dims.w,
                a.vars.join(", "),
                out.display(),
                100.0 * (1.0 - observable as f64 / s.dims.len() as f64),
                100.0 * (1.0 - observed as f64 / (observable * s.n).max(1) as f64)
            );
            let len = s.dims.len();
            let per_field: Vec<f64> = s
                .mask
                .chunks_exact(len)
                .map(|m| 100.0 * (1.0 - m.iter().filter(|&&o| o != 0).count() as f64 / observable.max(1) as f64))
                .collect();
            let (lo, hi) = per_field.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            println!("missing per field: {lo:.1}% to {hi:.1}% of the observable entries");
            if im.dropped > 0 {
                println!("{} observation(s) on never-observable sites were dropped", im.dropped);
            }
        }
        DataCommand::Info { file } => {
            let set = FieldSet::load(file, Truth::IfPresent)?;
            let frames = if set.dims.t > 1 { format!(" of {} frames", set.dims.t) } else { String::new() };
            println!(
                "{}: {} fields{frames}, {} channel(s), {}×{}",
                file.display(),
                set.n,
                set.dims.c,
                set.dims.h,
                set.dims.w
            );
            println!("observed fraction: {:.4}", set.observed_fraction());
            let obs: Vec<f64> =
                set.values.iter().zip(&set.mask).filter(|(_, &m)| m != 0).map(|(&v, _)| v as f64).collect();
            let mean = obs.iter().sum::<f64>() / obs.len().max(1) as f64;
            let var = obs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / obs.len().max(1) as f64;
            let (lo, hi) = obs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            println!("observed values: mean {mean:.4}, std {:.4}, min {lo:.4}, max {hi:.4}", var.sqrt());
            if let Some(ok) = &set.observable {
                let never = ok.iter().filter(|&&o| o == 0).count() as f64 / ok.len() as f64;
                let layout = if set.observable_per_field() { "one static mask per field" } else { "one static mask" };
                println!("never observable: {:.1}% of sites ({layout})", 100.0 * never);
            }
            println!("truth: {}", if set.truth.is_some() { "present" } else { "absent" });
        }
        DataCommand::Krige(a) => {
            lacuna::atomic::refuse_overwriting_inputs(&[&a.data], &[&a.out])?;
            let set = FieldSet::load(&a.data, Truth::Never)?;
            if set.dims.c != 1 || set.dims.t != 1 || set.dims.h != set.dims.w {
                bail!(
                    "{}: fields are {}×{}×{}; kriging with a GRF covariance needs one channel on a square grid",
                    a.data.display(),
                    set.dims.c,
                    set.dims.h,
                    set.dims.w
                );
            }
            let spec = a.grf.spec(set.dims.h)?;
            let oracle = grf_oracle(&spec, &set)?;
            let shape = vec![set.n, 1, spec.size, spec.size];
            let std: Vec<f32> = oracle.variance.iter().map(|v| v.max(0.0).sqrt()).collect();
            let mut arrays = std::collections::BTreeMap::new();
            arrays.insert("mean".to_string(), lacuna::data::npy::Array::from_f32(shape.clone(), &oracle.mean));
            arrays.insert("std".to_string(), lacuna::data::npy::Array::from_f32(shape.clone(), &std));
            arrays.insert("mask".to_string(), lacuna::data::npy::Array::from_bool(shape, &set.mask));
            lacuna::data::npy::write_npz(&a.out, &arrays)?;
            println!("Bayes MSE on missing entries (mean posterior variance): {:.6}", oracle.bayes_mse);
            println!("posterior means and standard deviations written to {}", a.out.display());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    lacuna::atomic::install_signal_cleanup();
    // libtorch failures arrive as panics and are turned into errors where they happen; keep the
    // default hook from printing them, and report any other panic as one line too.
    std::panic::set_hook(Box::new(|_| {}));
    let caught = std::panic::catch_unwind(|| match &cli.command {
        Command::Train(a) => run_train(a, cli.quiet),
        Command::Impute(a) => run_impute(a, cli.quiet),
        Command::Eval(a) => run_eval(a, cli.quiet),
        Command::Demo(a) => run_demo(a, cli.quiet),
        Command::Data(c) => run_data(c, cli.quiet),
        Command::Masks(c) => run_masks(c, cli.quiet),
        Command::Baseline(a) => {
            let opts = lacuna::baseline::BaselineOptions {
                rank: a.rank,
                iters: a.iters,
                neighbours: a.neighbours,
                seed: a.seed,
                periodic: a.periodic,
            };
            let started = std::time::Instant::now();
            let n = lacuna::baseline::run(a.method, &a.data, a.train.as_deref(), &a.out, &opts)?;
            println!(
                "completed {n} fields with {:?} in {:.1}s → {}",
                a.method,
                started.elapsed().as_secs_f64(),
                a.out.display()
            );
            Ok(())
        }
        Command::Bench(BenchArgs { what: Some(BenchWhat::Perf(p)), .. }) => {
            let work = std::env::temp_dir().join(format!("lacuna-perf-{}", std::process::id()));
            let opts = lacuna::run::perf::PerfOptions {
                size: p.size,
                channels: p.channels,
                batch: p.batch,
                reps: p.reps,
                warmup: p.warmup,
                ensemble: p.ensemble,
                sampler_steps: p.sampler_steps,
                device: p.device.clone(),
                python: p.python.clone().unwrap_or_else(lacuna::run::perf::default_python),
                reference: p.reference.clone().unwrap_or_else(lacuna::run::perf::default_reference),
                work: work.clone(),
                tasks: p.tasks.clone(),
                workers: p.workers,
            };
            let report = lacuna::run::perf::run(&opts, cli.quiet);
            let _ = std::fs::remove_dir_all(&work);
            let report = report?;
            println!(
                "{} · {} threads · max |ours − reference| = {:.1e}\n",
                report.device, report.threads, report.max_abs_diff
            );
            println!("{}", report.table());
            if let Some(j) = &p.json {
                lacuna::atomic::write_bytes(j, serde_json::to_string_pretty(&report)?.as_bytes())?;
            }
            Ok(())
        }
        Command::Curves(a) => {
            let csv = lacuna::run::curves::write_curves(&a.runs, &a.lines, a.x, &a.title, &a.out)?;
            println!("learning curves written to {} and {}", a.out.display(), csv.display());
            Ok(())
        }
        Command::Bench(a) => {
            let mut suite = lacuna::run::bench::Suite::load(&a.suite)?;
            if let Some(s) = a.seeds {
                suite.seeds = s;
            }
            if let Some(s) = a.steps {
                suite.steps = s;
            }
            let started = std::time::Instant::now();
            lacuna::run::bench::run(&suite, &a.out, cli.quiet, a.report)?;
            let md = std::fs::read_to_string(a.out.join("results.md")).context("reading results.md")?;
            println!("{md}");
            println!(
                "bench {} finished in {}; tables in {}",
                suite.name,
                lacuna::run::progress::fmt_secs(started.elapsed().as_secs_f64()),
                a.out.display()
            );
            Ok(())
        }
        Command::Plot(a) => {
            lacuna::run::figure::plot_files(&a.data, &a.preds, &a.out, a.n, a.zoom)?;
            println!("wrote {}", a.out.display());
            Ok(())
        }
    });
    let result = caught.unwrap_or_else(|payload| {
        let msg: String = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        if msg.contains("failed printing to stdout") {
            // The reader went away (`lacuna … | head`): stop quietly, like other command-line tools.
            std::process::exit(0);
        }
        Err(anyhow::anyhow!("internal error (please report): {}", msg.lines().next().unwrap_or("")))
    });
    match result.context("lacuna") {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {:#}", e.root_cause_chain());
            ExitCode::FAILURE
        }
    }
}

trait Chain {
    fn root_cause_chain(&self) -> String;
}

impl Chain for anyhow::Error {
    fn root_cause_chain(&self) -> String {
        // Skip the outer "lacuna" context; one line, most specific last.
        self.chain().skip(1).map(|c| c.to_string()).collect::<Vec<_>>().join(": ")
    }
}
