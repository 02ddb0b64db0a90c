//! Statistics of observation masks (observed fraction, two-point correlation, missing
//! regions), the comparison of generated with real masks, and the empirical query
//! probabilities of a partition: what `lacuna masks compare` reports and tests check.

use crate::data::Dims;
use crate::partition::{Contexts, InTime, Partition};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Share of all the sites of `masks` that are observed.
pub fn observed_share(masks: &[Vec<u8>]) -> f64 {
    let observed = masks.iter().flatten().filter(|&&v| v != 0).count();
    observed as f64 / masks.iter().map(Vec::len).sum::<usize>().max(1) as f64
}

/// Share of the observed sites of `masks` that the matching `draws` keep: what a guided
/// context `M̂ ⊙ M` holds of `M`.
pub fn context_share(masks: &[Vec<u8>], draws: &[Vec<u8>]) -> f64 {
    let kept: usize = masks.iter().zip(draws).map(|(m, g)| m.iter().zip(g).filter(|(&a, &b)| a & b != 0).count()).sum();
    let observed: usize = masks.iter().map(|m| m.iter().filter(|&&a| a != 0).count()).sum();
    kept as f64 / observed.max(1) as f64
}

/// Statistics of a set of site masks.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MaskStats {
    pub n: usize,
    /// Observed fraction per mask: mean, standard deviation, 10/50/90% quantiles.
    pub fraction_mean: f64,
    pub fraction_sd: f64,
    pub fraction_q: [f64; 3],
    /// Two-point correlation of the indicator at lags 1..=L (horizontal and vertical pooled).
    pub correlation: Vec<f64>,
    /// Mean number and mean size (sites) of 4-connected missing regions per mask.
    pub missing_regions: f64,
    pub missing_region_size: f64,
}

