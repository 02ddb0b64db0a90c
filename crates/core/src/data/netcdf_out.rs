//! Completions as CF-style NetCDF-3 (64-bit offset, pure Rust through `netcdf3`), for `impute`
//! and `baseline` with `--out FILE.nc`.
//!
//! The file holds, for each channel `V` (the imported variable's name, `values` or
//! `channel_<c>` otherwise): `V` the completed field (float32; `_FillValue` where a site can never be
//! observed), `V_std` the posterior standard deviation when there is one, `V_samples` the
//! posterior samples when drawn, `V_observed` (int16 flag: 1 where the value is the
//! observation), and `static_mask` (`static_mask_V` with several channels) when the input had
//! never-observable sites. Dimensions and coordinate variables are those `data import` kept
//! (names, values, units and other text attributes; plain indices `n`, `y`, `x` otherwise);
//! each channel keeps its text attributes. Global attributes: `Conventions`, `source`,
//! `history` (the command line) and `lacuna_provenance` (the completion's provenance record as
//! JSON). `lacuna data import FILE.nc --var V` reads it back.

use super::meta::{Attrs, GridMeta};
use super::npy::{Array, Npz};
use anyhow::{bail, ensure, Context, Result};
use netcdf3::{DataSet, FileWriter, Version};
use std::path::Path;

/// The fill value of float variables (NetCDF's default `NC_FILL_FLOAT`), written where a
/// value is NaN: readers (xarray, `data import`) turn it back into a gap. A NaN `_FillValue`
/// would be valid CF but `netcdf3` 0.6 cannot write it (a variable whose attribute is NaN
/// never equals itself there).
// Flags are int16, not int8: `netcdf3` 0.6 pads a two-value int8 attribute (`flag_values`)
// with bytes its own reader rejects.
const FILL: f32 = 9.969_21e36;

/// Whether `out` asks for NetCDF (by its extension, `.nc` or `.cdf`).
pub fn wants_netcdf(out: &Path) -> bool {
    out.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("nc") || e.eq_ignore_ascii_case("cdf"))
}

/// Runs `produce`, which writes a completion `.npz` to the path it is given: `out` itself, or,
/// when `out` asks for NetCDF, a temporary file beside it that is converted (with the axes and
/// attributes of `data`) and removed.
pub fn completion_to<T>(out: &Path, data: &Path, produce: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    if !wants_netcdf(out) {
        return produce(out);
    }
    crate::atomic::refuse_overwriting_inputs(&[data], &[out])?;
    let tmp = crate::atomic::Removed::new(crate::atomic::temp_path(out, "completion.npz"));
    let made = produce(tmp.path())?;
    write(out, tmp.path(), data)?;
    Ok(made)
}

/// An array of `npz` that must be there.
fn required(npz: &mut Npz, path: &Path, name: &str) -> Result<Array> {
    npz.get(name)?.with_context(|| format!("{}: no `{name}` array", path.display()))
}

