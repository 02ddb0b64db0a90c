//! NetCDF import into the field contract: NetCDF-3 (classic and 64-bit offset) with the
//! pure-Rust `netcdf3` reader (no C library), NetCDF-4/HDF5 through libnetcdf when built with
//! the optional `netcdf4` cargo feature (`--features netcdf4`, Debian `libnetcdf-dev`).
//!
//! Each imported variable is one channel. A variable's last two dimensions are the grid
//! (Y, X); at most one leading dimension (usually time) becomes the field index N, and
//! leading dimensions of size 1 are dropped. An entry is observed unless it equals the
//! variable's `_FillValue` or `missing_value`, lies outside `valid_min`/`valid_max`, or is not
//! finite; packed integers are unpacked with `scale_factor`/`add_offset` (CF conventions).
//!
//! Never-observable sites (land, outside a swath disc) come from `--observable`:
//! `ever-observed` (sites observed at least once in the file, per channel) or
//! `FILE.nc:VAR<OP>VALUE` with OP one of `<`, `<=`, `>`, `>=` (e.g. `etopo120.cdf:ROSE<0`
//! for the ocean): the condition marks the observable sites, on the same grid.
//!
//! The output keeps the axes: `coord_n_<NAME>`, `coord_y_<NAME>`, `coord_x_<NAME>` hold the
//! coordinate variable of each axis (or its index when the file has none), under the
//! dimension's name in the file.

use super::field::{Dims, FieldSet};
use anyhow::{bail, ensure, Result};
use netcdf3::{DataVector, FileReader};
use std::path::{Path, PathBuf};

/// One variable read as f64 with its observed flags.
#[derive(Debug)]
struct Read {
    /// Names and sizes of its dimensions in file order.
    dims: Vec<(String, usize)>,
    values: Vec<f64>,
    observed: Vec<bool>,
}

/// The CF attributes that say which stored values are gaps and how to unpack the rest.
#[derive(Debug, Default)]
struct Coding {
    fills: Vec<f64>,
    valid_min: Option<f64>,
    valid_max: Option<f64>,
    scale: Option<f64>,
    offset: Option<f64>,
}

impl Coding {
    /// From a lookup of numeric attributes by name.
    fn from_attrs(attr: impl Fn(&str) -> Option<Vec<f64>>) -> Coding {
        let mut fills = attr("_FillValue").unwrap_or_default();
        fills.extend(attr("missing_value").unwrap_or_default());
        let range = attr("valid_range");
        let first = |name: &str| attr(name).and_then(|v| v.first().copied());
        Coding {
            fills,
            valid_min: first("valid_min").or(range.as_ref().map(|r| r[0])),
            valid_max: first("valid_max").or(range.as_ref().and_then(|r| r.get(1).copied())),
            scale: first("scale_factor"),
            offset: first("add_offset"),
        }
    }

    /// Flags and unpacks stored values. Fill and valid-range tests apply to the stored (packed)
    /// values, as CF prescribes.
    fn decode(&self, dims: Vec<(String, usize)>, raw: Vec<f64>) -> Read {
        let observed: Vec<bool> = raw
            .iter()
            .map(|&x| {
                x.is_finite()
                    && !self.fills.iter().any(|&f| x == f || (f.abs() > 1e30 && (x - f).abs() <= 1e-6 * f.abs()))
                    && self.valid_min.is_none_or(|lo| x >= lo)
                    && self.valid_max.is_none_or(|hi| x <= hi)
            })
            .collect();
        let values = raw.iter().map(|&x| x * self.scale.unwrap_or(1.0) + self.offset.unwrap_or(0.0)).collect();
        Read { dims, values, observed }
    }
}

/// An open NetCDF file: classic/64-bit offset (pure Rust, always), or NetCDF-4/HDF5 through
/// libnetcdf when built with the `netcdf4` feature.
enum Source {
    Classic(FileReader),
    #[cfg(feature = "netcdf4")]
    Hdf5(netcdf::File),
}

