//! Training configuration: defaults, TOML file, command-line overrides; saved in the run.

pub mod denoiser;
pub mod device;
pub mod network;
pub mod schedule;

pub use denoiser::{DenoiserConfig, FillKind, Interpolant, NoiseCond, Skip};
pub use device::Device;
pub use network::{Precision, UNetConfig};
pub use schedule::VpSchedule;

use crate::data::Dims;
use crate::partition::{Contexts, InTime, Partition};
use anyhow::{ensure, Context, Result};
use std::path::{Path, PathBuf};

/// Scoring the EMA weights while training (see `run::score`): the learning curve, the choice
/// of the kept weights and early stopping.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoreConfig {
    /// Score every this many steps (and at the last); 0 = never (the last weights are kept).
    pub every: usize,
    /// Fields scored (the first of the scoring set).
    pub fields: usize,
    /// K of the single-step ensemble.
    pub ensemble: usize,
    /// Without truth: what to hide, `context` (what the partition hides), a pattern or `other`.
    pub holdout: String,
    /// Held-out fields to score on; none = the validation share of the training file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<PathBuf>,
    /// The Bayes oracle's imputation of `data` (`lacuna data krige`): the curve reports ratios.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oracle: Option<PathBuf>,
    /// Stop after this many scores without improvement; 0 = never.
    pub patience: usize,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        ScoreConfig {
            every: 250,
            fields: 64,
            ensemble: 10,
            holdout: "context".into(),
            data: None,
            oracle: None,
            patience: 8,
        }
    }
}

/// How the learning rate changes over training.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// Linear warm-up, then cosine decay to `min_lr` at the last step.
    Cosine,
    /// Multiply by `plateau_factor` after `plateau_patience` validations without improvement.
    Plateau,
    Constant,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    /// Global gradient-norm clip; 0 disables it.
    pub grad_clip: f64,
    pub lr_schedule: LrSchedule,
    pub warmup: usize,
    pub min_lr: f64,
    pub plateau_factor: f64,
    pub plateau_patience: usize,
}

