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
    pub fn split(&self, m: &[u8], rng: &mut ChaCha8Rng) -> Split {
        match self.frames() {
            None => self.partition.split(m, self.dims, rng),
            Some(frame) => {
                let parts: Vec<Split> =
                    m.chunks_exact(frame.len()).map(|f| self.partition.split(f, frame, rng)).collect();
                Split {
                    context: parts.iter().flat_map(|s| s.context.iter().copied()).collect(),
                    query: parts.iter().flat_map(|s| s.query.iter().copied()).collect(),
                }
            }
        }
    }

    /// A context for a random observation of the pattern of `m` (see [`Partition::random_context`]).
    pub fn random(&self, m: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
        match self.frames() {
            None => self.partition.random_context(m, self.dims, rng),
            Some(frame) => {
                m.chunks_exact(frame.len()).flat_map(|f| self.partition.random_context(f, frame, rng)).collect()
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
        #[serde(skip)]
        bank: MaskBank,
    },
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
                bank: MaskBank::default(),
            },
        }
    }
}

/// Guided draws per distinct observation mask (each costs a guided sampler run).
pub fn default_draws() -> usize {
    4
}

/// Default anchor share ρ of guided draws (sweep in docs/results.md §6).
pub const DEFAULT_RHO: f64 = 0.2;

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

    /// Adds guided draws for the site mask `sites`.
    pub fn add_guided(&self, sites: &[u8], masks: Vec<Vec<u8>>) {
        self.lock().guided.entry(sites.to_vec()).or_default().extend(masks);
    }

    /// Guided draws held for `sites`.
    pub fn guided_len(&self, sites: &[u8]) -> usize {
        self.lock().guided.get(sites).map_or(0, Vec::len)
    }

    /// One draw: guided for `sites` when given, else from the free pool. Panics if the bank was
    /// not prepared for it: that is a bug of the caller, not of the data.
    fn draw(&self, sites: Option<&[u8]>, rng: &mut ChaCha8Rng) -> Vec<u8> {
        let bank = self.lock();
        let pool = match sites {
            Some(s) => bank.guided.get(s).map(Vec::as_slice).unwrap_or(&[]),
            None => &bank.free,
        };
        assert!(!pool.is_empty(), "prior partition used before its mask bank was prepared (run::masks::prepare)");
        pool[rng.gen_range(0..pool.len())].clone()
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
            Partition::Prior { rho, weight, draws, .. } => {
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
    pub fn split(&self, m: &[u8], dims: Dims, rng: &mut ChaCha8Rng) -> Split {
        match self {
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
                let drawn = bank.draw(rho.is_some().then_some(sites.as_slice()), rng);
                let context = per_site(m, dims, |i| drawn[i] != 0);
                let query = observed_rest(m, &context);
                Split { context, query }
            }
        }
    }

    /// A context mask for a *random* observation of the same pattern as `m` (same count of
    /// observed sites or blocks, placed anew), not contained in `m`. The multi-step sampler
    /// uses it for its `E[u0 | u_t]` term, whose context must cover the whole field over draws.
    pub fn random_context(&self, m: &[u8], dims: Dims, rng: &mut ChaCha8Rng) -> Vec<u8> {
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
                let (m1, m2) = (bank.draw(None, rng), bank.draw(None, rng));
                return (0..dims.len()).map(|k| m1[k % dims.sites()] & m2[k % dims.sites()]).collect();
            }
            _ => {
                let mut perm: Vec<usize> = (0..dims.sites()).collect();
                perm.shuffle(rng);
                let s = dims.sites();
                (0..dims.len()).map(|k| m[(k / s) * s + perm[k % s]]).collect()
            }
        };
        self.split(&moved, dims, rng).context
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
mod tests {
    //! The theory of spec §9 (T1 positivity and balance) checked by Monte Carlo, no training.
    use super::*;
    use crate::data::Pattern;
    use rand::SeedableRng;
    use std::collections::HashMap;

