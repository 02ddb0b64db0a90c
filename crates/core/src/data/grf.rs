//! Gaussian random fields on a periodic grid, and their exact conditional mean (kriging).
//!
//! Spectrum (Matérn type, d = 2) on wavenumbers `κ = 2π m / n`:
//!
//! ```text
//! S(κ) ∝ (1 + ℓ² |κ|²)^−(ν + 1),    λ_κ = σ² S(κ) / mean_κ S(κ)
//! u = IFFT2( √λ ⊙ FFT2(w) ),  w ~ N(0, I)   ⇒   Cov(u_i, u_j) = C(i − j) = IFFT2(λ)(i − j)
//! ```
//!
//! so each site has variance σ² exactly, and the covariance is circulant.

use super::spectral::{wavenumber, Fft2, C64};
use crate::linalg;
use anyhow::Result;
use rand::Rng;
use rand_distr::StandardNormal;

/// Parameters of the field: grid size, length scale ℓ (in grid cells), smoothness ν, variance σ².
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct GrfSpec {
    pub size: usize,
    pub length_scale: f64,
    pub smoothness: f64,
    pub variance: f64,
}

impl GrfSpec {
    pub fn new(size: usize) -> GrfSpec {
        GrfSpec { size, length_scale: size as f64 / 8.0, smoothness: 1.5, variance: 1.0 }
    }

    /// Eigenvalues λ of the circulant covariance, row-major `[n, n]`.
    fn eigenvalues(&self) -> Vec<f64> {
        let n = self.size;
        let freq = |m: usize| 2.0 * std::f64::consts::PI * wavenumber(m, n) / n as f64;
        let mut s = vec![0f64; n * n];
        for a in 0..n {
            for b in 0..n {
                let k2 = freq(a).powi(2) + freq(b).powi(2);
                s[a * n + b] = (1.0 + self.length_scale.powi(2) * k2).powf(-(self.smoothness + 1.0));
            }
        }
        let mean = s.iter().sum::<f64>() / s.len() as f64;
        s.iter().map(|v| self.variance * v / mean).collect()
    }

    /// Draws `count` fields, each `[size, size]` row-major.
    pub fn sample<R: Rng>(&self, count: usize, rng: &mut R) -> Vec<f32> {
        let n = self.size;
        let lam = self.eigenvalues();
        let mut fft = Fft2::new(n);
        let mut out = Vec::with_capacity(count * n * n);
        for _ in 0..count {
            let mut buf: Vec<C64> = (0..n * n).map(|_| C64::new(rng.sample(StandardNormal), 0.0)).collect();
            fft.forward(&mut buf);
            for (z, l) in buf.iter_mut().zip(&lam) {
                *z *= l.sqrt();
            }
            fft.inverse(&mut buf);
            out.extend(buf.iter().map(|z| z.re as f32));
        }
        out
    }

    /// Covariance `C(Δ)` for every lag, `[n, n]` row-major (lag (dy, dx) at `dy * n + dx`).
    pub fn covariance(&self) -> Vec<f64> {
        let n = self.size;
        let mut buf: Vec<C64> = self.eigenvalues().into_iter().map(|l| C64::new(l, 0.0)).collect();
        Fft2::new(n).inverse(&mut buf);
        buf.iter().map(|z| z.re).collect()
    }

    /// Covariance between flat sites `i` and `j` from the lag table of [`GrfSpec::covariance`].
    pub fn cov_at(&self, table: &[f64], i: usize, j: usize) -> f64 {
        let n = self.size;
        let dy = (i / n + n - j / n) % n;
        let dx = (i % n + n - j % n) % n;
        table[dy * n + dx]
    }
}

/// Exact Gaussian conditioning of a zero-mean field with covariance `cov(i, j)` on noisy
/// observations `y_O = a·u_O + s·ε` at sites `O`:
///
/// ```text
/// E[u | y_O]       = a C_{·O} (a² C_OO + s² I)⁻¹ y_O
/// Var[u_i | y_O]   = C_ii − a² C_{iO} (a² C_OO + s² I)⁻¹ C_{Oi}
/// ```
///
/// With `a = 1, s = 0` this is kriging; with the VP schedule's `(α_t, σ_t)` it is the exact
/// x0-denoiser of a Gaussian field given a noisy context. Returns (mean, variance) per site.
pub fn condition<F: Fn(usize, usize) -> f64>(
    cov: F,
    d: usize,
    observed: &[usize],
    y: &[f64],
    a: f64,
    s: f64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let all: Vec<usize> = (0..d).collect();
    condition_at(cov, observed, y, a, s, &all, true)
}