/// The HDF5 signature that starts a NetCDF-4 file.
const HDF5_MAGIC: &[u8] = b"\x89HDF\r\n\x1a\n";

fn open(path: &Path) -> Result<Source> {
    let mut head = [0u8; 8];
    let n = std::io::Read::read(
        &mut std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: cannot open ({e})", path.display()))?,
        &mut head,
    )?;
    if &head[..n] == HDF5_MAGIC {
        return open_hdf5(path);
    }
    if n < 4 || &head[..3] != b"CDF" || !matches!(head[3], 1 | 2) {
        let shown: String = head[..n.min(4)].iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
        bail!(
            "{}: not a NetCDF file (it starts with bytes {shown}; NetCDF-3 starts with \"CDF\" and 1 or 2, NetCDF-4 with the HDF5 signature)",
            path.display()
        );
    }
    check_classic_header(path)?;
    let reader = FileReader::open(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read as NetCDF-3: {}", path.display(), nc_error(&e)))?;
    Ok(Source::Classic(reader))
}

/// Walks a NetCDF-3 header (the classic format's grammar: dimensions, global attributes,
/// variables with their attributes) before the reader does, refusing any count or length that
/// needs more bytes than the file holds: the reader reserves memory from those numbers, so a
/// lying header would otherwise abort the process. Reads the header only.
fn check_classic_header(path: &Path) -> Result<()> {
    let file = std::fs::File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut walk = HeaderWalk { reader: std::io::BufReader::new(file), at: 0, file_len, path };
    let offset64 = {
        let magic = walk.u32()?;
        magic & 0xff == 2
    };
    walk.u32()?; // numrecs
    let ndims = walk.list(0x0A, 8, "dimension")?;
    for _ in 0..ndims {
        walk.name()?;
        walk.u32()?;
    }
    walk.attributes()?;
    let nvars = walk.list(0x0B, 16, "variable")?;
    for _ in 0..nvars {
        walk.name()?;
        let rank = walk.u32()?;
        walk.fits(rank, 4, "a variable with more dimensions than the file holds")?;
        for _ in 0..rank {
            if walk.u32()? >= ndims {
                return Err(walk.bad("a variable on an undefined dimension"));
            }
        }
        walk.attributes()?;
        HeaderWalk::type_size(walk.u32()?).map_err(|what| walk.bad(what))?;
        let vsize = walk.u32()?;
        let begin = if offset64 { (walk.u32()? << 32) | walk.u32()? } else { walk.u32()? };
        if begin > file_len || vsize > file_len {
            return Err(walk.bad("a variable beyond the end of the file"));
        }
    }
    Ok(())
}

/// A position in a NetCDF-3 header being checked against the file's length.
struct HeaderWalk<'a> {
    reader: std::io::BufReader<std::fs::File>,
    at: u64,
    file_len: u64,
    path: &'a Path,
}

