//! Linearised rotating shallow water on a periodic Arakawa C grid (spec §6.2):
//!
//! ```text
//! ∂u/∂t =  f v − g ∂h/∂x,     ∂v/∂t = −f u − g ∂h/∂y,     ∂h/∂t = −H (∂u/∂x + ∂v/∂y)
//! ```
//!
//! h sits at cell centres, u on east faces, v on north faces; the Coriolis term uses the
//! four-point average of the other velocity. Time stepping is forward–backward (u, then v with
//! the new u, then h with the new velocities), which is neutrally stable for `√(gH) dt/Δx < 1`
//! and conserves total mass exactly.
//!
//! Defaults from the official project's constants: f = 2·10⁻⁴ s⁻¹, n = 32, Δx = 20 km,
//! dt = 0.5 Δx / 31 s, g ~ U[7, 13], H ~ U[60, 140] per sample, 50 steps. The initial state is
//! a smooth random height anomaly (a GRF with length scale n/8 cells and unit variance) at rest,
//! so each sample shows gravity waves radiating from a geostrophic adjustment.

use super::grf::GrfSpec;
use rand::Rng;

#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct ShallowWaterSpec {
    pub size: usize,
    pub dx: f64,
    pub dt: f64,
    pub coriolis: f64,
    pub gravity: (f64, f64),
    pub depth: (f64, f64),
    pub steps: usize,
}

impl Default for ShallowWaterSpec {
    fn default() -> Self {
        ShallowWaterSpec {
            size: 32,
            dx: 20_000.0,
            dt: 0.5 * 20_000.0 / 31.0,
            coriolis: 2e-4,
            gravity: (7.0, 13.0),
            depth: (60.0, 140.0),
            steps: 50,
        }
    }
}

/// The state (h, u, v), each `[n, n]` row-major (rows = y).
#[derive(Clone, Debug)]
pub struct State {
    pub h: Vec<f64>,
    pub u: Vec<f64>,
    pub v: Vec<f64>,
}

/// One forward–backward step for gravity `g` and depth `depth`.
pub fn step(s: &mut State, n: usize, dx: f64, dt: f64, f: f64, g: f64, depth: f64) {
    let at = |r: usize, c: usize| (r % n) * n + c % n;
    let (up, left) = (|r: usize| (r + n - 1) % n, |c: usize| (c + n - 1) % n);
    let old_v = s.v.clone();
    for r in 0..n {
        for c in 0..n {
            // v averaged onto the u point (r, c+½): faces (r, c), (r, c+1), (r−1, c), (r−1, c+1).
            let vbar = 0.25 * (old_v[at(r, c)] + old_v[at(r, c + 1)] + old_v[at(up(r), c)] + old_v[at(up(r), c + 1)]);
            s.u[at(r, c)] += dt * (f * vbar - g * (s.h[at(r, c + 1)] - s.h[at(r, c)]) / dx);
        }
    }
    for r in 0..n {
        for c in 0..n {
            // New u averaged onto the v point (r+½, c).
            let ubar = 0.25 * (s.u[at(r, c)] + s.u[at(r, left(c))] + s.u[at(r + 1, c)] + s.u[at(r + 1, left(c))]);
            s.v[at(r, c)] += dt * (-f * ubar - g * (s.h[at(r + 1, c)] - s.h[at(r, c)]) / dx);
        }
    }
    for r in 0..n {
        for c in 0..n {
            let div = (s.u[at(r, c)] - s.u[at(r, left(c))] + s.v[at(r, c)] - s.v[at(up(r), c)]) / dx;
            s.h[at(r, c)] -= dt * depth * div;
        }
    }
}

/// Total energy per unit area, ½⟨H(u² + v²) + g h²⟩.
pub fn energy(s: &State, g: f64, depth: f64) -> f64 {
    let n = s.h.len() as f64;
    0.5 * s.h.iter().zip(&s.u).zip(&s.v).map(|((h, u), v)| depth * (u * u + v * v) + g * h * h).sum::<f64>() / n
}

/// One sample: a random (g, H) and initial height, integrated `steps` steps. Returns the
/// channels (h, u, v) concatenated, `[3, n, n]`.
pub fn sample<R: Rng>(spec: &ShallowWaterSpec, rng: &mut R) -> Vec<f32> {
    trajectory(spec, 1, 1, rng)
}

/// Solver steps between two frames of a trajectory at stride 1: a tenth of the spin-up
/// (5 steps by default, gravity waves move about 2.5 cells).
pub fn frame_steps(spec: &ShallowWaterSpec) -> usize {
    (spec.steps / 10).max(1)
}