/// The mean of [`condition`] alone (a d·m² variance computation cheaper: the exact denoiser
/// needs only the mean).
pub fn condition_mean<F: Fn(usize, usize) -> f64>(
    cov: F,
    d: usize,
    observed: &[usize],
    y: &[f64],
    a: f64,
    s: f64,
) -> Result<Vec<f64>> {
    let all: Vec<usize> = (0..d).collect();
    Ok(condition_at(cov, observed, y, a, s, &all, false)?.0)
}

/// [`condition`] evaluated only at the `targets` sites: (mean, variance) per target (the
/// variance only when `with_variance`, else zeros). Costs m³/3 + |targets|·m (+ |targets|·m²).
pub fn condition_at<F: Fn(usize, usize) -> f64>(
    cov: F,
    observed: &[usize],
    y: &[f64],
    a: f64,
    s: f64,
    targets: &[usize],
    with_variance: bool,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let m = observed.len();
    if m == 0 {
        let var = if with_variance { targets.iter().map(|&i| cov(i, i)).collect() } else { vec![0.0; targets.len()] };
        return Ok((vec![0.0; targets.len()], var));
    }
    let mut k = vec![0f64; m * m];
    for (p, &i) in observed.iter().enumerate() {
        for (q, &j) in observed.iter().enumerate() {
            k[p * m + q] = a * a * cov(i, j) + if p == q { s * s + 1e-9 } else { 0.0 };
        }
    }
    let l = linalg::cholesky(&k, m)?;
    let alpha = linalg::cholesky_solve(&l, m, y);
    let mut mean = vec![0f64; targets.len()];
    let mut var = vec![0f64; targets.len()];
    let mut col = vec![0f64; m];
    for (t, &i) in targets.iter().enumerate() {
        for (p, &j) in observed.iter().enumerate() {
            col[p] = a * cov(i, j);
        }
        mean[t] = col.iter().zip(&alpha).map(|(c, w)| c * w).sum();
        if with_variance {
            let v = linalg::cholesky_solve(&l, m, &col);
            var[t] = (cov(i, i) - col.iter().zip(&v).map(|(c, w)| c * w).sum::<f64>()).max(0.0);
        }
    }
    Ok((mean, var))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sample_covariance_matches_prescribed() {
        let spec = GrfSpec { size: 16, length_scale: 2.0, smoothness: 1.0, variance: 2.0 };
        let table = spec.covariance();
        assert!((table[0] - 2.0).abs() < 1e-9, "site variance {}", table[0]);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let fields = spec.sample(3000, &mut rng);
        // Empirical covariance at lags (0,0), (0,1), (2,3), averaged over all sites (stationarity).
        for (dy, dx) in [(0usize, 0usize), (0, 1), (2, 3)] {
            let mut acc = 0.0;
            let mut cnt = 0.0;
            for f in fields.chunks_exact(256) {
                for y in 0..16 {
                    for x in 0..16 {
                        let j = ((y + dy) % 16) * 16 + (x + dx) % 16;
                        acc += f[y * 16 + x] as f64 * f[j] as f64;
                        cnt += 1.0;
                    }
                }
            }
            let emp = acc / cnt;
            let want = table[dy * 16 + dx];
            assert!((emp - want).abs() < 0.05 * 2.0, "lag ({dy},{dx}): {emp} vs {want}");
        }
    }

    #[test]
    fn kriging_reproduces_observations() {
        let spec = GrfSpec { size: 8, length_scale: 1.5, smoothness: 1.0, variance: 1.0 };
        let table = spec.covariance();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let u = spec.sample(1, &mut rng);
        let obs: Vec<usize> = (0..64).filter(|i| i % 3 == 0).collect();
        let y: Vec<f64> = obs.iter().map(|&i| u[i] as f64).collect();
        let (mean, var) = condition(|i, j| spec.cov_at(&table, i, j), 64, &obs, &y, 1.0, 0.0).unwrap();
        for (&i, &v) in obs.iter().zip(&y) {
            assert!((mean[i] - v).abs() < 1e-4 && var[i] < 1e-4);
        }
        assert!(var[1] > 1e-3 && var[1] < 1.0);
    }
}
