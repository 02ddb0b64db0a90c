//! 2-D Kolmogorov flow: forced, damped incompressible Navier–Stokes in vorticity form on the
//! periodic square [0, 2π)², solved pseudo-spectrally.
//!
//! ```text
//! ∂ω/∂t + u·∇ω = ν Δω − α ω + F,     u = (∂ψ/∂y, −∂ψ/∂x),   Δψ = −ω,
//! F = −k_f A cos(k_f y)              (the curl of the body force A sin(k_f y) x̂)
//! ```
//!
//! Defaults follow the jax-cfd Kolmogorov setup used by SDA and the paper's data
//! (`../shared/research/peers.md` §3.4): ν = 10⁻³ (Re = 1/ν = 1000 for unit force and length),
//! α = 0.1, k_f = 4, A = 1, simulated at 128² and spectrally truncated to 64².
//!
//! Numerics: the nonlinear term is evaluated on the grid and de-aliased by the 2/3 rule (the
//! truncated Galerkin system conserves energy and enstrophy exactly when ν = α = F = 0); the
//! linear terms are integrated exactly by an integrating factor `E = exp((−ν|k|² − α) dt)`, and
//! the rest by classical RK4 (IFRK4). The step follows the CFL condition
//! `dt = cfl · Δx / max(|u|, |v|)` with cfl = 0.7 (RK4 is stable up to |λ dt| ≈ 2.8, i.e.
//! cfl ≈ 1.3 for the de-aliased spectrum), capped at `max_dt`, shortened to land on output times.

// Spectral loops walk several per-mode arrays in step; an index reads clearer than zips.
#![allow(clippy::needless_range_loop)]

use super::spectral::{downsample, wavenumber, Fft2, C64};
use rand::Rng;
use rand_distr::StandardNormal;

#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct KolmogorovSpec {
    /// Simulation grid side.
    pub resolution: usize,
    /// Output grid side (spectral truncation of the simulation).
    pub size: usize,
    /// Kinematic viscosity ν.
    pub viscosity: f64,
    /// Linear drag α.
    pub drag: f64,
    pub forcing_wavenumber: usize,
    pub forcing_amplitude: f64,
    /// Simulated time before the first snapshot (the flow forgets its initial condition).
    pub spinup: f64,
    /// Time between snapshots of one run.
    pub interval: f64,
    pub cfl: f64,
    pub max_dt: f64,
}

impl Default for KolmogorovSpec {
    fn default() -> Self {
        KolmogorovSpec {
            resolution: 128,
            size: 64,
            viscosity: 1e-3,
            drag: 0.1,
            forcing_wavenumber: 4,
            forcing_amplitude: 1.0,
            spinup: 30.0,
            interval: 2.0,
            cfl: 0.7,
            max_dt: 0.05,
        }
    }
}

/// The pseudo-spectral solver on an n×n grid; the state is ω̂ (row-major, rows = y).
pub struct Solver {
    n: usize,
    fft: Fft2,
    kx: Vec<f64>,
    ky: Vec<f64>,
    /// |k|², with 1 at k = 0 so that ψ̂ = ω̂ / |k|² leaves the (zero) mean alone.
    k2: Vec<f64>,
    dealias: Vec<f64>,
    /// −ν|k|² − α per mode.
    linear: Vec<f64>,
    forcing: Vec<C64>,
    vel: Vec<C64>,
    grad: Vec<C64>,
    /// RK stages and the stage state, kept to avoid large allocations every step.
    stages: [Vec<C64>; 5],
    /// Integrating factors (E, E½) for the last few step lengths (the CFL ladder repeats them).
    factors: Vec<(u64, Vec<f64>, Vec<f64>)>,
}

