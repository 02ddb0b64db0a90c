//! The learned mask prior p(M) of Work II: a discrete Bayesian Flow Network (Graves et al. 2023)
//! written as a diffusion on scaled logits (spec §10.3), and observation-aligned guidance.
//!
//! Two classes per site (0 = missing, 1 = observed), latent `x ∈ R^{2×H×W}`, K = 2 classes,
//! time `t ∈ [0, 1]` running from the uninformed prior (0) to the data (1):
//!
//! ```text
//! x0 = K e_c,   β(t) = β₁ t²,   α_t = β(t),   σ_t = √(K β(t))
//! x_t = α_t x0 + σ_t ε                                        (the Bayesian flow, shift dropped)
//! ê   = ê_θ(t, softmax(x_t))                                  (the network sees only the softmax)
//! L   = K β₁ E_{t~U(0,1)} [ t ‖e_c − ê‖² ]                    (continuous-time BFN data matching)
//! ```
//!
//! Sampling is the deterministic first-order step on `t_0 < … < t_N = 1`, started from
//! `x_{t_0} ~ N(0, σ²_{t_0} I)`:
//!
//! ```text
//! x̂0 = K ê_θ(t_i, softmax(x_i)),   ε̂ = (x_i − α_i x̂0)/σ_i,   x_{i+1} = α_{i+1} x̂0 + σ_{i+1} ε̂
//! ```
//!
//! and the mask is decoded as `M̂ = 1[ê_1(1, softmax(x_N)) > ½]`. Observation-aligned guidance
//! (spec §10.1) anchors the draw to a real mask M:
//!
//! ```text
//! y_i = 1[r_i < ρ] M_i,  r_i ~ U(0, 1)                                    (stochastic anchor)
//! L_g(x, y) = −(1/d) Σ_i [ y_i log ê_{i,1} + (1 − y_i) log ê_{i,0} ]       (d = H·W sites)
//! x_{i+1} ← x_{i+1} − w_g ∇_{x_i} L_g(x_i, y)                             (through net and softmax)
//! ```
//!
//! `L_g` is the seed's loss ([`GuidanceLoss::All`]). It pushes every unanchored site toward
//! "missing", observed ones included, so stronger anchoring shrinks the context `M̂ ⊙ M`
//! instead of aligning it. The variants keep only some terms of the sum, with the same 1/d:
//! [`GuidanceLoss::Anchors`] the `y_i log ê_{i,1}` terms, [`GuidanceLoss::AnchorsMissing`]
//! those and the `log ê_{i,0}` terms of the sites missing in M.
//!
//! Only the logit difference `x_1 − x_0` reaches the softmax, so the network's input is the
//! class-1 probability `p = softmax(x)_1` and its output the logit of `ê_1`.

use crate::method::partition::GuidanceLoss;
use anyhow::{ensure, Result};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use tch::{Device, Kind, Tensor};

/// Classes per site (missing, observed).
pub const CLASSES: f64 = 2.0;

/// The accuracy schedule `β(t) = β₁ t²`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BfnSchedule {
    /// β(1): how sharp the flow is at the data end (Graves et al. use 3 for binarised MNIST).
    pub beta1: f64,
    /// t_0, where sampling starts (the flow is degenerate at exactly 0).
    pub t_start: f64,
}

impl Default for BfnSchedule {
    fn default() -> Self {
        BfnSchedule { beta1: 3.0, t_start: 1e-2 }
    }
}

impl BfnSchedule {
    pub fn validate(&self) -> Result<()> {
        ensure!(self.beta1 > 0.0 && self.beta1.is_finite(), "beta1 must be positive, got {}", self.beta1);
        ensure!(self.t_start > 0.0 && self.t_start < 1.0, "t_start must be in (0, 1), got {}", self.t_start);
        Ok(())
    }

    pub fn alpha(&self, t: f64) -> f64 {
        self.beta1 * t * t
    }

    pub fn sigma(&self, t: f64) -> f64 {
        (CLASSES * self.alpha(t)).sqrt()
    }
}

