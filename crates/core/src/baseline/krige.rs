//! Kriging with a stationary covariance estimated from the incomplete training data — what a
//! geostatistician would run.
//!
//! 1. Per channel, the empirical covariance of the observed entries by lag vector
//!    (|Δy|, |Δx| ≤ D, pairs both observed, around the observed mean), averaged into distance
//!    bins `d = round(|Δ|)`.
//! 2. A Matérn model `C(d) = σ² ρ_ν(d/ℓ) + τ² 1[d = 0]` with ν ∈ {½, 3/2, 5/2} fitted by
//!    count-weighted least squares: a grid over ℓ, closed form for (σ², τ²) ≥ 0.
//! 3. Simple kriging of each field around the fitted mean: `E[u_i | y_O] = m + C_iO (C_OO + τ²I)⁻¹
//!    (y_O − m)`, with its variance; all observed sites at once when there are at most
//!    `GLOBAL_MAX` of them, otherwise the `neighbours` nearest (moving neighbourhood).
//!
//! On a [`Grid`] declared periodic (fields simulated on a torus, the `periodic` setting the
//! learned model is given too) lags wrap around in step 1, and the covariance between two
//! sites in step 3 is the periodised one: by wrapped lag (|Δy| ≤ h/2, |Δx| ≤ w/2),
//! `T(Δ) = Σ_{a,b ∈ {−1,0,1}} C(|Δ + (a·h, b·w)|)`, the sum over the nearest periodic images
//! (what a stationary covariance becomes on a torus; farther images add `C` beyond a grid
//! side). A truncated sum need not be a valid covariance for long length scales, so `T` is
//! made one on the torus: its 2-D DFT (the covariance matrix's eigenvalues) is floored at
//! 10⁻⁶ of the largest and transformed back.
//!
//! `krige-trend` (regression kriging) first removes from every field and channel the
//! least-squares plane `a + b·row + c·col` through its observations, fits and kriges the
//! residuals as above, and adds the plane back. Its variance ignores the plane's own
//! uncertainty (small with hundreds of observations per field).

use super::Grid;
use crate::data::grf;
use crate::data::FieldSet;
use crate::linalg;
use anyhow::{ensure, Result};

/// Fields beyond this many observed sites are kriged with a moving neighbourhood.
pub const GLOBAL_MAX: usize = 1200;

/// The covariance of a model between the sites of a grid (without the nugget); on a torus the
/// periodised table of the module docs.
struct SiteCov<'a> {
    model: &'a CovModel,
    grid: Grid,
    /// Torus only: `T` by wrapped lag, `[dy · w + dx]` for 0 ≤ dy < h, 0 ≤ dx < w.
    table: Option<Vec<f64>>,
}

