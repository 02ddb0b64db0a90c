//! Crash-safe file writes and the rules every output obeys.
//!
//! - A file is written to a temporary sibling `.NAME.TAG.PID.tmp`, synced and renamed into
//!   place: readers see the old file or the complete new one.
//! - Temporaries are removed on error, on SIGINT/SIGTERM/SIGHUP ([`install_signal_cleanup`]:
//!   every live one is in a registry), and after a SIGKILL by the next write into the same
//!   directory ([`sweep_stale`]: a temporary whose process is gone).
//! - An output may not be any input of the same command ([`refuse_overwriting_inputs`]).

use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Paths to remove if the process is stopped by a signal: live temporaries and held locks.
static ON_EXIT: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Registers `path` for removal on a termination signal (until [`forget`]).
pub fn remove_on_signal(path: &Path) {
    if let Ok(mut set) = ON_EXIT.lock() {
        set.insert(path.to_path_buf());
    }
}

/// Drops `path` from the removal registry.
pub fn forget(path: &Path) {
    if let Ok(mut set) = ON_EXIT.lock() {
        set.remove(path);
    }
}

/// On SIGINT, SIGTERM or SIGHUP: removes every registered temporary and lock, then exits
/// with 130. Checkpoints already written stay (training resumes from the last one).
pub fn install_signal_cleanup() {
    let _ = ctrlc::set_handler(|| {
        if let Ok(set) = ON_EXIT.lock() {
            for p in set.iter() {
                let _ = std::fs::remove_file(p);
            }
        }
        eprintln!("\ninterrupted: temporary files removed; finished files and checkpoints are kept");
        // `_exit`, not `exit`: static destructors would tear libtorch down under the main
        // thread, which may be inside an operator (it then reports a spurious internal error).
        // SAFETY: `_exit` takes no pointers and never returns.
        unsafe { libc::_exit(130) };
    });
}

/// Whether a process with this pid is running (Linux: `/proc/PID`; elsewhere assumed alive).
pub fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// A temporary sibling of `path` for this process, tagged with `tag` (one per array of a
/// streamed archive).
pub fn temp_path(path: &Path, tag: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{tag}.{}.tmp", std::process::id()))
}

/// Removes the temporaries of `path` left by processes that no longer run (a SIGKILL gives no
/// chance to clean up), saying so on stderr. Returns how many were removed.
pub fn sweep_stale(path: &Path) -> usize {
    let name = match path.file_name() {
        Some(n) => format!(".{}.", n.to_string_lossy()),
        None => return 0,
    };
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().to_string();
        let Some(rest) = file.strip_prefix(&name).and_then(|r| r.strip_suffix(".tmp")) else { continue };
        let Some(pid) = rest.rsplit('.').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !process_alive(pid) && std::fs::remove_file(entry.path()).is_ok() {
            eprintln!("warning: removed {}, left by process {pid} that was killed", entry.path().display());
            removed += 1;
        }
    }
    removed
}

/// Refuses when an output would replace one of the inputs (the same file, whatever the
/// spelling of its path: links and `..` resolve to the same device and inode).
pub fn refuse_overwriting_inputs(inputs: &[&Path], outputs: &[&Path]) -> Result<()> {
    for out in outputs {
        let Ok(o) = std::fs::metadata(out) else { continue };
        for input in inputs {
            if let Ok(i) = std::fs::metadata(input) {
                if same_file(&i, &o) {
                    bail!(
                        "{}: is also an input of this command ({}); writing it would destroy the input, choose another output",
                        out.display(),
                        input.display()
                    );
                }
            }
        }
    }
    Ok(())
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    false
}

/// Creates the parent directory of `path` when missing, naming the output (not a temporary)
/// when that fails.
fn ensure_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if dir.is_file() {
            bail!("{}: cannot write, {} is a file and not a directory", path.display(), dir.display());
        }
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create directory {}", path.display(), dir.display()))?;
    }
    if path.is_dir() {
        bail!("{}: is a directory; give a file name as the output", path.display());
    }
    Ok(())
}

/// A file removed when this guard drops and on a termination signal (a temporary, a lock).
#[derive(Debug)]
pub struct Removed(PathBuf);

