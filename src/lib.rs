//! lacuna: learn a diffusion prior of complete physical fields from incomplete observations
//! only, and fill new gaps with it (the context–query framework).
//!
//! Layers, arrows pointing down: `run` (commands) → `method` (schedule, partitions, samplers)
//! → `model` (networks) → `data` (fields, patterns, generators).

// The tensor-free layers live in `lacuna_core`; re-exported here so the engine and its users
// name them as before (`lacuna::data`, `lacuna::config`, ...).
pub use lacuna_core::{atomic, chart, config, data, linalg, memory, plot, provenance};

pub mod baseline;
pub mod dist;
mod ffi;
pub mod method;
pub mod model;
pub mod run;