impl<'a> SiteCov<'a> {
    fn new(model: &'a CovModel, grid: Grid) -> SiteCov<'a> {
        let table = grid.periodic.then(|| torus_table(model, grid.h, grid.w));
        SiteCov { model, grid, table }
    }

    fn at(&self, i: usize, j: usize) -> f64 {
        let (dy, dx) = self.grid.lag(i, j);
        match &self.table {
            Some(t) => t[dy as usize * self.grid.w + dx as usize],
            None => self.model.cov((dy * dy + dx * dx).sqrt()),
        }
    }
}

/// The periodised covariance `T` of `model` on an h×w torus, made a valid covariance there
/// (module docs).
pub fn torus_table(model: &CovModel, h: usize, w: usize) -> Vec<f64> {
    use rustfft::num_complex::Complex;
    let (hf, wf) = (h as f64, w as f64);
    let mut t: Vec<Complex<f64>> = (0..h * w)
        .map(|k| {
            let (dy, dx) = ((k / w).min(h - k / w) as f64, (k % w).min(w - k % w) as f64);
            let mut c = 0.0;
            for a in [-1.0, 0.0, 1.0] {
                for b in [-1.0, 0.0, 1.0] {
                    let (y, x) = (dy + a * hf, dx + b * wf);
                    c += model.cov((y * y + x * x).sqrt());
                }
            }
            Complex::new(c, 0.0)
        })
        .collect();
    let mut planner = rustfft::FftPlanner::<f64>::new();
    let transform = |t: &mut [Complex<f64>], inverse: bool, planner: &mut rustfft::FftPlanner<f64>| {
        let (rows, cols) = if inverse {
            (planner.plan_fft_inverse(w), planner.plan_fft_inverse(h))
        } else {
            (planner.plan_fft_forward(w), planner.plan_fft_forward(h))
        };
        rows.process(t);
        let mut column = vec![Complex::new(0.0, 0.0); h];
        for c in 0..w {
            (0..h).for_each(|r| column[r] = t[r * w + c]);
            cols.process(&mut column);
            (0..h).for_each(|r| t[r * w + c] = column[r]);
        }
    };
    transform(&mut t, false, &mut planner);
    // An even real table has a real spectrum: its eigenvalues.
    let top = t.iter().map(|z| z.re).fold(0.0, f64::max);
    t.iter_mut().for_each(|z| *z = Complex::new(z.re.max(1e-6 * top), 0.0));
    transform(&mut t, true, &mut planner);
    t.iter().map(|z| z.re / (h * w) as f64).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CovModel {
    pub mean: f64,
    /// Matérn smoothness ν (0.5, 1.5 or 2.5).
    pub smoothness: f64,
    pub variance: f64,
    pub length_scale: f64,
    pub nugget: f64,
}

/// Matérn correlation for half-integer ν at scaled distance s = d/ℓ.
fn matern(nu: f64, s: f64) -> f64 {
    if nu < 1.0 {
        (-s).exp()
    } else if nu < 2.0 {
        let a = 3f64.sqrt() * s;
        (1.0 + a) * (-a).exp()
    } else {
        let a = 5f64.sqrt() * s;
        (1.0 + a + a * a / 3.0) * (-a).exp()
    }
}

impl CovModel {
    /// Covariance of the field (without the nugget) at distance d.
    pub fn cov(&self, d: f64) -> f64 {
        self.variance * matern(self.smoothness, d / self.length_scale)
    }
}

/// Empirical covariance by distance bin of channel `ch`: (covariance, pair count) for d = 0..=D.
/// With `periodic` the lags wrap around the grid (D at most half its side).
pub fn covariogram(
    set: &FieldSet,
    ch: usize,
    max_lag: usize,
    max_fields: usize,
    periodic: bool,
) -> (f64, Vec<(f64, f64)>) {
    let (h, w, sites, len) = (set.dims.h, set.dims.w, set.dims.sites(), set.dims.len());
    let fields: Vec<usize> = (0..set.n).step_by(set.n.div_ceil(max_fields.max(1)).max(1)).collect();
    let (mut sum, mut cnt) = (0f64, 0f64);
    for &f in &fields {
        for k in 0..sites {
            if set.mask[f * len + ch * sites + k] != 0 {
                sum += set.values[f * len + ch * sites + k] as f64;
                cnt += 1.0;
            }
        }
    }
    let mean = sum / cnt.max(1.0);
    let bins = max_lag + 1;
    let (mut acc, mut pairs) = (vec![0.0; bins], vec![0.0; bins]);
    let d = max_lag as i64;
    for &f in &fields {
        let base = f * len + ch * sites;
        let x: Vec<f64> = (0..sites).map(|k| set.values[base + k] as f64 - mean).collect();
        let m = &set.mask[base..base + sites];
        // Half of the lag plane (the other half gives the same pairs).
        for dy in 0..=d {
            for dx in -d..=d {
                if dy == 0 && dx < 0 {
                    continue;
                }
                let b = ((dy * dy + dx * dx) as f64).sqrt().round() as usize;
                if b >= bins {
                    continue;
                }
                let (mut s, mut c) = (0.0, 0.0);
                let rows = if periodic { h } else { h.saturating_sub(dy as usize) };
                for r in 0..rows {
                    for col in 0..w {
                        let mut cc = col as i64 + dx;
                        if periodic {
                            cc = cc.rem_euclid(w as i64);
                        } else if cc < 0 || cc >= w as i64 {
                            continue;
                        }
                        let (i, j) = (r * w + col, ((r + dy as usize) % h) * w + cc as usize);
                        if m[i] != 0 && m[j] != 0 {
                            s += x[i] * x[j];
                            c += 1.0;
                        }
                    }
                }
                acc[b] += s;
                pairs[b] += c;
            }
        }
    }
    (mean, acc.iter().zip(&pairs).map(|(&a, &p)| (if p > 0.0 { a / p } else { 0.0 }, p)).collect())
}

/// A plane `a + b·row + c·col` over an h×w grid.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plane {
    pub a: f64,
    pub b: f64,
    pub c: f64,
}

impl Plane {
    pub const ZERO: Plane = Plane { a: 0.0, b: 0.0, c: 0.0 };

