//! Circular padding by one pixel, the input of every 3×3 convolution on a periodic domain:
//!
//! ```text
//! out[n, c, i, j] = x[n, c, (i − 1) mod H, (j − 1) mod W],   i ∈ [0, H + 2), j ∈ [0, W + 2)
//! ```
//!
//! One libtorch autograd op (`circular_pad.cpp`, compiled by build.rs): built from tch's
//! differentiable pieces the pad cost a third to two-thirds of a training step, most of it in
//! the backward of the concatenations (results §0, `scripts/pad_unet_bench.py`).
//! [`circular_pad_reference`] is the same map from concatenations, kept for the tests.

use std::ffi::{c_char, c_int};
use tch::Tensor;

mod ffi {
    use std::ffi::{c_char, c_int};
    use torch_sys::C_tensor;

    extern "C" {
        pub fn lacuna_circular_pad(x: *const C_tensor, out: *mut *mut C_tensor, err: *mut *mut c_char) -> c_int;
        pub fn lacuna_circular_pad_free_error(err: *mut c_char);
    }
}

/// `x` (N, C, H, W) padded circularly by one pixel on each side of both plane axes; gradients
/// flow back to `x`.
///
/// # Panics
/// When libtorch rejects the input (not 4-d, or empty planes), as tch's own ops do: callers
/// pass the network's activations, never user input.
pub fn circular_pad(x: &Tensor) -> Tensor {
    let mut out: *mut torch_sys::C_tensor = std::ptr::null_mut();
    let mut err: *mut c_char = std::ptr::null_mut();
    // SAFETY: `x` outlives the call; on success `out` is a new `at::Tensor*` that the returned
    // `Tensor` owns (freed by tch's `at_free`); on failure `err` is a malloc'd C string freed here.
    let rc: c_int = unsafe { ffi::lacuna_circular_pad(x.as_ptr(), &mut out, &mut err) };
    if rc != 0 || out.is_null() {
        let message = crate::ffi::take_message(err, ffi::lacuna_circular_pad_free_error)
            .unwrap_or_else(|| "circular pad failed".into());
        panic!("circular pad of a tensor of shape {:?}: {message}", x.size());
    }
    // SAFETY: see above.
    unsafe { Tensor::from_ptr(out) }
}

/// The same map from two concatenations of opposite rows and columns (the implementation
/// before the op; libtorch's circular pad mode gives the same values).
pub fn circular_pad_reference(x: &Tensor) -> Tensor {
    let (h, w) = (x.size()[2], x.size()[3]);
    let x = Tensor::cat(&[x.narrow(3, w - 1, 1), x.shallow_clone(), x.narrow(3, 0, 1)], 3);
    Tensor::cat(&[x.narrow(2, h - 1, 1), x.shallow_clone(), x.narrow(2, 0, 1)], 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn field(shape: &[i64], kind: Kind) -> Tensor {
        tch::manual_seed(3);
        Tensor::randn(shape, (kind, Device::Cpu))
    }

    #[test]
    fn values_match_the_concatenation_and_libtorchs_circular_mode() {
        for shape in [[2, 3, 5, 7], [1, 1, 1, 1], [3, 2, 8, 8], [1, 4, 2, 3]] {
            let x = field(&shape, Kind::Float);
            let ours = circular_pad(&x);
            assert_eq!(ours.size(), vec![shape[0], shape[1], shape[2] + 2, shape[3] + 2]);
            assert!(ours.equal(&circular_pad_reference(&x)), "shape {shape:?}");
            assert!(ours.equal(&x.pad([1, 1, 1, 1], "circular", None)), "shape {shape:?}");
        }
    }

    #[test]
    fn gradient_matches_the_concatenation() {
        for shape in [[2, 3, 5, 7], [1, 1, 1, 1], [2, 2, 2, 3]] {
            let x = field(&shape, Kind::Double).set_requires_grad(true);
            // A weight per padded pixel, so every strip and corner of the fold is tested.
            let weight = field(&[shape[0], shape[1], shape[2] + 2, shape[3] + 2], Kind::Double);
            let ours = Tensor::run_backward(&[(circular_pad(&x) * &weight).sum(Kind::Double)], &[&x], false, false);
            let reference =
                Tensor::run_backward(&[(circular_pad_reference(&x) * &weight).sum(Kind::Double)], &[&x], false, false);
            let gap = (&ours[0] - &reference[0]).abs().max().double_value(&[]);
            assert!(gap < 1e-12, "shape {shape:?}: gradient gap {gap}");
        }
    }

    #[test]
    fn keeps_channels_last_and_works_without_gradients() {
        // NHWC memory, as `prefer_channels_last` leaves the weights and so the activations.
        let x = field(&[2, 4, 6, 6], Kind::Float).permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
        let ours = tch::no_grad(|| circular_pad(&x));
        assert_eq!(ours.stride(), vec![8 * 8 * 4, 1, 8 * 4, 4]);
        assert!(ours.equal(&circular_pad_reference(&x)));
    }

    #[test]
    #[should_panic(expected = "4-d")]
    fn rejects_a_tensor_that_is_not_4d() {
        let _ = circular_pad(&Tensor::zeros([3, 3], (Kind::Float, Device::Cpu)));
    }
}
