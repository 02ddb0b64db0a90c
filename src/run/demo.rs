//! The demo: a small train + impute on Gaussian random fields the code makes itself, scored
//! against the truth, the prior variance and the exact Bayes oracle. With `compare`, the
//! MissDiff baseline is trained the same way and scored beside it.

use super::eval::{metrics, Metrics};
use super::impute::{impute, ImputeOptions};
use super::train::train;
use crate::config::TrainConfig;
use crate::data::grf::GrfSpec;
use crate::data::npy::Npz;
use crate::data::synth::{grf_oracle, grf_set};
use crate::data::Pattern;
use crate::method::Partition;
use anyhow::{Context, Result};
use std::path::Path;

#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub size: usize,
    pub train_fields: usize,
    pub test_fields: usize,
    pub pattern: Pattern,
    pub steps: usize,
    pub ensemble: usize,
    pub seed: u64,
    pub compare: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            size: 32,
            train_fields: 2000,
            test_fields: 100,
            pattern: Pattern::Pixel { observed: 0.2 },
            steps: 1000,
            ensemble: 10,
            seed: 0,
            compare: false,
        }
    }
}

/// One row of the demo's table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DemoRow {
    pub method: String,
    pub metrics: Metrics,
    pub train_seconds: f64,
}

pub fn demo(out_dir: &Path, opts: &DemoOptions, quiet: bool) -> Result<Vec<DemoRow>> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("{}: cannot create", out_dir.display()))?;
    let spec = GrfSpec::new(opts.size);
    let train_path = out_dir.join("train.npz");
    let test_path = out_dir.join("test.npz");
    grf_set(&spec, opts.train_fields, &opts.pattern, opts.seed)?.save(&train_path)?;
    let test = grf_set(&spec, opts.test_fields, &opts.pattern, opts.seed.wrapping_add(1_000_003))?;
    test.save(&test_path)?;
    let truth = test.truth.clone().context("generated test set has truth")?;
    let mut rows = Vec::new();

    // References: the prior mean (0, variance = σ²) and the exact Bayes posterior mean.
    let zeros: Vec<f32> = test.values.iter().zip(&test.mask).map(|(&v, &m)| if m != 0 { v } else { 0.0 }).collect();
    rows.push(DemoRow {
        method: "prior mean (no learning)".into(),
        metrics: metrics(&zeros, &truth, &test.mask),
        train_seconds: 0.0,
    });
    let oracle = grf_oracle(&spec, &test)?.mean;
    rows.push(DemoRow {
        method: "Bayes oracle (exact kriging)".into(),
        metrics: metrics(&oracle, &truth, &test.mask),
        train_seconds: 0.0,
    });

    let mut methods = vec![("context-query, pixel partition", Partition::default())];
    if opts.compare {
        methods.push(("MissDiff (context = query = M)", Partition::MissDiff));
    }
    for (label, partition) in methods {
        let run_dir = out_dir.join(format!("run-{}", partition.name()));
        if run_dir.exists() {
            std::fs::remove_dir_all(&run_dir)
                .with_context(|| format!("{}: cannot clear old demo run", run_dir.display()))?;
        }
        let cfg = TrainConfig {
            steps: opts.steps,
            seed: opts.seed,
            partition,
            val_every: 500,
            checkpoint_every: 500,
            ..Default::default()
        };
        if !quiet {
            eprintln!("training {label} for {} steps on {} fields …", opts.steps, opts.train_fields);
        }
        let summary = train(&train_path, &run_dir, &cfg, false, quiet)?;
        let pred_path = out_dir.join(format!("pred-{}.npz", cfg.partition.name()));
        let iopts = ImputeOptions { ensemble: opts.ensemble, seed: opts.seed, ..Default::default() };
        impute(&run_dir, &test_path, &pred_path, &iopts, true)?;
        let mean = Npz::open(&pred_path)?.get("mean")?.context("imputation wrote no mean")?.to_f32();
        rows.push(DemoRow {
            method: label.into(),
            metrics: metrics(&mean, &truth, &test.mask),
            train_seconds: summary.seconds,
        });
    }
    Ok(rows)
}
