//! `lacuna masks`: Work II's mask prior.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum MasksCommand {
    /// Fit a mask prior (Bayesian Flow Network) on the observation masks of a data file.
    Fit(MasksFitArgs),
    /// Draw masks from a prior (written as `mask` [N, 1, H, W]), optionally guided toward the
    /// masks of a data file.
    Sample(MasksSampleArgs),
    /// Compare the prior's draws with the real masks (observed fraction, two-point correlation,
    /// missing regions) and report the query probabilities of its partitions.
    Compare(MasksCompareArgs),
}

#[derive(Args)]
pub struct MasksFitArgs {
    /// Data (.npz with `mask`, or `values` whose non-finite entries are the gaps).
    #[arg(long)]
    data: PathBuf,
    /// Prior directory to create.
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    steps: Option<usize>,
    #[arg(long)]
    batch: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    /// β(1) of the accuracy schedule β(t) = β(1) t².
    #[arg(long)]
    beta1: Option<f64>,
    /// Steps of the sampler used when drawing from this prior.
    #[arg(long)]
    sample_steps: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long)]
    device: Option<lacuna::config::Device>,
}

#[derive(Args)]
pub struct MasksSampleArgs {
    #[arg(long)]
    prior: PathBuf,
    /// Draws (per mask of --guide when given).
    #[arg(long, default_value_t = 16)]
    n: usize,
    /// Guide each draw toward the masks of this data file (observation-aligned guidance).
    #[arg(long)]
    guide: Option<PathBuf>,
    #[command(flatten)]
    guidance: GuidanceArgs,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Draws per network call of the sampler (the draws do not depend on it; the cost does:
    /// `--chunk 1` is one mask at a time).
    #[arg(long, default_value_t = lacuna::run::masks::CHUNK)]
    chunk: usize,
    #[arg(long)]
    out: PathBuf,
}

/// Observation-aligned guidance of mask-prior draws.
#[derive(Args)]
struct GuidanceArgs {
    /// Share ρ of observed sites anchored per guided draw, in (0, 1].
    #[arg(long, default_value_t = lacuna::method::partition::DEFAULT_RHO)]
    rho: f64,
    /// Guidance weight w_g (default 0.1·H·W).
    #[arg(long)]
    guidance: Option<f64>,
    /// What guidance pulls toward: `all` (the seed's cross-entropy over all sites), `anchors`
    /// or `anchors-missing` (as `train --guidance-loss`).
    #[arg(long, value_enum, default_value_t)]
    guidance_loss: lacuna::method::partition::GuidanceLoss,
}

#[derive(Args)]
pub struct MasksCompareArgs {
    #[arg(long)]
    prior: PathBuf,
    /// Real masks to compare with (data or masks file on the prior's grid).
    #[arg(long)]
    data: PathBuf,
    /// Unguided draws to compare.
    #[arg(long, default_value_t = 512)]
    n: usize,
    /// The guided partition whose query probabilities are reported.
    #[command(flatten)]
    guidance: GuidanceArgs,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Exit with status 1 when the draws are outside the stated tolerance.
    #[arg(long)]
    check: bool,
    /// Print the comparison as JSON.
    #[arg(long)]
    json: bool,
    /// Compare the draws only: skip the partitions' query probabilities and the guidance
    /// rule's share, which need guided draws (minutes with a long sampler).
    #[arg(long)]
    draws_only: bool,
}

pub fn run(c: &MasksCommand, quiet: bool) -> Result<()> {
    use lacuna::run::masks;
    match c {
        MasksCommand::Fit(a) => {
            let mut cfg = masks::PriorConfig::default();
            if let Some(v) = a.steps {
                cfg.steps = v;
            }
            if let Some(v) = a.batch {
                cfg.batch = v;
            }
            if let Some(v) = a.lr {
                cfg.lr = v;
            }
            if let Some(v) = a.beta1 {
                cfg.schedule.beta1 = v;
            }
            if let Some(v) = a.sample_steps {
                cfg.sample_steps = v;
            }
            if let Some(v) = a.seed {
                cfg.seed = v;
            }
            if let Some(v) = a.device {
                cfg.device = v;
            }
            let s = masks::fit(&a.data, &a.out, &cfg, quiet)?;
            println!(
                "fitted the mask prior on {} masks: {} steps, final loss {:.4}, {:.1}s → {}",
                s.masks,
                s.steps,
                s.last_loss,
                s.seconds,
                a.out.display()
            );
        }
        MasksCommand::Sample(a) => {
            let guide = a.guide.as_deref().map(|g| (g, a.guidance.rho, a.guidance.guidance, a.guidance.guidance_loss));
            let s = masks::sample_to_file(&a.prior, a.n, guide, a.seed, a.chunk, &a.out)?;
            println!(
                "drew {} {}masks in {:.2}s ({:.1} ms per mask, {} per network call) → {}",
                s.n,
                if guide.is_some() { "guided " } else { "" },
                s.seconds,
                1e3 * s.seconds / s.n.max(1) as f64,
                a.chunk,
                a.out.display()
            );
            if let Some(share) = s.share {
                println!("guided contexts M̂ ⊙ M keep {:.1}% of the guiding masks' observed sites", 100.0 * share);
            }
        }
        MasksCommand::Compare(a) => {
            let report = masks::compare_report(
                &a.prior,
                &a.data,
                a.n,
                (a.guidance.rho, a.guidance.guidance, a.guidance.guidance_loss),
                a.seed,
                !a.draws_only,
                quiet,
            )?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
            if a.check && !report.comparison.within {
                bail!("the prior's draws are outside the stated tolerance");
            }
        }
    }
    Ok(())
}
