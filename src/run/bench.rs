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

use super::eval::{add_probabilistic, field_metrics, scoring_mask, Metrics};
use super::impute::{impute, ImputeOptions};
use super::train::train;
use crate::baseline::{self, Baseline, BaselineOptions};
use crate::config::TrainConfig;
use crate::data::advection::AdvectionSpec;
use crate::data::grf::GrfSpec;
use crate::data::holdout::{holdout, Holdout};
use crate::data::kolmogorov::KolmogorovSpec;
use crate::data::npy::Npz;
use crate::data::shallow_water::ShallowWaterSpec;
use crate::data::synth::{generate, grf_oracle_mean, Generator};
use crate::data::{FieldSet, Pattern, Truth};
use crate::method::denoiser::GaussianDenoiser;
use crate::method::ensemble::single_step;
use crate::method::partition::PartitionKind;
use crate::method::{Partition, VpSchedule};
use anyhow::{bail, ensure, Context, Result};
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A suite: cases run with every seed in `0..seeds`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub name: String,
    pub seeds: usize,
    /// Training steps of every learned method.
    pub steps: usize,
    /// K of the single-step ensemble.
    pub ensemble: usize,
    /// Work II methods (`prior`, `intersect`): fitting steps of the mask prior, one prior per
    /// case and seed, fitted on the training masks and shared by both methods.
    #[serde(default = "default_prior_steps")]
    pub prior_steps: usize,
    /// Training batch of every learned method (samples; a trajectory counts once); unset: the
    /// training default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    /// Learning curves: learned methods score their EMA weights every this many steps on the
    /// case's test fields (against the Bayes oracle on GRFs), and each case and seed gets
    /// `curves-CASE-seed-S.png` and `.csv` with the baselines as horizontal lines. 0 = none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub curves: usize,
    /// Equal training time: every learned method that is not `:published` trains for the
    /// seconds the case's `:published` method (listed before it) took for its `steps` steps
    /// in the same case and seed, its learning-rate schedule running over that time.
    #[serde(default, skip_serializing_if = "is_false")]
    pub published_time: bool,
    pub cases: Vec<Case>,
}

