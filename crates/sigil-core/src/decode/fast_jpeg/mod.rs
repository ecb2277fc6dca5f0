//! The approximate JPEG paths behind `sigil scan --fast` (cargo feature
//! `fast-jpeg`): hash large JPEGs without decoding them at full resolution.
//!
//! PDQ reduces every image to 64x64 samples (a Jarosz box filter, then
//! decimation), so decoding a 12 MP photo at full resolution mostly produces
//! pixels the hash averages away. Two shortcuts, both taken only when the
//! image's *shorter* side is at least 2 x [`FAST_MIN_SIDE`] (1024 px):
//!
//! - For the default PDQ profile, sequential Huffman JPEGs in YCbCr or grey
//!   (nearly all photos) skip pixels altogether: [`decode_fast`] computes
//!   PDQ's 64x64 blurred, decimated luma from the luma blocks' DCT
//!   coefficients (see `grid`). On the corpus's 4-8 MP JPEGs this moved
//!   hashes by at most 2 bits from the exact path, where the reduced decode
//!   below moved them by up to 8, and it is faster: entropy decoding is all
//!   that is left.
//! - Where pixels are needed (the `cli512` profile, robust variants, RGB
//!   JPEGs), [`decode_reduced`] runs a reduced inverse DCT per block and
//!   outputs the image at the smallest of 1/8, 1/4, 1/2 scale that keeps
//!   the shorter side at or above [`FAST_MIN_SIDE`]: [`baseline`] for
//!   sequential JPEGs (it decodes only the coefficients the reduced IDCT
//!   reads), `jpeg-decoder`'s scaled decode for the others (progressive,
//!   for one). 512 px was chosen by measurement (BENCHMARKS.md, "Batch
//!   scan"): at 256 px the reduced 8 MP images moved PDQ by up to 16 bits,
//!   at 512 px by at most 8; a 360 px rule moved one 4-7 MP image by 10.
//!
//! Both are approximations by design (neither is bit-identical to a full
//! decode), hence opt-in. Anything unusual (not an 8-bit RGB or grey JPEG,
//! over the limits, a decoder error or panic) returns `None` and the caller
//! falls back to the exact decoder, which produces the proper typed error.

pub mod baseline;
mod entropy;
mod grid;

pub use grid::LumaGrid;

use baseline::Declined;

use super::{guarded, jpeg_has_end_of_image, DecodeLimits, DecodedImage, Format, Pixels};

/// Shorter side kept by the reduced-scale decode.
pub const FAST_MIN_SIDE: u32 = 512;

/// Whether the bytes start like a JPEG (SOI marker followed by a marker).
pub fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.len() > 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF
}

/// The reduction (2, 4 or 8) for an image of this size, or `None` when the
/// image is not large enough to gain from it.
pub fn reduction_for(width: u32, height: u32, min_side: u32) -> Option<u32> {
    let short = width.min(height);
    [8u32, 4, 2]
        .into_iter()
        .find(|&d| short / d >= min_side.max(1))
}

/// Whether `bytes` may go to a fast path at all: a complete JPEG (the exact
/// decoder reports truncated ones) within the byte limit.
fn is_candidate(bytes: &[u8], limits: &DecodeLimits) -> bool {
    is_jpeg(bytes) && bytes.len() as u64 <= limits.max_bytes && jpeg_has_end_of_image(bytes)
}

/// What a fast path produced.
#[derive(Debug)]
pub enum FastDecode {
    /// PDQ's grid from the luma DCT coefficients.
    Grid(LumaGrid),
    /// The image at reduced scale, and the reduction (2, 4 or 8).
    Image(DecodedImage, u32),
}

