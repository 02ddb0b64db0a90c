//! Synthetic data sets with known truth: fields + observation pattern → the `.npz` contract.

use super::advection::{self, AdvectionSpec};
use super::field::{Dims, FieldSet};
use super::grf::GrfSpec;
use super::kolmogorov::{self, KolmogorovSpec};
use super::pattern::Pattern;
use super::shallow_water::{self, ShallowWaterSpec};
use anyhow::{ensure, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A source of complete fields.
#[derive(Clone, Debug)]
pub enum Generator {
    Grf(GrfSpec),
    /// Vorticity snapshots, `per_run` of them from each simulation (after its spin-up).
    Kolmogorov {
        spec: KolmogorovSpec,
        per_run: usize,
    },
    ShallowWater(ShallowWaterSpec),
    Advection(AdvectionSpec),
    /// Trajectories `[T, C, H, W]` of a dynamic generator: `frames` states `stride` native
    /// intervals apart (Kolmogorov: its snapshot `interval`; shallow water: a tenth of its
    /// spin-up steps; advection: the time the fastest flow takes to cross one cell). Build with
    /// [`Generator::trajectories`].
    Trajectory {
        of: Box<Generator>,
        frames: usize,
        stride: usize,
    },
}

impl Generator {
    /// Trajectories of `frames` states `stride` native intervals apart (see
    /// [`Generator::Trajectory`]); `frames = 1` gives `of` unchanged. A GRF has no dynamics.
    pub fn trajectories(of: Generator, frames: usize, stride: usize) -> Result<Generator> {
        ensure!(frames >= 1 && stride >= 1, "--frames and --stride must be at least 1");
        if frames == 1 {
            return Ok(of);
        }
        ensure!(
            !matches!(of, Generator::Grf(_) | Generator::Trajectory { .. }),
            "a GRF has no dynamics: trajectories (--frames > 1) come from kolmogorov, shallow-water or advection"
        );
        Ok(Generator::Trajectory { of: Box::new(of), frames, stride })
    }

    pub fn dims(&self) -> Dims {
        match self {
            Generator::Grf(s) => Dims { t: 1, c: 1, h: s.size, w: s.size },
            Generator::Kolmogorov { spec, .. } => Dims { t: 1, c: 1, h: spec.size, w: spec.size },
            Generator::ShallowWater(s) => Dims { t: 1, c: 3, h: s.size, w: s.size },
            Generator::Advection(s) => Dims { t: 1, c: 1, h: s.size, w: s.size },
            Generator::Trajectory { of, frames, .. } => Dims { t: *frames, ..of.dims() },
        }
    }

    /// Fields produced per independent work item (one simulation run, or one sample).
    fn per_item(&self) -> usize {
        match self {
            Generator::Kolmogorov { per_run, .. } => (*per_run).max(1),
            _ => 1,
        }
    }

    fn item(&self, rng: &mut ChaCha8Rng) -> Vec<f32> {
        match self {
            Generator::Grf(s) => s.sample(1, rng),
            Generator::Kolmogorov { spec, per_run } => kolmogorov::run(spec, *per_run, rng).concat(),
            Generator::ShallowWater(s) => shallow_water::sample(s, rng),
            Generator::Advection(s) => advection::sample(s, rng),
            Generator::Trajectory { of, frames, stride } => match of.as_ref() {
                Generator::Kolmogorov { spec, .. } => {
                    let spec = KolmogorovSpec { interval: spec.interval * *stride as f64, ..*spec };
                    kolmogorov::run(&spec, *frames, rng).concat()
                }
                Generator::ShallowWater(s) => shallow_water::trajectory(s, *frames, *stride, rng),
                Generator::Advection(s) => advection::trajectory(s, *frames, *stride, rng),
                // `trajectories` builds no other kind.
                other => other.item(rng),
            },
        }
    }

    /// `n` complete fields `[n, C, H, W]` (or trajectories `[n, T, C, H, W]`). Work item i draws from its own stream (i + 1) of
    /// `seed`, so the result does not depend on the number of threads; `progress(done, total)`
    /// is called as items finish.
    pub fn fields(&self, n: usize, seed: u64, threads: usize, progress: &(dyn Fn(usize, usize) + Sync)) -> Vec<f32> {
        let items = n.div_ceil(self.per_item());
        let results: Mutex<Vec<Option<Vec<f32>>>> = Mutex::new(vec![None; items]);
        let (next, done) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for _ in 0..threads.clamp(1, items.max(1)) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items {
                        break;
                    }
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    rng.set_stream(i as u64 + 1);
                    let out = self.item(&mut rng);
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(out);
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, items);
                });
            }
        });
        let len = self.dims().len();
        let mut all: Vec<f32> =
            results.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().flatten().flatten().collect();
        all.truncate(n * len);
        all
    }
}

