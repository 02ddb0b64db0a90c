//! Partitions: how an observation mask M is split into a context (model input) and a query
//! (loss region). Every method differs only here; the training loop and the samplers take any
//! partition.
//!
//! | partition | context | query |
//! |---|---|---|
//! | pixel | `M ⊙ Bernoulli(r)` per site | `M ⊙ (1 − M_ctx)`, or `M ⊙ Bernoulli(q)` drawn independently (official code) |
//! | block | M minus `n` more observed blocks of a g×g grid | the removed blocks |
//! | missdiff | M | M |
//! | ambient | `M ⊙ Bernoulli(keep)` per site (further corruption, keep 0.9) | M (Ambient Diffusion) |
//! | prior (Work II) | `M̂ ⊙ M`, M̂ a draw of the learned mask prior, guided toward M when ρ is set | `M ⊙ (1 − M_ctx)` |
//!
//! Masks are `[T, C, H, W]` bytes (T = 1 for snapshots). Pixel and block draws are per site and
//! shared by all channels (a sensor observes every channel it carries) and, by default, by all
//! frames of a trajectory ([`InTime`]).

use crate::data::{BlockGrid, Dims};
use rand::seq::{index::sample, SliceRandom};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// How the context of a trajectory is drawn over its frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum InTime {
    /// One draw per spatial site, shared by every frame. Under sensors static in time, a site
    /// left out of the context is then left out in all frames, so the query probability of an
    /// observed site is exactly the snapshot one (positivity and balance carry over).
    #[default]
    Shared,
    /// A new draw in every frame (the official code). With many frames nearly every observed
    /// site is in the context of some frame, so a site never seen in context is almost surely
    /// unobserved: the model can learn to tell observed from unobserved sites apart.
    PerFrame,
}

/// A partition applied to samples of `dims`, with its rule in time: what the training loop and
/// the samplers draw contexts from.
#[derive(Clone, Copy, Debug)]
pub struct Contexts<'a> {
    pub partition: &'a Partition,
    pub dims: Dims,
    pub in_time: InTime,
}

impl Contexts<'_> {
    /// A (context, query) pair for the observation mask `m` (`[T, C, H, W]`).
    pub fn split(&self, m: &[u8], rng: &mut ChaCha8Rng) -> anyhow::Result<Split> {
        self.split_visit(m, None, rng)
    }

    /// [`Contexts::split`] at the `visit`-th use of `m` (see [`Partition::split_visit`]).
    pub fn split_visit(&self, m: &[u8], visit: Option<usize>, rng: &mut ChaCha8Rng) -> anyhow::Result<Split> {
        match self.frames() {
            None => self.partition.split_visit(m, self.dims, visit, rng),
            Some(frame) => {
                let parts: Vec<Split> = m
                    .chunks_exact(frame.len())
                    .map(|f| self.partition.split_visit(f, frame, visit, rng))
                    .collect::<anyhow::Result<_>>()?;
                Ok(Split {
                    context: parts.iter().flat_map(|s| s.context.iter().copied()).collect(),
                    query: parts.iter().flat_map(|s| s.query.iter().copied()).collect(),
                })
            }
        }
    }

    /// A context for a random observation of the pattern of `m` (see [`Partition::random_context`]).
    pub fn random(&self, m: &[u8], rng: &mut ChaCha8Rng) -> anyhow::Result<Vec<u8>> {
        match self.frames() {
            None => self.partition.random_context(m, self.dims, rng),
            Some(frame) => {
                let parts: Vec<Vec<u8>> = m
                    .chunks_exact(frame.len())
                    .map(|f| self.partition.random_context(f, frame, rng))
                    .collect::<anyhow::Result<_>>()?;
                Ok(parts.concat())
            }
        }
    }

    /// The dims of one frame when frames draw apart.
    fn frames(&self) -> Option<Dims> {
        (self.in_time == InTime::PerFrame && self.dims.t > 1).then(|| self.dims.frame())
    }
}

/// One draw of a partition.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub context: Vec<u8>,
    pub query: Vec<u8>,
}

