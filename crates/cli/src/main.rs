//! `lacuna`: the command line. Parses arguments, calls the library, prints results; one
//! module per command.

mod baseline;
mod bench;
mod data;
mod demo;
mod eval;
mod impute;
mod masks;
mod parse;
mod plot;
mod train;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "lacuna",
    version,
    about = "Learn diffusion priors of physical fields from incomplete observations, and fill gaps with them"
)]
struct Cli {
    /// No progress output.
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a denoiser on partially observed fields (an .npz of values and masks).
    Train(train::TrainArgs),
    /// Fill the gaps of partially observed fields with a trained run.
    Impute(impute::ImputeArgs),
    /// Score a completion against complete fields.
    Eval(eval::EvalArgs),
    /// Generate data, train, impute and score, all on fields the demo makes itself.
    Demo(demo::DemoArgs),
    /// Make and inspect data sets.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// PNG of the first fields of a data file: truth, observed, completions and their errors.
    Plot(plot::PlotArgs),
    /// Complete fields with a classical or Gaussian baseline (same output as `impute`).
    Baseline(baseline::BaselineArgs),
    /// Run a suite of data × pattern × method end to end and tabulate the scores.
    Bench(bench::BenchArgs),
    /// Learning curves of trained runs (their held-out scores) as a PNG and a CSV, with
    /// reference lines for classical baselines and the Bayes floor.
    Curves(plot::CurvesArgs),
    /// Work II's learned mask prior: fit it on observation masks, draw from it, check it.
    #[command(subcommand)]
    Masks(masks::MasksCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    lacuna::atomic::install_signal_cleanup();
    // libtorch failures arrive as panics and are turned into errors where they happen; keep the
    // default hook from printing them, and report any other panic as one line too.
    std::panic::set_hook(Box::new(|_| {}));
    let q = cli.quiet;
    let caught = std::panic::catch_unwind(|| match &cli.command {
        Command::Train(a) => train::run(a, q),
        Command::Impute(a) => impute::run(a, q),
        Command::Eval(a) => eval::run(a, q),
        Command::Demo(a) => demo::run(a, q),
        Command::Data(c) => data::run(c, q),
        Command::Masks(c) => masks::run(c, q),
        Command::Baseline(a) => baseline::run(a),
        Command::Bench(a) => bench::run(a, q),
        Command::Curves(a) => plot::curves(a),
        Command::Plot(a) => plot::plot(a),
    });
    let result = caught.unwrap_or_else(|payload| {
        let msg =
            payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()));
        let msg = msg.unwrap_or_default();
        if msg.contains("failed printing to stdout") {
            // The reader went away (`lacuna … | head`): stop quietly, like other command-line tools.
            std::process::exit(0);
        }
        Err(anyhow::anyhow!("internal error (please report): {}", msg.lines().next().unwrap_or("")))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, most specific last.
            eprintln!("error: {}", e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": "));
            ExitCode::FAILURE
        }
    }
}