impl Removed {
    /// Guards `path` (which the caller creates).
    pub fn new(path: PathBuf) -> Removed {
        remove_on_signal(&path);
        Removed(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        forget(&self.0);
    }
}

/// A registered temporary that removes itself unless it was renamed into place.
struct Temp(Removed);

impl Temp {
    fn new(path: &Path, tag: &str) -> Temp {
        Temp(Removed::new(temp_path(path, tag)))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn persist(self, path: &Path) -> Result<()> {
        std::fs::rename(self.path(), path).with_context(|| format!("{}: cannot rename into place", path.display()))
    }
}

/// Creates `path` through `fill`, atomically: readers see the old file or the complete new one.
pub fn write_with<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut File) -> Result<()>,
{
    ensure_parent(path)?;
    sweep_stale(path);
    let tmp = Temp::new(path, "part");
    let mut file = File::create(tmp.path()).with_context(|| format!("{}: cannot create", path.display()))?;
    fill(&mut file).with_context(|| format!("{}: write failed", path.display()))?;
    file.sync_all().with_context(|| format!("{}: sync failed", path.display()))?;
    tmp.persist(path)
}

/// Writes bytes atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |f| {
        use std::io::Write;
        f.write_all(bytes)?;
        Ok(())
    })
}

/// Writes through a path-taking writer (such as a safetensors serialiser) atomically.
pub fn write_via_path<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    ensure_parent(path)?;
    sweep_stale(path);
    let tmp = Temp::new(path, "part");
    write(tmp.path())?;
    File::open(tmp.path())?.sync_all().with_context(|| format!("{}: sync failed", path.display()))?;
    tmp.persist(path)
}

/// A temporary file beside `path` for a streamed writer, removed when dropped (and on a
/// signal); `path()` is where to write.
pub struct Scratch(Temp);

impl Scratch {
    pub fn new(path: &Path, tag: &str) -> Result<Scratch> {
        ensure_parent(path)?;
        sweep_stale(path);
        Ok(Scratch(Temp::new(path, tag)))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_that_is_an_input_is_refused_whatever_its_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.npz");
        std::fs::write(&a, b"data").unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let spelled = sub.join("..").join("a.npz");
        let err = refuse_overwriting_inputs(&[&a], &[&spelled]).unwrap_err().to_string();
        assert!(err.contains("is also an input"), "{err}");
        #[cfg(unix)]
        {
            let link = dir.path().join("link.npz");
            std::os::unix::fs::symlink(&a, &link).unwrap();
            assert!(refuse_overwriting_inputs(&[&link], &[&a]).is_err());
        }
        // A new file, or another existing file, is fine.
        assert!(refuse_overwriting_inputs(&[&a], &[&dir.path().join("b.npz")]).is_ok());
        std::fs::write(dir.path().join("c.npz"), b"x").unwrap();
        assert!(refuse_overwriting_inputs(&[&a], &[&dir.path().join("c.npz")]).is_ok());
        assert_eq!(std::fs::read(&a).unwrap(), b"data");
    }

    #[test]
    fn temporaries_of_killed_processes_are_swept_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.npz");
        // A pid that cannot be running (above the kernel's pid_max of 2^22).
        let dead = dir.path().join(".out.npz.mean.99999999.tmp");
        let mine = temp_path(&out, "mean");
        let other = dir.path().join(".other.npz.part.99999999.tmp");
        for p in [&dead, &mine, &other] {
            std::fs::write(p, b"partial").unwrap();
        }
        assert_eq!(sweep_stale(&out), 1);
        assert!(!dead.exists() && mine.exists() && other.exists());
        write_bytes(&out, b"done").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"done");
    }

    #[test]
    fn a_failed_write_leaves_neither_temporary_nor_output() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.bin");
        let err = write_with(&out, |_| anyhow::bail!("boom")).unwrap_err();
        assert!(format!("{err:#}").contains("boom"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // Into a directory: named as the output, not as a hidden temporary.
        let err = write_bytes(dir.path(), b"x").unwrap_err().to_string();
        assert!(err.contains("is a directory") && !err.contains(".part."), "{err}");
    }
}