impl Solver {
    pub fn new(n: usize, viscosity: f64, drag: f64, forcing_wavenumber: usize, forcing_amplitude: f64) -> Solver {
        let mut fft = Fft2::new(n);
        let (mut kx, mut ky, mut k2, mut dealias) =
            (vec![0.0; n * n], vec![0.0; n * n], vec![1.0; n * n], vec![0.0; n * n]);
        let cutoff = n as f64 / 3.0;
        for r in 0..n {
            for c in 0..n {
                let i = r * n + c;
                let (x, y) = (wavenumber(c, n), wavenumber(r, n));
                kx[i] = x;
                ky[i] = y;
                if i != 0 {
                    k2[i] = x * x + y * y;
                }
                // The Nyquist row/column (|k| = n/2) is dropped too: it is not a real mode.
                dealias[i] = f64::from(u8::from(x.abs() < cutoff && y.abs() < cutoff));
            }
        }
        let linear: Vec<f64> =
            k2.iter().enumerate().map(|(i, &k)| if i == 0 { -drag } else { -viscosity * k - drag }).collect();
        let kf = forcing_wavenumber as f64;
        let mut forcing: Vec<C64> = (0..n * n)
            .map(|i| {
                let y = 2.0 * std::f64::consts::PI * (i / n) as f64 / n as f64;
                C64::new(-kf * forcing_amplitude * (kf * y).cos(), 0.0)
            })
            .collect();
        fft.forward(&mut forcing);
        for (f, d) in forcing.iter_mut().zip(&dealias) {
            *f *= d;
        }
        let zeros = || vec![C64::default(); n * n];
        Solver {
            n,
            fft,
            kx,
            ky,
            k2,
            dealias,
            linear,
            forcing,
            vel: zeros(),
            grad: zeros(),
            stages: [zeros(), zeros(), zeros(), zeros(), zeros()],
            factors: Vec::new(),
        }
    }

    pub fn n(&self) -> usize {
        self.n
    }

    /// `out = −FFT(u·∇ω)` de-aliased, plus the forcing; returns max(|u|, |v|) on the grid.
    ///
    /// Two real fields travel in one complex transform: IFFT(û + i v̂) = u + i v.
    fn tendency(&mut self, w: &[C64], out: &mut [C64]) -> f64 {
        let i = C64::new(0.0, 1.0);
        for k in 0..w.len() {
            let psi = w[k] / self.k2[k];
            let u = i * self.ky[k] * psi;
            let v = -i * self.kx[k] * psi;
            self.vel[k] = u + i * v;
            self.grad[k] = i * self.kx[k] * w[k] + i * (i * self.ky[k] * w[k]);
        }
        self.fft.inverse(&mut self.vel);
        self.fft.inverse(&mut self.grad);
        let mut speed = 0f64;
        for k in 0..w.len() {
            let (u, v) = (self.vel[k].re, self.vel[k].im);
            speed = speed.max(u.abs()).max(v.abs());
            out[k] = C64::new(u * self.grad[k].re + v * self.grad[k].im, 0.0);
        }
        self.fft.forward(out);
        for k in 0..w.len() {
            out[k] = -out[k] * self.dealias[k] + self.forcing[k];
        }
        speed
    }

    /// Largest velocity component of the state, for choosing the first step.
    pub fn max_speed(&mut self, w: &[C64]) -> f64 {
        let mut scratch = vec![C64::default(); w.len()];
        self.tendency(w, &mut scratch)
    }

    /// One IFRK4 step of length `dt` (Cox–Matthews form with the linear part exact):
    ///
    /// ```text
    /// k1 = G(ω),  k2 = G(E½(ω + dt/2 k1)),  k3 = G(E½ω + dt/2 k2),  k4 = G(Eω + dt E½ k3)
    /// ω ← Eω + dt/6 (E k1 + 2E½(k2 + k3) + k4)
    /// ```
    ///
    /// Returns the largest max(|u|, |v|) seen at the four stages.
    pub fn step(&mut self, w: &mut [C64], dt: f64) -> f64 {
        let len = w.len();
        let (e, e2) = self.factors(dt);
        let [mut k1, mut k2, mut k3, mut k4, mut stage] = std::mem::take(&mut self.stages);
        let mut speed = self.tendency(w, &mut k1);
        for k in 0..len {
            stage[k] = e2[k] * (w[k] + dt / 2.0 * k1[k]);
        }
        speed = speed.max(self.tendency(&stage, &mut k2));
        for k in 0..len {
            stage[k] = e2[k] * w[k] + dt / 2.0 * k2[k];
        }
        speed = speed.max(self.tendency(&stage, &mut k3));
        for k in 0..len {
            stage[k] = e[k] * w[k] + dt * e2[k] * k3[k];
        }
        speed = speed.max(self.tendency(&stage, &mut k4));
        for k in 0..len {
            w[k] = e[k] * w[k] + dt / 6.0 * (e[k] * k1[k] + 2.0 * e2[k] * (k2[k] + k3[k]) + k4[k]);
        }
        self.stages = [k1, k2, k3, k4, stage];
        self.factors.push((dt.to_bits(), e, e2));
        speed
    }

    /// (E, E½) for `dt`, from the cache when this step length was used recently.
    fn factors(&mut self, dt: f64) -> (Vec<f64>, Vec<f64>) {
        if let Some(pos) = self.factors.iter().position(|(bits, ..)| *bits == dt.to_bits()) {
            let (_, e, e2) = self.factors.swap_remove(pos);
            return (e, e2);
        }
        if self.factors.len() >= 8 {
            self.factors.remove(0);
        }
        (
            self.linear.iter().map(|l| (l * dt).exp()).collect(),
            self.linear.iter().map(|l| (l * dt / 2.0).exp()).collect(),
        )
    }

