//! Training configuration: defaults, TOML file, command-line overrides; saved in the run.

use crate::data::Dims;
use crate::method::partition::{Contexts, InTime};
use crate::method::{Partition, VpSchedule};
use crate::model::UNetConfig;
use anyhow::{ensure, Context, Result};
use std::path::Path;

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
        // Adam betas and clip as the official code; cosine decay suits a fixed step budget.
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
    /// Decay of the exponential moving average of the weights used for inference; 0 disables.
    pub ema_decay: f64,
    /// Share of the training file held out for the validation loss.
    pub val_fraction: f64,
    pub val_every: usize,
    pub checkpoint_every: usize,
    pub log_every: usize,
    /// `cpu`, `cuda`, `cuda:N` or `auto`.
    pub device: String,
    pub partition: Partition,
    /// Trajectories: contexts drawn once per site for all frames (`shared`) or per frame.
    pub context_in_time: InTime,
    pub model: UNetConfig,
    pub schedule: VpSchedule,
    pub optim: OptimConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 2000,
            batch: 16,
            seed: 0,
            time_power: 2.0,
            ema_decay: 0.999,
            val_fraction: 0.1,
            val_every: 250,
            checkpoint_every: 250,
            log_every: 50,
            device: "cpu".into(),
            partition: Partition::default(),
            context_in_time: InTime::default(),
            model: UNetConfig::default(),
            schedule: VpSchedule::default(),
            optim: OptimConfig::default(),
        }
    }
}

impl TrainConfig {
    pub fn load(path: &Path) -> Result<TrainConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read config", path.display()))?;
        let cfg: TrainConfig = toml::from_str(&text).with_context(|| format!("{}: invalid config", path.display()))?;
        cfg.validate().with_context(|| format!("{}: invalid config", path.display()))?;
        Ok(cfg)
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
        ensure!((0.0..1.0).contains(&self.ema_decay), "ema_decay must be in [0, 1)");
        ensure!((0.0..1.0).contains(&self.val_fraction), "val_fraction must be in [0, 1)");
        ensure!(
            self.val_every >= 1 && self.checkpoint_every >= 1 && self.log_every >= 1,
            "val_every, checkpoint_every and log_every must be at least 1"
        );
        ensure!(self.optim.lr > 0.0 && self.optim.min_lr >= 0.0, "lr must be positive");
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
        self.model.validate()?;
        crate::run::parse_device(&self.device)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