    /// Issue 9: never-observable sites (static_mask) are dropped from the observations at load,
    /// so no partition ever puts them in a context or a query (the loss is a sum over queries).
    /// Checked with one static mask for every field and with one per field (tiles of a coast).
    #[test]
    fn never_observable_sites_are_in_no_context_and_no_query() {
        let d = Dims { t: 1, c: 2, h: 9, w: 9 };
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let n = 20;
        // Land is a third of the columns: the left third for every field, or a band that moves.
        let shared: Vec<u8> = (0..d.len()).map(|k| u8::from(k % 9 >= 3)).collect();
        let moving: Vec<u8> = (0..n * d.len()).map(|j| u8::from((j % 9 + j / d.len()) % 9 >= 3)).collect();
        for ok in [shared, moving] {
            // The file claims everything observed.
            let mut set = crate::data::FieldSet::new(n, d, vec![1.0; n * d.len()], vec![1; n * d.len()], None).unwrap();
            let dropped = set.set_observable(ok.clone()).unwrap();
            assert_eq!(dropped, n * d.len() / 3);
            let observable = |i: usize, k: usize| set.is_observable(i * d.len() + k);
            let parts = [
                Partition::default(),
                Partition::Pixel { context_ratio: 0.5, query_ratio: Some(0.5) },
                Partition::Block { grid: 3, drop: 1 },
                Partition::MissDiff,
                Partition::Ambient { keep: 0.9 },
            ];
            for part in &parts {
                let mut queried = vec![0usize; n * d.len()];
                for i in 0..n {
                    let m = &set.mask[i * d.len()..(i + 1) * d.len()];
                    // Positivity per field: a 1-in-9 block needs a few hundred draws to be sure.
                    for _ in 0..400 {
                        let sp = part.split(m, d, &mut rng);
                        for k in 0..d.len() {
                            if !observable(i, k) {
                                let used = (sp.context[k], sp.query[k]);
                                assert_eq!(used, (0, 0), "{part:?} used never-observable site {k} of field {i}");
                            }
                            queried[i * d.len() + k] += sp.query[k] as usize;
                        }
                    }
                }
                // Positivity over the observable sites only (the "valid dimension" of spec §9 T4).
                let missed = (0..n * d.len()).find(|&j| observable(j / d.len(), j % d.len()) && queried[j] == 0);
                assert!(missed.is_none(), "{part:?} never queried observable entry {missed:?}");
            }
        }
    }

