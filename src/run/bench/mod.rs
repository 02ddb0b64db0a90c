//! `lacuna bench`: a declared suite of (data × observation pattern × method), run end to end —
//! generate, train every learned method with the same budget and seed, impute, run the
//! baselines, evaluate — over several seeds, written as a Markdown table, a CSV of every run
//! and PNG panels (truth / observed / each method / errors).
//!
//! Every finished piece is kept on disk (data, runs, predictions, scores), so an interrupted
//! bench started again with the same `--out` continues where it stopped.
//!
//! Methods: the partitions of the one training loop (`pixel`, `block`, `missdiff`, `ambient`),
//! the baselines (`nearest`, `harmonic`, `biharmonic`, `telea`, `krige`, `em-gaussian`) and, on
//! GRFs, `oracle` (exact kriging, the Bayes floor) and `exact-pixel` / `exact-block`: the exact
//! conditional-mean denoiser run through the same partition and K-ensemble, whose excess over
//! the oracle is the information gap of the partition and K alone (the learned model's excess
//! over it is model error).

use super::context_choice::ContextChoice;
use super::eval::{add_probabilistic, field_metrics, scoring_mask, Metrics};
use super::impute::{impute, ImputeOptions};
use super::train::train;
use crate::baseline::{self, Baseline, BaselineOptions};
use crate::config::{Interpolant, TrainConfig};
use crate::data::advection::AdvectionSpec;
use crate::data::grf::GrfSpec;
use crate::data::holdout::{holdout, Holdout};
use crate::data::kolmogorov::KolmogorovSpec;
use crate::data::npy::Npz;
use crate::data::shallow_water::ShallowWaterSpec;
use crate::data::synth::{generate, grf_oracle_mean, Generator};
use crate::data::{FieldSet, Pattern, Truth};
use crate::method::denoiser::GaussianDenoiser;
use crate::method::ensemble::{single_step, Members};
use crate::method::partition::{GuidanceLoss, PartitionKind};
use crate::method::{Partition, VpSchedule};
use crate::run::masks::PartitionStats;
use anyhow::{bail, ensure, Context, Result};
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod report;
mod suite;

use report::write_case_curves;
pub use report::{write_tables, Record};
use suite::{method_names, slug, LEARNED};
pub use suite::{Case, CaseKind, MethodSpec, Suite};

/// Scores the prediction file `pred` against the test set (with CRPS etc. where it has them).
fn score(pred: &Path, test: &FieldSet) -> Result<Metrics> {
    let truth = test.truth.as_ref().context("bench test data has truth")?;
    let mut npz = Npz::open(pred)?;
    let mean = npz.get("mean")?.context("prediction without 'mean'")?.to_f32();
    // Entries without truth (held-out files) and never-observable sites are not scored.
    let mask = scoring_mask(&test.mask, truth, |k| test.is_observable(k));
    let mut m = field_metrics(&mean, truth, &mask, test.dims.h, test.dims.w);
    if let Some(std) = npz.get("std")? {
        add_probabilistic(&mut m, &mean, truth, &mask, test.dims.len(), None, Some(&std.to_f32()));
    }
    Ok(m)
}

/// Training masks on which a learned method's partition is described (context share, query
/// balance), and splits per mask.
const STATS_MASKS: usize = 16;
const STATS_SPLITS: usize = 200;

/// The `.gitignore` a bench writes into its output: inside a git work tree, only the records
/// are committed (tables, panels, curves, one JSON per case, seed and method), so a bench that
/// outlives a machine can be continued from a clone: run again over the committed records, it
/// skips every method they hold and recomputes data, runs and predictions only for the rest.
const KEEP_IN_GIT: &str = "\
# Written by `lacuna bench`: in git, keep the records, not the data, runs and predictions
# (a bench run again over these records skips what they hold).
*
!*/
!/.gitignore
!/suite.toml
!/results.md
!/results.csv
!/*.png
!/curves-*.csv
!/*/seed-*/*.json
!/*/case.toml
";

