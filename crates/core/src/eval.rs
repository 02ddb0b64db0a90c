//! Scores a completion against complete fields.
//!
//! - `mse_field`: mean over *all* entries of (pred − truth)², observations pasted back (the
//!   paper's metric, so observed entries add zero);
//! - `mse_missing`: mean over unobserved entries only;
//! - `rel_l2_missing`: ‖pred − truth‖ / ‖truth‖ over unobserved entries;
//! - `nmse_missing`: `mse_missing` divided by the variance of the truth on those entries;
//! - `crps_missing`: continuous ranked probability score on missing entries, from posterior
//!   `samples` (`E|X − y| − ½ E|X − X'|` over the ensemble) or, for a Gaussian output with `std`,
//!   the closed form `σ [z (2Φ(z) − 1) + 2φ(z) − 1/√π]`, z = (y − μ)/σ;
//! - `spread_skill`: ensemble spread over error, `√(mean var · (S+1)/S) / RMSE` on missing entries
//!   (1 for a calibrated ensemble; the (S+1)/S term only with samples);
//! - `spectrum_log_error`: mean over radial wavenumbers k ≥ 1 of `|log10 P_pred(k) / P_true(k)|`,
//!   P the radially averaged power spectrum averaged over fields and channels (completions that are
//!   too smooth lose power at high k);
//! - with an oracle (the exact posterior mean of a GRF): its `mse_missing` on the same entries
//!   and `ratio_to_oracle` = ours / oracle's (1 is the best any method can do on average).

use crate::data::field::{read_static_mask, Dims};
use crate::data::npy::Npz;
use anyhow::{bail, ensure, Context, Result};
use std::path::Path;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Metrics {
    pub mse_field: f64,
    pub mse_missing: f64,
    pub rel_l2_missing: f64,
    pub nmse_missing: f64,
    pub missing_entries: usize,
    pub entries: usize,
    pub spectrum_log_error: f64,
    /// `10 log10(range² / mse_missing)`, range = max − min of the scored truth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psnr_missing: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crps_missing: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread_skill: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle_mse_missing: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_to_oracle: Option<f64>,
}

/// Adds the oracle's score to `m`; both must have scored the same missing entries.
pub fn add_oracle(m: &mut Metrics, oracle: &Metrics) -> Result<()> {
    ensure!(
        oracle.missing_entries == m.missing_entries && oracle.entries == m.entries,
        "the oracle file scores {} missing of {} entries, the prediction {} of {}: are they from the same data?",
        oracle.missing_entries,
        oracle.entries,
        m.missing_entries,
        m.entries
    );
    m.oracle_mse_missing = Some(oracle.mse_missing);
    m.ratio_to_oracle = Some(m.mse_missing / oracle.mse_missing.max(1e-300));
    Ok(())
}

/// Metrics of `pred` (values) against `truth`. `mask`: 0 = missing (scored), 1 = observed
/// (pasted back, counted in the whole-field MSE), 2 = excluded (never observable, or no truth
/// there: held-out evaluation), counted nowhere.
pub fn metrics(pred: &[f32], truth: &[f32], mask: &[u8]) -> Metrics {
    let (mut sse_all, mut sse_miss, mut ss_miss, mut sum_miss, mut n_miss, mut n_all) =
        (0f64, 0f64, 0f64, 0f64, 0usize, 0usize);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for ((&p, &t), &m) in pred.iter().zip(truth).zip(mask) {
        if m == EXCLUDED {
            continue;
        }
        n_all += 1;
        let p = if m != 0 { t } else { p };
        let e = (p as f64 - t as f64).powi(2);
        sse_all += e;
        if m == 0 {
            sse_miss += e;
            ss_miss += (t as f64).powi(2);
            sum_miss += t as f64;
            n_miss += 1;
            lo = lo.min(t as f64);
            hi = hi.max(t as f64);
        }
    }
    let nm = n_miss.max(1) as f64;
    let var = (ss_miss / nm - (sum_miss / nm).powi(2)).max(1e-30);
    let mse_missing = sse_miss / nm;
    Metrics {
        mse_field: sse_all / n_all.max(1) as f64,
        mse_missing,
        rel_l2_missing: (sse_miss / ss_miss.max(1e-30)).sqrt(),
        nmse_missing: sse_miss / nm / var,
        missing_entries: n_miss,
        entries: n_all,
        spectrum_log_error: 0.0,
        psnr_missing: (n_miss > 0 && hi > lo && mse_missing > 0.0)
            .then(|| 10.0 * ((hi - lo).powi(2) / mse_missing).log10()),
        crps_missing: None,
        spread_skill: None,
        oracle_mse_missing: None,
        ratio_to_oracle: None,
    }
}

