//! PNG plots drawn with plotters' bitmap backend. Plotters draws the shapes;
//! text is drawn afterwards with our 8x8 bitmap font, so no system font or
//! fontconfig is ever needed.

use std::path::Path;

use image::RgbImage;
use plotters::prelude::*;

use crate::font;
use crate::harness::{EvalError, EvalOutcome, MethodResult};

const PALETTE: [RGBColor; 6] = [
    RGBColor(120, 120, 120),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
];

struct Label {
    x: i64,
    y: i64,
    text: String,
    color: [u8; 3],
}

fn label(x: i64, y: i64, text: impl Into<String>) -> Label {
    Label {
        x,
        y,
        text: text.into(),
        color: [20, 20, 20],
    }
}

/// Draws shapes with plotters into an RGB buffer, then the labels, then
/// writes a PNG atomically (temp file + rename).
fn render(
    path: &Path,
    w: u32,
    h: u32,
    draw: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<Vec<Label>, String>,
) -> Result<(), EvalError> {
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let labels = {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let labels = draw(&root).map_err(|message| EvalError::Draw {
            path: path.to_path_buf(),
            message,
        })?;
        root.present().map_err(|e| EvalError::Draw {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        labels
    };
    let mut img = RgbImage::from_raw(w, h, buf).expect("buffer sized for the image");
    for l in labels {
        font::draw_text(&mut img, l.x, l.y, &l.text, 1, l.color, 1.0);
    }
    let tmp = path.with_extension("png.tmp");
    img.save_with_format(&tmp, image::ImageFormat::Png)
        .map_err(|source| EvalError::Plot {
            path: path.to_path_buf(),
            source,
        })?;
    crate::report::sync_and_rename(&tmp, path)
}

fn e2s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// The methods shown in the plots (a readable subset).
pub fn plotted_methods(out: &EvalOutcome) -> Vec<&MethodResult> {
    let wanted = [
        "pdq",
        "pdq+dihedral+trim",
        "pdq+query-all",
        "pdq+augment+query-all",
        "grad+dihedral+trim",
        "fusion",
    ];
    wanted
        .iter()
        .filter_map(|w| out.methods.iter().find(|m| m.name == *w))
        .collect()
}

/// Horizontal bars: recall per transform, one bar per plotted method.
pub fn recall_per_transform(out: &EvalOutcome, path: &Path) -> Result<(), EvalError> {
    let ms = plotted_methods(out);
    let nt = out.transforms.len();
    let bar = 4u32;
    let row = bar * ms.len() as u32 + 6;
    let (left, top, plot_w) = (270u32, 40u32 + 12 * ms.len() as u32, 560u32);
    let w = left + plot_w + 30;
    let h = top + row * nt as u32 + 30;
    render(path, w, h, |root| {
        let mut labels = vec![label(
            8,
            8,
            "Recall per transform at precision >= 99.99% (each method's own threshold)",
        )];
        for (k, m) in ms.iter().enumerate() {
            let y = 24 + 12 * k as i32;
            root.draw(&Rectangle::new(
                [(8, y), (24, y + 8)],
                PALETTE[k % PALETTE.len()].filled(),
            ))
            .map_err(e2s)?;
            labels.push(label(30, y as i64, m.name.clone()));
        }
        // Grid at 0, 25, 50, 75, 100%.
        for g in 0..=4 {
            let x = (left + plot_w * g / 4) as i32;
            root.draw(&PathElement::new(
                vec![(x, top as i32 - 4), (x, (top + row * nt as u32) as i32)],
                RGBColor(200, 200, 200),
            ))
            .map_err(e2s)?;
            labels.push(label(
                x as i64 - 12,
                (top + row * nt as u32) as i64 + 6,
                format!("{}%", g * 25),
            ));
        }
        for (t, name) in out.transforms.iter().enumerate() {
            let y0 = top + row * t as u32;
            labels.push(label(8, y0 as i64 + (row as i64 - 8) / 2, name.clone()));
            for (k, m) in ms.iter().enumerate() {
                let r = m.recall_per_transform.get(t).copied().unwrap_or(0.0);
                let y = (y0 + 3 + bar * k as u32) as i32;
                let x1 = left as i32 + (plot_w as f64 * r).round() as i32;
                root.draw(&Rectangle::new(
                    [
                        (left as i32, y),
                        (x1.max(left as i32 + 1), y + bar as i32 - 1),
                    ],
                    PALETTE[k % PALETTE.len()].filled(),
                ))
                .map_err(e2s)?;
            }
        }
        Ok(labels)
    })
}

/// Distance histograms of matches vs non-matches for plain PDQ and the
/// gradient signature (fractions of each class per bin).
pub fn histograms(out: &EvalOutcome, path: &Path) -> Result<(), EvalError> {
    let panels: Vec<(&MethodResult, f32, &str)> = [
        ("pdq", 256.0f32, "PDQ Hamming distance"),
        ("grad", 2.0f32, "GGS-144 squared L2"),
    ]
    .iter()
    .filter_map(|(n, max, title)| {
        out.methods
            .iter()
            .find(|m| m.name == *n)
            .map(|m| (m, *max, *title))
    })
    .collect();
    let (pw, ph) = (420u32, 260u32);
    let w = pw * panels.len().max(1) as u32 + 40;
    let h = ph + 90;
    render(path, w, h, |root| {
        let mut labels = vec![label(
            8,
            8,
            "Distance histograms: matches (blue) vs non-matches (red), share of each class per bin",
        )];
        for (p, (m, max, title)) in panels.iter().enumerate() {
            let bins = 64usize;
            let hist = |v: &[f32]| -> Vec<f64> {
                let mut c = vec![0f64; bins];
                for &d in v {
                    let b = ((d / max * bins as f32) as usize).min(bins - 1);
                    c[b] += 1.0;
                }
                let n = v.len().max(1) as f64;
                c.iter().map(|x| x / n).collect()
            };
            let hp = hist(&m.scores.pos);
            let hn = hist(&m.scores.neg);
            let peak = hp.iter().chain(&hn).cloned().fold(0.0, f64::max).max(1e-9);
            let x0 = 30 + pw as i32 * p as i32;
            let y0 = 40i32;
            let (aw, ah) = (pw as i32 - 40, ph as i32 - 40);
            root.draw(&Rectangle::new(
                [(x0, y0), (x0 + aw, y0 + ah)],
                RGBColor(160, 160, 160),
            ))
            .map_err(e2s)?;
            for (series, color) in [(&hn, RGBColor(214, 39, 40)), (&hp, RGBColor(31, 119, 180))] {
                for (b, v) in series.iter().enumerate() {
                    let bx0 = x0 + (aw as f64 * b as f64 / bins as f64) as i32;
                    let bx1 = x0 + (aw as f64 * (b + 1) as f64 / bins as f64) as i32;
                    let by = y0 + ah - (ah as f64 * v / peak) as i32;
                    if *v > 0.0 {
                        root.draw(&Rectangle::new(
                            [(bx0, by), (bx1, y0 + ah)],
                            color.mix(0.55).filled(),
                        ))
                        .map_err(e2s)?;
                    }
                }
            }
            if let Some(t) = m.at_target.map(|o| o.threshold) {
                let tx = x0 + (aw as f64 * (t / max) as f64) as i32;
                root.draw(&PathElement::new(
                    vec![(tx, y0), (tx, y0 + ah)],
                    BLACK.stroke_width(1),
                ))
                .map_err(e2s)?;
                labels.push(label(tx as i64 + 3, y0 as i64 + 4, format!("t={t}")));
            }
            labels.push(label(x0 as i64, (y0 + ah + 8) as i64, "0"));
            labels.push(label(
                (x0 + aw - 24) as i64,
                (y0 + ah + 8) as i64,
                format!("{max}"),
            ));
            labels.push(label(
                x0 as i64 + 60,
                (y0 + ah + 24) as i64,
                title.to_string(),
            ));
        }
        Ok(labels)
    })
}

/// ROC: recall against false-positive rate (log scale, 1e-7..1).
pub fn roc(out: &EvalOutcome, path: &Path) -> Result<(), EvalError> {
    let ms = plotted_methods(out);
    let (w, h) = (760u32, 520u32);
    let (x0, y0, aw, ah) = (60i32, 50i32, 640i32, 400i32);
    let lx = |fpr: f64| -> i32 {
        let l = fpr.max(1e-7).log10().clamp(-7.0, 0.0);
        x0 + ((l + 7.0) / 7.0 * aw as f64) as i32
    };
    let ly = |r: f64| -> i32 { y0 + ah - (r * ah as f64) as i32 };
    render(path, w, h, |root| {
        let mut labels = vec![label(
            8,
            8,
            "ROC: recall vs false-positive rate over distinct-image pairs (log x)",
        )];
        root.draw(&Rectangle::new(
            [(x0, y0), (x0 + aw, y0 + ah)],
            RGBColor(160, 160, 160),
        ))
        .map_err(e2s)?;
        for e in -7..=0 {
            let x = lx(10f64.powi(e));
            root.draw(&PathElement::new(
                vec![(x, y0), (x, y0 + ah)],
                RGBColor(225, 225, 225),
            ))
            .map_err(e2s)?;
            labels.push(label(x as i64 - 12, (y0 + ah + 6) as i64, format!("1e{e}")));
        }
        for g in 0..=4 {
            let y = ly(g as f64 / 4.0);
            root.draw(&PathElement::new(
                vec![(x0, y), (x0 + aw, y)],
                RGBColor(225, 225, 225),
            ))
            .map_err(e2s)?;
            labels.push(label(8, y as i64 - 4, format!("{}%", g * 25)));
        }
        for (k, m) in ms.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            let pts: Vec<(i32, i32)> = m.roc.iter().map(|&(f, r)| (lx(f), ly(r))).collect();
            if pts.len() >= 2 {
                root.draw(&PathElement::new(pts, color.stroke_width(2)))
                    .map_err(e2s)?;
            }
            let y = y0 + ah - 20 - 14 * (ms.len() - k) as i32;
            root.draw(&Rectangle::new(
                [(x0 + aw - 230, y), (x0 + aw - 214, y + 8)],
                color.filled(),
            ))
            .map_err(e2s)?;
            labels.push(label((x0 + aw - 208) as i64, y as i64, m.name.clone()));
        }
        labels.push(label(
            x0 as i64 + 200,
            (y0 + ah + 24) as i64,
            "false positives per distinct-image comparison",
        ));
        Ok(labels)
    })
}
