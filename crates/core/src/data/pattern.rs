//! Observation patterns: how masks are drawn for synthetic data, and the block-grid geometry
//! shared with the block partition.
//!
//! Syntax (accepted wherever a pattern is named):
//!
//! - `pixel:P`: each site observed independently with probability P;
//! - `block:G:M`: a G×G grid of blocks, M of them (chosen at random) missing;
//! - `swath:P`: parallel observed strips (a satellite's swaths) at a random angle, with period Λ
//!   drawn in [L/4, 2L/3] (L the longer side) and observed width P·Λ, so a fraction ≈ P is seen;
//! - `sensors:N`: N fixed stations, one random set of sites per *file* shared by all its fields;
//! - `cloud:COVER`: a smooth random field thresholded so that exactly round(COVER·H·W) sites
//!   (the highest values, "cloud") are missing; its length scale is drawn log-uniformly in
//!   [L/16, L/6] per mask so cloud sizes vary.
//!
//! All patterns are static over channels (the same sites are seen in every channel).

use super::field::Dims;
use super::grf::GrfSpec;
use anyhow::{bail, ensure, Context, Result};
use rand::seq::{index, SliceRandom};
use rand::Rng;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Pattern {
    Pixel { observed: f64 },
    Block { grid: usize, missing: usize },
    Swath { observed: f64 },
    Sensors { count: usize },
    Cloud { cover: f64 },
}

impl std::str::FromStr for Pattern {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Pattern> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |t: &str| t.parse::<f64>().with_context(|| format!("pattern {s:?}: {t:?} is not a number"));
        let int = |t: &str| t.parse::<usize>().with_context(|| format!("pattern {s:?}: {t:?} is not a whole number"));
        match parts[..] {
            ["pixel", p] => {
                let observed = num(p)?;
                ensure!(observed > 0.0 && observed <= 1.0, "pattern {s:?}: observed fraction must be in (0, 1]");
                Ok(Pattern::Pixel { observed })
            }
            ["block", g, m] => {
                let (grid, missing) = (int(g)?, int(m)?);
                ensure!(grid >= 1 && missing < grid * grid, "pattern {s:?}: need G ≥ 1 and M < G²");
                Ok(Pattern::Block { grid, missing })
            }
            ["swath", p] => {
                let observed = num(p)?;
                ensure!(observed > 0.0 && observed <= 1.0, "pattern {s:?}: observed fraction must be in (0, 1]");
                Ok(Pattern::Swath { observed })
            }
            ["sensors", n] => {
                let count = int(n)?;
                ensure!(count >= 1, "pattern {s:?}: need at least one sensor");
                Ok(Pattern::Sensors { count })
            }
            ["cloud", c] => {
                let cover = num(c)?;
                ensure!((0.0..1.0).contains(&cover), "pattern {s:?}: cloud cover must be in [0, 1)");
                Ok(Pattern::Cloud { cover })
            }
            _ => bail!(
                "unknown observation pattern {s:?}; expected pixel:P, block:G:M, swath:P, sensors:N or cloud:COVER"
            ),
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Pixel { observed } => write!(f, "pixel:{observed}"),
            Pattern::Block { grid, missing } => write!(f, "block:{grid}:{missing}"),
            Pattern::Swath { observed } => write!(f, "swath:{observed}"),
            Pattern::Sensors { count } => write!(f, "sensors:{count}"),
            Pattern::Cloud { cover } => write!(f, "cloud:{cover}"),
        }
    }
}

impl Pattern {
    /// Checks that the pattern fits fields of shape `dims`.
    pub fn check(&self, dims: Dims) -> Result<()> {
        match self {
            Pattern::Block { grid, .. } => ensure!(
                *grid <= dims.h.min(dims.w),
                "pattern {self}: a {grid}×{grid} block grid does not fit {}×{} fields",
                dims.h,
                dims.w
            ),
            Pattern::Sensors { count } => {
                ensure!(*count <= dims.sites(), "pattern {self}: {count} sensors do not fit {} sites", dims.sites())
            }
            Pattern::Cloud { cover } => ensure!(
                ((1.0 - cover) * dims.sites() as f64).round() >= 1.0,
                "pattern {self}: the cover leaves no observed site on {}×{} fields",
                dims.h,
                dims.w
            ),
            _ => {}
        }
        Ok(())
    }