/// The `mask` value of entries that are scored nowhere (see [`metrics`]).
pub const EXCLUDED: u8 = 2;

/// The scoring mask of [`metrics`]: `mask` (1 = observed), with entries whose truth is unknown
/// (not finite: held-out files) or whose site can never be observed marked [`EXCLUDED`].
pub fn scoring_mask(mask: &[u8], truth: &[f32], observable: impl Fn(usize) -> bool) -> Vec<u8> {
    (0..mask.len()).map(|k| if !truth[k].is_finite() || !observable(k) { EXCLUDED } else { mask[k] }).collect()
}

/// [`metrics`] plus the spectrum error, for completions of h×w fields.
pub fn field_metrics(pred: &[f32], truth: &[f32], mask: &[u8], h: usize, w: usize) -> Metrics {
    Metrics { spectrum_log_error: spectrum_log_error(pred, truth, mask, h, w), ..metrics(pred, truth, mask) }
}

/// CRPS of an ensemble `xs` for the outcome `y` (sorted-sample form, O(S log S)).
pub fn crps_ensemble(xs: &mut [f64], y: f64) -> f64 {
    let s = xs.len() as f64;
    xs.sort_by(f64::total_cmp);
    let skill = xs.iter().map(|x| (x - y).abs()).sum::<f64>() / s;
    // Σ_{i,j} |x_i − x_j| = 2 Σ_i (2i − S + 1) x_(i) for sorted x.
    let pair: f64 = xs.iter().enumerate().map(|(i, x)| (2.0 * i as f64 - s + 1.0) * x).sum::<f64>() * 2.0;
    skill - pair / (2.0 * s * s)
}

/// Error function (Abramowitz & Stegun 7.1.26, |error| < 1.5·10⁻⁷).
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.3275911 * x.abs());
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let v = 1.0 - poly * (-x * x).exp();
    if x >= 0.0 {
        v
    } else {
        -v
    }
}

/// CRPS of N(μ, σ²) for the outcome `y`.
pub fn crps_gaussian(mu: f64, sigma: f64, y: f64) -> f64 {
    if sigma <= 0.0 {
        return (y - mu).abs();
    }
    let z = (y - mu) / sigma;
    let pdf = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let cdf = 0.5 * (1.0 + erf(z / std::f64::consts::SQRT_2));
    sigma * (z * (2.0 * cdf - 1.0) + 2.0 * pdf - 1.0 / std::f64::consts::PI.sqrt())
}

/// Radially averaged power spectrum of an h×w field, bins k = 0..=min(h, w)/2 where
/// k = min(h, w) · √((k_y/h)² + (k_x/w)²) rounded (k_y, k_x signed FFT indices).
pub fn radial_spectrum(field: &[f32], h: usize, w: usize) -> Vec<f64> {
    use crate::data::spectral::{wavenumber, C64};
    let mut planner = rustfft::FftPlanner::<f64>::new();
    let (fr, fc) = (planner.plan_fft_forward(w), planner.plan_fft_forward(h));
    let mut buf: Vec<C64> = field.iter().map(|&v| C64::new(v as f64, 0.0)).collect();
    fr.process(&mut buf);
    let mut col = vec![C64::default(); h];
    for c in 0..w {
        for r in 0..h {
            col[r] = buf[r * w + c];
        }
        fc.process(&mut col);
        for r in 0..h {
            buf[r * w + c] = col[r];
        }
    }
    let side = h.min(w);
    let bins = side / 2 + 1;
    let (mut power, mut count) = (vec![0.0; bins], vec![0.0; bins]);
    for r in 0..h {
        for c in 0..w {
            let k =
                side as f64 * ((wavenumber(r, h) / h as f64).powi(2) + (wavenumber(c, w) / w as f64).powi(2)).sqrt();
            let b = k.round() as usize;
            if b < bins {
                power[b] += buf[r * w + c].norm_sqr();
                count[b] += 1.0;
            }
        }
    }
    power.iter().zip(&count).map(|(p, c)| if *c > 0.0 { p / c } else { 0.0 }).collect()
}

