//! A Gaussian with low-rank + diagonal covariance fitted by EM on gappy data (probabilistic
//! factor analysis; the initial prior of DiEM, peers §2.5): the best a Gaussian can do without
//! assuming stationarity.
//!
//! ```text
//! x = μ + W z + ε,   z ~ N(0, I_q),   ε ~ N(0, diag ψ)          (x ∈ R^d, d = C·H·W)
//! E-step (observed set O):  A = I + W_Oᵀ Ψ_O⁻¹ W_O,  Σ_z = A⁻¹,  m = Σ_z W_Oᵀ Ψ_O⁻¹ (x_O − μ_O)
//! M-step, per entry j over the samples that observe it, θ_j = [w_j; μ_j]:
//!   θ_j = (Σ [E zzᵀ, m; mᵀ, 1])⁻¹ Σ x_j [m; 1],   ψ_j = (Σ x_j² − θ_jᵀ Σ x_j [m; 1]) / n_j
//! completion:  E[x_j | x_O] = μ_j + w_j·m,   Var = w_jᵀ Σ_z w_j + ψ_j
//! ```
//!
//! Missing entries are marginalised exactly (ψ is diagonal), so this is exact EM.

use crate::data::FieldSet;
use crate::linalg;
use anyhow::{ensure, Result};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

pub struct LowRankGaussian {
    pub d: usize,
    pub rank: usize,
    pub mean: Vec<f64>,
    /// `[d, rank]` row-major.
    pub w: Vec<f64>,
    pub psi: Vec<f64>,
}

fn invert_spd(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let l = linalg::cholesky(a, n)?;
    let mut inv = vec![0.0; n * n];
    let mut e = vec![0.0; n];
    for j in 0..n {
        e.iter_mut().enumerate().for_each(|(i, v)| *v = f64::from(u8::from(i == j)));
        for (i, v) in linalg::cholesky_solve(&l, n, &e).into_iter().enumerate() {
            inv[i * n + j] = v;
        }
    }
    Ok(inv)
}

impl LowRankGaussian {
    /// Posterior of z given the observed entries of one sample: (m, Σ_z).
    fn posterior(&self, x: &[f32], known: &[u8]) -> Result<(Vec<f64>, Vec<f64>)> {
        let q = self.rank;
        let mut a = vec![0.0; q * q];
        let mut b = vec![0.0; q];
        for j in (0..self.d).filter(|&j| known[j] != 0) {
            let wj = &self.w[j * q..(j + 1) * q];
            let r = (x[j] as f64 - self.mean[j]) / self.psi[j];
            for p in 0..q {
                b[p] += wj[p] * r;
                let s = wj[p] / self.psi[j];
                for k in 0..=p {
                    a[p * q + k] += s * wj[k];
                }
            }
        }
        for p in 0..q {
            a[p * q + p] += 1.0;
            for k in 0..p {
                a[k * q + p] = a[p * q + k];
            }
        }
        let sz = invert_spd(&a, q)?;
        let m = (0..q).map(|p| (0..q).map(|k| sz[p * q + k] * b[k]).sum()).collect();
        Ok((m, sz))
    }

    /// Fits by `iters` EM iterations on the observed entries of `train`.
    pub fn fit(train: &FieldSet, rank: usize, iters: usize, seed: u64) -> Result<LowRankGaussian> {
        let d = train.dims.len();
        ensure!(rank >= 1, "the rank must be at least 1");
        let (mut sum, mut sq, mut cnt) = (vec![0.0; d], vec![0.0; d], vec![0.0; d]);
        for n in 0..train.n {
            for j in 0..d {
                if train.mask[n * d + j] != 0 {
                    let v = train.values[n * d + j] as f64;
                    sum[j] += v;
                    sq[j] += v * v;
                    cnt[j] += 1.0;
                }
            }
        }
        ensure!(
            cnt.iter().all(|&c| c >= 2.0),
            "every entry must be observed in at least two training fields to fit a Gaussian by EM"
        );
        let mean: Vec<f64> = (0..d).map(|j| sum[j] / cnt[j]).collect();
        let var: Vec<f64> = (0..d).map(|j| (sq[j] / cnt[j] - mean[j].powi(2)).max(1e-12)).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let w: Vec<f64> =
            (0..d * rank).map(|k| 0.1 * var[k / rank].sqrt() * rng.sample::<f64, _>(StandardNormal)).collect();
        let mut model = LowRankGaussian { d, rank, mean, w, psi: var.clone() };
        let q1 = rank + 1;
        for _ in 0..iters {
            let mut s = vec![0.0; d * q1 * q1];
            let mut t = vec![0.0; d * q1];
            for n in 0..train.n {
                let (x, known) = (&train.values[n * d..(n + 1) * d], &train.mask[n * d..(n + 1) * d]);
                let (m, sz) = model.posterior(x, known)?;
                // [E zzᵀ, m; mᵀ, 1] for this sample.
                let mut ezz = vec![0.0; q1 * q1];
                for p in 0..rank {
                    for k in 0..rank {
                        ezz[p * q1 + k] = sz[p * rank + k] + m[p] * m[k];
                    }
                    ezz[p * q1 + rank] = m[p];
                    ezz[rank * q1 + p] = m[p];
                }
                ezz[q1 * q1 - 1] = 1.0;
                for j in (0..d).filter(|&j| known[j] != 0) {
                    let xj = x[j] as f64;
                    for (acc, e) in s[j * q1 * q1..(j + 1) * q1 * q1].iter_mut().zip(&ezz) {
                        *acc += e;
                    }
                    for p in 0..rank {
                        t[j * q1 + p] += xj * m[p];
                    }
                    t[j * q1 + rank] += xj;
                }
            }
            for j in 0..d {
                let mut sj = s[j * q1 * q1..(j + 1) * q1 * q1].to_vec();
                for p in 0..q1 {
                    sj[p * q1 + p] += 1e-9 * cnt[j];
                }
                let l = linalg::cholesky(&sj, q1)?;
                let tj = &t[j * q1..(j + 1) * q1];
                let theta = linalg::cholesky_solve(&l, q1, tj);
                model.w[j * rank..(j + 1) * rank].copy_from_slice(&theta[..rank]);
                model.mean[j] = theta[rank];
                let resid = sq[j] - theta.iter().zip(tj).map(|(a, b)| a * b).sum::<f64>();
                model.psi[j] = (resid / cnt[j]).max(1e-4 * var[j]);
            }
        }
        Ok(model)
    }

