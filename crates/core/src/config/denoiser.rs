//! The denoiser parameterisation (`[denoiser]` in a run's config): plain settings; the engine's
//! `method::precond` applies them (its module doc has the formulas).

/// How `x̂0` is assembled from the network output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Skip {
    /// `x̂0 = F` (the paper).
    None,
    /// EDM-style skip (see the module doc): `α x_t` on the context, the fill elsewhere.
    Fill,
}

/// The classical interpolant of the context that the skip starts from off the context and that
/// the network sees as an input plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Interpolant {
    /// Push–pull, harmonic sweeps and CG toward biharmonic (`fill_sweeps`, `fill_cg`): no
    /// statistics, any grid.
    Fill,
    /// Kriging with a stationary covariance per channel fitted to the training observations at
    /// the start of training (saved in the run as `covariance.json`): the best linear predictor,
    /// on a Gaussian field the Bayes completion. A dense solve per field: grids up to 64×64.
    Krige,
    /// Kriging where its dense solve is affordable (grids up to 64×64 whose training fields
    /// have at most 1200 observed entries each), the fill elsewhere; decided at the start of
    /// training and kept in the run.
    Auto,
}

impl Interpolant {
    fn saved_before_it_existed() -> Interpolant {
        Interpolant::Fill
    }
}

/// What the fill solves for after its push–pull start (`method::precond::fill`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FillKind {
    /// The thin-plate (biharmonic) interpolant, natural borders as the `biharmonic` baseline's,
    /// iterated until converged from a coarse-to-fine start (session 22).
    #[default]
    ThinPlate,
    /// Sessions 5–21: push–pull, `fill_sweeps` harmonic sweeps, then `fill_cg` conjugate-gradient
    /// steps on `‖L u‖²` with the in-grid Laplacian — a harmonic/biharmonic blend on scattered
    /// gaps, far from converged on wide ones (COADS's ship-track gaps: 9.1 °C² against
    /// thin-plate's 1.64). Runs saved before the setting existed use it.
    Blend,
}

/// What the time embedding is fed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoiseCond {
    /// `1000·t` (t ∈ [t_eps, 1]).
    Time,
    /// `1000·¼ ln(σ/α)` (EDM's c_noise, scaled to the range of `1000·t`).
    LogSigma,
}

/// The denoiser parameterisation (`[denoiser]` in a run's config).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DenoiserConfig {
    pub skip: Skip,
    /// The context's interpolant under the skip and in the input. Runs saved before the
    /// setting existed were trained with the fill, whatever today's default.
    #[serde(default = "Interpolant::saved_before_it_existed")]
    pub interpolant: Interpolant,
    /// Feed the context's interpolant to the network as one more input plane per channel.
    pub fill_input: bool,
    pub noise_cond: NoiseCond,
    /// Relaxation sweeps of the harmonic equation after the push–pull fill (smooths its
    /// bilinear creases; 0 = push–pull alone; `thin-plate` sweeps its coarsest grid only).
    pub fill_sweeps: usize,
    /// Most conjugate-gradient iterations toward the biharmonic interpolant; they stop once
    /// converged (`method::precond::FILL_CG_TOL`), so for `thin-plate` this only caps the cost
    /// (0 = no CG: push–pull and the sweeps alone).
    pub fill_cg: usize,
    /// The fill's target: `thin-plate` (converged) or the earlier `blend` (runs saved before
    /// the setting existed: `TrainConfig::load_run`).
    pub fill_kind: FillKind,
}

impl Default for DenoiserConfig {
    fn default() -> Self {
        DenoiserConfig {
            skip: Skip::Fill,
            interpolant: Interpolant::Auto,
            fill_input: true,
            noise_cond: NoiseCond::LogSigma,
            fill_sweeps: 8,
            fill_cg: 1000,
            fill_kind: FillKind::ThinPlate,
        }
    }
}

impl DenoiserConfig {
    /// The published parameterisation (raw network, `1000·t`): runs saved before the
    /// `[denoiser]` table existed used it.
    pub fn legacy() -> Self {
        DenoiserConfig {
            skip: Skip::None,
            interpolant: Interpolant::Fill,
            fill_input: false,
            noise_cond: NoiseCond::Time,
            fill_sweeps: 0,
            fill_cg: 0,
            fill_kind: FillKind::Blend,
        }
    }

    /// Input planes per field channel: mask, context values and optionally the fill.
    pub fn inputs(&self) -> i64 {
        if self.fill_input {
            3
        } else {
            2
        }
    }

    pub fn needs_fill(&self) -> bool {
        self.fill_input || self.skip == Skip::Fill
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.fill_sweeps <= 10_000 && self.fill_cg <= 10_000,
            "denoiser.fill_sweeps and denoiser.fill_cg must be at most 10000"
        );
        Ok(())
    }
}
