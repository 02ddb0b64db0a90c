//! Inference: the single-step context ensemble and the multi-step ensemble sampler.
//!
//! Single step (spec §4.1), δ = t_eps:
//!
//! ```text
//! u_δ^(k) = α_δ u_obs + σ_δ ε_k
//! μ̂_K    = (1/K) Σ_k u_φ(δ, M_ctx^(k) ⊙ u_δ^(k), M_ctx^(k)),   M_ctx^(k) ~ partition(M)
//! output  = M ⊙ u_obs + (1 − M) ⊙ μ̂_K
//! ```
//!
//! Multi-step (spec §4.2, with the DDIM step done correctly), on the grid 1 = s_0 > … > s_N = δ:
//!
//! ```text
//! x̂(s)   = w(s) μ̂_K + (1 − w(s)) u_φ(s, M_rnd ⊙ x_s, M_rnd)     w(s) = s (linear) or s² (quadratic)
//! ε_obs   = (x_s − α_s u_obs)/σ_s,   ε_unobs = (x_s − α_s x̂(s))/σ_s
//! ε       = M ⊙ ε_obs + (1 − M) ⊙ ε_unobs                             (RePaint merge)
//! x_t     = α_t x̂_0 + σ_t ε,   x̂_0 = (x_s − σ_s ε)/α_s                (DDIM, deterministic)
//! ```
//!
//! and a final K-member ensemble at δ on the last state. M_rnd is a context of a random
//! observation of the same pattern (not inside M), so `E[u0 | u_t]` sees the whole field.
//! Different initial noise gives different posterior samples.
//!
//! Where the fields' law is declared invariant under circular shifts, every network call rolls
//! each member's input by a random multiple of the declared step and its prediction back
//! ([`super::symmetry`]), so members differ by a symmetry as well as by their context and noise;
//! declared reflections map member k by the group's k-th element and its prediction back.

use super::denoiser::{dims_of, Denoiser};
use super::mask_tensor;
use super::partition::Contexts;
use super::schedule::VpSchedule;
use super::symmetry::{inverse, member_reflections, random_shifts, reflected, shifted, unreflected, Holds};
use crate::config::{Reflections, TrainConfig};
use anyhow::{ensure, Result};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use tch::{Kind, Tensor};

/// How ω_t, the weight of `E[u0 | u_t]`, grows as sampling proceeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Weighting {
    Linear,
    Quadratic,
}

/// The members of an ensemble at one network call: K per row, the declared shift symmetry
/// `[rows, columns]` each member is rolled by (`[0, 0]`: none) and the declared reflections
/// cycled over the members (about index 0 on a `periodic` grid, the centre otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Members {
    pub k: usize,
    pub shift: [usize; 2],
    pub reflections: Reflections,
    /// The declared shift symmetry (`shift-reflect` rolls by half its rows), whether or not
    /// members are rolled by it.
    pub shift_symmetry: [usize; 2],
    pub periodic: bool,
}

impl Members {
    /// K members, no symmetry.
    pub fn plain(k: usize) -> Members {
        Members { k, shift: [0, 0], reflections: Reflections::None, shift_symmetry: [0, 0], periodic: false }
    }

    /// K members under the symmetries a run's config declares for inference.
    pub fn of(cfg: &TrainConfig, k: usize) -> Members {
        Members {
            k,
            shift: cfg.inference_shift(),
            reflections: cfg.reflections,
            shift_symmetry: cfg.shift_symmetry,
            periodic: cfg.periodic,
        }
    }

    fn with_k(self, k: usize) -> Members {
        Members { k, ..self }
    }
}

/// Inference settings.
#[derive(Clone, Copy, Debug)]
pub struct Inference {
    /// K, the number of context masks averaged, and the shifts members are rolled by.
    pub ensemble: Members,
    /// 1 for the single-step ensemble; more for the multi-step sampler.
    pub steps: usize,
    pub weighting: Weighting,
}

/// Runs `den` over `[B, ...]` inputs in chunks of its `max_batch`.
fn denoise_chunked(den: &dyn Denoiser, t: &Tensor, ctx: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let b = ctx.size()[0];
    let chunk = den.max_batch().max(1) as i64;
    if b <= chunk {
        return den.denoise(t, ctx, mask);
    }
    let mut outs = Vec::new();
    let mut start = 0;
    while start < b {
        let len = chunk.min(b - start);
        outs.push(den.denoise(&t.narrow(0, start, len), &ctx.narrow(0, start, len), &mask.narrow(0, start, len))?);
        start += len;
    }
    Ok(Tensor::cat(&outs, 0))
}

