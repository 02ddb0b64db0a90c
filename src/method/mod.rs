//! The context–query method: schedule, partitions, the denoiser interface, inference.

pub mod denoiser;
pub mod ensemble;
pub mod mask_prior;
pub mod net_denoiser;
pub use lacuna_core::partition;
pub mod kriging;
pub mod precond;
pub mod schedule;
pub mod symmetry;

pub use denoiser::Denoiser;
pub use ensemble::{Inference, Members, Weighting};
pub use net_denoiser::NetDenoiser;
pub use partition::{Partition, Split};
pub use schedule::VpSchedule;

use crate::data::Dims;
use tch::{Device, Tensor};

/// Stacks per-sample byte masks (`[T, C, H, W]` each) into a float tensor `[B, T·C, H, W]`:
/// the method layer sees a trajectory as T·C planes (only the network tells frames apart).
pub fn mask_tensor<'a>(masks: impl Iterator<Item = &'a [u8]>, dims: Dims, device: Device) -> Tensor {
    let flat: Vec<f32> = masks.flat_map(|m| m.iter().map(|&v| v as f32)).collect();
    let b = (flat.len() / dims.len().max(1)) as i64;
    Tensor::from_slice(&flat).view([b, dims.planes() as i64, dims.h as i64, dims.w as i64]).to_device(device)
}
