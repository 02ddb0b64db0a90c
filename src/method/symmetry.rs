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
//!
//! Declared reflections ([`Reflections`]) act the same way: a random element per training
//! sample, and member k of an ensemble mapped by the group's k-th element (mod its size),
//! `û_k = g_k⁻¹ u_φ(δ, g_k(M_ctx^(k) ⊙ u_δ^(k)), g_k M_ctx^(k))`. A network is not equivariant
//! to them at all, so here the members average over K / |G| genuinely different estimates.

use crate::config::{Reflection, Reflections};
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

/// `v` `[B, …, H, W]` with sample `i` rolled by `shifts[i]` over its last two axes, `out[y, x]
/// = v[(y − r) mod H, (x − c) mod W]`: a field and its masks shifted together are a draw from
/// the same law when the law has that symmetry. One gather over a per-sample index, not a
/// roll per sample (B·K ensemble members would be B·K narrow-roll pairs and a concatenation).
pub fn shifted(v: &Tensor, shifts: &[(i64, i64)]) -> Tensor {
    if shifts.iter().all(|&s| s == (0, 0)) {
        return v.shallow_clone();
    }
    let size = v.size();
    let (h, w) = (size[size.len() - 2], size[size.len() - 1]);
    let mut index = Vec::with_capacity(shifts.len() * (h * w) as usize);
    for &(r, c) in shifts {
        for y in 0..h {
            let row = (y - r).rem_euclid(h) * w;
            index.extend((0..w).map(|x| row + (x - c).rem_euclid(w)));
        }
    }
    let flat = v.reshape([shifts.len() as i64, -1, h * w]);
    let index = Tensor::from_slice(&index).view([shifts.len() as i64, 1, h * w]).to_device(v.device());
    flat.gather(2, &index.expand(flat.size(), false), false).view(size.as_slice())
}

/// The inverse shifts of `shifts`.
pub fn inverse(shifts: &[(i64, i64)]) -> Vec<(i64, i64)> {
    shifts.iter().map(|&(r, c)| (-r, -c)).collect()
}

/// What a tensor holds: a negating element ([`Reflection::negate`]) flips the sign of values
/// (in normalised units, so about the training mean), never of masks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holds {
    Values,
    Masks,
}

