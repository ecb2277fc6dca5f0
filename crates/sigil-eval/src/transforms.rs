//! The transform suite: the edits a matched image goes through between the
//! original and the copy that reaches a platform (re-encoding, rescaling,
//! crops, padding, rotations, colour edits, overlays, screenshots).
//!
//! Every transform is deterministic given a [`SplitMix64`] seeded from the
//! image and the transform, so a run can be repeated bit for bit.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};

use sigil_core::robust::geometry::{pad_flat, pad_mirror, rotate_degrees};

use crate::font;
use crate::rng::SplitMix64;

/// Why a transform could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error("JPEG re-encode at quality {quality} failed: {source}")]
    Jpeg {
        quality: u8,
        #[source]
        source: image::ImageError,
    },
    #[error(
        "transform {name} needs an image of at least {min}x{min} pixels, got {width}x{height}"
    )]
    TooSmall {
        name: String,
        min: u32,
        width: u32,
        height: u32,
    },
    #[error("unknown transform {0:?}")]
    Unknown(String),
}

/// One edit. Percentages are of the image dimension; angles in degrees,
/// positive = counter-clockwise.
#[derive(Clone, Debug, PartialEq)]
pub enum Edit {
    Identity,
    /// Re-encode as baseline JPEG at this quality and decode again.
    Jpeg(u8),
    /// Rescale both sides by this factor (Triangle filter, antialiased).
    Resize(f32),
    /// Keep a window of (1 - p) of each side at a random position.
    Crop(f32),
    /// Add a flat border of random colour: p/2 of each side on every edge.
    PadFlat(f32),
    /// Add a mirrored border: p/2 of each side on every edge.
    PadMirror(f32),
    /// Rotate about the centre by an angle, same canvas, black corners.
    Rotate(f32),
    Rot90,
    Rot180,
    Rot270,
    FlipH,
    FlipV,
    /// Gaussian blur with this sigma.
    Blur(f32),
    Gamma(f32),
    /// Add this value to every channel.
    Brightness(i16),
    /// Scale around mid-grey by this factor.
    Contrast(f32),
    /// Additive Gaussian noise with this sigma (per channel).
    Noise(f32),
    /// Semi-transparent text across the image.
    TextWatermark,
    /// An opaque logo in a corner.
    LogoOverlay,
    Vignette,
    Greyscale,
    /// Rescale the width by this factor, keep the height.
    Stretch(f32),
    /// A phone-screenshot look: UI bars and margins around the image, then
    /// the whole thing rescaled to 0.6x.
    Screenshot,
}

/// A named transform: one edit or a chain of edits applied in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Transform {
    pub name: String,
    pub edits: Vec<Edit>,
}

impl Transform {
    fn one(name: &str, e: Edit) -> Self {
        Transform {
            name: name.to_string(),
            edits: vec![e],
        }
    }

    fn chain(name: &str, edits: Vec<Edit>) -> Self {
        Transform {
            name: name.to_string(),
            edits,
        }
    }

    /// Applies the chain to `img`, drawing randomness from `rng`.
    pub fn apply(&self, img: &RgbImage, rng: &mut SplitMix64) -> Result<RgbImage, TransformError> {
        if img.width() < 8 || img.height() < 8 {
            return Err(TransformError::TooSmall {
                name: self.name.clone(),
                min: 8,
                width: img.width(),
                height: img.height(),
            });
        }
        let mut cur = img.clone();
        for e in &self.edits {
            cur = apply_edit(e, &cur, rng)?;
        }
        Ok(cur)
    }
}