/// The fast path for `bytes` when it is a large enough JPEG, or `None` to
/// use the exact path. With `grid` (the caller needs no pixels), a YCbCr or
/// grey sequential JPEG comes back as [`FastDecode::Grid`]; otherwise, and
/// for JPEGs the grid does not take, as a reduced-scale image. The headers
/// are parsed once for both. Runs under the same panic guard as
/// [`decode`](super::decode): a panic is `None`, like any other failure.
pub fn decode_fast(
    bytes: &[u8],
    limits: &DecodeLimits,
    min_side: u32,
    grid: bool,
) -> Option<FastDecode> {
    if !is_candidate(bytes, limits) {
        return None;
    }
    let fast = || {
        let mut hd = match baseline::parse_headers(bytes) {
            Ok(hd) => hd,
            Err(Declined::Unsupported(_)) => return decode_scaled(bytes, limits, min_side),
            Err(Declined::NotReduced | Declined::Corrupt(_)) => return None,
        };
        let (w, h) = hd.size();
        if limits.check_dimensions(Format::Jpeg, w, h).is_err() {
            return None;
        }
        let reduction = reduction_for(w, h, min_side)?;
        if grid {
            match hd.luma_grid() {
                Ok(g) => return Some(FastDecode::Grid(g)),
                Err(Declined::Corrupt(_)) => return None,
                // Refused before decoding: the reduced decode below may
                // still take it.
                Err(Declined::Unsupported(_) | Declined::NotReduced) => {}
            }
        }
        match hd.reduced(reduction) {
            Ok(r) => {
                let pixels = if r.channels == 3 {
                    Pixels::Rgb8(r.pixels)
                } else {
                    Pixels::Luma8(r.pixels)
                };
                let image = DecodedImage {
                    width: r.width,
                    height: r.height,
                    pixels,
                };
                Some(FastDecode::Image(image, r.reduction))
            }
            Err(Declined::Unsupported(_)) => decode_scaled(bytes, limits, min_side),
            Err(Declined::NotReduced | Declined::Corrupt(_)) => None,
        }
    };
    guarded(Format::Jpeg, || Ok(fast())).ok().flatten()
}

/// [`decode_fast`] without the grid: the reduced-scale image and the
/// reduction used, or `None` to use the exact path.
pub fn decode_reduced(
    bytes: &[u8],
    limits: &DecodeLimits,
    min_side: u32,
) -> Option<(DecodedImage, u32)> {
    match decode_fast(bytes, limits, min_side, false)? {
        FastDecode::Image(image, reduction) => Some((image, reduction)),
        FastDecode::Grid(_) => None,
    }
}

/// `jpeg-decoder`'s scaled decode, for the JPEGs [`baseline`] does not take.
fn decode_scaled(bytes: &[u8], limits: &DecodeLimits, min_side: u32) -> Option<FastDecode> {
    let mut dec = jpeg_decoder::Decoder::new(bytes);
    dec.read_info().ok()?;
    let info = dec.info()?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    if limits.check_dimensions(Format::Jpeg, w, h).is_err() {
        return None;
    }
    let channels = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => 3,
        jpeg_decoder::PixelFormat::L8 => 1,
        _ => return None,
    };
    let reduction = reduction_for(w, h, min_side)?;
    let req_w = w.div_ceil(reduction) as u16;
    let req_h = h.div_ceil(reduction) as u16;
    let (sw, sh) = dec.scale(req_w, req_h).ok()?;
    let (sw, sh) = (u32::from(sw), u32::from(sh));
    // Bound the decoder's own buffers by the (scaled) image it should produce.
    dec.set_max_decoding_buffer_size((sw as usize * sh as usize * 4).max(1 << 20));
    let data = dec.decode().ok()?;
    if data.len() != sw as usize * sh as usize * channels {
        return None;
    }
    let pixels = if channels == 3 {
        Pixels::Rgb8(data)
    } else {
        Pixels::Luma8(data)
    };
    Some(FastDecode::Image(
        DecodedImage {
            width: sw,
            height: sh,
            pixels,
        },
        reduction,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduction_keeps_short_side() {
        assert_eq!(reduction_for(4000, 3000, 256), Some(8)); // 375 px
        assert_eq!(reduction_for(2448, 1632, 256), Some(4)); // 408 px
        assert_eq!(reduction_for(1600, 1004, 256), Some(2)); // 502 px
        assert_eq!(reduction_for(800, 500, 256), None);
        assert!(!is_jpeg(b"\x89PNG\r\n"));
        assert!(
            decode_reduced(b"\xFF\xD8\xFF\xE0garbage", &DecodeLimits::default(), 256).is_none()
        );
    }
}