/// `den` on the members `ctx` `[B·K, ...]` (K = `members.k` per row of `rngs`, member-major)
/// with values `x`: `u_φ(t, ctx ⊙ x, ctx)`, each member reflected by its element of the
/// declared group and rolled by a random multiple of the declared shift drawn from its row's
/// stream, and its prediction rolled and reflected back.
fn denoise_members(
    den: &dyn Denoiser,
    t: &Tensor,
    ctx: &Tensor,
    x: &Tensor,
    members: Members,
    rngs: &mut [ChaCha8Rng],
) -> Result<Tensor> {
    let (mut input, mut ctx) = (ctx * x, ctx.shallow_clone());
    let gs = (members.reflections != Reflections::None)
        .then(|| member_reflections(members.reflections, members.shift_symmetry, rngs.len(), members.k));
    if let Some(gs) = &gs {
        input = reflected(&input, gs, members.periodic, Holds::Values);
        ctx = reflected(&ctx, gs, members.periodic, Holds::Masks);
    }
    let pred = if members.shift == [0, 0] {
        denoise_chunked(den, t, &input, &ctx)?
    } else {
        let d = dims_of(&ctx);
        let shifts: Vec<(i64, i64)> =
            rngs.iter_mut().flat_map(|rng| random_shifts(members.shift, d, members.k, rng)).collect();
        let pred = denoise_chunked(den, t, &shifted(&input, &shifts), &shifted(&ctx, &shifts))?;
        shifted(&pred, &inverse(&shifts))
    };
    Ok(match &gs {
        Some(gs) => unreflected(&pred, gs, members.periodic, Holds::Values),
        None => pred,
    })
}

fn masks_like(masks: &[Vec<u8>], like: &Tensor) -> Tensor {
    mask_tensor(masks.iter().map(Vec::as_slice), dims_of(like), like.device())
}

/// The K context masks for every sample, member-major within a sample: `[B·K, C, H, W]`.
/// Row b draws from `rngs[b]`, so results do not depend on how rows are batched.
fn contexts(
    draw: &Contexts,
    masks: &[Vec<u8>],
    k: usize,
    like: &Tensor,
    rngs: &mut [ChaCha8Rng],
    random: bool,
) -> Result<Tensor> {
    let mut all = Vec::with_capacity(masks.len() * k);
    for (m, rng) in masks.iter().zip(rngs.iter_mut()) {
        // Member j takes the j-th guided draw of its mask: K distinct draws, not K with replacement.
        for member in 0..k {
            all.push(if random { draw.random(m, rng)? } else { draw.split_visit(m, Some(member), rng)?.context });
        }
    }
    Ok(masks_like(&all, like))
}

/// Standard normal noise `[B·K, C, H, W]`, K members per row drawn from that row's stream (in
/// Rust, so the numbers are the same on every device and for every chunking).
fn noise(rngs: &mut [ChaCha8Rng], k: usize, like: &Tensor) -> Tensor {
    let d = dims_of(like);
    let flat: Vec<f32> = rngs
        .iter_mut()
        .flat_map(|rng| (0..k * d.len()).map(|_| rng.sample::<f32, _>(StandardNormal)).collect::<Vec<_>>())
        .collect();
    Tensor::from_slice(&flat)
        .view([(rngs.len() * k) as i64, d.c as i64, d.h as i64, d.w as i64])
        .to_device(like.device())
}

/// `[B, ...]` → `[B·K, ...]`, each sample repeated K times in a row.
fn repeat_members(x: &Tensor, k: usize) -> Tensor {
    x.repeat_interleave_self_int(k as i64, 0, None)
}

/// `[B·K, ...]` → mean over members → `[B, ...]`.
fn member_mean(x: &Tensor, k: usize) -> Tensor {
    let mut shape = x.size();
    shape[0] /= k as i64;
    shape.insert(1, k as i64);
    x.view(shape.as_slice()).mean_dim(1, false, Kind::Float)
}

