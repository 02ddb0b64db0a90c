//! lacuna: learn a diffusion prior of complete physical fields from incomplete observations
//! only, and fill new gaps with it (the context–query framework).
//!
//! Layers, arrows pointing down: `run` (commands) → `method` (schedule, partitions, samplers)
//! → `model` (networks) → `data` (fields, patterns, generators).

pub mod atomic;
pub mod baseline;
pub mod chart;
pub mod config;
pub mod data;
pub mod linalg;
pub mod memory;
pub mod method;
pub mod model;
pub mod plot;
pub mod run;
