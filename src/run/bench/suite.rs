//! A bench suite as declared (TOML): its cases (data, pattern, methods) and the method names'
//! mini-language, checked before any work starts.

use super::*;

/// A suite: cases run with every seed in `0..seeds`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub name: String,
    pub seeds: usize,
    /// Training steps of every learned method (a cap when `minutes` is set).
    pub steps: usize,
    /// A training-time budget for every learned method, in minutes: each trains until its
    /// `steps` or this much time, whichever comes first, its learning-rate schedule running
    /// over whichever is nearer its end. Unset: steps alone. A budget in time states the same
    /// effort on any machine; the records say how many steps it bought.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes: Option<f64>,
    /// K of the single-step ensemble.
    pub ensemble: usize,
    /// Work II methods (`prior`, `intersect`): fitting steps of the mask prior, one prior per
    /// case and seed, fitted on the training masks and shared by both methods.
    #[serde(default = "default_prior_steps")]
    pub prior_steps: usize,
    /// Steps of the mask prior's sampler (draws for contexts and for the guidance rule);
    /// unset: the prior's default. Masks with long-range structure (per-tile land under real
    /// clouds) need more: the draws of a short sampler are less correlated than the masks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_sample_steps: Option<usize>,
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
    /// Guided draws per training mask of the guided prior methods; unset: the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guided_draws: Option<usize>,
    pub cases: Vec<Case>,
}

fn is_false(v: &bool) -> bool {
    !*v
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

fn default_prior_steps() -> usize {
    crate::run::masks::PriorConfig::default().steps
}

/// Where a case's fields come from: one of the generators, or a file of real data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaseKind {
    Grf,
    Kolmogorov,
    ShallowWater,
    Advection,
    /// Real data (`data`): held out, or scored against `test_data`'s truth.
    File,
}

impl std::fmt::Display for CaseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CaseKind::Grf => "grf",
            CaseKind::Kolmogorov => "kolmogorov",
            CaseKind::ShallowWater => "shallow-water",
            CaseKind::Advection => "advection",
            CaseKind::File => "file",
        })
    }
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub kind: CaseKind,
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
    /// Periodic cases: the reflections the fields' law is invariant under (training and
    /// inference `reflections`, e.g. `shift-reflect` for Kolmogorov flow), given to the same
    /// methods as `periodic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reflections: Option<crate::config::Reflections>,
    /// Training steps of this case's learned methods, when not the suite's (a larger grid
    /// costs more per step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// This case's training-time budget in minutes, when not the suite's `minutes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes: Option<f64>,
}