/// `n` fields of `generator` divided by `scale`, observed through `pattern` (masks from
/// stream 0 of `seed`, static in time), with `truth` kept for evaluation.
pub fn generate(
    generator: &Generator,
    n: usize,
    pattern: &Pattern,
    seed: u64,
    scale: f64,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<FieldSet> {
    generate_in_time(generator, n, pattern, false, seed, scale, progress)
}

/// As [`generate`]; with `per_frame` every frame of a trajectory draws its own mask.
pub fn generate_in_time(
    generator: &Generator,
    n: usize,
    pattern: &Pattern,
    per_frame: bool,
    seed: u64,
    scale: f64,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<FieldSet> {
    ensure!(n >= 1, "need at least one field");
    ensure!(scale.is_finite() && scale > 0.0, "scale must be positive");
    let dims = generator.dims();
    pattern.check(dims)?;
    // The set (values, mask, truth) and the solvers' spectral work arrays, before any is made.
    crate::memory::check_fits(
        &format!("generating {n} samples of {}", dims.describe()),
        crate::memory::product(&[n, dims.len(), 9]).saturating_add(crate::memory::product(&[dims.sites(), 4, 16 * 8])),
        "lower --n or --size",
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut truth = match generator {
        // GRFs are cheap: one stream for fields then masks (the demo's data since the start).
        Generator::Grf(spec) => spec.sample(n, &mut rng),
        _ => {
            let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
            generator.fields(n, seed, threads, progress)
        }
    };
    if scale != 1.0 {
        truth.iter_mut().for_each(|v| *v = (*v as f64 / scale) as f32);
    }
    ensure!(truth.iter().all(|v| v.is_finite()), "the generator produced non-finite values (unstable settings?)");
    let mask = pattern.draw_set_in_time(n, dims, per_frame, &mut rng)?;
    FieldSet::new(n, dims, truth.clone(), mask, Some(truth))
}

/// `n` GRF fields (one channel) observed through `pattern`, with `truth` kept for evaluation.
pub fn grf_set(spec: &GrfSpec, n: usize, pattern: &Pattern, seed: u64) -> Result<FieldSet> {
    generate(&Generator::Grf(*spec), n, pattern, seed, 1.0, &|_, _| {})
}

/// The Bayes-optimal completion of a GRF set under the true covariance.
pub struct Oracle {
    /// Posterior mean `E[u0 | u_obs, M]`, observations pasted, `[N, 1, H, W]`.
    pub mean: Vec<f32>,
    /// Posterior variance per entry (0 on observed entries).
    pub variance: Vec<f32>,
    /// Mean posterior variance over the missing entries: the Bayes MSE.
    pub bayes_mse: f64,
}

/// The posterior mean of [`grf_oracle`] alone (no per-site variances: several times faster when
/// most sites are observed).
pub fn grf_oracle_mean(spec: &GrfSpec, set: &FieldSet) -> Result<Vec<f32>> {
    Ok(krige_set(spec, set, false)?.0)
}

/// Posterior mean (observations pasted) and variance (0 where observed) of every field, each
/// conditioned only at its missing sites.
fn krige_set(spec: &GrfSpec, set: &FieldSet, with_variance: bool) -> Result<(Vec<f32>, Vec<f32>)> {
    let table = spec.covariance();
    let len = set.dims.len();
    let mut mean = set.values.clone();
    let mut variance = vec![0f32; set.values.len()];
    for i in 0..set.n {
        let (vals, m) = (&set.values[i * len..(i + 1) * len], &set.mask[i * len..(i + 1) * len]);
        let observed: Vec<usize> = (0..len).filter(|&k| m[k] != 0).collect();
        let missing: Vec<usize> = (0..len).filter(|&k| m[k] == 0).collect();
        let y: Vec<f64> = observed.iter().map(|&k| vals[k] as f64).collect();
        let (mu, var) = super::grf::condition_at(
            |a, b| spec.cov_at(&table, a, b),
            &observed,
            &y,
            1.0,
            0.0,
            &missing,
            with_variance,
        )?;
        for (t, &k) in missing.iter().enumerate() {
            mean[i * len + k] = mu[t] as f32;
            variance[i * len + k] = var[t] as f32;
        }
    }
    Ok((mean, variance))
}

/// Kriging of every field of `set` with the exact covariance of `spec`.
pub fn grf_oracle(spec: &GrfSpec, set: &FieldSet) -> Result<Oracle> {
    let (mean, variance) = krige_set(spec, set, true)?;
    let missing: Vec<f64> = variance.iter().zip(&set.mask).filter(|(_, &m)| m == 0).map(|(&v, _)| v as f64).collect();
    let bayes_mse = missing.iter().sum::<f64>() / missing.len().max(1) as f64;
    Ok(Oracle { mean, variance, bayes_mse })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg;

    /// Inverse of an SPD matrix through its Cholesky factor, column by column.
    fn inverse(a: &[f64], n: usize) -> Vec<f64> {
        let l = linalg::cholesky(a, n).unwrap();
        let mut inv = vec![0.0; n * n];
        for j in 0..n {
            let e: Vec<f64> = (0..n).map(|i| f64::from(u8::from(i == j))).collect();
            for (i, v) in linalg::cholesky_solve(&l, n, &e).into_iter().enumerate() {
                inv[i * n + j] = v;
            }
        }
        inv
    }

    #[test]
    fn oracle_matches_the_precision_matrix_formula_and_reproduces_observations() {
        // An independent route to the same posterior: with Q = Σ⁻¹ of the whole field,
        // E[u_M | u_O] = −Q_MM⁻¹ Q_MO u_O and Cov[u_M | u_O] = Q_MM⁻¹.
        let spec = GrfSpec { size: 6, length_scale: 1.5, smoothness: 1.0, variance: 1.3 };
        let set = grf_set(&spec, 2, &Pattern::Pixel { observed: 0.4 }, 11).unwrap();
        let oracle = grf_oracle(&spec, &set).unwrap();
        let d = 36;
        let table = spec.covariance();
        let sigma: Vec<f64> = (0..d * d).map(|k| spec.cov_at(&table, k / d, k % d)).collect();
        let q = inverse(&sigma, d);
        for f in 0..2 {
            let (vals, m) = (&set.values[f * d..(f + 1) * d], &set.mask[f * d..(f + 1) * d]);
            let miss: Vec<usize> = (0..d).filter(|&i| m[i] == 0).collect();
            let obs: Vec<usize> = (0..d).filter(|&i| m[i] != 0).collect();
            let k = miss.len();
            let qmm: Vec<f64> = (0..k * k).map(|t| q[miss[t / k] * d + miss[t % k]]).collect();
            let cov_m = inverse(&qmm, k);
            for (a, &i) in miss.iter().enumerate() {
                let mut mean = 0.0;
                for (b, _) in miss.iter().enumerate() {
                    let qmo_u: f64 = obs.iter().map(|&j| q[miss[b] * d + j] * vals[j] as f64).sum();
                    mean -= cov_m[a * k + b] * qmo_u;
                }
                assert!((oracle.mean[f * d + i] as f64 - mean).abs() < 1e-4, "mean at {i}");
                assert!((oracle.variance[f * d + i] as f64 - cov_m[a * k + a]).abs() < 1e-4, "variance at {i}");
            }
            for &j in &obs {
                assert_eq!(oracle.mean[f * d + j], vals[j]);
            }
        }
        let fast = grf_oracle_mean(&spec, &set).unwrap();
        for (a, b) in fast.iter().zip(&oracle.mean) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    /// A trajectory starts at the snapshot the same seed gives, and its frames move on in time:
    /// advection frames are the first one translated (same energy), shallow-water frames keep
    /// the mass, Kolmogorov frames `stride` intervals apart are the run's snapshots.
    #[test]
    fn trajectories_start_at_the_snapshot_and_evolve() {
        let frames_of = |g: Generator, t: usize, stride: usize| {
            let traj = Generator::trajectories(g.clone(), t, stride).unwrap();
            assert_eq!(traj.dims(), Dims { t, ..g.dims() });
            (g.fields(g.per_item(), 4, 1, &|_, _| {}), traj.fields(1, 4, 1, &|_, _| {}))
        };
        let energy = |f: &[f32]| f.iter().map(|v| (*v as f64).powi(2)).sum::<f64>();
        let adv = Generator::Advection(AdvectionSpec { size: 16, ..Default::default() });
        let (snap, traj) = frames_of(adv, 3, 2);
        assert_eq!(traj[..256], snap[..]);
        assert!(traj[256..512] != traj[..256], "advection frames do not move");
        assert!((energy(&traj[512..]) - energy(&snap)).abs() < 1e-3 * energy(&snap));

        let sw = Generator::ShallowWater(ShallowWaterSpec { size: 8, ..Default::default() });
        let (snap, traj) = frames_of(sw, 2, 1);
        let len = 3 * 64;
        assert_eq!(traj[..len], snap[..]);
        let mass = |f: &[f32]| f[..64].iter().map(|&v| v as f64).sum::<f64>();
        assert!((mass(&traj[len..]) - mass(&snap)).abs() < 1e-3 && traj[len..] != snap[..]);

        let spec = KolmogorovSpec { resolution: 16, size: 8, spinup: 0.5, interval: 0.25, ..Default::default() };
        let (runs, traj) = frames_of(Generator::Kolmogorov { spec, per_run: 5 }, 3, 2);
        // Frames 0, 1, 2 at stride 2 are snapshots 0, 2, 4 of a run with the same stream.
        for (f, j) in [(0, 0), (1, 2), (2, 4)] {
            let (a, b) = (&traj[f * 64..(f + 1) * 64], &runs[j * 64..(j + 1) * 64]);
            let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-3 * b.iter().fold(0f32, |m, v| m.max(v.abs())), "frame {f} vs snapshot {j}: {diff}");
        }
        assert!(Generator::trajectories(Generator::Grf(GrfSpec::new(8)), 2, 1).is_err());
    }

    #[test]
    fn generation_is_independent_of_thread_count() {
        let g = Generator::Advection(AdvectionSpec { size: 8, ..Default::default() });
        let one = g.fields(5, 3, 1, &|_, _| {});
        let four = g.fields(5, 3, 4, &|_, _| {});
        assert_eq!(one, four);
        assert_eq!(one.len(), 5 * 64);
        assert_ne!(one[..64], one[64..128]);
        let runs = Generator::Kolmogorov {
            spec: KolmogorovSpec { resolution: 16, size: 8, spinup: 0.5, interval: 0.5, ..Default::default() },
            per_run: 2,
        };
        assert_eq!(runs.fields(3, 0, 2, &|_, _| {}), runs.fields(3, 0, 1, &|_, _| {}));
    }
}