    /// Least squares through the observed sites (`known` 1); their mean when fewer than three
    /// or collinear (one row or column), zero when none.
    pub fn fit(values: &[f32], known: &[u8], h: usize, w: usize) -> Plane {
        let obs: Vec<usize> = (0..h * w).filter(|&i| known[i] != 0).collect();
        if obs.is_empty() {
            return Plane::ZERO;
        }
        let mean = obs.iter().map(|&i| values[i] as f64).sum::<f64>() / obs.len() as f64;
        // Normal equations in centred coordinates: [Syy Syx; Sxy Sxx] [b; c] = [Syv; Sxv].
        let n = obs.len() as f64;
        let (my, mx) = (
            obs.iter().map(|&i| (i / w) as f64).sum::<f64>() / n,
            obs.iter().map(|&i| (i % w) as f64).sum::<f64>() / n,
        );
        let (mut syy, mut sxx, mut sxy, mut syv, mut sxv) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &i in &obs {
            let (y, x, v) = ((i / w) as f64 - my, (i % w) as f64 - mx, values[i] as f64 - mean);
            syy += y * y;
            sxx += x * x;
            sxy += x * y;
            syv += y * v;
            sxv += x * v;
        }
        let det = syy * sxx - sxy * sxy;
        if obs.len() < 3 || det <= 1e-9 * (syy * sxx).max(1e-300) {
            return Plane { a: mean, b: 0.0, c: 0.0 };
        }
        let b = (sxx * syv - sxy * sxv) / det;
        let c = (syy * sxv - sxy * syv) / det;
        Plane { a: mean - b * my - c * mx, b, c }
    }

    fn at(&self, i: usize, w: usize) -> f64 {
        self.a + self.b * (i / w) as f64 + self.c * (i % w) as f64
    }

    /// `values − plane` at every site.
    pub fn remove(&self, values: &[f32], w: usize) -> Vec<f32> {
        values.iter().enumerate().map(|(i, &v)| (v as f64 - self.at(i, w)) as f32).collect()
    }