impl Default for OptimConfig {
    fn default() -> Self {
        // Adam rate, betas and clip as the official code (1.5e-3 was level with it in the
        // equal-time suite, docs/results.md §0); cosine decay suits a fixed step budget.
        OptimConfig {
            lr: 1e-3,
            beta1: 0.95,
            beta2: 0.999,
            weight_decay: 0.0,
            grad_clip: 1.0,
            lr_schedule: LrSchedule::Cosine,
            warmup: 100,
            min_lr: 1e-5,
            plateau_factor: 0.6,
            plateau_patience: 2,
        }
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub steps: usize,
    pub batch: usize,
    pub seed: u64,
    /// Training times are drawn as `t = t_eps + (1 − t_eps) U^p`; 1 = uniform (the paper). The
    /// default 2 spends more steps at low noise, where the single-step ensemble queries the model,
    /// and still about 29% of them above t = 0.5 for the multi-step sampler.
    pub time_power: f64,
    /// Share of each batch trained at t = t_eps exactly, where the single-step ensemble
    /// evaluates the network (the rest follows `time_power`).
    pub time_low_share: f64,
    /// Context draws per field in a batch (the batch holds batch / this many distinct fields).
    pub contexts_per_field: usize,
    /// Pixel partition: the share of the observation kept in each context of the single-step
    /// ensemble at inference (and scoring), when not the training `context_ratio`; 1 = the
    /// whole observation, 0 = the training ratio. A denser context than in training is still
    /// one the network has learned from (every ratio in (0, 1) reaches it), and it loses less
    /// information. Block partition: 1 = the whole observation (no block dropped at
    /// inference), any other value the training rule (`drop` more blocks per context).
    pub inference_context_ratio: f64,
    /// Stop after this many seconds of training (the learning-rate schedule then runs over
    /// the budget or the steps, whichever ends first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_budget: Option<f64>,
    /// Decay of the exponential moving average of the weights used for inference; 0 disables.
    pub ema_decay: f64,
    /// Share of the training file held out for the validation loss.
    pub val_fraction: f64,
    pub val_every: usize,
    pub checkpoint_every: usize,
    pub log_every: usize,
    /// `cpu`, `cuda`, `cuda:N` or `auto`.
    pub device: Device,
    pub partition: Partition,
    /// Trajectories: contexts drawn once per site for all frames (`shared`) or per frame.
    pub context_in_time: InTime,
    /// The fields are periodic in both space directions (a symmetry the user declares, e.g.
    /// a spectral simulation on a torus): the network pads circularly and the fill wraps.
    pub periodic: bool,
    /// Circular shifts under which the fields' law is invariant, declared by the user as
    /// `[rows, columns]`: each training sample (its values and masks together) is shifted by a
    /// random multiple of them; 0 = no shift in that direction. Needs `periodic`. `[1, 1]` for
    /// a stationary field on a torus; `[8, 1]` for Kolmogorov flow forced at wavenumber 4 on a
    /// 32-row grid (its forcing repeats every 8 rows).
    #[serde(skip_serializing_if = "no_shift")]
    pub shift_symmetry: [usize; 2],
    /// Inference under a declared `shift_symmetry`: each ensemble member's input is rolled by
    /// a random multiple of it and its prediction rolled back, so the K members also average
    /// over the shifts the network's strided layers are not equivariant to.
    pub inference_shifts: bool,
    /// Reflections of the grid under which the fields' law is invariant, declared by the user
    /// (see [`Reflections`]): each training sample is reflected by a random one, and at
    /// inference ensemble member k by the k-th (mod the group's size), its prediction reflected
    /// back (`impute --reflections` changes the inference group alone). Scalar fields only: a
    /// velocity component changes sign under a reflection.
    #[serde(skip_serializing_if = "Reflections::is_none")]
    pub reflections: Reflections,
    pub model: UNetConfig,
    pub denoiser: DenoiserConfig,
    pub schedule: VpSchedule,
    pub optim: OptimConfig,
    pub score: ScoreConfig,
}

/// Default share of each batch trained at t = t_eps (see `time_low_share`).
const TIME_LOW_SHARE: f64 = 0.8;

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 4000,
            batch: 16,
            seed: 0,
            time_power: 2.0,
            time_low_share: TIME_LOW_SHARE,
            contexts_per_field: 1,
            time_budget: None,
            inference_context_ratio: 1.0,
            ema_decay: 0.999,
            val_fraction: 0.1,
            val_every: 250,
            checkpoint_every: 250,
            log_every: 50,
            device: Device::Cpu,
            partition: Partition::default(),
            context_in_time: InTime::default(),
            periodic: false,
            shift_symmetry: [0, 0],
            inference_shifts: true,
            reflections: Reflections::None,
            model: UNetConfig::default(),
            denoiser: DenoiserConfig::default(),
            schedule: VpSchedule::default(),
            optim: OptimConfig::default(),
            score: ScoreConfig::default(),
        }
    }
}

/// A group of reflections of the grid, each a map of grid indices: `rows` is `i → −i`, `cols`
/// `j → −j` (on a periodic grid modulo its side, so about index 0; otherwise about the centre,
/// `i → H − 1 − i`), `transpose` swaps rows and columns (square grids).
///
/// ```text
/// rot180        = {id, rows∘cols}                   rotation by π: Kolmogorov flow forced by cos(k y)
/// axes          = {id, rows, cols, rows∘cols}       a law symmetric about both axes
/// dihedral      = axes ∪ transpose∘axes             an isotropic law (all 8 symmetries of the square)
/// shift-reflect = rot180 ∪ {−S_{p/2}∘cols, −S_{p/2}∘rows}
/// ```
///
/// `shift-reflect` is the symmetry group of Kolmogorov flow, `∂ω/∂t + u·∇ω = νΔω − αω −
/// k cos(k y)` on a torus with y along the rows: besides the rotation by π, the shift-reflect
/// `ω(x, y) → −ω(−x, y − π/k)` and its product with the rotation, `ω(x, y) → −ω(x, π/k − y)`
/// (a reflection flips the sign of u·∇ω, the half-period shift that of the forcing, and the
/// sign of ω restores both). `−` negates the values about the training data's mean (0 under
/// the symmetry, up to sampling), never the masks; `S_{p/2}` rolls the rows by half of `p`,
/// the declared row shift symmetry (the forcing's period), so this group needs `periodic` and
/// an even `shift_symmetry[0]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Reflections {
    #[default]
    None,
    Rot180,
    Axes,
    Dihedral,
    ShiftReflect,
}