/// `ê_θ`: the logit of the observed-class probability `[B, 1, H, W]` from times `t` `[B]` and
/// the flow's class-1 probability `p = softmax(x_t)_1` `[B, 1, H, W]`. Differentiable in `p`
/// (guidance takes its gradient).
pub trait MaskModel {
    fn logits(&self, t: &Tensor, p: &Tensor) -> Tensor;
}

impl MaskModel for crate::model::MaskNet {
    fn logits(&self, t: &Tensor, p: &Tensor) -> Tensor {
        crate::model::MaskNet::logits(self, t, p)
    }
}

/// The exact `ê` of a prior with independent sites observed with probability `q`: by Bayes,
/// `logit ê_1 = logit q + (α_t K/σ_t²)(x_1 − x_0) = logit q + logit p` (α_t K/σ_t² = 1 here), at every t.
/// Lets tests check the sampler and the guidance without training.
pub struct IndependentSites {
    pub q: f64,
}

impl MaskModel for IndependentSites {
    fn logits(&self, _t: &Tensor, p: &Tensor) -> Tensor {
        let p = p.clamp(1e-6, 1.0 - 1e-6);
        let odds: Tensor = &p / (1.0 - &p);
        odds.log() + (self.q / (1.0 - self.q)).ln()
    }
}

/// `softmax(x)_1` `[B, 1, H, W]` of a latent `[B, 2, H, W]`: what the network sees.
fn observed_probability(x: &Tensor) -> Tensor {
    x.softmax(1, Kind::Float).narrow(1, 1, 1)
}

/// `[B, 1, H, W]` site masks → the flow's class-1 probability at `t` `[B]` (fresh noise).
fn flow_probability(schedule: &BfnSchedule, masks: &Tensor, t: &Tensor) -> Tensor {
    let a = (t.square() * schedule.beta1).view([-1, 1, 1, 1]);
    let x0 = Tensor::cat(&[1.0 - masks, masks.shallow_clone()], 1) * CLASSES;
    let x = &x0 * &a + (&a * CLASSES).sqrt() * x0.randn_like();
    observed_probability(&x)
}

/// The data-matching loss (module doc) of site masks `[B, 1, H, W]` (1 = observed) at times
/// `t` `[B]`, averaged over sites and batch. `‖e − ê‖²` over both classes is `2 (e_1 − ê_1)²`.
pub fn loss(model: &dyn MaskModel, schedule: &BfnSchedule, masks: &Tensor, t: &Tensor) -> Tensor {
    let p = flow_probability(schedule, masks, t);
    let e1 = model.logits(t, &p).sigmoid();
    let w = (t * (CLASSES * schedule.beta1)).view([-1, 1, 1, 1]);
    (w * (masks - e1).square() * 2.0).mean(Kind::Float)
}

/// Observation-aligned guidance for one batch of draws.
pub struct Guidance<'a> {
    /// `y`, the stochastic anchors `[B, 1, H, W]` (see [`anchors`]).
    pub anchors: &'a Tensor,
    /// The real masks M `[B, 1, H, W]` the anchors come from (read by `AnchorsMissing`).
    pub observed: &'a Tensor,
    /// w_g.
    pub weight: f64,
    pub loss: GuidanceLoss,
}

impl Guidance<'_> {
    /// Per-site weights of the cross-entropy toward y: which terms of `L_g` the loss keeps.
    fn site_weights(&self) -> Option<Tensor> {
        match self.loss {
            GuidanceLoss::All => None,
            GuidanceLoss::Anchors => Some(self.anchors.shallow_clone()),
            GuidanceLoss::AnchorsMissing => Some(self.anchors + (1.0 - self.observed)),
        }
    }
}

/// `y = 1[r < ρ] M` for site masks `m` (`[H·W]` bytes each), `r` from `uniform`.
pub fn anchors(m: &[u8], rho: f64, mut uniform: impl FnMut() -> f64) -> Vec<f32> {
    m.iter().map(|&o| if o != 0 && uniform() < rho { 1.0 } else { 0.0 }).collect()
}