/// Refuses to continue a case whose definition (everything but its method list) changed
/// since its records and data in `case_dir` were made: they are reused by name, so an edited
/// mask, periodicity or symmetry would otherwise mix rows of two different experiments. The
/// definition is kept in `case_dir/case.toml` (in git with the records); a directory from
/// before that file existed adopts the current definition.
fn keep_case_definition(case: &Case, case_dir: &Path) -> Result<()> {
    let definition = toml::to_string(&Case { methods: Vec::new(), ..case.clone() })?;
    let path = case_dir.join("case.toml");
    if let Ok(kept) = std::fs::read_to_string(&path) {
        ensure!(
            kept == definition,
            "case {:?} changed since the records in {} were made:\n--- then\n{kept}--- now\n{definition}\
             Its data, runs and records would be reused as they are. Restore the definition, bench into another --out, \
             or delete {} with the records (and runs) the change invalidates.",
            case.name,
            case_dir.display(),
            path.display()
        );
        return Ok(());
    }
    std::fs::create_dir_all(case_dir).with_context(|| format!("{}: cannot create", case_dir.display()))?;
    crate::atomic::write_bytes(&path, definition.as_bytes())
}

/// Steps between a bench run's checkpoints (at most; shorter runs save once, at the end).
const BENCH_CHECKPOINT_EVERY: usize = 250;

/// Context share and query balance of the training partition of `cfg` on the first training
/// masks (what the table reports beside a learned method's MSE).
fn training_partition_stats(cfg: &TrainConfig, train_path: &Path, seed: usize) -> Result<PartitionStats> {
    let set = FieldSet::load(train_path, Truth::Never)?;
    let masks: Vec<Vec<u8>> = set.mask.chunks_exact(set.dims.len()).take(STATS_MASKS).map(<[u8]>::to_vec).collect();
    crate::run::masks::partition_stats(cfg, &masks, set.dims, STATS_SPLITS, seed as u64)
}

/// Training seconds of the case's `:published` method in `dir` (the same case and seed),
/// for `published_time` suites: the last training clock its run logged, or, where the run is
/// gone (a clone continuing from committed records), the one its record kept.
fn published_seconds(case: &Case, dir: &Path) -> Result<f64> {
    let (method, published) = case
        .methods
        .iter()
        .filter_map(|m| Some((m, m.parse::<MethodSpec>().ok()?)))
        .find(|(_, m)| m.published)
        .with_context(|| format!("case {:?}: published_time needs a `:published` method", case.name))?;
    let run = dir.join(slug(&published.run_name()));
    let logged = std::fs::read_to_string(run.join("metrics.jsonl")).ok().and_then(|text| {
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?.get("seconds")?.as_f64())
            .next_back()
    });
    let recorded = || {
        let text = std::fs::read_to_string(dir.join(format!("{}.json", slug(method)))).ok()?;
        serde_json::from_str::<Record>(&text).ok()?.training_seconds
    };
    let seconds = logged.or_else(recorded);
    seconds.filter(|s| s.is_finite() && *s > 0.0).with_context(|| {
        format!(
            "case {:?}: published_time: {} has no training time yet; list the `:published` method before the others",
            case.name,
            run.display()
        )
    })
}

/// What one method of one case and seed gave.
struct Outcome {
    metrics: Metrics,
    /// Wall-clock seconds, training and imputation.
    seconds: f64,
    /// Learned methods: the training partition's context share and query balance.
    partition: Option<PartitionStats>,
    /// Learned methods: the training steps the run took (fewer than asked under a time budget).
    steps: Option<usize>,
    /// Learned methods: the training clock at the end of the run (no imputation, no set-up).
    training_seconds: Option<f64>,
    /// Learned methods whose model another method of the case trained: that run's directory.
    run: Option<String>,
    /// Learned methods whose inference contexts were chosen on the test data (Work II).
    contexts: Option<ContextChoice>,
}

impl Outcome {
    fn unlearned(metrics: Metrics, started: std::time::Instant) -> Outcome {
        Outcome {
            metrics,
            seconds: started.elapsed().as_secs_f64(),
            partition: None,
            steps: None,
            training_seconds: None,
            run: None,
            contexts: None,
        }
    }
}

/// The training partition of a learned (or exact) method, `None` for the others; Work II
/// methods get the case's mask prior, fitted once per case and seed.
fn method_partition(
    suite: &Suite,
    spec: &MethodSpec,
    pattern: &Pattern,
    dir: &Path,
    seed: usize,
    quiet: bool,
) -> Result<Option<Partition>> {
    let mut partition = spec.partition(pattern)?;
    if let Some(Partition::Prior { prior, draws, .. }) = &mut partition {
        *prior = fitted_prior(suite, &dir.join("train.npz"), dir, seed, quiet)?;
        if let Some(d) = suite.guided_draws {
            *draws = d;
        }
    }
    Ok(partition)
}