/// The full suite of issue 6 (identity first).
pub fn standard_suite() -> Vec<Transform> {
    use Edit::*;
    vec![
        Transform::one("identity", Identity),
        Transform::one("jpeg_q30", Jpeg(30)),
        Transform::one("jpeg_q50", Jpeg(50)),
        Transform::one("jpeg_q70", Jpeg(70)),
        Transform::one("jpeg_q95", Jpeg(95)),
        Transform::one("resize_0.25x", Resize(0.25)),
        Transform::one("resize_0.5x", Resize(0.5)),
        Transform::one("resize_2x", Resize(2.0)),
        Transform::one("crop_5", Crop(0.05)),
        Transform::one("crop_10", Crop(0.10)),
        Transform::one("crop_20", Crop(0.20)),
        Transform::one("pad_20_flat", PadFlat(0.20)),
        Transform::one("pad_20_mirror", PadMirror(0.20)),
        Transform::one("rotate_+4", Rotate(4.0)),
        Transform::one("rotate_-4", Rotate(-4.0)),
        Transform::one("rotate_+10", Rotate(10.0)),
        Transform::one("rotate_-10", Rotate(-10.0)),
        Transform::one("rotate_90", Rot90),
        Transform::one("rotate_180", Rot180),
        Transform::one("rotate_270", Rot270),
        Transform::one("flip_h", FlipH),
        Transform::one("flip_v", FlipV),
        Transform::one("blur_s2", Blur(2.0)),
        Transform::one("gamma_0.5", Gamma(0.5)),
        Transform::one("gamma_2", Gamma(2.0)),
        Transform::one("brightness_+40", Brightness(40)),
        Transform::one("brightness_-40", Brightness(-40)),
        Transform::one("contrast_0.6", Contrast(0.6)),
        Transform::one("contrast_1.4", Contrast(1.4)),
        Transform::one("noise_s10", Noise(10.0)),
        Transform::one("watermark_text", TextWatermark),
        Transform::one("logo_overlay", LogoOverlay),
        Transform::one("vignette", Vignette),
        Transform::one("greyscale", Greyscale),
        Transform::one("stretch_0.8", Stretch(0.8)),
        Transform::one("screenshot", Screenshot),
        Transform::chain("combo_resize0.5_jpeg50", vec![Resize(0.5), Jpeg(50)]),
        Transform::chain("combo_crop10_jpeg70", vec![Crop(0.10), Jpeg(70)]),
        Transform::chain("combo_pad20flat_jpeg70", vec![PadFlat(0.20), Jpeg(70)]),
        Transform::chain("combo_rotate+4_crop5", vec![Rotate(4.0), Crop(0.05)]),
        Transform::chain(
            "combo_fliph_crop5_jpeg70",
            vec![FlipH, Crop(0.05), Jpeg(70)],
        ),
        Transform::chain("combo_screenshot_jpeg70", vec![Screenshot, Jpeg(70)]),
        Transform::chain(
            "combo_watermark_gamma0.5_jpeg50",
            vec![TextWatermark, Gamma(0.5), Jpeg(50)],
        ),
    ]
}

/// Picks transforms from the standard suite by name (comma-separated list).
pub fn select(names: &str) -> Result<Vec<Transform>, TransformError> {
    let suite = standard_suite();
    names
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|n| {
            suite
                .iter()
                .find(|t| t.name == n)
                .cloned()
                .ok_or_else(|| TransformError::Unknown(n.to_string()))
        })
        .collect()
}

fn apply_edit(e: &Edit, img: &RgbImage, rng: &mut SplitMix64) -> Result<RgbImage, TransformError> {
    Ok(match *e {
        Edit::Identity => img.clone(),
        Edit::Jpeg(q) => jpeg_roundtrip(img, q)?,
        Edit::Resize(f) => resize_by(img, f, f),
        Edit::Crop(p) => crop_random(img, p, rng),
        Edit::PadFlat(p) => {
            // Black, white or a random colour: letterboxing is usually black
            // or white, meme templates anything.
            let c = match rng.below(3) {
                0 => [0, 0, 0],
                1 => [255, 255, 255],
                _ => [
                    rng.below(256) as u8,
                    rng.below(256) as u8,
                    rng.below(256) as u8,
                ],
            };
            pad_flat(img, p, c)
        }
        Edit::PadMirror(p) => pad_mirror(img, p),
        Edit::Rotate(deg) => rotate_degrees(img, deg, [0, 0, 0]),
        Edit::Rot90 => imageops::rotate90(img),
        Edit::Rot180 => imageops::rotate180(img),
        Edit::Rot270 => imageops::rotate270(img),
        Edit::FlipH => imageops::flip_horizontal(img),
        Edit::FlipV => imageops::flip_vertical(img),
        Edit::Blur(s) => imageops::blur(img, s),
        Edit::Gamma(g) => {
            let lut: Vec<u8> = (0..256)
                .map(|v| {
                    (255.0 * (v as f32 / 255.0).powf(g))
                        .round()
                        .clamp(0.0, 255.0) as u8
                })
                .collect();
            map_channels(img, |v| lut[v as usize])
        }
        Edit::Brightness(b) => map_channels(img, |v| (v as i16 + b).clamp(0, 255) as u8),
        Edit::Contrast(c) => map_channels(img, |v| {
            ((v as f32 - 128.0) * c + 128.0).round().clamp(0.0, 255.0) as u8
        }),
        Edit::Noise(sigma) => {
            let mut out = img.clone();
            for v in out.iter_mut() {
                *v = (*v as f64 + rng.normal() * sigma as f64)
                    .round()
                    .clamp(0.0, 255.0) as u8;
            }
            out
        }
        Edit::TextWatermark => text_watermark(img, rng),
        Edit::LogoOverlay => logo_overlay(img),
        Edit::Vignette => vignette(img, 0.6),
        Edit::Greyscale => {
            let mut out = img.clone();
            for p in out.pixels_mut() {
                let y =
                    (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32).round() as u8;
                *p = Rgb([y, y, y]);
            }
            out
        }
        Edit::Stretch(f) => resize_by(img, f, 1.0),
        Edit::Screenshot => screenshot(img),
    })
}

