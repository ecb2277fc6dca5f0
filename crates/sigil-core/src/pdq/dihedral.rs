//! The 8 dihedral transforms applied to pixels, for the pixel-domain
//! dihedral hashes ([`super::PdqHasher::dihedral_pixels_rgb8`]).
//!
//! Why pixels and not the reference's DCT sign flips: the reference derives
//! the 8 hashes from one DCT, which is the DCT of the transformed image only
//! if blurring and decimating commute with the transform. They do not: the
//! box window of an even length is one sample longer on the right than on
//! the left, the decimation samples `floor((i + 0.5) * n / 64)` are not
//! mirror-symmetric unless 64 divides `n`, and the running f32 sums round
//! in the order they are taken, which a flip reverses. On 300-480 px photos
//! rotated or mirrored and re-saved, the derived hashes were 32-36 bits from
//! the hash of the pixels rotated back (0-4 bits). Sampling one blurred
//! buffer at mirrored positions fixes the first two but not the third, so
//! it is not bit-exact either; hashing each transformed copy of the luma is
//! (one luma conversion, then per variant a transpose or flip of the f32
//! buffer and one blur, decimation, quality and DCT).

use crate::hash::Dihedral;

/// Side of the square tiles transposing transforms work in, so the source
/// columns a tile reads stay in cache (64 f32 rows of 64 values = 16 KiB).
const TILE: usize = 64;

/// Size of a `width x height` image after `d`.
pub fn transformed_size(d: Dihedral, width: usize, height: usize) -> (usize, usize) {
    if swaps_axes(d) {
        (height, width)
    } else {
        (width, height)
    }
}

/// Whether `d` exchanges rows and columns (the quarter turns and the two
/// transposes).
pub fn swaps_axes(d: Dihedral) -> bool {
    matches!(
        d,
        Dihedral::Rot90 | Dihedral::Rot270 | Dihedral::FlipPlus1 | Dihedral::FlipMinus1
    )
}

/// Source pixel `(x, y)` of output pixel `(0, 0)` and the source steps (in
/// pixels, as `(dx, dy)`) that one step right and one step down in the
/// output take, for `d` applied to a `w x h` image. The names follow
/// [`Dihedral`]: `Rot90` is counter-clockwise, `FlipX` swaps top and bottom,
/// `FlipPlus1` transposes about the main diagonal.
fn source_map(d: Dihedral, w: usize, h: usize) -> ((usize, usize), (isize, isize), (isize, isize)) {
    let (r, b) = (w - 1, h - 1);
    match d {
        Dihedral::Orig => ((0, 0), (1, 0), (0, 1)),
        Dihedral::Rot90 => ((r, 0), (0, 1), (-1, 0)),
        Dihedral::Rot180 => ((r, b), (-1, 0), (0, -1)),
        Dihedral::Rot270 => ((0, b), (0, -1), (1, 0)),
        Dihedral::FlipX => ((0, b), (1, 0), (0, -1)),
        Dihedral::FlipY => ((r, 0), (-1, 0), (0, 1)),
        Dihedral::FlipPlus1 => ((0, 0), (0, 1), (1, 0)),
        Dihedral::FlipMinus1 => ((r, b), (0, -1), (-1, 0)),
    }
}