fn is_false(v: &bool) -> bool {
    !*v
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

fn default_prior_steps() -> usize {
    super::masks::PriorConfig::default().steps
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// `grf`, `kolmogorov`, `shallow-water`, `advection`, or `file` (real data, `data`).
    pub kind: String,
    #[serde(default)]
    pub size: usize,
    /// Observation pattern, e.g. `pixel:0.2` or `block:3:1`. For `file` cases: what hides
    /// observed entries for held-out evaluation (a pattern, or `other`; see `eval --holdout`),
    /// or `given` for files with a separate `test_data` holding the truth.
    pub mask: String,
    #[serde(default)]
    pub train: usize,
    #[serde(default)]
    pub test: usize,
    /// Generated cases: frames per sample (trajectories when above 1, masks static in time)
    /// and native intervals between frames (see `lacuna data gen --frames --stride`).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub frames: usize,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub stride: usize,
    /// Kolmogorov cases: simulated time between snapshots (default 2.0, nearly uncorrelated
    /// snapshots; trajectories want less).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<f64>,
    /// Methods: learned ones may end in `:snapshot` (the per-frame network on trajectories)
    /// and `:per-frame` (contexts drawn per frame), e.g. `pixel:snapshot`.
    pub methods: Vec<String>,
    /// `file` cases: an .npz of the field contract, or a NetCDF-3 file read with `vars` and
    /// `observable` (as `lacuna data import`). Every method trains on the held-out version of
    /// the file (the hidden entries never reach training) and is scored on the hidden entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observable: Option<String>,
    /// `file` cases with complete truth: the test file (with `truth`). Every method trains on
    /// `data` as it is and is scored on the test file's missing entries; `mask = "given"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_data: Option<String>,
    /// GRF cases: Matérn length scale (default size/8) and smoothness ν (default 1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_scale: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoothness: Option<f64>,
    /// The fields wrap around (the generated kinds are simulated on a torus): learned methods
    /// other than `:published` train with `periodic = true`, and `fill` wraps.
    #[serde(default, skip_serializing_if = "is_false")]
    pub periodic: bool,
    /// Periodic cases: the circular shifts `[rows, columns]` the fields' law is invariant
    /// under (training `shift_symmetry`), given to the same methods as `periodic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift_symmetry: Option<[usize; 2]>,
}

fn one() -> usize {
    1
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

impl Case {
    /// The generator of a generated case (trajectories when `frames` > 1).
    fn generator(&self) -> Result<Generator> {
        let mut snapshots = generator(&self.kind, self.size)?;
        ensure!(
            self.kind == "grf" || (self.length_scale.is_none() && self.smoothness.is_none()),
            "`length_scale` and `smoothness` apply to grf cases"
        );
        if let Generator::Grf(spec) = &mut snapshots {
            *spec = self.grf_spec();
            ensure!(spec.length_scale > 0.0 && spec.smoothness > 0.0, "length_scale and smoothness must be positive");
        }
        if let (Some(dt), Generator::Kolmogorov { spec, .. }) = (self.interval, &mut snapshots) {
            ensure!(dt.is_finite() && dt > 0.0, "interval must be positive");
            spec.interval = dt;
        }
        ensure!(self.interval.is_none() || self.kind == "kolmogorov", "`interval` applies to kolmogorov cases");
        Generator::trajectories(snapshots, self.frames, self.stride)
    }

    /// The GRF of a grf case (its covariance drives `oracle` and `exact-` methods too).
    fn grf_spec(&self) -> GrfSpec {
        let mut spec = GrfSpec::new(self.size);
        if let Some(l) = self.length_scale {
            spec.length_scale = l;
        }
        if let Some(nu) = self.smoothness {
            spec.smoothness = nu;
        }
        spec
    }

    /// The real data of a `file` case.
    fn load_file(&self) -> Result<FieldSet> {
        let data = self.data.as_deref().with_context(|| format!("case {:?}: a file case needs `data`", self.name))?;
        if data.ends_with(".nc") || data.ends_with(".cdf") {
            let obs: crate::data::netcdf::Observable = self.observable.as_deref().unwrap_or("all").parse()?;
            Ok(crate::data::netcdf::import(Path::new(data), &self.vars, &obs)?.set)
        } else {
            FieldSet::load(Path::new(data), Truth::Never)
        }
    }

    /// The pattern the partitions are built for (the block grid of block masks).
    fn pattern(&self) -> Result<Pattern> {
        if self.kind == "file" && self.mask == "given" {
            ensure!(self.test_data.is_some(), "case {:?}: mask \"given\" needs `test_data`", self.name);
            return Ok(Pattern::Pixel { observed: 0.5 });
        }
        if self.kind == "file" {
            return Ok(match self.mask.parse::<Holdout>()? {
                Holdout::Pattern(p) => p,
                Holdout::Other => Pattern::Pixel { observed: 0.5 },
            });
        }
        self.mask.parse()
    }
}

/// Bench methods that train (or, for `oracle`, condition exactly); the others are the
/// `lacuna baseline` names.
const LEARNED: [&str; 7] = ["pixel", "prior", "intersect", "block", "missdiff", "ambient", "oracle"];

/// Every bench method name, for error messages.
fn method_names() -> String {
    let baselines = <Baseline as clap::ValueEnum>::value_variants()
        .iter()
        .filter_map(|b| clap::ValueEnum::to_possible_value(b).map(|v| v.get_name().to_string()));
    let learned = LEARNED.iter().map(|m| m.to_string());
    let all: Vec<String> = learned.chain(baselines).collect();
    format!("{} (the partitions also as exact-NAME on GRFs, and NAME@PARAM/K)", all.join(", "))
}

impl Suite {
    /// The built-in suites: `quick` (under 30 minutes on 2 cores) and `paper` (Tables 1–2 of the
    /// paper on our generated data; hours).
    pub fn builtin(name: &str) -> Result<Suite> {
        let case = |name: &str, kind: &str, size, mask: &str, train, test, methods: &[&str]| Case {
            name: name.into(),
            kind: kind.into(),
            size,
            mask: mask.into(),
            train,
            test,
            methods: methods.iter().map(|m| m.to_string()).collect(),
            data: None,
            vars: Vec::new(),
            observable: None,
            test_data: None,
            frames: 1,
            stride: 1,
            interval: None,
            length_scale: None,
            smoothness: None,
            periodic: false,
            shift_symmetry: None,
        };
        // The GRF pixel case shared by the suites, with its Bayes oracle available.
        let grf_pixel = |methods: &[&str]| case("GRF 32² pixel 20%", "grf", 32, "pixel:0.2", 2000, 100, methods);
        let pixel_methods = ["pixel", "missdiff", "ambient", "telea", "harmonic", "biharmonic", "krige", "em-gaussian"];
        let block_methods = ["block", "pixel", "missdiff", "ambient", "telea", "harmonic", "biharmonic", "krige"];
        match name {
            "quick" => Ok(Suite {
                name: "quick".into(),
                seeds: 2,
                steps: 300,
                ensemble: 10,
                prior_steps: default_prior_steps(),
                batch: None,
                curves: 0,
                published_time: false,
                cases: vec![
                    grf_pixel(&[
                        "pixel",
                        "missdiff",
                        "ambient",
                        "exact-pixel",
                        "oracle",
                        "biharmonic",
                        "krige",
                        "nearest",
                    ]),
                    case(
                        "GRF 32² block 8/9",
                        "grf",
                        32,
                        "block:3:1",
                        2000,
                        100,
                        &["block", "pixel", "oracle", "biharmonic", "krige"],
                    ),
                ],
            }),
            "paper" => {
                let mut cases = Vec::new();
                for p in ["0.8", "0.6", "0.2"] {
                    let pct = (p.parse::<f64>().unwrap_or(0.0) * 100.0).round();
                    cases.push(case(
                        &format!("NS pixel {pct}%"),
                        "kolmogorov",
                        64,
                        &format!("pixel:{p}"),
                        1000,
                        100,
                        &pixel_methods,
                    ));
                }
                for (kind, size, label) in
                    [("shallow-water", 32, "SW"), ("advection", 64, "Adv"), ("kolmogorov", 64, "NS")]
                {
                    for (m, frac) in [(1, "8/9"), (4, "5/9")] {
                        if label == "NS" && m == 4 {
                            continue; // the paper reports NS at 8/9 only
                        }
                        cases.push(case(
                            &format!("{label} block {frac}"),
                            kind,
                            size,
                            &format!("block:3:{m}"),
                            1000,
                            100,
                            &block_methods,
                        ));
                    }
                }
                cases.push(grf_pixel(&[
                    "pixel",
                    "missdiff",
                    "ambient",
                    "exact-pixel",
                    "oracle",
                    "biharmonic",
                    "krige",
                    "em-gaussian",
                ]));
                Ok(Suite {
                    name: "paper".into(),
                    seeds: 3,
                    steps: 4000,
                    ensemble: 10,
                    prior_steps: default_prior_steps(),
                    batch: None,
                    curves: 0,
                    published_time: false,
                    cases,
                })
            }
            "decompose" => {
                // Information gap vs model error on GRFs: the exact denoiser and the learned one
                // through the same pixel partition, over context ratios and ensemble sizes.
                let mut methods = vec!["oracle".to_string()];
                for r in ["0.3", "0.5", "0.7", "0.9"] {
                    methods.push(format!("exact-pixel@{r}"));
                    methods.push(format!("pixel@{r}"));
                }
                for k in [1, 3, 30] {
                    methods.push(format!("exact-pixel@0.7/{k}"));
                    methods.push(format!("pixel@0.7/{k}"));
                }
                let mut c = grf_pixel(&[]);
                c.methods = methods;
                Ok(Suite {
                    name: "decompose".into(),
                    seeds: 2,
                    steps: 600,
                    ensemble: 10,
                    prior_steps: default_prior_steps(),
                    batch: None,
                    curves: 0,
                    published_time: false,
                    cases: vec![c],
                })
            }
            _ => bail!(
                "unknown suite {name:?}; the built-in suites are quick, decompose and paper (or pass a TOML file)"
            ),
        }
    }

    /// Checks every case and method before any work starts.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.seeds >= 1 && self.steps >= 1 && self.ensemble >= 1, "a suite needs seeds, steps and K ≥ 1");
        for case in &self.cases {
            let pattern = case.pattern().with_context(|| format!("case {:?}", case.name))?;
            if case.kind == "file" {
                let data =
                    case.data.as_deref().with_context(|| format!("case {:?}: a file case needs `data`", case.name))?;
                ensure!(Path::new(data).exists(), "case {:?}: {data} not found", case.name);
                if let Some(t) = &case.test_data {
                    ensure!(Path::new(t).exists(), "case {:?}: {t} not found", case.name);
                    ensure!(case.mask == "given", "case {:?}: with `test_data` the mask is \"given\"", case.name);
                }
            } else {
                let gen = case.generator().with_context(|| format!("case {:?}", case.name))?;
                pattern.check(gen.dims()).with_context(|| format!("case {:?}", case.name))?;
                ensure!(
                    case.train >= 2 && case.test >= 1,
                    "case {:?}: needs at least 2 training and 1 test field",
                    case.name
                );
            }
            for m in &case.methods {
                let spec: MethodSpec = m.parse()?;
                let base = spec.name.strip_prefix("exact-").unwrap_or(&spec.name);
                let known = LEARNED.contains(&base) || <Baseline as clap::ValueEnum>::from_str(base, false).is_ok();
                ensure!(known, "case {:?}: unknown method {m:?}; methods: {}", case.name, method_names());
                let part = spec.partition(&pattern).with_context(|| format!("case {:?}", case.name))?;
                ensure!(
                    !spec.published || (part.is_some() && !spec.name.starts_with("exact-")),
                    "case {:?}: {m}: `:published` applies to learned methods",
                    case.name
                );
                if spec.snapshot || spec.per_frame {
                    ensure!(
                        part.is_some() && !spec.name.starts_with("exact-") && case.frames > 1,
                        "case {:?}: {m}: `:snapshot` and `:per-frame` apply to learned methods on trajectories (frames > 1)",
                        case.name
                    );
                }
                ensure!(
                    !matches!(spec.name.as_str(), "exact-prior" | "exact-intersect"),
                    "case {:?}: {m}: the exact denoiser runs the Work I partitions only",
                    case.name
                );
                ensure!(
                    case.kind == "grf" || !(spec.name.starts_with("exact-") || spec.name == "oracle"),
                    "case {:?}: {m} needs GRF data (it uses the true covariance)",
                    case.name
                );
            }
        }
        Ok(())
    }

    pub fn load(spec: &str) -> Result<Suite> {
        if spec.ends_with(".toml") {
            let text = std::fs::read_to_string(spec).with_context(|| format!("{spec}: cannot read"))?;
            return toml::from_str(&text).with_context(|| format!("{spec}: not a valid suite"));
        }
        Suite::builtin(spec)
    }
}

fn generator(kind: &str, size: usize) -> Result<Generator> {
    Ok(match kind {
        "grf" => Generator::Grf(GrfSpec::new(size)),
        "kolmogorov" => Generator::Kolmogorov {
            spec: KolmogorovSpec { size, resolution: 2 * size, ..Default::default() },
            per_run: 20,
        },
        "shallow-water" => Generator::ShallowWater(ShallowWaterSpec { size, ..Default::default() }),
        "advection" => Generator::Advection(AdvectionSpec { size, ..Default::default() }),
        _ => bail!("unknown data kind {kind:?}"),
    })
}

/// One scored run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub case: String,
    pub method: String,
    pub seed: usize,
    pub metrics: Metrics,
    pub seconds: f64,
}

