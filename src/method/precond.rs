//! The denoiser seam shared by the training loss and every sampler: what the raw network sees
//! and how its output becomes `x̂0`. k-diffusion's `Denoiser` wrapper, adapted to the VP
//! schedule and to context masks (query entries have no input value).
//!
//! With data normalised to unit variance (σ_data = 1) and `x_t = α x0 + σ ε`, EDM's
//! preconditioning in the variable `x_t / α` (noise level s = σ/α) reduces to
//!
//! ```text
//! c_in = 1 (VP inputs already have unit variance),  c_skip x̃ = α x_t,  c_out = σ,  c_noise = ¼ ln s
//! ```
//!
//! On entries outside the context there is no `x_t` to skip from. There the skip is a classical
//! interpolant of the context, `fill(M_ctx, α M_ctx ⊙ x_t)` (α x_t = E[x0 | x_t] per entry), and
//! the network learns the residual:
//!
//! ```text
//! x̂0 = M_ctx ⊙ (c_skip·α x_t + c_out·σ F) + (1 − M_ctx) ⊙ (c_skip·fill + c_out_q F)
//! F  = F_φ(c_noise, [M_ctx, M_ctx ⊙ x_t, fill?])
//! ```
//!
//! `Skip::None` is the raw network (c_skip = 0, c_out = c_out_q = 1: x̂0 = F) and with
//! `NoiseCond::Time` and no fill input it is exactly the published parameterisation. The fill
//! depends on the context only, so `x̂0` is still a function of the context and the framework's
//! theory (the loss never sees the query's values as input) holds unchanged.

use super::kriging::Kriging;
use super::schedule::{AlphaSigma, VpSchedule};
use anyhow::{Context, Result};
use lacuna_core::baseline::krige::CovModel;
use std::sync::Arc;
use tch::{Kind, Tensor};

pub use crate::config::denoiser::{DenoiserConfig, FillKind, Interpolant, NoiseCond, Skip};

/// A configured denoiser parameterisation over a schedule. `raw` is the network:
/// `raw(noise_cond [B], input [B, T·inputs·C, H, W]) → [B, T·C, H, W]`, its input planes
/// grouped per frame as `[mask, values, fill?]` of C planes each.
#[derive(Clone, Debug)]
pub struct Precond {
    pub config: DenoiserConfig,
    pub schedule: VpSchedule,
    /// Physical channels per frame (C); the tensors carry T·C planes.
    pub channels: i64,
    /// The fields wrap around in both space directions (the fill's neighbours do too).
    pub periodic: bool,
    /// The fitted kriging interpolant (`Interpolant::Krige` only).
    pub kriging: Option<Arc<Kriging>>,
}

impl Precond {
    /// The parameterisation a run's config asks for, for samples of `dims`. `covariance` is the
    /// fitted covariance per channel of a run whose interpolant is kriging: `Interpolant::Krige`
    /// needs it, and under `Interpolant::Auto` its presence is the run's choice of kriging
    /// (`run::interpolant`).
    pub fn of(
        cfg: &crate::config::TrainConfig,
        dims: crate::data::Dims,
        covariance: Option<&[CovModel]>,
    ) -> Result<Precond> {
        let models =
            match cfg.denoiser.interpolant {
                Interpolant::Fill => None,
                Interpolant::Krige => Some(covariance.context(
                    "denoiser.interpolant = \"krige\" but the run has no fitted covariance (interpolant.json)",
                )?),
                // The run's choice: kriging exactly when it kept a covariance for it.
                Interpolant::Auto => covariance,
            };
        let kriging = match models {
            None => None,
            Some(models) => {
                anyhow::ensure!(
                    models.len() == dims.c,
                    "the run's covariance has {} channel(s), the fields {}",
                    models.len(),
                    dims.c
                );
                Some(Arc::new(Kriging::new(models, dims.h, dims.w, cfg.periodic)?))
            }
        };
        Ok(Precond {
            config: cfg.denoiser.clone(),
            schedule: cfg.schedule,
            channels: dims.c as i64,
            periodic: cfg.periodic,
            kriging,
        })
    }

