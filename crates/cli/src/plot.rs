//! `lacuna plot` (panels of fields and completions) and `lacuna curves` (learning curves).

use crate::parse::parse_named;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct PlotArgs {
    /// Data file (`values`, `mask`, and `truth` if present).
    data: PathBuf,
    /// Imputation outputs (`mean`) of the same file, one column each.
    #[arg(long = "pred")]
    preds: Vec<PathBuf>,
    #[arg(long)]
    out: PathBuf,
    /// Number of fields (rows; one row per channel).
    #[arg(long, default_value_t = 4)]
    n: usize,
    /// Pixels per grid cell (default: panels about 128 pixels wide).
    #[arg(long)]
    zoom: Option<usize>,
}

pub fn plot(a: &PlotArgs) -> Result<()> {
    lacuna::run::figure::plot_files(&a.data, &a.preds, &a.out, a.n, a.zoom)?;
    println!("wrote {}", a.out.display());
    Ok(())
}

#[derive(Args)]
pub struct CurvesArgs {
    /// A run and its label, `NAME=DIR` (repeatable).
    #[arg(long = "run", value_parser = parse_named::<PathBuf>, required = true)]
    runs: Vec<(String, PathBuf)>,
    /// A reference line, `NAME=MSE` (repeatable): a classical baseline's or the oracle's MSE
    /// on the same held-out fields.
    #[arg(long = "line", value_parser = parse_named::<f64>)]
    lines: Vec<(String, f64)>,
    /// X axis: training seconds or steps.
    #[arg(long, value_enum, default_value_t = lacuna::run::curves::Axis::Seconds)]
    x: lacuna::run::curves::Axis,
    #[arg(long, default_value = "learning curves")]
    title: String,
    /// The PNG to write; the CSV goes beside it.
    #[arg(long)]
    out: PathBuf,
}

pub fn curves(a: &CurvesArgs) -> Result<()> {
    let csv = lacuna::run::curves::write_curves(&a.runs, &a.lines, a.x, &a.title, &a.out)?;
    println!("learning curves written to {} and {}", a.out.display(), csv.display());
    Ok(())
}
