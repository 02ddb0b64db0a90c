//! `lacuna data`: generate, inspect, import, and the exact Bayes completion of GRFs.

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use lacuna::data::advection::AdvectionSpec;
use lacuna::data::grf::GrfSpec;
use lacuna::data::kolmogorov::KolmogorovSpec;
use lacuna::data::shallow_water::ShallowWaterSpec;
use lacuna::data::synth::{generate_in_time, grf_oracle, Generator};
use lacuna::data::{FieldSet, Pattern, Truth};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum DataCommand {
    /// Generate a data set with known truth.
    Gen(GenArgs),
    /// Shapes, observed fraction and value statistics of an .npz.
    Info { file: PathBuf },
    /// Exact Bayes completion of a GRF set (kriging with the true covariance), as an imputation file.
    Krige(KrigeArgs),
    /// Read variables of a NetCDF-3 file into an .npz (fill values → gaps, axes kept).
    Import(ImportArgs),
}

#[derive(Args)]
pub struct ImportArgs {
    /// NetCDF-3 file (classic or 64-bit offset).
    file: PathBuf,
    /// Variable to import, one channel each (repeat for several; same grid).
    #[arg(long = "var", required = true)]
    vars: Vec<String>,
    /// Output .npz (default: the input name with .npz).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Sites that can ever be observed, written as `static_mask`: `all`, `ever-observed`, or
    /// `FILE.nc:VAR<OP>VALUE` on the same grid (OP: <, <=, >, >=), e.g. `etopo120.cdf:ROSE<0`.
    #[arg(long, default_value = "all")]
    observable: lacuna::data::netcdf::Observable,
}

#[derive(Clone, Copy, ValueEnum)]
enum DataKind {
    /// Gaussian random field, Matérn spectrum (default 32×32).
    Grf,
    /// Navier–Stokes vorticity, Kolmogorov forcing, Re 1000 (default 64×64 from 128²).
    Kolmogorov,
    /// Linearised rotating shallow water, channels h, u, v (default 32×32).
    ShallowWater,
    /// A random field carried by a random constant velocity (default 64×64).
    Advection,
}

#[derive(Args, Clone)]
struct GrfArgs {
    /// GRF: Matérn length scale in grid cells (default size/8).
    #[arg(long)]
    length_scale: Option<f64>,
    /// GRF: Matérn smoothness ν.
    #[arg(long, default_value_t = 1.5)]
    smoothness: f64,
    /// GRF: variance of each site.
    #[arg(long, default_value_t = 1.0)]
    variance: f64,
}

impl GrfArgs {
    fn spec(&self, size: usize) -> Result<GrfSpec> {
        if size < 2 || self.smoothness <= 0.0 || self.variance <= 0.0 {
            bail!("GRF needs size ≥ 2, smoothness > 0 and variance > 0");
        }
        let mut s = GrfSpec::new(size);
        if let Some(l) = self.length_scale {
            if l <= 0.0 {
                bail!("--length-scale must be positive");
            }
            s.length_scale = l;
        }
        s.smoothness = self.smoothness;
        s.variance = self.variance;
        Ok(s)
    }
}

#[derive(Args, Clone)]
struct FlowArgs {
    /// Kolmogorov: simulation grid side (default 2 × size); snapshots are its spectral truncation.
    #[arg(long)]
    resolution: Option<usize>,
    /// Kolmogorov: viscosity ν (Re = 1/ν).
    #[arg(long, default_value_t = 1e-3)]
    viscosity: f64,
    /// Kolmogorov: simulated time before the first snapshot of a run.
    #[arg(long, default_value_t = 30.0)]
    spinup: f64,
    /// Kolmogorov: time between snapshots of one run.
    #[arg(long, default_value_t = 2.0)]
    interval: f64,
    /// Kolmogorov: snapshots taken from each simulation run.
    #[arg(long, default_value_t = 20)]
    per_run: usize,
}

#[derive(Args)]
pub struct GenArgs {
    #[arg(value_enum)]
    kind: DataKind,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 1000)]
    n: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Observation pattern: pixel:P, block:G:M, swath:P, sensors:N or cloud:COVER.
    #[arg(long, default_value = "pixel:0.2")]
    mask: Pattern,
    /// Grid side (fields are size×size, periodic); the default depends on the kind.
    #[arg(long)]
    size: Option<usize>,
    /// Divide the generated values by this (e.g. 38 for the official code's vorticity units).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Frames per sample: more than 1 writes trajectories `[N, T, C, H, W]` (kolmogorov,
    /// shallow-water, advection), observed by the same sensors in every frame.
    #[arg(long, default_value_t = 1)]
    frames: usize,
    /// Native intervals between frames (Kolmogorov: --interval; shallow water: a tenth of its
    /// spin-up steps; advection: one cell at the top speed).
    #[arg(long, default_value_t = 1)]
    stride: usize,
    /// Draw the observation mask anew in every frame (a moving swath or cloud) instead of
    /// keeping it static in time.
    #[arg(long)]
    mask_per_frame: bool,
    #[command(flatten)]
    grf: GrfArgs,
    #[command(flatten)]
    flow: FlowArgs,
}