    /// The interpolant of the context `context = M_ctx ⊙ x_t` at noise levels (α, σ) `[B, 1, 1, 1]`:
    /// the fill of `α x_t`, or the kriging mean from `x_t / α` with noise variance (σ/α)².
    fn interpolant(&self, context: &Tensor, mask: &Tensor, alpha: &Tensor, sigma: &Tensor) -> Tensor {
        let c = &self.config;
        match &self.kriging {
            Some(k) => {
                let noise = (sigma / alpha).square().view([-1]);
                k.predict(&(context / alpha), mask, &noise)
            }
            None => fill(&(context * alpha), mask, c.fill_sweeps, c.fill_cg, self.periodic, c.fill_kind),
        }
    }

    /// `x̂0` for times `t` `[B]`, context values `M_ctx ⊙ x_t` and context masks `[B, T·C, H, W]`.
    pub fn denoise(
        &self,
        raw: impl Fn(&Tensor, &Tensor) -> Tensor,
        t: &Tensor,
        context: &Tensor,
        mask: &Tensor,
    ) -> Tensor {
        let t = t.to_kind(Kind::Float);
        let (alpha, sigma) = self.schedule.alpha_sigma(&t);
        let cond = match self.config.noise_cond {
            NoiseCond::Time => &t * 1000.0,
            NoiseCond::LogSigma => (&sigma / &alpha).log().view([-1]) * 250.0,
        };
        let c = &self.config;
        let fill = c.needs_fill().then(|| self.interpolant(context, mask, &alpha, &sigma));
        let mut planes = vec![mask.shallow_clone(), context.shallow_clone()];
        if self.config.fill_input {
            planes.push(fill.as_ref().map(Tensor::shallow_clone).unwrap_or_else(|| context.zeros_like()));
        }
        let out = raw(&cond, &interleave_frames(&planes, self.channels));
        match (self.config.skip, fill) {
            (Skip::Fill, Some(f)) => {
                let on_context = context * &alpha + &out * &sigma;
                let off_context = f + &out;
                mask * on_context + (1.0 - mask) * off_context
            }
            _ => out,
        }
    }
}

/// Planes `k` × `[B, T·C, H, W]` → `[B, T·k·C, H, W]` grouped per frame (frame-major), so a
/// network that folds frames into rows sees `[mask, values, …]` of each frame together. For
/// one frame this is a plain concatenation.
fn interleave_frames(planes: &[Tensor], channels: i64) -> Tensor {
    let (b, tc, h, w) = planes[0].size4().expect("planes are 4-D");
    let frames = tc / channels;
    if frames == 1 {
        return Tensor::cat(planes, 1);
    }
    let k = planes.len() as i64;
    Tensor::stack(planes, 1).view([b, k, frames, channels, h, w]).permute([0, 2, 1, 3, 4, 5]).reshape([
        b,
        frames * k * channels,
        h,
        w,
    ])
}

/// The fill's conjugate-gradient iterations stop once every plane's residual is below this
/// share of its right-hand side. Measured on COADS's 30×60 ship-track gaps (the fill alone,
/// MSE on the hidden entries; the thin-plate baseline 1.64 °C²): 10⁻⁴ stops after 140–240
/// iterations at 1.70, 10⁻⁵ after up to 640 at 1.64, 10⁻³ too early at 4.0; the blend of
/// sessions 5–21 (10 iterations) was at 9.1.
pub const FILL_CG_TOL: f64 = 1e-4;

/// Iterations between two convergence checks (each check waits for the device).
const FILL_CG_CHECK: usize = 8;