/// Writes `src` (`w x h` pixels of `channels` interleaved values,
/// row-major) transformed by `d` into `dst[..w * h * channels]` (grown if
/// shorter) and returns the output's `(width, height)`.
///
/// # Panics
/// If `src.len() != w * h * channels` or `channels == 0` (caller bugs).
pub fn transform_into<T: Copy + Default>(
    src: &[T],
    w: usize,
    h: usize,
    channels: usize,
    d: Dihedral,
    dst: &mut Vec<T>,
) -> (usize, usize) {
    assert!(channels > 0 && src.len() == w * h * channels);
    let n = src.len();
    if dst.len() < n {
        dst.resize(n, T::default());
    }
    let (tw, th) = transformed_size(d, w, h);
    if n == 0 {
        return (tw, th);
    }
    let dst = &mut dst[..n];
    let ((x0, y0), (rx, ry), (dx, dy)) = source_map(d, w, h);
    // Element offsets: one output step right / down moves the source by
    // these many pixels.
    let step_right = rx + ry * w as isize;
    let step_down = dx + dy * w as isize;
    let origin = (y0 * w + x0) as isize;
    let at = |ox: usize, oy: usize| -> usize {
        // Always inside 0..w*h: (ox, oy) is an output pixel and the map is
        // a bijection onto the source pixels.
        (origin + ox as isize * step_right + oy as isize * step_down) as usize
    };
    if channels == 1 {
        // The hot path (luma): element copies, no per-pixel slice calls.
        for ty in (0..th).step_by(TILE) {
            for tx in (0..tw).step_by(TILE) {
                let x1 = (tx + TILE).min(tw);
                for oy in ty..(ty + TILE).min(th) {
                    let mut si = at(tx, oy) as isize;
                    for o in &mut dst[oy * tw + tx..oy * tw + x1] {
                        *o = src[si as usize];
                        si += step_right;
                    }
                }
            }
        }
        return (tw, th);
    }
    if !swaps_axes(d) {
        // Output rows are source rows, forwards or backwards: copy row by row.
        for (oy, row) in dst.chunks_exact_mut(tw * channels).enumerate() {
            let start = at(0, oy);
            if step_right == 1 {
                row.copy_from_slice(&src[start * channels..(start + tw) * channels]);
            } else {
                let first = start + 1 - tw;
                let from = &src[first * channels..(start + 1) * channels];
                for (o, s) in row
                    .chunks_exact_mut(channels)
                    .zip(from.chunks_exact(channels).rev())
                {
                    o.copy_from_slice(s);
                }
            }
        }
        return (tw, th);
    }
    // Output rows are source columns: tile so both sides stay in cache.
    for ty in (0..th).step_by(TILE) {
        for tx in (0..tw).step_by(TILE) {
            for oy in ty..(ty + TILE).min(th) {
                let row = &mut dst[oy * tw * channels..(oy + 1) * tw * channels];
                for ox in tx..(tx + TILE).min(tw) {
                    let s = at(ox, oy) * channels;
                    row[ox * channels..(ox + 1) * channels].copy_from_slice(&src[s..s + channels]);
                }
            }
        }
    }
    (tw, th)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every transform matches the `image` crate's rotations and flips
    /// (independently written), on grey and RGB, odd and tiny sizes.
    #[test]
    fn transforms_match_image_crate() {
        use image::imageops;
        for (w, h) in [
            (1, 1),
            (1, 5),
            (3, 2),
            (7, 5),
            (64, 1),
            (65, 130),
            (131, 67),
        ] {
            let img = image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
                image::Rgb([x as u8, y as u8, (x * 7 + y * 13) as u8])
            });
            for d in Dihedral::ALL {
                let want = match d {
                    Dihedral::Orig => img.clone(),
                    Dihedral::Rot90 => imageops::rotate270(&img),
                    Dihedral::Rot180 => imageops::rotate180(&img),
                    Dihedral::Rot270 => imageops::rotate90(&img),
                    Dihedral::FlipX => imageops::flip_vertical(&img),
                    Dihedral::FlipY => imageops::flip_horizontal(&img),
                    Dihedral::FlipPlus1 => imageops::flip_horizontal(&imageops::rotate90(&img)),
                    Dihedral::FlipMinus1 => imageops::flip_horizontal(&imageops::rotate270(&img)),
                };
                let mut got = Vec::new();
                let (tw, th) = transform_into(img.as_raw(), w, h, 3, d, &mut got);
                assert_eq!((tw as u32, th as u32), want.dimensions(), "{d} {w}x{h}");
                assert_eq!(&got[..], want.as_raw().as_slice(), "{d} {w}x{h}");
                let grey: Vec<f32> = img.pixels().map(|p| f32::from(p[2])).collect();
                let mut got = vec![-1.0f32; w * h + 3];
                transform_into(&grey, w, h, 1, d, &mut got);
                let want_grey: Vec<f32> = want.pixels().map(|p| f32::from(p[2])).collect();
                assert_eq!(&got[..w * h], &want_grey[..], "{d} {w}x{h} grey");
            }
        }
    }
}
