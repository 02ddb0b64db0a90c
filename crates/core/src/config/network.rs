//! The U-Net's size (`[model]` in a run's config); the engine's `model::unet` builds it.

use anyhow::{ensure, Result};

/// Size of the network.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UNetConfig {
    /// Channels at the first level.
    pub channels: i64,
    /// Channel multiplier per level; the number of levels is its length.
    pub mults: Vec<i64>,
    /// Residual blocks per level.
    pub res_blocks: usize,
    /// Self-attention at the lowest resolution.
    pub attention: bool,
    pub heads: i64,
    /// Attention over frames (the space-time network); unset: on for trajectories, off for
    /// snapshots. `false` on trajectories gives the snapshot model applied per frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub space_time: Option<bool>,
    /// Frame offsets beyond this share one learned bias in the frame attention.
    pub max_frame_offset: i64,
    /// The arithmetic of the network's forward pass (the weights, the optimiser and everything
    /// outside the network stay in float32).
    pub precision: Precision,
}

/// The arithmetic of the network's forward pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// bfloat16 on a CPU with AMX-BF16 matrix units, where it made training steps 1.6× faster
    /// at the same accuracy per step (docs/results.md §0, "Mixed precision"); float32
    /// elsewhere (on CPUs without AMX and on GPUs bfloat16 has not been measured: ask for it).
    #[default]
    Auto,
    /// Every op in float32.
    Float32,
    /// Mixed: libtorch's autocast runs convolutions, linear layers and matrix products in
    /// bfloat16 on float32 master weights, the ops between them in their inputs' precision
    /// (accumulating in float32); the output returns to float32, and the parameterisation,
    /// the loss and the optimiser stay there. Fast where the CPU has bfloat16 matrix units
    /// (AMX, AVX-512 BF16) or on a GPU; slower than float32 on a CPU without them.
    Bfloat16,
}

impl Default for UNetConfig {
    fn default() -> Self {
        UNetConfig {
            channels: 32,
            mults: vec![1, 2, 2],
            res_blocks: 1,
            attention: true,
            heads: 2,
            space_time: None,
            max_frame_offset: 32,
            precision: Precision::Auto,
        }
    }
}

impl UNetConfig {
    /// Whether a network for samples of `frames` frames attends over frames.
    pub fn space_time_for(&self, frames: usize) -> bool {
        self.space_time.unwrap_or(frames > 1)
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(self.channels >= 4, "model.channels must be at least 4");
        ensure!(self.max_frame_offset >= 1, "model.max_frame_offset must be at least 1");
        ensure!(
            !self.mults.is_empty() && self.mults.iter().all(|&m| m >= 1),
            "model.mults must be a non-empty list of positive integers"
        );
        ensure!(self.res_blocks >= 1, "model.res_blocks must be at least 1");
        ensure!(
            self.heads >= 1 && self.mults.iter().all(|m| self.channels * m % self.heads == 0),
            "model.heads must divide the channels of every level"
        );
        Ok(())
    }
}
