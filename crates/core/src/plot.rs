//! Colour maps of fields and PNG encoding (the figures themselves are laid out and labelled
//! by [`crate::panels`]).
//!
//! Fields use a blue–white–red diverging map, symmetric around zero with limits shared across a
//! row; errors and standard deviations use a black–red–yellow sequential map from 0; unobserved
//! cells are grey. Encoding: 8-bit RGB, one zlib stream, CRC-32 per chunk (PNG spec §5).

use anyhow::{ensure, Result};
use std::io::Write;
use std::path::Path;

/// How a panel maps values to colour.
#[derive(Clone, Copy, Debug)]
pub enum Scale {
    /// Blue (centre − lim) – white (centre) – red (centre + lim).
    Diverging { centre: f32, lim: f32 },
    /// Black (0) – red – yellow (max).
    Sequential(f32),
}

/// One h×w image of values; `shown[i] == 0` paints cell i grey.
#[derive(Clone, Debug)]
pub struct Panel {
    pub h: usize,
    pub w: usize,
    pub values: Vec<f32>,
    pub shown: Option<Vec<u8>>,
    pub scale: Scale,
}

pub struct Image {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

/// Cells that are not observed.
pub const GREY: [u8; 3] = [150, 150, 150];

fn lerp(a: [f32; 3], b: [f32; 3], t: f32) -> [u8; 3] {
    [0, 1, 2].map(|i| (a[i] + (b[i] - a[i]) * t).round().clamp(0.0, 255.0) as u8)
}

/// The colour of `v` on `scale` (grey when not finite).
pub fn colour(v: f32, scale: Scale) -> [u8; 3] {
    if !v.is_finite() {
        return GREY;
    }
    match scale {
        Scale::Diverging { centre, lim } => {
            let t = ((v - centre) / lim.max(1e-12)).clamp(-1.0, 1.0);
            let white = [247.0, 247.0, 247.0];
            if t < 0.0 {
                lerp(white, [33.0, 102.0, 172.0], -t)
            } else {
                lerp(white, [178.0, 24.0, 43.0], t)
            }
        }
        Scale::Sequential(max) => {
            let t = (v / max.max(1e-12)).clamp(0.0, 1.0);
            if t < 0.5 {
                lerp([0.0, 0.0, 0.0], [200.0, 30.0, 30.0], 2.0 * t)
            } else {
                lerp([200.0, 30.0, 30.0], [255.0, 230.0, 80.0], 2.0 * t - 1.0)
            }
        }
    }
}

/// The median of the finite values (0 when none): the white of a diverging scale, so a field
/// far from zero (SST in °C) shows its anomalies rather than one colour.
pub fn robust_centre(values: &[f32]) -> f32 {
    let mut a: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if a.is_empty() {
        return 0.0;
    }
    a.sort_by(f32::total_cmp);
    a[a.len() / 2]
}

/// A colour limit symmetric about `centre` that ignores the extreme 1% (robust to a few outliers).
pub fn robust_limit(values: &[f32], centre: f32) -> f32 {
    let mut a: Vec<f32> = values.iter().filter(|v| v.is_finite()).map(|v| (v - centre).abs()).collect();
    if a.is_empty() {
        return 1.0;
    }
    a.sort_by(f32::total_cmp);
    a[((a.len() - 1) as f64 * 0.99) as usize].max(1e-6)
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// PNG bytes of an RGB image (filter type 0 on every row).
pub fn encode_png(img: &Image) -> Result<Vec<u8>> {
    ensure!(img.width > 0 && img.height > 0 && img.rgb.len() == img.width * img.height * 3, "empty or malformed image");
    let mut raw = Vec::with_capacity((img.width * 3 + 1) * img.height);
    for row in img.rgb.chunks_exact(img.width * 3) {
        raw.push(0);
        raw.extend_from_slice(row);
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&raw)?;
    let idat = z.finish()?;
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(img.width as u32).to_be_bytes());
    ihdr.extend_from_slice(&(img.height as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit, truecolour, deflate, no filter set, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    Ok(out)
}

pub fn write_png(path: &Path, img: &Image) -> Result<()> {
    crate::atomic::write_bytes(path, &encode_png(img)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn png_decodes_to_the_pixels_drawn() {
        // A 3×2 image: red, blue, grey in the first row; white below.
        let (red, blue) = (
            colour(1.0, Scale::Diverging { centre: 0.0, lim: 1.0 }),
            colour(-1.0, Scale::Diverging { centre: 0.0, lim: 1.0 }),
        );
        let mut rgb = vec![255u8; 3 * 2 * 3];
        for (x, c) in [red, blue, GREY].iter().enumerate() {
            rgb[x * 3..x * 3 + 3].copy_from_slice(c);
        }
        let img = Image { width: 3, height: 2, rgb };
        let png = encode_png(&img).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        // IHDR CRC is checked by recomputing it.
        let mut crc = flate2::Crc::new();
        crc.update(&png[12..29]);
        assert_eq!(crc.sum().to_be_bytes(), png[29..33]);
        let idat_len = u32::from_be_bytes(png[33..37].try_into().unwrap()) as usize;
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&png[41..41 + idat_len]).read_to_end(&mut raw).unwrap();
        let px = |x: usize, y: usize| {
            let o = y * (img.width * 3 + 1) + 1 + x * 3;
            [raw[o], raw[o + 1], raw[o + 2]]
        };
        assert_eq!(px(0, 0), [178, 24, 43], "+lim is red");
        assert_eq!(px(1, 0), [33, 102, 172], "−lim is blue");
        assert_eq!(px(2, 0), GREY, "hidden cells are grey");
        assert_eq!(px(0, 1), [255, 255, 255]);
    }
}
