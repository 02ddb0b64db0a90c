//! Labelled figures of fields drawn with `plotters` (bitmap backend, the embedded DejaVu Sans
//! font, so no system font or library is needed): rows of panels, each with a title, and at
//! the right of each row one colour bar per scale used in it (values with their units, errors,
//! standard deviations), its limits written on it. Grids with coordinates (imported lon/lat)
//! are drawn as maps: cells placed by their coordinates, axes labelled with names and units,
//! land in a land colour. Colour maps are those of [`crate::plot`].

use crate::plot::{colour, Image, Panel, Scale};
use anyhow::{ensure, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;

/// Painted where a site can never be observed (land).
const LAND: RGBColor = RGBColor(205, 185, 140);
const FONT: &str = "sans-serif";
const TITLE_PX: u32 = 20;
/// Space of a map's axes: tick labels and the axis name.
const MAP_LEFT: u32 = 58;
const MAP_BOTTOM: u32 = 40;
const BAR_PX: u32 = 14;

/// A panel with its title and, optionally, the never-observable sites (1 = land).
pub struct Titled {
    pub title: String,
    pub panel: Panel,
    pub land: Option<Vec<u8>>,
}

/// A colour bar: what it measures (with units) and its scale.
pub struct ColourBar {
    pub label: String,
    pub scale: Scale,
}

pub struct Row {
    pub panels: Vec<Titled>,
    pub bars: Vec<ColourBar>,
}

/// The coordinates of a map view: each axis's label (name and units) and cell centres.
pub struct MapAxes {
    pub x_label: String,
    pub x: Vec<f64>,
    pub y_label: String,
    pub y: Vec<f64>,
}

fn fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font compiled into the binary; failure is impossible
        // short of a corrupt build, and would only leave text out.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

/// Cell edges of monotonic centres `c` (midpoints, the ends extrapolated by half a cell).
fn edges(c: &[f64]) -> Vec<f64> {
    let n = c.len();
    if n == 1 {
        return vec![c[0] - 0.5, c[0] + 0.5];
    }
    let mut e = Vec::with_capacity(n + 1);
    e.push(c[0] - (c[1] - c[0]) / 2.0);
    for i in 0..n - 1 {
        e.push((c[i] + c[i + 1]) / 2.0);
    }
    e.push(c[n - 1] + (c[n - 1] - c[n - 2]) / 2.0);
    e
}

/// A short label of a value for a colour bar.
fn tick(v: f32) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e4).contains(&a) {
        format!("{v:.2e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The value range a scale spans, low to high.
fn range(scale: Scale) -> (f32, f32) {
    match scale {
        Scale::Diverging { centre, lim } => (centre - lim, centre + lim),
        Scale::Sequential(max) => (0.0, max),
    }
}

/// Approximate width in pixels of `text` at `size` (DejaVu Sans averages ~0.55 em).
fn text_width(text: &str, size: u32) -> u32 {
    (text.chars().count() as f64 * size as f64 * 0.56).ceil() as u32
}

fn cell_colour(t: &Titled, i: usize) -> RGBColor {
    if t.land.as_ref().is_some_and(|l| l[i] != 0) {
        return LAND;
    }
    let p = &t.panel;
    let [r, g, b] =
        if p.shown.as_ref().is_some_and(|m| m[i] == 0) { crate::plot::GREY } else { colour(p.values[i], p.scale) };
    RGBColor(r, g, b)
}

fn draw_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the figure: {e:?}")
}

/// Draws `rows` (every panel `h`×`w` cells of `zoom` pixels) into an image.
pub fn render(rows: &[Row], zoom: usize, map: Option<&MapAxes>) -> Result<Image> {
    fonts();
    ensure!(!rows.is_empty() && rows.iter().all(|r| !r.panels.is_empty()), "a figure needs at least one panel");
    let (h, w) = (rows[0].panels[0].panel.h, rows[0].panels[0].panel.w);
    if let Some(m) = map {
        ensure!(m.x.len() == w && m.y.len() == h, "map coordinates do not match the {h}×{w} grid");
    }
    let (pw, ph) = ((w * zoom) as u32, (h * zoom) as u32);
    let (left, bottom) = if map.is_some() { (MAP_LEFT, MAP_BOTTOM) } else { (6, 6) };
    let title_w = rows.iter().flat_map(|r| &r.panels).map(|t| text_width(&t.title, 13) + 8).max().unwrap_or(0);
    let block_w = (left + pw + 10).max(title_w + if map.is_some() { left } else { 0 });
    let block_h = TITLE_PX + ph + bottom;
    let bar_w = |b: &ColourBar| {
        let (lo, hi) = range(b.scale);
        let ticks = [lo, (lo + hi) / 2.0, hi].iter().map(|&v| text_width(&tick(v), 11)).max().unwrap_or(0);
        (BAR_PX + 6 + ticks + 8).max(text_width(&b.label, 12) + 8)
    };
    let row_w = |r: &Row| block_w * r.panels.len() as u32 + r.bars.iter().map(bar_w).sum::<u32>() + 10;
    let width = rows.iter().map(row_w).max().unwrap_or(1);
    let height = block_h * rows.len() as u32 + 6;
    let mut buf = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        let text = |size: u32| TextStyle::from((FONT, size).into_font()).color(&BLACK);
        for (r, row) in rows.iter().enumerate() {
            let y0 = 4 + r as u32 * block_h;
            for (c, t) in row.panels.iter().enumerate() {
                let x0 = 4 + c as u32 * block_w;
                // Over the plotting area, clear of a map's axis label.
                let tx = if map.is_some() { x0 + left - 8 } else { x0 };
                root.draw(&Text::new(t.title.clone(), (tx as i32, y0 as i32 + 2), text(13))).map_err(draw_err)?;
                let (px0, py0) = ((x0 + left) as i32, (y0 + TITLE_PX) as i32);
                match map {
                    None => {
                        for i in 0..h * w {
                            let (y, x) = ((i / w * zoom) as i32, (i % w * zoom) as i32);
                            let cell = [(px0 + x, py0 + y), (px0 + x + zoom as i32, py0 + y + zoom as i32)];
                            root.draw(&Rectangle::new(cell, cell_colour(t, i).filled())).map_err(draw_err)?;
                        }
                    }
                    Some(m) => draw_map(&root, t, m, (px0, py0), (pw, ph)).map_err(draw_err)?,
                }
            }
            // Colour bars: a gradient from the scale's top (high) to its bottom, three limits.
            let mut bx = 4 + row.panels.len() as u32 * block_w;
            for b in &row.bars {
                let (lo, hi) = range(b.scale);
                root.draw(&Text::new(b.label.clone(), (bx as i32, y0 as i32 + 2), text(12))).map_err(draw_err)?;
                let top = (y0 + TITLE_PX) as i32;
                for j in 0..ph as i32 {
                    let v = hi - (hi - lo) * (j as f32 + 0.5) / ph as f32;
                    let [cr, cg, cb] = colour(v, b.scale);
                    let line = [(bx as i32, top + j), (bx as i32 + BAR_PX as i32, top + j + 1)];
                    root.draw(&Rectangle::new(line, RGBColor(cr, cg, cb).filled())).map_err(draw_err)?;
                }
                let frame = [(bx as i32, top), (bx as i32 + BAR_PX as i32, top + ph as i32)];
                root.draw(&Rectangle::new(frame, BLACK.stroke_width(1))).map_err(draw_err)?;
                for (k, v) in [hi, (lo + hi) / 2.0, lo].into_iter().enumerate() {
                    let y = top + (k as i32 * ph as i32) / 2
                        - if k == 2 {
                            11
                        } else if k == 1 {
                            5
                        } else {
                            0
                        };
                    root.draw(&Text::new(tick(v), (bx as i32 + BAR_PX as i32 + 4, y), text(11))).map_err(draw_err)?;
                }
                bx += bar_w(b);
            }
        }
        root.present().map_err(draw_err)?;
    }
    Ok(Image { width: width as usize, height: height as usize, rgb: buf })
}

