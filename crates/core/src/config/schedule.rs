//! The VP noise schedule with linear β (Song et al.), continuous time `t ∈ [t_eps, 1]`:
//!
//! ```text
//! log α_t = −¼ t² (β_max − β_min) − ½ t β_min,    σ_t = √(1 − α_t²)
//! x_t = α_t x_0 + σ_t ε
//! ```

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
    }
}