/// A file-name-safe form of a label: lower-case alphanumerics, '.', '@', single dashes.
fn slug(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '@' { c.to_ascii_lowercase() } else { '-' })
        .collect();
    mapped.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-")
}

/// A method of a suite: `NAME[@P][/K][:snapshot][:per-frame]`. P is the partition parameter
/// (pixel: context ratio, block: blocks dropped, ambient: share kept), K the ensemble size
/// (default: the suite's); on trajectories `:snapshot` trains the per-frame network and
/// `:per-frame` draws contexts per frame.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodSpec {
    pub name: String,
    pub param: Option<f64>,
    pub k: Option<usize>,
    pub snapshot: bool,
    pub per_frame: bool,
    /// Train with the published recipe (`TrainConfig::published`) instead of today's defaults.
    pub published: bool,
}

impl std::str::FromStr for MethodSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<MethodSpec> {
        let mut parts = s.split(':');
        let head = parts.next().unwrap_or_default();
        let (mut snapshot, mut per_frame, mut published) = (false, false, false);
        for option in parts {
            match option {
                "snapshot" => snapshot = true,
                "per-frame" => per_frame = true,
                "published" => published = true,
                _ => bail!("method {s:?}: unknown option {option:?} (options: snapshot, per-frame, published)"),
            }
        }
        let (rest, k) = match head.split_once('/') {
            Some((a, k)) => {
                (a, Some(k.parse::<usize>().with_context(|| format!("method {s:?}: K {k:?} is not a whole number"))?))
            }
            None => (head, None),
        };
        let (name, param) = match rest.split_once('@') {
            Some((n, p)) => {
                (n, Some(p.parse::<f64>().with_context(|| format!("method {s:?}: {p:?} is not a number"))?))
            }
            None => (rest, None),
        };
        ensure!(k != Some(0), "method {s:?}: K must be at least 1");
        Ok(MethodSpec { name: name.to_string(), param, k, snapshot, per_frame, published })
    }
}

