//! The part of lacuna that needs no tensor library (and so builds and tests without
//! libtorch): field files and sets, observation patterns, partitions of an observation into
//! context and query, generators, classical baselines, metrics, plots, the run's
//! configuration. The engine crate (`lacuna`) adds the networks, samplers and training.

pub mod atomic;
pub mod baseline;
pub mod chart;
pub mod config;
pub mod curves;
pub mod data;
pub mod eval;
pub mod figure;
pub mod linalg;
pub mod lock;
pub mod mask_stats;
pub mod memory;
pub mod panels;
pub mod partition;
pub mod plot;
pub mod progress;
pub mod provenance;
