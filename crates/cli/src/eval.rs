//! `lacuna eval`: metrics of a completion, or a held-out evaluation where no truth exists.

use anyhow::{bail, Context, Result};
use clap::Args;
use lacuna::data::{FieldSet, Truth};
use lacuna::run::{eval, impute};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct EvalArgs {
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

pub fn print_metrics(m: &eval::Metrics) {
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

pub fn run(a: &EvalArgs, quiet: bool) -> Result<()> {
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
    // The metrics with what they were computed from.
    let mut record = serde_json::to_value(&m)?;
    record["provenance"] =
        serde_json::to_value(lacuna::provenance::Provenance::now(env!("CARGO_PKG_VERSION"), &inputs)?)?;
    lacuna::atomic::write_bytes(&json, serde_json::to_string_pretty(&record)?.as_bytes())?;
    println!("metrics written to {}", json.display());
    Ok(())
}