/// A smooth interpolant of `values` (0 off the mask) from the entries where `mask` = 1, per
/// plane of `[B, P, H, W]`:
///
/// 1. push–pull (Gortler et al. 1996): push takes mask-weighted 2×2 sums down to one pixel;
///    pull goes up, `u_l = min(W_l, 1)·V_l/W_l + (1 − min(W_l, 1))·up(u_{l+1})` (W the summed
///    weights, V the summed weighted values);
/// 2. `sweeps` Jacobi sweeps of the harmonic equation `L u = 0` on the unknown entries;
/// 3. at most `cg` conjugate-gradient iterations on a biharmonic problem over the unknown
///    entries (`P A P x = −P A u_known`, A the operator of a bending energy, P the projection
///    on the unknowns), started from 2, stopped once converged ([`FILL_CG_TOL`]).
///
/// `FillKind::ThinPlate` (the default) minimises the thin-plate energy ([`thin_plate`]):
/// converged, it is the `biharmonic` baseline; on grids with both sides at least
/// [`COARSE_BELOW`] stages 1–2 run on the coarsest such grid only and each finer grid starts
/// its CG from the coarser one's fill. `FillKind::Blend` (sessions 5–21) runs 1–3 once with
/// `A = L²`, the in-grid Laplacian's square, whose energy flattens the fill toward the borders.
///
/// L is the graph Laplacian of the grid (`(L u)_i = deg_i u_i − Σ_{j~i} u_j`): in-grid
/// neighbours only (symmetric, natural borders), or with `periodic` the torus's four
/// neighbours (opposite sides adjacent). Known entries keep their values; a plane with no
/// known entry is 0. Each stage is O(H·W) per plane and iteration.
pub fn fill(values: &Tensor, mask: &Tensor, sweeps: usize, cg: usize, periodic: bool, kind: FillKind) -> Tensor {
    let (b, p, h, w) = values.size4().expect("fill input is 4-D");
    let v = (values * mask).reshape([b * p, 1, h, w]);
    let m = mask.reshape([b * p, 1, h, w]).to_kind(Kind::Float);
    let u = match kind {
        FillKind::Blend => solve(push_pull(&v, &m), &v, &m, sweeps, cg, periodic, kind),
        FillKind::ThinPlate => coarse_to_fine(&v, &m, sweeps, cg, periodic),
    };
    u.view([b, p, h, w])
}

/// Grids with a side shorter than this are solved from the push–pull start; longer ones from
/// the thin-plate fill of the 2×-coarser grid, upsampled (CG then only has the fine detail
/// left to carry: on COADS's 30×60 gaps it needed up to 750 iterations from push–pull).
const COARSE_BELOW: i64 = 16;

/// The thin-plate fill of `[N, 1, H, W]` values `v` (0 off the mask `m`), nested: the coarser
/// grid's fill (2×2 mask-weighted means; a coarse site is known where any of its four is)
/// upsampled bilinearly starts the CG at this grid.
fn coarse_to_fine(v: &Tensor, m: &Tensor, sweeps: usize, cg: usize, periodic: bool) -> Tensor {
    let (h, w) = (v.size()[2], v.size()[3]);
    if h.min(w) < COARSE_BELOW {
        return solve(push_pull(v, m), v, m, sweeps, cg, periodic, FillKind::ThinPlate);
    }
    let (cv, cm) = (sum_pool(v), sum_pool(m));
    let coarse_known = cm.gt(0.0).to_kind(Kind::Float);
    let coarse_values = &cv / cm.clamp_min(1e-12) * &coarse_known;
    let coarse = coarse_to_fine(&coarse_values, &coarse_known, sweeps, cg, periodic);
    let start = m * v + (1.0 - m) * coarse.upsample_bilinear2d([h, w], false, None, None);
    solve(start, v, m, 0, cg, periodic, FillKind::ThinPlate)
}

/// 2×2 sums (average pooling with divisor 1); ceil mode keeps the ragged last row and column.
fn sum_pool(x: &Tensor) -> Tensor {
    x.avg_pool2d([2, 2], [2, 2], [0, 0], true, false, 1)
}