impl MethodSpec {
    /// The training partition of a learned (or `exact-`) method, with its parameter.
    fn partition(&self, pattern: &Pattern) -> Result<Option<Partition>> {
        let base = self.name.strip_prefix("exact-").unwrap_or(&self.name);
        let p = self.param;
        let Some(kind) = PartitionKind::parse(base) else { return Ok(None) };
        // The prior directory is filled in by `run_method` (one per case and seed).
        let part = match (kind.with_defaults(PathBuf::new()), p) {
            (Partition::Pixel { query_ratio, .. }, Some(r)) => Partition::Pixel { context_ratio: r, query_ratio },
            (Partition::Block { drop, .. }, p) => Partition::Block {
                grid: match pattern {
                    Pattern::Block { grid, .. } => *grid,
                    _ => 3,
                },
                drop: p.map_or(drop, |d| d.round() as usize),
            },
            (Partition::Ambient { .. }, Some(keep)) => Partition::Ambient { keep },
            (Partition::Prior { prior, rho: Some(_), weight, draws, bank }, Some(r)) => {
                Partition::Prior { prior, rho: Some(r), weight, draws, bank }
            }
            (default, _) => default,
        };
        part.validate().with_context(|| format!("method {}", self.name))?;
        Ok(Some(part))
    }

