//! `lacuna baseline`: classical and Gaussian completions with `impute`'s output contract.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct BaselineArgs {
    #[arg(value_enum)]
    method: lacuna::baseline::Baseline,
    /// Fields to complete (`values`, `mask`).
    #[arg(long)]
    data: PathBuf,
    /// Output: `.npz` (`mean`, `mask`, `std`), or `.nc` for CF NetCDF with the axes, units and
    /// land of an imported file.
    #[arg(long)]
    out: PathBuf,
    /// Incomplete training fields, for the methods that learn (krige, em-gaussian).
    #[arg(long)]
    train: Option<PathBuf>,
    /// em-gaussian: rank of the low-rank part.
    #[arg(long, default_value_t = 32)]
    rank: usize,
    /// em-gaussian: EM iterations.
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// krige: nearest observed sites used per missing site when a field has over 1200.
    #[arg(long, default_value_t = 100)]
    neighbours: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The fields are periodic in both directions (simulated on a torus): fill, harmonic,
    /// biharmonic and kriging wrap around (kriging's lags and covariance, the others' stencils).
    #[arg(long)]
    periodic: bool,
}

pub fn run(a: &BaselineArgs) -> Result<()> {
    let opts = lacuna::baseline::BaselineOptions {
        rank: a.rank,
        iters: a.iters,
        neighbours: a.neighbours,
        seed: a.seed,
        periodic: a.periodic,
        fill: None,
    };
    let started = std::time::Instant::now();
    let n = lacuna::data::netcdf_out::completion_to(&a.out, &a.data, |out| {
        lacuna::baseline::run(a.method, &a.data, a.train.as_deref(), out, &opts)
    })?;
    println!(
        "completed {n} fields with {:?} in {:.1}s → {}",
        a.method,
        started.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}