/// A uniform element of `group` per sample, for fields with the declared `shift_symmetry`.
pub fn random_reflections(
    group: Reflections,
    shift_symmetry: [usize; 2],
    n: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<Reflection> {
    let elements = group.elements(shift_symmetry);
    (0..n).map(|_| elements[rng.gen_range(0..elements.len())]).collect()
}

/// The group's elements cycled over `k` members per row of `rows` rows (member-major):
/// member j of every row takes element j mod |G|, so each element maps K / |G| members.
pub fn member_reflections(group: Reflections, shift_symmetry: [usize; 2], rows: usize, k: usize) -> Vec<Reflection> {
    let elements = group.elements(shift_symmetry);
    (0..rows * k).map(|i| elements[(i % k) % elements.len()]).collect()
}

/// Reverses one axis of the grid: `i → −i mod N` on a periodic grid (about index 0, the
/// origin of the simulation's coordinates), `i → N − 1 − i` otherwise (about the centre).
fn flip_axis(v: &Tensor, dim: i64, periodic: bool) -> Tensor {
    let f = v.flip([dim]);
    if periodic {
        f.roll([1], [dim])
    } else {
        f
    }
}

/// `g` on `v` `[B, P, H, W]`: flips, transpose, row roll, sign.
fn reflect_one(v: &Tensor, g: Reflection, periodic: bool, holds: Holds) -> Tensor {
    let mut y = v.shallow_clone();
    if g.rows {
        y = flip_axis(&y, 2, periodic);
    }
    if g.cols {
        y = flip_axis(&y, 3, periodic);
    }
    if g.transpose {
        y = y.transpose(2, 3).contiguous();
    }
    if g.roll_rows != 0 {
        y = y.roll([g.roll_rows as i64], [2]);
    }
    if g.negate && holds == Holds::Values {
        y = -y;
    }
    y
}

/// `g⁻¹` on `v`: the sign and the roll undone, then the flips and transpose by their inverse.
fn unreflect_one(v: &Tensor, g: Reflection, periodic: bool, holds: Holds) -> Tensor {
    let mut y = v.shallow_clone();
    if g.negate && holds == Holds::Values {
        y = -y;
    }
    if g.roll_rows != 0 {
        y = y.roll([-(g.roll_rows as i64)], [2]);
    }
    reflect_one(&y, inverse_flips(g), periodic, holds)
}

/// `f` applied to the samples of `v` `[B, P, H, W]` that share an element of `gs`, one call
/// per distinct element (not per sample); `f` keeps shapes (a transpose needs H = W).
fn by_element(v: &Tensor, gs: &[Reflection], f: impl Fn(&Tensor, Reflection) -> Tensor) -> Tensor {
    let mut distinct: Vec<Reflection> = Vec::new();
    for &g in gs {
        if !distinct.contains(&g) {
            distinct.push(g);
        }
    }
    if let [only] = distinct.as_slice() {
        return f(v, *only);
    }
    let mut out = v.zeros_like();
    for g in distinct {
        let rows: Vec<i64> = gs.iter().enumerate().filter(|(_, &h)| h == g).map(|(i, _)| i as i64).collect();
        let index = Tensor::from_slice(&rows).to_device(v.device());
        out = out.index_copy(0, &index, &f(&v.index_select(0, &index), g));
    }
    out
}

/// `v` `[B, P, H, W]` with sample i mapped by `gs[i]`.
pub fn reflected(v: &Tensor, gs: &[Reflection], periodic: bool, holds: Holds) -> Tensor {
    by_element(v, gs, |x, g| reflect_one(x, g, periodic, holds))
}

/// The inverse of [`reflected`] with the same `gs`.
pub fn unreflected(v: &Tensor, gs: &[Reflection], periodic: bool, holds: Holds) -> Tensor {
    by_element(v, gs, |x, g| unreflect_one(x, g, periodic, holds))
}

/// The inverse of `g`'s flips and transpose, `Tᵗ F_c^c F_r^r` (flip rows, then columns, then
/// transpose): flips commute and are their own inverses, and `F_r T = T F_c`, so the inverse
/// `F_r^r F_c^c Tᵗ` is `g` with the two flips swapped when it transposes.
fn inverse_flips(g: Reflection) -> Reflection {
    if g.transpose {
        Reflection::flip(g.cols, g.rows, true)
    } else {
        Reflection::flip(g.rows, g.cols, false)
    }
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

    /// On a periodic grid a reflection fixes index 0 (`i → −i mod N`); off it, the centre.
    /// Reflecting back restores every sample, whatever mix of elements the batch holds, and
    /// rot180 is both flips.
    #[test]
    fn reflections_fix_the_origin_on_a_torus_and_undo_exactly() {
        let v = Tensor::arange(3 * 2 * 5 * 5, (Kind::Float, Device::Cpu)).view([3, 2, 5, 5]);
        let r = Reflection::flip;
        let gs = [r(true, false, false), r(false, true, true), r(true, true, false)];
        for periodic in [true, false] {
            let out = reflected(&v, &gs, periodic, Holds::Values);
            let back = unreflected(&out, &gs, periodic, Holds::Values);
            assert_eq!(back.eq_tensor(&v).all().int64_value(&[]), 1, "periodic {periodic}");
        }
        let out = reflected(&v, &gs, true, Holds::Values);
        // Sample 0, rows reversed about row 0: row 1 is old row 4, row 0 stays.
        assert_eq!(out.double_value(&[0, 1, 1, 3]), v.double_value(&[0, 1, 4, 3]));
        assert_eq!(out.double_value(&[0, 1, 0, 3]), v.double_value(&[0, 1, 0, 3]));
        // Sample 1: columns reversed, then transposed: out[i][j] = v[j][−i].
        assert_eq!(out.double_value(&[1, 0, 2, 3]), v.double_value(&[1, 0, 3, 3]));
        assert_eq!(out.double_value(&[1, 0, 1, 4]), v.double_value(&[1, 0, 4, 4]));
        // Sample 2: rotation by π about the origin.
        assert_eq!(out.double_value(&[2, 0, 1, 2]), v.double_value(&[2, 0, 4, 3]));
        // About the centre without periodicity.
        let centre = reflected(&v, &gs, false, Holds::Values);
        assert_eq!(centre.double_value(&[0, 1, 0, 3]), v.double_value(&[0, 1, 4, 3]));

        assert_eq!(Reflections::Rot180.elements([0, 0]), vec![r(false, false, false), r(true, true, false)]);
        assert_eq!(Reflections::Dihedral.elements([0, 0]).len(), 8);
        let members = member_reflections(Reflections::Axes, [0, 0], 2, 6);
        assert_eq!(members[0], members[4]);
        assert_eq!(members[1], members[7]);
        assert_ne!(members[0], members[1]);
    }

    /// A shift-reflect element rolls the rows after its flip and negates values, not masks;
    /// its inverse undoes both, whatever mix of elements the batch holds.
    #[test]
    fn shift_reflect_rolls_negates_values_and_undoes_exactly() {
        let v = Tensor::arange(4 * 8 * 8, (Kind::Float, Device::Cpu)).view([4, 1, 8, 8]) + 1.0;
        let gs = Reflections::ShiftReflect.elements([4, 1]);
        for holds in [Holds::Values, Holds::Masks] {
            let out = reflected(&v, &gs, true, holds);
            let back = unreflected(&out, &gs, true, holds);
            assert_eq!(back.eq_tensor(&v).all().int64_value(&[]), 1, "{holds:?}");
        }
        let out = reflected(&v, &gs, true, Holds::Values);
        // Element 2: out[i][j] = −v[i − 2][−j]; element 3: out[i][j] = −v[−(i − 2)][j].
        assert_eq!(out.double_value(&[2, 0, 3, 1]), -v.double_value(&[2, 0, 1, 7]));
        assert_eq!(out.double_value(&[3, 0, 3, 1]), -v.double_value(&[3, 0, 7, 1]));
        let masks = reflected(&v, &gs, true, Holds::Masks);
        assert_eq!(masks.double_value(&[2, 0, 3, 1]), v.double_value(&[2, 0, 1, 7]));
    }

    /// The declared group is the symmetry group of the flow the Kolmogorov generator solves:
    /// evolving a mapped vorticity equals mapping the evolved one, for every element of
    /// `shift-reflect` (forcing at wavenumber 4 on 32 rows: period 8), while a plain reflection
    /// of one axis, or a half-period shift with the sign flipped but no reflection, is not.
    #[test]
    fn shift_reflect_commutes_with_the_kolmogorov_dynamics() {
        use crate::data::kolmogorov::{initial_vorticity, Solver};
        let n = 32;
        let mut solver = Solver::new(n, 1e-3, 0.1, 4, 1.0);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let w0 = initial_vorticity(&mut solver, &mut rng);
        let field = |v: &[f64]| Tensor::from_slice(v).view([1, 1, n as i64, n as i64]);
        let grid0 = field(&solver.to_grid(&w0));
        let mut evolve = |start: &Tensor| {
            let mut w = solver.to_spectral(&Vec::<f64>::try_from(start.flatten(0, -1)).unwrap());
            for _ in 0..40 {
                solver.step(&mut w, 0.01);
            }
            field(&solver.to_grid(&w))
        };
        let later = evolve(&grid0);
        let scale = later.abs().max().double_value(&[]);
        let mut gap = |g: Reflection| {
            let mapped_then_evolved = evolve(&reflected(&grid0, &[g], true, Holds::Values));
            let evolved_then_mapped = reflected(&later, &[g], true, Holds::Values);
            (mapped_then_evolved - evolved_then_mapped).abs().max().double_value(&[]) / scale
        };
        for g in Reflections::ShiftReflect.elements([8, 1]) {
            assert!(gap(g) < 1e-9, "{g:?} is not a symmetry: relative gap {}", gap(g));
        }
        let not_symmetries = [
            Reflection::flip(true, false, false),
            Reflection::flip(false, true, false),
            Reflection { roll_rows: 4, negate: true, ..Reflection::flip(false, false, false) },
        ];
        for g in not_symmetries {
            assert!(gap(g) > 1e-3, "{g:?} commuted with the dynamics: relative gap {}", gap(g));
        }
    }
}
