//! The VP noise schedule with linear β (Song et al.), continuous time `t ∈ [t_eps, 1]`:
//!
//! ```text
//! log α_t = −¼ t² (β_max − β_min) − ½ t β_min,    σ_t = √(1 − α_t²)
//! x_t = α_t x_0 + σ_t ε
//! ```

use tch::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VpSchedule {
    pub beta_min: f64,
    pub beta_max: f64,
    pub t_eps: f64,
}

impl Default for VpSchedule {
    fn default() -> Self {
        VpSchedule { beta_min: 0.1, beta_max: 20.0, t_eps: 1e-3 }
    }
}

impl VpSchedule {
    pub fn log_alpha(&self, t: f64) -> f64 {
        -0.25 * t * t * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min
    }

    pub fn alpha(&self, t: f64) -> f64 {
        self.log_alpha(t).exp()
    }

    pub fn sigma(&self, t: f64) -> f64 {
        (1.0 - self.alpha(t).powi(2)).max(0.0).sqrt()
    }

    /// `(α_t, σ_t)` for a batch of times `[B]`, shaped `[B, 1, 1, 1]` for broadcasting.
    pub fn alpha_sigma(&self, t: &Tensor) -> (Tensor, Tensor) {
        let log_a = t.square() * (-0.25 * (self.beta_max - self.beta_min)) - t * (0.5 * self.beta_min);
        let a = log_a.exp();
        let s = (a.square().neg() + 1.0).clamp_min(0.0).sqrt();
        (a.view([-1, 1, 1, 1]), s.view([-1, 1, 1, 1]))
    }

    /// Times `1 = t_0 > t_1 > … > t_steps = t_eps`, evenly spaced.
    pub fn grid(&self, steps: usize) -> Vec<f64> {
        (0..=steps).map(|i| 1.0 - (1.0 - self.t_eps) * i as f64 / steps as f64).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_match_the_spec() {
        let s = VpSchedule::default();
        assert!((s.alpha(1.0) - 0.00657).abs() < 1e-4);
        assert!((s.alpha(1e-3) - 0.999945).abs() < 1e-6);
        assert!((s.sigma(1e-3) - 0.01049).abs() < 1e-4);
        let (a, sg) = s.alpha_sigma(&Tensor::from_slice(&[1.0f32, 1e-3]));
        let a: Vec<f32> = Vec::try_from(a.flatten(0, -1)).unwrap();
        let sg: Vec<f32> = Vec::try_from(sg.flatten(0, -1)).unwrap();
        assert!((a[0] as f64 - s.alpha(1.0)).abs() < 1e-6 && (sg[1] as f64 - s.sigma(1e-3)).abs() < 1e-5);
    }
}
