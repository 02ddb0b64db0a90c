//! `lacuna plot`: the first fields of a data file, with completions and their errors, as a PNG.
//!
//! One row per (field, channel); columns: truth (if the file has it), observed (grey where
//! missing), then for each prediction file its `mean`, then each prediction's absolute error
//! (where truth exists). Colour limits are shared along a row so panels compare directly.

use crate::data::field::FieldStream;
use crate::data::npy::Npz;
use crate::plot::{self, Panel, Scale};
use anyhow::{ensure, Context, Result};
use std::path::{Path, PathBuf};

/// The largest figure written, in pixels (a 16k × 16k image is already 1 GiB of RGBA).
const MAX_PIXELS: usize = 1 << 28;

/// Reads the first `count` entries of `name` from `path`, if it has that array, which must
/// hold exactly `total` entries (the data file's fields).
fn head(path: &Path, name: &str, count: usize, total: usize) -> Result<Option<Vec<f32>>> {
    let mut npz = Npz::open(path)?;
    let Some(mut r) = npz.stream(name)? else { return Ok(None) };
    let have: usize = r.shape.iter().product();
    ensure!(
        have == total,
        "{}: array '{name}' has shape {:?} ({have} entries), but the data file's fields hold {total}; is it an output for another file?",
        path.display(),
        r.shape
    );
    Ok(Some(r.read_f32(count).with_context(|| format!("{}: array '{name}'", path.display()))?))
}

pub fn plot_files(data: &Path, preds: &[PathBuf], out: &Path, n: usize, zoom: Option<usize>) -> Result<()> {
    let png = out.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("png"));
    ensure!(png, "{}: figures are written as PNG; give an --out ending in .png", out.display());
    ensure!(zoom.is_none_or(|z| z >= 1), "--zoom must be at least 1 (pixels per grid cell)");
    let inputs: Vec<&Path> = std::iter::once(data).chain(preds.iter().map(PathBuf::as_path)).collect();
    crate::atomic::refuse_overwriting_inputs(&inputs, &[out])?;
    let mut stream = FieldStream::open(data)?;
    let n = n.clamp(1, stream.n);
    let all = stream.n * stream.dims.len();
    let set = stream.next_chunk(n)?.context("no fields")?;
    let (dims, len) = (set.dims, set.dims.len());
    let truth = head(data, "truth", n * len, all)?;
    let mut means = Vec::new();
    for p in preds {
        let m = head(p, "mean", n * len, all)?
            .with_context(|| format!("{}: no 'mean' array (is it an imputation output?)", p.display()))?;
        means.push(m);
    }
    let sites = dims.sites();
    let mut rows = Vec::new();
    for i in 0..n {
        // One row per plane: every channel, and every frame of a trajectory.
        for c in 0..dims.planes() {
            let at = |v: &[f32]| v[i * len + c * sites..i * len + (c + 1) * sites].to_vec();
            let shown = set.mask[i * len + c * sites..i * len + (c + 1) * sites].to_vec();
            let observed = at(&set.values);
            let reference = truth.as_ref().map(|t| at(t)).unwrap_or_else(|| observed.clone());
            let centre = plot::robust_centre(&reference);
            let lim = plot::robust_limit(&reference, centre);
            let field = |values: Vec<f32>, shown: Option<Vec<u8>>| Panel {
                h: dims.h,
                w: dims.w,
                values,
                shown,
                scale: Scale::Diverging { centre, lim },
            };
            let mut row = Vec::new();
            if let Some(t) = &truth {
                row.push(field(at(t), None));
            }
            row.push(field(observed, Some(shown)));
            for m in &means {
                row.push(field(at(m), None));
            }
            if let Some(t) = &truth {
                let errs: Vec<Vec<f32>> =
                    means.iter().map(|m| at(m).iter().zip(at(t)).map(|(a, b)| (a - b).abs()).collect()).collect();
                let emax = errs.iter().map(|e| plot::robust_limit(e, 0.0)).fold(1e-6f32, f32::max);
                for e in errs {
                    row.push(Panel { h: dims.h, w: dims.w, values: e, shown: None, scale: Scale::Sequential(emax) });
                }
            }
            rows.push(row);
        }
    }
    let zoom = zoom.unwrap_or((128 / dims.h.max(dims.w)).clamp(1, 8));
    let columns = rows.iter().map(Vec::len).max().unwrap_or(1);
    let pixels = crate::memory::product(&[rows.len(), columns, dims.h + 4, dims.w + 4, zoom, zoom]);
    ensure!(
        pixels <= MAX_PIXELS as u64,
        "--zoom {zoom} would make a figure of {:.1} gigapixels; lower --zoom or --n",
        pixels as f64 / 1e9
    );
    plot::write_png(out, &plot::grid(&rows, zoom, 4))
}
