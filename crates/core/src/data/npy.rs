//! Reading and writing NumPy `.npy` arrays and `.npz` archives.
//!
//! Only what the file contracts need: little- or big-endian floats and integers, booleans,
//! C or Fortran order. Everything a user file can get wrong is reported as an error naming the
//! archive and the array; nothing here panics on bad bytes (the fuzz test feeds it garbage).

use anyhow::{bail, ensure, Context, Result};
use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::path::Path;

/// Element type of an array as stored on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F16,
    F32,
    F64,
    Bool,
    U8,
    I8,
    I16,
    I32,
    I64,
    U16,
    U32,
    U64,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::Bool | Dtype::U8 | Dtype::I8 => 1,
            Dtype::F16 | Dtype::I16 | Dtype::U16 => 2,
            Dtype::F32 | Dtype::I32 | Dtype::U32 => 4,
            Dtype::F64 | Dtype::I64 | Dtype::U64 => 8,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Dtype::F16 | Dtype::F32 | Dtype::F64)
    }

    pub fn name(self) -> &'static str {
        match self {
            Dtype::F16 => "float16",
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
            Dtype::Bool => "bool",
            Dtype::U8 => "uint8",
            Dtype::I8 => "int8",
            Dtype::I16 => "int16",
            Dtype::I32 => "int32",
            Dtype::I64 => "int64",
            Dtype::U16 => "uint16",
            Dtype::U32 => "uint32",
            Dtype::U64 => "uint64",
        }
    }
}

/// One array: its shape, its element type and its elements in C order, little-endian.
#[derive(Clone, Debug)]
pub struct Array {
    pub shape: Vec<usize>,
    pub dtype: Dtype,
    bytes: Vec<u8>,
}

impl Array {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn from_f32(shape: Vec<usize>, data: &[f32]) -> Array {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "shape and data disagree");
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        Array { shape, dtype: Dtype::F32, bytes }
    }

    pub fn from_f64(shape: Vec<usize>, data: &[f64]) -> Array {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "shape and data disagree");
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        Array { shape, dtype: Dtype::F64, bytes }
    }

    pub fn from_bool(shape: Vec<usize>, data: &[u8]) -> Array {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "shape and data disagree");
        let bytes = data.iter().map(|&v| u8::from(v != 0)).collect();
        Array { shape, dtype: Dtype::Bool, bytes }
    }

    /// Elements as `f32` (integers and booleans converted; float64 rounded).
    pub fn to_f32(&self) -> Vec<f32> {
        (0..self.numel()).map(|i| self.element(i) as f32).collect()
    }

    /// Elements as `f64` (for coordinates, whose values may need the precision).
    pub fn to_f64(&self) -> Vec<f64> {
        (0..self.numel()).map(|i| self.element(i)).collect()
    }

    /// A uint8 array of raw bytes, such as a JSON record.
    pub fn from_bytes(data: &[u8]) -> Array {
        Array { shape: vec![data.len()], dtype: Dtype::U8, bytes: data.to_vec() }
    }

    /// The stored elements, little-endian, C order.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn element(&self, i: usize) -> f64 {
        let b = &self.bytes;
        match self.dtype {
            Dtype::F16 => f64::from(f16_to_f32(u16::from_le_bytes([b[2 * i], b[2 * i + 1]]))),
            Dtype::F32 => f64::from(f32::from_le_bytes(le4(b, i))),
            Dtype::F64 => f64::from_le_bytes(le8(b, i)),
            Dtype::Bool | Dtype::U8 => f64::from(b[i]),
            Dtype::I8 => f64::from(b[i] as i8),
            Dtype::I16 => f64::from(i16::from_le_bytes([b[2 * i], b[2 * i + 1]])),
            Dtype::U16 => f64::from(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])),
            Dtype::I32 => f64::from(i32::from_le_bytes(le4(b, i))),
            Dtype::U32 => f64::from(u32::from_le_bytes(le4(b, i))),
            Dtype::I64 => i64::from_le_bytes(le8(b, i)) as f64,
            Dtype::U64 => u64::from_le_bytes(le8(b, i)) as f64,
        }
    }

    /// Serialises as a version-1 `.npy` file (version 2 when the header needs it).
    pub fn to_npy_bytes(&self) -> Vec<u8> {
        let descr = match self.dtype {
            Dtype::F16 => "<f2",
            Dtype::F32 => "<f4",
            Dtype::F64 => "<f8",
            Dtype::Bool => "|b1",
            Dtype::U8 => "|u1",
            Dtype::I8 => "|i1",
            Dtype::I16 => "<i2",
            Dtype::U16 => "<u2",
            Dtype::I32 => "<i4",
            Dtype::U32 => "<u4",
            Dtype::I64 => "<i8",
            Dtype::U64 => "<u8",
        };
        let shape = match self.shape.len() {
            1 => format!("({},)", self.shape[0]),
            _ => format!("({})", self.shape.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")),
        };
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        // The data must start on a 64-byte boundary; the header ends with a newline.
        let (prefix, len_bytes) = if header.len() + 11 < 65536 { (10, 2) } else { (12, 4) };
        let pad = (64 - (prefix + header.len() + 1) % 64) % 64;
        header.push_str(&" ".repeat(pad));
        header.push('\n');
        let mut out = Vec::with_capacity(prefix + header.len() + self.bytes.len());
        out.extend_from_slice(b"\x93NUMPY");
        if len_bytes == 2 {
            out.extend_from_slice(&[1, 0]);
            out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&[2, 0]);
            out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&self.bytes);
        out
    }

    /// Parses a `.npy` file's bytes.
    pub fn from_npy_bytes(data: &[u8]) -> Result<Array> {
        let mut cursor = std::io::Cursor::new(data);
        let header = Header::read(&mut cursor)?;
        let nbytes = header.nbytes()?;
        let body = &data[cursor.position() as usize..];
        ensure!(
            body.len() >= nbytes,
            "truncated array data: {} bytes present, {} expected for shape {:?} {}",
            body.len(),
            nbytes,
            header.shape,
            header.dtype.name()
        );
        let mut bytes = body[..nbytes].to_vec();
        header.to_little_endian(&mut bytes);
        if header.fortran && header.shape.len() > 1 {
            bytes = fortran_to_c(&bytes, &header.shape, header.dtype.size());
        }
        Ok(Array { shape: header.shape, dtype: header.dtype, bytes })
    }
}

