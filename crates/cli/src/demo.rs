//! `lacuna demo`.

use crate::parse::parse_duration;
use anyhow::Result;
use clap::Args;
use lacuna::data::Pattern;
use lacuna::run::demo;
use std::path::PathBuf;

#[derive(Args)]
pub struct DemoArgs {
    /// Directory for the generated data, runs and predictions.
    #[arg(long, default_value = "demo-out")]
    out: PathBuf,
    /// The fields: Kolmogorov-flow turbulence (where a learned prior earns its keep) or
    /// Gaussian random fields (where kriging is optimal by construction).
    #[arg(long, value_enum, default_value_t = demo::DemoData::Kolmogorov)]
    data: demo::DemoData,
    #[arg(long, default_value_t = 4000)]
    steps: usize,
    /// Training time per learned method (`240s`, `4m`; default 4 minutes): training ends at
    /// --steps or here, whichever comes first.
    #[arg(long, value_parser = parse_duration, default_value = "4m")]
    time_budget: f64,
    #[arg(long, default_value_t = 2000)]
    train_fields: usize,
    #[arg(long, default_value_t = 100)]
    test_fields: usize,
    #[arg(long, default_value = "pixel:0.2")]
    mask: Pattern,
    #[arg(long, default_value_t = 32)]
    size: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also train the MissDiff baseline with the same budget and compare.
    #[arg(long)]
    compare: bool,
}

pub fn run(a: &DemoArgs, quiet: bool) -> Result<()> {
    let opts = demo::DemoOptions {
        data: a.data,
        size: a.size,
        train_fields: a.train_fields,
        test_fields: a.test_fields,
        pattern: a.mask.clone(),
        steps: a.steps,
        time_budget: Some(a.time_budget),
        ensemble: 10,
        seed: a.seed,
        compare: a.compare,
    };
    let report = demo::demo(&a.out, &opts, quiet)?;
    let what = match a.data {
        demo::DemoData::Kolmogorov => "Kolmogorov-flow vorticity",
        demo::DemoData::Grf => "Gaussian random fields",
    };
    println!(
        "\n{what} {0}×{0}, observed {1}; {2} test fields, scored on the missing entries:\n",
        a.size, a.mask, a.test_fields
    );
    println!("| method | MSE missing | MSE / variance | whole-field MSE | train s |");
    println!("|---|---|---|---|---|");
    for r in &report.rows {
        println!(
            "| {} | {:.4} | {:.3} | {:.4} | {:.0} |",
            r.method, r.metrics.mse_missing, r.metrics.nmse_missing, r.metrics.mse_field, r.train_seconds
        );
    }
    let best_classical = report
        .rows
        .iter()
        .filter(|r| !r.learned && r.train_seconds > 0.0)
        .min_by(|x, y| x.metrics.mse_missing.total_cmp(&y.metrics.mse_missing));
    if let (Some(c), Some(l)) = (best_classical, report.rows.iter().find(|r| r.learned)) {
        println!(
            "\n{}: {:.2}× the MSE of {}, the best classical method here",
            l.method,
            l.metrics.mse_missing / c.metrics.mse_missing.max(1e-30),
            c.method
        );
    }
    lacuna::atomic::write_bytes(&a.out.join("demo.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
    println!(
        "panel (truth, observed, lacuna, {}, errors): {}",
        best_classical.map_or("classical", |c| c.method.as_str()),
        report.panel.display()
    );
    println!("files in {}", a.out.display());
    Ok(())
}