    /// Advances by exactly `duration` with CFL-limited steps; returns the number of steps.
    ///
    /// Step lengths come from the ladder `max_dt · 0.9^j` (the largest rung within the CFL
    /// limit), so the integrating factors are reused; only a final step lands on `duration`.
    pub fn advance(&mut self, w: &mut [C64], duration: f64, cfl: f64, max_dt: f64) -> usize {
        let dx = 2.0 * std::f64::consts::PI / self.n as f64;
        let mut t = 0.0;
        let mut steps = 0;
        let mut speed = self.max_speed(w);
        while t < duration * (1.0 - 1e-12) {
            let limit = cfl * dx / speed.max(1e-12);
            let rungs = if limit >= max_dt { 0.0 } else { ((limit / max_dt).ln() / 0.9f64.ln()).ceil() };
            let dt = (max_dt * 0.9f64.powf(rungs)).min(duration - t);
            // The speed seen during this step sets the next one; a growing flow is not outrun
            // because the stages look ahead to the end of the step.
            speed = self.step(w, dt);
            t += dt;
            steps += 1;
        }
        steps
    }

    /// Kinetic energy ½⟨|u|²⟩ and enstrophy ½⟨ω²⟩ (grid means), from Parseval.
    pub fn energy_enstrophy(&self, w: &[C64]) -> (f64, f64) {
        let norm = ((self.n * self.n) as f64).powi(2);
        let (mut e, mut z) = (0.0, 0.0);
        for k in 1..w.len() {
            let a = w[k].norm_sqr();
            e += a / self.k2[k];
            z += a;
        }
        (0.5 * e / norm, 0.5 * z / norm)
    }

    /// Spectral state of a real grid field, de-aliased.
    pub fn to_spectral(&mut self, field: &[f64]) -> Vec<C64> {
        let mut w: Vec<C64> = field.iter().map(|&v| C64::new(v, 0.0)).collect();
        self.fft.forward(&mut w);
        for (z, d) in w.iter_mut().zip(&self.dealias) {
            *z *= d;
        }
        w
    }

    pub fn to_grid(&mut self, w: &[C64]) -> Vec<f64> {
        let mut buf = w.to_vec();
        self.fft.inverse(&mut buf);
        buf.iter().map(|z| z.re).collect()
    }
}

/// A random smooth initial vorticity: white noise filtered to |k| ≲ 4, scaled to unit RMS.
pub fn initial_vorticity<R: Rng>(solver: &mut Solver, rng: &mut R) -> Vec<C64> {
    let n = solver.n;
    let noise: Vec<f64> = (0..n * n).map(|_| rng.sample(StandardNormal)).collect();
    let mut w = solver.to_spectral(&noise);
    for k in 0..w.len() {
        w[k] *= (-solver.k2[k] / 32.0).exp();
    }
    w[0] = C64::default();
    let grid = solver.to_grid(&w);
    let rms = (grid.iter().map(|v| v * v).sum::<f64>() / grid.len() as f64).sqrt().max(1e-12);
    w.iter().map(|z| z / rms).collect()
}

