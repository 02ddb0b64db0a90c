//! Scores a completion against complete fields.
//!
//! - `mse_field`: mean over *all* entries of (pred − truth)², observations pasted back (the
//!   paper's metric, so observed entries add zero);
//! - `mse_missing`: mean over unobserved entries only;
//! - `rel_l2_missing`: ‖pred − truth‖ / ‖truth‖ over unobserved entries;
//! - `nmse_missing`: `mse_missing` divided by the variance of the truth on those entries;
//! - with an oracle (the exact posterior mean of a GRF): its `mse_missing` on the same entries
//!   and `ratio_to_oracle` = ours / oracle's (1 is the best any method can do on average).

use crate::data::npy::Npz;
use anyhow::{ensure, Context, Result};
use std::path::Path;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Metrics {
    pub mse_field: f64,
    pub mse_missing: f64,
    pub rel_l2_missing: f64,
    pub nmse_missing: f64,
    pub missing_entries: usize,
    pub entries: usize,
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

/// Metrics of `pred` (values) against `truth` where `mask` = 0 marks the entries that were missing.
pub fn metrics(pred: &[f32], truth: &[f32], mask: &[u8]) -> Metrics {
    let (mut sse_all, mut sse_miss, mut ss_miss, mut sum_miss, mut n_miss) = (0f64, 0f64, 0f64, 0f64, 0usize);
    for ((&p, &t), &m) in pred.iter().zip(truth).zip(mask) {
        let p = if m != 0 { t } else { p };
        let e = (p as f64 - t as f64).powi(2);
        sse_all += e;
        if m == 0 {
            sse_miss += e;
            ss_miss += (t as f64).powi(2);
            sum_miss += t as f64;
            n_miss += 1;
        }
    }
    let nm = n_miss.max(1) as f64;
    let var = (ss_miss / nm - (sum_miss / nm).powi(2)).max(1e-30);
    Metrics {
        mse_field: sse_all / pred.len().max(1) as f64,
        mse_missing: sse_miss / nm,
        rel_l2_missing: (sse_miss / ss_miss.max(1e-30)).sqrt(),
        nmse_missing: sse_miss / nm / var,
        missing_entries: n_miss,
        entries: pred.len(),
        oracle_mse_missing: None,
        ratio_to_oracle: None,
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
    let mask: Vec<u8> = mask_arr.to_f32().iter().map(|&v| u8::from(v != 0.0)).collect();
    ensure!(mask.len() == pred.numel(), "'mask' has shape {:?}, expected {:?}", mask_arr.shape, pred.shape);
    let (p, t) = (pred.to_f32(), truth.to_f32());
    ensure!(p.iter().all(|v| v.is_finite()), "{}: 'mean' has non-finite entries", pred_path.display());
    Ok(metrics(&p, &t, &mask))
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
}