impl HeaderWalk<'_> {
    fn bad(&self, what: &str) -> anyhow::Error {
        anyhow::anyhow!("{}: not a valid NetCDF-3 file ({what}; truncated or corrupt)", self.path.display())
    }

    fn u32(&mut self) -> Result<u64> {
        let mut b = [0u8; 4];
        std::io::Read::read_exact(&mut self.reader, &mut b).map_err(|_| self.bad("the header ends early"))?;
        self.at += 4;
        Ok(u32::from_be_bytes(b) as u64)
    }

    /// Refuses `count` elements of at least `each` bytes when the rest of the file is shorter.
    fn fits(&self, count: u64, each: u64, what: &str) -> Result<()> {
        if count.saturating_mul(each) > self.file_len.saturating_sub(self.at) {
            return Err(self.bad(what));
        }
        Ok(())
    }

    /// Skips `len` bytes padded to a multiple of 4.
    fn skip(&mut self, len: u64) -> Result<()> {
        let padded = len.div_ceil(4) * 4;
        self.fits(padded, 1, "an entry longer than the file")?;
        self.reader.seek_relative(padded as i64)?;
        self.at += padded;
        Ok(())
    }

    fn name(&mut self) -> Result<()> {
        let len = self.u32()?;
        self.skip(len)
    }

    fn type_size(t: u64) -> std::result::Result<u64, &'static str> {
        match t {
            1 | 2 => Ok(1),
            3 => Ok(2),
            4 | 5 => Ok(4),
            6 => Ok(8),
            _ => Err("an unknown data type"),
        }
    }

    /// A list header (`tag`, count) or ABSENT (two zeros); returns the count.
    fn list(&mut self, tag: u64, each: u64, what: &str) -> Result<u64> {
        let (t, n) = (self.u32()?, self.u32()?);
        if t == 0 && n == 0 {
            return Ok(0);
        }
        if t != tag {
            return Err(self.bad(&format!("a corrupt {what} list")));
        }
        self.fits(n, each, &format!("a corrupt {what} list"))?;
        Ok(n)
    }

    fn attributes(&mut self) -> Result<()> {
        for _ in 0..self.list(0x0C, 12, "attribute")? {
            self.name()?;
            let size = Self::type_size(self.u32()?).map_err(|what| self.bad(what))?;
            let count = self.u32()?;
            self.fits(count, size, "an attribute longer than the file")?;
            self.skip(count * size)?;
        }
        Ok(())
    }
}

/// A one-line reason for a NetCDF-3 reader error (its Debug form can hold whole headers).
fn nc_error(e: &netcdf3::error::ReadError) -> String {
    let text = format!("{e:?}");
    if text.contains("UnexpectedEof") {
        return "the file ends early (truncated download or copy?)".into();
    }
    let mut short: String = text.chars().take(160).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    format!("corrupt header or data ({short})")
}

#[cfg(feature = "netcdf4")]
fn open_hdf5(path: &Path) -> Result<Source> {
    let file = netcdf::open(path).map_err(|e| anyhow::anyhow!("{}: cannot read as NetCDF-4 ({e})", path.display()))?;
    Ok(Source::Hdf5(file))
}

#[cfg(not(feature = "netcdf4"))]
fn open_hdf5(path: &Path) -> Result<Source> {
    bail!(
        "{}: a NetCDF-4/HDF5 file; this build reads NetCDF-3 only. Rebuild with `cargo build --release --features netcdf4` (needs libnetcdf-dev) or convert it (see tools/convert_ostia.py)",
        path.display()
    )
}

fn to_f64(data: DataVector) -> Vec<f64> {
    match data {
        DataVector::I8(v) => v.into_iter().map(f64::from).collect(),
        DataVector::U8(v) => v.into_iter().map(f64::from).collect(),
        DataVector::I16(v) => v.into_iter().map(f64::from).collect(),
        DataVector::I32(v) => v.into_iter().map(f64::from).collect(),
        DataVector::F32(v) => v.into_iter().map(f64::from).collect(),
        DataVector::F64(v) => v,
    }
}

/// A numeric attribute of a NetCDF-3 variable as f64 values (any numeric type).
fn attr(var: &netcdf3::Variable, name: &str) -> Option<Vec<f64>> {
    let a = var.get_attr(name)?;
    if let Some(v) = a.get_f64() {
        return Some(v.to_vec());
    }
    if let Some(v) = a.get_f32() {
        return Some(v.iter().map(|&x| f64::from(x)).collect());
    }
    if let Some(v) = a.get_i32() {
        return Some(v.iter().map(|&x| f64::from(x)).collect());
    }
    if let Some(v) = a.get_i16() {
        return Some(v.iter().map(|&x| f64::from(x)).collect());
    }
    if let Some(v) = a.get_i8() {
        return Some(v.iter().map(|&x| f64::from(x)).collect());
    }
    None
}

