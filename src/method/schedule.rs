//! The VP schedule's batched form: `(α_t, σ_t)` of a time tensor (the schedule itself, its
//! formulas and scalar functions are `lacuna_core::config::schedule`).

pub use crate::config::schedule::VpSchedule;
use tch::Tensor;

/// The schedule applied to a batch of times.
pub trait AlphaSigma {
    /// `(α_t, σ_t)` for times `[B]`, shaped `[B, 1, 1, 1]` for broadcasting.
    fn alpha_sigma(&self, t: &Tensor) -> (Tensor, Tensor);
}

impl AlphaSigma for VpSchedule {
    fn alpha_sigma(&self, t: &Tensor) -> (Tensor, Tensor) {
        let log_a = t.square() * (-0.25 * (self.beta_max - self.beta_min)) - t * (0.5 * self.beta_min);
        let a = log_a.exp();
        let s = (a.square().neg() + 1.0).clamp_min(0.0).sqrt();
        (a.view([-1, 1, 1, 1]), s.view([-1, 1, 1, 1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_form_matches_the_scalar_one() {
        let s = VpSchedule::default();
        let (a, sg) = s.alpha_sigma(&Tensor::from_slice(&[1.0f32, 1e-3]));
        let a: Vec<f32> = Vec::try_from(a.flatten(0, -1)).unwrap();
        let sg: Vec<f32> = Vec::try_from(sg.flatten(0, -1)).unwrap();
        assert!((a[0] as f64 - s.alpha(1.0)).abs() < 1e-6 && (sg[1] as f64 - s.sigma(1e-3)).abs() < 1e-5);
    }
}
