//! Data-parallel groups on libtorch's own collectives (c10d: a `TCPStore` rendezvous and a
//! Gloo process group), through the C++ shim `c10d_shim.cpp` that `build.rs` compiles.
//!
//! A [`Group`] is what training sees: a single process (every collective a no-op) or one rank
//! of a [`ProcessGroup`]. Ranks join through the variables `torchrun` and SLURM set
//! ([`Rendezvous::resolve`]), so `torchrun --no-python --nproc-per-node N lacuna train ...`
//! works as for any PyTorch job.
//!
//! Gradients are summed, not averaged: each rank's loss is its shard's share of the global
//! batch's loss (normalised by the global batch's query count), so the sum over ranks is the
//! gradient of the global loss, the one a single process computes.

use anyhow::{bail, ensure, Context, Result};
use std::ffi::{c_char, c_int, CString};
use std::ptr::NonNull;
use std::time::Duration;
use tch::{Kind, Tensor};

mod ffi {
    use std::ffi::{c_char, c_int};
    use torch_sys::C_tensor;

    #[repr(C)]
    pub struct Pg {
        _private: [u8; 0],
    }

    extern "C" {
        pub fn lacuna_c10d_gloo(
            host: *const c_char,
            port: u16,
            rank: c_int,
            world: c_int,
            timeout_ms: i64,
            iface: *const c_char,
            err: *mut *mut c_char,
        ) -> *mut Pg;
        pub fn lacuna_c10d_all_reduce_sum(
            pg: *mut Pg,
            t: *const *const C_tensor,
            n: c_int,
            err: *mut *mut c_char,
        ) -> c_int;
        pub fn lacuna_c10d_broadcast(
            pg: *mut Pg,
            t: *const *const C_tensor,
            n: c_int,
            root: c_int,
            err: *mut *mut c_char,
        ) -> c_int;
        pub fn lacuna_c10d_barrier(pg: *mut Pg, err: *mut *mut c_char) -> c_int;
        pub fn lacuna_c10d_free(pg: *mut Pg);
        pub fn lacuna_c10d_free_error(err: *mut c_char);
    }
}

/// How a rank finds its group: the master's address (rank 0 serves the rendezvous store
/// there), its own rank, the group's size, and how long any collective may wait.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendezvous {
    pub host: String,
    pub port: u16,
    pub rank: usize,
    pub world: usize,
    /// Rank on this machine (`LOCAL_RANK`): picks the CUDA device.
    pub local_rank: usize,
    /// Longest wait for a peer in the rendezvous or any collective.
    pub timeout: Duration,
    /// Network interface Gloo binds (`GLOO_SOCKET_IFNAME`), when set.
    pub iface: Option<String>,
}

/// Group settings given on the command line (each overrides its environment variable).
#[derive(Clone, Debug, Default)]
pub struct GroupFlags {
    pub world: Option<usize>,
    pub rank: Option<usize>,
    /// `HOST:PORT`.
    pub master: Option<String>,
    pub timeout: Option<Duration>,
}

/// Default wait for a peer: long enough for rank 0 to score and checkpoint between steps.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

impl Rendezvous {
    /// The rank's rendezvous from `flags`, else the launcher's variables (`RANK`, `WORLD_SIZE`,
    /// `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`, as torchrun sets them; SLURM's `SLURM_PROCID`,
    /// `SLURM_NTASKS`, `SLURM_LOCALID` when those are absent). `None` for a single process
    /// (no world size, or a world of one).
    pub fn resolve(flags: &GroupFlags, env: impl Fn(&str) -> Option<String>) -> Result<Option<Rendezvous>> {
        let number = |names: &[&str]| -> Result<Option<usize>> {
            for name in names {
                if let Some(v) = env(name).filter(|v| !v.trim().is_empty()) {
                    return v
                        .trim()
                        .parse()
                        .map(Some)
                        .with_context(|| format!("{name}={v}: not a non-negative integer"));
                }
            }
            Ok(None)
        };
        let world = match flags.world {
            Some(w) => Some(w),
            None => number(&["WORLD_SIZE", "SLURM_NTASKS"])?,
        };
        let Some(world) = world.filter(|&w| w > 1) else {
            ensure!(world != Some(0), "the world size must be at least 1");
            return Ok(None);
        };
        let rank = match flags.rank {
            Some(r) => r,
            None => number(&["RANK", "SLURM_PROCID"])?
                .context("a group of several processes needs each one's rank (--rank or RANK)")?,
        };
        ensure!(rank < world, "rank {rank} is outside a world of {world} (ranks 0..{})", world - 1);
        let local_rank = number(&["LOCAL_RANK", "SLURM_LOCALID"])?.unwrap_or(0);
        let (host, port) = match &flags.master {
            Some(m) => {
                let (h, p) = m.rsplit_once(':').with_context(|| format!("--master {m}: expected HOST:PORT"))?;
                (h.to_string(), p.parse().with_context(|| format!("--master {m}: bad port"))?)
            }
            None => {
                let host = env("MASTER_ADDR").filter(|h| !h.trim().is_empty()).context(
                    "a group of several processes needs the master's address (--master HOST:PORT or MASTER_ADDR)",
                )?;
                let port = match env("MASTER_PORT") {
                    Some(p) => p.trim().parse().with_context(|| format!("MASTER_PORT={p}: not a port number"))?,
                    None => 29500,
                };
                (host, port)
            }
        };
        ensure!(!host.is_empty(), "the master's host name is empty");
        let timeout = flags.timeout.unwrap_or(DEFAULT_TIMEOUT);
        ensure!(!timeout.is_zero(), "the group timeout must be positive");
        let iface = env("GLOO_SOCKET_IFNAME").filter(|s| !s.is_empty());
        Ok(Some(Rendezvous { host, port, rank, world, local_rank, timeout, iface }))
    }
}