/// One element of a [`Reflections`] group: flip rows, then columns, then transpose, then roll
/// the rows by `roll_rows` (`out[i] = in[i − roll_rows]`), then negate the values if `negate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reflection {
    pub rows: bool,
    pub cols: bool,
    pub transpose: bool,
    pub roll_rows: usize,
    pub negate: bool,
}

impl Reflection {
    /// Flips and a transpose only: no roll, no negation.
    pub const fn flip(rows: bool, cols: bool, transpose: bool) -> Reflection {
        Reflection { rows, cols, transpose, roll_rows: 0, negate: false }
    }
}

impl Reflections {
    fn is_none(&self) -> bool {
        *self == Reflections::None
    }

    /// Whether the group can act on fields declared `periodic` with `shift_symmetry`: only
    /// `shift-reflect` asks anything, a torus and an even row shift to halve.
    pub fn fits(self, periodic: bool, shift_symmetry: [usize; 2]) -> bool {
        self != Reflections::ShiftReflect || (periodic && shift_symmetry[0] >= 2 && shift_symmetry[0].is_multiple_of(2))
    }

    /// The group's elements, the identity first, for fields with the declared
    /// `shift_symmetry` (`shift-reflect` rolls by half its rows; see [`Reflections`]).
    pub fn elements(self, shift_symmetry: [usize; 2]) -> Vec<Reflection> {
        let r = Reflection::flip;
        let axes = [r(false, false, false), r(true, false, false), r(false, true, false), r(true, true, false)];
        let half = shift_symmetry[0] / 2;
        match self {
            Reflections::None => vec![axes[0]],
            Reflections::Rot180 => vec![axes[0], axes[3]],
            Reflections::Axes => axes.to_vec(),
            Reflections::Dihedral => axes.iter().flat_map(|&a| [a, Reflection { transpose: true, ..a }]).collect(),
            Reflections::ShiftReflect => vec![
                axes[0],
                axes[3],
                Reflection { roll_rows: half, negate: true, ..axes[2] },
                Reflection { roll_rows: half, negate: true, ..axes[1] },
            ],
        }
    }
}

fn no_shift(s: &[usize; 2]) -> bool {
    *s == [0, 0]
}