/// The training configuration of a learned method: today's defaults (or the published recipe)
/// with the suite's budget, the case's symmetries and the method's options.
#[allow(clippy::too_many_arguments)]
fn learned_config(
    suite: &Suite,
    case: &Case,
    spec: &MethodSpec,
    partition: &Partition,
    seed: usize,
    dir: &Path,
    test: &FieldSet,
) -> Result<TrainConfig> {
    let base = if spec.published { TrainConfig::published() } else { TrainConfig::default() };
    // The published pixel partition keeps its own context ratio unless the method names one.
    let partition = match (&base.partition, partition, spec.param) {
        (own @ Partition::Pixel { .. }, Partition::Pixel { .. }, None) if spec.published => own.clone(),
        _ => partition.clone(),
    };
    let steps = case.steps.unwrap_or(suite.steps);
    let mut cfg = TrainConfig {
        steps,
        seed: seed as u64,
        partition,
        val_every: steps.max(1),
        // Often enough that a bench stopped mid-run resumes close to where it was.
        checkpoint_every: steps.clamp(1, BENCH_CHECKPOINT_EVERY),
        ..base
    };
    if suite.curves > 0 {
        cfg.score.every = suite.curves;
        cfg.score.data = Some(std::path::absolute(dir.join("test.npz"))?);
        // All of them: the curves then end where the table does, on the fields its
        // baseline lines were scored on (a subset can be far easier than the rest).
        cfg.score.fields = test.n;
        if case.kind == CaseKind::Grf {
            cfg.score.oracle = Some(std::path::absolute(oracle_file(case, test, dir)?)?);
        }
    }
    if let Some(b) = suite.batch {
        cfg.batch = b;
    }
    if let Some(minutes) = suite.minutes(case) {
        // The budget decides; the step count only caps it.
        cfg.time_budget = Some(60.0 * minutes);
    }
    if !spec.published {
        cfg.periodic = case.periodic;
        if let Some(s) = case.shift_symmetry {
            cfg.shift_symmetry = s;
        }
        if let Some(r) = case.reflections {
            cfg.reflections = r;
        }
        if suite.published_time {
            cfg.time_budget = Some(published_seconds(case, dir)?);
            // The budget decides; the step count only caps it.
            cfg.steps = 4 * steps;
            cfg.val_every = cfg.steps;
            cfg.checkpoint_every = cfg.steps;
        }
    }
    if let Some(i) = spec.interpolant {
        cfg.denoiser.interpolant = i;
    }
    if spec.snapshot {
        cfg.model.space_time = Some(false);
    }
    if spec.per_frame {
        cfg.context_in_time = crate::method::partition::InTime::PerFrame;
    }
    Ok(cfg)
}

/// The finished `prior` run that an `intersect` method with configuration `cfg` would repeat:
/// where the guidance rule made that run the unguided intersection, and its configuration
/// differs from `cfg` in nothing but the ρ the rule dropped, it trained exactly this model
/// (about an hour of a real case on 2 cores), so the method imputes with it instead.
#[allow(clippy::too_many_arguments)]
fn prior_twin(
    suite: &Suite,
    case: &Case,
    spec: &MethodSpec,
    cfg: &TrainConfig,
    seed: usize,
    dir: &Path,
    pattern: &Pattern,
    test: &FieldSet,
    quiet: bool,
) -> Result<Option<PathBuf>> {
    if spec.name != "intersect" || !matches!(cfg.partition, Partition::Prior { rho: None, .. }) {
        return Ok(None);
    }
    let twin = MethodSpec { name: "prior".into(), ..spec.clone() };
    let twin_dir = dir.join(slug(&twin.run_name()));
    let Ok(finished) = std::fs::read_to_string(twin_dir.join("bench-trained.toml")) else { return Ok(None) };
    let Some(partition) = method_partition(suite, &twin, pattern, dir, seed, quiet)? else { return Ok(None) };
    let twin_cfg = learned_config(suite, case, &twin, &partition, seed, dir, test)?;
    if finished != toml::to_string(&twin_cfg)? {
        return Ok(None); // trained with another configuration
    }
    let mut unguided = twin_cfg;
    if let Partition::Prior { rho, .. } = &mut unguided.partition {
        *rho = None;
    }
    let trained = TrainConfig::load_run(&super::RunDir(twin_dir.clone()).config())?;
    let same = toml::to_string(&unguided)? == toml::to_string(cfg)?;
    Ok((same && matches!(trained.partition, Partition::Prior { rho: None, .. })).then_some(twin_dir))
}

