//! The demo: a train + impute on fields the code makes itself, scored on the missing entries
//! next to what a scientist would otherwise run: the classical interpolants (biharmonic /
//! thin-plate, and kriging with a covariance fitted to the training observations) and, on
//! Gaussian random fields, the exact Bayes oracle. With `compare`, the MissDiff baseline is
//! trained the same way. Writes `panel.png` (truth, observed, learned, the best classical
//! method, their errors).

use super::eval::{metrics, Metrics};
use super::impute::{impute, ImputeOptions};
use super::train::train;
use crate::baseline::{self, Baseline, BaselineOptions};
use crate::config::{Reflections, TrainConfig};
use crate::data::grf::GrfSpec;
use crate::data::kolmogorov::KolmogorovSpec;
use crate::data::npy::Npz;
use crate::data::synth::{generate, grf_oracle, Generator};
use crate::data::Pattern;
use crate::method::Partition;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// What the demo's fields are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoData {
    /// 2-D Kolmogorov-flow vorticity snapshots (turbulence: not Gaussian, no closed-form prior).
    Kolmogorov,
    /// Gaussian random fields (kriging with the true covariance is the Bayes optimum).
    Grf,
}

#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub data: DemoData,
    pub size: usize,
    pub train_fields: usize,
    pub test_fields: usize,
    pub pattern: Pattern,
    pub steps: usize,
    /// Training stops at `steps` or after this many seconds, whichever comes first, so the
    /// demo's length does not depend on the machine's speed.
    pub time_budget: Option<f64>,
    pub ensemble: usize,
    pub seed: u64,
    pub compare: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            data: DemoData::Kolmogorov,
            size: 32,
            train_fields: 2000,
            test_fields: 100,
            pattern: Pattern::Pixel { observed: 0.2 },
            steps: 4000,
            time_budget: Some(240.0),
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
    /// Training (or fitting) seconds; 0 for methods that learn nothing.
    pub train_seconds: f64,
    /// Whether the method is learned from the training observations by lacuna.
    pub learned: bool,
}

/// What the demo found, and where its files are.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DemoReport {
    pub rows: Vec<DemoRow>,
    pub panel: PathBuf,
}

