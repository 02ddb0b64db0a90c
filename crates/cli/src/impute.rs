//! `lacuna impute`.

use crate::parse::parse_shift;
use anyhow::Result;
use clap::Args;
use lacuna::method::Weighting;
use lacuna::run::impute;
use std::path::PathBuf;

#[derive(Args)]
pub struct ImputeArgs {
    #[arg(long)]
    run: PathBuf,
    /// Fields to complete (.npz with `values` and `mask`; `truth` is never read).
    #[arg(long)]
    data: PathBuf,
    /// Output: `.npz` (`mean`, `mask`, `samples`, `std`, `provenance`), or `.nc` for CF
    /// NetCDF with the axes, units and land of an imported file.
    #[arg(long)]
    out: PathBuf,
    /// K, the number of context masks averaged.
    #[arg(long, default_value_t = 10)]
    ensemble: usize,
    /// 1: single-step ensemble (posterior mean); more: multi-step sampler.
    #[arg(long, default_value_t = 1)]
    steps: usize,
    /// Posterior samples to draw with the multi-step sampler (written as `samples` and `std`).
    #[arg(long, default_value_t = 0)]
    samples: usize,
    /// How the multi-step sampler shifts weight from E[u0|u_obs] to E[u0|u_t].
    #[arg(long, value_enum, default_value_t = Weighting::Linear)]
    weighting: Weighting,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fields processed per chunk.
    #[arg(long, default_value_t = 16)]
    chunk: usize,
    #[arg(long)]
    device: Option<lacuna::config::Device>,
    /// Use the run's last weights, not the ones with the best held-out score.
    #[arg(long)]
    last: bool,
    /// Share of the observation kept in each ensemble context (default: the run's inference
    /// ratio; 1 = the whole observation, 0 = the training ratio). Block-partition runs: 1 drops
    /// no block, 0 drops blocks as in training. Work II runs (prior, intersect): 1 = the whole
    /// observation, 0 = intersections with prior draws, as in training. `auto` (the default of
    /// Work II runs): whichever of the whole observation and the training rule completes
    /// observed entries of these fields better when the run's own partition hides some (the
    /// first 64 fields; no truth read).
    #[arg(long, value_name = "RATIO|auto")]
    context_ratio: Option<impute::Contexts>,
    /// Roll each ensemble member's input by a random multiple of this circular shift, and its
    /// prediction back (the fields' law must be invariant under it; periodic runs only).
    /// Default: the shift symmetry the run declared, if any; 0,0 turns it off.
    #[arg(long, value_name = "ROWS,COLS", value_parser = parse_shift)]
    shifts: Option<[usize; 2]>,
    /// Map ensemble member k by the k-th reflection of this group (mod its size) and its
    /// prediction back: the fields' law must be invariant under it (shift-reflect for
    /// Kolmogorov flow forced by cos(k y) along the rows, a periodic run with an even row shift
    /// symmetry; dihedral for an isotropic law on a square). On a periodic run a
    /// reflection fixes index 0, otherwise the centre. Default: the run's declared group; none
    /// turns it off.
    #[arg(long, value_enum)]
    reflections: Option<lacuna::config::Reflections>,
    /// Apply the run to fields of another grid size than it was trained on (refused
    /// otherwise: a convolutional prior may transfer, but it is a choice to make).
    #[arg(long)]
    other_grid: bool,
}

pub fn run(a: &ImputeArgs, quiet: bool) -> Result<()> {
    let opts = impute::ImputeOptions {
        ensemble: a.ensemble,
        steps: a.steps,
        samples: a.samples,
        weighting: a.weighting,
        seed: a.seed,
        chunk: a.chunk,
        device: a.device,
        last: a.last,
        context_ratio: a.context_ratio,
        shifts: a.shifts,
        reflections: a.reflections,
        other_grid: a.other_grid,
    };
    let s = lacuna::data::netcdf_out::completion_to(&a.out, &a.data, |out| {
        impute::impute(&a.run, &a.data, out, &opts, quiet)
    })?;
    println!(
        "imputed {} missing entries in {} fields in {:.1}s → {}",
        s.missing_entries,
        s.fields,
        s.seconds,
        a.out.display()
    );
    Ok(())
}