    /// Draws the masks of a file of `n` fields, `[n, T, C, H, W]`, static in time. Sensors are
    /// drawn once and shared by every field (stations do not move); every other pattern draws
    /// each mask anew.
    pub fn draw_set<R: Rng>(&self, n: usize, dims: Dims, rng: &mut R) -> Result<Vec<u8>> {
        self.draw_set_in_time(n, dims, false, rng)
    }

    /// As [`Pattern::draw_set`]; with `per_frame` each frame of a trajectory draws its own mask
    /// (a swath or cloud that moves), except sensors, which stay put.
    pub fn draw_set_in_time<R: Rng>(&self, n: usize, dims: Dims, per_frame: bool, rng: &mut R) -> Result<Vec<u8>> {
        self.check(dims)?;
        if let Pattern::Sensors { .. } = self {
            let one = self.draw(dims, rng);
            return Ok((0..n).flat_map(|_| one.iter().copied()).collect());
        }
        if per_frame {
            let frame = dims.frame();
            return Ok((0..n * dims.t).flat_map(|_| self.draw(frame, rng)).collect());
        }
        Ok((0..n).flat_map(|_| self.draw(dims, rng)).collect())
    }

    /// Draws one mask `[T, C, H, W]` (the same for every channel and frame: sensors static in
    /// time). Call [`Pattern::check`] first; a pattern that does not fit `dims` panics here.
    pub fn draw<R: Rng>(&self, dims: Dims, rng: &mut R) -> Vec<u8> {
        let site = loop {
            let m = self.draw_sites(dims, rng);
            // An empty observation is useless to every method; redraw (as the official code does).
            if m.iter().any(|&v| v != 0) {
                break m;
            }
        };
        (0..dims.planes()).flat_map(|_| site.iter().copied()).collect()
    }

    fn draw_sites<R: Rng>(&self, dims: Dims, rng: &mut R) -> Vec<u8> {
        let (h, w) = (dims.h, dims.w);
        match self {
            Pattern::Pixel { observed } => (0..h * w).map(|_| u8::from(rng.gen::<f64>() < *observed)).collect(),
            Pattern::Block { grid, missing } => {
                let g = BlockGrid::new(*grid, h, w);
                let mut ids: Vec<usize> = (0..g.count()).collect();
                ids.shuffle(rng);
                let mut m = vec![1u8; h * w];
                for &b in &ids[..*missing] {
                    g.fill(b, &mut m, 0);
                }
                m
            }
            Pattern::Swath { observed } => {
                let long = h.max(w) as f64;
                let period = rng.gen_range(long / 4.0..=long * 2.0 / 3.0);
                let theta = rng.gen_range(0.0..std::f64::consts::PI);
                let phase = rng.gen_range(0.0..period);
                let (c, s) = (theta.cos(), theta.sin());
                let mut m = vec![0u8; h * w];
                for r in 0..h {
                    for col in 0..w {
                        let along = (c * col as f64 + s * r as f64 + phase).rem_euclid(period);
                        m[r * w + col] = u8::from(along < observed * period);
                    }
                }
                m
            }
            Pattern::Sensors { count } => {
                let mut m = vec![0u8; h * w];
                for i in index::sample(rng, h * w, *count) {
                    m[i] = 1;
                }
                m
            }
            Pattern::Cloud { cover } => {
                let side = h.max(w).max(2);
                let (lo, hi) = ((side as f64 / 16.0).max(0.5).ln(), (side as f64 / 6.0).max(1.0).ln());
                let spec = GrfSpec { size: side, length_scale: rng.gen_range(lo..=hi).exp(), ..GrfSpec::new(side) };
                let field = spec.sample(1, rng);
                // Crop the periodic square to h×w, then mark the highest round(cover·sites) values missing.
                let crop: Vec<f32> = (0..h * w).map(|i| field[(i / w) * side + i % w]).collect();
                let mut order: Vec<usize> = (0..h * w).collect();
                order.sort_by(|&a, &b| crop[b].total_cmp(&crop[a]));
                let n_missing = (cover * (h * w) as f64).round() as usize;
                let mut m = vec![1u8; h * w];
                for &i in &order[..n_missing.min(h * w)] {
                    m[i] = 0;
                }
                m
            }
        }
    }
}