/// Runs `method` of `case` for one seed in `dir`.
#[allow(clippy::too_many_arguments)]
fn run_method(
    suite: &Suite,
    case: &Case,
    method: &str,
    seed: usize,
    dir: &Path,
    pattern: &Pattern,
    test: &FieldSet,
    quiet: bool,
) -> Result<Outcome> {
    let (train_path, test_path) = (dir.join("train.npz"), dir.join("test.npz"));
    let pred = prediction_path(dir, method);
    let started = std::time::Instant::now();
    let spec: MethodSpec = method.parse()?;
    let k = spec.k.unwrap_or(suite.ensemble);
    let partition = method_partition(suite, &spec, pattern, dir, seed, quiet)?;
    if let (Some(partition), false) = (&partition, spec.name.starts_with("exact-")) {
        let cfg = learned_config(suite, case, &spec, partition, seed, dir, test)?;
        let stamp = toml::to_string(&cfg)?;
        let shared = prior_twin(suite, case, &spec, &cfg, seed, dir, pattern, test, quiet)?;
        let run_dir = shared.clone().unwrap_or_else(|| dir.join(slug(&spec.run_name())));
        // A finished run is reused (methods differing only in K share it) only if it was
        // trained with exactly this configuration; an unfinished one with the same
        // configuration is resumed from its last checkpoint.
        let done = run_dir.join("bench-trained.toml");
        let begun = run_dir.join("bench-training.toml");
        let stamped = |path: &Path| std::fs::read_to_string(path).ok().as_deref() == Some(stamp.as_str());
        let reused = shared.is_none() && stamped(&done);
        if shared.is_none() && !reused {
            let checkpoint = super::RunDir(run_dir.clone()).checkpoint();
            let resume = stamped(&begun) && checkpoint.exists();
            // Stopped after its last checkpoint but before it was marked done: nothing to train.
            let finished = resume && super::checkpoint::state(&checkpoint)?.finished(cfg.steps, cfg.time_budget);
            if !resume {
                if run_dir.exists() {
                    std::fs::remove_dir_all(&run_dir)
                        .with_context(|| format!("{}: cannot clear", run_dir.display()))?;
                }
                std::fs::create_dir_all(&run_dir).with_context(|| format!("{}: cannot create", run_dir.display()))?;
                crate::atomic::write_bytes(&begun, stamp.as_bytes())?;
            } else if !quiet {
                eprintln!("  resuming {} from its checkpoint", run_dir.display());
            }
            if !finished {
                train(&train_path, &run_dir, &cfg, resume, quiet)?;
            }
            crate::atomic::write_bytes(&done, stamp.as_bytes())?;
        }
        // Curves score on the test fields, so weights chosen by that score would have seen the
        // test: the table then reports the last weights.
        let iopts = ImputeOptions { ensemble: k, seed: seed as u64, last: suite.curves > 0, ..Default::default() };
        let contexts = impute(&run_dir, &test_path, &pred, &iopts, true)?.contexts;
        // The partition the run trained, as its saved config records it: the guidance rule
        // may have made a `prior` method the unguided intersection.
        let mut trained = TrainConfig::load_run(&super::RunDir(run_dir.clone()).config())?;
        if let Partition::Prior { prior, .. } = &mut trained.partition {
            *prior = run_dir.join(&*prior); // saved relative to the run (its copy of the prior)
        }
        let state = super::checkpoint::state(&super::RunDir(run_dir.clone()).checkpoint())?;
        // A method imputing again with its own finished run still cost that run's training
        // (the twin of another method's run says so in its label and counts imputation only).
        let seconds = started.elapsed().as_secs_f64() + if reused { state.seconds } else { 0.0 };
        return Ok(Outcome {
            metrics: score(&pred, test)?,
            seconds,
            partition: Some(training_partition_stats(&trained, &train_path, seed)?),
            steps: Some(state.step),
            training_seconds: Some(state.seconds),
            run: shared.map(|d| d.file_name().unwrap_or_default().to_string_lossy().into_owned()),
            contexts,
        });
    }
    // Baseline names are the `lacuna baseline` command's.
    let baseline = <Baseline as clap::ValueEnum>::from_str(&spec.name, false).ok();
    if let Some(b) = baseline {
        let opts = BaselineOptions { seed: seed as u64, periodic: case.periodic, ..Default::default() };
        baseline::run(b, &test_path, Some(&train_path), &pred, &opts)?;
        return Ok(Outcome::unlearned(score(&pred, test)?, started));
    }
    ensure!(case.kind == CaseKind::Grf, "method {method:?} needs GRF data (it uses the true covariance)");
    let grf = case.grf_spec();
    let truth = test.truth.as_ref().context("bench test data has truth")?;
    let mean = match (spec.name.as_str(), &partition) {
        ("oracle", _) => {
            let path = oracle_file(case, test, dir)?;
            Npz::open(&path)?.get("mean")?.with_context(|| format!("{}: no `mean`", path.display()))?.to_f32()
        }
        (_, Some(partition)) => exact_ensemble(&grf, partition, test, k, seed as u64)?,
        _ => bail!("unknown method {method:?}; methods: {}", method_names()),
    };
    Ok(Outcome::unlearned(field_metrics(&mean, truth, &test.mask, test.dims.h, test.dims.w), started))
}

