//! Classical per-field inpainting on one h×w channel (`known[i] != 0` marks observed sites):
//! what a scientist would run before reaching for a learned prior.
//!
//! - **nearest**: each missing site takes the value of the nearest observed site (Euclidean,
//!   ties to the first in raster order).
//! - **harmonic** (Laplace; the smooth limit of Navier–Stokes-style inpainting): minimises the
//!   Dirichlet energy `Σ_edges (u_i − u_j)²` over the missing sites with the observed ones
//!   fixed, i.e. `Δu = 0` on the missing set with natural (Neumann) borders.
//! - **biharmonic**: minimises the discrete thin-plate energy `Σ u_xx² + 2u_xy² + u_yy²` over
//!   the missing sites, i.e. `Δ²u = 0` in the gaps; reproduces any linear field.
//! - **telea**: fast-marching inpainting (Telea 2004): sites are filled in order of their
//!   distance T to the observed set, each from the already known sites within `radius` by
//!   `Σ w (I_q + ∇I_q·(p − q)) / Σ w`, w = direction · distance · level-set weights.
//!
//! The quadratic problems are solved by conjugate gradients, matrix-free. On a periodic grid
//! ([`Inpaint::fill_with`]; fields simulated on a torus) their neighbours and stencils wrap
//! around, so a gap at a border is filled from both sides, as the learned model, told the
//! same, sees it.

use super::Grid;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Inpaint {
    Nearest,
    Harmonic,
    Biharmonic,
    Telea,
}

impl Inpaint {
    /// Fills the missing sites of `values` (h×w). With no observed site, returns zeros.
    pub fn fill(self, values: &[f32], known: &[u8], h: usize, w: usize) -> Vec<f32> {
        self.fill_with(values, known, h, w, false)
    }

    /// [`Inpaint::fill`]; with `periodic`, harmonic and biharmonic treat the grid as a torus
    /// (nearest and telea measure distances within it as before).
    pub fn fill_with(self, values: &[f32], known: &[u8], h: usize, w: usize, periodic: bool) -> Vec<f32> {
        if !known.iter().any(|&k| k != 0) {
            return vec![0.0; h * w];
        }
        if known.iter().all(|&k| k != 0) {
            return values.to_vec();
        }
        let v: Vec<f64> = values.iter().zip(known).map(|(&x, &k)| if k != 0 { x as f64 } else { 0.0 }).collect();
        let out = match self {
            Inpaint::Nearest => nearest(&v, known, h, w),
            Inpaint::Harmonic => quadratic(&v, known, Grid { h, w, periodic }, false),
            Inpaint::Biharmonic => quadratic(&v, known, Grid { h, w, periodic }, true),
            Inpaint::Telea => telea(&v, known, h, w, 5.0),
        };
        out.into_iter().map(|x| x as f32).collect()
    }
}

/// The sites of the (2·rad+1)² window around site `i` of an h×w grid that lie inside it, as
/// (row offset, column offset, site).
pub(crate) fn window(i: usize, rad: i64, h: usize, w: usize) -> impl Iterator<Item = (i64, i64, usize)> {
    let (r, c) = ((i / w) as i64, (i % w) as i64);
    (-rad..=rad).flat_map(move |dr| (-rad..=rad).map(move |dc| (dr, dc))).filter_map(move |(dr, dc)| {
        let (qr, qc) = (r + dr, c + dc);
        let inside = qr >= 0 && qc >= 0 && qr < h as i64 && qc < w as i64;
        inside.then(|| (dr, dc, qr as usize * w + qc as usize))
    })
}

fn nearest(v: &[f64], known: &[u8], h: usize, w: usize) -> Vec<f64> {
    let obs: Vec<(i64, i64, f64)> =
        (0..h * w).filter(|&i| known[i] != 0).map(|i| ((i / w) as i64, (i % w) as i64, v[i])).collect();
    (0..h * w)
        .map(|i| {
            if known[i] != 0 {
                return v[i];
            }
            let (r, c) = ((i / w) as i64, (i % w) as i64);
            let mut best = (i64::MAX, 0.0);
            for &(or, oc, ov) in &obs {
                let d = (or - r).pow(2) + (oc - c).pow(2);
                if d < best.0 {
                    best = (d, ov);
                }
            }
            best.1
        })
        .collect()
}