fn one() -> usize {
    1
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

impl Case {
    /// The generator of a generated case (trajectories when `frames` > 1).
    pub(super) fn generator(&self) -> Result<Generator> {
        let mut snapshots = generator(self.kind, self.size)?;
        ensure!(
            self.kind == CaseKind::Grf || (self.length_scale.is_none() && self.smoothness.is_none()),
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
        ensure!(self.interval.is_none() || self.kind == CaseKind::Kolmogorov, "`interval` applies to kolmogorov cases");
        Generator::trajectories(snapshots, self.frames, self.stride)
    }

    /// The GRF of a grf case (its covariance drives `oracle` and `exact-` methods too).
    pub(super) fn grf_spec(&self) -> GrfSpec {
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
    pub(super) fn load_file(&self) -> Result<FieldSet> {
        let data = self.data.as_deref().with_context(|| format!("case {:?}: a file case needs `data`", self.name))?;
        if data.ends_with(".nc") || data.ends_with(".cdf") {
            let obs: crate::data::netcdf::Observable = self.observable.as_deref().unwrap_or("all").parse()?;
            Ok(crate::data::netcdf::import(Path::new(data), &self.vars, &obs)?.set)
        } else {
            FieldSet::load(Path::new(data), Truth::Never)
        }
    }

    /// The pattern the partitions are built for (the block grid of block masks).
    pub(super) fn pattern(&self) -> Result<Pattern> {
        if self.kind == CaseKind::File && self.mask == "given" {
            ensure!(self.test_data.is_some(), "case {:?}: mask \"given\" needs `test_data`", self.name);
            return Ok(Pattern::Pixel { observed: 0.5 });
        }
        if self.kind == CaseKind::File {
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
pub(super) const LEARNED: [&str; 7] = ["pixel", "prior", "intersect", "block", "missdiff", "ambient", "oracle"];

/// Every bench method name, for error messages.
pub(super) fn method_names() -> String {
    let baselines = <Baseline as clap::ValueEnum>::value_variants()
        .iter()
        .filter_map(|b| clap::ValueEnum::to_possible_value(b).map(|v| v.get_name().to_string()));
    let learned = LEARNED.iter().map(|m| m.to_string());
    let all: Vec<String> = learned.chain(baselines).collect();
    format!("{} (the partitions also as exact-NAME on GRFs, and NAME@PARAM/K)", all.join(", "))
}

impl Suite {
    /// The built-in suites, compiled in from `suites/{quick,decompose,paper}.toml`: `quick`
    /// (under 30 minutes on 2 cores), `decompose` (information gap against model error on
    /// GRFs) and `paper` (Tables 1–2 of the paper on our generated data; hours).
    pub fn builtin(name: &str) -> Result<Suite> {
        let text = match name {
            "quick" => include_str!("../../../suites/quick.toml"),
            "decompose" => include_str!("../../../suites/decompose.toml"),
            "paper" => include_str!("../../../suites/paper.toml"),
            _ => bail!(
                "unknown suite {name:?}; the built-in suites are quick, decompose and paper (or pass a TOML file)"
            ),
        };
        toml::from_str(text).with_context(|| format!("the built-in suite {name}"))
    }

    /// The training-time budget of `case`'s learned methods, minutes: its own or the suite's.
    pub fn minutes(&self, case: &Case) -> Option<f64> {
        case.minutes.or(self.minutes)
    }

    /// Checks every case and method before any work starts.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.seeds >= 1 && self.steps >= 1 && self.ensemble >= 1, "a suite needs seeds, steps and K ≥ 1");
        ensure!(self.guided_draws != Some(0), "guided_draws must be at least 1");
        let positive = |m: Option<f64>| m.is_none_or(|m| m.is_finite() && m > 0.0);
        ensure!(positive(self.minutes), "minutes must be a positive number");
        for case in &self.cases {
            ensure!(case.steps != Some(0), "case {:?}: steps must be at least 1", case.name);
            ensure!(positive(case.minutes), "case {:?}: minutes must be a positive number", case.name);
        }
        for case in &self.cases {
            let pattern = case.pattern().with_context(|| format!("case {:?}", case.name))?;
            if case.kind == CaseKind::File {
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
                    case.kind == CaseKind::Grf || !(spec.name.starts_with("exact-") || spec.name == "oracle"),
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

pub(super) fn generator(kind: CaseKind, size: usize) -> Result<Generator> {
    Ok(match kind {
        CaseKind::Grf => Generator::Grf(GrfSpec::new(size)),
        CaseKind::Kolmogorov => Generator::Kolmogorov {
            spec: KolmogorovSpec { size, resolution: 2 * size, ..Default::default() },
            per_run: 20,
        },
        CaseKind::ShallowWater => Generator::ShallowWater(ShallowWaterSpec { size, ..Default::default() }),
        CaseKind::Advection => Generator::Advection(AdvectionSpec { size, ..Default::default() }),
        CaseKind::File => bail!("a file case has no generator (its fields are `data`)"),
    })
}

/// A file-name-safe form of a label: lower-case alphanumerics, '.', '@', single dashes.
pub(super) fn slug(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '@' { c.to_ascii_lowercase() } else { '-' })
        .collect();
    mapped.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-")
}

/// A method of a suite: `NAME[@P][/K][:OPTION...]`. P is the partition parameter (pixel:
/// context ratio, block: blocks dropped, ambient: share kept, prior: ρ), K the ensemble size
/// (default: the suite's); options: on trajectories `:snapshot` trains the per-frame network
/// and `:per-frame` draws contexts per frame; `:published` trains the published recipe; on
/// `prior`, `:anchors` and `:anchors-missing` choose the guidance loss; `:fill`, `:krige` and
/// `:auto-interpolant` choose the denoiser's interpolant (`denoiser.interpolant`) over the
/// default's.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodSpec {
    pub name: String,
    pub param: Option<f64>,
    pub k: Option<usize>,
    pub snapshot: bool,
    pub per_frame: bool,
    /// Train with the published recipe (`TrainConfig::published`) instead of today's defaults.
    pub published: bool,
    /// The guided prior partition's loss, when not the default.
    pub guidance_loss: Option<GuidanceLoss>,
    /// `prior:guided`: guide whatever the unguided context share (`guide_below = 1`).
    pub always_guide: bool,
    /// The denoiser's interpolant, when not the default.
    pub interpolant: Option<Interpolant>,
}

impl std::str::FromStr for MethodSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<MethodSpec> {
        let mut parts = s.split(':');
        let head = parts.next().unwrap_or_default();
        let (mut snapshot, mut per_frame, mut published, mut guidance_loss) = (false, false, false, None);
        let (mut always_guide, mut interpolant) = (false, None);
        for option in parts {
            match option {
                "fill" => interpolant = Some(Interpolant::Fill),
                "krige" => interpolant = Some(Interpolant::Krige),
                "auto-interpolant" => interpolant = Some(Interpolant::Auto),
                "guided" => always_guide = true,
                "snapshot" => snapshot = true,
                "per-frame" => per_frame = true,
                "published" => published = true,
                "anchors" => guidance_loss = Some(GuidanceLoss::Anchors),
                "anchors-missing" => guidance_loss = Some(GuidanceLoss::AnchorsMissing),
                _ => bail!(
                    "method {s:?}: unknown option {option:?} (options: snapshot, per-frame, published, anchors, anchors-missing, guided, fill, krige, auto-interpolant)"
                ),
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
        ensure!(
            (guidance_loss.is_none() && !always_guide) || name == "prior",
            "method {s:?}: :anchors, :anchors-missing and :guided apply to `prior`"
        );
        ensure!(
            interpolant.is_none() || !published,
            "method {s:?}: :published has no interpolant (the raw network); drop :fill / :krige"
        );
        Ok(MethodSpec {
            name: name.to_string(),
            param,
            k,
            snapshot,
            per_frame,
            published,
            guidance_loss,
            always_guide,
            interpolant,
        })
    }
}

impl MethodSpec {
    /// The training partition of a learned (or `exact-`) method, with its parameter.
    pub(super) fn partition(&self, pattern: &Pattern) -> Result<Option<Partition>> {
        let base = self.name.strip_prefix("exact-").unwrap_or(&self.name);
        let p = self.param;
        let Some(kind) = PartitionKind::parse(base) else { return Ok(None) };
        // The prior directory is filled in by `run_method` (one per case and seed).
        let mut part = match (kind.with_defaults(PathBuf::new()), p) {
            (Partition::Pixel { query_ratio, .. }, Some(r)) => Partition::Pixel { context_ratio: r, query_ratio },
            (Partition::Block { drop, .. }, p) => Partition::Block {
                grid: match pattern {
                    Pattern::Block { grid, .. } => *grid,
                    _ => 3,
                },
                drop: p.map_or(drop, |d| d.round() as usize),
            },
            (Partition::Ambient { .. }, Some(keep)) => Partition::Ambient { keep },
            (default, _) => default,
        };
        if let Partition::Prior { rho, guidance_loss, guide_below, .. } = &mut part {
            // The parameter is ρ of the guided partition (`intersect` has none).
            if let (Some(_), Some(r)) = (*rho, p) {
                *rho = Some(r);
            }
            if let Some(loss) = self.guidance_loss {
                *guidance_loss = loss;
            }
            if self.always_guide {
                *guide_below = 1.0;
            }
        }
        part.validate().with_context(|| format!("method {}", self.name))?;
        Ok(Some(part))
    }

    /// The run directory name: methods that differ only in K share one trained model.
    pub(super) fn run_name(&self) -> String {
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
        match self.guidance_loss {
            Some(GuidanceLoss::Anchors) => name += "-anchors",
            Some(GuidanceLoss::AnchorsMissing) => name += "-anchors-missing",
            Some(GuidanceLoss::All) | None => {}
        }
        if self.always_guide {
            name += "-guided";
        }
        match self.interpolant {
            Some(Interpolant::Fill) => name += "-fill",
            Some(Interpolant::Krige) => name += "-krige",
            Some(Interpolant::Auto) => name += "-auto-interpolant",
            None => {}
        }
        name
    }
}
