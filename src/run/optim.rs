//! AdamW and the weight EMA, written out so their state can be checkpointed exactly.

use tch::{nn::VarStore, Tensor};

/// Named trainable variables of a store, sorted by name (a stable order for state files).
pub fn named_vars(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// AdamW with decoupled weight decay:
///
/// ```text
/// m ← β1 m + (1−β1) g,   v ← β2 v + (1−β2) g²
/// p ← p − lr ( m/(1−β1ᵗ) / (√(v/(1−β2ᵗ)) + ε) + λ p )
/// ```
pub struct AdamW {
    pub params: Vec<(String, Tensor)>,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
    pub t: i64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
}

impl AdamW {
    pub fn new(vs: &VarStore, beta1: f64, beta2: f64, weight_decay: f64) -> AdamW {
        let params = named_vars(vs);
        let m = params.iter().map(|(_, p)| p.zeros_like()).collect();
        let v = params.iter().map(|(_, p)| p.zeros_like()).collect();
        AdamW { params, m, v, t: 0, beta1, beta2, weight_decay }
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in self.params.iter_mut() {
            p.zero_grad();
        }
    }

    /// Scales gradients so their global L2 norm is at most `max_norm` (0 = no clip); returns
    /// the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        tch::no_grad(|| {
            let grads: Vec<Tensor> = self.params.iter().map(|(_, p)| p.grad()).filter(|g| g.defined()).collect();
            if grads.is_empty() {
                return 0.0;
            }
            let sq: Vec<Tensor> = grads.iter().map(|g| g.square().sum(tch::Kind::Float)).collect();
            let norm = Tensor::stack(&sq, 0).sum(tch::Kind::Float).sqrt().double_value(&[]);
            if max_norm > 0.0 && norm > max_norm {
                let scale = max_norm / (norm + 1e-6);
                for mut g in grads {
                    let _ = g.g_mul_scalar_(scale);
                }
            }
            norm
        })
    }

    pub fn step(&mut self, lr: f64) {
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let bc1 = 1.0 - b1.powi(self.t as i32);
        let bc2 = 1.0 - b2.powi(self.t as i32);
        tch::no_grad(|| {
            for ((_, p), (m, v)) in self.params.iter_mut().zip(self.m.iter_mut().zip(self.v.iter_mut())) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                // In place where libtorch allows it: m ← lerp(m, g, 1−β1), v ← β2 v + (1−β2) g²,
                // p ← p − (lr/bc1) m / (√v/√bc2 + ε).
                let _ = m.lerp_(&g, 1.0 - b1);
                let _ = v.g_mul_scalar_(b2);
                let _ = v.addcmul_(&(&g * (1.0 - b2)), &g);
                let mut denom = v.sqrt();
                let _ = denom.g_div_scalar_(bc2.sqrt());
                let _ = denom.g_add_scalar_(1e-8);
                if self.weight_decay > 0.0 {
                    let _ = p.g_mul_scalar_(1.0 - lr * self.weight_decay);
                }
                let _ = p.addcdiv_(&(&*m * (-lr / bc1)), &denom);
            }
        });
    }
}

/// Exponential moving average of weights, `e ← d e + (1 − d) p`, with the warm-up
/// `d = min(decay, (1 + n)/(10 + n))` so early averages are not dominated by the initial weights.
pub fn ema_update(ema: &[(String, Tensor)], params: &[(String, Tensor)], decay: f64, step: usize) {
    let d = decay.min((1.0 + step as f64) / (10.0 + step as f64));
    tch::no_grad(|| {
        for ((_, e), (_, p)) in ema.iter().zip(params) {
            // e ← e + (1 − d)(p − e), one fused kernel.
            let _ = e.shallow_clone().lerp_(p, 1.0 - d);
        }
    });
}
