//! A second signature of our own design: a gradient-orientation grid.
//!
//! PhotoDNA-like in spirit (grey image, gradient features on a coarse grid,
//! compared by Euclidean distance), but not PhotoDNA, which is proprietary
//! and whose exact construction we neither know nor imitate.
//!
//! Construction ("GGS-144"):
//! 1. luma (BT.601) of the image, area-averaged down to 48x48 (box filter
//!    over the exact source footprint of each cell, so the result barely
//!    depends on the input resolution);
//! 2. central-difference gradients gx, gy at each of the 48x48 points;
//! 3. a 6x6 grid of 8x8 cells; per cell four sums: positive gx, negative gx,
//!    positive gy, negative gy (magnitudes) -> 144 features;
//! 4. each feature square-rooted (damps strong edges so a watermark or logo
//!    does not dominate), then the vector is L2-normalised.
//!
//! Additive brightness leaves gradients unchanged and normalisation removes
//! contrast scaling, which is where PDQ is already strong; the point of the
//! second signature is to fail differently from PDQ so that fusion helps.
//! Distances are squared L2 in [0, 4], computed with simsimd.

use image::RgbImage;
use simsimd::SpatialSimilarity;

/// Side of the resampled luma square.
pub const GRID_PIXELS: usize = 48;
/// Cells per side.
pub const GRID_CELLS: usize = 6;
/// Number of features.
pub const DIM: usize = GRID_CELLS * GRID_CELLS * 4;

/// A gradient-grid signature: 144 L2-normalised f32 features.
#[derive(Clone, Debug, PartialEq)]
pub struct GradientSignature(pub [f32; DIM]);

impl GradientSignature {
    /// Squared Euclidean distance (simsimd kernel), in [0, 4].
    pub fn distance(&self, other: &GradientSignature) -> f32 {
        match f32::l2sq(&self.0, &other.0) {
            Some(d) => d as f32,
            None => l2sq_scalar(&self.0, &other.0),
        }
    }

    /// Whether the image had any texture at all (a flat image normalises to
    /// the zero vector and must not match anything).
    pub fn is_flat(&self) -> bool {
        self.0.iter().all(|&v| v == 0.0)
    }
}

/// Plain scalar squared L2, the reference for the SIMD kernel.
pub fn l2sq_scalar(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Area-averaged 48x48 luma of an RGB image.
pub fn luma_grid(img: &RgbImage) -> Vec<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let n = GRID_PIXELS;
    let raw = img.as_raw();
    // Column and row accumulation: each source pixel belongs to the output
    // cell floor(x * n / w). For sources smaller than n, cells are
    // replicated instead (nearest), handled by the fallback below.
    let mut sum = vec![0f64; n * n];
    let mut cnt = vec![0u32; n * n];
    if w >= n && h >= n {
        let col_cell: Vec<usize> = (0..w).map(|x| x * n / w).collect();
        for y in 0..h {
            let cy = y * n / h;
            let row = &raw[y * w * 3..(y + 1) * w * 3];
            for x in 0..w {
                let p = &row[x * 3..x * 3 + 3];
                let l = 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64;
                let k = cy * n + col_cell[x];
                sum[k] += l;
                cnt[k] += 1;
            }
        }
    } else {
        for cy in 0..n {
            for cx in 0..n {
                let x = (cx * w / n).min(w - 1);
                let y = (cy * h / n).min(h - 1);
                let p = &raw[(y * w + x) * 3..(y * w + x) * 3 + 3];
                sum[cy * n + cx] = 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64;
                cnt[cy * n + cx] = 1;
            }
        }
    }
    sum.iter()
        .zip(&cnt)
        .map(|(s, &c)| (*s / c.max(1) as f64) as f32)
        .collect()
}

/// The signature of an RGB image.
pub fn signature(img: &RgbImage) -> GradientSignature {
    signature_of_grid(&luma_grid(img))
}

/// The signature of a 48x48 luma grid (row-major).
pub fn signature_of_grid(g: &[f32]) -> GradientSignature {
    let n = GRID_PIXELS;
    let cell = n / GRID_CELLS;
    let mut f = [0f32; DIM];
    let at = |x: usize, y: usize| g[y * n + x];
    for y in 0..n {
        for x in 0..n {
            let gx = at((x + 1).min(n - 1), y) - at(x.saturating_sub(1), y);
            let gy = at(x, (y + 1).min(n - 1)) - at(x, y.saturating_sub(1));
            let k = ((y / cell) * GRID_CELLS + x / cell) * 4;
            if gx > 0.0 {
                f[k] += gx;
            } else {
                f[k + 1] -= gx;
            }
            if gy > 0.0 {
                f[k + 2] += gy;
            } else {
                f[k + 3] -= gy;
            }
        }
    }
    for v in f.iter_mut() {
        *v = v.sqrt();
    }
    let norm = f.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 1e-6 {
        for v in f.iter_mut() {
            *v /= norm;
        }
    } else {
        f = [0.0; DIM];
    }
    GradientSignature(f)
}