/// The header of a `.npy` array.
#[derive(Clone, Debug)]
struct Header {
    shape: Vec<usize>,
    dtype: Dtype,
    big_endian: bool,
    fortran: bool,
}

impl Header {
    /// Reads the magic, version and header dict, leaving `r` at the first data byte.
    fn read<R: Read>(r: &mut R) -> Result<Header> {
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic).map_err(|_| anyhow::anyhow!("not a .npy array (too short)"))?;
        ensure!(&magic[..6] == b"\x93NUMPY", "not a .npy array (bad magic)");
        let header_len = match magic[6] {
            1 => {
                let mut l = [0u8; 2];
                r.read_exact(&mut l).context("truncated .npy header")?;
                u16::from_le_bytes(l) as usize
            }
            2 | 3 => {
                let mut l = [0u8; 4];
                r.read_exact(&mut l).context("truncated .npy header")?;
                u32::from_le_bytes(l) as usize
            }
            v => bail!("unsupported .npy format version {v}"),
        };
        ensure!(header_len <= 1 << 20, "corrupt .npy header length {header_len}");
        let mut text = vec![0u8; header_len];
        r.read_exact(&mut text).context("truncated .npy header")?;
        let header = std::str::from_utf8(&text).context("non-text .npy header")?;
        let (dtype, big_endian) = parse_descr(dict_value(header, "descr")?)?;
        let fortran = match dict_value(header, "fortran_order")?.trim() {
            "True" => true,
            "False" => false,
            v => bail!("bad fortran_order {v:?} in .npy header"),
        };
        let shape = parse_shape(dict_value(header, "shape")?)?;
        Ok(Header { shape, dtype, big_endian, fortran })
    }

    fn numel(&self) -> Result<usize> {
        self.shape.iter().try_fold(1usize, |acc, &s| acc.checked_mul(s)).context("array shape overflows")
    }

    fn nbytes(&self) -> Result<usize> {
        self.numel()?.checked_mul(self.dtype.size()).context("array size overflows")
    }

    fn to_little_endian(&self, bytes: &mut [u8]) {
        if self.big_endian && self.dtype.size() > 1 {
            for chunk in bytes.chunks_exact_mut(self.dtype.size()) {
                chunk.reverse();
            }
        }
    }
}

/// Reads an array's elements a slice at a time, so files larger than memory can be processed.
pub struct ArrayReader {
    pub shape: Vec<usize>,
    pub dtype: Dtype,
    header: Header,
    reader: Box<dyn Read>,
    remaining: usize,
}