/// One run: spin up from a random state, then `count` snapshots `interval` apart, each the
/// vorticity on the output grid, `[size, size]` row-major.
pub fn run<R: Rng>(spec: &KolmogorovSpec, count: usize, rng: &mut R) -> Vec<Vec<f32>> {
    let mut solver =
        Solver::new(spec.resolution, spec.viscosity, spec.drag, spec.forcing_wavenumber, spec.forcing_amplitude);
    let mut out_fft = Fft2::new(spec.size);
    let mut w = initial_vorticity(&mut solver, rng);
    solver.advance(&mut w, spec.spinup, spec.cfl, spec.max_dt);
    let mut snaps = Vec::with_capacity(count);
    for j in 0..count {
        if j > 0 {
            solver.advance(&mut w, spec.interval, spec.cfl, spec.max_dt);
        }
        let field = downsample(&w, spec.resolution, spec.size, &mut out_fft);
        snaps.push(field.iter().map(|&v| v as f32).collect());
    }
    snaps
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn inviscid_unforced_flow_conserves_energy_and_enstrophy() {
        // The de-aliased Galerkin system conserves E and Z exactly; what RK4 loses must be a
        // time-discretisation error, small and shrinking as dt⁴ (halving dt: ÷16).
        let drift = |cfl: f64| {
            let mut solver = Solver::new(32, 0.0, 0.0, 4, 0.0);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
            let w0 = initial_vorticity(&mut solver, &mut rng);
            let mut w = w0.clone();
            let (e0, z0) = solver.energy_enstrophy(&w);
            solver.advance(&mut w, 2.0, cfl, 1.0);
            let (e1, z1) = solver.energy_enstrophy(&w);
            let (a, b) = (solver.to_grid(&w0), solver.to_grid(&w));
            let moved = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64;
            assert!(moved > 0.1, "flow barely evolved: {moved}");
            (((e1 - e0) / e0).abs(), ((z1 - z0) / z0).abs())
        };
        let (e_coarse, z_coarse) = drift(0.4);
        let (e_fine, z_fine) = drift(0.2);
        assert!(e_coarse < 1e-4 && z_coarse < 1e-4, "drift {e_coarse} {z_coarse}");
        assert!(e_fine < e_coarse / 8.0 + 1e-13 && z_fine < z_coarse / 8.0 + 1e-13, "{e_fine} {z_fine}");
    }

    #[test]
    fn taylor_green_vortex_decays_at_the_viscous_and_drag_rate() {
        // ω = 2 cos x cos y is a steady Euler solution (ψ ∝ ω), so only ν and α act:
        // ω(t) = ω(0) exp(−(2ν + α) t).
        let (n, nu, drag) = (32, 0.05, 0.1);
        let mut solver = Solver::new(n, nu, drag, 4, 0.0);
        let grid: Vec<f64> = (0..n * n)
            .map(|i| {
                let (y, x) = (i / n, i % n);
                let t = 2.0 * std::f64::consts::PI / n as f64;
                2.0 * (t * x as f64).cos() * (t * y as f64).cos()
            })
            .collect();
        let mut w = solver.to_spectral(&grid);
        solver.advance(&mut w, 3.0, 0.5, 0.05);
        let decay = (-(2.0 * nu + drag) * 3.0f64).exp();
        let after = solver.to_grid(&w);
        for (a, g) in after.iter().zip(&grid) {
            assert!((a - g * decay).abs() < 1e-10, "{a} vs {}", g * decay);
        }
    }

    #[test]
    fn laminar_kolmogorov_flow_is_steady_under_its_forcing() {
        // ω = −k_f A cos(k_f y) / (ν k_f² + α) balances forcing, viscosity and drag exactly,
        // and the nonlinear term vanishes for a parallel flow.
        let (n, nu, drag, kf, amp) = (32, 0.05, 0.1, 4usize, 1.0);
        let mut solver = Solver::new(n, nu, drag, kf, amp);
        let k = kf as f64;
        let grid: Vec<f64> = (0..n * n)
            .map(|i| {
                let y = 2.0 * std::f64::consts::PI * (i / n) as f64 / n as f64;
                -k * amp * (k * y).cos() / (nu * k * k + drag)
            })
            .collect();
        let mut w = solver.to_spectral(&grid);
        solver.advance(&mut w, 2.0, 0.5, 0.05);
        let after = solver.to_grid(&w);
        let err = after.iter().zip(&grid).map(|(a, g)| (a - g).abs()).fold(0.0, f64::max);
        // Only the IFRK4 quadrature of the constant forcing differs from the exact balance (O(dt⁴)).
        assert!(err < 1e-7, "{err}");
    }

    #[test]
    fn default_flow_is_turbulent_and_statistically_steady_after_spinup() {
        // A short, coarse version of the default: after spin-up the energy neither blows up nor
        // decays to the laminar state, and the field is not a parallel flow.
        let spec = KolmogorovSpec { resolution: 64, size: 32, spinup: 15.0, interval: 2.0, ..Default::default() };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let snaps = run(&spec, 3, &mut rng);
        for s in &snaps {
            assert!(s.iter().all(|v| v.is_finite()));
            let rms = (s.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / s.len() as f64).sqrt();
            assert!(rms > 1.0 && rms < 50.0, "vorticity rms {rms}");
            // Variation along x (a laminar Kolmogorov flow has none).
            let row_var: f64 = (0..32)
                .map(|r| {
                    let row = &s[r * 32..(r + 1) * 32];
                    let m = row.iter().map(|&v| v as f64).sum::<f64>() / 32.0;
                    row.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / 32.0
                })
                .sum::<f64>()
                / 32.0;
            assert!(row_var > 0.1 * rms * rms, "flow is nearly parallel");
        }
        assert_ne!(snaps[0], snaps[1]);
    }
}