/// Applies the energy's operator: `A x` for the Dirichlet energy (graph Laplacian, 4-neighbour),
/// or `Σ Dᵀ D x` for the discrete thin-plate energy `Σ (u_xx)² + 2 (u_xy)² + (u_yy)²` (second
/// differences wherever their stencil fits; everywhere on a torus), whose null space is exactly
/// the linear fields (the constants on a torus).
fn apply(x: &[f64], grid: Grid, biharmonic: bool) -> Vec<f64> {
    let (h, w) = (grid.h, grid.w);
    let mut out = vec![0.0; h * w];
    if !biharmonic {
        for r in 0..h as i64 {
            for c in 0..w as i64 {
                let i = r as usize * w + c as usize;
                let mut acc = 0.0;
                for (dr, dc) in [(0i64, 1i64), (1, 0), (0, -1), (-1, 0)] {
                    if let Some(j) = grid.at(r + dr, c + dc) {
                        acc += x[i] - x[j];
                    }
                }
                out[i] = acc;
            }
        }
        return out;
    }
    // Each stencil s with weights a_k at sites i_k adds a (Σ a_k x_k) a_j to out[i_j].
    let mut stencil = |sites: &[(usize, f64)], weight: f64| {
        let d: f64 = sites.iter().map(|&(i, a)| a * x[i]).sum();
        for &(i, a) in sites {
            out[i] += weight * d * a;
        }
    };
    for r in 0..h as i64 {
        for c in 0..w as i64 {
            let i = r as usize * w + c as usize;
            if let (Some(left), Some(right)) = (grid.at(r, c - 1), grid.at(r, c + 1)) {
                stencil(&[(left, 1.0), (i, -2.0), (right, 1.0)], 1.0);
            }
            if let (Some(up), Some(down)) = (grid.at(r - 1, c), grid.at(r + 1, c)) {
                stencil(&[(up, 1.0), (i, -2.0), (down, 1.0)], 1.0);
            }
            if let (Some(e), Some(s), Some(se)) = (grid.at(r, c + 1), grid.at(r + 1, c), grid.at(r + 1, c + 1)) {
                stencil(&[(i, 1.0), (e, -1.0), (s, -1.0), (se, 1.0)], 2.0);
            }
        }
    }
    out
}

/// Minimises the quadratic energy over the missing sites (observed fixed) by conjugate
/// gradients on `A_MM x = −A_MO v_O`.
fn quadratic(v: &[f64], known: &[u8], grid: Grid, biharmonic: bool) -> Vec<f64> {
    let (h, w) = (grid.h, grid.w);
    let missing: Vec<usize> = (0..h * w).filter(|&i| known[i] == 0).collect();
    let restrict = |full: &[f64]| missing.iter().map(|&i| full[i]).collect::<Vec<f64>>();
    let embed = |x: &[f64]| {
        let mut full = vec![0.0; h * w];
        for (&i, &xi) in missing.iter().zip(x) {
            full[i] = xi;
        }
        full
    };
    let b: Vec<f64> = restrict(&apply(v, grid, biharmonic)).iter().map(|x| -x).collect();
    // Start from the mean of the observations: CG then only has to carry the shape.
    let mean = v.iter().zip(known).filter(|(_, &k)| k != 0).map(|(x, _)| x).sum::<f64>()
        / known.iter().filter(|&&k| k != 0).count() as f64;
    let mut x = vec![mean; missing.len()];
    let ax = restrict(&apply(&embed(&x), grid, biharmonic));
    let mut r: Vec<f64> = b.iter().zip(&ax).map(|(b, a)| b - a).collect();
    let mut p = r.clone();
    let mut rr: f64 = r.iter().map(|v| v * v).sum();
    let b_norm = b.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-30);
    for _ in 0..20 * missing.len().max(10) {
        if rr.sqrt() <= 1e-10 * b_norm.max(1.0) {
            break;
        }
        let ap = restrict(&apply(&embed(&p), grid, biharmonic));
        let pap: f64 = p.iter().zip(&ap).map(|(a, b)| a * b).sum();
        if pap <= 0.0 {
            break; // a direction of zero energy: the gap is not pinned down further
        }
        let alpha = rr / pap;
        for k in 0..x.len() {
            x[k] += alpha * p[k];
            r[k] -= alpha * ap[k];
        }
        let rr_new: f64 = r.iter().map(|v| v * v).sum();
        let beta = rr_new / rr;
        rr = rr_new;
        for k in 0..p.len() {
            p[k] = r[k] + beta * p[k];
        }
    }
    let mut out = v.to_vec();
    for (&i, &xi) in missing.iter().zip(&x) {
        out[i] = xi;
    }
    out
}

