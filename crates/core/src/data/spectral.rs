//! Periodic n×n grids in Fourier space: 2-D FFTs and wavenumbers, shared by the spectral
//! generators (GRF, Kolmogorov flow, advection).

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

pub type C64 = Complex<f64>;

/// Forward and inverse 2-D FFTs on a row-major `n×n` buffer; the inverse is normalised by 1/n²,
/// so `inverse(forward(x)) = x`.
pub struct Fft2 {
    n: usize,
    forward: Arc<dyn Fft<f64>>,
    inverse: Arc<dyn Fft<f64>>,
    scratch: Vec<C64>,
    column: Vec<C64>,
}

impl Fft2 {
    pub fn new(n: usize) -> Fft2 {
        let mut planner = FftPlanner::new();
        let forward = planner.plan_fft_forward(n);
        let inverse = planner.plan_fft_inverse(n);
        let scratch_len = forward.get_inplace_scratch_len().max(inverse.get_inplace_scratch_len());
        Fft2 { n, forward, inverse, scratch: vec![C64::default(); scratch_len], column: vec![C64::default(); n] }
    }

    pub fn size(&self) -> usize {
        self.n
    }

    pub fn forward(&mut self, buf: &mut [C64]) {
        self.apply(buf, false);
    }

    pub fn inverse(&mut self, buf: &mut [C64]) {
        self.apply(buf, true);
        let s = 1.0 / (self.n * self.n) as f64;
        buf.iter_mut().for_each(|z| *z *= s);
    }

    fn apply(&mut self, buf: &mut [C64], inverse: bool) {
        let n = self.n;
        assert_eq!(buf.len(), n * n, "Fft2 buffer must be n×n");
        let fft = if inverse { &self.inverse } else { &self.forward };
        // Rows in one call (rustfft processes consecutive chunks), then columns through a copy.
        fft.process_with_scratch(buf, &mut self.scratch);
        for c in 0..n {
            for r in 0..n {
                self.column[r] = buf[r * n + c];
            }
            fft.process_with_scratch(&mut self.column, &mut self.scratch);
            for r in 0..n {
                buf[r * n + c] = self.column[r];
            }
        }
    }
}

/// Signed integer wavenumber of FFT index `m` on an n-point grid: 0, 1, …, n/2, −n/2+1, …, −1.
/// (The Nyquist index n/2 is reported as +n/2.)
pub fn wavenumber(m: usize, n: usize) -> f64 {
    if m <= n / 2 {
        m as f64
    } else {
        m as f64 - n as f64
    }
}

/// Spectral resampling of a real periodic field from n×n to s×s (s ≤ n): keeps the modes
/// |k| < s/2 in each direction and drops the rest (including the Nyquist mode, which has no
/// unambiguous real counterpart), i.e. an ideal low-pass filter followed by sampling.
pub fn downsample(field_hat: &[C64], n: usize, s: usize, fft_s: &mut Fft2) -> Vec<f64> {
    assert!(s <= n && fft_s.size() == s);
    let half = (s / 2) as i64;
    let mut out = vec![C64::default(); s * s];
    let idx = |k: i64, len: usize| ((k + len as i64) % len as i64) as usize;
    for ky in -half + 1..half {
        for kx in -half + 1..half {
            out[idx(ky, s) * s + idx(kx, s)] = field_hat[idx(ky, n) * n + idx(kx, n)];
        }
    }
    fft_s.inverse(&mut out);
    // The inverse FFT at size s divides by s², the forward at size n multiplied by n².
    let scale = (s * s) as f64 / (n * n) as f64;
    out.iter().map(|z| z.re * scale).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_round_trips_and_downsampling_keeps_low_modes() {
        let n = 16;
        let mut fft = Fft2::new(n);
        let field: Vec<f64> = (0..n * n)
            .map(|i| {
                let (y, x) = ((i / n) as f64, (i % n) as f64);
                let t = 2.0 * std::f64::consts::PI / n as f64;
                (t * x).sin() + 0.5 * (2.0 * t * y).cos() + 0.1 * (7.0 * t * x).cos()
            })
            .collect();
        let mut buf: Vec<C64> = field.iter().map(|&v| C64::new(v, 0.0)).collect();
        fft.forward(&mut buf);
        let mut back = buf.clone();
        fft.inverse(&mut back);
        assert!(back.iter().zip(&field).all(|(z, &v)| (z.re - v).abs() < 1e-12));
        // At 8×8 the wavenumber-7 mode is dropped, the others are sampled exactly.
        let low = downsample(&buf, n, 8, &mut Fft2::new(8));
        for (i, &v) in low.iter().enumerate() {
            let (y, x) = ((i / 8) as f64 * 2.0, (i % 8) as f64 * 2.0);
            let t = 2.0 * std::f64::consts::PI / n as f64;
            let want = (t * x).sin() + 0.5 * (2.0 * t * y).cos();
            assert!((v - want).abs() < 1e-12, "{v} vs {want}");
        }
    }
}
