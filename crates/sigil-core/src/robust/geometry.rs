//! The image edits robust hashing makes: a small work copy, crops, zooms,
//! mirrored and flat borders, rotation by any angle. The evaluation harness
//! (`sigil-eval`) builds its transform suite from the same functions.

use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};

/// Downscales so the longer side is at most `side` (no upscaling).
pub fn work_copy(img: &RgbImage, side: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let m = w.max(h);
    if m <= side {
        return img.clone();
    }
    let f = side as f32 / m as f32;
    let nw = ((w as f32 * f).round() as u32).max(1);
    let nh = ((h as f32 * f).round() as u32).max(1);
    imageops::resize(img, nw, nh, FilterType::Triangle)
}

/// Crops a window given as fractions of the image (x0, y0, width, height).
pub fn crop_frac(img: &RgbImage, x0: f32, y0: f32, fw: f32, fh: f32) -> RgbImage {
    let (w, h) = img.dimensions();
    let kw = ((w as f32 * fw).round() as u32).clamp(1, w);
    let kh = ((h as f32 * fh).round() as u32).clamp(1, h);
    let x = ((w as f32 * x0).round() as u32).min(w - kw);
    let y = ((h as f32 * y0).round() as u32).min(h - kh);
    imageops::crop_imm(img, x, y, kw, kh).to_image()
}

/// `z < 1`: centre crop keeping `z` of each side; `z > 1`: mirrored border
/// so the image covers `1/z` of each side.
pub fn zoom(img: &RgbImage, z: f32) -> RgbImage {
    if z < 1.0 {
        let m = (1.0 - z) / 2.0;
        crop_frac(img, m, m, z, z)
    } else if z > 1.0 {
        pad_mirror(img, z - 1.0)
    } else {
        img.clone()
    }
}

fn border_sizes(img: &RgbImage, p: f32) -> (u32, u32) {
    let bw = (img.width() as f32 * p / 2.0).round() as u32;
    let bh = (img.height() as f32 * p / 2.0).round() as u32;
    (bw, bh)
}

/// Adds a flat border of `p/2` of each side on every edge.
pub fn pad_flat(img: &RgbImage, p: f32, color: [u8; 3]) -> RgbImage {
    let (bw, bh) = border_sizes(img, p);
    let mut out = RgbImage::from_pixel(img.width() + 2 * bw, img.height() + 2 * bh, Rgb(color));
    imageops::replace(&mut out, img, bw as i64, bh as i64);
    out
}

/// Adds a mirrored border (reflection about the image edge).
pub fn pad_mirror(img: &RgbImage, p: f32) -> RgbImage {
    let (bw, bh) = border_sizes(img, p);
    let (w, h) = (img.width() as i64, img.height() as i64);
    let reflect = |v: i64, n: i64| -> u32 {
        let mut v = v;
        // Borders are at most half the side, so one reflection suffices;
        // the loop guards tiny images.
        loop {
            if v < 0 {
                v = -v - 1;
            } else if v >= n {
                v = 2 * n - v - 1;
            } else {
                return v as u32;
            }
        }
    };
    RgbImage::from_fn(img.width() + 2 * bw, img.height() + 2 * bh, |x, y| {
        *img.get_pixel(
            reflect(x as i64 - bw as i64, w),
            reflect(y as i64 - bh as i64, h),
        )
    })
}

/// Rotates about the centre by `deg` degrees counter-clockwise, keeping the
/// canvas size; uncovered corners get `fill`. Bilinear sampling.
pub fn rotate_degrees(img: &RgbImage, deg: f32, fill: [u8; 3]) -> RgbImage {
    let (w, h) = img.dimensions();
    let (s, c) = (deg.to_radians() as f64).sin_cos();
    let cx = (w as f64 - 1.0) / 2.0;
    let cy = (h as f64 - 1.0) / 2.0;
    let src = img.as_raw();
    let stride = w as usize * 3;
    let mut out = RgbImage::new(w, h);
    for (x, y, p) in out.enumerate_pixels_mut() {
        // Inverse mapping: rotate the output point back into the source.
        // Image y grows downwards, so counter-clockwise on screen is a
        // clockwise rotation in these coordinates.
        let dx = x as f64 - cx;
        let dy = y as f64 - cy;
        let sx = c * dx - s * dy + cx;
        let sy = s * dx + c * dy + cy;
        *p = sample_bilinear(src, w, h, stride, sx, sy).unwrap_or(Rgb(fill));
    }
    out
}

fn sample_bilinear(src: &[u8], w: u32, h: u32, stride: usize, sx: f64, sy: f64) -> Option<Rgb<u8>> {
    if sx < -0.5 || sy < -0.5 || sx > w as f64 - 0.5 || sy > h as f64 - 0.5 {
        return None;
    }
    let sx = sx.clamp(0.0, w as f64 - 1.0);
    let sy = sy.clamp(0.0, h as f64 - 1.0);
    let x0 = sx.floor() as usize;
    let y0 = sy.floor() as usize;
    let x1 = (x0 + 1).min(w as usize - 1);
    let y1 = (y0 + 1).min(h as usize - 1);
    let fx = sx - x0 as f64;
    let fy = sy - y0 as f64;
    let mut out = [0u8; 3];
    for (ch, o) in out.iter_mut().enumerate() {
        let p = |x: usize, y: usize| src[y * stride + x * 3 + ch] as f64;
        let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
        let bot = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
        *o = (top * (1.0 - fy) + bot * fy).round().clamp(0.0, 255.0) as u8;
    }
    Some(Rgb(out))
}