/// One panel as a map: cells placed by their coordinates in a `pw`×`ph` plotting area at
/// `origin`, with labelled axes (the chart's own ticks) to the left and below.
fn draw_map<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    t: &Titled,
    m: &MapAxes,
    origin: (i32, i32),
    (pw, ph): (u32, u32),
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (xe, ye) = (edges(&m.x), edges(&m.y));
    let span = |e: &[f64]| {
        (e.iter().copied().fold(f64::INFINITY, f64::min), e.iter().copied().fold(f64::NEG_INFINITY, f64::max))
    };
    let ((x_lo, x_hi), (y_lo, y_hi)) = (span(&xe), span(&ye));
    let area = root.clone().shrink((origin.0 - MAP_LEFT as i32, origin.1), (pw + MAP_LEFT, ph + MAP_BOTTOM));
    let mut chart = ChartBuilder::on(&area)
        .x_label_area_size(MAP_BOTTOM)
        .y_label_area_size(MAP_LEFT)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(4)
        .y_labels(4)
        .x_desc(m.x_label.as_str())
        .y_desc(m.y_label.as_str())
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 11))
        .axis_desc_style((FONT, 11))
        .draw()?;
    let (h, w) = (m.y.len(), m.x.len());
    chart.draw_series((0..h * w).map(|i| {
        let (r, c) = (i / w, i % w);
        Rectangle::new([(xe[c], ye[r]), (xe[c + 1], ye[r + 1])], cell_colour(t, i).filled())
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel(v: f32) -> Panel {
        Panel { h: 4, w: 6, values: vec![v; 24], shown: None, scale: Scale::Diverging { centre: 0.0, lim: 1.0 } }
    }

    fn px(img: &Image, x: usize, y: usize) -> [u8; 3] {
        let o = (y * img.width + x) * 3;
        [img.rgb[o], img.rgb[o + 1], img.rgb[o + 2]]
    }

    #[test]
    fn panels_have_titles_colour_bars_and_land() {
        let mut land = vec![0u8; 24];
        land[0] = 1;
        let rows = vec![Row {
            panels: vec![
                Titled { title: "truth".into(), panel: panel(1.0), land: None },
                Titled { title: "lacuna".into(), panel: panel(-1.0), land: Some(land) },
            ],
            bars: vec![ColourBar { label: "SST (Deg C)".into(), scale: Scale::Diverging { centre: 0.0, lim: 1.0 } }],
        }];
        let img = render(&rows, 5, None).unwrap();
        // The first panel's cells start below the title, after the left margin.
        let (x0, y0) = (4 + 6, 4 + TITLE_PX as usize);
        assert_eq!(px(&img, x0 + 12, y0 + 12), [178, 24, 43], "+lim is red");
        let block_w = ((6 + 30 + 10) as u32).max(text_width("lacuna", 13) + 8) as usize;
        assert_eq!(px(&img, x0 + block_w + 1, y0 + 1), [LAND.0, LAND.1, LAND.2], "land cell");
        assert_eq!(px(&img, x0 + block_w + 12, y0 + 12), [33, 102, 172], "−lim is blue");
        // Titles are drawn: dark pixels in the title band of the first panel.
        let dark = (0..40)
            .flat_map(|x| (4..4 + TITLE_PX as usize).map(move |y| (x, y)))
            .filter(|&(x, y)| px(&img, x, y)[0] < 100);
        assert!(dark.count() > 10, "title text");
        // The colour bar, right of the panels: red at its top, blue at its bottom.
        let bx = 4 + 2 * block_w + 5;
        assert_eq!(px(&img, bx, y0 + 1), colour(1.0 - 2.0 * 1.5 / 20.0, Scale::Diverging { centre: 0.0, lim: 1.0 }));
        assert!(px(&img, bx, y0 + 18)[2] > px(&img, bx, y0 + 18)[0], "blue end at the bottom");
    }

    #[test]
    fn maps_place_cells_by_coordinates_and_check_them() {
        let rows = vec![Row {
            panels: vec![Titled { title: "observed".into(), panel: panel(1.0), land: None }],
            bars: vec![],
        }];
        let axes = MapAxes {
            x_label: "lon (degrees_east)".into(),
            x: (0..6).map(|i| 180.0 + 2.0 * i as f64).collect(),
            y_label: "lat (degrees_north)".into(),
            y: (0..4).map(|i| -10.0 + 2.0 * i as f64).collect(),
        };
        let img = render(&rows, 8, Some(&axes)).unwrap();
        assert!(img.width >= (MAP_LEFT + 48) as usize && img.height >= (TITLE_PX + 32 + MAP_BOTTOM) as usize);
        let red = (0..img.width)
            .flat_map(|x| (0..img.height).map(move |y| (x, y)))
            .filter(|&(x, y)| px(&img, x, y) == [178, 24, 43]);
        assert!(red.count() >= 40 * 28, "the cells fill the plotting area");
        let bad = MapAxes { x: vec![0.0; 3], ..axes };
        assert!(render(&rows, 8, Some(&bad)).is_err());
        assert_eq!(edges(&[1.0, 3.0, 5.0]), [0.0, 2.0, 4.0, 6.0]);
        assert_eq!(tick(0.00001), "1.00e-5");
    }
}
