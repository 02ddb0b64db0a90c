//! `lacuna train`: the training flags merged over the defaults or a config file.

use crate::parse::{parse_duration, parse_shift};
use anyhow::{bail, Context, Result};
use clap::Args;
use lacuna::config::TrainConfig;
use lacuna::method::partition::PartitionKind;
use lacuna::method::Partition;
use lacuna::run::train;
use std::path::PathBuf;

/// `cfg.field = value` where the flag was given.
macro_rules! set_if_given {
    ($field:expr, $flag:expr) => {
        if let Some(v) = $flag.clone() {
            $field = v;
        }
    };
}

#[derive(Args)]
pub struct TrainArgs {
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
    /// Prior partition: guide only when an unguided context would keep less than this share of
    /// the observed sites (measured on the training masks); otherwise train the unguided
    /// intersection (default 0.3; 1 = always guide).
    #[arg(long)]
    guide_below: Option<f64>,
    /// Prior partition: what guidance pulls toward: `all` (the seed's cross-entropy over all
    /// sites), `anchors` (anchored sites only) or `anchors-missing` (anchors and the sites
    /// missing in the observation).
    #[arg(long, value_enum)]
    guidance_loss: Option<lacuna::method::partition::GuidanceLoss>,
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
    /// Reflections the fields' law is invariant under (scalar fields): each training sample
    /// is reflected by a random element, and ensemble members are spread over the group.
    /// shift-reflect for Kolmogorov flow forced by cos(k y) along the rows (the rotation by π
    /// and ω(x, y) → −ω(−x, y − π/k); needs --periodic and an even row shift symmetry, e.g.
    /// --shift-symmetry 8,1), dihedral for an isotropic field.
    #[arg(long, value_enum)]
    reflections: Option<lacuna::config::Reflections>,
    #[arg(long)]
    steps: Option<usize>,
    #[arg(long)]
    batch: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long)]
    device: Option<lacuna::config::Device>,
    /// The classical interpolant of the context that the denoiser's skip starts from and the
    /// network sees: `fill` (harmonic/biharmonic blend, no statistics) or `krige` (kriging
    /// with a covariance fitted to the training observations: the Bayes completion of a
    /// Gaussian field; grids up to 64×64).
    #[arg(long, value_enum)]
    interpolant: Option<lacuna::config::Interpolant>,
    /// The network's arithmetic: float32, or bfloat16 mixed precision (float32 weights;
    /// fast on CPUs with AMX or AVX-512 BF16 and on GPUs, slow on CPUs without them).
    #[arg(long, value_enum)]
    precision: Option<lacuna::config::Precision>,
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
    /// --time-budget may extend it, --device move it).
    #[arg(long, conflicts_with_all = [
        "config", "partition", "context_ratio", "query_ratio", "grid", "drop_blocks", "prior", "rho",
        "guidance", "guidance_loss", "draws", "guide_below", "context_in_time", "snapshot_model", "periodic", "shift_symmetry", "reflections", "interpolant", "batch", "seed",
        "score_every", "score_data", "patience",
    ])]
    resume: bool,
    /// Data-parallel training: the number of processes in the group (default: WORLD_SIZE,
    /// as torchrun and SLURM scripts set it; 1 = a single process).
    #[arg(long, help_heading = "Data-parallel group")]
    world_size: Option<usize>,
    /// This process's rank in the group, 0..world-size (default: RANK). Rank 0 writes the run.
    #[arg(long, help_heading = "Data-parallel group")]
    rank: Option<usize>,
    /// Rank 0's rendezvous address HOST:PORT (default: MASTER_ADDR and MASTER_PORT).
    #[arg(long, help_heading = "Data-parallel group")]
    master: Option<String>,
    /// Longest wait for a peer, in the rendezvous or at any step, before failing (default 10m).
    #[arg(long, value_parser = parse_duration, help_heading = "Data-parallel group")]
    group_timeout: Option<f64>,
}