    /// `values + plane` at every site.
    pub fn restore(&self, values: &[f32], w: usize) -> Vec<f32> {
        values.iter().enumerate().map(|(i, &v)| (v as f64 + self.at(i, w)) as f32).collect()
    }
}

/// `set` with each field's and channel's least-squares plane removed from its observations.
pub fn detrended(set: &FieldSet) -> FieldSet {
    let (h, w, sites) = (set.dims.h, set.dims.w, set.dims.sites());
    let mut out = set.clone();
    for (x, known) in out.values.chunks_exact_mut(sites).zip(set.mask.chunks_exact(sites)) {
        let resid = Plane::fit(x, known, h, w).remove(x, w);
        for ((v, r), &k) in x.iter_mut().zip(resid).zip(known) {
            *v = if k != 0 { r } else { 0.0 };
        }
    }
    out
}

/// Least-squares Matérn fits to a covariogram (see the module docs): the best length scale for
/// each smoothness, with a free nugget and with none (six candidates; a held-out test picks).
pub fn fit(mean: f64, bins: &[(f64, f64)]) -> Result<Vec<CovModel>> {
    ensure!(bins.len() >= 3 && bins[0].1 > 0.0, "too few observed pairs to estimate a covariance");
    let mut out = Vec::new();
    for nu in [0.5, 1.5, 2.5] {
        for free_nugget in [true, false] {
            out.extend(fit_one(mean, bins, nu, free_nugget));
        }
    }
    ensure!(!out.is_empty(), "no positive covariance fits the data");
    Ok(out)
}

fn fit_one(mean: f64, bins: &[(f64, f64)], nu: f64, free_nugget: bool) -> Option<CovModel> {
    let dmax = (bins.len() - 1) as f64;
    let mut best: Option<(f64, CovModel)> = None;
    {
        for g in 0..80 {
            let ell = 0.3 * (8.0 * dmax / 0.3f64).powf(g as f64 / 79.0);
            // Least squares in (σ², τ²): C_d ≈ σ² ρ_d + τ² [d = 0], weights = pair counts.
            let (mut a11, mut a12, mut a22, mut b1, mut b2) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for (d, &(c, wgt)) in bins.iter().enumerate() {
                let rho = matern(nu, d as f64 / ell);
                let z = f64::from(u8::from(d == 0));
                a11 += wgt * rho * rho;
                a12 += wgt * rho * z;
                a22 += wgt * z * z;
                b1 += wgt * rho * c;
                b2 += wgt * z * c;
            }
            let det = a11 * a22 - a12 * a12;
            let (mut var, mut nug) = if det.abs() > 1e-12 {
                ((b1 * a22 - b2 * a12) / det, (a11 * b2 - a12 * b1) / det)
            } else {
                (0.0, -1.0)
            };
            if !free_nugget || nug < 0.0 || det.abs() <= 1e-12 {
                nug = 0.0;
                var = b1 / a11.max(1e-300);
            }
            if var <= 0.0 {
                continue;
            }
            let model = CovModel { mean, smoothness: nu, variance: var, length_scale: ell, nugget: nug };
            let sse: f64 = bins
                .iter()
                .enumerate()
                .map(|(d, &(c, wgt))| {
                    let m = model.cov(d as f64) + if d == 0 { nug } else { 0.0 };
                    wgt * (c - m).powi(2)
                })
                .sum();
            if best.as_ref().is_none_or(|(b, _)| sse < *b) {
                best = Some((sse, model));
            }
        }
    }
    best.map(|(_, m)| m)
}

/// Kriging mean and variance of one channel on `grid`. Observed sites keep their values
/// (variance 0).
pub fn krige_channel(
    model: &CovModel,
    values: &[f32],
    known: &[u8],
    grid: Grid,
    neighbours: usize,
) -> Result<(Vec<f32>, Vec<f32>)> {
    krige_channel_with(model, values, known, grid, neighbours, true)
}

/// [`krige_channel`], optionally without the variances (zeros then; the model selection needs
/// only means).
pub fn krige_channel_with(
    model: &CovModel,
    values: &[f32],
    known: &[u8],
    grid: Grid,
    neighbours: usize,
    with_variance: bool,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let n = grid.h * grid.w;
    let observed: Vec<usize> = (0..n).filter(|&i| known[i] != 0).collect();
    let site_cov = SiteCov::new(model, grid);
    let cov = |i: usize, j: usize| site_cov.at(i, j);
    let mut mean: Vec<f32> = values.to_vec();
    let mut var = vec![0f32; n];
    if observed.is_empty() {
        mean.iter_mut().for_each(|v| *v = model.mean as f32);
        var.iter_mut().for_each(|v| *v = (model.variance + model.nugget) as f32);
        return Ok((mean, var));
    }
    let missing: Vec<usize> = (0..n).filter(|&i| known[i] == 0).collect();
    let resid = |i: usize| values[i] as f64 - model.mean;
    let total = model.variance + model.nugget;
    if observed.len() <= GLOBAL_MAX.max(neighbours) {
        let y: Vec<f64> = observed.iter().map(|&i| resid(i)).collect();
        let (m, v) = grf::condition_at(cov, &observed, &y, 1.0, model.nugget.sqrt(), &missing, with_variance)?;
        for (t, &i) in missing.iter().enumerate() {
            mean[i] = (model.mean + m[t]) as f32;
            var[i] = (v[t] + model.nugget).min(total) as f32;
        }
        return Ok((mean, var));
    }
    local(model, values, &observed, &missing, grid, neighbours, &mut mean, &mut var)?;
    Ok((mean, var))
}

/// Moving-neighbourhood kriging of the `missing` sites from their `neighbours` nearest observed.
#[allow(clippy::too_many_arguments)]
fn local(
    model: &CovModel,
    values: &[f32],
    observed: &[usize],
    missing: &[usize],
    grid: Grid,
    neighbours: usize,
    mean: &mut [f32],
    var: &mut [f32],
) -> Result<()> {
    let dist = |i: usize, j: usize| grid.distance(i, j);
    let site_cov = SiteCov::new(model, grid);
    let cov = |i: usize, j: usize| site_cov.at(i, j);
    let resid = |i: usize| values[i] as f64 - model.mean;
    let total = model.variance + model.nugget;
    let neighbours = neighbours.clamp(1, observed.len());
    for &i in missing {
        let mut near: Vec<(f64, usize)> = observed.iter().map(|&j| (dist(i, j), j)).collect();
        near.select_nth_unstable_by(neighbours - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let nb: Vec<usize> = near[..neighbours].iter().map(|&(_, j)| j).collect();
        let k = nb.len();
        let mut a = vec![0.0; k * k];
        for p in 0..k {
            for q in 0..k {
                a[p * k + q] = cov(nb[p], nb[q]) + if p == q { model.nugget + 1e-9 * total } else { 0.0 };
            }
        }
        let l = linalg::cholesky(&a, k)?;
        let c: Vec<f64> = nb.iter().map(|&j| cov(i, j)).collect();
        let y: Vec<f64> = nb.iter().map(|&j| resid(j)).collect();
        let alpha = linalg::cholesky_solve(&l, k, &y);
        let z = linalg::cholesky_solve(&l, k, &c);
        mean[i] = (model.mean + c.iter().zip(&alpha).map(|(a, b)| a * b).sum::<f64>()) as f32;
        var[i] = (total - c.iter().zip(&z).map(|(a, b)| a * b).sum::<f64>()).max(0.0) as f32;
    }
    Ok(())
}

/// Fits one covariance model per channel on `train`: the candidates of [`fit`] are scored by
/// kriging every 10th observed site of up to 16 training fields from the others, and the one
/// with the smallest error is kept (a nugget fitted to short-range model mismatch would
/// otherwise smooth smooth fields). With `periodic` the fields wrap around (see the module docs).
pub fn fit_set(train: &FieldSet, neighbours: usize, periodic: bool) -> Result<Vec<CovModel>> {
    let (h, w, sites, len) = (train.dims.h, train.dims.w, train.dims.sites(), train.dims.len());
    let grid = Grid { h, w, periodic };
    let max_lag = (h.min(w) / 2).clamp(2, 16);
    let mut models = Vec::new();
    for ch in 0..train.dims.c {
        let (mean, bins) = covariogram(train, ch, max_lag, 500, periodic);
        let candidates = fit(mean, &bins)?;
        let mut scores = vec![0.0; candidates.len()];
        for f in (0..train.n).step_by(train.n.div_ceil(16).max(1)) {
            let base = f * len + ch * sites;
            let (values, known) = (&train.values[base..base + sites], &train.mask[base..base + sites]);
            let observed: Vec<usize> = (0..sites).filter(|&i| known[i] != 0).collect();
            let hidden: Vec<usize> = observed.iter().copied().step_by(10).collect();
            if observed.len() < 4 || hidden.len() == observed.len() {
                continue;
            }
            let mut k2 = known.to_vec();
            hidden.iter().for_each(|&i| k2[i] = 0);
            for (score, model) in scores.iter_mut().zip(&candidates) {
                let (pred, _) = krige_channel_with(model, values, &k2, grid, neighbours, false)?;
                *score += hidden.iter().map(|&i| (pred[i] as f64 - values[i] as f64).powi(2)).sum::<f64>();
            }
        }
        let best = (0..candidates.len()).min_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap_or(0);
        models.push(candidates[best]);
    }
    Ok(models)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::grf::GrfSpec;
    use crate::data::synth::{grf_oracle, grf_set};
    use crate::data::Pattern;

    #[test]
    fn estimated_covariance_matches_the_true_one_and_kriging_nears_the_oracle() {
        let spec = GrfSpec { size: 24, length_scale: 3.0, smoothness: 1.5, variance: 1.0 };
        let train = grf_set(&spec, 300, &Pattern::Pixel { observed: 0.3 }, 1).unwrap();
        let models = fit_set(&train, 64, false).unwrap();
        let m = models[0];
        let table = spec.covariance();
        for d in [0usize, 1, 3, 6] {
            let want = table[d]; // lag (0, d)
            let got = m.cov(d as f64) + if d == 0 { m.nugget } else { 0.0 };
            assert!((got - want).abs() < 0.08, "lag {d}: fitted {got} vs true {want} ({m:?})");
        }
        let test = grf_set(&spec, 6, &Pattern::Pixel { observed: 0.3 }, 2).unwrap();
        let oracle = grf_oracle(&spec, &test).unwrap();
        let truth = test.truth.clone().unwrap();
        let (mut ours, mut best, mut miss) = (0.0, 0.0, 0.0);
        let len = 24 * 24;
        for f in 0..6 {
            let r = f * len..(f + 1) * len;
            let (mean, _) =
                krige_channel(&m, &test.values[r.clone()], &test.mask[r.clone()], Grid::plane(24, 24), 10_000).unwrap();
            for k in 0..len {
                if test.mask[f * len + k] == 0 {
                    ours += (mean[k] as f64 - truth[f * len + k] as f64).powi(2);
                    best += (oracle.mean[f * len + k] as f64 - truth[f * len + k] as f64).powi(2);
                    miss += 1.0;
                }
            }
        }
        // Close to the exact oracle, which also knows that the field wraps around (worth about a
        // third more error near the borders on this small grid); far below the prior variance.
        assert!(ours / miss < 1.5 * best / miss, "kriging {} vs oracle {}", ours / miss, best / miss);
    }

    /// `v` (h×w, row-major) rolled by (dy, dx) with wrap-around.
    fn roll<T: Copy>(v: &[T], h: usize, w: usize, dy: usize, dx: usize) -> Vec<T> {
        (0..h * w).map(|i| v[((i / w + h - dy) % h) * w + (i % w + w - dx) % w]).collect()
    }

    /// On a torus the fit and the completion commute with shifts (a stationary covariance on
    /// a torus has no preferred origin): rolling the training set leaves the fitted model as it
    /// was (its covariogram), and kriging a rolled field gives the rolled completion. A bordered grid does not
    /// (a site at the border has observations on one side only). On fields that do wrap the
    /// periodic completion is the better one, and with the true covariance it is the exact
    /// oracle's.
    #[test]
    fn periodic_kriging_commutes_with_shifts_and_nears_the_torus_oracle() {
        let spec = GrfSpec { size: 16, length_scale: 3.0, smoothness: 1.5, variance: 1.0 };
        let train = grf_set(&spec, 120, &Pattern::Pixel { observed: 0.3 }, 4).unwrap();
        let (n, len) = (16, 16 * 16);
        let mut rolled = train.clone();
        for f in 0..train.n {
            let r = f * len..(f + 1) * len;
            rolled.values[r.clone()].copy_from_slice(&roll(&train.values[r.clone()], n, n, 5, 11));
            rolled.mask[r.clone()].copy_from_slice(&roll(&train.mask[r], n, n, 5, 11));
        }
        let ((mean, bins), (mean_r, bins_r)) =
            (covariogram(&train, 0, 8, 500, true), covariogram(&rolled, 0, 8, 500, true));
        assert!((mean - mean_r).abs() < 1e-9);
        for ((c, p), (c_r, p_r)) in bins.iter().zip(&bins_r) {
            assert!((c - c_r).abs() < 1e-9 && p == p_r, "{bins:?} vs {bins_r:?}");
        }
        let m = fit_set(&train, 64, true).unwrap()[0];

        let test = grf_set(&spec, 8, &Pattern::Pixel { observed: 0.3 }, 5).unwrap();
        let torus = Grid { h: n, w: n, periodic: true };
        let (x, known) = (&test.values[..len], &test.mask[..len]);
        let (mean, var) = krige_channel(&m, x, known, torus, 10_000).unwrap();
        let (mean_r, var_r) =
            krige_channel(&m, &roll(x, n, n, 5, 11), &roll(known, n, n, 5, 11), torus, 10_000).unwrap();
        let (mean, var) = (roll(&mean, n, n, 5, 11), roll(&var, n, n, 5, 11));
        for i in 0..len {
            assert!((mean[i] - mean_r[i]).abs() < 1e-4 && (var[i] - var_r[i]).abs() < 1e-4, "site {i}");
        }
        let plane = fit_set(&train, 64, false).unwrap()[0];
        let (mean_p, _) = krige_channel(&plane, x, known, Grid::plane(n, n), 10_000).unwrap();
        let (mean_pr, _) =
            krige_channel(&plane, &roll(x, n, n, 5, 11), &roll(known, n, n, 5, 11), Grid::plane(n, n), 10_000).unwrap();
        let gap = roll(&mean_p, n, n, 5, 11).iter().zip(&mean_pr).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(gap > 1e-2, "a bordered grid is not shift-equivariant ({gap})");

        let oracle = grf_oracle(&spec, &test).unwrap();
        let truth = test.truth.clone().unwrap();
        let (mut periodic, mut bordered, mut best, mut miss) = (0.0, 0.0, 0.0, 0.0);
        for f in 0..test.n {
            let r = f * len..(f + 1) * len;
            let (x, known) = (&test.values[r.clone()], &test.mask[r.clone()]);
            let (mp, _) = krige_channel(&m, x, known, torus, 10_000).unwrap();
            let (mb, _) = krige_channel(&plane, x, known, Grid::plane(n, n), 10_000).unwrap();
            for k in (0..len).filter(|&k| known[k] == 0) {
                let t = truth[f * len + k] as f64;
                periodic += (mp[k] as f64 - t).powi(2);
                bordered += (mb[k] as f64 - t).powi(2);
                best += (oracle.mean[f * len + k] as f64 - t).powi(2);
                miss += 1.0;
            }
        }
        let (periodic, bordered, best) = (periodic / miss, bordered / miss, best / miss);
        assert!(periodic < bordered, "periodic {periodic} vs bordered {bordered} (oracle {best})");
        // With the true covariance the periodised one is the oracle's (which knows the torus):
        // what is left between them is the fit's, not the wrap-around's.
        let true_model = CovModel { mean: 0.0, smoothness: 1.5, variance: 1.0, length_scale: 3.0, nugget: 0.0 };
        let mut exact = 0.0;
        for f in 0..test.n {
            let r = f * len..(f + 1) * len;
            let (x, known) = (&test.values[r.clone()], &test.mask[r.clone()]);
            let (mt, _) = krige_channel(&true_model, x, known, torus, 10_000).unwrap();
            for k in (0..len).filter(|&k| known[k] == 0) {
                exact += (mt[k] as f64 - truth[f * len + k] as f64).powi(2);
            }
        }
        let exact = exact / miss;
        assert!((exact / best - 1.0).abs() < 0.02, "true covariance on the torus {exact} vs oracle {best}");
    }

    /// The plane through a field's observations is exact for a plane, removing and restoring
    /// it round-trips, and degenerate observations fall back to the mean.
    #[test]
    fn least_squares_plane_is_exact_on_planes_and_removable() {
        let (h, w) = (6, 9);
        let truth: Vec<f32> = (0..h * w).map(|i| (2.0 + 0.5 * (i / w) as f64 - 0.25 * (i % w) as f64) as f32).collect();
        let known: Vec<u8> = (0..h * w).map(|i| u8::from(i % 4 != 1)).collect();
        let p = Plane::fit(&truth, &known, h, w);
        assert!((p.a - 2.0).abs() < 1e-9 && (p.b - 0.5).abs() < 1e-9 && (p.c + 0.25).abs() < 1e-9, "{p:?}");
        let resid = p.remove(&truth, w);
        assert!(resid.iter().all(|r| r.abs() < 1e-5));
        assert_eq!(p.restore(&resid, w), truth);
        // One observed row: collinear, so the mean.
        let row: Vec<u8> = (0..h * w).map(|i| u8::from(i / w == 2)).collect();
        let q = Plane::fit(&truth, &row, h, w);
        assert_eq!((q.b, q.c), (0.0, 0.0));
        assert_eq!(Plane::fit(&truth, &vec![0; h * w], h, w), Plane::ZERO);
    }

    #[test]
    fn moving_neighbourhood_with_every_site_equals_global_kriging() {
        let spec = GrfSpec { size: 10, length_scale: 2.0, smoothness: 1.5, variance: 1.0 };
        let set = grf_set(&spec, 1, &Pattern::Pixel { observed: 0.5 }, 3).unwrap();
        let model = CovModel { mean: 0.1, smoothness: 1.5, variance: 1.0, length_scale: 2.0, nugget: 0.01 };
        let (g_mean, g_var) = krige_channel(&model, &set.values, &set.mask, Grid::plane(10, 10), 64).unwrap();
        let observed: Vec<usize> = (0..100).filter(|&i| set.mask[i] != 0).collect();
        let missing: Vec<usize> = (0..100).filter(|&i| set.mask[i] == 0).collect();
        let (mut l_mean, mut l_var) = (set.values.clone(), vec![0f32; 100]);
        local(&model, &set.values, &observed, &missing, Grid::plane(10, 10), observed.len(), &mut l_mean, &mut l_var)
            .unwrap();
        for i in 0..100 {
            assert!((g_mean[i] - l_mean[i]).abs() < 1e-4 && (g_var[i] - l_var[i]).abs() < 1e-4, "site {i}");
        }
        for i in (0..100).filter(|&i| set.mask[i] != 0) {
            assert_eq!(g_mean[i], set.values[i]);
        }
    }
}
