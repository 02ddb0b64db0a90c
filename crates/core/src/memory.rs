//! Memory checks made before anything large is reserved: a size read from a file or a flag
//! is compared with what the system can hand out, so a lying header or an absurd flag gives
//! an error instead of an allocation abort.

use anyhow::{bail, Result};

/// Memory the system can still hand out, from `/proc/meminfo` (None where unknown).
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Refuses work whose estimate exceeds the available memory, saying what to change.
pub fn check_fits(what: &str, bytes: u64, hint: &str) -> Result<()> {
    if let Some(avail) = available_bytes() {
        if bytes > avail {
            bail!(
                "{what} needs about {:.1} GiB, only {:.1} GiB is available; {hint}",
                bytes as f64 / 1073741824.0,
                avail as f64 / 1073741824.0
            );
        }
    }
    Ok(())
}

/// `a·b·…` in bytes, saturating (a product that overflows is certainly too large).
pub fn product(factors: &[usize]) -> u64 {
    factors.iter().fold(1u64, |acc, &f| acc.saturating_mul(f as u64))
}
