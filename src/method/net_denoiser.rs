//! The trained network as a [`Denoiser`]: its raw output turned into `x̂0` by the run's
//! parameterisation ([`Precond`]), in batches, optionally split over CPU workers.

use super::precond::Precond;
use super::Denoiser;
use crate::model::{UNet, Workers};
use anyhow::{ensure, Result};
use tch::{Device, Tensor};

/// The network as a [`Denoiser`] through its parameterisation, with the batch size used for
/// inference and, on a CPU, optional [`Workers`] that split each batch over cores.
pub struct NetDenoiser<'a> {
    pub net: &'a UNet,
    pub precond: &'a Precond,
    pub max_batch: usize,
    pub workers: Option<&'a Workers>,
}

impl Denoiser for NetDenoiser<'_> {
    fn denoise(&self, t: &Tensor, context: &Tensor, context_mask: &Tensor) -> Result<Tensor> {
        ensure!(
            context.size()[1] % self.net.out_channels() == 0,
            "the model was trained on {} channels, the data has {} planes",
            self.net.out_channels(),
            context.size()[1]
        );
        match self.workers {
            Some(w) if w.len() >= 2 && context.size()[0] >= 2 => w.map_rows(&[t, context, context_mask], |net, x| {
                self.precond.denoise(|c, i| net.forward_raw(c, i), &x[0], &x[1], &x[2])
            }),
            _ => crate::model::resources::torch("model forward", || {
                tch::no_grad(|| self.precond.denoise(|c, x| self.net.forward_raw(c, x), t, context, context_mask))
            }),
        }
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    fn device(&self) -> Device {
        self.net.device()
    }
}
