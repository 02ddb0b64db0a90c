//! Learning curves of trained runs: the held-out scores each run logged in its
//! `metrics.jsonl`, against training seconds or steps, as a CSV and a PNG with reference lines
//! (classical baselines, the Bayes floor).

use crate::chart::{Chart, Series};
use anyhow::{ensure, Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One scored point of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub step: u64,
    pub seconds: f64,
    pub mse: f64,
    pub ratio: Option<f64>,
}

/// The held-out scores of the run in `dir`, in step order.
pub fn read_curve(dir: &Path) -> Result<Vec<Point>> {
    let path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mut points = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}: line {} is not JSON", path.display(), i + 1))?;
        if let Some(mse) = v.get("score_mse").and_then(|m| m.as_f64()) {
            points.push(Point {
                step: v.get("step").and_then(|s| s.as_u64()).unwrap_or(0),
                seconds: v.get("seconds").and_then(|s| s.as_f64()).unwrap_or(f64::NAN),
                mse,
                ratio: v.get("score_ratio").and_then(|r| r.as_f64()),
            });
        }
    }
    ensure!(!points.is_empty(), "{}: no held-out scores (train with --score-every N)", path.display());
    Ok(points)
}

/// Which training clock the x axis shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Axis {
    Seconds,
    Steps,
}

/// Writes `out` (PNG) and the same name with `.csv`: one row per scored point of every run.
pub fn write_curves(
    runs: &[(String, PathBuf)],
    lines: &[(String, f64)],
    x: Axis,
    title: &str,
    out: &Path,
) -> Result<PathBuf> {
    ensure!(!runs.is_empty(), "give at least one run (--run NAME=DIR)");
    let metrics: Vec<PathBuf> = runs.iter().map(|(_, d)| d.join("metrics.jsonl")).collect();
    let inputs: Vec<&Path> = metrics.iter().map(PathBuf::as_path).collect();
    crate::atomic::refuse_overwriting_inputs(&inputs, &[out, &out.with_extension("csv")])?;
    let curves = runs.iter().map(|(name, dir)| Ok((name.clone(), read_curve(dir)?))).collect::<Result<Vec<_>>>()?;
    write_curve_points(&curves, lines, x, title, out)
}

/// The curves of a CSV that [`write_curves`] wrote, per name in the order of their first row
/// (the reference lines, rows without a step, are left out). The format is this module's own
/// (names never hold a comma: they are method names), so a plain split reads it.
pub fn read_curves_csv(path: &Path) -> Result<Vec<(String, Vec<Point>)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mut curves: Vec<(String, Vec<Point>)> = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let bad = || format!("{}: line {}: not `method,step,seconds,mse,ratio`", path.display(), i + 1);
        let fields: Vec<&str> = line.split(',').collect();
        let [name, step, seconds, mse, ratio] = fields[..] else { anyhow::bail!(bad()) };
        if step.is_empty() {
            continue; // a reference line
        }
        let point = Point {
            step: step.parse().with_context(bad)?,
            seconds: seconds.parse().with_context(bad)?,
            mse: mse.parse().with_context(bad)?,
            ratio: if ratio.is_empty() { None } else { Some(ratio.parse().with_context(bad)?) },
        };
        match curves.iter_mut().find(|(n, _)| n == name) {
            Some((_, points)) => points.push(point),
            None => curves.push((name.to_string(), vec![point])),
        }
    }
    Ok(curves)
}

/// [`write_curves`] from curves already read: `out` (PNG) and its `.csv`.
pub fn write_curve_points(
    curves: &[(String, Vec<Point>)],
    lines: &[(String, f64)],
    x: Axis,
    title: &str,
    out: &Path,
) -> Result<PathBuf> {
    let mut csv = String::from("method,step,seconds,mse,ratio\n");
    let mut series = Vec::new();
    for (name, curve) in curves {
        for p in curve {
            let ratio = p.ratio.map(|r| r.to_string()).unwrap_or_default();
            writeln!(csv, "{name},{},{},{},{ratio}", p.step, p.seconds, p.mse)?;
        }
        let points =
            curve.iter().map(|p| (if x == Axis::Seconds { p.seconds } else { p.step as f64 }, p.mse)).collect();
        series.push(Series { name: name.clone(), points });
    }
    for (name, v) in lines {
        writeln!(csv, "{name},,,{v},")?;
    }
    let chart = Chart {
        title: title.into(),
        x_label: match x {
            Axis::Seconds => "training seconds".into(),
            Axis::Steps => "training steps".into(),
        },
        y_label: "held-out MSE (log)".into(),
        series,
        lines: lines.to_vec(),
    };
    crate::plot::write_png(out, &chart.draw())?;
    let csv_path = out.with_extension("csv");
    crate::atomic::write_bytes(&csv_path, csv.as_bytes())?;
    Ok(csv_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `write_curve_points` writes, `read_curves_csv` reads back, curve by curve; the
    /// reference lines are not curves.
    #[test]
    fn a_written_curve_csv_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = |step, seconds, mse, ratio| Point { step, seconds, mse, ratio };
        let curves = vec![
            ("pixel".to_string(), vec![p(250, 10.5, 0.25, Some(1.5)), p(500, 21.0, 0.125, Some(1.25))]),
            ("prior".to_string(), vec![p(250, 12.0, 0.5, None)]),
        ];
        let out = dir.path().join("c.png");
        let csv = write_curve_points(&curves, &[("krige".into(), 0.2)], Axis::Seconds, "t", &out).unwrap();
        assert_eq!(read_curves_csv(&csv).unwrap(), curves);
        std::fs::write(&csv, "method,step,seconds,mse,ratio\npixel,250,x,0.1,\n").unwrap();
        let e = format!("{:#}", read_curves_csv(&csv).unwrap_err());
        assert!(e.contains("line 2"), "{e}");
    }
}
