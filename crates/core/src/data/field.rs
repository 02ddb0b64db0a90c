//! Sets of partially observed fields: the `.npz` contract.
//!
//! Snapshots (one field per sample):
//!
//! - `values`: float `[N, C, H, W]`; entries outside the mask are ignored (0 or NaN).
//! - `mask`: bool/uint8 `[N, 1, H, W]` or `[N, C, H, W]`, 1 = observed; absent → `isfinite(values)`.
//! - `truth` (optional): float `[N, C, H, W]`, complete fields, read only by evaluation.
//! - `static_mask` (optional): bool/uint8 `[H, W]`, `[1|C, H, W]` or `[1, 1|C, H, W]` (one for
//!   every field), or `[N, 1|C, H, W]` (one per field: tiles of a coast, a swath disc that
//!   moves); 1 = the site can ever be observed, 0 = never (land, outside a swath disc).
//!   Never-observable sites are never observed (a `mask` entry there is dropped), never
//!   queried, never scored, and imputation writes NaN there.
//!
//! Trajectories (T frames per sample, denoised jointly by the space-time model):
//!
//! - `values` and `truth`: float `[N, T, C, H, W]`;
//! - `mask`: `[N, T|1, C|1, H, W]` (T = 1: the same sensors in every frame);
//! - `static_mask`: the spatial forms above, the same in every frame.
//!
//! In memory a sample is `[T, C, H, W]` (T = 1 for snapshots): the mask is always expanded to
//! it and unobserved values are 0. Code that works per *plane* (an H×W slice) sees T·C planes.