impl ArrayReader {
    /// The next `count` elements (fewer at the end) as `f32`.
    pub fn read_f32(&mut self, count: usize) -> Result<Vec<f32>> {
        let count = count.min(self.remaining);
        let mut bytes = vec![0u8; count * self.dtype.size()];
        self.reader.read_exact(&mut bytes).context("truncated array data")?;
        self.header.to_little_endian(&mut bytes);
        self.remaining -= count;
        Ok(Array { shape: vec![count], dtype: self.dtype, bytes }.to_f32())
    }
}

fn le4(b: &[u8], i: usize) -> [u8; 4] {
    [b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]
}

fn le8(b: &[u8], i: usize) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&b[8 * i..8 * i + 8]);
    out
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) & 1) as u32;
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as u32;
    let v = match exp {
        0 => (frac as f32) * 2f32.powi(-24),
        31 => {
            if frac == 0 {
                f32::INFINITY
            } else {
                f32::NAN
            }
        }
        e => (1.0 + frac as f32 / 1024.0) * 2f32.powi(e - 15),
    };
    if sign == 1 {
        -v
    } else {
        v
    }
}

/// Reorders Fortran-ordered elements (first index fastest) into C order (last index fastest).
fn fortran_to_c(bytes: &[u8], shape: &[usize], size: usize) -> Vec<u8> {
    let n: usize = shape.iter().product();
    let mut out = vec![0u8; bytes.len()];
    let mut idx = vec![0usize; shape.len()];
    for c in 0..n {
        // idx holds the multi-index of C position c.
        let mut f = 0usize;
        for d in (0..shape.len()).rev() {
            f = f * shape[d] + idx[d];
        }
        out[c * size..(c + 1) * size].copy_from_slice(&bytes[f * size..(f + 1) * size]);
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// The text after `'key':` in a Python dict literal, up to the matching separator.
fn dict_value<'a>(header: &'a str, key: &str) -> Result<&'a str> {
    let pat = format!("'{key}'");
    let pos = header.find(&pat).with_context(|| format!(".npy header lacks '{key}'"))?;
    let rest = header[pos + pat.len()..].trim_start();
    let rest = rest.strip_prefix(':').context("malformed .npy header")?.trim_start();
    if let Some(body) = rest.strip_prefix('(') {
        let close = body.find(')').context("malformed shape in .npy header")?;
        return Ok(&rest[..close + 2]);
    }
    if let Some(body) = rest.strip_prefix('\'') {
        let close = body.find('\'').context("malformed .npy header string")?;
        return Ok(&body[..close]);
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Ok(&rest[..end])
}

fn parse_descr(descr: &str) -> Result<(Dtype, bool)> {
    let (order, code) = match descr.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &descr[1..]),
        _ => ('|', descr),
    };
    let big = order == '>';
    let dtype = match code {
        "f2" => Dtype::F16,
        "f4" => Dtype::F32,
        "f8" => Dtype::F64,
        "b1" | "?" => Dtype::Bool,
        "u1" => Dtype::U8,
        "i1" => Dtype::I8,
        "i2" => Dtype::I16,
        "u2" => Dtype::U16,
        "i4" => Dtype::I32,
        "u4" => Dtype::U32,
        "i8" => Dtype::I64,
        "u8" => Dtype::U64,
        _ => bail!("unsupported dtype {descr:?} (use float32, float64, bool or an integer type)"),
    };
    Ok((dtype, big))
}

fn parse_shape(text: &str) -> Result<Vec<usize>> {
    let inner =
        text.trim().strip_prefix('(').and_then(|t| t.strip_suffix(')')).context("malformed shape in .npy header")?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>().with_context(|| format!("bad dimension {s:?}")))
        .collect()
}

/// The arrays of an `.npz` archive, by name (without the `.npy` suffix).
///
/// Arrays are parsed lazily: [`Npz::get`] reads one member, so a command never touches an array
/// it does not need (training and imputation never read `truth`).
pub struct Npz {
    path: String,
    archive: zip::ZipArchive<std::fs::File>,
}

impl Npz {
    pub fn open(path: &Path) -> Result<Npz> {
        crate::data::field::ensure_readable_file(path)?;
        let file = std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
        let archive = zip::ZipArchive::new(file)
            .map_err(|e| anyhow::anyhow!("{}: not a readable .npz archive ({e})", path.display()))?;
        Ok(Npz { path: path.display().to_string(), archive })
    }

