//! Synthetic data sets with known truth: fields + observation pattern → the `.npz` contract.

use super::field::{Dims, FieldSet};
use super::grf::GrfSpec;
use super::pattern::Pattern;
use crate::method::denoiser::GaussianDenoiser;
use crate::method::VpSchedule;
use anyhow::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// `n` GRF fields (one channel) observed through `pattern`, with `truth` kept for evaluation.
pub fn grf_set(spec: &GrfSpec, n: usize, pattern: &Pattern, seed: u64) -> Result<FieldSet> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dims = Dims { c: 1, h: spec.size, w: spec.size };
    let truth = spec.sample(n, &mut rng);
    let mask: Vec<u8> = (0..n).flat_map(|_| pattern.draw(dims, &mut rng)).collect();
    FieldSet::new(n, dims, truth.clone(), mask, Some(truth))
}

/// The Bayes-optimal completion of a GRF set: the exact posterior mean `E[u0 | u_obs, M]`
/// under the true covariance (observations pasted), and its mean posterior variance on the
/// missing entries (the Bayes MSE).
pub fn grf_oracle(spec: &GrfSpec, set: &FieldSet) -> Result<(Vec<f32>, f64)> {
    let den = GaussianDenoiser::new(*spec, VpSchedule::default());
    let len = set.dims.len();
    let mut out = Vec::with_capacity(set.values.len());
    let (mut var_sum, mut n_miss) = (0.0, 0usize);
    for i in 0..set.n {
        let vals = &set.values[i * len..(i + 1) * len];
        let m = &set.mask[i * len..(i + 1) * len];
        let observed: Vec<usize> = (0..len).filter(|&k| m[k] != 0).collect();
        let (mean, var) = den.krige(vals, &observed)?;
        for k in 0..len {
            if m[k] != 0 {
                out.push(vals[k]);
            } else {
                out.push(mean[k] as f32);
                var_sum += var[k];
                n_miss += 1;
            }
        }
    }
    Ok((out, var_sum / n_miss.max(1) as f64))
}
