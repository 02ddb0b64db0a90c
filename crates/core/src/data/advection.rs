//! Linear advection on the periodic square [−1, 1)² with a constant velocity per sample
//! (spec §6.3): `∂u/∂t − a·∇u = 0`, so `u(t, x) = u0(x + a t)` (the official code's convention).
//!
//! Solved exactly in Fourier space: `û(t, k) = û0(k) e^{i k·a t}` with `k = π m` for integer
//! wavenumbers m. The initial field is a GRF (length scale n/8 cells, unit variance) with its
//! Nyquist modes removed, so it is band-limited and translation by any distance is exact.
//! Defaults: 64×64, `a ~ U[−1, 1]²`, snapshot at t = 1 (a translation of up to half the domain).

use super::grf::GrfSpec;
use super::spectral::{wavenumber, Fft2, C64};
use rand::Rng;

#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct AdvectionSpec {
    pub size: usize,
    pub max_speed: f64,
    pub time: f64,
}

impl Default for AdvectionSpec {
    fn default() -> Self {
        AdvectionSpec { size: 64, max_speed: 1.0, time: 1.0 }
    }
}

/// Band-limits `field` (drops the Nyquist row and column) and returns its spectrum.
pub fn band_limited(field: &[f64], fft: &mut Fft2) -> Vec<C64> {
    let n = fft.size();
    let mut hat: Vec<C64> = field.iter().map(|&v| C64::new(v, 0.0)).collect();
    fft.forward(&mut hat);
    if n.is_multiple_of(2) {
        for i in 0..n {
            hat[(n / 2) * n + i] = C64::default();
            hat[i * n + n / 2] = C64::default();
        }
    }
    hat
}

/// `u0(x + shift)` for a band-limited spectrum `hat` on [−1, 1)² (shift = (sx, sy) in domain units).
pub fn translate(hat: &[C64], shift: (f64, f64), fft: &mut Fft2) -> Vec<f64> {
    let n = fft.size();
    let pi = std::f64::consts::PI;
    let mut out: Vec<C64> = (0..n * n)
        .map(|i| {
            let (ky, kx) = (pi * wavenumber(i / n, n), pi * wavenumber(i % n, n));
            hat[i] * C64::from_polar(1.0, kx * shift.0 + ky * shift.1)
        })
        .collect();
    fft.inverse(&mut out);
    out.iter().map(|z| z.re).collect()
}

/// One sample `[1, n, n]`: a random initial field carried by a random velocity for `time`.
pub fn sample<R: Rng>(spec: &AdvectionSpec, rng: &mut R) -> Vec<f32> {
    trajectory(spec, 1, 1, rng)
}

/// `frames` snapshots `[T, 1, n, n]` of one sample at `time + j·stride·Δ`, Δ = 2/(n·max_speed):
/// at stride 1 the fastest possible flow moves one cell per frame.
pub fn trajectory<R: Rng>(spec: &AdvectionSpec, frames: usize, stride: usize, rng: &mut R) -> Vec<f32> {
    let n = spec.size;
    let mut fft = Fft2::new(n);
    let u0: Vec<f64> = GrfSpec::new(n).sample(1, rng).into_iter().map(f64::from).collect();
    let a = (rng.gen_range(-spec.max_speed..=spec.max_speed), rng.gen_range(-spec.max_speed..=spec.max_speed));
    let hat = band_limited(&u0, &mut fft);
    let delta = 2.0 / (n as f64 * spec.max_speed.max(f64::MIN_POSITIVE));
    (0..frames)
        .flat_map(|j| {
            let t = spec.time + (j * stride) as f64 * delta;
            translate(&hat, (a.0 * t, a.1 * t), &mut fft).into_iter().map(|v| v as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn translation_is_exact_and_conserves_mass_and_energy() {
        let n = 16;
        let mut fft = Fft2::new(n);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let u0: Vec<f64> = GrfSpec::new(n).sample(1, &mut rng).into_iter().map(f64::from).collect();
        let hat = band_limited(&u0, &mut fft);
        let base = translate(&hat, (0.0, 0.0), &mut fft);
        // A shift of 3 cells right and 2 up (cell = 2/n) is an exact roll of the grid.
        let moved = translate(&hat, (3.0 * 2.0 / n as f64, 2.0 * 2.0 / n as f64), &mut fft);
        for r in 0..n {
            for c in 0..n {
                assert!((moved[r * n + c] - base[((r + 2) % n) * n + (c + 3) % n]).abs() < 1e-12);
            }
        }
        // A shift by the period (2) changes nothing; any shift keeps mean and energy.
        let period = translate(&hat, (2.0, -2.0), &mut fft);
        assert!(period.iter().zip(&base).all(|(a, b)| (a - b).abs() < 1e-12));
        let odd = translate(&hat, (0.3711, -0.917), &mut fft);
        let stats = |f: &[f64]| (f.iter().sum::<f64>(), f.iter().map(|v| v * v).sum::<f64>());
        let (m0, e0) = stats(&base);
        let (m1, e1) = stats(&odd);
        assert!((m0 - m1).abs() < 1e-10 && (e0 - e1).abs() < 1e-10 * e0);
        // And back again.
        let back = translate(&band_limited(&odd, &mut fft), (-0.3711, 0.917), &mut fft);
        assert!(back.iter().zip(&base).all(|(a, b)| (a - b).abs() < 1e-10));
    }
}