/// A partition rule, chosen by `--partition` and recorded in the run's config.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Partition {
    /// i.i.d. site dropout: context ratio `r`; query the observed rest, or an independent
    /// Bernoulli(`query_ratio`) draw of M when set (can overlap the context).
    Pixel { context_ratio: f64, query_ratio: Option<f64> },
    /// Whole-block dropout on a `grid`×`grid` grid: `drop` more observed blocks leave the context.
    /// A block counts as observed when it holds any observation (the official code needs half
    /// of its sites, which never queries a block that land or a swath edge mostly covers).
    Block { grid: usize, drop: usize },
    /// MissDiff baseline: context = query = M.
    MissDiff,
    /// Ambient Diffusion baseline: the context drops each observed site with probability
    /// 1 − `keep`, the loss covers all of M (the context included).
    Ambient { keep: f64 },
    /// Work II: the intersection `M̂ ⊙ M` with masks M̂ of the learned prior in `prior` (a
    /// `lacuna masks fit` directory). With `rho`, M̂ is drawn with observation-aligned guidance
    /// toward the real M (anchor share ρ, weight `weight`, default [`GUIDANCE_PER_SITE`]·H·W),
    /// `draws` guided draws per distinct mask; without, the unguided intersection `M1 ⊙ M2`.
    /// The draws live in `bank`, filled by `run::masks::prepare` before training or inference.
    Prior {
        prior: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rho: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight: Option<f64>,
        #[serde(default = "default_draws")]
        draws: usize,
        /// What the guidance pulls toward (the seed's loss over all sites by default).
        #[serde(default, skip_serializing_if = "GuidanceLoss::is_default")]
        guidance_loss: GuidanceLoss,
        /// Guide only where it helps: training measures the share of the observed sites an
        /// unguided context `M̂ ⊙ M` keeps on the training masks and, when it is at least this,
        /// trains the unguided intersection instead (the saved configuration says so); 1 =
        /// always guide. Ignored at inference (a run's partition is what it was trained with).
        #[serde(default = "default_guide_below")]
        guide_below: f64,
        #[serde(skip)]
        bank: MaskBank,
    },
}

/// The loss whose gradient steers a guided draw toward the stochastic anchors y (a share ρ
/// of the observed sites of M), normalised by the number of sites d (Work II, spec §10.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum GuidanceLoss {
    /// The seed's binary cross-entropy toward y over all sites: anchors are pulled toward
    /// "observed", every other site, observed but unanchored ones included, toward "missing".
    #[default]
    All,
    /// Anchors pulled toward "observed", nothing else: the rest of the draw follows the prior.
    Anchors,
    /// Anchors toward "observed" and the sites missing in M toward "missing"; unanchored
    /// observed sites follow the prior.
    AnchorsMissing,
}

impl GuidanceLoss {
    pub fn is_default(&self) -> bool {
        *self == GuidanceLoss::default()
    }
}

/// The kinds of partition, as `--partition` and bench method names spell them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PartitionKind {
    Pixel,
    Block,
    Missdiff,
    /// Ambient Diffusion: context drops 10% more sites, loss on all observed.
    Ambient,
    /// Work II: context = M̂ ⊙ M with M̂ drawn from a mask prior (--prior) guided toward M.
    Prior,
    /// Work II ablation: the unguided intersection M1 ⊙ M2 with the mask prior (--prior).
    Intersect,
}

impl PartitionKind {
    /// The kind named `s` (`pixel`, `block`, ...), if any.
    pub fn parse(s: &str) -> Option<PartitionKind> {
        <PartitionKind as clap::ValueEnum>::from_str(s, false).ok()
    }

    /// The partition of this kind with its default parameters; `prior` is the mask-prior
    /// directory of the Work II kinds (ignored by the others).
    pub fn with_defaults(self, prior: PathBuf) -> Partition {
        match self {
            PartitionKind::Pixel => Partition::default(),
            PartitionKind::Block => Partition::Block { grid: 3, drop: 1 },
            PartitionKind::Missdiff => Partition::MissDiff,
            PartitionKind::Ambient => Partition::Ambient { keep: 0.9 },
            PartitionKind::Prior | PartitionKind::Intersect => Partition::Prior {
                prior,
                rho: (self == PartitionKind::Prior).then_some(DEFAULT_RHO),
                weight: None,
                draws: default_draws(),
                guidance_loss: GuidanceLoss::default(),
                guide_below: default_guide_below(),
                bank: MaskBank::default(),
            },
        }
    }
}

/// Guided draws per distinct observation mask (each costs a guided sampler run, about 0.06 s
/// on 2 CPU cores at 32², batched: `scripts/guided_draw_cost.sh`). Taken in turn, so a mask
/// visited at least this often in training sees this many distinct guided contexts; the
/// default run (2000 steps of batch 16) visits each of up to 2000 training masks 16 times.
pub fn default_draws() -> usize {
    16
}

/// Default anchor share ρ of guided draws (sweep in docs/results.md §6).
pub const DEFAULT_RHO: f64 = 0.2;