fn train_config(a: &TrainArgs) -> Result<TrainConfig> {
    let mut cfg = match &a.config {
        Some(p) => TrainConfig::load(p)?,
        None => TrainConfig::default(),
    };
    if let Some(kind) = a.partition {
        let prior = match kind {
            PartitionKind::Prior | PartitionKind::Intersect => {
                let dir = a
                    .prior
                    .as_ref()
                    .context("--partition prior and intersect need --prior DIR (make one with `lacuna masks fit`)")?;
                std::fs::canonicalize(dir).with_context(|| format!("{}: no such mask prior", dir.display()))?
            }
            _ => PathBuf::new(),
        };
        cfg.partition = kind.with_defaults(prior);
    }
    let prior_flags = a.prior.is_some()
        || a.rho.is_some()
        || a.guidance.is_some()
        || a.draws.is_some()
        || a.guidance_loss.is_some()
        || a.guide_below.is_some();
    if prior_flags && !matches!(cfg.partition, Partition::Prior { .. }) {
        bail!("--prior, --rho, --guidance, --guidance-loss, --guide-below and --draws apply to --partition prior or intersect");
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
        Partition::Prior { rho, weight, draws, guidance_loss, guide_below, .. } => {
            if a.context_ratio.is_some() || a.query_ratio.is_some() || a.grid.is_some() || a.drop_blocks.is_some() {
                bail!("--partition prior takes --prior, --rho, --guidance, --guidance-loss, --guide-below and --draws");
            }
            if (a.rho.is_some() || a.guidance.is_some() || a.guidance_loss.is_some() || a.guide_below.is_some())
                && rho.is_none()
            {
                bail!("--rho, --guidance, --guidance-loss and --guide-below steer the guided prior partition; --partition intersect is unguided");
            }
            if let Some(g) = a.guide_below {
                *guide_below = g;
            }
            if let Some(l) = a.guidance_loss {
                *guidance_loss = l;
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
    set_if_given!(cfg.context_in_time, a.context_in_time);
    if a.snapshot_model {
        cfg.model.space_time = Some(false);
    }
    cfg.periodic |= a.periodic;
    set_if_given!(cfg.shift_symmetry, a.shift_symmetry);
    set_if_given!(cfg.reflections, a.reflections);
    set_if_given!(cfg.denoiser.interpolant, a.interpolant);
    set_if_given!(cfg.batch, a.batch);
    set_if_given!(cfg.seed, a.seed);
    set_if_given!(cfg.score.every, a.score_every);
    set_if_given!(cfg.score.patience, a.patience);
    if let Some(p) = &a.score_data {
        cfg.score.data =
            Some(std::fs::canonicalize(p).with_context(|| format!("{}: no such scoring file", p.display()))?);
    }
    if let Some(p) = &a.score_oracle {
        cfg.score.oracle =
            Some(std::fs::canonicalize(p).with_context(|| format!("{}: no such oracle file", p.display()))?);
    }
    extend(&mut cfg, a);
    cfg.validate()?;
    Ok(cfg)
}

/// The settings a resumed run may change too: its length, where it runs and its arithmetic.
fn extend(cfg: &mut TrainConfig, a: &TrainArgs) {
    set_if_given!(cfg.steps, a.steps);
    set_if_given!(cfg.device, a.device);
    set_if_given!(cfg.model.precision, a.precision);
    if a.time_budget.is_some() {
        cfg.time_budget = a.time_budget;
    }
}

pub fn run(a: &TrainArgs, quiet: bool) -> Result<()> {
    let cfg = if a.resume {
        // clap refused every other setting (`conflicts_with_all` on --resume).
        let run = lacuna::run::RunDir(a.out.clone());
        run.ensure_resumable()?;
        let mut cfg = TrainConfig::load_run(&run.config())?;
        extend(&mut cfg, a);
        cfg
    } else {
        train_config(a)?
    };
    let flags = lacuna::dist::GroupFlags {
        world: a.world_size,
        rank: a.rank,
        master: a.master.clone(),
        timeout: a.group_timeout.map(std::time::Duration::from_secs_f64),
    };
    let rendezvous = lacuna::dist::Rendezvous::resolve(&flags, |k| std::env::var(k).ok())?;
    let group = lacuna::dist::Group::join(rendezvous.as_ref())?;
    let s = train::train_in_group(&a.data, &a.out, &cfg, a.resume, quiet, &group)?;
    if !group.is_leader() {
        return Ok(());
    }
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
