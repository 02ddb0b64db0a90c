//! `lacuna bench`: suites of data × pattern × method, and the speed comparison with PyTorch.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
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
    /// Override the suite's training-time budget per learned method, in minutes (the steps
    /// then only cap it; cases with their own `minutes` keep theirs).
    #[arg(long)]
    minutes: Option<f64>,
    /// Run only the cases whose name contains this text (repeatable; case-insensitive).
    #[arg(long = "case", value_name = "TEXT")]
    cases: Vec<String>,
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
    device: lacuna::config::Device,
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

pub fn run(a: &BenchArgs, quiet: bool) -> Result<()> {
    if let Some(BenchWhat::Perf(p)) = &a.what {
        return perf(p, quiet);
    }
    let mut suite = lacuna::run::bench::Suite::load(&a.suite)?;
    if let Some(s) = a.seeds {
        suite.seeds = s;
    }
    if let Some(s) = a.steps {
        suite.steps = s;
    }
    if a.minutes.is_some() {
        suite.minutes = a.minutes;
    }
    let wanted: Vec<String> = a.cases.iter().map(|c| c.to_lowercase()).collect();
    let selected =
        |c: &lacuna::run::bench::Case| wanted.is_empty() || wanted.iter().any(|w| c.name.to_lowercase().contains(w));
    anyhow::ensure!(
        suite.cases.iter().any(selected),
        "no case of suite {} matches --case {}",
        suite.name,
        a.cases.join(", ")
    );
    let started = std::time::Instant::now();
    // The other cases are reported from their records, so the tables keep their rows.
    lacuna::run::bench::run_cases(&suite, &a.out, quiet, a.report, selected)?;
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

fn perf(p: &PerfArgs, quiet: bool) -> Result<()> {
    let work = std::env::temp_dir().join(format!("lacuna-perf-{}", std::process::id()));
    let opts = lacuna::run::perf::PerfOptions {
        size: p.size,
        channels: p.channels,
        batch: p.batch,
        reps: p.reps,
        warmup: p.warmup,
        ensemble: p.ensemble,
        sampler_steps: p.sampler_steps,
        device: p.device,
        python: p.python.clone().unwrap_or_else(lacuna::run::perf::default_python),
        reference: p.reference.clone().unwrap_or_else(lacuna::run::perf::default_reference),
        work: work.clone(),
        tasks: p.tasks.clone(),
        workers: p.workers,
    };
    let report = lacuna::run::perf::run(&opts, quiet);
    let _ = std::fs::remove_dir_all(&work);
    let report = report?;
    println!("{} · {} threads · max |ours − reference| = {:.1e}\n", report.device, report.threads, report.max_abs_diff);
    println!("{}", report.table());
    if let Some(j) = &p.json {
        lacuna::atomic::write_bytes(j, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(())
}