    /// Issue 8: on trajectories under sensors static in time, the shared-over-time context
    /// (one draw per site for all frames) keeps the snapshot theory: context and query stay
    /// inside M, the context is the same in every frame, every observed entry is queried with
    /// positive probability, and given the context every entry outside it keeps a positive
    /// query probability (the context does not reveal which sites are missing). The official
    /// per-frame draw almost reveals it: a site absent from every frame's context is then
    /// nearly always unobserved.
    #[test]
    fn shared_over_time_contexts_keep_positivity_on_trajectories() {
        let dims = Dims { t: 4, c: 1, h: 2, w: 2 };
        let (frame, s) = (dims.frame().len(), dims.sites());
        let pattern = Pattern::Pixel { observed: 0.5 };
        let parts = [Partition::Pixel { context_ratio: 0.5, query_ratio: None }, Partition::Block { grid: 2, drop: 1 }];
        for part in &parts {
            let draw = Contexts { partition: part, dims, in_time: InTime::Shared };
            let mut rng = ChaCha8Rng::seed_from_u64(8);
            let mut queried = vec![0usize; dims.len()];
            let mut by_ctx: HashMap<Vec<u8>, (Vec<f64>, usize)> = HashMap::new();
            for _ in 0..20000 {
                let m = pattern.draw(dims, &mut rng);
                let sp = draw.split(&m, &mut rng);
                for k in 0..dims.len() {
                    assert!(sp.context[k] <= m[k] && sp.query[k] <= m[k], "{part:?}: outside M at {k}");
                    assert_eq!(sp.context[k], sp.context[k % frame], "{part:?}: context differs between frames");
                    assert_eq!(sp.query[k], sp.query[k % frame], "{part:?}: query differs between frames");
                    queried[k] += sp.query[k] as usize;
                }
                let e = by_ctx.entry(sp.context.clone()).or_insert_with(|| (vec![0.0; dims.len()], 0));
                e.0.iter_mut().zip(&sp.query).for_each(|(a, &q)| *a += q as f64);
                e.1 += 1;
            }
            assert!(queried.iter().all(|&q| q > 0), "{part:?}: an entry was never queried: {queried:?}");
            // Given each (well-sampled) context, every entry outside it has P(query) > 0.
            for (ctx, (freq, count)) in by_ctx.iter().filter(|(_, (_, n))| *n >= 200) {
                for k in (0..dims.len()).filter(|&k| ctx[k] == 0) {
                    assert!(freq[k] > 0.0, "{part:?}: context {ctx:?} never queries entry {k} ({count} draws)");
                }
            }
        }
        // P(site queried | in no frame's context). A site is observed with p = 8/15 (the 15
        // non-empty masks of 4 sites are equally likely) and then left out of the context with
        // 1/2 shared, (1/2)⁴ per frame: (8/15·q)/(8/15·q + 7/15) = 4/11 shared, 1/15 per frame.
        let part = Partition::Pixel { context_ratio: 0.5, query_ratio: None };
        let rate = |in_time| {
            let draw = Contexts { partition: &part, dims, in_time };
            let mut rng = ChaCha8Rng::seed_from_u64(9);
            let (mut hidden, mut queried) = (0usize, 0usize);
            for _ in 0..20000 {
                let m = pattern.draw(dims, &mut rng);
                let sp = draw.split(&m, &mut rng);
                for i in (0..s).filter(|&i| (0..dims.t).all(|t| sp.context[t * frame + i] == 0)) {
                    hidden += 1;
                    queried += sp.query[i] as usize;
                }
            }
            queried as f64 / hidden as f64
        };
        let (shared, per_frame) = (rate(InTime::Shared), rate(InTime::PerFrame));
        assert!((shared - 4.0 / 11.0).abs() < 0.02, "shared: {shared}");
        assert!((per_frame - 1.0 / 15.0).abs() < 0.015, "per frame: {per_frame}");
    }