/// One rank's membership of a Gloo process group.
pub struct ProcessGroup {
    raw: NonNull<ffi::Pg>,
    rank: usize,
    world: usize,
}

// The group is used from one thread at a time (`&mut`-free calls are serialised by the
// training loop); c10d's objects may move between threads.
unsafe impl Send for ProcessGroup {}

/// Takes the shim's error message, if any, and frees it.
fn take_error(err: *mut c_char) -> String {
    crate::ffi::take_message(err, ffi::lacuna_c10d_free_error).unwrap_or_else(|| "unknown error".into())
}

impl ProcessGroup {
    /// Joins the group: waits (up to the timeout) for all `world` ranks at the master.
    pub fn join(r: &Rendezvous) -> Result<ProcessGroup> {
        let host = CString::new(r.host.as_str()).context("host name contains NUL")?;
        let iface = CString::new(r.iface.clone().unwrap_or_default()).context("interface name contains NUL")?;
        let mut err = std::ptr::null_mut();
        // SAFETY: valid C strings for the call's duration; the shim catches every exception.
        let raw = unsafe {
            ffi::lacuna_c10d_gloo(
                host.as_ptr(),
                r.port,
                r.rank as c_int,
                r.world as c_int,
                r.timeout.as_millis() as i64,
                iface.as_ptr(),
                &mut err,
            )
        };
        match NonNull::new(raw) {
            Some(raw) => Ok(ProcessGroup { raw, rank: r.rank, world: r.world }),
            None => bail!(
                "rank {} of {}: could not join the group at {}:{} within {:?}: {}",
                r.rank,
                r.world,
                r.host,
                r.port,
                r.timeout,
                take_error(err)
            ),
        }
    }

    fn check(&self, what: &str, rc: c_int, err: *mut c_char) -> Result<()> {
        if rc == 0 {
            return Ok(());
        }
        bail!(
            "rank {} of {}: {what} failed ({}); a peer has probably stopped: see its output",
            self.rank,
            self.world,
            take_error(err)
        )
    }

    /// Sums each (contiguous) tensor over the group, in place.
    pub fn all_reduce_sum(&self, tensors: &[&Tensor]) -> Result<()> {
        let ptrs: Vec<_> = tensors.iter().map(|t| t.as_ptr()).collect();
        let mut err = std::ptr::null_mut();
        // SAFETY: the pointers are live tch tensors for the call's duration.
        let rc =
            unsafe { ffi::lacuna_c10d_all_reduce_sum(self.raw.as_ptr(), ptrs.as_ptr(), ptrs.len() as c_int, &mut err) };
        self.check("all-reduce", rc, err)
    }

    /// Gives each (contiguous) tensor rank `root`'s values, in place.
    pub fn broadcast(&self, tensors: &[&Tensor], root: usize) -> Result<()> {
        let ptrs: Vec<_> = tensors.iter().map(|t| t.as_ptr()).collect();
        let mut err = std::ptr::null_mut();
        // SAFETY: as in `all_reduce_sum`.
        let rc = unsafe {
            ffi::lacuna_c10d_broadcast(self.raw.as_ptr(), ptrs.as_ptr(), ptrs.len() as c_int, root as c_int, &mut err)
        };
        self.check("broadcast", rc, err)
    }

    pub fn barrier(&self) -> Result<()> {
        let mut err = std::ptr::null_mut();
        // SAFETY: a live group.
        let rc = unsafe { ffi::lacuna_c10d_barrier(self.raw.as_ptr(), &mut err) };
        self.check("barrier", rc, err)
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: created by `lacuna_c10d_gloo`, freed once.
        unsafe { ffi::lacuna_c10d_free(self.raw.as_ptr()) }
    }
}

