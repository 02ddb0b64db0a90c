//! `lacuna plot`: the first fields of a data file, with completions and their errors, as a PNG.
//!
//! One row per (field, channel); columns: truth (if the file has it), observed (grey where
//! missing, tan on land), then for each prediction file its `mean`, its `std` when it has one,
//! and its absolute error (where truth exists). Each panel has a title and each row a colour bar
//! per scale with its limits; limits are shared along a row so panels compare directly.

use crate::data::field::FieldStream;
use crate::data::meta::GridMeta;
use crate::data::npy::Npz;
use crate::panels::{ColourBar, MapAxes, Row, Titled};
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

/// A prediction file's label in titles: its file stem, without the bench's `pred-` prefix.
fn label(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    stem.strip_prefix("pred-").map(str::to_string).unwrap_or(stem)
}

/// `name (units)`, or `name` when the units are unknown.
fn with_units(name: &str, units: Option<&String>) -> String {
    units.map_or(name.to_string(), |u| format!("{name} ({u})"))
}

/// An axis label: its name, and its units in the short form of the CF names for lon/lat.
fn axis_label(name: &str, units: Option<&String>) -> String {
    let short = units.map(|u| match u.as_str() {
        "degrees_north" | "degree_north" | "degrees_N" => "°N".to_string(),
        "degrees_east" | "degree_east" | "degrees_E" => "°E".to_string(),
        other => other.to_string(),
    });
    with_units(name, short.as_ref())
}

/// A map view when the file has coordinates on both axes (as `data import` keeps them).
fn map_axes(meta: &GridMeta) -> Option<MapAxes> {
    let (y, x) = (&meta.axes[1], &meta.axes[2]);
    if y.indexed || x.indexed {
        return None;
    }
    let monotonic = |v: &[f64]| v.windows(2).all(|p| p[1] > p[0]) || v.windows(2).all(|p| p[1] < p[0]);
    if !monotonic(&x.values) || !monotonic(&y.values) {
        return None;
    }
    Some(MapAxes {
        x_label: axis_label(&x.name, x.attrs.get("units")),
        x: x.values.clone(),
        y_label: axis_label(&y.name, y.attrs.get("units")),
        y: y.values.clone(),
    })
}