/// Default of [`Partition::Prior`]'s `guide_below`: guidance is used when an unguided context
/// keeps less than this share of the observed sites. From docs/results.md §6: under 90% cloud
/// (unguided share 0.10) every guided variant beat the intersection in both seeds; under 50%
/// cloud (share about 0.5) every one was worse.
pub const DEFAULT_GUIDE_BELOW: f64 = 0.3;

pub fn default_guide_below() -> f64 {
    DEFAULT_GUIDE_BELOW
}

/// Default guidance weight per site: w_g = this · H·W. The guidance loss is normalised by the
/// number of sites d, so the push each site's logit gets is w_g/d; keeping that fixed keeps
/// the guidance strength the same at every resolution. From the sweep in docs/results.md §6.
pub const GUIDANCE_PER_SITE: f64 = 0.1;

/// Draws of the mask prior held for a prior partition: a pool of unguided draws, and guided
/// draws keyed by the site mask (`[H·W]`) they were anchored to. Shared by clones; not part of
/// the configuration (a loaded run refills it).
#[derive(Clone, Default)]
pub struct MaskBank(Arc<Mutex<Bank>>);

#[derive(Default)]
struct Bank {
    free: Vec<Vec<u8>>,
    guided: HashMap<Vec<u8>, Vec<Vec<u8>>>,
}

impl MaskBank {
    fn lock(&self) -> std::sync::MutexGuard<'_, Bank> {
        // A panic elsewhere cannot leave the bank half-written (every method is one insert).
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds unguided draws (`[H·W]` site masks).
    pub fn add_free(&self, masks: Vec<Vec<u8>>) {
        self.lock().free.extend(masks);
    }

    pub fn free_len(&self) -> usize {
        self.lock().free.len()
    }

    /// A copy of the unguided draws held.
    pub fn free_draws(&self) -> Vec<Vec<u8>> {
        self.lock().free.clone()
    }

    /// Adds guided draws for the site mask `sites`.
    pub fn add_guided(&self, sites: &[u8], masks: Vec<Vec<u8>>) {
        self.lock().guided.entry(sites.to_vec()).or_default().extend(masks);
    }

    /// Guided draws held for `sites`.
    pub fn guided_len(&self, sites: &[u8]) -> usize {
        self.lock().guided.get(sites).map_or(0, Vec::len)
    }

    /// One draw: guided for `sites` when given (the `visit`-th of them, cycling, when a visit
    /// is given; else a random one), else a random one of the free pool; an error if the bank
    /// holds none (it was not prepared for these masks: `run::masks::prepare`).
    fn draw(&self, sites: Option<&[u8]>, visit: Option<usize>, rng: &mut ChaCha8Rng) -> anyhow::Result<Vec<u8>> {
        let bank = self.lock();
        let pool = match sites {
            Some(s) => bank.guided.get(s).map(Vec::as_slice).unwrap_or(&[]),
            None => &bank.free,
        };
        anyhow::ensure!(
            !pool.is_empty(),
            "the prior partition has no {} draws of its mask prior{}: its mask bank was not prepared (run::masks::prepare)",
            if sites.is_some() { "guided" } else { "unguided" },
            if sites.is_some() { " for this mask" } else { "" }
        );
        let i = match (sites, visit) {
            (Some(_), Some(v)) => v % pool.len(),
            _ => rng.gen_range(0..pool.len()),
        };
        Ok(pool[i].clone())
    }
}

impl std::fmt::Debug for MaskBank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.lock();
        write!(f, "MaskBank {{ free: {}, guided masks: {} }}", b.free.len(), b.guided.len())
    }
}

/// The bank is a cache of draws, not configuration: two prior partitions with the same settings
/// are the same partition.
impl PartialEq for MaskBank {
    fn eq(&self, _: &MaskBank) -> bool {
        true
    }
}

impl Default for Partition {
    fn default() -> Self {
        Partition::Pixel { context_ratio: 0.7, query_ratio: None }
    }
}