/// `frames` states `[T, 3, n, n]` of one sample: the first after `steps` steps (as [`sample`]),
/// then every `stride · frame_steps` steps.
pub fn trajectory<R: Rng>(spec: &ShallowWaterSpec, frames: usize, stride: usize, rng: &mut R) -> Vec<f32> {
    let n = spec.size;
    let g = rng.gen_range(spec.gravity.0..=spec.gravity.1);
    let depth = rng.gen_range(spec.depth.0..=spec.depth.1);
    let h: Vec<f64> = GrfSpec::new(n).sample(1, rng).into_iter().map(f64::from).collect();
    let mut s = State { h, u: vec![0.0; n * n], v: vec![0.0; n * n] };
    let mut out = Vec::with_capacity(frames * 3 * n * n);
    for f in 0..frames {
        let steps = if f == 0 { spec.steps } else { stride * frame_steps(spec) };
        for _ in 0..steps {
            step(&mut s, n, spec.dx, spec.dt, spec.coriolis, g, depth);
        }
        out.extend(s.h.iter().chain(&s.u).chain(&s.v).map(|&x| x as f32));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const G: f64 = 10.0;
    const DEPTH: f64 = 100.0;

    fn random_state(n: usize, seed: u64) -> State {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let h: Vec<f64> = GrfSpec::new(n).sample(1, &mut rng).into_iter().map(|v| v as f64 + 3.0).collect();
        State { h, u: vec![0.0; n * n], v: vec![0.0; n * n] }
    }

    #[test]
    fn mass_is_conserved_exactly_and_energy_without_drift() {
        let spec = ShallowWaterSpec::default();
        let n = spec.size;
        let mut s = random_state(n, 0);
        let mass0: f64 = s.h.iter().sum();
        let e0 = energy(&s, G, DEPTH);
        let mut worst: f64 = 0.0;
        for _ in 0..2000 {
            step(&mut s, n, spec.dx, spec.dt, spec.coriolis, G, DEPTH);
            worst = worst.max((energy(&s, G, DEPTH) - e0).abs() / e0);
        }
        let mass1: f64 = s.h.iter().sum();
        assert!((mass1 - mass0).abs() < 1e-9 * mass0.abs(), "{mass0} → {mass1}");
        // Forward–backward energy oscillates at O(dt) but must not grow or decay over 2000 steps.
        assert!(worst < 0.02, "energy moved by {worst}");
        assert!(s.u.iter().any(|&u| u.abs() > 1e-3), "nothing happened");
    }

    #[test]
    fn long_gravity_wave_travels_at_sqrt_gh() {
        // Standing wave h = cos(2πx/L), f = 0: after L/(2c) it is inverted, after L/c restored.
        let spec = ShallowWaterSpec::default();
        let n = spec.size;
        let c = (G * DEPTH).sqrt();
        let length = n as f64 * spec.dx;
        let h0: Vec<f64> =
            (0..n * n).map(|i| (2.0 * std::f64::consts::PI * ((i % n) as f64 + 0.5) / n as f64).cos()).collect();
        let mut s = State { h: h0.clone(), u: vec![0.0; n * n], v: vec![0.0; n * n] };
        let period_steps = 2 * ((length / c / spec.dt / 2.0).round() as usize);
        let dt = length / c / period_steps as f64;
        for k in 0..period_steps {
            step(&mut s, n, spec.dx, dt, 0.0, G, DEPTH);
            if k + 1 == period_steps / 2 {
                let err = s.h.iter().zip(&h0).map(|(a, b)| (a + b).abs()).fold(0.0, f64::max);
                assert!(err < 0.05, "half period: not inverted ({err})");
            }
        }
        let err = s.h.iter().zip(&h0).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(err < 0.05, "full period: not restored ({err})");
    }

    #[test]
    fn uniform_current_turns_at_the_inertial_frequency() {
        // Flat h, uniform u = 1: u = cos(ft), v = −sin(ft); a quarter period turns it to v = −1.
        let spec = ShallowWaterSpec::default();
        let n = spec.size;
        let mut s = State { h: vec![0.0; n * n], u: vec![1.0; n * n], v: vec![0.0; n * n] };
        let quarter = std::f64::consts::PI / 2.0 / spec.coriolis;
        let steps = 200;
        for _ in 0..steps {
            step(&mut s, n, spec.dx, quarter / steps as f64, spec.coriolis, G, DEPTH);
        }
        assert!(
            s.u.iter().all(|&u| u.abs() < 0.02) && s.v.iter().all(|&v| (v + 1.0).abs() < 0.02),
            "{} {}",
            s.u[0],
            s.v[0]
        );
        assert!(s.h.iter().all(|&h| h.abs() < 1e-12));
    }
}
