//! Observation patterns: how masks are drawn for synthetic data, and the block-grid geometry
//! shared with the block partition.
//!
//! Syntax (accepted wherever a pattern is named): `pixel:P` (each site observed with
//! probability P), `block:G:M` (a G×G grid of blocks, M of them missing).

use super::field::Dims;
use anyhow::{bail, ensure, Context, Result};
use rand::seq::SliceRandom;
use rand::Rng;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Pattern {
    Pixel { observed: f64 },
    Block { grid: usize, missing: usize },
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
            _ => bail!("unknown observation pattern {s:?}; expected pixel:P or block:G:M"),
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Pixel { observed } => write!(f, "pixel:{observed}"),
            Pattern::Block { grid, missing } => write!(f, "block:{grid}:{missing}"),
        }
    }
}

impl Pattern {
    /// Draws one mask `[C, H, W]` (the same for every channel).
    pub fn draw<R: Rng>(&self, dims: Dims, rng: &mut R) -> Vec<u8> {
        let site = match self {
            Pattern::Pixel { observed } => loop {
                let m: Vec<u8> = (0..dims.sites()).map(|_| u8::from(rng.gen::<f64>() < *observed)).collect();
                // An empty observation is useless to every method; redraw (as the official code does).
                if m.iter().any(|&v| v != 0) {
                    break m;
                }
            },
            Pattern::Block { grid, missing } => {
                let g = BlockGrid::new(*grid, dims.h, dims.w);
                let mut ids: Vec<usize> = (0..g.count()).collect();
                ids.shuffle(rng);
                let mut m = vec![1u8; dims.sites()];
                for &b in &ids[..*missing] {
                    g.fill(b, &mut m, 0);
                }
                m
            }
        };
        (0..dims.c).flat_map(|_| site.iter().copied()).collect()
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
        for bad in ["pixel", "pixel:2", "block:3:9", "cloud", "pixel:x"] {
            assert!(bad.parse::<Pattern>().is_err(), "{bad}");
        }
    }

    #[test]
    fn block_split_takes_remainder_in_last_block() {
        let g = BlockGrid::new(3, 64, 32);
        assert_eq!(g.bounds(0), ((0, 21), (0, 10)));
        assert_eq!(g.bounds(8), ((42, 64), (20, 32)));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let m = Pattern::Block { grid: 3, missing: 4 }.draw(Dims { c: 1, h: 64, w: 32 }, &mut rng);
        assert_eq!(g.observed_blocks(&m).len(), 5);
    }

    #[test]
    fn pixel_pattern_hits_its_rate() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let m = Pattern::Pixel { observed: 0.2 }.draw(Dims { c: 2, h: 100, w: 100 }, &mut rng);
        let frac = m.iter().filter(|&&v| v != 0).count() as f64 / m.len() as f64;
        assert!((frac - 0.2).abs() < 0.01, "{frac}");
        assert_eq!(m[..10000], m[10000..]);
    }
}
