//! Denoiser networks.

pub mod unet;

pub use unet::{NetDenoiser, UNet, UNetConfig};
