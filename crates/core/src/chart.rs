//! Line charts as PNG (learning curves): series of (x, y) points and labelled horizontal
//! reference lines (classical baselines, the Bayes floor), a logarithmic y axis, text in the
//! public-domain 8×8 bitmap font of `font8x8`. Written on [`crate::plot::Image`] so it shares
//! the PNG encoder of the field figures.

use crate::plot::Image;
use font8x8::UnicodeFonts;

/// One curve.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A chart: curves, horizontal reference lines, axis labels.
#[derive(Clone, Debug, Default)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub lines: Vec<(String, f64)>,
}

const W: usize = 900;
const H: usize = 560;
const LEFT: usize = 90;
const RIGHT: usize = 250;
const TOP: usize = 56;
const BOTTOM: usize = 60;

/// Distinct colours for curves (solid) and reference lines (dashed).
const PALETTE: [[u8; 3]; 8] = [
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [148, 103, 189],
    [255, 127, 14],
    [23, 190, 207],
    [140, 86, 75],
    [227, 119, 194],
];
const GREYS: [[u8; 3]; 7] =
    [[0, 0, 0], [100, 100, 100], [160, 120, 0], [0, 110, 110], [130, 0, 130], [170, 70, 0], [60, 60, 160]];

struct Canvas {
    img: Image,
}

impl Canvas {
    fn put(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.img.width && (y as usize) < self.img.height {
            let i = 3 * (y as usize * self.img.width + x as usize);
            self.img.rgb[i..i + 3].copy_from_slice(&c);
        }
    }

    /// A 2-pixel line (Bresenham); `dash` > 0 leaves gaps of that length.
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3], dash: i64) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err, mut n) = (x0, y0, dx + dy, 0i64);
        loop {
            if dash == 0 || (n / dash) % 2 == 0 {
                self.put(x, y, c);
                self.put(x, y + 1, c);
            }
            n += 1;
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Text with its top-left corner at (x, y), `scale` pixels per font pixel.
    fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3], scale: i64) {
        for (k, ch) in s.chars().enumerate() {
            let glyph = font8x8::BASIC_FONTS.get(ch).or_else(|| font8x8::LATIN_FONTS.get(ch)).unwrap_or([0; 8]);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits >> col & 1 == 1 {
                        for (a, b) in (0..scale).flat_map(|a| (0..scale).map(move |b| (a, b))) {
                            self.put(x + (k as i64 * 8 + col) * scale + a, y + row as i64 * scale + b, c);
                        }
                    }
                }
            }
        }
    }
}

/// The title and its scale (font pixels per 8-pixel glyph column): double size when it fits in
/// `width` pixels, else single size, else cut to fit with a trailing "..." (a long case name
/// must not run off the image).
fn fit_title(title: &str, width: usize) -> (String, i64) {
    let chars = title.chars().count();
    if chars * 16 <= width {
        return (title.to_string(), 2);
    }
    let room = width / 8;
    if chars <= room {
        return (title.to_string(), 1);
    }
    let cut: String = title.chars().take(room.saturating_sub(3)).collect();
    (format!("{cut}..."), 1)
}

/// Three significant digits, compact.
fn label(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let mag = v.abs().log10().floor() as i32;
    if !(-3..5).contains(&mag) {
        return format!("{v:.2e}");
    }
    let decimals = (2 - mag).max(0) as usize;
    format!("{v:.decimals$}")
}

