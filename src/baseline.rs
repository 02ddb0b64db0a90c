//! The classical baselines of `lacuna_core::baseline`, with the engine's tensor interpolant
//! (`method::precond::fill`) plugged in for the `fill` baseline.

pub use lacuna_core::baseline::*;

use crate::config::DenoiserConfig;
use crate::data::Dims;
use anyhow::Result;
use std::path::Path;
use tch::{Kind, Tensor};

/// [`lacuna_core::baseline::run`] with `fill` available.
pub fn run(method: Baseline, data: &Path, train: Option<&Path>, out: &Path, opts: &BaselineOptions) -> Result<usize> {
    let opts = BaselineOptions { fill: opts.fill.or(Some(tensor_fill)), ..opts.clone() };
    lacuna_core::baseline::run(method, data, train, out, &opts)
}

fn tensor_fill(x: &[f32], known: &[u8], dims: Dims, cfg: &DenoiserConfig, periodic: bool) -> Result<Vec<f32>> {
    let shape = [1, dims.planes() as i64, dims.h as i64, dims.w as i64];
    let v = Tensor::from_slice(x).view(shape);
    let m = Tensor::from_slice(known).view(shape).to_kind(Kind::Float);
    let f = crate::method::precond::fill(&v, &m, cfg.fill_sweeps, cfg.fill_cg, periodic, cfg.fill_kind);
    Ok(Vec::try_from(f.flatten(0, -1))?)
}
