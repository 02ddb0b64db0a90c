//! Per-channel normalisation computed from observed entries only.

use super::field::FieldSet;
use anyhow::{Context, Result};
use std::path::Path;

/// `x_norm = (x − mean_c) / std_c`, statistics over observed entries of channel c (every
/// frame of a trajectory).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalizer {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Normalizer {
    /// Statistics from the observed entries of `set` (truth is never looked at).
    pub fn fit(set: &FieldSet) -> Normalizer {
        let (c, sites) = (set.dims.c, set.dims.sites());
        let mut sum = vec![0f64; c];
        let mut sq = vec![0f64; c];
        let mut cnt = vec![0f64; c];
        // Planes are frame-major `[T, C]`: plane p holds channel p mod C (shared over frames).
        for p in 0..set.n * set.dims.planes() {
            let ch = p % c;
            for k in p * sites..(p + 1) * sites {
                if set.mask[k] != 0 {
                    let v = set.values[k] as f64;
                    sum[ch] += v;
                    sq[ch] += v * v;
                    cnt[ch] += 1.0;
                }
            }
        }
        let mean: Vec<f64> = (0..c).map(|i| if cnt[i] > 0.0 { sum[i] / cnt[i] } else { 0.0 }).collect();
        let std = (0..c)
            .map(|i| {
                let var = if cnt[i] > 1.0 { (sq[i] / cnt[i] - mean[i] * mean[i]).max(0.0) } else { 0.0 };
                // A constant channel would divide by zero; leave it unscaled.
                if var > 1e-20 {
                    var.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        Normalizer { mean, std }
    }

    /// Normalises observed values in place (unobserved stay 0).
    pub fn apply(&self, set: &mut FieldSet) {
        let (c, sites) = (set.dims.c, set.dims.sites());
        for (k, v) in set.values.iter_mut().enumerate() {
            let ch = (k / sites) % c;
            if set.mask[k] != 0 {
                *v = ((*v as f64 - self.mean[ch]) / self.std[ch]) as f32;
            }
        }
    }

    /// Maps normalised values `[.., C, H, W]` (or `[.., T, C, H, W]`) back to data units.
    pub fn invert(&self, values: &mut [f32], c: usize, sites: usize) {
        for (k, v) in values.iter_mut().enumerate() {
            let ch = (k / sites) % c;
            *v = (*v as f64 * self.std[ch] + self.mean[ch]) as f32;
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        crate::atomic::write_bytes(path, serde_json::to_string_pretty(self)?.as_bytes())
    }

    /// Loads statistics saved by [`Normalizer::save`], refusing any that cannot be inverted
    /// (a zero, negative or non-finite std, a non-finite mean).
    pub fn load(path: &Path) -> Result<Normalizer> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let norm: Normalizer = serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid normalisation statistics", path.display()))?;
        anyhow::ensure!(
            norm.mean.len() == norm.std.len() && !norm.mean.is_empty(),
            "{}: needs one mean and one std per channel",
            path.display()
        );
        for (c, (&m, &s)) in norm.mean.iter().zip(&norm.std).enumerate() {
            anyhow::ensure!(
                m.is_finite() && s.is_finite() && s > 0.0,
                "{}: channel {c} has mean {m} and std {s}; a std must be positive and finite (the file is corrupt: retrain, or restore it)",
                path.display()
            );
        }
        Ok(norm)
    }
}
