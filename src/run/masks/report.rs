//! `lacuna masks sample` and `lacuna masks compare`: draws written to a file, and the report
//! comparing a prior's draws with real masks.

use super::*;
use crate::method::partition::{GuidanceLoss, DEFAULT_GUIDE_BELOW};

/// `lacuna masks sample`: `n` draws (per guide mask when `guide` is set) written as `mask`.
pub fn sample_to_file(
    prior_dir: &Path,
    n: usize,
    guide: Option<(&Path, f64, Option<f64>, GuidanceLoss)>,
    seed: u64,
    chunk: usize,
    out: &Path,
) -> Result<Sampled> {
    ensure!(n >= 1, "--n must be at least 1");
    ensure!(chunk >= 1, "--chunk must be at least 1");
    let guide_file: Vec<&Path> = guide.iter().map(|g| g.0).collect();
    crate::atomic::refuse_overwriting_inputs(&guide_file, &[out])?;
    let prior = LoadedPrior::open(prior_dir, None)?;
    let d = Dims { t: 1, c: 1, h: prior.config.h, w: prior.config.w };
    let started = std::time::Instant::now();
    let (drawn, share) = match guide {
        None => {
            let mut rngs: Vec<ChaCha8Rng> =
                (0..n).map(|i| ChaCha8Rng::seed_from_u64(mix_seed(seed, 14, i as u64))).collect();
            (prior.draw_chunked(&mut rngs, None, chunk)?, None)
        }
        Some((data, rho, weight, loss)) => {
            ensure!(rho > 0.0 && rho <= 1.0, "--rho must be in (0, 1], got {rho}");
            let (gd, masks) = load_site_masks(data)?;
            prior.check_grid(gd, &data.display().to_string())?;
            let anchor_to: Vec<Vec<u8>> = masks.iter().flat_map(|m| std::iter::repeat_n(m.clone(), n)).collect();
            let mut rngs: Vec<ChaCha8Rng> =
                (0..anchor_to.len()).map(|i| ChaCha8Rng::seed_from_u64(mix_seed(seed, 15, i as u64))).collect();
            let g = GuideTo { masks: &anchor_to, rho, weight: guidance_weight(weight, d), loss };
            let drawn = prior.draw_chunked(&mut rngs, Some(&g), chunk)?;
            let share = context_share(&anchor_to, &drawn);
            (drawn, Some(share))
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut provenance = crate::provenance::Provenance::now(env!("CARGO_PKG_VERSION"), &guide_file)?
        .with("prior", prior_dir.display().to_string())
        .with("n", n)
        .with("seed", seed)
        .with("chunk", chunk);
    if let Some((_, rho, weight, loss)) = guide {
        provenance = provenance.with("rho", rho).with("guidance", weight).with("guidance_loss", loss);
    }
    write_masks(out, d, &drawn, &provenance)?;
    Ok(Sampled { n: drawn.len(), share, seconds })
}

/// What [`sample_to_file`] drew.
#[derive(Clone, Copy, Debug)]
pub struct Sampled {
    pub n: usize,
    /// Share of the guiding masks' observed sites the guided contexts `M̂ ⊙ M` keep.
    pub share: Option<f64>,
    /// Seconds spent drawing (the prior loaded, the file not yet written).
    pub seconds: f64,
}

/// Guided draws per mask in `masks compare`'s query-probability probe.
const PROBE_DRAWS: usize = 8;

/// What `lacuna masks compare` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompareReport {
    pub comparison: Comparison,
    /// The partitions' probe; `None` when only the draws were compared (`--draws-only`).
    #[serde(flatten)]
    pub partitions: Option<PartitionProbe>,
}

/// How the two prior partitions split the data's first masks, and what the guidance rule does.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PartitionProbe {
    /// Query probabilities over observed entries (smallest, mean, share never queried) of the
    /// unguided intersection and the guided partition, on the first masks of the data.
    pub intersect_query: (f64, f64, f64),
    pub guided_query: (f64, f64, f64),
    pub rho: f64,
    pub weight: f64,
    pub guidance_loss: GuidanceLoss,
    pub query_masks: usize,
    pub splits: usize,
    /// Share of the observed sites an unguided context `M̂ ⊙ M` keeps on the data's masks,
    /// and whether the default `--partition prior` (`guide_below`) would therefore guide.
    pub unguided_share: f64,
    pub default_guides: bool,
}

