//! Denoiser networks.

pub mod unet;

pub use unet::{prefer_channels_last, NetDenoiser, UNet, UNetConfig, Workers};