    /// For each distinct context, the empirical query frequency of every site outside it:
    /// an estimate of `P((M_qry)_i = 1 | M_ctx)`. Returns (per-context frequencies, draws).
    fn conditional_query_probs(
        part: &Partition,
        pattern: &Pattern,
        dims: Dims,
        draws: usize,
        seed: u64,
    ) -> Vec<(Vec<u8>, Vec<f64>, usize)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut by_ctx: HashMap<Vec<u8>, (Vec<f64>, usize)> = HashMap::new();
        for _ in 0..draws {
            let m = pattern.draw(dims, &mut rng);
            let s = part.split(&m, dims, &mut rng);
            let e = by_ctx.entry(s.context.clone()).or_insert_with(|| (vec![0.0; dims.len()], 0));
            for (acc, &q) in e.0.iter_mut().zip(&s.query) {
                *acc += q as f64;
            }
            e.1 += 1;
        }
        by_ctx.into_iter().map(|(c, (q, n))| (c, q.iter().map(|v| v / n as f64).collect(), n)).collect()
    }

    #[test]
    fn block_partition_is_positive_and_balanced() {
        let dims = Dims { t: 1, c: 1, h: 6, w: 6 };
        for (missing, want) in [(1usize, 0.5), (4, 0.2), (6, 1.0 / 7.0)] {
            let pattern = Pattern::Block { grid: 3, missing };
            let part = Partition::Block { grid: 3, drop: 1 };
            let groups = conditional_query_probs(&part, &pattern, dims, 60_000, missing as u64);
            let mut checked = 0;
            for (ctx, q, n) in groups {
                if n < 200 {
                    continue;
                }
                for i in 0..dims.len() {
                    if ctx[i] == 0 {
                        assert!(
                            (q[i] - want).abs() < 0.08,
                            "missing {missing}: site {i} p = {} (want {want}, n = {n})",
                            q[i]
                        );
                        checked += 1;
                    } else {
                        assert_eq!(q[i], 0.0, "a context site was queried");
                    }
                }
            }
            assert!(checked > 0);
        }
    }

    #[test]
    fn pixel_partition_is_positive_everywhere_outside_the_context() {
        // 3×3 grid, p = 0.5, r = 0.7: P(q_i | ctx) = p(1−r)/(1−pr) = 0.15/0.65 for every site off the context.
        let dims = Dims { t: 1, c: 1, h: 3, w: 3 };
        let want = 0.5 * 0.3 / (1.0 - 0.35);
        let groups =
            conditional_query_probs(&Partition::default(), &Pattern::Pixel { observed: 0.5 }, dims, 200_000, 7);
        let mut checked = 0;
        for (ctx, q, n) in groups {
            if n < 400 {
                continue;
            }
            for i in 0..9 {
                if ctx[i] == 0 {
                    assert!(q[i] > 0.0 && (q[i] - want).abs() < 0.08, "site {i}: {} vs {want} (n {n})", q[i]);
                    checked += 1;
                }
            }
        }
        assert!(checked > 100);
    }

    #[test]
    fn pixel_partition_never_queries_inside_missing_blocks() {
        // Under block observations a pixel context reveals which blocks are missing: sites in a
        // block without any context point get zero query probability with the pixel rule, but
        // positive probability with the block rule.
        let dims = Dims { t: 1, c: 1, h: 12, w: 12 };
        let g = BlockGrid::new(3, 12, 12);
        let pattern = Pattern::Block { grid: 3, missing: 2 };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (mut pixel_hits, mut block_hits, mut empty_sites) = (0usize, 0usize, 0usize);
        for _ in 0..3000 {
            let m = pattern.draw(dims, &mut rng);
            for (part, hits) in
                [(Partition::default(), &mut pixel_hits), (Partition::Block { grid: 3, drop: 1 }, &mut block_hits)]
            {
                let s = part.split(&m, dims, &mut rng);
                for b in 0..9 {
                    let mut blk = vec![0u8; 144];
                    g.fill(b, &mut blk, 1);
                    if (0..144).all(|i| blk[i] == 0 || s.context[i] == 0) {
                        let q: usize = (0..144).filter(|&i| blk[i] != 0 && s.query[i] != 0).count();
                        *hits += q;
                        empty_sites += (0..144).filter(|&i| blk[i] != 0).count();
                    }
                }
            }
        }
        assert!(empty_sites > 0);
        assert_eq!(pixel_hits, 0, "pixel context queried a context-free block");
        assert!(block_hits > 0, "block context never queried a context-free block");
    }

    #[test]
    fn splits_stay_inside_the_observation() {
        let dims = Dims { t: 1, c: 2, h: 10, w: 7 };
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for part in [
            Partition::default(),
            Partition::Pixel { context_ratio: 0.5, query_ratio: Some(0.5) },
            Partition::Block { grid: 3, drop: 2 },
            Partition::MissDiff,
            Partition::Ambient { keep: 0.9 },
        ] {
            for pattern in [Pattern::Pixel { observed: 0.3 }, Pattern::Block { grid: 3, missing: 3 }] {
                let m = pattern.draw(dims, &mut rng);
                let s = part.split(&m, dims, &mut rng);
                for (k, &mk) in m.iter().enumerate() {
                    assert!(s.context[k] <= mk && s.query[k] <= mk);
                }
                let r = part.random_context(&m, dims, &mut rng);
                assert_eq!(r.len(), dims.len());
            }
        }
    }

    #[test]
    fn ambient_queries_all_of_m_from_a_further_corrupted_context() {
        let dims = Dims { t: 1, c: 1, h: 30, w: 30 };
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        let m = Pattern::Pixel { observed: 0.5 }.draw(dims, &mut rng);
        let (mut kept, mut seen) = (0usize, 0usize);
        for _ in 0..200 {
            let s = Partition::Ambient { keep: 0.9 }.split(&m, dims, &mut rng);
            assert_eq!(s.query, m);
            kept += s.context.iter().filter(|&&v| v != 0).count();
            seen += m.iter().filter(|&&v| v != 0).count();
        }
        let rate = kept as f64 / seen as f64;
        assert!((rate - 0.9).abs() < 0.01, "{rate}");
    }

    /// Spec §9 T4: with `M_ctx = M1 ⊙ M2`, `M_qry = M1 ⊙ (1 − M_ctx)` and M1, M2 i.i.d. from a
    /// mask distribution of known support, a site outside the context is queried with positive
    /// probability exactly when some supported pair (a, b) with `a ⊙ b = M_ctx` has `a_i ≠ b_i`;
    /// sites no mask ever observes (the left column: land) are never queried, and every site some
    /// mask observes is queried under some context.
    #[test]
    fn intersection_is_positive_on_every_site_that_can_be_missing() {
        let dims = Dims { t: 1, c: 1, h: 4, w: 4 };
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        // Support: 6 random structured masks (rows and a square), land in column 0 never observed.
        let support: Vec<Vec<u8>> = (0..6)
            .map(|j| {
                (0..16)
                    .map(|k| {
                        let (r, c) = (k / 4, k % 4);
                        u8::from(c > 0 && (r == j % 4 || (j >= 4 && r >= 2 && c >= 2) || (c + j) % 3 == 0))
                    })
                    .collect()
            })
            .collect();
        let part =
            Partition::Prior { prior: "unused".into(), rho: None, weight: None, draws: 1, bank: MaskBank::default() };
        let Partition::Prior { bank, .. } = &part else { unreachable!() };
        bank.add_free(support.clone());
        // Which (context, site) pairs the theorem says are queryable.
        let mut expected: HashMap<Vec<u8>, Vec<bool>> = HashMap::new();
        for a in &support {
            for b in &support {
                let ctx: Vec<u8> = (0..16).map(|k| a[k] & b[k]).collect();
                let e = expected.entry(ctx).or_insert_with(|| vec![false; 16]);
                for k in 0..16 {
                    e[k] |= a[k] != b[k];
                }
            }
        }
        let mut seen: HashMap<Vec<u8>, (Vec<usize>, usize)> = HashMap::new();
        for _ in 0..40_000 {
            let m1 = &support[rng.gen_range(0..support.len())];
            let sp = part.split(m1, dims, &mut rng);
            let e = seen.entry(sp.context.clone()).or_insert_with(|| (vec![0; 16], 0));
            for k in 0..16 {
                e.0[k] += sp.query[k] as usize;
            }
            e.1 += 1;
        }
        let mut ever = vec![false; 16];
        for (ctx, (hits, n)) in &seen {
            let want = &expected[ctx];
            for k in 0..16 {
                assert_eq!(hits[k] > 0, want[k], "context {ctx:?} site {k}: {} queries in {n} draws", hits[k]);
                ever[k] |= hits[k] > 0;
                if k % 4 == 0 {
                    assert_eq!(hits[k], 0, "land site {k} queried");
                }
            }
        }
        let observable: Vec<bool> = (0..16).map(|k| support.iter().any(|m| m[k] != 0)).collect();
        assert_eq!(ever, observable, "every site some mask observes is queried under some context");
        // The random context of the multi-step sampler is an intersection of two prior draws.
        let r = part.random_context(&support[0], dims, &mut rng);
        assert!(expected.contains_key(&r));
    }
}