/// A g×g grid of blocks over an H×W field. Block sizes are `H / g` except the last row/column,
/// which takes the remainder (the official code's split; 64 → 21, 21, 22).
#[derive(Clone, Copy, Debug)]
pub struct BlockGrid {
    pub grid: usize,
    pub h: usize,
    pub w: usize,
}

impl BlockGrid {
    pub fn new(grid: usize, h: usize, w: usize) -> BlockGrid {
        BlockGrid { grid, h, w }
    }

    pub fn count(&self) -> usize {
        self.grid * self.grid
    }

    fn span(len: usize, g: usize, i: usize) -> (usize, usize) {
        let step = len / g;
        let start = i * step;
        let end = if i + 1 == g { len } else { start + step };
        (start, end)
    }

    /// Row and column ranges of block `b`.
    pub fn bounds(&self, b: usize) -> ((usize, usize), (usize, usize)) {
        (Self::span(self.h, self.grid, b / self.grid), Self::span(self.w, self.grid, b % self.grid))
    }

    /// Sets every site of block `b` in an `[H, W]` site mask to `value`.
    pub fn fill(&self, b: usize, sites: &mut [u8], value: u8) {
        let ((r0, r1), (c0, c1)) = self.bounds(b);
        for r in r0..r1 {
            sites[r * self.w + c0..r * self.w + c1].fill(value);
        }
    }

    /// Blocks counted as observed in an `[H, W]` site mask: at least half their sites observed
    /// (the official `infer_block_ids_from_mask` rule).
    pub fn observed_blocks(&self, sites: &[u8]) -> Vec<usize> {
        (0..self.count())
            .filter(|&b| {
                let ((r0, r1), (c0, c1)) = self.bounds(b);
                let total = (r1 - r0) * (c1 - c0);
                let seen: usize =
                    (r0..r1).map(|r| sites[r * self.w + c0..r * self.w + c1].iter().filter(|&&v| v != 0).count()).sum();
                total > 0 && 2 * seen >= total
            })
            .collect()
    }