/// The Bayes oracle's completion of a GRF case's test fields (an imputation file with `mean`),
/// computed once per case and seed and kept beside them like every other finished piece: the
/// `oracle` method scores it and curves report ratios to it.
fn oracle_file(case: &Case, test: &FieldSet, dir: &Path) -> Result<PathBuf> {
    let path = dir.join("oracle-mean.npz");
    if !path.exists() {
        let mean = grf_oracle_mean(&case.grf_spec(), test)?;
        let arr = crate::data::npy::Array::from_f32(test.dims.shape(test.n), &mean);
        crate::data::npy::write_npz(&path, &[("mean".to_string(), arr)].into_iter().collect())?;
    }
    Ok(path)
}

/// The mask prior of a case and seed (Work II methods), fitted on the training masks once and
/// reused while its configuration is unchanged. Returns its directory, absolute.
fn fitted_prior(suite: &Suite, train_path: &Path, dir: &Path, seed: usize, quiet: bool) -> Result<PathBuf> {
    let prior_dir = std::path::absolute(dir.join("mask-prior")).context("mask prior path")?;
    let mut cfg = super::masks::PriorConfig { steps: suite.prior_steps, seed: seed as u64, ..Default::default() };
    if let Some(s) = suite.prior_sample_steps {
        cfg.sample_steps = s;
    }
    let done = prior_dir.join("bench-fitted.toml");
    let stamp = toml::to_string(&cfg)?;
    if std::fs::read_to_string(&done).ok().as_deref() != Some(stamp.as_str()) {
        if prior_dir.exists() {
            std::fs::remove_dir_all(&prior_dir).with_context(|| format!("{}: cannot clear", prior_dir.display()))?;
        }
        super::masks::fit(train_path, &prior_dir, &cfg, quiet)?;
        crate::atomic::write_bytes(&done, stamp.as_bytes())?;
    }
    Ok(prior_dir)
}

/// The single-step K-ensemble of the exact Gaussian denoiser through `partition`, per field with
/// the same per-field random streams as `impute`.
pub fn exact_ensemble(spec: &GrfSpec, partition: &Partition, set: &FieldSet, k: usize, seed: u64) -> Result<Vec<f32>> {
    let den = GaussianDenoiser::new(*spec, VpSchedule::default());
    let len = set.dims.len();
    let mut out = Vec::with_capacity(set.values.len());
    for i in 0..set.n {
        let x = tch::Tensor::from_slice(&set.values[i * len..(i + 1) * len]).view([
            1,
            set.dims.c as i64,
            set.dims.h as i64,
            set.dims.w as i64,
        ]);
        let masks = vec![set.mask[i * len..(i + 1) * len].to_vec()];
        let mut rngs = vec![rand_chacha::ChaCha8Rng::seed_from_u64(super::mix_seed(seed, 7, i as u64))];
        let contexts = crate::method::partition::Contexts {
            partition,
            dims: set.dims,
            in_time: crate::method::partition::InTime::Shared,
        };
        let est = single_step(&den, &den.schedule, &contexts, &x, &masks, Members::plain(k), &mut rngs)?;
        out.extend(Vec::<f32>::try_from(est.flatten(0, -1))?);
    }
    Ok(out)
}

