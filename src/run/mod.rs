//! Commands: train, impute, eval, demo. Each takes paths and settings and returns a summary;
//! the CLI only parses and prints.

pub use crate::model::resources;
pub use lacuna_core::{curves, eval, figure, lock, progress};

pub mod bench;
pub mod checkpoint;
pub mod context_choice;
pub mod demo;
pub mod impute;
pub mod interpolant;
pub mod masks;
pub mod optim;
pub mod perf;
pub mod score;
pub mod train;

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use tch::Device;

/// Files of a run directory.
pub struct RunDir(pub PathBuf);

impl RunDir {
    pub fn config(&self) -> PathBuf {
        self.0.join("config.toml")
    }
    /// Refuses `--resume` where no run was ever started.
    pub fn ensure_resumable(&self) -> Result<()> {
        if !self.config().exists() {
            bail!(
                "{}: no run to resume there (no config.toml); train into it without --resume first",
                self.0.display()
            );
        }
        Ok(())
    }
    pub fn norm(&self) -> PathBuf {
        self.0.join("norm.json")
    }
    /// The interpolant the run chose at its start and its fitted covariance
    /// (`denoiser.interpolant = "krige"` or `"auto"`; see `run::interpolant`).
    pub fn interpolant(&self) -> PathBuf {
        self.0.join("interpolant.json")
    }
    pub fn info(&self) -> PathBuf {
        self.0.join("run.json")
    }
    /// Weights used for inference (the EMA when enabled), plain names, loadable from PyTorch:
    /// those of the best held-out score when training scored, else the last.
    pub fn model(&self) -> PathBuf {
        self.0.join("model.safetensors")
    }
    /// The last weights (the EMA at the last checkpoint), whatever their score.
    pub fn last_model(&self) -> PathBuf {
        self.0.join("model-last.safetensors")
    }
    /// Everything needed to resume: weights, EMA, optimizer moments, loop state.
    pub fn checkpoint(&self) -> PathBuf {
        self.0.join("checkpoint.safetensors")
    }
    pub fn metrics(&self) -> PathBuf {
        self.0.join("metrics.jsonl")
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// What the run was trained on, checked by `impute` and `--resume`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RunInfo {
    pub lacuna_version: String,
    pub data: String,
    pub n_train: usize,
    pub n_val: usize,
    pub dims: crate::data::Dims,
    pub partition: String,
    /// Who made the run, from what, when (absent in runs made before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<crate::provenance::Provenance>,
}

/// Parses `cpu`, `cuda`, `cuda:N` or `auto` (CUDA when available).
/// The libtorch device for `d`, checking that a requested CUDA device exists before any work
/// starts.
pub fn open_device(d: &crate::config::Device) -> Result<Device> {
    use crate::config::Device as Spec;
    let dev = match *d {
        Spec::Cpu => Device::Cpu,
        Spec::Auto => Device::cuda_if_available(),
        Spec::Cuda(n) => {
            let count = tch::Cuda::device_count() as usize;
            if n >= count {
                bail!("device {d} requested but {count} CUDA device(s) are visible");
            }
            Device::Cuda(n)
        }
    };
    Ok(dev)
}

/// A per-purpose seed from the run seed, so every stream (step, epoch, validation) is
/// reproducible on its own and a resumed run draws exactly what the uninterrupted one would.
pub fn mix_seed(seed: u64, stream: u64, index: u64) -> u64 {
    // SplitMix64 finaliser over the combined words.
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