    /// Names of the arrays in the archive.
    pub fn names(&self) -> Vec<String> {
        self.archive.file_names().map(|n| n.strip_suffix(".npy").unwrap_or(n).to_string()).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.archive.index_for_name(&format!("{name}.npy")).is_some()
    }

    /// Opens one array for reading in slices (C order only); `Ok(None)` when absent.
    pub fn stream(&mut self, name: &str) -> Result<Option<ArrayReader>> {
        let member = format!("{name}.npy");
        let Some(index) = self.archive.index_for_name(&member) else {
            return Ok(None);
        };
        let path = self.path.clone();
        let (start, size, method, unpacked) = {
            let entry = self
                .archive
                .by_index_raw(index)
                .map_err(|e| anyhow::anyhow!("{path}: array '{name}': corrupt archive entry ({e})"))?;
            (entry.data_start(), entry.compressed_size(), entry.compression(), entry.size())
        };
        let mut file = std::fs::File::open(&path).with_context(|| format!("{path}: cannot open"))?;
        file.seek(std::io::SeekFrom::Start(start))?;
        let raw = std::io::BufReader::new(file.take(size));
        let mut reader: Box<dyn Read> = match method {
            zip::CompressionMethod::Stored => Box::new(raw),
            zip::CompressionMethod::Deflated => Box::new(flate2::read::DeflateDecoder::new(raw)),
            m => bail!("{path}: array '{name}': unsupported compression {m:?} (use numpy.savez or savez_compressed)"),
        };
        let header = Header::read(&mut reader).with_context(|| format!("{path}: array '{name}'"))?;
        if header.fortran && header.shape.len() > 1 {
            // Fortran order cannot be read a slice at a time in C order: reorder it in memory.
            drop(reader);
            let array = self.get(name)?.with_context(|| format!("{path}: array '{name}' vanished"))?;
            let header = Header { shape: array.shape.clone(), dtype: array.dtype, big_endian: false, fortran: false };
            let remaining = array.numel();
            let reader: Box<dyn Read> = Box::new(std::io::Cursor::new(array.bytes));
            return Ok(Some(ArrayReader {
                shape: header.shape.clone(),
                dtype: header.dtype,
                header,
                reader,
                remaining,
            }));
        }
        let remaining = header.numel().with_context(|| format!("{path}: array '{name}'"))?;
        // A header may declare any shape: believe it only as far as the archive holds the
        // bytes (deflate expands at most ~1032×), so nothing is reserved for data that is absent.
        let declared = header.nbytes().with_context(|| format!("{path}: array '{name}'"))? as u64;
        let present = match method {
            zip::CompressionMethod::Stored => size.min(unpacked),
            _ => unpacked.min(size.saturating_mul(1100)),
        };
        ensure!(
            declared <= present,
            "{path}: array '{name}': the header declares shape {:?} ({declared} bytes of data) but the archive holds {present} bytes for it (truncated or corrupt file)",
            header.shape
        );
        Ok(Some(ArrayReader { shape: header.shape.clone(), dtype: header.dtype, header, reader, remaining }))
    }

    /// Reads one array; `Ok(None)` when the archive has no such member.
    pub fn get(&mut self, name: &str) -> Result<Option<Array>> {
        let member = format!("{name}.npy");
        let Some(index) = self.archive.index_for_name(&member) else {
            return Ok(None);
        };
        let path = self.path.clone();
        let mut entry = self
            .archive
            .by_index(index)
            .map_err(|e| anyhow::anyhow!("{path}: array '{name}': corrupt archive entry ({e})"))?;
        // Guard the allocation against a corrupt size field: never trust more than we can read.
        let mut bytes = Vec::with_capacity((entry.size() as usize).min(1 << 30));
        read_all(&mut entry, &mut bytes).with_context(|| {
            format!("{path}: array '{name}': archive entry cannot be read (truncated or corrupt file?)")
        })?;
        let array = Array::from_npy_bytes(&bytes).with_context(|| format!("{path}: array '{name}'"))?;
        Ok(Some(array))
    }
}

fn read_all<R: Read>(r: &mut R, out: &mut Vec<u8>) -> std::io::Result<()> {
    r.read_to_end(out).map(|_| ())
}

/// Writes arrays as an uncompressed `.npz`, atomically: to a temporary file in the same
/// directory, synced, then renamed over `path`, so a crash never leaves a half-written file.
pub fn write_npz(path: &Path, arrays: &BTreeMap<String, Array>) -> Result<()> {
    crate::atomic::write_with(path, |file| write_npz_to(file, arrays))
}