/// `spectrum_log_error` of completions `pred` (observations pasted) against `truth`, `[N, C, H, W]`.
pub fn spectrum_log_error(pred: &[f32], truth: &[f32], mask: &[u8], h: usize, w: usize) -> f64 {
    let sites = h * w;
    // Excluded entries (no truth, never observable) are 0 in both, so they add no power.
    let truth: Vec<f32> = truth.iter().zip(mask).map(|(&t, &m)| if m == EXCLUDED { 0.0 } else { t }).collect();
    let truth = truth.as_slice();
    let pasted: Vec<f32> = pred
        .iter()
        .zip(truth)
        .zip(mask)
        .map(|((&p, &t), &m)| match m {
            0 => p,
            EXCLUDED => 0.0,
            _ => t,
        })
        .collect();
    let mut sp = vec![0.0; h.min(w) / 2 + 1];
    let mut st = sp.clone();
    for (a, b) in pasted.chunks_exact(sites).zip(truth.chunks_exact(sites)) {
        for (acc, v) in sp.iter_mut().zip(radial_spectrum(a, h, w)) {
            *acc += v;
        }
        for (acc, v) in st.iter_mut().zip(radial_spectrum(b, h, w)) {
            *acc += v;
        }
    }
    let terms: Vec<f64> =
        (1..sp.len()).filter(|&k| st[k] > 0.0 && sp[k] > 0.0).map(|k| (sp[k] / st[k]).log10().abs()).collect();
    terms.iter().sum::<f64>() / terms.len().max(1) as f64
}

/// Adds CRPS and spread/skill on the missing entries, from posterior `samples` `[N, S, D]`
/// (with S) or from a Gaussian `std` `[N, D]`; `d` is the size of one field.
pub fn add_probabilistic(
    m: &mut Metrics,
    mean: &[f32],
    truth: &[f32],
    mask: &[u8],
    d: usize,
    samples: Option<(&[f32], usize)>,
    std: Option<&[f32]>,
) {
    let (mut crps, mut var, mut sse, mut n) = (0.0, 0.0, 0.0, 0.0);
    let mut inflate = 1.0;
    for idx in (0..mean.len()).filter(|&i| mask[i] == 0) {
        let (y, mu) = (truth[idx] as f64, mean[idx] as f64);
        match (samples, std) {
            (Some((xs, s)), _) if s >= 2 => {
                let (f, j) = (idx / d, idx % d);
                let mut ens: Vec<f64> = (0..s).map(|k| xs[(f * s + k) * d + j] as f64).collect();
                let em = ens.iter().sum::<f64>() / s as f64;
                var += ens.iter().map(|x| (x - em).powi(2)).sum::<f64>() / (s - 1) as f64;
                crps += crps_ensemble(&mut ens, y);
                inflate = (s as f64 + 1.0) / s as f64;
            }
            (_, Some(sd)) => {
                let sigma = sd[idx] as f64;
                var += sigma * sigma;
                crps += crps_gaussian(mu, sigma, y);
            }
            _ => return,
        }
        sse += (mu - y).powi(2);
        n += 1.0;
    }
    if n > 0.0 {
        m.crps_missing = Some(crps / n);
        m.spread_skill = Some((inflate * var / n).sqrt() / (sse / n).sqrt().max(1e-300));
    }
}

