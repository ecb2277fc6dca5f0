//! RGB to luma, exactly as the reference data was made.
//!
//! The Python binding used by HMA and python-threatexchange computes
//! `0.299 R + 0.587 G + 0.114 B` in f64 and rounds the result to f32.
//! For 8-bit inputs that value is identical to the correctly rounded f32 of
//! the exact rational `(299 R + 587 G + 114 B) / 1000` (checked exhaustively
//! over all 2^24 triples by `tests/it/pdq_luma.rs`), and IEEE division of two
//! exactly representable integers *is* that correctly rounded value. So every
//! kernel computes an integer dot product and one f32 division: exact, and
//! vectorizable without f64 lanes.

/// The binding's formula, literally (f64 arithmetic left to right, then f32).
/// Kept as the oracle the fast form is tested against.
#[inline]
pub fn luma_reference_f64(r: u8, g: u8, b: u8) -> f32 {
    (f64::from(r) * 0.299 + f64::from(g) * 0.587 + f64::from(b) * 0.114) as f32
}

/// The integer form every kernel uses; equal to [`luma_reference_f64`].
#[inline(always)]
pub fn luma_exact(r: u8, g: u8, b: u8) -> f32 {
    let k = 299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b);
    // k < 2^24, so the conversion is exact and the division rounds once.
    k as f32 / 1000.0
}

/// Scalar luma of interleaved RGB8 into `out` (one f32 per pixel).
pub fn luma_rgb8_scalar(rgb: &[u8], out: &mut [f32]) {
    for (px, o) in rgb.chunks_exact(3).zip(out.iter_mut()) {
        *o = luma_exact(px[0], px[1], px[2]);
    }
}

/// Greyscale is used as-is: `v as f32` (equal to feeding `(v, v, v)` through
/// the RGB formula, which `tests/it/pdq_luma.rs` also checks).
pub fn luma_grey8_scalar(grey: &[u8], out: &mut [f32]) {
    for (v, o) in grey.iter().zip(out.iter_mut()) {
        *o = f32::from(*v);
    }
}
