//! Mixed precision for the network's forward pass: inside an [`Autocast`] region libtorch runs
//! convolutions, linear layers and matrix products in bfloat16 on float32 master weights
//! (`autocast.cpp`, compiled by build.rs; tch 0.24 wraps only the deprecated CUDA switch).
//! The region belongs to the thread that opened it, so each CPU worker opens its own.

use anyhow::{bail, Result};
use std::ffi::{c_char, c_int};
use tch::Device;

mod ffi {
    use std::ffi::{c_char, c_int};

    extern "C" {
        pub fn lacuna_autocast_enter(
            cuda: c_int,
            was_enabled: *mut c_int,
            was_dtype: *mut c_int,
            err: *mut *mut c_char,
        ) -> c_int;
        pub fn lacuna_autocast_exit(cuda: c_int, was_enabled: c_int, was_dtype: c_int, err: *mut *mut c_char) -> c_int;
        pub fn lacuna_cpu_has_amx_bf16(err: *mut *mut c_char) -> c_int;
        pub fn lacuna_autocast_free_error(err: *mut c_char);
    }
}

/// An open bfloat16 autocast region on one device type for the calling thread; dropping it
/// restores the state before it and, for the outermost region, clears the weight-cast cache.
#[must_use = "the region closes when the guard is dropped"]
pub struct Autocast {
    cuda: c_int,
    was_enabled: c_int,
    was_dtype: c_int,
    // libtorch's autocast state is thread-local: the guard must close on the thread it opened.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Autocast {
    /// Opens a bfloat16 region for ops on `device` (any CUDA device, or the CPU).
    pub fn bf16(device: Device) -> Result<Autocast> {
        let cuda = c_int::from(device.is_cuda());
        let (mut was_enabled, mut was_dtype) = (0, 0);
        let mut err: *mut c_char = std::ptr::null_mut();
        // SAFETY: plain integers out; on failure `err` is a malloc'd string taken below.
        let rc = unsafe { ffi::lacuna_autocast_enter(cuda, &mut was_enabled, &mut was_dtype, &mut err) };
        if rc != 0 {
            bail!("could not enter bfloat16 autocast: {}", take_message(err));
        }
        Ok(Autocast { cuda, was_enabled, was_dtype, _not_send: std::marker::PhantomData })
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        let mut err: *mut c_char = std::ptr::null_mut();
        // SAFETY: as in `bf16`; the arguments are what the matching enter wrote.
        let rc = unsafe { ffi::lacuna_autocast_exit(self.cuda, self.was_enabled, self.was_dtype, &mut err) };
        if rc != 0 {
            // Leaving only resets thread-local flags; failing here means libtorch itself is
            // broken, and carrying on would compute in the wrong precision.
            panic!("could not leave bfloat16 autocast: {}", take_message(err));
        }
    }
}

/// Whether this CPU has AMX-BF16 matrix units (asked once; false when libtorch cannot tell).
/// Rust's own feature detection does not name AMX on stable.
pub fn cpu_has_amx_bf16() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        let mut err: *mut c_char = std::ptr::null_mut();
        // SAFETY: as in `Autocast::bf16`.
        let has = unsafe { ffi::lacuna_cpu_has_amx_bf16(&mut err) };
        if has < 0 {
            let _ = take_message(err);
        }
        has == 1
    })
}

fn take_message(err: *mut c_char) -> String {
    crate::ffi::take_message(err, ffi::lacuna_autocast_free_error).unwrap_or_else(|| "no message".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn convolutions_run_in_bfloat16_inside_and_float32_after() {
        let x = Tensor::randn([2, 3, 8, 8], (Kind::Float, Device::Cpu));
        let w = Tensor::randn([4, 3, 3, 3], (Kind::Float, Device::Cpu));
        let conv = |x: &Tensor| x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
        {
            let _outer = Autocast::bf16(Device::Cpu).unwrap();
            assert_eq!(conv(&x).kind(), Kind::BFloat16);
            {
                let _inner = Autocast::bf16(Device::Cpu).unwrap();
                assert_eq!(conv(&x).kind(), Kind::BFloat16);
            }
            // Closing the inner region restores the outer one, not float32.
            assert_eq!(conv(&x).kind(), Kind::BFloat16);
            // Element-wise ops keep their inputs' precision.
            assert_eq!((&x * 2.0).kind(), Kind::Float);
        }
        assert_eq!(conv(&x).kind(), Kind::Float);
        // The values agree to bfloat16's resolution (8 bits of mantissa).
        let low = {
            let _r = Autocast::bf16(Device::Cpu).unwrap();
            conv(&x).to_kind(Kind::Float)
        };
        let exact = conv(&x);
        let rel = ((&low - &exact).norm() / exact.norm()).double_value(&[]);
        assert!(rel > 0.0 && rel < 1e-2, "relative gap {rel}");
    }

    #[test]
    fn regions_are_per_thread() {
        let _r = Autocast::bf16(Device::Cpu).unwrap();
        let kind = std::thread::spawn(|| {
            let x = Tensor::ones([1, 2, 4, 4], (Kind::Float, Device::Cpu));
            x.conv2d(&Tensor::ones([1, 2, 1, 1], (Kind::Float, Device::Cpu)), None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)
                .kind()
        })
        .join()
        .unwrap();
        assert_eq!(kind, Kind::Float);
    }
}