    /// The run directory name: methods that differ only in K share one trained model.
    fn run_name(&self) -> String {
        let mut name = match self.param {
            Some(p) => format!("run-{}@{p}", self.name),
            None => format!("run-{}", self.name),
        };
        if self.snapshot {
            name += "-snapshot";
        }
        if self.per_frame {
            name += "-per-frame";
        }
        if self.published {
            name += "-published";
        }
        name
    }
}

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

/// Training seconds of the case's `:published` method in `dir` (the same case and seed),
/// for `published_time` suites.
fn published_seconds(case: &Case, dir: &Path) -> Result<f64> {
    let published = case
        .methods
        .iter()
        .filter_map(|m| m.parse::<MethodSpec>().ok())
        .find(|m| m.published)
        .with_context(|| format!("case {:?}: published_time needs a `:published` method", case.name))?;
    let run = dir.join(slug(&published.run_name()));
    // The last logged training clock of that run.
    let seconds = std::fs::read_to_string(run.join("metrics.jsonl")).ok().and_then(|text| {
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?.get("seconds")?.as_f64())
            .next_back()
    });
    seconds.filter(|s| s.is_finite() && *s > 0.0).with_context(|| {
        format!(
            "case {:?}: published_time: {} has no training time yet; list the `:published` method before the others",
            case.name,
            run.display()
        )
    })
}

/// Runs `method` of `case` for one seed in `dir`; returns its metrics and seconds.
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
) -> Result<(Metrics, f64)> {
    let (train_path, test_path) = (dir.join("train.npz"), dir.join("test.npz"));
    let pred = dir.join(format!("pred-{}.npz", slug(method)));
    let started = std::time::Instant::now();
    let spec: MethodSpec = method.parse()?;
    let k = spec.k.unwrap_or(suite.ensemble);
    let mut partition = spec.partition(pattern)?;
    if let Some(Partition::Prior { prior, .. }) = &mut partition {
        *prior = fitted_prior(suite, &train_path, dir, seed, quiet)?;
    }
    if let (Some(partition), false) = (&partition, spec.name.starts_with("exact-")) {
        let run_dir = dir.join(slug(&spec.run_name()));
        let base = if spec.published { TrainConfig::published() } else { TrainConfig::default() };
        // The published pixel partition keeps its own context ratio unless the method names one.
        let partition = match (&base.partition, partition, spec.param) {
            (own @ Partition::Pixel { .. }, Partition::Pixel { .. }, None) if spec.published => own.clone(),
            _ => partition.clone(),
        };
        let mut cfg = TrainConfig {
            steps: suite.steps,
            seed: seed as u64,
            partition,
            val_every: suite.steps.max(1),
            checkpoint_every: suite.steps.max(1),
            ..base
        };
        if suite.curves > 0 {
            cfg.score.every = suite.curves;
            cfg.score.data = Some(std::path::absolute(&test_path)?);
            if case.kind == "grf" {
                cfg.score.oracle = Some(std::path::absolute(oracle_file(case, test, dir)?)?);
            }
        }
        if let Some(b) = suite.batch {
            cfg.batch = b;
        }
        if !spec.published {
            cfg.periodic = case.periodic;
            if let Some(s) = case.shift_symmetry {
                cfg.shift_symmetry = s;
            }
            if suite.published_time {
                cfg.time_budget = Some(published_seconds(case, dir)?);
                // The budget decides; the step count only caps it.
                cfg.steps = 4 * suite.steps;
                cfg.val_every = cfg.steps;
                cfg.checkpoint_every = cfg.steps;
            }
        }
        if spec.snapshot {
            cfg.model.space_time = Some(false);
        }
        if spec.per_frame {
            cfg.context_in_time = crate::method::partition::InTime::PerFrame;
        }
        // A finished run is reused (methods differing only in K share it) only if it was
        // trained with exactly this configuration.
        let done = run_dir.join("bench-trained.toml");
        let stamp = toml::to_string(&cfg)?;
        if std::fs::read_to_string(&done).ok().as_deref() != Some(stamp.as_str()) {
            if run_dir.exists() {
                std::fs::remove_dir_all(&run_dir).with_context(|| format!("{}: cannot clear", run_dir.display()))?;
            }
            train(&train_path, &run_dir, &cfg, false, quiet)?;
            crate::atomic::write_bytes(&done, stamp.as_bytes())?;
        }
        // Curves score on the test fields, so weights chosen by that score would have seen the
        // test: the table then reports the last weights.
        let iopts = ImputeOptions { ensemble: k, seed: seed as u64, last: suite.curves > 0, ..Default::default() };
        impute(&run_dir, &test_path, &pred, &iopts, true)?;
        return Ok((score(&pred, test)?, started.elapsed().as_secs_f64()));
    }
    // Baseline names are the `lacuna baseline` command's.
    let baseline = <Baseline as clap::ValueEnum>::from_str(&spec.name, false).ok();
    if let Some(b) = baseline {
        let opts = BaselineOptions { seed: seed as u64, periodic: case.periodic, ..Default::default() };
        baseline::run(b, &test_path, Some(&train_path), &pred, &opts)?;
        return Ok((score(&pred, test)?, started.elapsed().as_secs_f64()));
    }
    ensure!(case.kind == "grf", "method {method:?} needs GRF data (it uses the true covariance)");
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
    Ok((field_metrics(&mean, truth, &test.mask, test.dims.h, test.dims.w), started.elapsed().as_secs_f64()))
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
    let cfg = super::masks::PriorConfig { steps: suite.prior_steps, seed: seed as u64, ..Default::default() };
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
        let est = single_step(&den, &den.schedule, &contexts, &x, &masks, k, &mut rngs)?;
        out.extend(Vec::<f32>::try_from(est.flatten(0, -1))?);
    }
    Ok(out)
}

