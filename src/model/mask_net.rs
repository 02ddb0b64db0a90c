//! The mask-prior network ê_θ(t, softmax(x_t)) of Work II: the field U-Net with one channel,
//! its input the flow's observed-class probability (centred to [−1, 1]) and its output the
//! logit of ê_1. The context-mask input the U-Net has for fields is held at 1 (every site seen).

use super::unet::Precision;
use super::{UNet, UNetConfig};
use anyhow::Result;
use tch::{nn, Kind, Tensor};

pub struct MaskNet {
    pub net: UNet,
}

impl MaskNet {
    /// `precision = "auto"` (priors saved before the setting existed) means float32 here:
    /// mixed precision was measured on the field network only.
    pub fn new(p: &nn::Path, config: &UNetConfig) -> Result<MaskNet> {
        let mut config = config.clone();
        if config.precision == Precision::Auto {
            config.precision = Precision::Float32;
        }
        Ok(MaskNet { net: UNet::new(p, 1, &config, false)? })
    }

    /// The default size: small, the mask distribution is simpler than the fields.
    pub fn default_config() -> UNetConfig {
        UNetConfig {
            channels: 16,
            mults: vec![1, 2, 2],
            res_blocks: 1,
            attention: false,
            heads: 1,
            // Mixed precision was measured on the field network only.
            precision: Precision::Float32,
            ..Default::default()
        }
    }
}

impl MaskNet {
    /// The logit of ê_1 for times `t` `[B]` and observed-class probabilities `p`
    /// `[B, 1, H, W]`: the U-Net on the planes `[1, 2p − 1]`, the time embedded as `1000·t`.
    pub fn logits(&self, t: &Tensor, p: &Tensor) -> Tensor {
        let input = Tensor::cat(&[p.ones_like(), p * 2.0 - 1.0], 1);
        self.net.forward_raw(&(t.to_kind(Kind::Float) * 1000.0), &input)
    }
}
