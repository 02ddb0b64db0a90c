//! What a bench writes: one record per scored run, `results.csv`, `results.md` (mean ± std
//! over seeds) and the learning curves of curve suites.

use super::*;

/// One scored run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub case: String,
    pub method: String,
    pub seed: usize,
    pub metrics: Metrics,
    pub seconds: f64,
    /// Context share and query balance of a learned method's training partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<crate::run::masks::PartitionStats>,
    /// Learned methods: the training steps the run took (records of older versions have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Learned methods: the run's training clock at its end, seconds (what a `published_time`
    /// method's budget is taken from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_seconds: Option<f64>,
    /// Learned methods whose model another method of the case trained (an `intersect` that the
    /// guidance rule made its `prior` run): that run's directory, e.g. `run-prior`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Learned methods whose inference contexts were chosen on the test data (Work II runs by
    /// default): what was measured and chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contexts: Option<crate::run::context_choice::ContextChoice>,
    /// What made the record, when, from which data (records of older versions have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<crate::provenance::Provenance>,
}

/// The learning curves of one case and seed: every learned method's held-out scores, every
/// other method's MSE (baselines, oracle, exact denoisers) as a horizontal line. A learned
/// method whose run directory is gone (made on another machine, or cleared) but whose record
/// stands keeps its curve from the CSV written before, so a report or a rerun of one method
/// does not drop the others' curves; so do the learned methods a copy of the suite leaves out.
pub(super) fn write_case_curves(case: &Case, seed: usize, dir: &Path, records: &[Record], out: &Path) -> Result<()> {
    use crate::run::curves::{read_curve, read_curves_csv, write_curve_points, Axis};
    let png = out.join(format!("curves-{}-seed-{seed}.png", slug(&case.name)));
    let csv = png.with_extension("csv");
    let before = if csv.exists() { read_curves_csv(&csv)? } else { Vec::new() };
    let mut curves = Vec::new();
    let mut read_from = Vec::new();
    let mut lines = Vec::new();
    for method in &case.methods {
        let spec: MethodSpec = method.parse()?;
        let run_dir = dir.join(slug(&spec.run_name()));
        let learned = LEARNED.contains(&spec.name.as_str()) && spec.name != "oracle";
        let record = records.iter().find(|r| r.case == case.name && r.seed == seed && &r.method == method);
        if learned {
            if record.is_some_and(|r| r.run.is_some()) {
                continue; // a model another method trained: its curve is that method's
            }
            // A run stopped before its first held-out score has no curve yet: it is left out, not
            // an error, so a report (or a bench of another case) works beside an interrupted run.
            if let Ok(curve) = read_curve(&run_dir) {
                if !read_from.contains(&run_dir) {
                    read_from.push(run_dir);
                    curves.push((method.clone(), curve));
                }
            } else if let (Some((_, kept)), Some(_)) = (before.iter().find(|(name, _)| name == method), record) {
                curves.push((method.clone(), kept.clone())); // only beside its record
            }
        } else if let Some(r) = record {
            lines.push((method.clone(), r.metrics.mse_missing));
        }
    }
    if read_from.is_empty() {
        return Ok(()); // no run directory read: the committed curves stand as they are
    }
    // Methods this suite does not name (a copy of it with fewer methods, run to redo one row)
    // keep their curves while their records stand in the case directory.
    for (name, kept) in &before {
        let recorded = dir.join(format!("{}.json", slug(name))).exists();
        if recorded && !case.methods.contains(name) && !curves.iter().any(|(n, _)| n == name) {
            curves.push((name.clone(), kept.clone()));
        }
    }
    let title = format!("{} (seed {seed})", case.name);
    write_curve_points(&curves, &lines, Axis::Seconds, &title, &png)?;
    Ok(())
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let s = if v.len() > 1 { (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
    (m, s)
}

/// `results.csv` (one line per run) and `results.md` (per case: mean ± std over seeds).
pub fn write_tables(suite: &Suite, records: &[Record], out: &Path) -> Result<()> {
    let mut csv = String::from(
        "case,method,seed,mse_missing,mse_field,nmse_missing,rel_l2_missing,spectrum_log_error,crps_missing,spread_skill,seconds,context_share,query_min,query_mean,steps\n",
    );
    for r in records {
        let m = &r.metrics;
        let opt = |v: Option<f64>| v.map(|x| format!("{x:.6e}")).unwrap_or_default();
        csv += &format!(
            "{},{},{},{:.6e},{:.6e},{:.6e},{:.6e},{:.4},{},{},{:.1},{},{},{},{}\n",
            r.case,
            r.method,
            r.seed,
            m.mse_missing,
            m.mse_field,
            m.nmse_missing,
            m.rel_l2_missing,
            m.spectrum_log_error,
            opt(m.crps_missing),
            opt(m.spread_skill),
            r.seconds,
            opt(r.partition.map(|p| p.context_share)),
            opt(r.partition.map(|p| p.query_min)),
            opt(r.partition.map(|p| p.query_mean)),
            r.steps.map(|s| s.to_string()).unwrap_or_default(),
        );
    }
    crate::atomic::write_bytes(&out.join("results.csv"), csv.as_bytes())?;
    let budget = |minutes: Option<f64>| minutes.map(|m| format!(" or {m} minutes of training")).unwrap_or_default();
    let mut md = format!(
        "# Bench `{}`: {} seed(s), {} training steps{} per learned method, K = {}\n\n\
         MSE on the missing entries (mean ± std over seeds); whole-field MSE with observations pasted\n\
         (the paper's metric); power-spectrum log error; seconds per seed (train + impute), with\n\
         the training steps taken where a time budget decided them.\n",
        suite.name,
        suite.seeds,
        suite.steps,
        budget(suite.minutes),
        suite.ensemble
    );
    for case in &suite.cases {
        let what = match (&case.data, case.kind) {
            (Some(data), CaseKind::File) => match &case.test_data {
                Some(test) => {
                    format!("trained on `{data}`, scored on the missing entries of `{test}` against its truth")
                }
                None => format!(
                    "`{data}`, held out with `{}`: trained on and scored at the hidden observed entries",
                    case.mask
                ),
            },
            _ if case.frames > 1 => format!(
                "`{}` trajectories of {} frames of {}×{} (stride {}{}), `{}` static in time, {} training / {} test trajectories",
                case.kind,
                case.frames,
                case.size,
                case.size,
                case.stride,
                case.interval.map_or(String::new(), |dt| format!(", snapshot interval {dt}")),
                case.mask,
                case.train,
                case.test
            ),
            _ => format!(
                "`{}` {}×{}, `{}`, {} training / {} test fields",
                case.kind, case.size, case.size, case.mask, case.train, case.test
            ),
        };
        let steps = match (case.steps, case.minutes) {
            (None, None) => String::new(),
            (steps, _) => format!(
                " {} training steps{} per learned method.",
                steps.unwrap_or(suite.steps),
                budget(suite.minutes(case))
            ),
        };
        let timed = suite.minutes(case).is_some() || suite.published_time;
        md += &format!("\n## {}\n\n{what}.{steps} Panels: `{}.png`.\n\n", case.name, slug(&case.name));
        let case_records = || records.iter().filter(|r| r.case == case.name);
        let with_partitions = case_records().any(|r| r.partition.is_some());
        md += if with_partitions {
            "| method | MSE missing | whole-field MSE | spectrum error | context share | query min / mean | s | seeds |\n|---|---|---|---|---|---|---|---|\n"
        } else {
            "| method | MSE missing | whole-field MSE | spectrum error | s | seeds |\n|---|---|---|---|---|---|\n"
        };
        let mut rows: BTreeMap<usize, String> = BTreeMap::new();
        for (order, method) in case.methods.iter().enumerate() {
            let rs: Vec<&Record> = records.iter().filter(|r| r.case == case.name && &r.method == method).collect();
            if rs.is_empty() {
                continue;
            }
            let (mm, ms) = mean_std(&rs.iter().map(|r| r.metrics.mse_missing).collect::<Vec<_>>());
            let (fm, fs) = mean_std(&rs.iter().map(|r| r.metrics.mse_field).collect::<Vec<_>>());
            let (sm, _) = mean_std(&rs.iter().map(|r| r.metrics.spectrum_log_error).collect::<Vec<_>>());
            let (tm, _) = mean_std(&rs.iter().map(|r| r.seconds).collect::<Vec<_>>());
            let steps: Vec<String> = rs.iter().filter_map(|r| r.steps).map(|s| s.to_string()).collect();
            let taken =
                if timed && !steps.is_empty() { format!(" ({} steps)", steps.join(", ")) } else { String::new() };
            let pm = |m: f64, s: f64| if rs.len() > 1 { format!("{m:.4} ± {s:.4}") } else { format!("{m:.4}") };
            let parts: Vec<_> = rs.iter().filter_map(|r| r.partition).collect();
            let partition = match (with_partitions, parts.is_empty()) {
                (false, _) => String::new(),
                (true, true) => " | | ".into(),
                (true, false) => {
                    let mean = |f: fn(&crate::run::masks::PartitionStats) -> f64| {
                        mean_std(&parts.iter().map(f).collect::<Vec<_>>()).0
                    };
                    format!(
                        " | {:.3} | {:.3} / {:.3}",
                        mean(|p| p.context_share),
                        mean(|p| p.query_min),
                        mean(|p| p.query_mean)
                    )
                }
            };
            // A model another method trained (the `prior` run an `intersect` repeats) says so.
            let shared: Vec<&str> = rs.iter().filter_map(|r| r.run.as_deref()).collect();
            let mut label = match shared.first() {
                None => method.clone(),
                Some(run) if shared.len() == rs.len() => format!("{method} (the model of `{run}`)"),
                Some(run) => format!("{method} (the model of `{run}` in {} of {} seeds)", shared.len(), rs.len()),
            };
            // Inference contexts chosen on the data: which, per seed when they differ.
            let mut chosen: Vec<&str> = rs.iter().filter_map(|r| r.contexts.as_ref()).map(|c| c.chosen()).collect();
            chosen.dedup();
            if !chosen.is_empty() {
                label.push_str(&format!(", contexts: {}", chosen.join(" / ")));
            }
            rows.insert(
                order,
                format!(
                    "| {label} | {} | {} | {sm:.3}{partition} | {tm:.0}{taken} | {} |\n",
                    pm(mm, ms),
                    pm(fm, fs),
                    rs.len()
                ),
            );
        }
        md += &rows.into_values().collect::<String>();
    }
    crate::atomic::write_bytes(&out.join("results.md"), md.as_bytes())
}