/// Runs the suite into `out`; returns every record (old ones from an earlier, interrupted run
/// included).
/// With `report_only`, nothing is computed: the tables are written from the records already
/// in `out` (a bench still running, or interrupted, can be reported on).
pub fn run(suite: &Suite, out: &Path, quiet: bool, report_only: bool) -> Result<Vec<Record>> {
    suite.validate()?;
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    crate::atomic::write_bytes(&out.join("suite.toml"), toml::to_string(suite)?.as_bytes())?;
    let mut records = Vec::new();
    let total: usize = suite.cases.iter().map(|c| c.methods.len()).sum::<usize>() * suite.seeds;
    let mut done = 0;
    let started = std::time::Instant::now();
    for case in &suite.cases {
        let pattern = case.pattern()?;
        let file = case.kind == "file";
        let gen = if file { None } else { Some(case.generator()?) };
        let source = if file && !report_only { Some(case.load_file()?) } else { None };
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
            let test = match FieldSet::load(&dir.join("test.npz"), Truth::IfPresent) {
                Ok(t) => t,
                Err(_) if report_only => continue,
                Err(e) => return Err(e),
            };
            for method in &case.methods {
                done += 1;
                let record_path = dir.join(format!("{}.json", slug(method)));
                if let Ok(text) = std::fs::read_to_string(&record_path) {
                    if let Ok(r) = serde_json::from_str::<Record>(&text) {
                        records.push(r);
                        continue;
                    }
                }
                if report_only {
                    continue;
                }
                if !quiet {
                    eprintln!(
                        "[{done}/{total}, {}] {} · seed {seed} · {method}",
                        super::progress::fmt_secs(started.elapsed().as_secs_f64()),
                        case.name
                    );
                }
                let (metrics, seconds) = run_method(suite, case, method, seed, &dir, &pattern, &test, true)
                    .with_context(|| format!("{} · seed {seed} · {method}", case.name))?;
                let r = Record { case: case.name.clone(), method: method.clone(), seed, metrics, seconds };
                crate::atomic::write_bytes(&record_path, serde_json::to_string_pretty(&r)?.as_bytes())?;
                records.push(r);
            }
            if suite.curves > 0 {
                write_case_curves(case, seed, &dir, &records, out)?;
            }
        }
        // Panels from seed 0: truth, observed, then each method that wrote a prediction file.
        let dir0 = out.join(slug(&case.name)).join("seed-0");
        if !dir0.join("test.npz").exists() {
            continue; // a report before anything of this case was computed
        }
        let preds: Vec<PathBuf> =
            case.methods.iter().map(|m| dir0.join(format!("pred-{}.npz", slug(m)))).filter(|p| p.exists()).collect();
        super::figure::plot_files(
            &dir0.join("test.npz"),
            &preds,
            &out.join(format!("{}.png", slug(&case.name))),
            2,
            None,
        )?;
    }
    write_tables(suite, &records, out)?;
    Ok(records)
}

