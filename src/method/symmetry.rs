//! A circular shift symmetry the user declares (`shift_symmetry = [rows, columns]`): the law
//! of the fields (and of their masks) is invariant under rolling by multiples of it.
//!
//! Training rolls each sample by a random multiple (augmentation); the samplers roll each
//! ensemble member's input by one and its prediction back:
//!
//! ```text
//! û_k = S_{−s_k} u_φ(δ, S_{s_k}(M_ctx^(k) ⊙ u_δ^(k)), S_{s_k} M_ctx^(k)),   s_k ∈ step·ℤ²
//! ```
//!
//! which is the same estimate for an exactly shift-equivariant network, and for a real one
//! averages over the shifts its strided layers are not equivariant to.

use crate::data::Dims;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::Tensor;

/// A circular shift `(rows, columns)` per sample, each a uniform multiple of the declared
/// symmetry `step` (0 = none in that direction).
pub fn random_shifts(step: [usize; 2], dims: Dims, n: usize, rng: &mut ChaCha8Rng) -> Vec<(i64, i64)> {
    let draw = |rng: &mut ChaCha8Rng, step: usize, side: usize| match step {
        0 => 0,
        s => (s * rng.gen_range(0..side / s)) as i64,
    };
    (0..n).map(|_| (draw(rng, step[0], dims.h), draw(rng, step[1], dims.w))).collect()
}

/// `v` `[B, P, H, W]` with sample `i` rolled by `shifts[i]`: a field and its masks shifted
/// together are a draw from the same law when the law has that symmetry.
pub fn shifted(v: &Tensor, shifts: &[(i64, i64)]) -> Tensor {
    let rolled: Vec<Tensor> =
        shifts.iter().enumerate().map(|(i, &(r, c))| v.narrow(0, i as i64, 1).roll([r, c], [2, 3])).collect();
    Tensor::cat(&rolled, 0)
}

/// The inverse shifts of `shifts`.
pub fn inverse(shifts: &[(i64, i64)]) -> Vec<(i64, i64)> {
    shifts.iter().map(|&(r, c)| (-r, -c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use tch::{Device, Kind};

    /// Declared shifts roll each sample by its own multiple of the symmetry, values and masks
    /// alike, and never shift a direction declared 0.
    #[test]
    fn shifts_are_multiples_of_the_declared_step_and_roll_each_sample() {
        let dims = Dims { t: 1, c: 1, h: 8, w: 6 };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let shifts = random_shifts([4, 0], dims, 64, &mut rng);
        assert!(shifts.iter().all(|&(r, c)| c == 0 && (r == 0 || r == 4)));
        assert!(shifts.iter().any(|&(r, _)| r == 4) && shifts.iter().any(|&(r, _)| r == 0));
        let shifts = random_shifts([1, 3], dims, 64, &mut rng);
        assert!(shifts.iter().all(|&(r, c)| (0..8).contains(&r) && (c == 0 || c == 3)));

        let v = Tensor::arange(2 * 8 * 6, (Kind::Float, Device::Cpu)).view([2, 1, 8, 6]);
        let out = shifted(&v, &[(1, 0), (0, 2)]);
        // Sample 0 moved down one row: its first row is the old last row.
        assert_eq!(out.double_value(&[0, 0, 0, 0]), v.double_value(&[0, 0, 7, 0]));
        assert_eq!(out.double_value(&[0, 0, 1, 5]), v.double_value(&[0, 0, 0, 5]));
        // Sample 1 moved right two columns.
        assert_eq!(out.double_value(&[1, 0, 3, 2]), v.double_value(&[1, 0, 3, 0]));
        assert_eq!(out.double_value(&[1, 0, 3, 0]), v.double_value(&[1, 0, 3, 4]));
        let back = shifted(&out, &inverse(&[(1, 0), (0, 2)]));
        assert_eq!(back.eq_tensor(&v).all().int64_value(&[]), 1);
    }
}
