//! Resource guards: libtorch failures as errors, and memory estimates checked before work.

use crate::data::Dims;
use crate::model::UNetConfig;
use anyhow::{bail, Result};

/// Runs libtorch work, turning its C++ exceptions (which `tch` raises as panics) into errors
/// that say what failed, with a hint when memory ran out.
pub fn torch<T>(what: &str, f: impl FnOnce() -> T) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => Ok(v),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown libtorch failure".into());
            let first = msg.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
            if msg.contains("allocate") || msg.contains("out of memory") {
                bail!("{what}: out of memory ({first}); lower --batch, --chunk or --ensemble, or use a smaller model");
            }
            bail!("{what} failed: {first}")
        }
    }
}

pub use crate::memory::{available_bytes, check_fits};

/// A rough upper estimate of the activation memory of one field through the U-Net: every
/// residual block keeps about ten feature maps of its width, the attention keeps its
/// `heads × (H·W)²` map a few times. Training roughly doubles it (saved tensors + gradients).
pub fn unet_bytes_per_field(cfg: &UNetConfig, dims: Dims, training: bool) -> u64 {
    let mult = 1usize << (cfg.mults.len() - 1);
    let (mut h, mut w) = (dims.h.div_ceil(mult) * mult, dims.w.div_ceil(mult) * mult);
    let mut floats = 0u64;
    for &m in &cfg.mults {
        let ch = (cfg.channels * m) as u64;
        // Down and up blocks at this level (the up path has one more block, with skip inputs).
        floats += (2 * cfg.res_blocks as u64 + 2) * 10 * ch * (h * w) as u64;
        h /= 2;
        w /= 2;
    }
    let (h, w) = (h.max(1) * 2, w.max(1) * 2);
    if cfg.attention {
        floats += 3 * cfg.heads as u64 * ((h * w) as u64).pow(2);
    }
    // A trajectory runs its frames as rows; frame attention keeps `heads × T²` maps per site.
    let t = dims.t as u64;
    floats *= t;
    if cfg.space_time_for(dims.t) {
        floats += 3 * cfg.heads as u64 * t * t * (dims.h * dims.w) as u64;
    }
    let bytes = 4 * floats;
    if training {
        2 * bytes
    } else {
        bytes
    }
}

/// Largest inference batch (≤ `cap`) whose activations fit in half the available memory.
pub fn inference_batch(cfg: &UNetConfig, dims: Dims, cap: usize) -> Result<usize> {
    let per = unet_bytes_per_field(cfg, dims, false).max(1);
    let Some(avail) = available_bytes() else { return Ok(cap) };
    let fit = (avail / 2 / per) as usize;
    if fit == 0 {
        check_fits(
            &format!("one {} sample through the model", dims.describe()),
            per,
            "split the fields into tiles or use a smaller model",
        )?;
        return Ok(1);
    }
    Ok(fit.min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torch_failures_become_errors() {
        let e = torch("forward", || {
            tch::Tensor::zeros([2, 3], tch::kind::FLOAT_CPU).matmul(&tch::Tensor::zeros([4, 5], tch::kind::FLOAT_CPU))
        })
        .unwrap_err();
        assert!(e.to_string().contains("forward failed"), "{e}");
    }

    #[test]
    fn absurd_batches_are_refused_up_front() {
        let cfg = UNetConfig::default();
        let dims = Dims { t: 1, c: 1, h: 4096, w: 4096 };
        let bytes = 4096 * unet_bytes_per_field(&cfg, dims, true);
        let e = check_fits("training batch 4096", bytes, "lower --batch").unwrap_err();
        assert!(e.to_string().contains("lower --batch"), "{e}");
        assert!(unet_bytes_per_field(&cfg, Dims { t: 1, c: 1, h: 32, w: 32 }, false) < 64 << 20);
    }
}