/// The single-step ensemble estimate of `E[u0 | u_obs, M]` on `x` = `[B, C, H, W]` (normalised,
/// 0 outside M), observations pasted back.
pub fn single_step(
    den: &dyn Denoiser,
    schedule: &VpSchedule,
    draw: &Contexts,
    u_obs: &Tensor,
    masks: &[Vec<u8>],
    members: Members,
    rngs: &mut [ChaCha8Rng],
) -> Result<Tensor> {
    ensure!(members.k >= 1, "the ensemble needs K ≥ 1");
    ensure!(rngs.len() == masks.len(), "internal: one random stream per row is needed");
    let m = masks_like(masks, u_obs);
    let mu = ensemble_at_delta(den, schedule, draw, u_obs, masks, members, rngs)?;
    Ok(&m * u_obs + (1.0 - &m) * mu)
}

/// `μ̂_K` at δ = t_eps, without pasting back.
fn ensemble_at_delta(
    den: &dyn Denoiser,
    schedule: &VpSchedule,
    draw: &Contexts,
    u_obs: &Tensor,
    masks: &[Vec<u8>],
    members: Members,
    rngs: &mut [ChaCha8Rng],
) -> Result<Tensor> {
    let k = members.k;
    let ctx = contexts(draw, masks, k, u_obs, rngs, false)?;
    let x = repeat_members(u_obs, k);
    let delta = schedule.t_eps;
    let u_delta = &x * schedule.alpha(delta) + noise(rngs, k, u_obs) * schedule.sigma(delta);
    let t = Tensor::full([ctx.size()[0]], delta, (Kind::Float, u_obs.device()));
    let pred = denoise_members(den, &t, &ctx, &u_delta, members, rngs)?;
    Ok(member_mean(&pred, k))
}

/// One posterior sample per row of `u_obs` from the multi-step ensemble sampler.
pub fn multi_step(
    den: &dyn Denoiser,
    schedule: &VpSchedule,
    draw: &Contexts,
    u_obs: &Tensor,
    masks: &[Vec<u8>],
    inf: &Inference,
    rngs: &mut [ChaCha8Rng],
) -> Result<Tensor> {
    ensure!(inf.steps >= 2, "the multi-step sampler needs at least 2 steps");
    ensure!(rngs.len() == masks.len(), "internal: one random stream per row is needed");
    let m = masks_like(masks, u_obs);
    let mu0 = ensemble_at_delta(den, schedule, draw, u_obs, masks, inf.ensemble, rngs)?;
    let grid = schedule.grid(inf.steps);
    let b = u_obs.size()[0];
    // Start from the forward process at s = 1 everywhere (the official code starts unobserved entries at 0).
    let mut x = u_obs * schedule.alpha(grid[0]) + noise(rngs, 1, u_obs) * schedule.sigma(grid[0]);
    for win in grid.windows(2) {
        let (s, t) = (win[0], win[1]);
        let ctx = contexts(draw, masks, 1, u_obs, rngs, true)?;
        let ts = Tensor::full([b], s, (Kind::Float, u_obs.device()));
        let pred = denoise_members(den, &ts, &ctx, &x, inf.ensemble.with_k(1), rngs)?;
        let w = match inf.weighting {
            Weighting::Linear => s,
            Weighting::Quadratic => s * s,
        };
        let x0_model = &mu0 * w + pred * (1.0 - w);
        let (a_s, s_s) = (schedule.alpha(s), schedule.sigma(s));
        let eps_obs = (&x - u_obs * a_s) / s_s;
        let eps_unobs = (&x - x0_model * a_s) / s_s;
        let eps = &m * eps_obs + (1.0 - &m) * eps_unobs;
        let x0 = (&x - &eps * s_s) / a_s;
        x = x0 * schedule.alpha(t) + eps * schedule.sigma(t);
    }
    // Final estimate: a K-member ensemble at δ on the last state, with random contexts.
    let k = inf.ensemble.k;
    let ctx = contexts(draw, masks, k, u_obs, rngs, true)?;
    let delta = *grid.last().unwrap_or(&schedule.t_eps);
    let t = Tensor::full([b * k as i64], delta, (Kind::Float, u_obs.device()));
    let pred = member_mean(&denoise_members(den, &t, &ctx, &repeat_members(&x, k), inf.ensemble, rngs)?, k);
    Ok(&m * u_obs + (1.0 - &m) * pred)
}