/// The learning curves of one case and seed: every learned method's held-out scores, every
/// other method's MSE (baselines, oracle, exact denoisers) as a horizontal line.
fn write_case_curves(case: &Case, seed: usize, dir: &Path, records: &[Record], out: &Path) -> Result<()> {
    let mut runs = Vec::new();
    let mut lines = Vec::new();
    for method in &case.methods {
        let spec: MethodSpec = method.parse()?;
        let run_dir = dir.join(slug(&spec.run_name()));
        let learned = LEARNED.contains(&spec.name.as_str()) && spec.name != "oracle";
        if learned && run_dir.join("metrics.jsonl").exists() {
            if !runs.iter().any(|(_, d): &(String, PathBuf)| d == &run_dir) {
                runs.push((method.clone(), run_dir));
            }
        } else if !learned {
            if let Some(r) = records.iter().find(|r| r.case == case.name && r.seed == seed && &r.method == method) {
                lines.push((method.clone(), r.metrics.mse_missing));
            }
        }
    }
    if runs.is_empty() {
        return Ok(());
    }
    let png = out.join(format!("curves-{}-seed-{seed}.png", slug(&case.name)));
    let title = format!("{} (seed {seed})", case.name);
    super::curves::write_curves(&runs, &lines, super::curves::Axis::Seconds, &title, &png)?;
    Ok(())
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
    if case.kind == "grf" {
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

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let s = if v.len() > 1 { (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
    (m, s)
}

/// `results.csv` (one line per run) and `results.md` (per case: mean ± std over seeds).
pub fn write_tables(suite: &Suite, records: &[Record], out: &Path) -> Result<()> {
    let mut csv = String::from(
        "case,method,seed,mse_missing,mse_field,nmse_missing,rel_l2_missing,spectrum_log_error,crps_missing,spread_skill,seconds\n",
    );
    for r in records {
        let m = &r.metrics;
        let opt = |v: Option<f64>| v.map(|x| format!("{x:.6e}")).unwrap_or_default();
        csv += &format!(
            "{},{},{},{:.6e},{:.6e},{:.6e},{:.6e},{:.4},{},{},{:.1}\n",
            r.case,
            r.method,
            r.seed,
            m.mse_missing,
            m.mse_field,
            m.nmse_missing,
            m.rel_l2_missing,
            m.spectrum_log_error,
            opt(m.crps_missing),
            opt(m.spread_skill),
            r.seconds
        );
    }
    crate::atomic::write_bytes(&out.join("results.csv"), csv.as_bytes())?;
    let mut md = format!(
        "# Bench `{}`: {} seed(s), {} training steps per learned method, K = {}\n\n\
         MSE on the missing entries (mean ± std over seeds); whole-field MSE with observations pasted\n\
         (the paper's metric); power-spectrum log error; seconds per seed (train + impute).\n",
        suite.name, suite.seeds, suite.steps, suite.ensemble
    );
    for case in &suite.cases {
        let what = match (&case.data, case.kind.as_str()) {
            (Some(data), "file") => match &case.test_data {
                Some(test) => {
                    format!("trained on `{data}`, scored on the missing entries of `{test}` against its truth")
                }
                None => format!(
                    "`{data}`, held out with `{}`: trained on and scored at the hidden observed entries",
                    case.mask
                ),
            },
            _ if case.frames > 1 => format!(
                "`{}` trajectories of {} frames of {}×{} (stride {}{}), `{}` static in time, {} training / {} test trajectories",
                case.kind,
                case.frames,
                case.size,
                case.size,
                case.stride,
                case.interval.map_or(String::new(), |dt| format!(", snapshot interval {dt}")),
                case.mask,
                case.train,
                case.test
            ),
            _ => format!(
                "`{}` {}×{}, `{}`, {} training / {} test fields",
                case.kind, case.size, case.size, case.mask, case.train, case.test
            ),
        };
        md += &format!("\n## {}\n\n{what}. Panels: `{}.png`.\n\n", case.name, slug(&case.name));
        md += "| method | MSE missing | whole-field MSE | spectrum error | s | seeds |\n|---|---|---|---|---|---|\n";
        let mut rows: BTreeMap<usize, String> = BTreeMap::new();
        for (order, method) in case.methods.iter().enumerate() {
            let rs: Vec<&Record> = records.iter().filter(|r| r.case == case.name && &r.method == method).collect();
            if rs.is_empty() {
                continue;
            }
            let (mm, ms) = mean_std(&rs.iter().map(|r| r.metrics.mse_missing).collect::<Vec<_>>());
            let (fm, fs) = mean_std(&rs.iter().map(|r| r.metrics.mse_field).collect::<Vec<_>>());
            let (sm, _) = mean_std(&rs.iter().map(|r| r.metrics.spectrum_log_error).collect::<Vec<_>>());
            let (tm, _) = mean_std(&rs.iter().map(|r| r.seconds).collect::<Vec<_>>());
            let pm = |m: f64, s: f64| if rs.len() > 1 { format!("{m:.4} ± {s:.4}") } else { format!("{m:.4}") };
            rows.insert(
                order,
                format!("| {method} | {} | {} | {sm:.3} | {tm:.0} | {} |\n", pm(mm, ms), pm(fm, fs), rs.len()),
            );
        }
        md += &rows.into_values().collect::<String>();
    }
    crate::atomic::write_bytes(&out.join("results.md"), md.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_specs_parse_and_map_to_partitions() {
        let m: MethodSpec = "exact-pixel@0.5/3".parse().unwrap();
        let plain = MethodSpec {
            name: "exact-pixel".into(),
            param: Some(0.5),
            k: Some(3),
            snapshot: false,
            per_frame: false,
            published: false,
        };
        assert_eq!(m, plain);
        let m: MethodSpec = "pixel@0.5/3:snapshot:per-frame".parse().unwrap();
        assert_eq!((m.name.as_str(), m.param, m.k, m.snapshot, m.per_frame), ("pixel", Some(0.5), Some(3), true, true));
        assert_eq!(m.run_name(), "run-pixel@0.5-snapshot-per-frame");
        assert!("pixel:fast".parse::<MethodSpec>().is_err());
        let block = Pattern::Block { grid: 4, missing: 2 };
        assert_eq!(
            "block@2".parse::<MethodSpec>().unwrap().partition(&block).unwrap(),
            Some(Partition::Block { grid: 4, drop: 2 })
        );
        assert_eq!("krige".parse::<MethodSpec>().unwrap().partition(&block).unwrap(), None);
        assert!("pixel@1.5".parse::<MethodSpec>().unwrap().partition(&block).is_err());
        assert!("pixel/0".parse::<MethodSpec>().is_err());
        assert_eq!(slug("GRF 32² pixel 20%"), "grf-32-pixel-20");
        assert_eq!(slug("pixel@0.7/30"), "pixel@0.7-30");
        for name in ["quick", "decompose", "paper"] {
            Suite::builtin(name).unwrap().validate().unwrap();
        }
        let m: MethodSpec = "pixel:published".parse().unwrap();
        assert!(m.published && m.run_name() == "run-pixel-published");
        let mut bad = Suite::builtin("quick").unwrap();
        bad.cases[0].methods.push("krige:published".into());
        assert!(bad.validate().unwrap_err().to_string().contains("applies to learned methods"));
        let mut bad = Suite::builtin("quick").unwrap();
        bad.cases[0].methods.push("magic".into());
        assert!(bad.validate().unwrap_err().to_string().contains("unknown method"));
    }

    /// A suite asking for curves trains the learned methods with held-out scoring on the test
    /// fields (ratios to the GRF oracle) and writes one PNG and CSV per case and seed, with the
    /// published and the current recipe as curves and the baselines as lines.
    #[test]
    fn curve_suites_write_learning_curves_with_baseline_lines() {
        let dir = tempfile::tempdir().unwrap();
        let suite: Suite = toml::from_str(
            r#"
name = "t"
seeds = 1
steps = 10
ensemble = 2
batch = 4
curves = 5
[[cases]]
name = "rough"
kind = "grf"
size = 8
length_scale = 2.0
smoothness = 0.5
mask = "pixel:0.5"
train = 16
test = 4
methods = ["pixel", "pixel:published", "oracle", "harmonic"]
"#,
        )
        .unwrap();
        run(&suite, dir.path(), true, false).unwrap();
        let csv = std::fs::read_to_string(dir.path().join("curves-rough-seed-0.csv")).unwrap();
        assert!(dir.path().join("curves-rough-seed-0.png").exists());
        let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
        for m in ["pixel", "pixel:published"] {
            let steps: Vec<&str> = rows.iter().filter(|r| r[0] == m).map(|r| r[1]).collect();
            assert_eq!(steps, ["5", "10"], "{m}: a score every 5 steps");
            assert!(
                rows.iter().filter(|r| r[0] == m).all(|r| r[4].parse::<f64>().unwrap() > 0.0),
                "ratios to the oracle"
            );
        }
        for line in ["oracle", "harmonic"] {
            assert!(rows.iter().any(|r| r[0] == line && r[1].is_empty()), "{line} is a reference line");
        }
        let published =
            TrainConfig::load_run(&dir.path().join("rough/seed-0/run-pixel-published/config.toml")).unwrap();
        assert_eq!(published.denoiser, crate::method::precond::DenoiserConfig::legacy());
    }
}