use super::npy::{Array, ArrayReader, Dtype, Npz};
use anyhow::{bail, ensure, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Shape of one sample: frames (1 for a snapshot), channels, height, width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Dims {
    /// Frames of a trajectory; 1 for snapshots (and in runs saved before trajectories existed).
    #[serde(default = "one_frame")]
    pub t: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

fn one_frame() -> usize {
    1
}

impl Dims {
    pub fn len(&self) -> usize {
        self.t * self.c * self.h * self.w
    }

    /// H×W planes of a sample: T·C, frame-major.
    pub fn planes(&self) -> usize {
        self.t * self.c
    }

    /// The dims of one frame.
    pub fn frame(&self) -> Dims {
        Dims { t: 1, ..*self }
    }

    /// The shape of `n` samples as stored: `[n, C, H, W]`, or `[n, T, C, H, W]` for trajectories.
    pub fn shape(&self, n: usize) -> Vec<usize> {
        if self.t > 1 {
            vec![n, self.t, self.c, self.h, self.w]
        } else {
            vec![n, self.c, self.h, self.w]
        }
    }

    /// The shape as words for messages: `C×H×W` or `T frames of C×H×W`.
    pub fn describe(&self) -> String {
        let frame = format!("{}×{}×{}", self.c, self.h, self.w);
        if self.t > 1 {
            format!("{} frames of {frame}", self.t)
        } else {
            frame
        }
    }

    pub fn sites(&self) -> usize {
        self.h * self.w
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether a command may read the `truth` array. Training and imputation use `Never`, and
/// the loader then does not even open that archive member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truth {
    Never,
    IfPresent,
}

/// N partially observed fields of the same dims.
#[derive(Clone, Debug)]
pub struct FieldSet {
    pub n: usize,
    pub dims: Dims,
    /// `[N, C, H, W]`, 0 where unobserved.
    pub values: Vec<f32>,
    /// `[N, C, H, W]`, 1 = observed.
    pub mask: Vec<u8>,
    pub truth: Option<Vec<f32>>,
    /// 1 = can be observed; `None` = every site can. Either `[C, H, W]`, shared by every
    /// field, or `[N, C, H, W]`, one per field: flat entry `k` of the set reads
    /// `ok[k % ok.len()]` in both cases.
    pub observable: Option<Vec<u8>>,
}

impl FieldSet {
    /// Builds a set, checking the contract. `values` may hold anything outside `mask`.
    pub fn new(n: usize, dims: Dims, mut values: Vec<f32>, mask: Vec<u8>, truth: Option<Vec<f32>>) -> Result<FieldSet> {
        let len = n * dims.len();
        ensure!(values.len() == len && mask.len() == len, "values/mask length does not match [N, C, H, W]");
        for (v, &m) in values.iter_mut().zip(&mask) {
            if m == 0 {
                *v = 0.0;
            }
        }
        Ok(FieldSet { n, dims, values, mask, truth, observable: None })
    }

    /// Declares the never-observable sites (`ok` `[C, H, W]` for every field or `[N, C, H, W]`
    /// per field, 1 = observable); observations at the others are dropped. Returns how many
    /// were dropped.
    pub fn set_observable(&mut self, ok: Vec<u8>) -> Result<usize> {
        let len = self.dims.len();
        ensure!(
            ok.len() == len || ok.len() == self.n * len,
            "static mask has {} entries, expected {len} (one field) or {} (one per field)",
            ok.len(),
            self.n * len
        );
        ensure!(ok.iter().all(|&o| o <= 1), "static mask must be 0/1");
        let frame = self.dims.frame().len();
        ensure!(
            ok.chunks_exact(len).all(|f| f.chunks_exact(frame).all(|p| p == &f[..frame])),
            "a static mask is the same in every frame of a trajectory"
        );
        if let Some(i) = (0..ok.len() / len).find(|&i| !ok[i * len..(i + 1) * len].contains(&1)) {
            bail!("the static mask makes every site of field {i} never-observable");
        }
        let mut dropped = 0;
        for (k, m) in self.mask.iter_mut().enumerate() {
            if *m != 0 && ok[k % ok.len()] == 0 {
                *m = 0;
                self.values[k] = 0.0;
                dropped += 1;
            }
        }
        self.observable = Some(ok);
        Ok(dropped)
    }

    /// Whether flat entry `k` (of `[N, C, H, W]`) can be observed.
    pub fn is_observable(&self, k: usize) -> bool {
        self.observable.as_ref().is_none_or(|ok| ok[k % ok.len()] != 0)
    }

    /// Whether the set has one static mask per field rather than one for all.
    pub fn observable_per_field(&self) -> bool {
        self.observable.as_ref().is_some_and(|ok| ok.len() != self.dims.len())
    }

    /// Loads and validates an `.npz` file (see the module doc for the contract).
    pub fn load(path: &Path, truth: Truth) -> Result<FieldSet> {
        let mut stream = FieldStream::open(path)?;
        let n = stream.n;
        let mut set = stream.next_chunk(n)?.context("empty field set")?;
        if truth == Truth::IfPresent {
            let file = path.display().to_string();
            let mut npz = Npz::open(path)?;
            if let Some(t) = npz.get("truth")? {
                let len = set.dims.len();
                ensure!(
                    t.dtype.is_float(),
                    "{file}: array 'truth' has dtype {}, expected a float type",
                    t.dtype.name()
                );
                ensure!(
                    t.numel() == n * len,
                    "{file}: array 'truth' has shape {:?}, expected {:?}",
                    t.shape,
                    set.dims.shape(n)
                );
                let t = t.to_f32();
                // NaN truth is allowed where nothing was observed (held-out files: unknown there).
                if let Some(i) = (0..t.len()).find(|&i| !t[i].is_finite() && set.mask[i] != 0) {
                    bail!("{file}: array 'truth' has a non-finite entry (sample {}, flat index {})", i / len, i % len);
                }
                set.truth = Some(t);
            }
        }
        Ok(set)
    }

    /// Writes `values` (NaN outside the mask), `mask` and, if present, `truth` and `static_mask`.
    pub fn save(&self, path: &Path) -> Result<()> {
        super::npy::write_npz(path, &self.arrays())
    }

    /// The arrays [`FieldSet::save`] writes, for callers that add their own.
    pub fn arrays(&self) -> BTreeMap<String, Array> {
        let shape = self.dims.shape(self.n);
        let values: Vec<f32> =
            self.values.iter().zip(&self.mask).map(|(&v, &m)| if m != 0 { v } else { f32::NAN }).collect();
        let mut arrays = BTreeMap::new();
        arrays.insert("values".to_string(), Array::from_f32(shape.clone(), &values));
        arrays.insert("mask".to_string(), Array::from_bool(shape.clone(), &self.mask));
        if let Some(t) = &self.truth {
            arrays.insert("truth".to_string(), Array::from_f32(shape, t));
        }
        if let Some(ok) = &self.observable {
            // Stored spatially: frame 0 of each field (the same in every frame).
            let (len, frame) = (self.dims.len(), self.dims.frame().len());
            let n = ok.len() / len;
            let spatial: Vec<u8> = ok.chunks_exact(len).flat_map(|f| f[..frame].iter().copied()).collect();
            arrays.insert(
                "static_mask".to_string(),
                Array::from_bool(vec![n, self.dims.c, self.dims.h, self.dims.w], &spatial),
            );
        }
        arrays
    }

    /// The fields `idx` as a new set.
    pub fn select(&self, idx: &[usize]) -> FieldSet {
        let len = self.dims.len();
        let gather =
            |v: &[f32]| idx.iter().flat_map(|&i| v[i * len..(i + 1) * len].iter().copied()).collect::<Vec<_>>();
        FieldSet {
            n: idx.len(),
            dims: self.dims,
            values: gather(&self.values),
            mask: idx.iter().flat_map(|&i| self.mask[i * len..(i + 1) * len].iter().copied()).collect(),
            truth: self.truth.as_ref().map(|t| gather(t)),
            observable: match &self.observable {
                Some(ok) if self.observable_per_field() => {
                    Some(idx.iter().flat_map(|&i| ok[i * len..(i + 1) * len].iter().copied()).collect())
                }
                ok => ok.clone(),
            },
        }
    }

    /// Fraction of entries observed.
    pub fn observed_fraction(&self) -> f64 {
        self.mask.iter().filter(|&&m| m != 0).count() as f64 / self.mask.len().max(1) as f64
    }
}

/// Reads a field file a chunk of fields at a time, validating each chunk, so files larger than
/// memory can be imputed. `truth` is never opened.
pub struct FieldStream {
    file: String,
    pub n: usize,
    pub dims: Dims,
    values: ArrayReader,
    /// The mask reader and its stored layout.
    mask: Option<(ArrayReader, MaskLayout)>,
    /// `static_mask` broadcast to `[T, C, H, W]` (shared) or `[N, T, C, H, W]` (per field).
    pub observable: Option<Vec<u8>>,
    next: usize,
}

/// Refuses a path that is missing or a directory before any reader sees it, with the reason.
pub fn ensure_readable_file(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => bail!("{}: is a directory, not a data file", path.display()),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!("{}: no such file", path.display()),
        Err(e) => bail!("{}: cannot read ({e})", path.display()),
    }
}

impl FieldStream {
    pub fn open(path: &Path) -> Result<FieldStream> {
        let file = path.display().to_string();
        let mut npz = Npz::open(path)?;
        let values = npz
            .stream("values")?
            .with_context(|| format!("{file}: no 'values' array (found: {})", npz.names().join(", ")))?;
        ensure!(
            values.dtype.is_float(),
            "{file}: array 'values' has dtype {}, expected a float type",
            values.dtype.name()
        );
        let (n, dims) = match values.shape[..] {
            [n, t, c, h, w] => (n, Dims { t, c, h, w }),
            [n, c, h, w] => (n, Dims { t: 1, c, h, w }),
            [n, h, w] => (n, Dims { t: 1, c: 1, h, w }),
            _ => bail!(
                "{file}: array 'values' has shape {:?}, expected [N, C, H, W] (or [N, H, W] for one channel, [N, T, C, H, W] for trajectories)",
                values.shape
            ),
        };
        ensure!(n > 0 && !dims.is_empty(), "{file}: array 'values' is empty (shape {:?})", values.shape);
        let mask = match npz.stream("mask")? {
            None => None,
            Some(m) => {
                ensure!(
                    matches!(m.dtype, Dtype::Bool | Dtype::U8 | Dtype::I8 | Dtype::I32 | Dtype::I64)
                        || m.dtype.is_float(),
                    "{file}: array 'mask' has dtype {}, expected bool or uint8",
                    m.dtype.name()
                );
                let fits = |mn: usize, mh: usize, mw: usize| (mn, mh, mw) == (n, dims.h, dims.w);
                let either = |k: usize, full: usize| k == 1 || k == full;
                let layout = match m.shape[..] {
                    [mn, mt, mc, mh, mw]
                        if dims.t > 1 && fits(mn, mh, mw) && either(mt, dims.t) && either(mc, dims.c) =>
                    {
                        MaskLayout { frames: mt, channels: mc }
                    }
                    [mn, mc, mh, mw] if dims.t == 1 && fits(mn, mh, mw) && either(mc, dims.c) => {
                        MaskLayout { frames: 1, channels: mc }
                    }
                    [mn, mh, mw] if dims.t == 1 && fits(mn, mh, mw) => MaskLayout { frames: 1, channels: 1 },
                    _ if dims.t > 1 => bail!(
                        "{file}: array 'mask' has shape {:?}, but 'values' needs [{n}, 1|{}, 1|{}, {}, {}]",
                        m.shape,
                        dims.t,
                        dims.c,
                        dims.h,
                        dims.w
                    ),
                    _ => bail!(
                        "{file}: array 'mask' has shape {:?}, but 'values' needs [{n}, 1, {}, {}] or [{n}, {}, {}, {}]",
                        m.shape,
                        dims.h,
                        dims.w,
                        dims.c,
                        dims.h,
                        dims.w
                    ),
                };
                Some((m, layout))
            }
        };
        let observable = read_static_mask(&mut npz, &file, n, dims)?;
        Ok(FieldStream { file, n, dims, values, mask, observable, next: 0 })
    }

    /// The next `k` fields (fewer at the end), validated; `None` when all were read.
    pub fn next_chunk(&mut self, k: usize) -> Result<Option<FieldSet>> {
        if self.next >= self.n {
            return Ok(None);
        }
        let (file, dims, first) = (&self.file, self.dims, self.next);
        let k = k.max(1).min(self.n - first);
        let len = dims.len();
        // Values, mask and a working copy of each: refuse before reserving them.
        crate::memory::check_fits(
            &format!("{file}: reading {k} fields of {}", dims.describe()),
            crate::memory::product(&[k, len, 10]),
            "the file is larger than this machine's memory",
        )?;
        let raw = self.values.read_f32(k * len).with_context(|| format!("{file}: array 'values'"))?;
        let mask = match &mut self.mask {
            None => raw.iter().map(|v| u8::from(v.is_finite())).collect(),
            Some((reader, layout)) => {
                let planes = layout.frames * layout.channels;
                let m = reader.read_f32(k * planes * dims.sites()).with_context(|| format!("{file}: array 'mask'"))?;
                if let Some(i) = m.iter().position(|&v| v != 0.0 && v != 1.0) {
                    bail!(
                        "{file}: array 'mask' holds {} at sample {}; a mask must be 0/1 (or bool)",
                        m[i],
                        first + i / (planes * dims.sites())
                    );
                }
                broadcast_mask(&m, k, dims, *layout)
            }
        };
        for (i, (v, &m)) in raw.iter().zip(&mask).enumerate() {
            if m != 0 && !v.is_finite() {
                let bad = raw.iter().zip(&mask).filter(|(v, &m)| m != 0 && !v.is_finite()).count();
                bail!(
                    "{file}: array 'values' has {bad} non-finite entries inside the mask (first: sample {}, flat index {}); mark them unobserved in 'mask' or fix them",
                    first + i / len,
                    i % len
                );
            }
        }
        let empty: Vec<usize> = (0..k).filter(|&i| mask[i * len..(i + 1) * len].iter().all(|&m| m == 0)).collect();
        if let Some(&i) = empty.first() {
            bail!(
                "{file}: array 'mask': sample {} observes nothing ({} such samples among fields {}..{}); there is nothing to learn from or condition on, drop those samples",
                first + i,
                empty.len(),
                first,
                first + k
            );
        }
        self.next += k;
        let mut set = FieldSet::new(k, dims, raw, mask, None)?;
        if let Some(ok) = &self.observable {
            let ok = if ok.len() == len { ok.clone() } else { ok[first * len..(first + k) * len].to_vec() };
            set.set_observable(ok).with_context(|| format!("{file}: array 'static_mask'"))?;
        }
        Ok(Some(set))
    }
}

/// The optional `static_mask` of an archive of `n` fields of `dims`, broadcast to `[T, C, H, W]`
/// (one for every field) or `[n, T, C, H, W]` (one per field), 1 = observable, validated (see
/// the module doc).
pub fn read_static_mask(npz: &mut Npz, file: &str, n: usize, dims: Dims) -> Result<Option<Vec<u8>>> {
    let Some(a) = npz.get("static_mask")? else { return Ok(None) };
    let hw = |h: usize, w: usize| (h, w) == (dims.h, dims.w);
    // (fields, channel planes) of the stored array.
    let layout = match a.shape[..] {
        [h, w] | [1, h, w] | [1, 1, h, w] if hw(h, w) => Some((1, 1)),
        [c, h, w] | [1, c, h, w] if c == dims.c && hw(h, w) => Some((1, c)),
        [m, c, h, w] if m == n && (c == 1 || c == dims.c) && hw(h, w) => Some((n, c)),
        _ => None,
    };
    let Some((fields, planes)) = layout else {
        bail!(
            "{file}: array 'static_mask' has shape {:?}, expected [{h}, {w}], [1|{c}, {h}, {w}] or [{n}, 1|{c}, {h}, {w}]",
            a.shape,
            h = dims.h,
            w = dims.w,
            c = dims.c
        )
    };
    let v = a.to_f32();
    ensure!(v.iter().all(|&x| x == 0.0 || x == 1.0), "{file}: array 'static_mask' must be 0/1 (or bool)");
    let ok = broadcast_mask(&v, fields, dims, MaskLayout { frames: 1, channels: planes });
    let len = dims.len();
    if let Some(i) = (0..fields).find(|&i| !ok[i * len..(i + 1) * len].contains(&1)) {
        let which = if fields == 1 { String::new() } else { format!(" of field {i}") };
        bail!("{file}: array 'static_mask' marks every site{which} never-observable");
    }
    Ok(Some(ok))
}

/// How a stored mask spans a sample: `frames` ∈ {1, T}, `channels` ∈ {1, C}.
#[derive(Clone, Copy, Debug)]
struct MaskLayout {
    frames: usize,
    channels: usize,
}

/// Broadcasts a `[k, frames, channels, H, W]` 0/1 mask to `[k, T, C, H, W]` bytes.
fn broadcast_mask(m: &[f32], k: usize, dims: Dims, layout: MaskLayout) -> Vec<u8> {
    let sites = dims.sites();
    let (lf, lc) = (layout.frames, layout.channels);
    let mut out = vec![0u8; k * dims.len()];
    for s in 0..k {
        for t in 0..dims.t {
            for c in 0..dims.c {
                let src = ((s * lf + t % lf) * lc + c % lc) * sites;
                let dst = ((s * dims.t + t) * dims.c + c) * sites;
                for j in 0..sites {
                    out[dst + j] = m[src + j] as u8;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