impl CompareReport {
    pub fn table(&self) -> String {
        let (r, g) = (&self.comparison.real, &self.comparison.generated);
        let mut s = String::new();
        s += "| statistic | real | generated |\n|---|---|---|\n";
        s += &format!("| masks | {} | {} |\n", r.n, g.n);
        s += &format!("| observed fraction, mean | {:.3} | {:.3} |\n", r.fraction_mean, g.fraction_mean);
        s += &format!("| observed fraction, sd | {:.3} | {:.3} |\n", r.fraction_sd, g.fraction_sd);
        s += &format!(
            "| observed fraction, 10/50/90% | {:.3} / {:.3} / {:.3} | {:.3} / {:.3} / {:.3} |\n",
            r.fraction_q[0], r.fraction_q[1], r.fraction_q[2], g.fraction_q[0], g.fraction_q[1], g.fraction_q[2]
        );
        for (i, (a, b)) in r.correlation.iter().zip(&g.correlation).enumerate() {
            if i < 4 || (i + 1) % 4 == 0 {
                s += &format!("| two-point correlation, lag {} | {a:.3} | {b:.3} |\n", i + 1);
            }
        }
        s += &format!("| missing regions per mask | {:.1} | {:.1} |\n", r.missing_regions, g.missing_regions);
        s += &format!("| mean missing-region size | {:.1} | {:.1} |\n", r.missing_region_size, g.missing_region_size);
        let c = &self.comparison;
        s += &format!(
            "\n|Δ fraction mean| {:.3}, |Δ fraction sd| {:.3} (tolerance {FRACTION_TOL}); max |Δ correlation| {:.3} (tolerance {CORRELATION_TOL}): {}\n",
            c.fraction_mean_diff,
            c.fraction_sd_diff,
            c.correlation_max_diff,
            if c.within { "within tolerance" } else { "OUTSIDE tolerance" }
        );
        let Some(p) = &self.partitions else {
            return s;
        };
        let q = |name: &str, (min, mean, zero): (f64, f64, f64)| {
            format!(
                "{name}: query probability over observed entries min {min:.3}, mean {mean:.3}, never queried {:.1}%\n",
                100.0 * zero
            )
        };
        s += &format!(
            "\npartitions on the first {} masks, {} guided draws and {} splits each:\n",
            p.query_masks, PROBE_DRAWS, p.splits
        );
        s += &q("  intersection (unguided)", p.intersect_query);
        s += &q(&format!("  guided (rho {}, w_g {}, loss {:?})", p.rho, p.weight, p.guidance_loss), p.guided_query);
        s += &format!(
            "\nunguided contexts M̂ ⊙ M keep {:.1}% of the observed sites: the default --partition prior (guide below {:.0}%) {}\n",
            100.0 * p.unguided_share,
            100.0 * DEFAULT_GUIDE_BELOW,
            if p.default_guides { "guides" } else { "trains the unguided intersection" }
        );
        s
    }
}

/// `lacuna masks compare`: `n` unguided draws against the masks of `data`, and (with
/// `partitions`) the query probabilities of the two prior partitions on the data's first
/// masks, which need guided draws: far dearer than the comparison with a long sampler.
pub fn compare_report(
    prior_dir: &Path,
    data: &Path,
    n: usize,
    (rho, weight, loss): (f64, Option<f64>, GuidanceLoss),
    seed: u64,
    partitions: bool,
    quiet: bool,
) -> Result<CompareReport> {
    ensure!(n >= 1, "--n must be at least 1");
    let prior = LoadedPrior::open(prior_dir, None)?;
    let (d, real) = load_site_masks(data)?;
    prior.check_grid(d, &data.display().to_string())?;
    let mut rngs: Vec<ChaCha8Rng> = (0..n).map(|i| ChaCha8Rng::seed_from_u64(mix_seed(seed, 16, i as u64))).collect();
    let generated = prior.draw(&mut rngs, None)?;
    let comparison = compare(&real, &generated, d.h, d.w);
    if !partitions {
        return Ok(CompareReport { comparison, partitions: None });
    }
    let (query_masks, splits) = (real.len().min(32), 200);
    let probe = &real[..query_masks];
    let part = |rho: Option<f64>| Partition::Prior {
        prior: prior_dir.to_path_buf(),
        rho,
        weight,
        draws: PROBE_DRAWS,
        guidance_loss: loss,
        guide_below: 1.0,
        bank: Default::default(),
    };
    let (unguided, guided) = (part(None), part(Some(rho)));
    guided.validate()?;
    prepare(&unguided, Some(&prior), probe, d, PROBE_DRAWS, seed, quiet)?;
    prepare(&guided, Some(&prior), probe, d, PROBE_DRAWS, seed, quiet)?;
    let Partition::Prior { bank, .. } = &unguided else { unreachable!("built as a prior partition") };
    let unguided_share = super::unguided_share(bank, &prior, &real, d, seed)?;
    let probe = PartitionProbe {
        unguided_share,
        default_guides: unguided_share < DEFAULT_GUIDE_BELOW,
        intersect_query: query_probabilities(&unguided, probe, d, splits, seed)?,
        guided_query: query_probabilities(&guided, probe, d, splits, seed)?,
        rho,
        weight: guidance_weight(weight, d),
        guidance_loss: loss,
        query_masks,
        splits,
    };
    Ok(CompareReport { comparison, partitions: Some(probe) })
}