/// Draws `ê_1` at t = 1 `[B, 1, H, W]` from the prior by the deterministic sampler (module doc)
/// in `steps` steps from `noise` (`[B, 2, H, W]` standard normal), guided when `guidance` is set.
/// Decode with `> 0.5`.
pub fn sample(
    model: &dyn MaskModel,
    schedule: &BfnSchedule,
    steps: usize,
    noise: &Tensor,
    guidance: Option<&Guidance>,
) -> Result<Tensor> {
    ensure!(steps >= 1, "the mask sampler needs at least one step");
    let b = noise.size()[0];
    let device = noise.device();
    let grid: Vec<f64> =
        (0..=steps).map(|i| schedule.t_start + (1.0 - schedule.t_start) * i as f64 / steps as f64).collect();
    let times = |t: f64| Tensor::full([b], t, (Kind::Float, device));
    let mut x = noise * schedule.sigma(grid[0]);
    for i in 0..steps {
        let (t, t_next) = (grid[i], grid[i + 1]);
        let tt = times(t);
        let (e1, grad) = match guidance {
            Some(g) => {
                let xg = x.detach().set_requires_grad(true);
                let logit = model.logits(&tt, &observed_probability(&xg));
                // Binary cross-entropy toward y over the sites the loss keeps (`site_weights`),
                // divided by d, summed over draws (their gradients do not interact).
                let d = (logit.size()[2] * logit.size()[3]) as f64;
                let lg = logit.binary_cross_entropy_with_logits::<Tensor>(
                    g.anchors,
                    g.site_weights(),
                    None,
                    tch::Reduction::Sum,
                ) / d;
                let grad = Tensor::run_backward(&[&lg], &[&xg], false, false);
                (logit.detach().sigmoid(), Some(grad[0].shallow_clone()))
            }
            None => (tch::no_grad(|| model.logits(&tt, &observed_probability(&x)).sigmoid()), None),
        };
        tch::no_grad(|| {
            let x0 = Tensor::cat(&[1.0 - &e1, e1.shallow_clone()], 1) * CLASSES;
            let eps = (&x - &x0 * schedule.alpha(t)) / schedule.sigma(t);
            x = &x0 * schedule.alpha(t_next) + eps * schedule.sigma(t_next);
            if let (Some(g), Some(grad)) = (guidance, grad) {
                x = &x - grad * g.weight;
            }
        });
    }
    Ok(tch::no_grad(|| model.logits(&times(1.0), &observed_probability(&x)).sigmoid()))
}

/// What guided draws are anchored to: one site mask (`[H·W]`) per draw.
pub struct GuideTo<'a> {
    pub masks: &'a [Vec<u8>],
    /// ρ, the share of observed sites anchored in each draw.
    pub rho: f64,
    /// w_g.
    pub weight: f64,
    pub loss: GuidanceLoss,
}