/// Reads `mean` (and `mask`) from `pred_path`, `truth` (and `mask`) from `truth_path`.
pub fn eval_files(pred_path: &Path, truth_path: &Path) -> Result<Metrics> {
    let mut pred_npz = Npz::open(pred_path)?;
    let pred = pred_npz
        .get("mean")?
        .with_context(|| format!("{}: no 'mean' array (is it an imputation output?)", pred_path.display()))?;
    let mut truth_npz = Npz::open(truth_path)?;
    let truth = truth_npz
        .get("truth")?
        .with_context(|| format!("{}: no 'truth' array to score against", truth_path.display()))?;
    ensure!(
        pred.shape == truth.shape,
        "{}: 'mean' has shape {:?} but {} 'truth' has {:?}",
        pred_path.display(),
        pred.shape,
        truth_path.display(),
        truth.shape
    );
    let mask_arr = match pred_npz.get("mask")? {
        Some(m) => m,
        None => {
            truth_npz.get("mask")?.with_context(|| "neither file has a 'mask' saying which entries were observed")?
        }
    };
    let observed: Vec<u8> = mask_arr.to_f32().iter().map(|&v| u8::from(v != 0.0)).collect();
    ensure!(observed.len() == pred.numel(), "'mask' has shape {:?}, expected {:?}", mask_arr.shape, pred.shape);
    let (p, t) = (pred.to_f32(), truth.to_f32());
    let d = pred.numel() / pred.shape[0].max(1);
    // One field is [C, H, W] (or [H, W]) or a trajectory [T, C, H, W]; other leading axes fold into C.
    let dims = match pred.shape[..] {
        [_, t, c, h, w] if t * c * h * w > 0 => Dims { t, c, h, w },
        [.., h, w] if pred.shape.len() >= 3 && h * w > 0 => Dims { t: 1, c: d / (h * w), h, w },
        _ => bail!("{}: 'mean' has shape {:?}, expected [N, C, H, W]", pred_path.display(), pred.shape),
    };
    let n = pred.shape[0];
    let observable = read_static_mask(&mut truth_npz, &truth_path.display().to_string(), n, dims)?;
    // Shared ([C, H, W]) or per field ([N, C, H, W]): entry k reads ok[k % ok.len()].
    let mask = scoring_mask(&observed, &t, |k| observable.as_ref().is_none_or(|ok| ok[k % ok.len()] != 0));
    if let Some(k) = (0..p.len()).find(|&k| mask[k] != EXCLUDED && !p[k].is_finite()) {
        bail!("{}: 'mean' is not finite at flat index {k}, a scored entry", pred_path.display());
    }
    ensure!(
        mask.contains(&0),
        "nothing to score: no entry is both missing in {} and known in {}",
        pred_path.display(),
        truth_path.display()
    );
    let mut m = field_metrics(&p, &t, &mask, dims.h, dims.w);
    let n = pred.shape[0].max(1);
    let samples = match pred_npz.get("samples")? {
        Some(a) => {
            let s = if a.shape.len() >= 2 { a.shape[1] } else { 0 };
            ensure!(
                a.shape.len() >= 2 && a.shape[0] == n && a.numel() == n * s * d,
                "{}: 'samples' has shape {:?}, expected [N, S, ...] matching 'mean' {:?}",
                pred_path.display(),
                a.shape,
                pred.shape
            );
            Some((a.to_f32(), s))
        }
        None => None,
    };
    let std = match pred_npz.get("std")? {
        Some(a) => {
            ensure!(
                a.shape == pred.shape,
                "{}: 'std' has shape {:?}, expected {:?}",
                pred_path.display(),
                a.shape,
                pred.shape
            );
            Some(a.to_f32())
        }
        None => None,
    };
    add_probabilistic(&mut m, &p, &t, &mask, d, samples.as_ref().map(|(x, s)| (x.as_slice(), *s)), std.as_deref());
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_count_only_missing_entries() {
        let truth = [1.0, 2.0, 3.0, 4.0];
        let pred = [9.0, 2.5, 3.0, 3.0];
        let m = metrics(&pred, &truth, &[1, 0, 1, 0]);
        assert_eq!(m.missing_entries, 2);
        assert!((m.mse_missing - (0.25 + 1.0) / 2.0).abs() < 1e-12);
        assert!((m.mse_field - 1.25 / 4.0).abs() < 1e-12);
        assert!((m.rel_l2_missing - (1.25f64 / 20.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn crps_matches_closed_forms() {
        // One member: CRPS is the absolute error. Two members a < b around y: (|a−y| + |b−y|)/2 − (b−a)/4.
        assert!((crps_ensemble(&mut [2.0], 0.5) - 1.5).abs() < 1e-12);
        assert!((crps_ensemble(&mut [1.0, -1.0], 0.0) - (1.0 - 0.5)).abs() < 1e-12);
        // Gaussian at its mean: σ(2φ(0) − 1/√π) = σ(√2 − 1)/√π.
        let want = 2.0 * (2f64.sqrt() - 1.0) / std::f64::consts::PI.sqrt();
        assert!((crps_gaussian(0.0, 2.0, 0.0) - want).abs() < 1e-6);
        // A large ensemble from N(0, 1) gives the Gaussian value.
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut xs: Vec<f64> = (0..20000).map(|_| rng.sample(rand_distr::StandardNormal)).collect();
        assert!((crps_ensemble(&mut xs, 0.7) - crps_gaussian(0.0, 1.0, 0.7)).abs() < 0.01);
    }

    #[test]
    fn calibrated_gaussian_has_unit_spread_skill_and_spectra_see_smoothing() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let n = 20000;
        let truth: Vec<f32> = (0..n).map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal) * 0.5).collect();
        let mean = vec![0f32; n];
        let mask = vec![0u8; n];
        let mut m = metrics(&mean, &truth, &mask);
        add_probabilistic(&mut m, &mean, &truth, &mask, n, None, Some(&vec![0.5f32; n]));
        assert!((m.spread_skill.unwrap() - 1.0).abs() < 0.03, "{:?}", m.spread_skill);
        // White noise against a completion that keeps only its mean: all power lost.
        let (h, w) = (16, 16);
        let field: Vec<f32> = (0..h * w).map(|_| rng.gen::<f32>() - 0.5).collect();
        assert_eq!(spectrum_log_error(&field, &field, &vec![0; h * w], h, w), 0.0);
        let halved: Vec<f32> = field.iter().map(|v| v * 0.5).collect();
        let e = spectrum_log_error(&halved, &field, &vec![0; h * w], h, w);
        assert!((e - 4f64.log10()).abs() < 1e-9, "{e}");
    }
}