/// Encodes as JPEG at `quality` and decodes the result.
pub fn jpeg_roundtrip(img: &RgbImage, quality: u8) -> Result<RgbImage, TransformError> {
    let mut buf = Vec::new();
    let err = |source| TransformError::Jpeg { quality, source };
    JpegEncoder::new_with_quality(&mut buf, quality)
        .encode_image(img)
        .map_err(err)?;
    let dec = image::load(Cursor::new(&buf), image::ImageFormat::Jpeg).map_err(err)?;
    Ok(dec.to_rgb8())
}

/// Rescales by independent factors (at least 1 pixel per side).
pub fn resize_by(img: &RgbImage, fx: f32, fy: f32) -> RgbImage {
    let nw = ((img.width() as f32 * fx).round() as u32).max(1);
    let nh = ((img.height() as f32 * fy).round() as u32).max(1);
    imageops::resize(img, nw, nh, FilterType::Triangle)
}

/// Keeps a (1 - p) window of each side at a random position.
pub fn crop_random(img: &RgbImage, p: f32, rng: &mut SplitMix64) -> RgbImage {
    let (w, h) = img.dimensions();
    let kw = ((w as f32 * (1.0 - p)).round() as u32).clamp(1, w);
    let kh = ((h as f32 * (1.0 - p)).round() as u32).clamp(1, h);
    let x = rng.below((w - kw + 1) as u64) as u32;
    let y = rng.below((h - kh + 1) as u64) as u32;
    imageops::crop_imm(img, x, y, kw, kh).to_image()
}

fn map_channels(img: &RgbImage, f: impl Fn(u8) -> u8) -> RgbImage {
    let mut out = img.clone();
    for v in out.iter_mut() {
        *v = f(*v);
    }
    out
}

fn text_watermark(img: &RgbImage, rng: &mut SplitMix64) -> RgbImage {
    let mut out = img.clone();
    let text = "(c) SAMPLE WATERMARK";
    // About 70% of the width, at a random height.
    let scale = ((img.width() as f32 * 0.7) / font::text_width(text, 1) as f32)
        .floor()
        .max(1.0) as u32;
    let tw = font::text_width(text, scale) as i64;
    let th = 8 * scale as i64;
    let x = (img.width() as i64 - tw) / 2;
    let y = rng.below((img.height() as i64 - th).max(1) as u64) as i64;
    font::draw_text(
        &mut out,
        x + scale as i64,
        y + scale as i64,
        text,
        scale,
        [0, 0, 0],
        0.35,
    );
    font::draw_text(&mut out, x, y, text, scale, [255, 255, 255], 0.6);
    out
}

fn logo_overlay(img: &RgbImage) -> RgbImage {
    let mut out = img.clone();
    let (w, h) = img.dimensions();
    let side = (w.min(h) as f32 * 0.2).round().max(4.0) as u32;
    let margin = (w.min(h) as f32 * 0.03).round() as u32;
    let x0 = w.saturating_sub(side + margin);
    let y0 = h.saturating_sub(side + margin);
    let r = side as f32 / 2.0;
    for y in 0..side {
        for x in 0..side {
            let (px, py) = (x0 + x, y0 + y);
            if px >= w || py >= h {
                continue;
            }
            let dx = x as f32 + 0.5 - r;
            let dy = y as f32 + 0.5 - r;
            let d = (dx * dx + dy * dy).sqrt();
            let c = if d < r * 0.55 {
                [250, 200, 20]
            } else if d < r * 0.75 {
                [255, 255, 255]
            } else {
                [200, 30, 60]
            };
            out.put_pixel(px, py, Rgb(c));
        }
    }
    let scale = (side / 40).max(1);
    font::draw_text(
        &mut out,
        (x0 + side / 2) as i64 - 16 * scale as i64,
        (y0 + side / 2) as i64 - 4 * scale as i64,
        "LOGO",
        scale,
        [20, 20, 20],
        1.0,
    );
    out
}