fn write_npz_to<W: Write + Seek>(w: W, arrays: &BTreeMap<String, Array>) -> Result<()> {
    let mut zip = zip::ZipWriter::new(w);
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).large_file(true);
    for (name, array) in arrays {
        zip.start_file(format!("{name}.npy"), options)?;
        zip.write_all(&array.to_npy_bytes())?;
    }
    zip.finish()?;
    Ok(())
}

/// Writes an `.npz` whose arrays arrive a slice at a time: each array goes to a temporary
/// `.npy` beside the output, and [`NpzWriter::finish`] copies them into the archive and renames
/// it into place. Memory use is one slice, whatever the file size.
pub struct NpzWriter {
    out: std::path::PathBuf,
    members: Vec<(String, crate::atomic::Scratch, std::io::BufWriter<std::fs::File>, usize)>,
}

impl NpzWriter {
    pub fn new(out: &Path) -> NpzWriter {
        NpzWriter { out: out.to_path_buf(), members: Vec::new() }
    }

    /// Declares a float32 array of `shape`; returns its slot for [`NpzWriter::append`].
    pub fn add_f32(&mut self, name: &str, shape: Vec<usize>) -> Result<usize> {
        self.add(name, Array { shape, dtype: Dtype::F32, bytes: Vec::new() })
    }

    /// Declares a bool array of `shape`.
    pub fn add_bool(&mut self, name: &str, shape: Vec<usize>) -> Result<usize> {
        self.add(name, Array { shape, dtype: Dtype::Bool, bytes: Vec::new() })
    }

    fn add(&mut self, name: &str, empty: Array) -> Result<usize> {
        let tmp = crate::atomic::Scratch::new(&self.out, name)?;
        let numel = empty.numel();
        let file =
            std::fs::File::create(tmp.path()).with_context(|| format!("{}: cannot create", self.out.display()))?;
        let mut w = std::io::BufWriter::new(file);
        // The header alone: `to_npy_bytes` of an array with no data bytes.
        w.write_all(&empty.to_npy_bytes())?;
        self.members.push((name.to_string(), tmp, w, numel));
        Ok(self.members.len() - 1)
    }

    pub fn append_f32(&mut self, slot: usize, data: &[f32]) -> Result<()> {
        let (_, _, w, left) = &mut self.members[slot];
        ensure!(data.len() <= *left, "internal: more data than the declared shape");
        *left -= data.len();
        for v in data {
            w.write_all(&v.to_le_bytes())?;
        }
        Ok(())
    }

    /// A whole uint8 array at once, such as a JSON record (`provenance`; in Python
    /// `json.loads(np.load(f)["provenance"].tobytes())`).
    pub fn add_bytes(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let slot = self.add(name, Array { shape: vec![data.len()], dtype: Dtype::U8, bytes: Vec::new() })?;
        let (_, _, w, left) = &mut self.members[slot];
        w.write_all(data)?;
        *left = 0;
        Ok(())
    }

    pub fn append_bool(&mut self, slot: usize, data: &[u8]) -> Result<()> {
        let (_, _, w, left) = &mut self.members[slot];
        ensure!(data.len() <= *left, "internal: more data than the declared shape");
        *left -= data.len();
        w.write_all(&data.iter().map(|&v| u8::from(v != 0)).collect::<Vec<_>>())?;
        Ok(())
    }

    /// Assembles the archive atomically and removes the temporary arrays.
    pub fn finish(mut self) -> Result<()> {
        let members = std::mem::take(&mut self.members);
        let mut paths = Vec::new();
        for (name, tmp, w, left) in members {
            ensure!(left == 0, "internal: array '{name}' is {left} elements short");
            w.into_inner().map_err(|e| anyhow::anyhow!("{}: {e}", self.out.display()))?.sync_all()?;
            paths.push((name, tmp));
        }
        let result = crate::atomic::write_with(&self.out, |file| {
            let mut zip = zip::ZipWriter::new(file);
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored)
                .large_file(true);
            for (name, tmp) in &paths {
                zip.start_file(format!("{name}.npy"), options)?;
                let mut src = std::fs::File::open(tmp.path())?;
                std::io::copy(&mut src, &mut zip)?;
            }
            zip.finish()?;
            Ok(())
        });
        // The scratch arrays remove themselves when `paths` drops.
        result
    }
}

#[cfg(test)]
mod tests;