#[cfg(test)]
mod tests {
    //! Theorem 2 of the spec (§9 T2) on the exact Gaussian denoiser: MSE(K) = a + b/K.
    use super::*;
    use crate::data::grf::GrfSpec;
    use crate::data::{Dims, Pattern};
    use crate::method::denoiser::GaussianDenoiser;
    use crate::method::partition::InTime;
    use crate::method::Partition;
    use rand::SeedableRng;

    #[test]
    fn ensemble_error_falls_as_a_plus_b_over_k() {
        let spec = GrfSpec { size: 8, length_scale: 2.0, smoothness: 1.0, variance: 1.0 };
        let den = GaussianDenoiser::new(spec, VpSchedule::default());
        let dims = Dims { t: 1, c: 1, h: 8, w: 8 };
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let part = Partition::Pixel { context_ratio: 0.5, query_ratio: None };
        // A few fixed fields and observations; the error is averaged over context draws.
        let fields = spec.sample(4, &mut rng);
        let masks: Vec<Vec<u8>> = (0..4).map(|_| Pattern::Pixel { observed: 0.4 }.draw(dims, &mut rng)).collect();
        let obs_vals: Vec<f32> = fields.iter().zip(masks.iter().flatten()).map(|(&v, &m)| v * m as f32).collect();
        let u_obs = Tensor::from_slice(&obs_vals).view([4, 1, 8, 8]);
        let target: Vec<f64> = (0..4)
            .flat_map(|i| {
                let observed: Vec<usize> = (0..64).filter(|&j| masks[i][j] != 0).collect();
                den.krige(&fields[i * 64..(i + 1) * 64], &observed).unwrap().0
            })
            .collect();
        let mut rngs: Vec<ChaCha8Rng> = (0..4).map(|i| ChaCha8Rng::seed_from_u64(100 + i)).collect();
        let ks = [1usize, 2, 4, 8, 16];
        let reps = 40;
        let mut mse = Vec::new();
        for &k in &ks {
            let mut acc = 0.0;
            for _ in 0..reps {
                let draw = Contexts { partition: &part, dims, in_time: InTime::Shared };
                let est =
                    single_step(&den, &VpSchedule::default(), &draw, &u_obs, &masks, Members::plain(k), &mut rngs)
                        .unwrap();
                let est: Vec<f32> = Vec::try_from(est.flatten(0, -1)).unwrap();
                acc += est.iter().zip(&target).map(|(&e, &t)| (e as f64 - t).powi(2)).sum::<f64>() / est.len() as f64;
            }
            mse.push(acc / reps as f64);
        }
        // Least-squares fit of mse = a + b/K.
        let xs: Vec<f64> = ks.iter().map(|&k| 1.0 / k as f64).collect();
        let n = xs.len() as f64;
        let (mx, my) = (xs.iter().sum::<f64>() / n, mse.iter().sum::<f64>() / n);
        let b = xs.iter().zip(&mse).map(|(x, y)| (x - mx) * (y - my)).sum::<f64>()
            / xs.iter().map(|x| (x - mx).powi(2)).sum::<f64>();
        let a = my - b * mx;
        let resid = xs.iter().zip(&mse).map(|(x, y)| (y - a - b * x).abs()).fold(0.0, f64::max);
        assert!(b > 0.0 && a > -0.05 * mse[0], "fit a={a} b={b} from {mse:?}");
        assert!(resid < 0.1 * mse[0], "a + b/K does not fit: residual {resid}, a={a} b={b}, mse {mse:?}");
        assert!(mse[4] < 0.5 * mse[0], "averaging K=16 contexts should remove most variance: {mse:?}");
    }

    /// A denoiser that ignores its input and marks the site (0, 0): not shift-equivariant.
    struct Marker;
    impl Denoiser for Marker {
        fn denoise(&self, _t: &Tensor, context: &Tensor, _mask: &Tensor) -> Result<Tensor> {
            let out = context.zeros_like();
            let _ = out.narrow(2, 0, 1).narrow(3, 0, 1).fill_(1.0);
            Ok(out)
        }
    }