impl Partition {
    pub fn name(&self) -> &'static str {
        match self {
            Partition::Pixel { .. } => "pixel",
            Partition::Block { .. } => "block",
            Partition::MissDiff => "missdiff",
            Partition::Ambient { .. } => "ambient",
            Partition::Prior { rho: Some(_), .. } => "prior",
            Partition::Prior { rho: None, .. } => "intersect",
        }
    }

    /// Checks the parameters; the message says what to change.
    /// Refuses a partition whose geometry does not fit fields of `dims` (a block grid finer
    /// than the grid itself would leave empty blocks and nothing to learn from).
    pub fn check_fits(&self, dims: Dims) -> anyhow::Result<()> {
        if let Partition::Block { grid, .. } = self {
            anyhow::ensure!(
                *grid <= dims.h.min(dims.w),
                "partition block: a {grid}×{grid} block grid does not fit {}×{} fields (at most {} blocks a side)",
                dims.h,
                dims.w,
                dims.h.min(dims.w)
            );
        }
        Ok(())
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        match self {
            Partition::Pixel { context_ratio, query_ratio } => {
                anyhow::ensure!(
                    *context_ratio > 0.0 && *context_ratio < 1.0,
                    "context ratio must be in (0, 1), got {context_ratio}"
                );
                if let Some(q) = query_ratio {
                    anyhow::ensure!(*q > 0.0 && *q <= 1.0, "query ratio must be in (0, 1], got {q}");
                }
            }
            Partition::Block { grid, drop } => {
                anyhow::ensure!(*grid >= 2, "block grid must be at least 2, got {grid}");
                anyhow::ensure!(
                    *drop >= 1 && *drop < grid * grid,
                    "blocks to drop must be in 1..{}, got {drop}",
                    grid * grid
                );
            }
            Partition::MissDiff => {}
            Partition::Ambient { keep } => {
                anyhow::ensure!(*keep > 0.0 && *keep < 1.0, "ambient keep ratio must be in (0, 1), got {keep}")
            }
            Partition::Prior { rho, weight, draws, guide_below, .. } => {
                anyhow::ensure!(
                    *guide_below > 0.0 && *guide_below <= 1.0,
                    "guide_below (the unguided context share under which guidance is used) must be in (0, 1], got {guide_below} (1 = always guide)"
                );
                if let Some(r) = rho {
                    anyhow::ensure!(*r > 0.0 && *r < 1.0, "guidance anchor share rho must be in (0, 1), got {r} (ρ = 1 collapses every draw onto M: nothing is left to query)");
                }
                if let Some(w) = weight {
                    anyhow::ensure!(*w >= 0.0 && w.is_finite(), "guidance weight must be ≥ 0, got {w}");
                }
                anyhow::ensure!(*draws >= 1, "guided draws per mask must be at least 1");
            }
        }
        Ok(())
    }

    /// Draws a (context, query) pair from one observation mask `m` (`[C, H, W]`).
    pub fn split(&self, m: &[u8], dims: Dims, rng: &mut ChaCha8Rng) -> anyhow::Result<Split> {
        self.split_visit(m, dims, None, rng)
    }

    /// [`Partition::split`] at the `visit`-th use of `m`: a guided prior partition then takes
    /// its guided draws of `m` in turn (draw `visit mod count`), so K ensemble members, or K
    /// epochs of training, see K distinct guided contexts where the bank holds K; without a
    /// visit, and for every other partition, the draw is random as in `split`.
    pub fn split_visit(
        &self,
        m: &[u8],
        dims: Dims,
        visit: Option<usize>,
        rng: &mut ChaCha8Rng,
    ) -> anyhow::Result<Split> {
        Ok(match self {
            Partition::Pixel { context_ratio, query_ratio } => {
                let keep: Vec<bool> = (0..dims.sites()).map(|_| rng.gen::<f64>() < *context_ratio).collect();
                let context = per_site(m, dims, |i| keep[i]);
                let query = match query_ratio {
                    None => observed_rest(m, &context),
                    Some(q) => {
                        let pick: Vec<bool> = (0..dims.sites()).map(|_| rng.gen::<f64>() < *q).collect();
                        per_site(m, dims, |i| pick[i])
                    }
                };
                Split { context, query }
            }
            Partition::Block { grid, drop } => {
                let g = BlockGrid::new(*grid, dims.h, dims.w);
                let sites = site_mask(m, dims);
                // Any block holding an observation can be dropped, not only mostly observed ones:
                // a block cut by land or a swath edge must be queried too (positivity over every
                // observable site).
                let observed = g.touched_blocks(&sites);
                // Keep at least one block of context; with a single observed block the query is empty.
                let k = (*drop).min(observed.len().saturating_sub(1));
                let mut removed = vec![0u8; dims.sites()];
                for j in sample(rng, observed.len(), k) {
                    g.fill(observed[j], &mut removed, 1);
                }
                let context = per_site(m, dims, |i| removed[i] == 0);
                let query = per_site(m, dims, |i| removed[i] != 0);
                Split { context, query }
            }
            Partition::MissDiff => Split { context: m.to_vec(), query: m.to_vec() },
            Partition::Ambient { keep } => {
                let kept: Vec<bool> = (0..dims.sites()).map(|_| rng.gen::<f64>() < *keep).collect();
                Split { context: per_site(m, dims, |i| kept[i]), query: m.to_vec() }
            }
            Partition::Prior { rho, bank, .. } => {
                let sites = site_mask(m, dims);
                let drawn = bank.draw(rho.is_some().then_some(sites.as_slice()), visit, rng)?;
                let mut keep: Vec<bool> = sites.iter().zip(&drawn).map(|(&s, &d)| s != 0 && d != 0).collect();
                if let Some(rho) = rho {
                    floor_context(&sites, &mut keep, *rho, rng);
                }
                let context = per_site(m, dims, |i| keep[i]);
                let query = observed_rest(m, &context);
                Split { context, query }
            }
        })
    }

    /// A context mask for a *random* observation of the same pattern as `m` (same count of
    /// observed sites or blocks, placed anew), not contained in `m`. The multi-step sampler
    /// uses it for its `E[u0 | u_t]` term, whose context must cover the whole field over draws.
    pub fn random_context(&self, m: &[u8], dims: Dims, rng: &mut ChaCha8Rng) -> anyhow::Result<Vec<u8>> {
        let moved: Vec<u8> = match self {
            Partition::Block { grid, .. } => {
                let g = BlockGrid::new(*grid, dims.h, dims.w);
                let count = g.observed_blocks(&site_mask(m, dims)).len();
                let mut sites = vec![0u8; dims.sites()];
                for b in sample(rng, g.count(), count) {
                    g.fill(b, &mut sites, 1);
                }
                (0..dims.planes()).flat_map(|_| sites.iter().copied()).collect()
            }
            // A random observation of the pattern is a prior draw; its context the intersection
            // with a second one (M1 ⊙ M2, whatever the guidance: there is no real M to anchor to).
            Partition::Prior { bank, .. } => {
                let (m1, m2) = (bank.draw(None, None, rng)?, bank.draw(None, None, rng)?);
                return Ok((0..dims.len()).map(|k| m1[k % dims.sites()] & m2[k % dims.sites()]).collect());
            }
            _ => {
                let mut perm: Vec<usize> = (0..dims.sites()).collect();
                perm.shuffle(rng);
                let s = dims.sites();
                (0..dims.len()).map(|k| m[(k / s) * s + perm[k % s]]).collect()
            }
        };
        Ok(self.split(&moved, dims, rng)?.context)
    }
}