/// Runs the suite into `out`; returns every record (old ones from an earlier, interrupted run
/// included).
/// With `report_only`, nothing is computed: the tables are written from the records already
/// in `out` (a bench still running, or interrupted, can be reported on).
pub fn run(suite: &Suite, out: &Path, quiet: bool, report_only: bool) -> Result<Vec<Record>> {
    run_cases(suite, out, quiet, report_only, |_| true)
}

/// [`run`] computing only the cases that `selected` accepts (`bench --case`); the others are
/// reported from their records in `out`, so the tables and `suite.toml` written there still
/// cover the whole suite and running one case never drops another's rows.
pub fn run_cases(
    suite: &Suite,
    out: &Path,
    quiet: bool,
    report_only: bool,
    selected: impl Fn(&Case) -> bool,
) -> Result<Vec<Record>> {
    suite.validate()?;
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    crate::atomic::write_bytes(&out.join("suite.toml"), toml::to_string(suite)?.as_bytes())?;
    crate::atomic::write_bytes(&out.join(".gitignore"), KEEP_IN_GIT.as_bytes())?;
    let mut records = Vec::new();
    let computed = |c: &Case| !report_only && selected(c);
    let total: usize = suite.cases.iter().filter(|c| computed(c)).map(|c| c.methods.len()).sum::<usize>() * suite.seeds;
    let mut done = 0;
    let started = std::time::Instant::now();
    for case in &suite.cases {
        let report_only = !computed(case);
        let pattern = case.pattern()?;
        let file = case.kind == CaseKind::File;
        let gen = if file { None } else { Some(case.generator()?) };
        let source = if file && !report_only { Some(case.load_file()?) } else { None };
        if !report_only {
            keep_case_definition(case, &out.join(slug(&case.name)))?;
        }
        for seed in 0..suite.seeds {
            let dir = out.join(slug(&case.name)).join(format!("seed-{seed}"));
            std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
            if let (Some(source), false) = (&source, dir.join("test.npz").exists()) {
                if let Some(t) = &case.test_data {
                    // Real data with complete truth: train on the file as it is, score on the test file.
                    let test = FieldSet::load(Path::new(t), Truth::IfPresent)?;
                    ensure!(test.truth.is_some(), "{t}: the test file of case {:?} needs `truth`", case.name);
                    source.save(&dir.join("train.npz"))?;
                    test.save(&dir.join("test.npz"))?;
                } else {
                    // Real data: train and test on the held-out version; the hidden entries are the score.
                    let held = holdout(source, &case.mask.parse()?, seed as u64)?;
                    held.save(&dir.join("train.npz"))?;
                    held.save(&dir.join("test.npz"))?;
                }
            }
            for (name, n, s) in
                [("train.npz", case.train, seed as u64), ("test.npz", case.test, seed as u64 + 1_000_003)]
            {
                if let (Some(gen), false) = (&gen, report_only || dir.join(name).exists()) {
                    dataset(gen, case, n, &pattern, s, out, quiet)?.save(&dir.join(name))?;
                }
            }
            // A report reads the records alone: a fresh clone has them (in git) but not the data.
            let test = if report_only { None } else { Some(FieldSet::load(&dir.join("test.npz"), Truth::IfPresent)?) };
            for method in &case.methods {
                let record_path = dir.join(format!("{}.json", slug(method)));
                if let Ok(text) = std::fs::read_to_string(&record_path) {
                    if let Ok(r) = serde_json::from_str::<Record>(&text) {
                        records.push(r);
                        continue;
                    }
                }
                let Some(test) = &test else {
                    continue; // a report: no record, nothing to compute
                };
                done += 1;
                if !quiet {
                    eprintln!(
                        "[{done}/{total}, {}] {} · seed {seed} · {method}",
                        super::progress::fmt_secs(started.elapsed().as_secs_f64()),
                        case.name
                    );
                }
                let Outcome { metrics, seconds, partition, steps, training_seconds, run, contexts } =
                    run_method(suite, case, method, seed, &dir, &pattern, test, quiet)
                        .with_context(|| format!("{} · seed {seed} · {method}", case.name))?;
                let inputs = [dir.join("train.npz"), dir.join("test.npz")];
                let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).filter(|p| p.exists()).collect();
                let mut provenance = crate::provenance::Provenance::now(env!("CARGO_PKG_VERSION"), &inputs)?
                    .with("steps", case.steps.unwrap_or(suite.steps))
                    .with("ensemble", suite.ensemble);
                if let Some(minutes) = suite.minutes(case) {
                    provenance = provenance.with("minutes", minutes);
                }
                let r = Record {
                    case: case.name.clone(),
                    method: method.clone(),
                    seed,
                    metrics,
                    seconds,
                    partition,
                    steps,
                    training_seconds,
                    run,
                    contexts,
                    provenance: Some(provenance),
                };
                crate::atomic::write_bytes(&record_path, serde_json::to_string_pretty(&r)?.as_bytes())?;
                records.push(r);
            }
            if suite.curves > 0 {
                write_case_curves(case, seed, &dir, &records, out)?;
            }
        }
        write_case_panel(case, &records, out, quiet)?;
    }
    write_tables(suite, &records, out)?;
    Ok(records)
}

