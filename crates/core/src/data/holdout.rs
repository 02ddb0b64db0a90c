//! Held-out evaluation on real gaps (the Work II protocol, spec §7): when no complete truth
//! exists, hide part of the *observed* entries, complete, and score on the hidden ones.
//!
//! ```text
//! M'_i    = M_i ⊙ H_i                 H_i: the hiding pattern's observation mask
//! truth_i = u_i on M_i, NaN elsewhere (unknown: never scored)
//! scored  = M_i ⊙ (1 − H_i)           (eval scores entries missing in M' with finite truth)
//! ```
//!
//! `H_i` is either a generated pattern (`cloud:0.3` hides 30% of the sites in cloud shapes) or
//! `other`, the real observation mask of another field of the same file (`M_{(i+1) mod N}`),
//! so the hidden gaps have the real occlusion's structure.

use super::field::FieldSet;
use super::pattern::Pattern;
use anyhow::{ensure, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// How the entries to hide are chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum Holdout {
    /// Keep what this pattern observes.
    Pattern(Pattern),
    /// Keep what the next field of the file observes (its real occlusion).
    Other,
}

impl std::str::FromStr for Holdout {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Holdout> {
        if s == "other" {
            return Ok(Holdout::Other);
        }
        s.parse::<Pattern>()
            .map(Holdout::Pattern)
            .map_err(|e| anyhow::anyhow!("{e}; or `other` for the occlusion of another field of the file"))
    }
}

/// The held-out set: observations `M'`, truth on `M` (NaN elsewhere), same static mask.
pub fn holdout(set: &FieldSet, how: &Holdout, seed: u64) -> Result<FieldSet> {
    let (n, d) = (set.n, set.dims);
    let len = d.len();
    let keep: Vec<u8> = match how {
        Holdout::Other => {
            ensure!(n >= 2, "`--holdout other` needs at least two fields to borrow an occlusion from");
            (0..n).flat_map(|i| set.mask[((i + 1) % n) * len..((i + 1) % n + 1) * len].iter().copied()).collect()
        }
        Holdout::Pattern(p) => p.draw_set(n, d, &mut ChaCha8Rng::seed_from_u64(seed))?,
    };
    let mask: Vec<u8> = set.mask.iter().zip(&keep).map(|(&m, &k)| m & k).collect();
    let truth: Vec<f32> = set.values.iter().zip(&set.mask).map(|(&v, &m)| if m != 0 { v } else { f32::NAN }).collect();
    let hidden = set.mask.iter().zip(&mask).filter(|(&a, &b)| a != 0 && b == 0).count();
    ensure!(hidden > 0, "the hiding pattern hides no observed entry; choose a pattern that covers more");
    if let Some(i) = (0..n).find(|&i| mask[i * len..(i + 1) * len].iter().all(|&m| m == 0)) {
        anyhow::bail!("field {i} keeps no observation after hiding; choose a pattern that observes more");
    }
    let mut out = FieldSet::new(n, d, set.values.clone(), mask, Some(truth))?;
    out.observable = set.observable.clone();
    Ok(out)
}

/// How entries are hidden when the held-out fields have no truth.
#[derive(Clone, Debug, PartialEq)]
pub enum Hide {
    /// What one draw of the training partition hides (its query).
    Context,
    Holdout(Holdout),
}

impl std::str::FromStr for Hide {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Hide> {
        if s == "context" {
            return Ok(Hide::Context);
        }
        s.parse::<Holdout>()
            .map(Hide::Holdout)
            .map_err(|e| anyhow::anyhow!("{e}; or `context` (hide what the partition hides)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dims;

    fn set() -> FieldSet {
        let d = Dims { t: 1, c: 1, h: 4, w: 4 };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mask = Pattern::Pixel { observed: 0.6 }.draw_set(5, d, &mut rng).unwrap();
        let values: Vec<f32> = (0..5 * 16).map(|k| k as f32).collect();
        FieldSet::new(5, d, values, mask, None).unwrap()
    }

    #[test]
    fn hides_only_observed_entries_and_keeps_their_truth() {
        let s = set();
        for how in [Holdout::Other, "pixel:0.5".parse().unwrap()] {
            let h = holdout(&s, &how, 1).unwrap();
            let t = h.truth.as_ref().unwrap();
            for (k, &tk) in t.iter().enumerate() {
                assert!(h.mask[k] <= s.mask[k], "an unobserved entry became observed");
                assert_eq!(tk.is_finite(), s.mask[k] != 0, "truth must exist exactly on the original mask");
                if s.mask[k] != 0 {
                    assert_eq!(tk, k as f32);
                }
            }
        }
        let h = holdout(&s, &Holdout::Other, 0).unwrap();
        for i in 0..5 {
            for j in 0..16 {
                let k = i * 16 + j;
                assert_eq!(h.mask[k], s.mask[k] & s.mask[((i + 1) % 5) * 16 + j]);
            }
        }
        assert!("nonsense".parse::<Holdout>().is_err());
        assert!(holdout(&s, &"pixel:1".parse().unwrap(), 0).is_err(), "hiding nothing is an error");
    }
}
