//! Field data: the `.npz` contract, normalisation, observation patterns, synthetic fields.

pub mod advection;
pub mod field;
pub mod grf;
pub mod holdout;
pub mod kolmogorov;
pub mod meta;
pub mod netcdf;
pub mod netcdf_out;
pub mod norm;
pub mod npy;
pub mod pattern;
pub mod shallow_water;
pub mod spectral;
pub mod synth;

pub use field::{Dims, FieldSet, Truth};
pub use norm::Normalizer;
pub use pattern::{BlockGrid, Pattern};
