//! Networks: the field denoiser (U-Net) and the mask-prior network of Work II.

pub mod autocast;
pub mod circular_pad;
pub mod mask_net;
pub mod resources;
pub mod unet;

pub use mask_net::MaskNet;
pub use unet::{prefer_channels_last, UNet, UNetConfig, Workers};