/// Maps output grid coordinates (x, y, side) to source coordinates.
type CoordMap = fn(usize, usize, usize) -> (usize, usize);

/// Signatures of the 8 dihedral versions of the image, in
/// `sigil_core::Dihedral::ALL` order (orig, rot90, rot180, rot270, flipx,
/// flipy, flip+1, flip-1), computed by re-arranging the 48x48 grid.
pub fn dihedral_signatures(img: &RgbImage) -> [GradientSignature; 8] {
    let g = luma_grid(img);
    let n = GRID_PIXELS;
    // Each map gives, for output (x, y), the source coordinates.
    let maps: [CoordMap; 8] = [
        |x, y, _| (x, y),
        // rot90 counter-clockwise: output (x, y) <- source (n-1-y, x)
        |x, y, n| (n - 1 - y, x),
        |x, y, n| (n - 1 - x, n - 1 - y),
        |x, y, n| (y, n - 1 - x),
        // flipx: top and bottom swap
        |x, y, n| (x, n - 1 - y),
        // flipy: left and right swap
        |x, y, n| (n - 1 - x, y),
        // transpose about the main diagonal
        |x, y, _| (y, x),
        // transpose about the anti-diagonal
        |x, y, n| (n - 1 - y, n - 1 - x),
    ];
    let mut out: Vec<GradientSignature> = Vec::with_capacity(8);
    let mut buf = vec![0f32; n * n];
    for m in maps {
        for y in 0..n {
            for x in 0..n {
                let (sx, sy) = m(x, y, n);
                buf[y * n + x] = g[sy * n + sx];
            }
        }
        out.push(signature_of_grid(&buf));
    }
    out.try_into().expect("eight maps")
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{imageops, Rgb};

    fn scene(w: u32, h: u32, seed: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let fx = x as f32 / w as f32;
            let fy = y as f32 / h as f32;
            let v = 128.0
                + 60.0 * ((fx * 7.0 + seed as f32).sin() * (fy * 5.0).cos())
                + 50.0 * (fx - fy);
            Rgb([
                v.clamp(0.0, 255.0) as u8,
                (v * 0.8) as u8,
                (255.0 - v).clamp(0.0, 255.0) as u8,
            ])
        })
    }

    #[test]
    fn simd_and_scalar_distance_agree() {
        let a = signature(&scene(200, 150, 1));
        let b = signature(&scene(200, 150, 2));
        let simd = a.distance(&b);
        let scalar = l2sq_scalar(&a.0, &b.0);
        assert!((simd - scalar).abs() < 1e-4, "{simd} vs {scalar}");
        assert!(simd > 0.01);
    }

    #[test]
    fn near_duplicates_are_close_and_different_images_far() {
        let a = scene(300, 200, 1);
        let small = imageops::resize(&a, 150, 100, imageops::FilterType::Triangle);
        let bright = RgbImage::from_fn(300, 200, |x, y| {
            let p = a.get_pixel(x, y);
            Rgb([
                p[0].saturating_add(20),
                p[1].saturating_add(20),
                p[2].saturating_add(20),
            ])
        });
        let other = scene(300, 200, 4);
        let sa = signature(&a);
        assert!(sa.distance(&signature(&small)) < 0.05);
        assert!(sa.distance(&signature(&bright)) < 0.05);
        assert!(sa.distance(&signature(&other)) > 0.1);
    }

    #[test]
    fn dihedral_grid_variants_match_transformed_images() {
        let a = scene(96, 96, 3);
        let d = dihedral_signatures(&a);
        assert_eq!(d[0], signature(&a));
        let checks = [
            (1, imageops::rotate270(&a)), // 90 counter-clockwise
            (2, imageops::rotate180(&a)),
            (3, imageops::rotate90(&a)),
            (4, imageops::flip_vertical(&a)),
            (5, imageops::flip_horizontal(&a)),
        ];
        for (i, img) in checks {
            let dist = d[i].distance(&signature(&img));
            assert!(dist < 0.02, "variant {i}: {dist}");
        }
    }

    #[test]
    fn flat_image_gives_zero_vector() {
        let s = signature(&RgbImage::from_pixel(64, 64, Rgb([90, 90, 90])));
        assert!(s.is_flat());
    }
}
