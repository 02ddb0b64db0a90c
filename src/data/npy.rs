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
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "shape and data disagree"
        );
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        Array {
            shape,
            dtype: Dtype::F32,
            bytes,
        }
    }

    pub fn from_bool(shape: Vec<usize>, data: &[u8]) -> Array {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "shape and data disagree"
        );
        let bytes = data.iter().map(|&v| u8::from(v != 0)).collect();
        Array {
            shape,
            dtype: Dtype::Bool,
            bytes,
        }
    }

    /// Elements as `f32` (integers and booleans converted; float64 rounded).
    pub fn to_f32(&self) -> Vec<f32> {
        let b = &self.bytes;
        let n = self.numel();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let v = match self.dtype {
                Dtype::F16 => f16_to_f32(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])),
                Dtype::F32 => f32::from_le_bytes(le4(b, i)),
                Dtype::F64 => f64::from_le_bytes(le8(b, i)) as f32,
                Dtype::Bool | Dtype::U8 => b[i] as f32,
                Dtype::I8 => b[i] as i8 as f32,
                Dtype::I16 => i16::from_le_bytes([b[2 * i], b[2 * i + 1]]) as f32,
                Dtype::U16 => u16::from_le_bytes([b[2 * i], b[2 * i + 1]]) as f32,
                Dtype::I32 => i32::from_le_bytes(le4(b, i)) as f32,
                Dtype::U32 => u32::from_le_bytes(le4(b, i)) as f32,
                Dtype::I64 => i64::from_le_bytes(le8(b, i)) as f32,
                Dtype::U64 => u64::from_le_bytes(le8(b, i)) as f32,
            };
            out.push(v);
        }
        out
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
            _ => format!(
                "({})",
                self.shape
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        // The data must start on a 64-byte boundary; the header ends with a newline.
        let (prefix, len_bytes) = if header.len() + 11 < 65536 {
            (10, 2)
        } else {
            (12, 4)
        };
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
        ensure!(
            data.len() >= 10 && &data[..6] == b"\x93NUMPY",
            "not a .npy array (bad magic)"
        );
        let major = data[6];
        let (header_len, start): (usize, usize) = match major {
            1 => (u16::from_le_bytes([data[8], data[9]]) as usize, 10),
            2 | 3 => {
                ensure!(data.len() >= 12, "truncated .npy header");
                (
                    u32::from_le_bytes([data[8], data[9], data[10], data[11]]) as usize,
                    12,
                )
            }
            v => bail!("unsupported .npy format version {v}"),
        };
        let end = start
            .checked_add(header_len)
            .context("corrupt .npy header length")?;
        ensure!(end <= data.len(), "truncated .npy header");
        let header = std::str::from_utf8(&data[start..end]).context("non-text .npy header")?;
        let (dtype, big_endian) = parse_descr(dict_value(header, "descr")?)?;
        let fortran = match dict_value(header, "fortran_order")?.trim() {
            "True" => true,
            "False" => false,
            v => bail!("bad fortran_order {v:?} in .npy header"),
        };
        let shape = parse_shape(dict_value(header, "shape")?)?;
        let numel = shape
            .iter()
            .try_fold(1usize, |acc, &s| acc.checked_mul(s))
            .context("array shape overflows")?;
        let nbytes = numel
            .checked_mul(dtype.size())
            .context("array size overflows")?;
        let body = &data[end..];
        ensure!(
            body.len() >= nbytes,
            "truncated array data: {} bytes present, {} expected for shape {:?} {}",
            body.len(),
            nbytes,
            shape,
            dtype.name()
        );
        let mut bytes = body[..nbytes].to_vec();
        if big_endian && dtype.size() > 1 {
            for chunk in bytes.chunks_exact_mut(dtype.size()) {
                chunk.reverse();
            }
        }
        if fortran && shape.len() > 1 {
            bytes = fortran_to_c(&bytes, &shape, dtype.size());
        }
        Ok(Array {
            shape,
            dtype,
            bytes,
        })
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
    let pos = header
        .find(&pat)
        .with_context(|| format!(".npy header lacks '{key}'"))?;
    let rest = header[pos + pat.len()..].trim_start();
    let rest = rest
        .strip_prefix(':')
        .context("malformed .npy header")?
        .trim_start();
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
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .context("malformed shape in .npy header")?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<usize>()
                .with_context(|| format!("bad dimension {s:?}"))
        })
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
        let file = std::fs::File::open(path)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        let archive = zip::ZipArchive::new(file).map_err(|e| {
            anyhow::anyhow!("{}: not a readable .npz archive ({e})", path.display())
        })?;
        Ok(Npz {
            path: path.display().to_string(),
            archive,
        })
    }

    /// Names of the arrays in the archive.
    pub fn names(&self) -> Vec<String> {
        self.archive
            .file_names()
            .map(|n| n.strip_suffix(".npy").unwrap_or(n).to_string())
            .collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.archive
            .index_for_name(&format!("{name}.npy"))
            .is_some()
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
            format!(
                "{path}: array '{name}': archive entry cannot be read (truncated or corrupt file?)"
            )
        })?;
        let array =
            Array::from_npy_bytes(&bytes).with_context(|| format!("{path}: array '{name}'"))?;
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
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    for (name, array) in arrays {
        zip.start_file(format!("{name}.npy"), options)?;
        zip.write_all(&array.to_npy_bytes())?;
    }
    zip.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_f32_and_bool() {
        let a = Array::from_f32(vec![2, 3], &[1.0, -2.5, 3.0, f32::NAN, 0.0, 7.0]);
        let b = Array::from_npy_bytes(&a.to_npy_bytes()).unwrap();
        assert_eq!(b.shape, vec![2, 3]);
        let v = b.to_f32();
        assert_eq!(v[1], -2.5);
        assert!(v[3].is_nan());
        let m = Array::from_bool(vec![4], &[1, 0, 1, 1]);
        let m2 = Array::from_npy_bytes(&m.to_npy_bytes()).unwrap();
        assert_eq!(m2.dtype, Dtype::Bool);
        assert_eq!(m2.to_f32(), vec![1.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn header_is_64_byte_aligned() {
        let a = Array::from_f32(vec![5], &[0.0; 5]);
        let bytes = a.to_npy_bytes();
        assert_eq!((bytes.len() - 20) % 64, 0);
    }

    #[test]
    fn parses_big_endian_f64_in_fortran_order() {
        // numpy: np.asfortranarray(np.arange(6, dtype='>f8').reshape(2, 3))
        let header = "{'descr': '>f8', 'fortran_order': True, 'shape': (2, 3), }";
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        // Fortran order: column by column: 0,3,1,4,2,5
        for v in [0.0f64, 3.0, 1.0, 4.0, 2.0, 5.0] {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        let a = Array::from_npy_bytes(&bytes).unwrap();
        assert_eq!(a.to_f32(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for n in 0..200usize {
            let junk: Vec<u8> = (0..n).map(|i| (i * 131 % 251) as u8).collect();
            let _ = Array::from_npy_bytes(&junk);
            let mut header = b"\x93NUMPY\x01\x00".to_vec();
            header.extend_from_slice(&junk);
            let _ = Array::from_npy_bytes(&header);
        }
        let truncated = Array::from_f32(vec![100], &[1.0; 100]).to_npy_bytes();
        let err = Array::from_npy_bytes(&truncated[..200]).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}