/// A numeric attribute of a NetCDF-4 variable as f64 values (any numeric type).
#[cfg(feature = "netcdf4")]
fn attr4(var: &netcdf::Variable, name: &str) -> Option<Vec<f64>> {
    use netcdf::AttributeValue as A;
    Some(match var.attribute_value(name)?.ok()? {
        A::Uchar(x) => vec![f64::from(x)],
        A::Schar(x) => vec![f64::from(x)],
        A::Ushort(x) => vec![f64::from(x)],
        A::Short(x) => vec![f64::from(x)],
        A::Uint(x) => vec![f64::from(x)],
        A::Int(x) => vec![f64::from(x)],
        A::Ulonglong(x) => vec![x as f64],
        A::Longlong(x) => vec![x as f64],
        A::Float(x) => vec![f64::from(x)],
        A::Double(x) => vec![x],
        A::Uchars(v) => v.into_iter().map(f64::from).collect(),
        A::Schars(v) => v.into_iter().map(f64::from).collect(),
        A::Ushorts(v) => v.into_iter().map(f64::from).collect(),
        A::Shorts(v) => v.into_iter().map(f64::from).collect(),
        A::Uints(v) => v.into_iter().map(f64::from).collect(),
        A::Ints(v) => v.into_iter().map(f64::from).collect(),
        A::Ulonglongs(v) => v.into_iter().map(|x| x as f64).collect(),
        A::Longlongs(v) => v.into_iter().map(|x| x as f64).collect(),
        A::Floats(v) => v.into_iter().map(f64::from).collect(),
        A::Doubles(v) => v,
        _ => return None,
    })
}

impl Source {
    /// Reads variable `name`, flagging fill values (see the module doc).
    fn read_var(&mut self, path: &Path, name: &str) -> Result<Read> {
        match self {
            Source::Classic(reader) => {
                let (dims, coding) = {
                    let ds = reader.data_set();
                    let Some(var) = ds.get_var(name) else {
                        let names: Vec<String> = ds.get_vars().iter().map(|v| v.name().to_string()).collect();
                        bail!("{}: no variable {name:?} (variables: {})", path.display(), names.join(", "));
                    };
                    let dims: Vec<(String, usize)> = var.get_dims().iter().map(|d| (d.name(), d.size())).collect();
                    // A header may declare any size: believe it only as far as the file holds the bytes.
                    let declared = crate::memory::product(&[var.len(), var.data_type().size_of()]);
                    let present = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                    ensure!(
                        declared <= present,
                        "{}: variable {name:?} declares {} entries ({declared} bytes), more than the whole file ({present} bytes): truncated or corrupt",
                        path.display(),
                        var.len()
                    );
                    (dims, Coding::from_attrs(|a| attr(var, a)))
                };
                let raw = reader
                    .read_var(name)
                    .map_err(|e| anyhow::anyhow!("{}: reading {name}: {}", path.display(), nc_error(&e)))?;
                Ok(coding.decode(dims, to_f64(raw)))
            }
            #[cfg(feature = "netcdf4")]
            Source::Hdf5(file) => {
                let Some(var) = file.variable(name) else {
                    let names: Vec<String> = file.variables().map(|v| v.name()).collect();
                    bail!("{}: no variable {name:?} (variables: {})", path.display(), names.join(", "));
                };
                let dims: Vec<(String, usize)> = var.dimensions().iter().map(|d| (d.name(), d.len())).collect();
                let mut coding = Coding::from_attrs(|a| attr4(&var, a));
                // Without a _FillValue attribute, unwritten NetCDF-4 entries hold the type's default fill.
                if coding.fills.is_empty() {
                    if let Ok(Some(f)) = var.fill_value::<f64>() {
                        coding.fills.push(f);
                    }
                }
                let raw: Vec<f64> =
                    var.get_values(..).map_err(|e| anyhow::anyhow!("{}: reading {name}: {e}", path.display()))?;
                Ok(coding.decode(dims, raw))
            }
        }
    }