/// Writes a PNG of the first `n` fields of `data`: per field and plane a row of titled panels
/// (truth, observed, each prediction's mean, its std when it has one, its absolute error where
/// the truth is known) with a colour bar per scale, values labelled with the variable's units.
/// Imported lon/lat grids are drawn as maps with land in a land colour.
pub fn plot_files(data: &Path, preds: &[PathBuf], out: &Path, n: usize, zoom: Option<usize>) -> Result<()> {
    let png = out.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("png"));
    ensure!(png, "{}: figures are written as PNG; give an --out ending in .png", out.display());
    ensure!(zoom.is_none_or(|z| z >= 1), "--zoom must be at least 1 (pixels per grid cell)");
    let inputs: Vec<&Path> = std::iter::once(data).chain(preds.iter().map(PathBuf::as_path)).collect();
    crate::atomic::refuse_overwriting_inputs(&inputs, &[out])?;
    let mut stream = FieldStream::open(data)?;
    let total_fields = stream.n;
    let n = n.clamp(1, stream.n);
    let all = stream.n * stream.dims.len();
    let set = stream.next_chunk(n)?.context("no fields")?;
    let (dims, len) = (set.dims, set.dims.len());
    let meta = GridMeta::load(&mut Npz::open(data)?, data, [total_fields, dims.h, dims.w], dims.c)?;
    let map = map_axes(&meta);
    let truth = head(data, "truth", n * len, all)?;
    let mut means = Vec::new();
    for p in preds {
        let m = head(p, "mean", n * len, all)?
            .with_context(|| format!("{}: no 'mean' array (is it an imputation output?)", p.display()))?;
        let std = head(p, "std", n * len, all)?;
        means.push((label(p), m, std));
    }
    let sites = dims.sites();
    let mut rows = Vec::new();
    for i in 0..n {
        // One row per plane: every channel, and every frame of a trajectory.
        for c in 0..dims.planes() {
            let var = &meta.variables[c % dims.c];
            let units = var.attrs.get("units");
            let frame = if dims.t > 1 { format!(" t{}", c / dims.c) } else { String::new() };
            let at = |v: &[f32]| v[i * len + c * sites..i * len + (c + 1) * sites].to_vec();
            let shown = set.mask[i * len + c * sites..i * len + (c + 1) * sites].to_vec();
            let land: Vec<u8> = (0..sites).map(|k| u8::from(!set.is_observable(i * len + c * sites + k))).collect();
            let land = land.contains(&1).then_some(land);
            let observed = at(&set.values);
            let reference = truth.as_ref().map(|t| at(t)).unwrap_or_else(|| {
                observed.iter().zip(&shown).map(|(&v, &m)| if m != 0 { v } else { f32::NAN }).collect()
            });
            let centre = plot::robust_centre(&reference);
            let lim = plot::robust_limit(&reference, centre);
            let values_scale = Scale::Diverging { centre, lim };
            let titled = |title: String, values: Vec<f32>, shown: Option<Vec<u8>>, scale: Scale| Titled {
                title,
                panel: Panel { h: dims.h, w: dims.w, values, shown, scale },
                land: land.clone(),
            };
            // The first panel names the field (and frame) the row shows.
            let what = if var.name == "values" { "field" } else { var.name.as_str() };
            let row_name = format!("{what} {i}{frame}");
            let mut panels = Vec::new();
            let mut bars = vec![ColourBar { label: with_units(&var.name, units), scale: values_scale }];
            if let Some(t) = &truth {
                panels.push(titled(format!("{row_name}: truth"), at(t), None, values_scale));
            }
            let hint = if land.is_some() { " (grey: gaps, tan: land)" } else { " (grey: gaps)" };
            let prefix = if truth.is_some() { String::new() } else { format!("{row_name}: ") };
            panels.push(titled(format!("{prefix}observed{hint}"), observed, Some(shown), values_scale));
            for (name, m, _) in &means {
                panels.push(titled(name.clone(), at(m), None, values_scale));
            }
            let stds: Vec<(String, Vec<f32>)> =
                means.iter().filter_map(|(name, _, s)| s.as_ref().map(|s| (name.clone(), at(s)))).collect();
            if !stds.is_empty() {
                let smax = stds.iter().map(|(_, s)| plot::robust_limit(s, 0.0)).fold(1e-6f32, f32::max);
                for (name, s) in stds {
                    panels.push(titled(format!("{name} std"), s, None, Scale::Sequential(smax)));
                }
                bars.push(ColourBar { label: with_units("std", units), scale: Scale::Sequential(smax) });
            }
            if let Some(t) = &truth {
                let errs: Vec<Vec<f32>> = means
                    .iter()
                    .map(|(_, m, _)| at(m).iter().zip(at(t)).map(|(a, b)| (a - b).abs()).collect())
                    .collect();
                let emax = errs.iter().map(|e| plot::robust_limit(e, 0.0)).fold(1e-6f32, f32::max);
                for ((name, _, _), e) in means.iter().zip(errs) {
                    panels.push(titled(format!("|error| {name}"), e, None, Scale::Sequential(emax)));
                }
                if !means.is_empty() {
                    bars.push(ColourBar { label: with_units("|error|", units), scale: Scale::Sequential(emax) });
                }
            }
            rows.push(Row { panels, bars });
        }
    }
    // Panels about 160 pixels on their long side (maps 240: their axes need the room).
    let side = if map.is_some() { 240 } else { 160 };
    let zoom = zoom.unwrap_or((side / dims.h.max(dims.w)).clamp(1, 8));
    let columns = rows.iter().map(|r| r.panels.len()).max().unwrap_or(1);
    let pixels = crate::memory::product(&[rows.len(), columns + 1, dims.h + 12, dims.w + 24, zoom, zoom]);
    ensure!(
        pixels <= MAX_PIXELS as u64,
        "--zoom {zoom} would make a figure of {:.1} gigapixels; lower --zoom or --n",
        pixels as f64 / 1e9
    );
    plot::write_png(out, &crate::panels::render(&rows, zoom, map.as_ref())?)
}