pub fn demo(out_dir: &Path, opts: &DemoOptions, quiet: bool) -> Result<DemoReport> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("{}: cannot create", out_dir.display()))?;
    let generator = match opts.data {
        DemoData::Grf => Generator::Grf(GrfSpec::new(opts.size)),
        DemoData::Kolmogorov => Generator::Kolmogorov {
            spec: KolmogorovSpec { size: opts.size, resolution: 2 * opts.size, ..Default::default() },
            per_run: 20,
        },
    };
    let train_path = out_dir.join("train.npz");
    let test_path = out_dir.join("test.npz");
    if !quiet {
        eprintln!("making {} training and {} test fields …", opts.train_fields, opts.test_fields);
    }
    let train_set = generate(&generator, opts.train_fields, &opts.pattern, opts.seed, 1.0, &|_, _| {})?;
    train_set.save(&train_path)?;
    let test =
        generate(&generator, opts.test_fields, &opts.pattern, opts.seed.wrapping_add(1_000_003), 1.0, &|_, _| {})?;
    test.save(&test_path)?;
    let truth = test.truth.clone().context("generated test set has truth")?;
    let score = |path: &Path| -> Result<Metrics> {
        let mean = Npz::open(path)?.get("mean")?.context("a completion without `mean`")?.to_f32();
        Ok(metrics(&mean, &truth, &test.mask))
    };
    let mut rows = Vec::new();

    // The prior mean: the training observations' mean in every gap.
    let train_mean = {
        let (s, n) = train_set
            .values
            .iter()
            .zip(&train_set.mask)
            .filter(|(_, &m)| m != 0)
            .fold((0f64, 0usize), |a, (&v, _)| (a.0 + v as f64, a.1 + 1));
        (s / n.max(1) as f64) as f32
    };
    let flat: Vec<f32> =
        test.values.iter().zip(&test.mask).map(|(&v, &m)| if m != 0 { v } else { train_mean }).collect();
    rows.push(DemoRow {
        method: "mean of the observations".into(),
        metrics: metrics(&flat, &truth, &test.mask),
        train_seconds: 0.0,
        learned: false,
    });
    if let Generator::Grf(spec) = &generator {
        let oracle = grf_oracle(spec, &test)?.mean;
        rows.push(DemoRow {
            method: "Bayes oracle (exact kriging)".into(),
            metrics: metrics(&oracle, &truth, &test.mask),
            train_seconds: 0.0,
            learned: false,
        });
    }
    // Both demo kinds are simulated on a torus, a symmetry their user would declare (on sides
    // the network's strides divide), and so are the shifts their laws are invariant under: any
    // shift of a stationary GRF; any column shift of Kolmogorov flow, and row shifts by its
    // forcing's period. The classical methods are told the same periodicity (their stencils,
    // lags and covariances wrap around), so the comparison is on equal knowledge.
    let periodic = opts.size.is_multiple_of(1 << (crate::model::UNetConfig::default().mults.len() - 1));
    let shift_symmetry = match (periodic, opts.data) {
        (false, _) => [0, 0],
        (true, DemoData::Grf) => [1, 1],
        (true, DemoData::Kolmogorov) => {
            let k = KolmogorovSpec::default().forcing_wavenumber;
            [if opts.size.is_multiple_of(k) { opts.size / k } else { 0 }, 1]
        }
    };
    // Kolmogorov flow forced by cos(k y) is also invariant under the rotation by π and the
    // shift-reflect (a half forcing period): `shift-reflect`, where that half period is a
    // whole number of rows. The classical methods are equivariant to these already.
    let reflections = match opts.data {
        DemoData::Kolmogorov if Reflections::ShiftReflect.fits(periodic, shift_symmetry) => Reflections::ShiftReflect,
        _ => Reflections::None,
    };
    // Classical interpolation, as a scientist would run it.
    let mut classical: Vec<(String, PathBuf, f64)> = Vec::new();
    for (b, label) in
        [(Baseline::Biharmonic, "biharmonic (thin-plate)"), (Baseline::Krige, "kriging (fitted covariance)")]
    {
        let pred = out_dir.join(format!("pred-{}.npz", label.split(' ').next().unwrap_or("baseline")));
        let started = std::time::Instant::now();
        baseline::run(
            b,
            &test_path,
            Some(&train_path),
            &pred,
            &BaselineOptions { seed: opts.seed, periodic, ..Default::default() },
        )?;
        let m = score(&pred)?;
        let secs = started.elapsed().as_secs_f64();
        classical.push((label.into(), pred, m.mse_missing));
        rows.push(DemoRow { method: label.into(), metrics: m, train_seconds: secs, learned: false });
    }

    let mut methods = vec![("lacuna, pixel partition", Partition::default())];
    if opts.compare {
        methods.push(("MissDiff (context = query = M)", Partition::MissDiff));
    }
    let mut learned_preds = Vec::new();
    for (label, partition) in methods {
        let run_dir = out_dir.join(format!("run-{}", partition.name()));
        if run_dir.exists() {
            std::fs::remove_dir_all(&run_dir)
                .with_context(|| format!("{}: cannot clear old demo run", run_dir.display()))?;
        }
        let cfg = TrainConfig {
            steps: opts.steps,
            time_budget: opts.time_budget,
            seed: opts.seed,
            partition,
            periodic,
            shift_symmetry,
            reflections,
            ..Default::default()
        };
        if !quiet {
            let budget = opts.time_budget.map(|b| format!(" or {b:.0} s")).unwrap_or_default();
            eprintln!("training {label} for {} steps{budget} on {} fields …", opts.steps, opts.train_fields);
        }
        let summary = train(&train_path, &run_dir, &cfg, false, quiet)?;
        let pred_path = out_dir.join(format!("pred-{}.npz", cfg.partition.name()));
        let iopts = ImputeOptions { ensemble: opts.ensemble, seed: opts.seed, ..Default::default() };
        impute(&run_dir, &test_path, &pred_path, &iopts, true)?;
        rows.push(DemoRow {
            method: label.into(),
            metrics: score(&pred_path)?,
            train_seconds: summary.seconds,
            learned: true,
        });
        learned_preds.push(pred_path);
    }
    // Panel: truth, observed, the learned completion(s), the best classical one, their errors.
    let best =
        classical.iter().min_by(|a, b| a.2.total_cmp(&b.2)).map(|c| c.1.clone()).context("no classical method ran")?;
    let panel = out_dir.join("panel.png");
    learned_preds.push(best);
    super::figure::plot_files(&test_path, &learned_preds, &panel, 3, None)?;
    Ok(DemoReport { rows, panel })
}
