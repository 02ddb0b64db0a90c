//! The "temporal consistency" baseline of the paper's tables (spec §8.1), for trajectories
//! `[T, C, H, W]`, each channel on its own:
//!
//! - frame 0: a missing site takes its value from the next frame that observes it;
//! - later frames: a missing site keeps its value from the previous (already filled) frame;
//! - a site no frame can fill (frame 0, never observed later) is the weighted mean of the
//!   observed sites of its frame in the 11×11 window around it, weights `exp(−d/5)` with d the
//!   Euclidean distance; with no observed site in the window, the nearest observed site's value.
//!
//! On snapshots (T = 1) only the spatial rule applies.

use super::Inpaint;
use crate::data::Dims;

/// Half-width of the spatial window (11×11) and the length scale of its weights.
const HALF: i64 = 5;
const SCALE: f64 = 5.0;

/// Completes one sample `values` (`[T, C, H, W]`, observed where `known` ≠ 0).
pub fn fill(values: &[f32], known: &[u8], dims: Dims) -> Vec<f32> {
    let (sites, frame) = (dims.sites(), dims.c * dims.sites());
    let mut out = values.to_vec();
    for c in 0..dims.c {
        let plane = |t: usize| t * frame + c * sites;
        for t in 0..dims.t {
            let p = plane(t);
            let (v, k) = (&values[p..p + sites], &known[p..p + sites]);
            let mut spatial: Option<Vec<f32>> = None;
            for s in (0..sites).filter(|&s| k[s] == 0) {
                out[p + s] = if t > 0 {
                    out[plane(t - 1) + s]
                } else if let Some(later) = (1..dims.t).find(|&u| known[plane(u) + s] != 0) {
                    values[plane(later) + s]
                } else {
                    spatial.get_or_insert_with(|| window_mean(v, k, dims.h, dims.w))[s]
                };
            }
        }
    }
    out
}

/// Every missing site of one plane as the `exp(−d/5)`-weighted mean of the observed sites in
/// its 11×11 window (nearest observed site when the window has none).
fn window_mean(v: &[f32], known: &[u8], h: usize, w: usize) -> Vec<f32> {
    let mut nearest: Option<Vec<f32>> = None;
    let mut out = v.to_vec();
    for s in (0..h * w).filter(|&s| known[s] == 0) {
        let (mut sum, mut weight) = (0.0f64, 0.0f64);
        for (dr, dc, q) in super::inpaint::window(s, HALF, h, w).filter(|&(_, _, q)| known[q] != 0) {
            let wt = (-((dr * dr + dc * dc) as f64).sqrt() / SCALE).exp();
            sum += wt * v[q] as f64;
            weight += wt;
        }
        out[s] = if weight > 0.0 {
            (sum / weight) as f32
        } else {
            nearest.get_or_insert_with(|| Inpaint::Nearest.fill(v, known, h, w))[s]
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_fill_forward_then_from_later_frames_then_in_space() {
        // 3 frames of 1×1×3: site 0 observed in frame 1 only, site 1 always, site 2 never.
        let dims = Dims { t: 3, c: 1, h: 1, w: 3 };
        let values = [0.0, 2.0, 0.0, 5.0, 3.0, 0.0, 0.0, 4.0, 0.0];
        let known = [0, 1, 0, 1, 1, 0, 0, 1, 0];
        let out = fill(&values, &known, dims);
        // Frame 0: site 0 from frame 1 (5); site 2 from space: sites 1 (d=1) only → 2.
        assert_eq!(&out[0..3], &[5.0, 2.0, 2.0]);
        // Frame 1: site 2 persists from frame 0; frame 2: sites 0 and 2 persist from frame 1.
        assert_eq!(&out[3..6], &[5.0, 3.0, 2.0]);
        assert_eq!(&out[6..9], &[5.0, 4.0, 2.0]);
    }

    #[test]
    fn spatial_weights_fall_with_distance_and_far_gaps_take_the_nearest_site() {
        // One row of 14: observed 1.0 at column 0 and 3.0 at column 2; column 1 is halfway.
        let (h, w) = (1, 14);
        let mut v = vec![0.0f32; w];
        let mut k = vec![0u8; w];
        (v[0], k[0], v[2], k[2]) = (1.0, 1, 3.0, 1);
        let out = window_mean(&v, &k, h, w);
        assert!((out[1] - 2.0).abs() < 1e-6);
        // Column 3 is nearer the 3.0 site: above the midpoint.
        assert!(out[3] > 2.0 && out[3] < 3.0);
        // Column 13 is 11 away from the nearest site: outside the window, nearest value.
        assert_eq!(out[13], 3.0);
    }
}