/// Writes the completion `completion` (`mean`, `mask`, optional `std`, `samples`,
/// `provenance`) of the fields in `data` to `out` (see the module doc), atomically.
pub fn write(out: &Path, completion: &Path, data: &Path) -> Result<()> {
    let mut c = Npz::open(completion)?;
    let mean = required(&mut c, completion, "mean")?;
    let mask = required(&mut c, completion, "mask")?;
    ensure!(mask.shape == mean.shape, "{}: `mask` and `mean` have different shapes", completion.display());
    // [N, C, H, W] or trajectories [N, T, C, H, W].
    let (n, t, ch, h, w) = match mean.shape[..] {
        [n, c, h, w] => (n, 1, c, h, w),
        [n, t, c, h, w] => (n, t, c, h, w),
        _ => bail!(
            "{}: `mean` has shape {:?}, expected [N, C, H, W] or [N, T, C, H, W]",
            completion.display(),
            mean.shape
        ),
    };
    let std = c.get("std")?;
    let samples = c.get("samples")?;
    let provenance = c.get("provenance")?.map(|a| String::from_utf8_lossy(a.bytes()).into_owned());

    let mut d = Npz::open(data)?;
    let data_shape = d.stream("mask")?.with_context(|| format!("{}: no `mask` array", data.display()))?.shape;
    ensure!(
        data_shape == mean.shape,
        "{}: the completion has shape {:?}, the fields of {} have {data_shape:?}; give the data file that was completed",
        completion.display(),
        mean.shape,
        data.display()
    );
    let meta = GridMeta::load(&mut d, data, [n, h, w], ch)?;
    let static_mask = d.get("static_mask")?;
    if let Some(s) = &static_mask {
        ensure!(
            s.shape.len() == 4 && (s.shape[0] == 1 || s.shape[0] == n) && s.shape[1..] == [ch, h, w],
            "{}: `static_mask` has shape {:?}, the fields are {n}×{ch}×{h}×{w}",
            data.display(),
            s.shape
        );
    }

    let mut ds = DataSet::new();
    let nc = |e: netcdf3::error::InvalidDataSet| anyhow::anyhow!("{}: {e:?}", out.display());
    let [an, ay, ax] = [&meta.axes[0], &meta.axes[1], &meta.axes[2]];
    let frame = "frame";
    let mut dims: Vec<&str> = vec![&an.name];
    for a in [an, ay, ax] {
        ds.add_fixed_dim(&a.name, a.values.len()).map_err(nc)?;
    }
    if t > 1 {
        ds.add_fixed_dim(frame, t).map_err(nc)?;
        dims.push(frame);
    }
    dims.extend([ay.name.as_str(), ax.name.as_str()]);
    for a in [an, ay, ax] {
        ds.add_var_f64(&a.name, &[&a.name]).map_err(nc)?;
        add_text_attrs(&mut ds, &a.name, &a.attrs).map_err(nc)?;
    }
    let s_count = samples.as_ref().map_or(0, |s| s.shape[1]);
    if s_count > 0 {
        ds.add_fixed_dim("sample", s_count).map_err(nc)?;
    }
    let mut sample_dims = dims.clone();
    sample_dims.insert(1, "sample");
    let static_dims: Vec<&str> = match &static_mask {
        Some(s) if s.shape[0] == n && n > 1 => vec![&an.name, &ay.name, &ax.name],
        _ => vec![&ay.name, &ax.name],
    };
    let names: Vec<&str> = meta.variables.iter().map(|v| v.name.as_str()).collect();
    for (v, var) in names.iter().zip(&meta.variables) {
        ds.add_var_f32(v, &dims).map_err(nc)?;
        add_text_attrs(&mut ds, v, &var.attrs).map_err(nc)?;
        ds.add_var_attr_f32(v, "_FillValue", vec![FILL]).map_err(nc)?;
        let units = var.attrs.get("units");
        if std.is_some() {
            let what = format!("posterior standard deviation of {v}");
            add_derived(&mut ds, &format!("{v}_std"), &dims, &what, units).map_err(nc)?;
        }
        if s_count > 0 {
            let what = format!("posterior samples of {v}");
            add_derived(&mut ds, &format!("{v}_samples"), &sample_dims, &what, units).map_err(nc)?;
        }
        let o = format!("{v}_observed");
        ds.add_var_i16(&o, &dims).map_err(nc)?;
        ds.add_var_attr_string(&o, "long_name", format!("1 where {v} is the observation, 0 where it was filled"))
            .map_err(nc)?;
        ds.add_var_attr_i16(&o, "flag_values", vec![0, 1]).map_err(nc)?;
        ds.add_var_attr_string(&o, "flag_meanings", "filled observed").map_err(nc)?;
        if static_mask.is_some() {
            let s = static_name(v, ch);
            ds.add_var_i16(&s, &static_dims).map_err(nc)?;
            ds.add_var_attr_string(&s, "long_name", "1 where the site can be observed, 0 where never (land)")
                .map_err(nc)?;
            ds.add_var_attr_i16(&s, "flag_values", vec![0, 1]).map_err(nc)?;
            ds.add_var_attr_string(&s, "flag_meanings", "never_observable observable").map_err(nc)?;
        }
    }
    ds.add_global_attr_string("Conventions", "CF-1.8").map_err(nc)?;
    ds.add_global_attr_string("title", "gaps filled by lacuna").map_err(nc)?;
    if let Some(src) = &meta.source {
        ds.add_global_attr_string("source", src).map_err(nc)?;
    }
    let command: Vec<String> = std::env::args().collect();
    ds.add_global_attr_string("history", command.join(" ")).map_err(nc)?;
    if let Some(p) = &provenance {
        ds.add_global_attr_string("lacuna_provenance", p).map_err(nc)?;
    }

    // Values: per channel, from the [N, (T,) C, H, W] interleaving.
    let sites = h * w;
    let plane = |all: &[f32], per: usize, c: usize| -> Vec<f32> {
        // `per` planes per row (T·C for mean, S·T·C for samples); channel c of each frame.
        all.chunks_exact(sites).enumerate().filter(|(k, _)| (k % per) % ch == c).flat_map(|(_, p)| p.to_vec()).collect()
    };
    let mean_v = mean.to_f32();
    let mask_v = mask.to_f32();
    let std_v = std.as_ref().map(Array::to_f32);
    let samples_v = samples.as_ref().map(Array::to_f32);
    let static_v = static_mask.as_ref().map(Array::to_f32);
    let planes = t * ch;
    crate::atomic::write_via_path(out, |tmp| {
        let mut f = FileWriter::open(tmp).map_err(|e| anyhow::anyhow!("{}: cannot create ({e:?})", out.display()))?;
        let io = |e: netcdf3::error::WriteError| anyhow::anyhow!("{}: {e:?}", out.display());
        f.set_def(&ds, Version::Offset64Bit, 0).map_err(io)?;
        for a in [an, ay, ax] {
            f.write_var_f64(&a.name, &a.values).map_err(io)?;
        }
        for (c, v) in names.iter().enumerate() {
            // Sites that can never be observed hold no value: NaN, whatever the method wrote.
            let observable = |k: usize| -> bool {
                static_v.as_ref().is_none_or(|s| {
                    let (i, site) = (k / (t * sites), k % sites);
                    let field = if s.len() == ch * sites { 0 } else { i };
                    s[(field * ch + c) * sites + site] != 0.0
                })
            };
            let land_nan = |vals: Vec<f32>| -> Vec<f32> {
                vals.into_iter().enumerate().map(|(k, x)| if observable(k) && !x.is_nan() { x } else { FILL }).collect()
            };
            f.write_var_f32(v, &land_nan(plane(&mean_v, planes, c))).map_err(io)?;
            if let Some(s) = &std_v {
                f.write_var_f32(&format!("{v}_std"), &land_nan(plane(s, planes, c))).map_err(io)?;
            }
            if let Some(s) = &samples_v {
                let vals = plane(s, planes, c);
                let per_sample = t * sites;
                let vals: Vec<f32> = vals
                    .into_iter()
                    .enumerate()
                    .map(|(k, x)| {
                        let (row, rest) = (k / per_sample, k % per_sample);
                        if observable((row / s_count) * per_sample + rest) && !x.is_nan() {
                            x
                        } else {
                            FILL
                        }
                    })
                    .collect();
                f.write_var_f32(&format!("{v}_samples"), &vals).map_err(io)?;
            }
            let flags: Vec<i16> = plane(&mask_v, planes, c).iter().map(|&m| i16::from(m != 0.0)).collect();
            f.write_var_i16(&format!("{v}_observed"), &flags).map_err(io)?;
            if let Some(s) = &static_v {
                let rows = if static_dims.len() == 3 { n } else { 1 };
                let flags: Vec<i16> = (0..rows)
                    .flat_map(|i| (0..sites).map(move |k| i16::from(s[(i * ch + c) * sites + k] != 0.0)))
                    .collect();
                f.write_var_i16(&static_name(v, ch), &flags).map_err(io)?;
            }
        }
        f.close().map_err(io)?;
        Ok(())
    })
}

fn static_name(var: &str, channels: usize) -> String {
    if channels == 1 {
        "static_mask".to_string()
    } else {
        format!("static_mask_{var}")
    }
}

/// A float variable derived from a channel (its std, its samples), in the channel's units.
fn add_derived(
    ds: &mut DataSet,
    name: &str,
    dims: &[&str],
    long_name: &str,
    units: Option<&String>,
) -> std::result::Result<(), netcdf3::error::InvalidDataSet> {
    ds.add_var_f32(name, dims)?;
    ds.add_var_attr_string(name, "long_name", long_name)?;
    if let Some(u) = units {
        ds.add_var_attr_string(name, "units", u)?;
    }
    ds.add_var_attr_f32(name, "_FillValue", vec![FILL])
}

fn add_text_attrs(
    ds: &mut DataSet,
    var: &str,
    attrs: &Attrs,
) -> std::result::Result<(), netcdf3::error::InvalidDataSet> {
    for (k, v) in attrs {
        ds.add_var_attr_string(var, k, v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