impl GenArgs {
    fn generator(&self) -> Result<Generator> {
        let size = self.size.unwrap_or(match self.kind {
            DataKind::Grf | DataKind::ShallowWater => 32,
            DataKind::Kolmogorov | DataKind::Advection => 64,
        });
        if size < 4 {
            bail!("--size must be at least 4");
        }
        // The solvers' spectral arrays (the simulation grid is up to 4× the output side).
        lacuna::memory::check_fits(
            &format!("a {size}×{size} generator"),
            lacuna::memory::product(&[size, size, 16, 16 * 16]),
            "lower --size",
        )?;
        let snapshots = match self.kind {
            DataKind::Grf => Generator::Grf(self.grf.spec(size)?),
            DataKind::Kolmogorov => {
                let f = &self.flow;
                let resolution = f.resolution.unwrap_or(2 * size);
                let positive = |v: f64| v.is_finite() && v > 0.0;
                let valid = resolution >= size
                    && positive(f.viscosity)
                    && f.spinup.is_finite()
                    && f.spinup >= 0.0
                    && positive(f.interval)
                    && f.per_run > 0;
                if !valid {
                    bail!(
                        "Kolmogorov needs --resolution ≥ --size, --viscosity > 0, --spinup ≥ 0, --interval > 0, --per-run ≥ 1"
                    );
                }
                let spec = KolmogorovSpec {
                    resolution,
                    size,
                    viscosity: f.viscosity,
                    spinup: f.spinup,
                    interval: f.interval,
                    ..Default::default()
                };
                Generator::Kolmogorov { spec, per_run: f.per_run }
            }
            DataKind::ShallowWater => Generator::ShallowWater(ShallowWaterSpec { size, ..Default::default() }),
            DataKind::Advection => Generator::Advection(AdvectionSpec { size, ..Default::default() }),
        };
        if self.mask_per_frame && self.frames == 1 {
            bail!("--mask-per-frame needs trajectories (--frames > 1)");
        }
        Generator::trajectories(snapshots, self.frames, self.stride)
    }
}

#[derive(Args)]
pub struct KrigeArgs {
    /// GRF data (`values`, `mask`) made with the same field parameters (its size is read from it).
    #[arg(long)]
    data: PathBuf,
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    grf: GrfArgs,
}

