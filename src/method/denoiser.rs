//! The denoiser seen by the method layer: `u_φ(t, M_ctx ⊙ u_t, M_ctx) ≈ E[u0 | context]`.
//!
//! A trait so the samplers and the theory tests run on an analytic denoiser (the exact
//! conditional mean of a Gaussian field) as well as on a trained network.

use crate::data::grf::{self, GrfSpec};
use crate::data::Dims;
use crate::method::schedule::VpSchedule;
use anyhow::Result;
use tch::{Device, Kind, Tensor};

pub trait Denoiser {
    /// Predicts clean fields `[B, C, H, W]` from times `t` `[B]`, context values
    /// `M_ctx ⊙ u_t` and the context mask `M_ctx` (both `[B, C, H, W]`, float).
    fn denoise(&self, t: &Tensor, context: &Tensor, context_mask: &Tensor) -> Result<Tensor>;

    /// Largest batch to send in one call.
    fn max_batch(&self) -> usize {
        64
    }

    fn device(&self) -> Device {
        Device::Cpu
    }
}

/// Exact `E[u0 | M_ctx ⊙ (α_t u0 + σ_t ε)]` for a zero-mean periodic Gaussian random field
/// (one channel): Gaussian conditioning with observation noise σ_t/α_t (see [`grf::condition`]).
pub struct GaussianDenoiser {
    pub spec: GrfSpec,
    pub schedule: VpSchedule,
    table: Vec<f64>,
}

impl GaussianDenoiser {
    pub fn new(spec: GrfSpec, schedule: VpSchedule) -> GaussianDenoiser {
        let table = spec.covariance();
        GaussianDenoiser { spec, schedule, table }
    }

    /// The posterior mean and variance given exact values at `observed` (kriging: the Bayes oracle).
    pub fn krige(&self, values: &[f32], observed: &[usize]) -> Result<(Vec<f64>, Vec<f64>)> {
        let y: Vec<f64> = observed.iter().map(|&i| values[i] as f64).collect();
        let d = self.spec.size * self.spec.size;
        grf::condition(|i, j| self.spec.cov_at(&self.table, i, j), d, observed, &y, 1.0, 0.0)
    }
}

impl Denoiser for GaussianDenoiser {
    fn denoise(&self, t: &Tensor, context: &Tensor, context_mask: &Tensor) -> Result<Tensor> {
        let shape = context.size();
        let d = (self.spec.size * self.spec.size) as i64;
        anyhow::ensure!(
            shape.len() == 4 && shape[1] == 1 && shape[2] * shape[3] == d,
            "GaussianDenoiser: fields must be [B, 1, {0}, {0}]",
            self.spec.size
        );
        let ts: Vec<f32> = Vec::try_from(t.to_kind(Kind::Float))?;
        let vals: Vec<f32> = Vec::try_from(context.to_kind(Kind::Float).flatten(0, -1))?;
        let mask: Vec<f32> = Vec::try_from(context_mask.to_kind(Kind::Float).flatten(0, -1))?;
        let d = d as usize;
        let mut out = Vec::with_capacity(vals.len());
        for (b, &tb) in ts.iter().enumerate() {
            let (a, s) = (self.schedule.alpha(tb as f64), self.schedule.sigma(tb as f64));
            let obs: Vec<usize> = (0..d).filter(|&i| mask[b * d + i] > 0.5).collect();
            let y: Vec<f64> = obs.iter().map(|&i| vals[b * d + i] as f64).collect();
            let mean = grf::condition_mean(|i, j| self.spec.cov_at(&self.table, i, j), d, &obs, &y, a, s)?;
            out.extend(mean.iter().map(|&v| v as f32));
        }
        Ok(Tensor::from_slice(&out).view(shape.as_slice()))
    }
}

/// Dims of a `[B, C, H, W]` tensor (a trajectory's `[B, T·C, H, W]` reads as T·C channels of
/// one frame; per-site draws are the same either way).
pub fn dims_of(x: &Tensor) -> Dims {
    let s = x.size();
    Dims { t: 1, c: s[1] as usize, h: s[2] as usize, w: s[3] as usize }
}
