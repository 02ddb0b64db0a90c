//! The Rust side of the C++ shims' error convention (`guarded.h`): a failed call leaves a
//! malloc'd, NUL-terminated message in its `err` out-parameter, which the shim's own
//! `*_free_error` must release (the allocator is the shim's, not Rust's).

use std::ffi::{c_char, CStr};

/// Copies the shim's message out of `err` and frees it with the shim's `free`; `None` when
/// the shim left no message (`err` null, e.g. its allocation failed).
pub(crate) fn take_message(err: *mut c_char, free: unsafe extern "C" fn(*mut c_char)) -> Option<String> {
    if err.is_null() {
        return None;
    }
    // SAFETY: a non-null `err` is a NUL-terminated string the shim malloc'd for this call; it is
    // read once and freed once, right after, by the function the shim pairs with it.
    let message = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
    unsafe { free(err) };
    Some(message)
}