/// Where `method`'s completion of a seed's test fields is written in that seed's directory
/// `dir` (the panels read it back).
fn prediction_path(dir: &Path, method: &str) -> PathBuf {
    dir.join(format!("pred-{}.npz", slug(method)))
}

/// The case's panel from seed 0: truth, observed, then each method that wrote a prediction
/// file. Predictions are not kept in git, so on another machine (or after a run directory was
/// cleared) methods with a record may have none on disk; an existing panel is then kept
/// rather than redrawn without their rows, and the methods missing are named.
fn write_case_panel(case: &Case, records: &[Record], out: &Path, quiet: bool) -> Result<()> {
    let dir0 = out.join(slug(&case.name)).join("seed-0");
    if !dir0.join("test.npz").exists() {
        return Ok(()); // a report before anything of this case was computed
    }
    let png = out.join(format!("{}.png", slug(&case.name)));
    let pred = |m: &str| prediction_path(&dir0, m);
    let missing: Vec<&str> = case
        .methods
        .iter()
        .filter(|m| records.iter().any(|r| r.case == case.name && r.seed == 0 && &r.method == *m))
        .filter(|m| !pred(m).exists())
        .map(String::as_str)
        .collect();
    if !missing.is_empty() && png.exists() {
        if !quiet {
            eprintln!(
                "  {}: panel kept as it was; no predictions on disk for {} (delete their records to redo them)",
                png.display(),
                missing.join(", ")
            );
        }
        return Ok(());
    }
    let preds: Vec<PathBuf> = case.methods.iter().map(|m| pred(m)).filter(|p| p.exists()).collect();
    super::figure::plot_files(&dir0.join("test.npz"), &preds, &png, 2, None)
}

/// `n` fields of `case` observed through `pattern`. Simulated fields are cached under
/// `out/fields` by (kind, size, n, seed), so cases that differ only in the pattern share them;
/// the masks are drawn exactly as `lacuna data gen` draws them (stream 0 of the seed).
fn dataset(
    gen: &Generator,
    case: &Case,
    n: usize,
    pattern: &Pattern,
    seed: u64,
    out: &Path,
    quiet: bool,
) -> Result<FieldSet> {
    if case.kind == CaseKind::Grf {
        return generate(gen, n, pattern, seed, 1.0, &|_, _| {});
    }
    let frames = match (case.frames, case.interval) {
        (1, None) => String::new(),
        (t, dt) => format!("-t{t}x{}-dt{}", case.stride, dt.map_or("default".to_string(), |d| d.to_string())),
    };
    let cache = out.join("fields").join(format!("{}-{}{frames}-n{n}-seed{seed}.npz", case.kind, case.size));
    let truth = match FieldSet::load(&cache, Truth::IfPresent).ok().and_then(|f| f.truth) {
        Some(t) if t.len() == n * gen.dims().len() => t,
        _ => {
            if !quiet {
                eprintln!("  simulating {n} {} fields (seed {seed}) …", case.kind);
            }
            let full = generate(gen, n, &Pattern::Pixel { observed: 1.0 }, seed, 1.0, &|_, _| {})?;
            std::fs::create_dir_all(cache.parent().unwrap_or(out))?;
            full.save(&cache)?;
            full.truth.context("generated fields have truth")?
        }
    };
    let dims = gen.dims();
    let mask = pattern.draw_set(n, dims, &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed))?;
    FieldSet::new(n, dims, truth.clone(), mask, Some(truth))
}

#[cfg(test)]
mod tests;
