//! An exclusive lock on a run directory for the length of a training run: a second `train`
//! into the same `--out` is refused, naming the holder. The lock is the file `DIR/.lock`
//! holding the holder's pid, created with `O_EXCL`; a lock whose process is gone (a SIGKILL)
//! is stale and taken over. Released on drop and on SIGINT/SIGTERM.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::Path;

/// Held while training; the lock file goes when it drops (or on a signal).
#[derive(Debug)]
pub struct RunLock {
    _file: crate::atomic::Removed,
}

impl RunLock {
    /// Takes the lock on `dir` (which must exist) for this process.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        let path = dir.join(".lock");
        for _ in 0..3 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let lock = RunLock { _file: crate::atomic::Removed::new(path.clone()) };
                    write!(f, "{}", std::process::id()).with_context(|| format!("{}: cannot write", path.display()))?;
                    return Ok(lock);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path).unwrap_or_default();
                    match holder.trim().parse::<u32>() {
                        Ok(pid) if pid != std::process::id() && crate::atomic::process_alive(pid) => bail!(
                            "{}: in use by another lacuna process (pid {pid}) training into it; wait for it to finish, stop it, or choose another --out",
                            dir.display()
                        ),
                        // Stale (its process is gone) or half-written by a holder that died.
                        _ => {
                            if !holder.trim().is_empty() {
                                eprintln!(
                                    "warning: {}: removing a stale lock of process {} that is no longer running",
                                    dir.display(),
                                    holder.trim()
                                );
                            }
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("{}: cannot create the run lock", path.display())),
            }
        }
        bail!("{}: could not take the run lock (another process keeps creating it)", dir.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_a_stale_one_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join(".lock");
        // A holder that is alive: pid 1 (init) always runs.
        std::fs::write(&lock, "1").unwrap();
        let err = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains("pid 1"), "{err}");
        // A holder that is gone.
        std::fs::write(&lock, "99999999").unwrap();
        let held = RunLock::acquire(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&lock).unwrap(), std::process::id().to_string());
        drop(held);
        assert!(!lock.exists());
    }
}