/// Push–pull (Gortler et al. 1996): mask-weighted 2×2 sums down to one pixel, then up,
/// `u_l = min(W_l, 1)·V_l/W_l + (1 − min(W_l, 1))·up(u_{l+1})`.
fn push_pull(v: &Tensor, m: &Tensor) -> Tensor {
    let mut levels = vec![(v.shallow_clone(), m.shallow_clone())];
    loop {
        let (lv, lm) = levels.last().expect("one level at least");
        let (lh, lw) = (lv.size()[2], lv.size()[3]);
        if lh == 1 && lw == 1 {
            break;
        }
        let next = (sum_pool(lv), sum_pool(lm));
        levels.push(next);
    }
    let mut up: Option<Tensor> = None;
    for (lv, lm) in levels.iter().rev() {
        let weight = lm.clamp_max(1.0);
        let here = lv / lm.clamp_min(1e-12);
        up = Some(match up {
            None => here * lm.gt(0.0).to_kind(Kind::Float),
            Some(coarse) => {
                let size = [lv.size()[2], lv.size()[3]];
                let coarse = coarse.upsample_bilinear2d(size, false, None, None);
                &weight * here + (1.0 - &weight) * coarse
            }
        });
    }
    up.expect("levels are not empty")
}

/// From the start `u`: `sweeps` harmonic Jacobi sweeps on the unknown entries, then at most `cg`
/// conjugate-gradient iterations on the biharmonic problem of `kind` (known entries keep `exact`).
fn solve(
    mut u: Tensor,
    exact: &Tensor,
    known: &Tensor,
    sweeps: usize,
    cg: usize,
    periodic: bool,
    kind: FillKind,
) -> Tensor {
    let (h, w) = (u.size()[2], u.size()[3]);
    let unknown = 1.0 - known;
    let kernel = Tensor::from_slice(&[0f32, 1., 0., 1., 0., 1., 0., 1., 0.]).view([1, 1, 3, 3]).to_device(u.device());
    let neighbours = |x: &Tensor| {
        if periodic {
            x.pad([1, 1, 1, 1], "circular", None).conv2d(&kernel, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)
        } else {
            x.conv2d_padding(&kernel, None::<Tensor>, [1, 1], "same", [1, 1], 1)
        }
    };
    let degree = neighbours(&u.ones_like());
    for _ in 0..sweeps {
        u = known * exact + &unknown * (neighbours(&u) / &degree);
    }
    if cg > 0 {
        // On a torus the thin-plate energy is ‖L u‖² (summation by parts leaves no border terms).
        let lap = |x: &Tensor| &degree * x - neighbours(x);
        let energy = |x: &Tensor| {
            if kind == FillKind::ThinPlate && !periodic {
                thin_plate(x, h, w)
            } else {
                lap(&lap(x))
            }
        };
        let op = |x: &Tensor| &unknown * energy(&(&unknown * x));
        let dot = |a: &Tensor, b: &Tensor| (a * b).sum_dim_intlist([1i64, 2, 3].as_slice(), true, Kind::Float);
        let base = known * exact;
        let rhs = -(&unknown * energy(&base));
        let mut x = &unknown * &u;
        let mut r = &rhs - op(&x);
        let mut d = r.shallow_clone();
        let mut rr = dot(&r, &r);
        // Converged when every plane's residual is below FILL_CG_TOL of its right-hand side
        // (planes without unknowns have none and count as converged).
        let scale = (dot(&rhs, &rhs) * FILL_CG_TOL * FILL_CG_TOL).clamp_min(1e-30);
        for i in 0..cg {
            if i % FILL_CG_CHECK == 0 && (&rr / &scale).max().double_value(&[]) <= 1.0 {
                break;
            }
            let ad = op(&d);
            let step = &rr / dot(&d, &ad).clamp_min(1e-30);
            x = &x + &step * &d;
            r = &r - &step * ad;
            let rr_next = dot(&r, &r);
            d = &r + (&rr_next / rr.clamp_min(1e-30)) * &d;
            rr = rr_next;
        }
        u = base + &unknown * x;
    }
    u
}