    /// Blocks holding at least one observed site (`sites` `[H, W]`, 1 = observed).
    pub fn touched_blocks(&self, sites: &[u8]) -> Vec<usize> {
        (0..self.count())
            .filter(|&b| {
                let ((r0, r1), (c0, c1)) = self.bounds(b);
                (r0..r1).any(|r| sites[r * self.w + c0..r * self.w + c1].contains(&1))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn parses_patterns_and_rejects_nonsense() {
        assert_eq!("pixel:0.2".parse::<Pattern>().unwrap(), Pattern::Pixel { observed: 0.2 });
        assert_eq!("block:3:1".parse::<Pattern>().unwrap(), Pattern::Block { grid: 3, missing: 1 });
        assert_eq!("block:3:1".parse::<Pattern>().unwrap().to_string(), "block:3:1");
        for good in ["swath:0.4", "sensors:25", "cloud:0.3"] {
            assert_eq!(good.parse::<Pattern>().unwrap().to_string(), good);
        }
        for bad in ["pixel", "pixel:2", "block:3:9", "cloud", "pixel:x", "cloud:1", "sensors:0", "swath:0", "strip:1"] {
            assert!(bad.parse::<Pattern>().is_err(), "{bad}");
        }
    }

    #[test]
    fn block_split_takes_remainder_in_last_block() {
        let g = BlockGrid::new(3, 64, 32);
        assert_eq!(g.bounds(0), ((0, 21), (0, 10)));
        assert_eq!(g.bounds(8), ((42, 64), (20, 32)));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let m = Pattern::Block { grid: 3, missing: 4 }.draw(Dims { t: 1, c: 1, h: 64, w: 32 }, &mut rng);
        assert_eq!(g.observed_blocks(&m).len(), 5);
    }

    #[test]
    fn pixel_pattern_hits_its_rate() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let m = Pattern::Pixel { observed: 0.2 }.draw(Dims { t: 1, c: 2, h: 100, w: 100 }, &mut rng);
        let frac = m.iter().filter(|&&v| v != 0).count() as f64 / m.len() as f64;
        assert!((frac - 0.2).abs() < 0.01, "{frac}");
        assert_eq!(m[..10000], m[10000..]);
    }

    fn observed(m: &[u8]) -> f64 {
        m.iter().filter(|&&v| v != 0).count() as f64 / m.len() as f64
    }

    /// Fraction of horizontally and vertically adjacent site pairs that agree (both seen or
    /// both missing): 1 for one big patch, p² + (1 − p)² for independent sites.
    fn neighbour_agreement(m: &[u8], h: usize, w: usize) -> f64 {
        let (mut same, mut pairs) = (0usize, 0usize);
        for r in 0..h {
            for c in 0..w {
                if c + 1 < w {
                    same += usize::from(m[r * w + c] == m[r * w + c + 1]);
                    pairs += 1;
                }
                if r + 1 < h {
                    same += usize::from(m[r * w + c] == m[(r + 1) * w + c]);
                    pairs += 1;
                }
            }
        }
        same as f64 / pairs as f64
    }

    #[test]
    fn swaths_are_strips_at_their_rate() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let dims = Dims { t: 1, c: 1, h: 48, w: 64 };
        let masks = Pattern::Swath { observed: 0.4 }.draw_set(400, dims, &mut rng).unwrap();
        assert!((observed(&masks) - 0.4).abs() < 0.02, "{}", observed(&masks));
        let mut angles_differ = false;
        for m in masks.chunks_exact(dims.sites()) {
            // Strips: long runs of agreement, far above independent sites (0.52 at p = 0.4).
            assert!(neighbour_agreement(m, 48, 64) > 0.85);
            angles_differ |= m[..64] != masks[..64];
        }
        assert!(angles_differ);
    }

    #[test]
    fn sensors_are_fixed_per_file_and_exact_in_number() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let dims = Dims { t: 1, c: 2, h: 16, w: 16 };
        let masks = Pattern::Sensors { count: 10 }.draw_set(5, dims, &mut rng).unwrap();
        let first = &masks[..dims.len()];
        assert_eq!(first.iter().filter(|&&v| v != 0).count(), 20, "10 sites × 2 channels");
        assert!(masks.chunks_exact(dims.len()).all(|m| m == first));
        let other = Pattern::Sensors { count: 10 }.draw_set(1, dims, &mut rng).unwrap();
        assert_ne!(other, first, "a new file gets new stations");
        assert!(Pattern::Sensors { count: 300 }.draw_set(1, dims, &mut rng).is_err());
    }

    #[test]
    fn clouds_hit_their_cover_exactly_and_are_smooth_and_stationary() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let dims = Dims { t: 1, c: 1, h: 32, w: 40 };
        let masks = Pattern::Cloud { cover: 0.3 }.draw_set(300, dims, &mut rng).unwrap();
        let want_missing = (0.3f64 * 1280.0).round() as usize;
        let mut per_site = vec![0usize; dims.sites()];
        for m in masks.chunks_exact(dims.sites()) {
            assert_eq!(m.iter().filter(|&&v| v == 0).count(), want_missing);
            assert!(neighbour_agreement(m, 32, 40) > 0.8, "clouds are patches, not speckle");
            for (s, &v) in per_site.iter_mut().zip(m) {
                *s += usize::from(v == 0);
            }
        }
        // Every site is clouded about 30% of the time (no preferred place): quadrant averages agree.
        let quad = |r0: usize, c0: usize| {
            let mut t = 0;
            for r in r0..r0 + 16 {
                for c in c0..c0 + 20 {
                    t += per_site[r * 40 + c];
                }
            }
            t as f64 / (320.0 * 300.0)
        };
        for q in [quad(0, 0), quad(0, 20), quad(16, 0), quad(16, 20)] {
            assert!((q - 0.3).abs() < 0.05, "{q}");
        }
    }

    #[test]
    fn patterns_that_do_not_fit_are_errors() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        let dims = Dims { t: 1, c: 1, h: 2, w: 2 };
        assert!(Pattern::Block { grid: 3, missing: 1 }.draw_set(1, dims, &mut rng).is_err());
        assert!(Pattern::Cloud { cover: 0.9 }.draw_set(1, dims, &mut rng).is_err());
    }
}