/// Largest gradient bucket sent in one all-reduce (PyTorch DDP's default is 25 MiB).
const BUCKET_BYTES: i64 = 25 << 20;

/// Training's view of its process: alone, or one rank of a group.
#[derive(Default)]
pub struct Group {
    pg: Option<ProcessGroup>,
    local_rank: usize,
}

impl Group {
    /// A single process: every collective is the identity.
    pub fn single() -> Group {
        Group::default()
    }

    /// Joins the group `r` describes (or stays single for `None`).
    pub fn join(r: Option<&Rendezvous>) -> Result<Group> {
        match r {
            None => Ok(Group::single()),
            Some(r) => Ok(Group { pg: Some(ProcessGroup::join(r)?), local_rank: r.local_rank }),
        }
    }

    pub fn rank(&self) -> usize {
        self.pg.as_ref().map_or(0, |p| p.rank)
    }

    pub fn world(&self) -> usize {
        self.pg.as_ref().map_or(1, |p| p.world)
    }

    /// Rank 0: the only one that writes the run directory, metrics and checkpoints.
    pub fn is_leader(&self) -> bool {
        self.rank() == 0
    }

    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// The part `[start, end)` of a global batch of `n` samples this rank computes.
    pub fn shard(&self, n: usize) -> (usize, usize) {
        let (r, w) = (self.rank(), self.world());
        (n * r / w, n * (r + 1) / w)
    }

    /// Gives every rank rank 0's values of `tensors` (weights at the start of a run).
    pub fn sync_from_leader(&self, tensors: &[Tensor]) -> Result<()> {
        let Some(pg) = &self.pg else { return Ok(()) };
        tch::no_grad(|| -> Result<()> {
            for bucket in buckets(tensors) {
                let flat = Tensor::cat(&bucket.iter().map(|t| t.detach().flatten(0, -1)).collect::<Vec<_>>(), 0);
                pg.broadcast(&[&flat], 0)?;
                copy_back(&flat, &bucket);
            }
            Ok(())
        })
    }

    /// Sums the gradients of `params` over the group (in DDP's flattened buckets) and the
    /// per-rank `scalars` with them; returns the summed scalars.
    pub fn sum_gradients(&self, params: &[(String, Tensor)], scalars: &[f64]) -> Result<Vec<f64>> {
        let Some(pg) = &self.pg else { return Ok(scalars.to_vec()) };
        tch::no_grad(|| -> Result<Vec<f64>> {
            let grads: Vec<Tensor> = params.iter().map(|(_, p)| p.grad()).filter(Tensor::defined).collect();
            for bucket in buckets(&grads) {
                let flat = Tensor::cat(&bucket.iter().map(|g| g.flatten(0, -1)).collect::<Vec<_>>(), 0);
                pg.all_reduce_sum(&[&flat])?;
                copy_back(&flat, &bucket);
            }
            let s = Tensor::from_slice(scalars).to_kind(Kind::Double);
            pg.all_reduce_sum(&[&s])?;
            Ok(Vec::<f64>::try_from(&s)?)
        })
    }

    /// Rank 0's `values` on every rank (the loop's stop decision and learning rate).
    pub fn leader_says(&self, values: &[f64]) -> Result<Vec<f64>> {
        let Some(pg) = &self.pg else { return Ok(values.to_vec()) };
        let t = Tensor::from_slice(values).to_kind(Kind::Double);
        pg.broadcast(&[&t], 0)?;
        Ok(Vec::<f64>::try_from(&t)?)
    }

    pub fn barrier(&self) -> Result<()> {
        self.pg.as_ref().map_or(Ok(()), ProcessGroup::barrier)
    }
}

/// Consecutive runs of `tensors` of at most [`BUCKET_BYTES`] each (a larger tensor alone).
fn buckets(tensors: &[Tensor]) -> Vec<Vec<Tensor>> {
    let mut out: Vec<Vec<Tensor>> = Vec::new();
    let mut bytes = 0;
    for t in tensors {
        let b = t.numel() as i64 * t.kind().elt_size_in_bytes() as i64;
        let fits = out
            .last()
            .is_some_and(|l| bytes + b <= BUCKET_BYTES && l[0].kind() == t.kind() && l[0].device() == t.device());
        if !fits {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += b;
        out.last_mut().expect("a bucket was pushed").push(t.shallow_clone());
    }
    out
}

/// Copies the flattened `flat` back into the tensors it was built from.
fn copy_back(flat: &Tensor, parts: &[Tensor]) {
    let mut offset = 0;
    for p in parts {
        let n = p.numel() as i64;
        let mut dst = p.shallow_clone();
        dst.copy_(&flat.narrow(0, offset, n).view_as(p));
        offset += n;
    }
}

#[cfg(test)]
mod tests;
