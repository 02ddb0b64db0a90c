//! Choosing the ensemble's inference contexts on the data being completed
//! (`impute --context-ratio auto`): the whole observation, or the run's training rule (its
//! context ratio, its dropped blocks, its intersections with prior draws). Neither wins
//! everywhere: Work II's whole-observation contexts gained 16% on OSTIA's clouds and lost 7% on
//! COADS's ship tracks (docs/results.md §5, §8). The data itself can tell, without truth:
//!
//! ```text
//! H   = the query of one draw of the run's training partition, per field (hidden observed entries)
//! s_c = mean over H (μ̂_K^c(M − H) − u_obs)²      for c ∈ {whole observation, training rule}
//! ```
//!
//! on the first [`FIELDS`] fields, with the same hidden entries, noise and seeds for both, and
//! the lower `s_c` is used for every field. It is the held-out score training reports when it
//! has no truth (`score.holdout = "context"`), so it inherits that score's limit: hidden entries
//! are observed ones, and where the real gaps sit apart from what is observed (clouds on the
//! moist extremes, NCEP in §7), the ranking can differ from the gaps' own.

use super::impute::{set_context_ratio, LoadedRun};
use super::score::Scorer;
use crate::data::field::FieldStream;
use crate::method::precond::Precond;
use crate::method::Partition;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// Fields of the data the choice is measured on (the first ones).
pub const FIELDS: usize = 64;

/// What the choice measured and chose.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ContextChoice {
    /// The context ratio chosen: 1 = the whole observation, 0 = the training rule.
    pub ratio: f64,
    /// MSE on the hidden entries (data units) with whole-observation contexts.
    pub whole: f64,
    /// The same with the training rule's contexts.
    pub rule: f64,
    /// The training rule, in words.
    pub rule_name: String,
    pub fields: usize,
    pub hidden_entries: usize,
}

impl ContextChoice {
    /// The contexts chosen, in words.
    pub fn chosen(&self) -> &str {
        if self.ratio >= 1.0 {
            "the whole observation"
        } else {
            &self.rule_name
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "contexts chosen on {} hidden observed entries of the first {} fields: whole observation MSE {:.5}, {} {:.5} → {}",
            self.hidden_entries,
            self.fields,
            self.whole,
            self.rule_name,
            self.rule,
            self.chosen()
        )
    }
}

/// Scores `run`'s single-step ensemble (K = `ensemble`) with both kinds of context on the
/// first [`FIELDS`] fields of `data`, never reading their truth; `run.config` is the one
/// inference would use apart from its contexts, and `precond` inference's preconditioning
/// (the contexts do not enter it).
pub fn choose(
    run: &LoadedRun,
    precond: &Precond,
    data: &Path,
    ensemble: usize,
    seed: u64,
    quiet: bool,
) -> Result<ContextChoice> {
    let rule_name = match &run.config.partition {
        Partition::Pixel { context_ratio, .. } => format!("{:.0}% of the observation", 100.0 * context_ratio),
        Partition::Block { .. } => "blocks dropped as in training".into(),
        Partition::Prior { .. } => "intersections with prior draws".into(),
        p => bail!(
            "--context-ratio auto applies to runs trained with the pixel, block, prior or intersect partition; this one used {}",
            p.name()
        ),
    };
    let mut set = FieldStream::open(data)?
        .next_chunk(FIELDS)?
        .with_context(|| format!("{}: no fields to choose the contexts on", data.display()))?;
    // The choice must be one a user without truth can make.
    set.truth = None;
    let d = set.dims;
    let mut cfg = run.config.clone();
    cfg.seed = seed;
    cfg.score.fields = FIELDS;
    cfg.score.ensemble = ensemble;
    cfg.score.holdout = "context".into();
    // The training partition's own draws hide the entries (Work II: a prior draw per mask).
    let masks: Vec<Vec<u8>> = set.mask.chunks_exact(d.len()).map(<[u8]>::to_vec).collect();
    super::masks::prepare(&cfg.partition, run.prior.as_ref(), &masks, d, 1, seed, true)?;
    let scorer = Scorer::new(&set, &cfg, &run.norm, run.net.device(), None)
        .with_context(|| format!("{}: cannot hide observed entries to choose the contexts on", data.display()))?;
    let score_with = |ratio: f64| -> Result<f64> {
        let mut c = cfg.clone();
        set_context_ratio(&mut c, ratio)?;
        super::masks::prepare(&c.partition, run.prior.as_ref(), scorer.masks(), d, ensemble, seed, true)?;
        scorer.score(&run.net, &c, precond, &run.norm)
    };
    let (whole, rule) = (score_with(1.0)?, score_with(0.0)?);
    let choice = ContextChoice {
        ratio: if whole < rule { 1.0 } else { 0.0 },
        whole,
        rule,
        rule_name,
        fields: set.n,
        hidden_entries: scorer.scored(),
    };
    if !quiet {
        eprintln!("impute: {}", choice.describe());
    }
    Ok(choice)
}