/// The floor under a guided context: it keeps at least `⌈ρ/2 · |M|⌉` of the `|M|` observed
/// sites of `sites`. A draw that kept fewer (guidance can collapse every draw to all-missing, as
/// on OSTIA's large land-and-cloud cover) is topped up with observed sites chosen uniformly to
/// `⌈ρ · |M|⌉`, the share the anchors asked for, leaving at least one site to the query. Draws
/// above the floor are untouched (no random number is drawn for them).
fn floor_context(sites: &[u8], keep: &mut [bool], rho: f64, rng: &mut ChaCha8Rng) {
    let observed = sites.iter().filter(|&&s| s != 0).count();
    let have = keep.iter().filter(|&&k| k).count();
    if have >= (rho / 2.0 * observed as f64).ceil() as usize {
        return;
    }
    let target = ((rho * observed as f64).ceil() as usize).min(observed.saturating_sub(1));
    let mut free: Vec<usize> = (0..sites.len()).filter(|&i| sites[i] != 0 && !keep[i]).collect();
    free.shuffle(rng);
    for &i in free.iter().take(target.saturating_sub(have)) {
        keep[i] = true;
    }
}

/// `m` restricted to sites where `keep(site)` holds, for every channel.
fn per_site(m: &[u8], dims: Dims, keep: impl Fn(usize) -> bool) -> Vec<u8> {
    let s = dims.sites();
    m.iter().enumerate().map(|(k, &o)| u8::from(o != 0 && keep(k % s))).collect()
}

/// `M ⊙ (1 − M_ctx)`: the observed entries left out of the context.
fn observed_rest(m: &[u8], context: &[u8]) -> Vec<u8> {
    m.iter().zip(context).map(|(&o, &c)| u8::from(o != 0 && c == 0)).collect()
}

/// The site mask (`[H·W]`, observed in any channel or frame) of `m`: what the mask prior
/// models and what guided draws are keyed by.
pub fn site_mask(m: &[u8], dims: Dims) -> Vec<u8> {
    let s = dims.sites();
    (0..s).map(|i| u8::from((0..dims.planes()).any(|p| m[p * s + i] != 0))).collect()
}

#[cfg(test)]
mod tests;
