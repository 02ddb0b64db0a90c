//! The mask-prior network ê_θ(t, softmax(x_t)) of Work II: the field U-Net with one channel,
//! its input the flow's observed-class probability (centred to [−1, 1]) and its output the
//! logit of ê_1. The context-mask input the U-Net has for fields is held at 1 (every site seen).

use super::{UNet, UNetConfig};
use crate::method::mask_prior::MaskModel;
use anyhow::Result;
use tch::{nn, Tensor};

pub struct MaskNet {
    pub net: UNet,
}

impl MaskNet {
    pub fn new(p: &nn::Path, config: &UNetConfig) -> Result<MaskNet> {
        Ok(MaskNet { net: UNet::new(p, 1, config, false)? })
    }

    /// The default size: small, the mask distribution is simpler than the fields.
    pub fn default_config() -> UNetConfig {
        UNetConfig {
            channels: 16,
            mults: vec![1, 2, 2],
            res_blocks: 1,
            attention: false,
            heads: 1,
            ..Default::default()
        }
    }
}

impl MaskModel for MaskNet {
    fn logits(&self, t: &Tensor, p: &Tensor) -> Tensor {
        self.net.forward(t, &(p * 2.0 - 1.0), &p.ones_like())
    }
}