impl Chart {
    /// Draws the chart. Non-positive or non-finite y values are left out (log axis).
    pub fn draw(&self) -> Image {
        let mut cv = Canvas { img: Image { width: W, height: H, rgb: vec![255; W * H * 3] } };
        let pts = || self.series.iter().flat_map(|s| s.points.iter().copied());
        let ok = |y: f64| y.is_finite() && y > 0.0;
        let ys: Vec<f64> = pts().map(|p| p.1).chain(self.lines.iter().map(|l| l.1)).filter(|&y| ok(y)).collect();
        let xs: Vec<f64> = pts().map(|p| p.0).filter(|x| x.is_finite()).collect();
        let (ylo, yhi) = ys.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| (a.min(y), b.max(y)));
        let (ylo, yhi) = if ys.is_empty() { (1.0, 10.0) } else { (ylo / 1.05, yhi * 1.05) };
        let (ylo, yhi) = if yhi / ylo < 1.01 { (ylo / 1.1, yhi * 1.1) } else { (ylo, yhi) };
        let xhi = xs.iter().copied().fold(0.0f64, f64::max).max(1e-9);
        let (pw, ph) = ((W - LEFT - RIGHT) as f64, (H - TOP - BOTTOM) as f64);
        let px = |x: f64| LEFT as i64 + (x / xhi * pw).round() as i64;
        let py = |y: f64| TOP as i64 + ((yhi.ln() - y.ln()) / (yhi.ln() - ylo.ln()) * ph).round() as i64;
        let black = [0, 0, 0];
        let (x0, x1, y0, y1) = (LEFT as i64, (W - RIGHT) as i64, TOP as i64, (H - BOTTOM) as i64);
        cv.line((x0, y1), (x1, y1), black, 0);
        cv.line((x0, y0), (x0, y1), black, 0);
        // Five ticks on each axis (y evenly spaced in log).
        for i in 0..=4 {
            let f = i as f64 / 4.0;
            let xv = xhi * f;
            let xp = px(xv);
            cv.line((xp, y1), (xp, y1 + 5), black, 0);
            let l = label(xv);
            cv.text(xp - 4 * l.len() as i64, y1 + 10, &l, black, 1);
            let yv = (ylo.ln() + f * (yhi.ln() - ylo.ln())).exp();
            let yp = py(yv);
            cv.line((x0 - 5, yp), (x0, yp), black, 0);
            let l = label(yv);
            cv.text(x0 - 10 - 8 * l.len() as i64, yp - 4, &l, black, 1);
        }
        let (title, scale) = fit_title(&self.title, W - LEFT - 8);
        cv.text(LEFT as i64, 8, &title, black, scale);
        cv.text((LEFT as f64 + pw / 2.0) as i64 - 4 * self.x_label.len() as i64, y1 + 30, &self.x_label, black, 1);
        cv.text(8, y0 - 16, &self.y_label, black, 1);
        let mut legend_y = y0;
        let lx = x1 + 15;
        for (i, (name, v)) in self.lines.iter().enumerate().filter(|(_, (_, v))| ok(*v)) {
            let c = GREYS[i % GREYS.len()];
            cv.line((x0, py(*v)), (x1, py(*v)), c, 6);
            cv.line((lx, legend_y + 4), (lx + 20, legend_y + 4), c, 6);
            cv.text(lx + 26, legend_y, &format!("{name} {}", label(*v)), c, 1);
            legend_y += 16;
        }
        legend_y += 8;
        for (i, s) in self.series.iter().enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            let p: Vec<(i64, i64)> =
                s.points.iter().filter(|p| ok(p.1) && p.0.is_finite()).map(|&(x, y)| (px(x), py(y))).collect();
            for w in p.windows(2) {
                cv.line(w[0], w[1], c, 0);
            }
            for &(x, y) in &p {
                for d in -2..=2 {
                    cv.put(x + d, y, c);
                    cv.put(x, y + d, c);
                }
            }
            cv.line((lx, legend_y + 4), (lx + 20, legend_y + 4), c, 0);
            let last = s.points.last().map(|p| format!(" {}", label(p.1))).unwrap_or_default();
            cv.text(lx + 26, legend_y, &format!("{}{last}", s.name), c, 1);
            legend_y += 16;
        }
        cv.img
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_and_lines_are_drawn_in_their_colours() {
        let chart = Chart {
            title: "t".into(),
            x_label: "seconds".into(),
            y_label: "MSE".into(),
            series: vec![Series { name: "a".into(), points: vec![(0.0, 2.0), (10.0, 1.0), (20.0, 0.5)] }],
            lines: vec![("floor".into(), 0.4), ("bad".into(), f64::NAN)],
        };
        let img = chart.draw();
        assert_eq!((img.width, img.height), (W, H));
        let count = |c: [u8; 3]| img.rgb.chunks_exact(3).filter(|p| *p == c).count();
        assert!(count(PALETTE[0]) > 200, "the curve is missing");
        assert!(count(GREYS[0]) > 500, "axes, ticks and the reference line are missing");
        assert_eq!(label(0.19329), "0.193");
        assert_eq!(label(10.86), "10.9");
        assert_eq!(label(1234.0), "1234");
    }

    #[test]
    fn a_long_title_shrinks_then_is_cut_to_the_width() {
        assert_eq!(fit_title("GRF 32²", 160), ("GRF 32²".to_string(), 2));
        let (t, scale) = fit_title(&"x".repeat(15), 160);
        assert_eq!((t.chars().count(), scale), (15, 1));
        let (t, scale) = fit_title(&"x".repeat(40), 160);
        assert_eq!((t.chars().count() * 8, scale), (160, 1));
        assert!(t.ends_with("..."));
    }
}