impl TrainConfig {
    /// A user's settings file: any key may be given, the rest take the defaults.
    pub fn load(path: &Path) -> Result<TrainConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read config", path.display()))?;
        let cfg: TrainConfig = toml::from_str(&text).with_context(|| format!("{}: invalid config", path.display()))?;
        cfg.validate().with_context(|| format!("{}: invalid config", path.display()))?;
        Ok(cfg)
    }

    /// A run's saved config. Runs saved before a setting existed trained without it, so a
    /// missing `[denoiser]` table means the published parameterisation and missing recipe
    /// keys (the network's `precision` among them) their old values, not today's defaults.
    pub fn load_run(path: &Path) -> Result<TrainConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the run's config", path.display()))?;
        let mut table: toml::Table =
            toml::from_str(&text).with_context(|| format!("{}: invalid config", path.display()))?;
        if !table.contains_key("denoiser") {
            let legacy = toml::Table::try_from(DenoiserConfig::legacy())?;
            table.insert("denoiser".into(), toml::Value::Table(legacy));
        }
        if let Some(toml::Value::Table(denoiser)) = table.get_mut("denoiser") {
            denoiser.entry("fill_kind").or_insert(toml::Value::String("blend".into()));
        }
        table.entry("time_low_share").or_insert(toml::Value::Float(0.0));
        table.entry("contexts_per_field").or_insert(toml::Value::Integer(1));
        table.entry("inference_context_ratio").or_insert(toml::Value::Float(0.0));
        table.entry("inference_shifts").or_insert(toml::Value::Boolean(false));
        if let toml::Value::Table(model) = table.entry("model").or_insert(toml::Value::Table(Default::default())) {
            model.entry("precision").or_insert(toml::Value::String("float32".into()));
        }
        if !table.contains_key("score") {
            let none = ScoreConfig { every: 0, ..Default::default() };
            table.insert("score".into(), toml::Value::Table(toml::Table::try_from(none)?));
        }
        let cfg: TrainConfig =
            toml::Value::Table(table).try_into().with_context(|| format!("{}: invalid config", path.display()))?;
        cfg.validate().with_context(|| format!("{}: invalid config", path.display()))?;
        Ok(cfg)
    }

    /// The published recipe (the paper's parameterisation and this project's defaults before
    /// the learning-efficiency work): raw network, `1000·t`, pixel contexts at 0.7 in training
    /// and at inference, no held-out scoring, float32 arithmetic.
    pub fn published() -> TrainConfig {
        TrainConfig {
            steps: 2000,
            denoiser: DenoiserConfig::legacy(),
            partition: Partition::Pixel { context_ratio: 0.7, query_ratio: None },
            inference_context_ratio: 0.0,
            time_low_share: 0.0,
            contexts_per_field: 1,
            score: ScoreConfig { every: 0, ..Default::default() },
            optim: OptimConfig { lr: 1e-3, ..Default::default() },
            model: UNetConfig { precision: Precision::Float32, ..Default::default() },
            ..TrainConfig::default()
        }
    }

    /// The config inference runs with: the pixel partition's context ratio replaced by
    /// `inference_context_ratio` unless that is 0; the block partition drops no block when
    /// that is 1 (its contexts are then the whole observation).
    pub fn for_inference(&self) -> TrainConfig {
        let mut cfg = self.clone();
        match &mut cfg.partition {
            Partition::Pixel { context_ratio, .. } if self.inference_context_ratio > 0.0 => {
                *context_ratio = self.inference_context_ratio;
            }
            Partition::Block { drop, .. } if self.inference_context_ratio >= 1.0 => *drop = 0,
            _ => {}
        }
        cfg
    }

    /// The shift symmetry inference rolls ensemble members by (`[0, 0]`: none).
    pub fn inference_shift(&self) -> [usize; 2] {
        if self.inference_shifts {
            self.shift_symmetry
        } else {
            [0, 0]
        }
    }

    /// `reflections = "shift-reflect"` rolls by half the declared row shift symmetry, which
    /// must then exist, be even, and act on a periodic grid.
    pub fn check_shift_reflect(&self) -> Result<()> {
        ensure!(
            self.reflections.fits(self.periodic, self.shift_symmetry),
            "reflections = \"shift-reflect\" shifts by half the forcing's period: it needs periodic = true and an even row shift symmetry (shift_symmetry = [8, 1] for forcing at wavenumber 4 on 32 rows); got periodic = {}, shift_symmetry = {:?}",
            self.periodic,
            self.shift_symmetry
        );
        Ok(())
    }

    /// Refuses fields of `dims` the declared symmetries cannot act on: shifts that do not
    /// divide the sides, a transpose of a non-square grid, and sides a periodic network's
    /// strides do not divide (it would pad them with zeros, which breaks the torus).
    pub fn check_grid(&self, dims: Dims) -> Result<()> {
        for (step, side, name) in
            [(self.shift_symmetry[0], dims.h, "rows"), (self.shift_symmetry[1], dims.w, "columns")]
        {
            ensure!(
                step == 0 || side.is_multiple_of(step),
                "shift_symmetry: a shift by {step} {name} does not divide the grid's {side} {name}"
            );
        }
        ensure!(
            dims.h == dims.w || !self.reflections.elements(self.shift_symmetry).iter().any(|g| g.transpose),
            "reflections = \"dihedral\" transposes the grid, which needs square fields; these are {}×{}",
            dims.h,
            dims.w
        );
        if self.periodic {
            let mult = 1usize << (self.model.mults.len() - 1);
            ensure!(
                dims.h.is_multiple_of(mult) && dims.w.is_multiple_of(mult),
                "periodic fields need sides that are multiples of {mult} (the network's {} levels); these are {}×{}",
                self.model.mults.len(),
                dims.h,
                dims.w
            );
        }
        Ok(())
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        crate::atomic::write_bytes(path, toml::to_string_pretty(self)?.as_bytes())
    }

    /// The partition with its rule in time, for samples of `dims`.
    pub fn contexts(&self, dims: Dims) -> Contexts<'_> {
        Contexts { partition: &self.partition, dims, in_time: self.context_in_time }
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(self.steps >= 1, "steps must be at least 1");
        ensure!(self.batch >= 1, "batch must be at least 1");
        ensure!(self.time_power > 0.0 && self.time_power.is_finite(), "time_power must be positive");
        ensure!((0.0..=1.0).contains(&self.time_low_share), "time_low_share must be in [0, 1]");
        ensure!(
            self.contexts_per_field >= 1 && self.batch.is_multiple_of(self.contexts_per_field),
            "contexts_per_field must be at least 1 and divide the batch ({})",
            self.batch
        );
        if let Some(b) = self.time_budget {
            ensure!(b > 0.0 && b.is_finite(), "time_budget must be a positive number of seconds");
        }
        let sc = &self.score;
        ensure!(sc.fields >= 1 && sc.ensemble >= 1, "score.fields and score.ensemble must be at least 1");
        sc.holdout.parse::<crate::data::holdout::Hide>().context("score.holdout")?;
        ensure!(
            sc.oracle.is_none() || sc.data.is_some(),
            "score.oracle needs score.data (the oracle completes those fields)"
        );
        self.denoiser.validate()?;
        ensure!(
            (0.0..=1.0).contains(&self.inference_context_ratio),
            "inference_context_ratio must be in (0, 1], or 0 for the training ratio; got {}",
            self.inference_context_ratio
        );
        ensure!((0.0..1.0).contains(&self.ema_decay), "ema_decay must be in [0, 1)");
        ensure!((0.0..1.0).contains(&self.val_fraction), "val_fraction must be in [0, 1)");
        ensure!(
            self.val_every >= 1 && self.checkpoint_every >= 1 && self.log_every >= 1,
            "val_every, checkpoint_every and log_every must be at least 1"
        );
        let o = &self.optim;
        ensure!(o.lr > 0.0 && o.lr.is_finite() && o.min_lr >= 0.0, "lr must be positive and min_lr at least 0");
        ensure!(
            o.grad_clip >= 0.0 && o.grad_clip.is_finite(),
            "optim.grad_clip must be ≥ 0 (0 = no clipping), got {}",
            o.grad_clip
        );
        ensure!(
            o.weight_decay >= 0.0 && o.weight_decay.is_finite(),
            "optim.weight_decay must be ≥ 0, got {}",
            o.weight_decay
        );
        ensure!(
            (0.0..1.0).contains(&self.optim.beta1) && (0.0..1.0).contains(&self.optim.beta2),
            "Adam betas must be in [0, 1)"
        );
        let s = &self.schedule;
        ensure!(
            s.t_eps > 0.0 && s.t_eps < 1.0 && s.beta_min >= 0.0 && s.beta_max > s.beta_min,
            "schedule needs 0 < t_eps < 1 and 0 ≤ beta_min < beta_max"
        );
        self.partition.validate()?;
        ensure!(
            !(self.context_in_time == InTime::PerFrame && matches!(self.partition, Partition::Prior { .. })),
            "context_in_time = \"per-frame\" applies to the Work I partitions; the mask prior draws whole site masks"
        );
        ensure!(
            self.periodic || self.shift_symmetry == [0, 0],
            "shift_symmetry needs periodic = true (a circular shift is a symmetry of periodic fields only)"
        );
        self.check_shift_reflect()?;
        self.model.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_symmetry_needs_periodic_fields_it_divides() {
        let mut c = TrainConfig { shift_symmetry: [8, 1], ..TrainConfig::default() };
        assert!(c.validate().unwrap_err().to_string().contains("needs periodic"));
        c.periodic = true;
        c.validate().unwrap();
        let dims = |h, w| Dims { t: 1, c: 1, h, w };
        c.check_grid(dims(32, 32)).unwrap();
        let e = c.check_grid(dims(36, 36)).unwrap_err().to_string();
        assert!(e.contains("8 rows"), "{e}");
        // Saved only when declared, so older runs' configs read back unchanged.
        assert!(!toml::to_string(&TrainConfig::default()).unwrap().contains("shift_symmetry"));
        // Inference rolls members by the declared shifts unless told not to.
        assert_eq!(c.inference_shift(), [8, 1]);
        c.inference_shifts = false;
        assert_eq!(c.inference_shift(), [0, 0]);
    }

    /// Reflections are saved only when declared, read back by name, and a transpose is
    /// refused on a grid that is not square.
    #[test]
    fn reflections_round_trip_and_transpose_needs_a_square_grid() {
        assert!(!toml::to_string(&TrainConfig::default()).unwrap().contains("reflections"));
        let c: TrainConfig = toml::from_str("reflections = \"rot180\"").unwrap();
        assert_eq!(c.reflections, Reflections::Rot180);
        assert!(toml::to_string(&c).unwrap().contains("reflections = \"rot180\""));
        assert!(toml::from_str::<TrainConfig>("reflections = \"mirror\"").is_err());
        let dims = |h, w| Dims { t: 1, c: 1, h, w };
        c.check_grid(dims(32, 16)).unwrap();
        let d = TrainConfig { reflections: Reflections::Dihedral, ..TrainConfig::default() };
        d.check_grid(dims(32, 32)).unwrap();
        let e = d.check_grid(dims(32, 16)).unwrap_err().to_string();
        assert!(e.contains("square"), "{e}");
    }

    /// `shift-reflect` is read by its kebab-case name, rolls by half the declared row shift,
    /// and is refused without a periodic grid and an even row shift.
    #[test]
    fn shift_reflect_needs_an_even_row_shift_on_a_torus() {
        let c: TrainConfig =
            toml::from_str("reflections = \"shift-reflect\"\nperiodic = true\nshift_symmetry = [8, 1]").unwrap();
        assert_eq!(c.reflections, Reflections::ShiftReflect);
        c.validate().unwrap();
        assert!(toml::to_string(&c).unwrap().contains("reflections = \"shift-reflect\""));
        let g = c.reflections.elements(c.shift_symmetry);
        assert_eq!(g.len(), 4);
        assert_eq!(g.iter().filter(|e| e.negate && e.roll_rows == 4).count(), 2);
        assert!(g[..2].iter().all(|e| !e.negate && e.roll_rows == 0));
        for (periodic, shift) in [(false, [0, 0]), (true, [0, 1]), (true, [3, 1])] {
            let bad = TrainConfig { periodic, shift_symmetry: shift, ..c.clone() };
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains("shift-reflect"), "{e}");
        }
    }

    /// Block contexts at inference are the whole observation at ratio 1, and drop a block as
    /// in training otherwise; a pixel ratio of 1 keeps every observed site too.
    #[test]
    fn inference_contexts_at_ratio_one_are_the_whole_observation() {
        use crate::data::Dims;
        use rand::SeedableRng;
        let dims = Dims { c: 1, h: 9, w: 9, t: 1 };
        let mut m = vec![1u8; 81];
        m[..3].iter_mut().for_each(|v| *v = 0); // a few missing sites in the first block
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for (partition, ratio, whole) in [
            (Partition::Block { grid: 3, drop: 1 }, 1.0, true),
            (Partition::Block { grid: 3, drop: 1 }, 0.0, false),
            (Partition::Block { grid: 3, drop: 1 }, 0.5, false),
            (Partition::Pixel { context_ratio: 0.7, query_ratio: None }, 1.0, true),
            (Partition::Pixel { context_ratio: 0.7, query_ratio: None }, 0.0, false),
        ] {
            let c =
                TrainConfig { partition: partition.clone(), inference_context_ratio: ratio, ..TrainConfig::default() };
            let inference = c.for_inference();
            assert_eq!(c.partition, partition, "the training config is left alone");
            let context = inference.partition.split(&m, dims, &mut rng).unwrap().context;
            assert!(context.iter().zip(&m).all(|(c, m)| c <= m), "a context lies inside the observation");
            assert_eq!(context == m, whole, "{partition:?} at ratio {ratio}");
        }
    }

    /// A run saved before `inference_shifts` existed imputes as it did then: without shifts.
    #[test]
    fn runs_saved_before_inference_shifts_keep_plain_members() {
        let c = TrainConfig { periodic: true, shift_symmetry: [1, 1], ..TrainConfig::default() };
        let text = toml::to_string(&c).unwrap().replace("inference_shifts = true\n", "");
        assert!(!text.contains("inference_shifts"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        let old = TrainConfig::load_run(&path).unwrap();
        assert_eq!(old.inference_shift(), [0, 0]);
        assert_eq!(c.inference_shift(), [1, 1]);
    }

    /// A run saved before `model.precision` existed trained in float32, and keeps doing so
    /// wherever it runs; a new run says `auto`, the published recipe float32.
    #[test]
    fn runs_saved_before_precision_keep_float32() {
        let c = TrainConfig::default();
        assert_eq!(c.model.precision, Precision::Auto);
        assert_eq!(TrainConfig::published().model.precision, Precision::Float32);
        let text = toml::to_string(&c).unwrap().replace("precision = \"auto\"\n", "");
        assert!(!text.contains("precision"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(TrainConfig::load_run(&path).unwrap().model.precision, Precision::Float32);
        // Without a [model] table at all, too.
        let bare = dir.path().join("bare.toml");
        std::fs::write(&bare, "steps = 5\n").unwrap();
        assert_eq!(TrainConfig::load_run(&bare).unwrap().model.precision, Precision::Float32);
        std::fs::write(&path, toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(TrainConfig::load_run(&path).unwrap().model.precision, Precision::Auto);
    }

    /// A run saved before `denoiser.fill_kind` existed filled with the blend, and keeps doing
    /// so; a new run, and a config file that does not name it, get the thin-plate fill.
    #[test]
    fn runs_saved_before_fill_kind_keep_the_blend() {
        let c = TrainConfig::default();
        assert_eq!(c.denoiser.fill_kind, FillKind::ThinPlate);
        let text = toml::to_string(&c).unwrap().replace("fill_kind = \"thin-plate\"\n", "");
        assert!(!text.contains("fill_kind"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(TrainConfig::load_run(&path).unwrap().denoiser.fill_kind, FillKind::Blend);
        assert_eq!(TrainConfig::load(&path).unwrap().denoiser.fill_kind, FillKind::ThinPlate);
        let partial = dir.path().join("partial.toml");
        std::fs::write(&partial, "[denoiser]\nskip = \"none\"\n").unwrap();
        assert_eq!(TrainConfig::load(&partial).unwrap().denoiser.fill_kind, FillKind::ThinPlate);
        std::fs::write(&path, toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(TrainConfig::load_run(&path).unwrap().denoiser.fill_kind, FillKind::ThinPlate);
    }

    #[test]
    fn toml_round_trip_and_partial_files() {
        let c = TrainConfig::default();
        let text = toml::to_string_pretty(&c).unwrap();
        assert_eq!(toml::from_str::<TrainConfig>(&text).unwrap(), c);
        let partial: TrainConfig =
            toml::from_str("steps = 5\n[partition]\nkind = \"block\"\ngrid = 3\ndrop = 1\n").unwrap();
        assert_eq!(partial.steps, 5);
        assert_eq!(partial.partition, Partition::Block { grid: 3, drop: 1 });
        assert!(toml::from_str::<TrainConfig>("stepz = 5").is_err());
    }
}