#[derive(PartialEq)]
struct Front(f64, usize);
impl Eq for Front {}
impl PartialOrd for Front {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Front {
    fn cmp(&self, other: &Self) -> Ordering {
        // Min-heap on the arrival time T, ties by index for determinism.
        other.0.total_cmp(&self.0).then(other.1.cmp(&self.1))
    }
}

/// Eikonal update |∇T| = 1 from the two axis neighbours (first-order upwind).
fn eikonal(t: &[f64], done: &[bool], h: usize, w: usize, i: usize) -> f64 {
    let (r, c) = (i / w, i % w);
    let pick = |a: Option<usize>, b: Option<usize>| {
        [a, b].into_iter().flatten().filter(|&j| done[j]).map(|j| t[j]).fold(f64::INFINITY, f64::min)
    };
    let tx = pick(c.checked_sub(1).map(|cc| r * w + cc), (c + 1 < w).then(|| r * w + c + 1));
    let ty = pick(r.checked_sub(1).map(|rr| rr * w + c), (r + 1 < h).then(|| (r + 1) * w + c));
    let (a, b) = (tx.min(ty), tx.max(ty));
    if b.is_infinite() || b - a >= 1.0 {
        a + 1.0
    } else {
        0.5 * (a + b + (2.0 - (a - b).powi(2)).sqrt())
    }
}

fn telea(v: &[f64], known: &[u8], h: usize, w: usize, radius: f64) -> Vec<f64> {
    let n = h * w;
    let mut value = v.to_vec();
    let mut done: Vec<bool> = known.iter().map(|&k| k != 0).collect();
    let mut t: Vec<f64> = (0..n).map(|i| if done[i] { 0.0 } else { f64::INFINITY }).collect();
    let mut heap = BinaryHeap::new();
    let neighbours = |i: usize| {
        let (r, c) = (i / w, i % w);
        let mut out = Vec::with_capacity(4);
        if c > 0 {
            out.push(i - 1);
        }
        if c + 1 < w {
            out.push(i + 1);
        }
        if r > 0 {
            out.push(i - w);
        }
        if r + 1 < h {
            out.push(i + w);
        }
        out
    };
    for i in 0..n {
        if !done[i] && neighbours(i).iter().any(|&j| done[j]) {
            t[i] = eikonal(&t, &done, h, w, i);
            heap.push(Front(t[i], i));
        }
    }
    let rad = radius.ceil() as i64;
    while let Some(Front(ti, i)) = heap.pop() {
        if done[i] || ti > t[i] {
            continue;
        }
        // Fill i from the known sites around it.
        let grad_t = gradient(&t, &done, h, w, i);
        let (mut acc, mut norm) = (0.0, 0.0);
        for (dr, dc, q) in window(i, rad, h, w) {
            let dist2 = (dr * dr + dc * dc) as f64;
            if !done[q] || dist2 > radius * radius {
                continue;
            }
            let (ry, rx) = (-(dr as f64), -(dc as f64)); // p − q
            let len = dist2.sqrt();
            let dir = ((rx * grad_t.1 + ry * grad_t.0) / len).abs().max(1e-6);
            let dst = 1.0 / dist2;
            let lev = 1.0 / (1.0 + (t[q] - ti).abs());
            let wgt = dir * dst * lev;
            let g = gradient(&value, &done, h, w, q);
            acc += wgt * (value[q] + g.0 * ry + g.1 * rx);
            norm += wgt;
        }
        value[i] = if norm > 0.0 { acc / norm } else { 0.0 };
        done[i] = true;
        for j in neighbours(i) {
            if !done[j] {
                let tj = eikonal(&t, &done, h, w, j);
                if tj < t[j] {
                    t[j] = tj;
                    heap.push(Front(tj, j));
                }
            }
        }
    }
    value
}

/// (∂/∂row, ∂/∂col) of `f` at `i` from known neighbours: central where both sides are known,
/// one-sided where one is, 0 where none is.
fn gradient(f: &[f64], done: &[bool], h: usize, w: usize, i: usize) -> (f64, f64) {
    let (r, c) = (i / w, i % w);
    let axis = |prev: Option<usize>, next: Option<usize>| {
        let (p, n) = (prev.filter(|&j| done[j]), next.filter(|&j| done[j]));
        match (p, n) {
            (Some(a), Some(b)) => (f[b] - f[a]) / 2.0,
            (Some(a), None) => f[i] - f[a],
            (None, Some(b)) => f[b] - f[i],
            (None, None) => 0.0,
        }
    };
    (
        axis(r.checked_sub(1).map(|rr| rr * w + c), (r + 1 < h).then(|| (r + 1) * w + c)),
        axis(c.checked_sub(1).map(|cc| r * w + cc), (c + 1 < w).then(|| r * w + c + 1)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// On a torus harmonic and biharmonic inpainting commute with shifts (no site is at a
    /// border) and keep observations; biharmonic fills a gap across the border of a smooth
    /// periodic field from both sides, better than from one.
    #[test]
    fn periodic_quadratic_inpainting_commutes_with_shifts() {
        let (h, w) = (12, 16);
        let roll = |v: &[f32], dy: usize, dx: usize| -> Vec<f32> {
            (0..h * w).map(|i| v[((i / w + h - dy) % h) * w + (i % w + w - dx) % w]).collect()
        };
        let tau = std::f32::consts::TAU;
        let truth: Vec<f32> = (0..h * w)
            .map(|i| (tau * (i / w) as f32 / h as f32).sin() + (tau * (i % w) as f32 / w as f32).cos())
            .collect();
        let mut known = random_known(h, w, 0.4, false, 7);
        // A gap across the left/right border.
        for r in 3..8 {
            for c in [0, 1, w - 2, w - 1] {
                known[r * w + c] = 0;
            }
        }
        let known_f: Vec<f32> = known.iter().map(|&k| f32::from(k)).collect();
        let rolled_known: Vec<u8> = roll(&known_f, 4, 3).iter().map(|&k| k as u8).collect();
        for m in [Inpaint::Harmonic, Inpaint::Biharmonic] {
            let out = m.fill_with(&truth, &known, h, w, true);
            let out_r = m.fill_with(&roll(&truth, 4, 3), &rolled_known, h, w, true);
            assert!(max_err(&roll(&out, 4, 3), &out_r) < 1e-4, "{m:?}");
            for i in (0..h * w).filter(|&i| known[i] != 0) {
                assert_eq!(out[i], truth[i]);
            }
            let gap: Vec<usize> = (0..h * w).filter(|&i| known[i] == 0).collect();
            let err = |o: &[f32]| gap.iter().map(|&i| (o[i] - truth[i]).powi(2)).sum::<f32>();
            let bordered = m.fill_with(&truth, &known, h, w, false);
            if m == Inpaint::Biharmonic {
                // (Harmonic is poor on both: a sinusoid is far from harmonic across a wide gap.)
                assert!(err(&out) < 0.8 * err(&bordered), "{m:?}: wrapping helps on a periodic field");
            }
        }
    }

    fn linear(h: usize, w: usize) -> Vec<f32> {
        (0..h * w).map(|i| 0.3 * (i / w) as f32 - 0.2 * (i % w) as f32 + 1.0).collect()
    }

    fn random_known(h: usize, w: usize, p: f64, interior_only: bool, seed: u64) -> Vec<u8> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..h * w)
            .map(|i| {
                let border = i / w == 0 || i % w == 0 || i / w == h - 1 || i % w == w - 1;
                u8::from((interior_only && border) || rng.gen::<f64>() < p)
            })
            .collect()
    }

    fn max_err(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn harmonic_and_biharmonic_inpainting_of_a_linear_field_are_exact() {
        let (h, w) = (12, 15);
        let truth = linear(h, w);
        // Harmonic: exact when the gaps do not touch the border (Neumann borders bend lines).
        let known = random_known(h, w, 0.3, true, 1);
        assert!(max_err(&Inpaint::Harmonic.fill(&truth, &known, h, w), &truth) < 1e-4);
        // Biharmonic: exact anywhere (a linear field has zero energy).
        let known = random_known(h, w, 0.3, false, 2);
        assert!(max_err(&Inpaint::Biharmonic.fill(&truth, &known, h, w), &truth) < 1e-3);
    }

    #[test]
    fn telea_reproduces_linear_fields_and_nearest_copies_neighbours() {
        let (h, w) = (10, 10);
        let truth = linear(h, w);
        // A square hole: every known site next to it has a one-sided gradient, which is exact
        // on a linear field, so each filled site is exact and so on inwards.
        let known: Vec<u8> =
            (0..h * w).map(|i| u8::from(!((3..7).contains(&(i / w)) && (2..8).contains(&(i % w))))).collect();
        assert!(max_err(&Inpaint::Telea.fill(&truth, &known, h, w), &truth) < 1e-4);
        // Nearest: one observed site per half → each half takes its value.
        let mut k = vec![0u8; 20];
        k[0] = 1;
        k[19] = 1;
        let vals: Vec<f32> = (0..20)
            .map(|i| {
                if i == 0 {
                    -1.0
                } else if i == 19 {
                    2.0
                } else {
                    9.0
                }
            })
            .collect();
        let out = Inpaint::Nearest.fill(&vals, &k, 1, 20);
        assert!(out[..10].iter().all(|&v| v == -1.0) && out[10..].iter().all(|&v| v == 2.0));
    }

    #[test]
    fn every_method_keeps_observations_and_handles_edge_cases() {
        let (h, w) = (9, 11);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let vals: Vec<f32> = (0..h * w).map(|_| rng.gen::<f32>()).collect();
        let known = random_known(h, w, 0.25, false, 5);
        for m in [Inpaint::Nearest, Inpaint::Harmonic, Inpaint::Biharmonic, Inpaint::Telea] {
            let out = m.fill(&vals, &known, h, w);
            assert!(out.iter().all(|v| v.is_finite()), "{m:?}");
            for i in 0..h * w {
                if known[i] != 0 {
                    assert_eq!(out[i], vals[i], "{m:?} moved an observation");
                }
            }
            // Bounded by the data for the averaging methods (maximum principle).
            if matches!(m, Inpaint::Nearest | Inpaint::Harmonic) {
                assert!(out.iter().all(|&v| (-1e-5..=1.0 + 1e-5).contains(&v)), "{m:?}");
            }
            assert_eq!(m.fill(&vals, &vec![0; h * w], h, w), vec![0.0; h * w]);
            assert_eq!(m.fill(&vals, &vec![1; h * w], h, w), vals);
        }
    }
}