fn vignette(img: &RgbImage, strength: f32) -> RgbImage {
    let (w, h) = img.dimensions();
    let cx = w as f32 / 2.0;
    let cy = h as f32 / 2.0;
    let rmax2 = cx * cx + cy * cy;
    let mut out = img.clone();
    for (x, y, p) in out.enumerate_pixels_mut() {
        let dx = x as f32 + 0.5 - cx;
        let dy = y as f32 + 0.5 - cy;
        let f = 1.0 - strength * (dx * dx + dy * dy) / rmax2;
        for c in 0..3 {
            p[c] = (p[c] as f32 * f).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

fn screenshot(img: &RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    let side = (w as f32 * 0.04).round() as u32;
    let top = (h as f32 * 0.10).round() as u32;
    let bottom = (h as f32 * 0.14).round() as u32;
    let (cw, ch) = (w + 2 * side, h + top + bottom);
    let mut canvas = RgbImage::from_pixel(cw, ch, Rgb([245, 245, 245]));
    // Dark status bar.
    for y in 0..(top / 3).max(1) {
        for x in 0..cw {
            canvas.put_pixel(x, y, Rgb([32, 33, 36]));
        }
    }
    let scale = (top / 30).max(1);
    font::draw_text(
        &mut canvas,
        4,
        (top / 3 / 2) as i64 - 4 * scale as i64,
        "12:34   5G  87%",
        scale,
        [255, 255, 255],
        1.0,
    );
    font::draw_text(
        &mut canvas,
        side as i64,
        (top / 3 + top / 4) as i64,
        "some_user  posted",
        scale.max(1),
        [20, 20, 20],
        1.0,
    );
    font::draw_text(
        &mut canvas,
        side as i64,
        (top + h + bottom / 4) as i64,
        "Like   Comment   Share",
        scale.max(1),
        [60, 60, 60],
        1.0,
    );
    imageops::replace(&mut canvas, img, side as i64, top as i64);
    resize_by(&canvas, 0.6, 0.6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            Rgb([
                (x * 255 / w) as u8,
                (y * 255 / h) as u8,
                ((x + y) % 256) as u8,
            ])
        })
    }

    #[test]
    fn suite_names_are_unique_and_selectable() {
        let s = standard_suite();
        let mut names: Vec<_> = s.iter().map(|t| t.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), s.len());
        let picked = select("identity, rotate_90").unwrap();
        assert_eq!(picked.len(), 2);
        assert!(matches!(select("nope"), Err(TransformError::Unknown(_))));
    }

    #[test]
    fn every_transform_runs_and_is_deterministic() {
        let img = gradient(120, 90);
        for t in standard_suite() {
            let a = t.apply(&img, &mut SplitMix64::seeded(&[1, 2])).unwrap();
            let b = t.apply(&img, &mut SplitMix64::seeded(&[1, 2])).unwrap();
            assert_eq!(a, b, "{} not deterministic", t.name);
            assert!(a.width() > 0 && a.height() > 0);
        }
    }

    #[test]
    fn geometry_of_pad_crop_rotate() {
        let img = gradient(100, 50);
        let p = pad_flat(&img, 0.2, [1, 2, 3]);
        assert_eq!(p.dimensions(), (120, 60));
        assert_eq!(*p.get_pixel(0, 0), Rgb([1, 2, 3]));
        assert_eq!(p.get_pixel(10, 5), img.get_pixel(0, 0));
        let m = pad_mirror(&img, 0.2);
        assert_eq!(m.dimensions(), (120, 60));
        // Mirrored: the pixel just outside the left edge equals the edge pixel.
        assert_eq!(m.get_pixel(9, 5), img.get_pixel(0, 0));
        assert_eq!(m.get_pixel(8, 5), img.get_pixel(1, 0));
        let c = crop_random(&img, 0.1, &mut SplitMix64::new(3));
        assert_eq!(c.dimensions(), (90, 45));
        // Rotation by 0 is the identity; by 90 matches rotate90 (up to the
        // counter-clockwise convention) on a square image.
        let sq = gradient(41, 41);
        assert_eq!(rotate_degrees(&sq, 0.0, [0, 0, 0]), sq);
        assert_eq!(
            rotate_degrees(&sq, 90.0, [0, 0, 0]),
            imageops::rotate270(&sq)
        );
        let r = rotate_degrees(&img, 10.0, [0, 0, 0]);
        assert_eq!(*r.get_pixel(0, 0), Rgb([0, 0, 0]));
    }
}