    /// The single-step output of [`Marker`] on one empty 4×6 observation with `members`, flat.
    fn marked(members: Members) -> Vec<f32> {
        let dims = Dims { t: 1, c: 1, h: 4, w: 6 };
        let masks = vec![vec![0u8; 24]];
        let u = Tensor::zeros([1, 1, 4, 6], (Kind::Float, tch::Device::Cpu));
        let part = Partition::Pixel { context_ratio: 0.5, query_ratio: None };
        let draw = Contexts { partition: &part, dims, in_time: InTime::Shared };
        let mut rngs = [ChaCha8Rng::seed_from_u64(4)];
        let out = single_step(&Marker, &VpSchedule::default(), &draw, &u, &masks, members, &mut rngs).unwrap();
        Vec::<f32>::try_from(out.flatten(0, -1)).unwrap()
    }

    /// Members rolled by a declared shift put their predictions back where they belong: the
    /// marker lands on every multiple of the step (about evenly), and nowhere without shifts.
    #[test]
    fn shifted_members_average_over_the_declared_shifts() {
        let run = |shift| marked(Members { shift, ..Members::plain(400) });
        let plain = run([0, 0]);
        assert_eq!(plain[0], 1.0);
        assert!(plain[1..].iter().all(|&v| v == 0.0), "{plain:?}");
        // Rows by 2, columns by 3: the marks sit at rows {0, 2} × columns {0, 3}.
        let rolled = run([2, 3]);
        for (i, &v) in rolled.iter().enumerate() {
            let (r, c) = (i / 6, i % 6);
            if r % 2 == 0 && c % 3 == 0 {
                assert!((v - 0.25).abs() < 0.08, "site ({r}, {c}) got {v}: {rolled:?}");
            } else {
                assert_eq!(v, 0.0, "site ({r}, {c})");
            }
        }
        assert!((rolled.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    /// Declared reflections spread the members evenly over the group: a denoiser that marks
    /// site (0, 0) whatever its input lands, mapped back, on the four corners under the axes
    /// group about the centre (a quarter each, exactly: member k takes element k mod 4), and
    /// stays at the origin under a rotation by π about index 0 on a periodic grid.
    #[test]
    fn reflected_members_spread_over_the_declared_group() {
        let run = |reflections, periodic| marked(Members { reflections, periodic, ..Members::plain(8) });
        let corners = run(Reflections::Axes, false);
        for (i, &v) in corners.iter().enumerate() {
            let want = if [0, 5, 18, 23].contains(&i) { 0.25 } else { 0.0 };
            assert!((v - want).abs() < 1e-6, "site {i} got {v}: {corners:?}");
        }
        let origin = run(Reflections::Rot180, true);
        assert!((origin[0] - 1.0).abs() < 1e-6 && origin[1..].iter().all(|&v| v == 0.0), "{origin:?}");
    }

    #[test]
    fn multi_step_keeps_observations_and_varies_between_samples() {
        let spec = GrfSpec { size: 8, length_scale: 2.0, smoothness: 1.0, variance: 1.0 };
        let den = GaussianDenoiser::new(spec, VpSchedule::default());
        let dims = Dims { t: 1, c: 1, h: 8, w: 8 };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let f = spec.sample(1, &mut rng);
        let m = Pattern::Pixel { observed: 0.3 }.draw(dims, &mut rng);
        let obs: Vec<f32> = f.iter().zip(&m).map(|(&v, &o)| v * o as f32).collect();
        let u = Tensor::from_slice(&obs).view([1, 1, 8, 8]).repeat([2, 1, 1, 1]);
        let masks = vec![m.clone(), m.clone()];
        let inf = Inference { ensemble: Members::plain(4), steps: 10, weighting: Weighting::Linear };
        let out = multi_step(
            &den,
            &VpSchedule::default(),
            &Contexts { partition: &Partition::default(), dims, in_time: InTime::Shared },
            &u,
            &masks,
            &inf,
            &mut [ChaCha8Rng::seed_from_u64(1), ChaCha8Rng::seed_from_u64(2)],
        )
        .unwrap();
        let out: Vec<f32> = Vec::try_from(out.flatten(0, -1)).unwrap();
        for j in 0..64 {
            if m[j] != 0 {
                assert_eq!(out[j], obs[j]);
                assert_eq!(out[64 + j], obs[j]);
            }
        }
        let diff: f32 = (0..64).filter(|&j| m[j] == 0).map(|j| (out[j] - out[64 + j]).abs()).sum();
        assert!(diff > 1e-3, "two samples were identical");
        assert!(out.iter().all(|v| v.is_finite()));
    }
}