/// Decoded draws (`[H·W]` bytes, 1 = observed) of the prior, one per stream in `rngs`, `chunk`
/// at a time; draw i guided toward `guide.masks[i]` when given. Draw i's noise and anchors come
/// from `rngs[i]` alone, so draws do not depend on the device or on how they are batched.
#[allow(clippy::too_many_arguments)]
pub fn draw(
    model: &dyn MaskModel,
    schedule: &BfnSchedule,
    steps: usize,
    (h, w): (usize, usize),
    rngs: &mut [ChaCha8Rng],
    guide: Option<&GuideTo>,
    device: Device,
    chunk: usize,
) -> Result<Vec<Vec<u8>>> {
    let n = rngs.len();
    if let Some(g) = guide {
        ensure!(g.masks.len() == n, "{} anchor masks for {n} draws", g.masks.len());
        ensure!(g.masks.iter().all(|m| m.len() == h * w), "anchor masks must be {h}×{w}");
    }
    let d = h * w;
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let b = chunk.max(1).min(n - start);
        let rows = &mut rngs[start..start + b];
        let noise: Vec<f32> = rows
            .iter_mut()
            .flat_map(|r| (0..2 * d).map(|_| r.sample::<f32, _>(StandardNormal)).collect::<Vec<_>>())
            .collect();
        let noise = Tensor::from_slice(&noise).view([b as i64, 2, h as i64, w as i64]).to_device(device);
        let e1 = match guide {
            Some(g) => {
                let y: Vec<f32> = g.masks[start..start + b]
                    .iter()
                    .zip(rows.iter_mut())
                    .flat_map(|(m, r)| anchors(m, g.rho, || r.gen()))
                    .collect();
                let y = Tensor::from_slice(&y).view([b as i64, 1, h as i64, w as i64]).to_device(device);
                let m: Vec<f32> = g.masks[start..start + b].iter().flatten().map(|&o| f32::from(o != 0)).collect();
                let m = Tensor::from_slice(&m).view([b as i64, 1, h as i64, w as i64]).to_device(device);
                let guidance = Guidance { anchors: &y, observed: &m, weight: g.weight, loss: g.loss };
                sample(model, schedule, steps, &noise, Some(&guidance))?
            }
            None => sample(model, schedule, steps, &noise, None)?,
        };
        let flat: Vec<u8> = Vec::try_from(e1.gt(0.5).to_kind(Kind::Uint8).to_device(Device::Cpu).flatten(0, -1))?;
        out.extend(flat.chunks_exact(d).map(<[u8]>::to_vec));
        start += b;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn noise(b: i64, s: i64, seed: i64) -> Tensor {
        tch::manual_seed(seed);
        Tensor::randn([b, 2, s, s], (Kind::Float, Device::Cpu))
    }

    /// With the exact ê of an independent-site prior, the sampler reproduces the prior's
    /// observed fraction (the ODE transports N(0, σ²) to the data distribution).
    #[test]
    fn sampler_with_the_exact_model_draws_the_prior() {
        for q in [0.2, 0.5, 0.8] {
            let model = IndependentSites { q };
            let e = sample(&model, &BfnSchedule::default(), 40, &noise(16, 32, 1), None).unwrap();
            let frac = e.gt(0.5).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
            assert!((frac - q).abs() < 0.03, "q = {q}: sampled observed fraction {frac}");
        }
    }

    /// The data-matching loss is smallest at the exact model: a wrong q scores worse.
    #[test]
    fn loss_is_smallest_at_the_true_prior() {
        let schedule = BfnSchedule::default();
        tch::manual_seed(3);
        let masks = Tensor::rand([64, 1, 16, 16], (Kind::Float, Device::Cpu)).lt(0.3).to_kind(Kind::Float);
        let t = Tensor::rand([64], (Kind::Float, Device::Cpu));
        let at = |q: f64| {
            tch::manual_seed(4);
            loss(&IndependentSites { q }, &schedule, &masks, &t).double_value(&[])
        };
        let (right, wrong_lo, wrong_hi) = (at(0.3), at(0.1), at(0.6));
        assert!(right < wrong_lo && right < wrong_hi, "loss at q=0.3 {right}, 0.1 {wrong_lo}, 0.6 {wrong_hi}");
    }

    /// Guidance pulls the draw toward the anchors: anchored sites come out observed far more
    /// often than the prior's rate (one half here). The seed's loss pushes every other site
    /// toward missing; the anchor-only loss leaves them at the prior's rate; the anchors-and-
    /// missing loss pushes only the sites missing in M. Anchors: the left half of the columns;
    /// M: the left three quarters.
    #[test]
    fn guidance_pulls_draws_toward_the_anchors_and_each_loss_keeps_its_terms() {
        let model = IndependentSites { q: 0.5 };
        let (b, s) = (8i64, 16i64);
        let columns = |upto: i64| -> Tensor {
            let v: Vec<f32> = (0..b * s * s).map(|k| f32::from((k % (s * s)) % s < upto)).collect();
            Tensor::from_slice(&v).view([b, 1, s, s])
        };
        let (y, m) = (columns(s / 2), columns(3 * s / 4));
        let share = |drawn: &Tensor, region: &Tensor| {
            ((drawn * region).sum(Kind::Float) / region.sum(Kind::Float)).double_value(&[])
        };
        for loss in [GuidanceLoss::All, GuidanceLoss::Anchors, GuidanceLoss::AnchorsMissing] {
            let g = Guidance { anchors: &y, observed: &m, weight: 0.5 * (s * s) as f64, loss };
            let e = sample(&model, &BfnSchedule::default(), 30, &noise(b, s, 2), Some(&g)).unwrap();
            let drawn = e.gt(0.5).to_kind(Kind::Float);
            let on = share(&drawn, &y);
            let unanchored = share(&drawn, &(&m - &y));
            let missing = share(&drawn, &(1.0 - &m));
            assert!(on > 0.8, "{loss:?}: anchors observed in {on} of draws");
            let prior_rate = |x: f64| (x - 0.5).abs() < 0.15;
            match loss {
                GuidanceLoss::All => assert!(unanchored < 0.2 && missing < 0.2, "{loss:?}: {unanchored}, {missing}"),
                GuidanceLoss::Anchors => {
                    assert!(prior_rate(unanchored) && prior_rate(missing), "{loss:?}: {unanchored}, {missing}")
                }
                GuidanceLoss::AnchorsMissing => {
                    assert!(prior_rate(unanchored) && missing < 0.2, "{loss:?}: {unanchored}, {missing}")
                }
            }
        }
    }

    /// Spec §9 T5: contexts `M̂ ⊙ M` with M̂ guided toward M keep every observed site in some query
    /// when ρ < 1; at ρ = 1 strong guidance collapses M̂ onto M and observed sites stop being
    /// queried (why ρ < 1).
    #[test]
    fn guided_contexts_with_rho_below_one_query_every_observed_site() {
        use crate::data::Dims;
        use crate::method::partition::{MaskBank, Partition};
        use rand::SeedableRng;
        let (h, w) = (12usize, 12usize);
        let dims = Dims { t: 1, c: 1, h, w };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        // A structured observation: a diagonal band.
        let m: Vec<u8> = (0..h * w).map(|k| u8::from(((k / w) + (k % w)) % 7 < 4)).collect();
        let model = IndependentSites { q: 0.5 };
        let queried_share = |rho: f64, rng: &mut ChaCha8Rng| {
            let draws = 24;
            let guide =
                GuideTo { masks: &vec![m.clone(); draws], rho, weight: 1.0 * (h * w) as f64, loss: GuidanceLoss::All };
            let mut rngs: Vec<ChaCha8Rng> = (0..draws).map(|_| ChaCha8Rng::seed_from_u64(rng.gen())).collect();
            let masks =
                draw(&model, &BfnSchedule::default(), 20, (h, w), &mut rngs, Some(&guide), Device::Cpu, 8).unwrap();
            let bank = MaskBank::default();
            bank.add_guided(&m, masks);
            let part = Partition::Prior {
                prior: "unused".into(),
                rho: Some(rho),
                weight: None,
                draws,
                guidance_loss: GuidanceLoss::All,
                guide_below: 1.0,
                bank,
            };
            let mut queried = vec![0usize; h * w];
            for _ in 0..400 {
                let sp = part.split(&m, dims, rng).unwrap();
                for k in 0..h * w {
                    assert!(sp.context[k] <= m[k] && sp.query[k] <= m[k]);
                    queried[k] += sp.query[k] as usize;
                }
            }
            let observed = m.iter().filter(|&&o| o != 0).count();
            (0..h * w).filter(|&k| m[k] != 0 && queried[k] > 0).count() as f64 / observed as f64
        };
        let below = queried_share(0.6, &mut rng);
        assert_eq!(below, 1.0, "ρ = 0.6: only {below} of the observed sites were ever queried");
        let full = queried_share(1.0, &mut rng);
        assert!(full < 0.5, "ρ = 1 should collapse the draws onto M, yet {full} of observed sites were queried");
    }
}