    /// The text attributes of variable `name` (units, long_name, ...); none when it is absent.
    fn text_attrs(&self, name: &str) -> super::meta::Attrs {
        match self {
            Source::Classic(reader) => reader
                .data_set()
                .get_var(name)
                .map(|v| {
                    v.get_attrs().iter().filter_map(|a| Some((a.name().to_string(), a.get_as_string()?))).collect()
                })
                .unwrap_or_default(),
            #[cfg(feature = "netcdf4")]
            Source::Hdf5(file) => file
                .variable(name)
                .map(|v| {
                    v.attributes()
                        .filter_map(|a| match a.value().ok()? {
                            netcdf::AttributeValue::Str(s) => Some((a.name().to_string(), s)),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The coordinate variable of dimension `name` (1-D, same name), or its index.
    fn coordinate(&mut self, name: &str, len: usize) -> Vec<f64> {
        let coord = match self {
            Source::Classic(reader) => {
                let is_coord = reader.data_set().get_var(name).is_some_and(|v| v.num_dims() == 1 && v.len() == len);
                if is_coord {
                    reader.read_var(name).ok().map(to_f64)
                } else {
                    None
                }
            }
            #[cfg(feature = "netcdf4")]
            Source::Hdf5(file) => file
                .variable(name)
                .filter(|v| v.dimensions().len() == 1 && v.len() == len)
                .and_then(|v| v.get_values::<f64, _>(..).ok()),
        };
        coord.unwrap_or_else(|| (0..len).map(|i| i as f64).collect())
    }
}

/// A named dimension and its size.
type Axis = (String, usize);

/// Splits a variable's dims into (leading axis, Y, X), dropping leading axes of size 1.
fn layout(name: &str, dims: &[Axis]) -> Result<(Option<Axis>, Axis, Axis)> {
    ensure!(dims.len() >= 2, "variable {name:?} has {} dimension(s); a field needs at least (Y, X)", dims.len());
    let (lead, grid) = dims.split_at(dims.len() - 2);
    let lead: Vec<&(String, usize)> = lead.iter().filter(|d| d.1 != 1).collect();
    ensure!(
        lead.len() <= 1,
        "variable {name:?} has dimensions {:?}: more than one leading axis of size > 1 (select a level first)",
        dims.iter().map(|d| format!("{}={}", d.0, d.1)).collect::<Vec<_>>()
    );
    Ok((lead.first().map(|d| (*d).clone()), grid[0].clone(), grid[1].clone()))
}

/// How the never-observable sites are found.
#[derive(Clone, Debug, PartialEq)]
pub enum Observable {
    /// Every site can be observed.
    All,
    /// Sites observed at least once in the imported file, per channel.
    EverObserved,
    /// Sites where `var <op> value` holds in another file on the same grid.
    Condition { path: PathBuf, var: String, op: Cmp, value: f64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn holds(self, x: f64, v: f64) -> bool {
        match self {
            Cmp::Lt => x < v,
            Cmp::Le => x <= v,
            Cmp::Gt => x > v,
            Cmp::Ge => x >= v,
        }
    }
}

impl std::str::FromStr for Observable {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Observable> {
        match s {
            "all" => return Ok(Observable::All),
            "ever-observed" => return Ok(Observable::EverObserved),
            _ => {}
        }
        let err = || {
            anyhow::anyhow!(
                "--observable {s:?}: expected all, ever-observed or FILE.nc:VAR<OP>VALUE (e.g. etopo120.cdf:ROSE<0)"
            )
        };
        let (path, cond) = s.rsplit_once(':').ok_or_else(err)?;
        let at = cond.find(['<', '>']).ok_or_else(err)?;
        let (var, rest) = cond.split_at(at);
        let (op, value) = if let Some(v) = rest.strip_prefix("<=") {
            (Cmp::Le, v)
        } else if let Some(v) = rest.strip_prefix(">=") {
            (Cmp::Ge, v)
        } else if let Some(v) = rest.strip_prefix('<') {
            (Cmp::Lt, v)
        } else if let Some(v) = rest.strip_prefix('>') {
            (Cmp::Gt, v)
        } else {
            return Err(err());
        };
        let value: f64 = value.trim().parse().map_err(|_| err())?;
        ensure!(!var.trim().is_empty() && !path.is_empty(), err());
        Ok(Observable::Condition { path: path.into(), var: var.trim().to_string(), op, value })
    }
}

/// What `import` made.
#[derive(Debug)]
pub struct Imported {
    pub set: FieldSet,
    /// Variable names, units and other text attributes; axes `[n, y, x]` with their names,
    /// coordinates and attributes.
    pub meta: super::meta::GridMeta,
    /// Observations that fell on never-observable sites and were dropped.
    pub dropped: usize,
}

/// Reads `vars` of `path` as channels of one field set (see the module doc).
pub fn import(path: &Path, vars: &[String], observable: &Observable) -> Result<Imported> {
    ensure!(!vars.is_empty(), "name at least one variable with --var");
    let mut source = open(path)?;
    let mut reads = Vec::with_capacity(vars.len());
    for v in vars {
        reads.push(source.read_var(path, v)?);
    }
    let (lead, y, x) = layout(&vars[0], &reads[0].dims)?;
    for (v, r) in vars.iter().zip(&reads).skip(1) {
        let l = layout(v, &r.dims)?;
        ensure!(
            l == (lead.clone(), y.clone(), x.clone()),
            "{}: variables {:?} and {v:?} lie on different grids; import them separately",
            path.display(),
            vars[0]
        );
    }
    let n = lead.as_ref().map_or(1, |d| d.1);
    let dims = Dims { t: 1, c: vars.len(), h: y.1, w: x.1 };
    let sites = dims.sites();
    // Interleave channels: file order is [N, Y, X] per variable, the contract is [N, C, Y, X].
    let mut values = vec![0f32; n * dims.len()];
    let mut mask = vec![0u8; n * dims.len()];
    for (c, r) in reads.iter().enumerate() {
        for i in 0..n {
            for s in 0..sites {
                let (src, dst) = (i * sites + s, (i * dims.c + c) * sites + s);
                if r.observed[src] {
                    values[dst] = r.values[src] as f32;
                    mask[dst] = 1;
                }
            }
        }
    }
    let observable = match observable {
        Observable::All => None,
        Observable::EverObserved => {
            let mut ok = vec![0u8; dims.len()];
            for (k, &m) in mask.iter().enumerate() {
                ok[k % dims.len()] |= m;
            }
            Some(ok)
        }
        Observable::Condition { path: cpath, var, op, value } => {
            let read = open(cpath)?.read_var(cpath, var)?;
            let (clead, cy, cx) = layout(var, &read.dims)?;
            ensure!(
                clead.is_none() && cy.1 == dims.h && cx.1 == dims.w,
                "{}: {var} has dimensions {:?}, the imported grid is {}×{}",
                cpath.display(),
                read.dims,
                dims.h,
                dims.w
            );
            let plane: Vec<u8> =
                read.values.iter().zip(&read.observed).map(|(&v, &o)| u8::from(o && op.holds(v, *value))).collect();
            Some((0..dims.c).flat_map(|_| plane.iter().copied()).collect())
        }
    };
    let mut set = FieldSet::new(n, dims, values, mask, None)?;
    let dropped = match observable {
        Some(ok) => set.set_observable(ok)?,
        None => 0,
    };
    let lead_name = lead.as_ref().map_or("n".to_string(), |d| d.0.clone());
    let n_coord = if lead.is_some() { source.coordinate(&lead_name, n) } else { vec![0.0] };
    let (y_coord, x_coord) = (source.coordinate(&y.0, y.1), source.coordinate(&x.0, x.1));
    let axis = |role: &str, name: &str, values: Vec<f64>| super::meta::Axis {
        role: role.to_string(),
        name: name.to_string(),
        values,
        attrs: source.text_attrs(name),
        indexed: false,
    };
    let axes = vec![axis("n", &lead_name, n_coord), axis("y", &y.0, y_coord), axis("x", &x.0, x_coord)];
    let variables =
        vars.iter().map(|v| super::meta::Variable { name: v.clone(), attrs: source.text_attrs(v) }).collect();
    let meta = super::meta::GridMeta { source: Some(path.display().to_string()), variables, axes };
    Ok(Imported { set, meta, dropped })
}

#[cfg(test)]
mod tests;