    /// Conditional mean and variance of every entry given the observed ones (observed entries
    /// keep their values, variance 0).
    pub fn complete(&self, x: &[f32], known: &[u8]) -> Result<(Vec<f32>, Vec<f32>)> {
        let q = self.rank;
        let (m, sz) = self.posterior(x, known)?;
        let mut mean = x.to_vec();
        let mut var = vec![0f32; self.d];
        for j in (0..self.d).filter(|&j| known[j] == 0) {
            let wj = &self.w[j * q..(j + 1) * q];
            mean[j] = (self.mean[j] + wj.iter().zip(&m).map(|(a, b)| a * b).sum::<f64>()) as f32;
            let quad: f64 = (0..q).map(|p| wj[p] * (0..q).map(|k| sz[p * q + k] * wj[k]).sum::<f64>()).sum();
            var[j] = (quad + self.psi[j]) as f32;
        }
        Ok((mean, var))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dims;

    #[test]
    fn em_on_gappy_low_rank_data_nearly_matches_the_true_conditional_mean() {
        let (d, q, n) = (30, 3, 1500);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let w: Vec<f64> = (0..d * q).map(|_| rng.sample(StandardNormal)).collect();
        let mu: Vec<f64> = (0..d).map(|j| (j as f64 * 0.3).sin()).collect();
        let truth_model = LowRankGaussian { d, rank: q, mean: mu.clone(), w: w.clone(), psi: vec![0.05; d] };
        let sample = |rng: &mut rand_chacha::ChaCha8Rng| -> Vec<f32> {
            let z: Vec<f64> = (0..q).map(|_| rng.sample(StandardNormal)).collect();
            (0..d)
                .map(|j| {
                    let e: f64 = rng.sample(StandardNormal);
                    (mu[j] + (0..q).map(|k| w[j * q + k] * z[k]).sum::<f64>() + 0.05f64.sqrt() * e) as f32
                })
                .collect()
        };
        let dims = Dims { t: 1, c: 1, h: 1, w: d };
        let values: Vec<f32> = (0..n).flat_map(|_| sample(&mut rng)).collect();
        let mask: Vec<u8> = (0..n * d).map(|_| u8::from(rng.gen::<f64>() < 0.6)).collect();
        let train = FieldSet::new(n, dims, values, mask, None).unwrap();
        let fitted = LowRankGaussian::fit(&train, q, 60, 1).unwrap();
        let (mut ours, mut best, mut count) = (0.0, 0.0, 0.0);
        for _ in 0..200 {
            let x = sample(&mut rng);
            let known: Vec<u8> = (0..d).map(|_| u8::from(rng.gen::<f64>() < 0.6)).collect();
            let (a, va) = fitted.complete(&x, &known).unwrap();
            let (b, _) = truth_model.complete(&x, &known).unwrap();
            for j in (0..d).filter(|&j| known[j] == 0) {
                ours += (a[j] - x[j]).powi(2) as f64;
                best += (b[j] - x[j]).powi(2) as f64;
                count += 1.0;
                assert!(va[j] > 0.0);
            }
            for j in (0..d).filter(|&j| known[j] != 0) {
                assert_eq!(a[j], x[j]);
            }
        }
        assert!(ours / count < 1.1 * best / count, "EM {} vs true model {}", ours / count, best / count);
    }
}