/// The operator of the thin-plate energy `Σ (∂xx u)² + (∂yy u)² + 2 (∂xy u)²` (its gradient, up
/// to a factor 2) on a bordered grid, applied to `x`: the sum of `Dᵀ D` over the second
/// differences that fit inside it (`[1, −2, 1]` along each axis, `[[1, −1], [−1, 1]]` twice), natural
/// borders as the `biharmonic` baseline's (`lacuna_core::baseline::inpaint`). `L²` with
/// in-grid neighbours instead would flatten the fill toward every border; on a torus the two
/// energies agree and [`solve`] uses `L²`.
fn thin_plate(x: &Tensor, h: i64, w: i64) -> Tensor {
    // Second differences along the last two axes as slices (cheaper than tiny convolutions):
    // `D` takes the valid part, its adjoint `Dᵀ` pads the pieces back and sums them.
    let mut acc = x.zeros_like();
    if w >= 3 {
        let d = x.narrow(3, 0, w - 2) - x.narrow(3, 1, w - 2) * 2.0 + x.narrow(3, 2, w - 2);
        acc +=
            d.constant_pad_nd([0, 2, 0, 0]) - d.constant_pad_nd([1, 1, 0, 0]) * 2.0 + d.constant_pad_nd([2, 0, 0, 0]);
    }
    if h >= 3 {
        let d = x.narrow(2, 0, h - 2) - x.narrow(2, 1, h - 2) * 2.0 + x.narrow(2, 2, h - 2);
        acc +=
            d.constant_pad_nd([0, 0, 0, 2]) - d.constant_pad_nd([0, 0, 1, 1]) * 2.0 + d.constant_pad_nd([0, 0, 2, 0]);
    }
    if h >= 2 && w >= 2 {
        let (a, b) = (x.narrow(2, 0, h - 1), x.narrow(2, 1, h - 1));
        let d = (a.narrow(3, 0, w - 1) - a.narrow(3, 1, w - 1) - b.narrow(3, 0, w - 1) + b.narrow(3, 1, w - 1)) * 2.0;
        acc += d.constant_pad_nd([0, 1, 0, 1]) - d.constant_pad_nd([1, 0, 0, 1]) - d.constant_pad_nd([0, 1, 1, 0])
            + d.constant_pad_nd([1, 0, 1, 0]);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn fields() -> (Tensor, Tensor, Tensor) {
        tch::manual_seed(3);
        let x = Tensor::randn([3, 2, 12, 10], (Kind::Float, Device::Cpu));
        let m = x.rand_like().lt(0.4).to_kind(Kind::Float);
        let t = Tensor::from_slice(&[0.001f32, 0.3, 0.9]);
        (x, m, t)
    }

    /// On a wide gap in a bordered grid the default fill iterates to the thin-plate
    /// (`biharmonic`) baseline's interpolant, a larger cap changes nothing (it stopped,
    /// converged), and ten iterations, the cap before session 22, are far from it.
    #[test]
    fn the_fill_converges_to_the_biharmonic_interpolant_on_a_wide_gap() {
        let (h, w) = (24usize, 40usize);
        let values: Vec<f32> =
            (0..h * w).map(|i| ((i / w) as f32 * 0.3).sin() + ((i % w) as f32 * 0.2).cos() * 0.5).collect();
        // A 12×20 hole in the middle and every third entry elsewhere missing.
        let known: Vec<f32> = (0..h * w)
            .map(|i| {
                let (y, x) = (i / w, i % w);
                let hole = (6..18).contains(&y) && (10..30).contains(&x);
                if hole || i % 3 == 0 {
                    0.0
                } else {
                    1.0
                }
            })
            .collect();
        let v = Tensor::from_slice(&values).view([1, 1, h as i64, w as i64]);
        let m = Tensor::from_slice(&known).view([1, 1, h as i64, w as i64]);
        let cap = DenoiserConfig::default().fill_cg;
        let u = fill(&v, &m, 8, cap, false, FillKind::ThinPlate);
        let more = fill(&v, &m, 8, 5 * cap, false, FillKind::ThinPlate);
        assert!(f64::try_from((&u - &more).abs().max()).unwrap() < 1e-6, "the cap changed a converged fill");
        // The thin-plate baseline (exact CG in f64, natural borders) on the same data.
        let mask_u8: Vec<u8> = known.iter().map(|&k| k as u8).collect();
        let thin_plate = lacuna_core::baseline::inpaint::Inpaint::Biharmonic.fill(&values, &mask_u8, h, w);
        let ours = Vec::<f32>::try_from(u.view([-1])).unwrap();
        let worst = ours.iter().zip(&thin_plate).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        // FILL_CG_TOL leaves about 1% of the field's range (the baseline iterates to 1e-10).
        assert!(worst < 2e-2, "the fill is {worst} from the thin-plate interpolant");
        let early = fill(&v, &m, 8, 10, false, FillKind::Blend);
        let gap = f64::try_from((&early - &u).abs().max()).unwrap();
        assert!(gap > 0.05, "ten iterations are already the thin-plate interpolant ({gap})");
        // Known entries keep their values.
        let kept = (&u - &v) * &m;
        assert!(f64::try_from(kept.abs().max()).unwrap() < 1e-6);
    }

    /// With c_skip = 0, c_out = 1 (`Skip::None`) the preconditioned denoiser is the raw network:
    /// same output, and the network is fed `[mask, values]` and `1000·t` as the paper's code does.
    #[test]
    fn without_skip_the_denoiser_is_the_raw_network() {
        let (x, m, t) = fields();
        let p = Precond {
            config: DenoiserConfig::legacy(),
            schedule: VpSchedule::default(),
            channels: 2,
            periodic: false,
            kriging: None,
        };
        let raw = |c: &Tensor, input: &Tensor| {
            // A fixed nonlinear function of everything the network sees.
            (input.narrow(1, 0, 2) * 0.5 + input.narrow(1, 2, 2).tanh()) * c.view([-1, 1, 1, 1]) / 1000.0
        };
        let got = p.denoise(raw, &t, &(&x * &m), &m);
        let want = (&m * 0.5 + (&x * &m).tanh()) * t.view([-1, 1, 1, 1]);
        assert!((got - want).abs().max().double_value(&[]) < 1e-6);
    }

    /// With the skip, a network that outputs 0 returns α x_t on the context and the fill off it;
    /// and the fill input is the third plane group.
    #[test]
    fn the_skip_is_alpha_x_on_the_context_and_the_fill_elsewhere() {
        let (x, m, t) = fields();
        let config = DenoiserConfig { fill_sweeps: 3, fill_cg: 4, ..Default::default() };
        let sched = VpSchedule::default();
        let p = Precond { config, schedule: sched, channels: 2, periodic: false, kriging: None };
        let ctx = &x * &m;
        let seen = std::cell::RefCell::new(None);
        let raw = |_: &Tensor, input: &Tensor| {
            assert_eq!(input.size()[1], 6, "mask, values and fill for 2 channels");
            *seen.borrow_mut() = Some(input.narrow(1, 4, 2));
            input.narrow(1, 0, 2).zeros_like()
        };
        let got = p.denoise(raw, &t, &ctx, &m);
        let (a, _) = sched.alpha_sigma(&t);
        let f = fill(&(&ctx * &a), &m, 3, 4, false, FillKind::ThinPlate);
        let want = &m * (&ctx * &a) + (1.0 - &m) * &f;
        assert!((&got - &want).abs().max().double_value(&[]) < 1e-6);
        let fed = seen.borrow_mut().take().unwrap();
        assert!((fed - f).abs().max().double_value(&[]) < 1e-6);
    }

    /// With the kriging interpolant the skip off the context (and the third input plane) is the
    /// kriging mean of `x_t / α` with noise variance (σ/α)²; on the context still α x_t.
    #[test]
    fn the_kriging_skip_is_the_kriging_mean_of_the_rescaled_context() {
        let (x, m, t) = fields();
        let models = [CovModel { mean: 0.0, smoothness: 1.5, variance: 1.0, length_scale: 2.0, nugget: 0.0 }; 2];
        let config = DenoiserConfig { interpolant: Interpolant::Krige, ..Default::default() };
        let sched = VpSchedule::default();
        let cfg = crate::config::TrainConfig { denoiser: config, periodic: true, ..Default::default() };
        let dims = crate::data::Dims { t: 1, c: 2, h: 12, w: 10 };
        let p = Precond::of(&cfg, dims, Some(&models)).unwrap();
        let ctx = &x * &m;
        let seen = std::cell::RefCell::new(None);
        let raw = |_: &Tensor, input: &Tensor| {
            *seen.borrow_mut() = Some(input.narrow(1, 4, 2));
            input.narrow(1, 0, 2).zeros_like()
        };
        let got = p.denoise(raw, &t, &ctx, &m);
        let (a, s) = sched.alpha_sigma(&t);
        let k = Kriging::new(&models, 12, 10, true).unwrap().predict(&(&ctx / &a), &m, &(&s / &a).square().view([-1]));
        let want = &m * (&ctx * &a) + (1.0 - &m) * &k;
        assert!((&got - &want).abs().max().double_value(&[]) < 1e-5);
        assert!((seen.borrow_mut().take().unwrap() - k).abs().max().double_value(&[]) < 1e-6);
        // Without the run's covariance the parameterisation is refused, not silently the fill.
        assert!(Precond::of(&cfg, dims, None).is_err());
    }

    #[test]
    fn fill_keeps_the_known_entries_and_reproduces_constants() {
        let (x, m, _) = fields();
        for kind in [FillKind::ThinPlate, FillKind::Blend] {
            for (sweeps, cg) in [(0, 0), (5, 0), (5, 20)] {
                let f = fill(&x, &m, sweeps, cg, false, kind);
                assert_eq!(f.size(), x.size());
                let off = ((&f - &x) * &m).abs().max().double_value(&[]);
                assert!(off < 1e-5, "{kind:?}: known entries moved by {off}");
                let c = fill(&(x.ones_like() * 2.5), &m, sweeps, cg, false, kind);
                assert!((c - 2.5).abs().max().double_value(&[]) < 1e-5, "{kind:?}: a constant field is not reproduced");
            }
            // A plane with no known entry fills with 0; planes do not leak into each other.
            let m2 = m.copy();
            let _ = m2.narrow(1, 1, 1).fill_(0.0);
            let f = fill(&(x.ones_like() * 3.0), &m2, 2, 3, false, kind);
            assert_eq!(f.narrow(1, 1, 1).abs().max().double_value(&[]), 0.0);
            assert!((f.narrow(1, 0, 1) - 3.0).abs().max().double_value(&[]) < 1e-5);
        }
    }

    #[test]
    fn frames_are_grouped_with_their_planes() {
        let a = Tensor::arange(2 * 6, (Kind::Float, Device::Cpu)).view([2, 6, 1, 1]);
        let b = -&a;
        // 3 frames of 2 channels: frame f gets [a_f, b_f].
        let y = interleave_frames(&[a.shallow_clone(), b.shallow_clone()], 2);
        assert_eq!(y.size(), vec![2, 12, 1, 1]);
        let got: Vec<f32> = Vec::try_from(y.narrow(0, 0, 1).flatten(0, -1)).unwrap();
        assert_eq!(got, vec![0., 1., -0., -1., 2., 3., -2., -3., 4., 5., -4., -5.]);
    }

    /// On a torus the fill commutes with every shift (no border), and still keeps the known
    /// entries and reproduces constants.
    #[test]
    fn periodic_fill_commutes_with_shifts_and_keeps_the_known_entries() {
        let (x, m, _) = fields();
        for kind in [FillKind::ThinPlate, FillKind::Blend] {
            let f = fill(&x, &m, 5, 8, true, kind);
            let shift = |v: &Tensor| v.roll([3, -5], [2, 3]);
            let g = fill(&shift(&x), &shift(&m), 5, 8, true, kind);
            // The push–pull start is not shift-invariant; the sweeps and CG mostly forget it, so
            // compare after enough iterations for the harmonic/biharmonic part to dominate.
            let f_long = fill(&x, &m, 400, 200, true, kind);
            let g_long = fill(&shift(&x), &shift(&m), 400, 200, true, kind);
            let diff = (shift(&f_long) - g_long).abs().max().double_value(&[]);
            assert!(diff < 1e-3, "{kind:?}: converged periodic fill is not shift-equivariant: {diff}");
            assert!(((&f - &x) * &m).abs().max().double_value(&[]) < 1e-5);
            assert!(((&g - shift(&x)) * shift(&m)).abs().max().double_value(&[]) < 1e-5);
            let c = fill(&(x.ones_like() * 1.5), &m, 5, 8, true, kind);
            assert!((c - 1.5).abs().max().double_value(&[]) < 1e-5);
        }
    }
}