pub fn run(c: &DataCommand, quiet: bool) -> Result<()> {
    match c {
        DataCommand::Gen(a) => {
            if a.n == 0 {
                bail!("--n must be at least 1");
            }
            let generator = a.generator()?;
            let started = std::time::Instant::now();
            let progress = |done: usize, total: usize| {
                // Only long generations report (Kolmogorov runs take seconds each).
                let slow = started.elapsed().as_secs_f64() > 2.0;
                if !quiet && slow && (done.is_multiple_of((total / 20).max(1)) || done == total) {
                    eprintln!(
                        "  {done}/{total} {}  {:.0}s",
                        if total == a.n { "fields" } else { "runs" },
                        started.elapsed().as_secs_f64()
                    );
                }
            };
            let set = generate_in_time(&generator, a.n, &a.mask, a.mask_per_frame, a.seed, a.scale, &progress)?;
            let mut arrays = set.arrays();
            let provenance = lacuna::provenance::Provenance::now(env!("CARGO_PKG_VERSION"), &[])?
                .with("kind", a.kind.to_possible_value().map(|v| v.get_name().to_string()))
                .with("n", a.n)
                .with("seed", a.seed)
                .with("mask", a.mask.to_string());
            arrays.insert("provenance".into(), provenance_array(&provenance)?);
            lacuna::data::npy::write_npz(&a.out, &arrays)?;
            println!(
                "wrote {} {} {} {} ({:.1}% observed, {}) to {} in {:.1}s",
                a.n,
                a.kind.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default(),
                if set.dims.t > 1 { "trajectories of" } else { "fields" },
                set.dims.describe(),
                100.0 * set.observed_fraction(),
                a.mask,
                a.out.display(),
                started.elapsed().as_secs_f64()
            );
        }
        DataCommand::Import(a) => {
            let out = a.out.clone().unwrap_or_else(|| a.file.with_extension("npz"));
            lacuna::atomic::refuse_overwriting_inputs(&[&a.file], &[&out])?;
            let im = lacuna::data::netcdf::import(&a.file, &a.vars, &a.observable)?;
            let mut arrays = im.set.arrays();
            arrays.extend(im.meta.arrays()?);
            let provenance = lacuna::provenance::Provenance::now(env!("CARGO_PKG_VERSION"), &[&a.file])?
                .with("vars", &a.vars)
                .with("observable", format!("{:?}", a.observable));
            arrays.insert("provenance".into(), provenance_array(&provenance)?);
            lacuna::data::npy::write_npz(&out, &arrays)?;
            let s = &im.set;
            let observable = s.observable.as_ref().map_or(s.dims.len(), |ok| ok.iter().filter(|&&o| o != 0).count());
            let observed = s.mask.iter().filter(|&&m| m != 0).count();
            println!(
                "wrote {} field(s) of {}×{}×{} ({}) to {}: {:.1}% of sites never observable, {:.1}% of the observable entries missing",
                s.n,
                s.dims.c,
                s.dims.h,
                s.dims.w,
                a.vars.join(", "),
                out.display(),
                100.0 * (1.0 - observable as f64 / s.dims.len() as f64),
                100.0 * (1.0 - observed as f64 / (observable * s.n).max(1) as f64)
            );
            let len = s.dims.len();
            let per_field: Vec<f64> = s
                .mask
                .chunks_exact(len)
                .map(|m| 100.0 * (1.0 - m.iter().filter(|&&o| o != 0).count() as f64 / observable.max(1) as f64))
                .collect();
            let (lo, hi) = per_field.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            println!("missing per field: {lo:.1}% to {hi:.1}% of the observable entries");
            if im.dropped > 0 {
                println!("{} observation(s) on never-observable sites were dropped", im.dropped);
            }
        }
        DataCommand::Info { file } => {
            let set = FieldSet::load(file, Truth::IfPresent)?;
            let frames = if set.dims.t > 1 { format!(" of {} frames", set.dims.t) } else { String::new() };
            println!(
                "{}: {} fields{frames}, {} channel(s), {}×{}",
                file.display(),
                set.n,
                set.dims.c,
                set.dims.h,
                set.dims.w
            );
            println!("observed fraction: {:.4}", set.observed_fraction());
            let obs: Vec<f64> =
                set.values.iter().zip(&set.mask).filter(|(_, &m)| m != 0).map(|(&v, _)| v as f64).collect();
            let mean = obs.iter().sum::<f64>() / obs.len().max(1) as f64;
            let var = obs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / obs.len().max(1) as f64;
            let (lo, hi) = obs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            println!("observed values: mean {mean:.4}, std {:.4}, min {lo:.4}, max {hi:.4}", var.sqrt());
            if let Some(ok) = &set.observable {
                let never = ok.iter().filter(|&&o| o == 0).count() as f64 / ok.len() as f64;
                let layout = if set.observable_per_field() { "one static mask per field" } else { "one static mask" };
                println!("never observable: {:.1}% of sites ({layout})", 100.0 * never);
            }
            println!("truth: {}", if set.truth.is_some() { "present" } else { "absent" });
        }
        DataCommand::Krige(a) => {
            lacuna::atomic::refuse_overwriting_inputs(&[&a.data], &[&a.out])?;
            let set = FieldSet::load(&a.data, Truth::Never)?;
            if set.dims.c != 1 || set.dims.t != 1 || set.dims.h != set.dims.w {
                bail!(
                    "{}: fields are {}×{}×{}; kriging with a GRF covariance needs one channel on a square grid",
                    a.data.display(),
                    set.dims.c,
                    set.dims.h,
                    set.dims.w
                );
            }
            let spec = a.grf.spec(set.dims.h)?;
            let oracle = grf_oracle(&spec, &set)?;
            let shape = vec![set.n, 1, spec.size, spec.size];
            let std: Vec<f32> = oracle.variance.iter().map(|v| v.max(0.0).sqrt()).collect();
            let mut arrays = std::collections::BTreeMap::new();
            arrays.insert("mean".to_string(), lacuna::data::npy::Array::from_f32(shape.clone(), &oracle.mean));
            arrays.insert("std".to_string(), lacuna::data::npy::Array::from_f32(shape.clone(), &std));
            arrays.insert("mask".to_string(), lacuna::data::npy::Array::from_bool(shape, &set.mask));
            let provenance = lacuna::provenance::Provenance::now(env!("CARGO_PKG_VERSION"), &[&a.data])?
                .with("length_scale", spec.length_scale)
                .with("smoothness", spec.smoothness)
                .with("variance", spec.variance);
            arrays.insert("provenance".into(), provenance_array(&provenance)?);
            lacuna::data::npy::write_npz(&a.out, &arrays)?;
            println!("Bayes MSE on missing entries (mean posterior variance): {:.6}", oracle.bayes_mse);
            println!("posterior means and standard deviations written to {}", a.out.display());
        }
    }
    Ok(())
}

/// A provenance record as the uint8 JSON array every output carries.
fn provenance_array(p: &lacuna::provenance::Provenance) -> Result<lacuna::data::npy::Array> {
    Ok(lacuna::data::npy::Array::from_bytes(&serde_json::to_vec_pretty(p)?))
}