pub fn mask_stats(masks: &[Vec<u8>], h: usize, w: usize) -> MaskStats {
    let n = masks.len().max(1) as f64;
    let mut fr: Vec<f64> =
        masks.iter().map(|m| m.iter().filter(|&&v| v != 0).count() as f64 / (h * w) as f64).collect();
    let mean = fr.iter().sum::<f64>() / n;
    let sd = (fr.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / n).sqrt();
    fr.sort_by(f64::total_cmp);
    let q = |p: f64| fr.get(((fr.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN);
    let lags = (h.min(w) / 2).max(1);
    let correlation = (1..=lags)
        .map(|r| {
            let (mut sa, mut sb, mut sab, mut saa, mut sbb, mut cnt) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
            for m in masks {
                for y in 0..h {
                    for x in 0..w {
                        let a = m[y * w + x] as f64;
                        for (yy, xx) in [(y, x + r), (y + r, x)] {
                            if yy < h && xx < w {
                                let b = m[yy * w + xx] as f64;
                                sa += a;
                                sb += b;
                                sab += a * b;
                                saa += a * a;
                                sbb += b * b;
                                cnt += 1.0;
                            }
                        }
                    }
                }
            }
            let (ma, mb) = (sa / cnt, sb / cnt);
            let cov = sab / cnt - ma * mb;
            let den = ((saa / cnt - ma * ma) * (sbb / cnt - mb * mb)).sqrt();
            if den > 0.0 {
                cov / den
            } else {
                0.0
            }
        })
        .collect();
    let (mut regions, mut sizes) = (0usize, 0usize);
    for m in masks {
        let mut seen = vec![false; h * w];
        for start in 0..h * w {
            if m[start] != 0 || seen[start] {
                continue;
            }
            regions += 1;
            let mut stack = vec![start];
            seen[start] = true;
            while let Some(k) = stack.pop() {
                sizes += 1;
                let (y, x) = (k / w, k % w);
                let mut push = |j: usize| {
                    if m[j] == 0 && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                };
                if x > 0 {
                    push(k - 1);
                }
                if x + 1 < w {
                    push(k + 1);
                }
                if y > 0 {
                    push(k - w);
                }
                if y + 1 < h {
                    push(k + w);
                }
            }
        }
    }
    MaskStats {
        n: masks.len(),
        fraction_mean: mean,
        fraction_sd: sd,
        fraction_q: [q(0.1), q(0.5), q(0.9)],
        correlation,
        missing_regions: regions as f64 / n,
        missing_region_size: if regions > 0 { sizes as f64 / regions as f64 } else { 0.0 },
    }
}

/// Tolerances of [`Comparison::within`]: generated masks match real ones when the observed
/// fraction's mean and standard deviation each differ by at most 0.05 and the two-point
/// correlation by at most 0.1 at every lag.
pub const FRACTION_TOL: f64 = 0.05;
pub const CORRELATION_TOL: f64 = 0.1;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Comparison {
    pub real: MaskStats,
    pub generated: MaskStats,
    pub fraction_mean_diff: f64,
    pub fraction_sd_diff: f64,
    pub correlation_max_diff: f64,
    pub within: bool,
}

pub fn compare(real: &[Vec<u8>], generated: &[Vec<u8>], h: usize, w: usize) -> Comparison {
    let (r, g) = (mask_stats(real, h, w), mask_stats(generated, h, w));
    let fm = (r.fraction_mean - g.fraction_mean).abs();
    let fs = (r.fraction_sd - g.fraction_sd).abs();
    let cm = r.correlation.iter().zip(&g.correlation).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    Comparison {
        within: fm <= FRACTION_TOL && fs <= FRACTION_TOL && cm <= CORRELATION_TOL,
        real: r,
        generated: g,
        fraction_mean_diff: fm,
        fraction_sd_diff: fs,
        correlation_max_diff: cm,
    }
}

/// What `splits` draws of a partition make of each of a set of masks (see [`split_stats`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SplitStats {
    /// Mean share of a mask's observed entries its contexts keep (`|M_ctx| / |M|`), over the
    /// masks with an observed entry.
    pub context_share: f64,
    /// Smallest and mean share of the draws that query an observed entry (0 with no entry).
    pub query_min: f64,
    pub query_mean: f64,
    /// Share of the observed entries no draw queried.
    pub never_queried: f64,
    /// Observed entries counted.
    pub entries: usize,
}

/// Context share and empirical query probabilities of `contexts` over the observed entries of
/// `masks` (bank prepared): `splits` draws per mask from one stream seeded with `seed`.
pub fn split_stats(contexts: &Contexts, masks: &[Vec<u8>], splits: usize, seed: u64) -> anyhow::Result<SplitStats> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut min, mut sum, mut zero, mut count) = (f64::INFINITY, 0.0, 0usize, 0usize);
    let (mut share, mut shared) = (0.0, 0usize);
    for m in masks {
        let observed = m.iter().filter(|&&o| o != 0).count();
        let mut hits = vec![0usize; m.len()];
        for _ in 0..splits {
            let s = contexts.split(m, &mut rng)?;
            if observed > 0 {
                share += s.context.iter().filter(|&&c| c != 0).count() as f64 / observed as f64;
                shared += 1;
            }
            for (h, &q) in hits.iter_mut().zip(&s.query) {
                *h += q as usize;
            }
        }
        for (k, &o) in m.iter().enumerate() {
            if o != 0 {
                let p = hits[k] as f64 / splits as f64;
                min = min.min(p);
                sum += p;
                zero += usize::from(hits[k] == 0);
                count += 1;
            }
        }
    }
    let c = count.max(1) as f64;
    Ok(SplitStats {
        context_share: share / shared.max(1) as f64,
        query_min: if count > 0 { min } else { 0.0 },
        query_mean: sum / c,
        never_queried: zero as f64 / c,
        entries: count,
    })
}

/// Empirical query probabilities of `partition` over the observed sites of `masks` (`[C, H, W]`
/// each, bank prepared): per observed entry, the share of `splits` draws that query it. Returns
/// (smallest, mean, share of observed entries never queried).
pub fn query_probabilities(
    partition: &Partition,
    masks: &[Vec<u8>],
    d: Dims,
    splits: usize,
    seed: u64,
) -> anyhow::Result<(f64, f64, f64)> {
    let contexts = Contexts { partition, dims: d, in_time: InTime::default() };
    let s = split_stats(&contexts, masks, splits, seed)?;
    Ok((s.query_min, s.query_mean, s.never_queried))
}
