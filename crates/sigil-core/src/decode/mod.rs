//! Decoding untrusted image bytes into 8-bit RGB or greyscale pixels.
//!
//! Everything here assumes the input is hostile: a file may be truncated,
//! corrupt, lie about its size in the header, or trip a bug in a decoder.
//! The defences, in the order they are applied:
//!
//! 1. the encoded size is checked before anything is parsed
//!    ([`DecodeLimits::max_bytes`]);
//! 2. the format is sniffed from magic bytes ([`sniff`], never from a file
//!    name) and only the six supported formats are let through;
//! 3. the header is parsed and the claimed dimensions are checked against
//!    [`DecodeLimits::max_dimension`] and [`DecodeLimits::max_pixels`]
//!    *before* the pixel buffer is allocated, so a 200-byte file claiming
//!    50000x50000 pixels is refused without allocating 7.5 GB;
//! 4. the image crate's own [`image::Limits`] are set too, so decoders that
//!    allocate internally are held to the same budget;
//! 5. the whole decode runs under [`std::panic::catch_unwind`], so a panic
//!    inside a decoder becomes [`DecodeError::DecoderPanic`] instead of
//!    taking the process down.
//!
//! Pixel conversions follow what the reference hashes were made with
//! (Pillow feeding Meta's PDQ core), because a hash is only useful if it
//! equals the list producer's hash for the same file:
//! alpha is dropped (not composited), palettes are expanded to their real
//! colours, greyscale stays greyscale, CMYK JPEGs are converted to RGB
//! (not read as inverted channels), 1-bit images become 0/255, and 16-bit
//! samples keep their high byte (what Pillow does for 16-bit RGB). EXIF
//! orientation is ignored unless [`DecodeOptions::apply_exif_orientation`]
//! is set: ThreatExchange hashes are computed on the stored pixels.
//!
//! `fast_jpeg` (cargo feature `fast-jpeg`) holds the one decoder written
//! here, the approximate reduced-scale JPEG paths of `sigil scan --fast`;
//! it takes the same limits and runs under the same panic guard.

#[cfg(feature = "fast-jpeg")]
pub mod fast_jpeg;
mod sniff;

pub use sniff::{sniff, Container, MediaKind};

use std::io::Cursor;
use std::panic::{self, AssertUnwindSafe};

use image::metadata::Orientation;
use image::{ColorType, DynamicImage, ImageBuffer, ImageDecoder, ImageFormat, ImageReader};

/// Hard ceilings applied to every decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest encoded input accepted, in bytes.
    pub max_bytes: u64,
    /// Largest `width * height` accepted, checked from the header before
    /// the pixel buffer is allocated.
    pub max_pixels: u64,
    /// Largest width or height accepted.
    pub max_dimension: u32,
    /// Most memory one decode may hold, in bytes: the decoder's output in
    /// its native layout (up to 8 bytes a pixel for 16-bit RGBA) plus what
    /// the format's decoder keeps besides it ([`decode_memory`]), computed
    /// from the header and checked before the pixel buffer is allocated.
    /// The default, 512 MiB, admits every 8-bit PNG, BMP and sequential
    /// JPEG, and every simple-format WebP, of the default `max_pixels`
    /// (100 MP); a 16-bit PNG or TIFF, a progressive JPEG, a GIF or an
    /// extended WebP of that size is refused (`TooMuchMemory`), and
    /// admitted up to 65, 33, 57, 86 and 65 MP.
    pub max_decode_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_bytes: 64 * 1024 * 1024,
            max_pixels: 100_000_000,
            max_dimension: 30_000,
            max_decode_bytes: 512 << 20,
        }
    }
}

impl DecodeLimits {
    /// Checks a header's claimed size before anything is allocated: zero
    /// sides are `ZeroSize`, sides or areas over the limits `TooLarge`.
    /// Every decoder here uses it, the reduced-scale ones of `fast_jpeg`
    /// included.
    pub(crate) fn check_dimensions(
        &self,
        format: Format,
        width: u32,
        height: u32,
    ) -> Result<(), DecodeError> {
        if width == 0 || height == 0 {
            return Err(DecodeError::ZeroSize {
                format,
                width,
                height,
            });
        }
        if width > self.max_dimension
            || height > self.max_dimension
            || u64::from(width) * u64::from(height) > self.max_pixels
        {
            return Err(DecodeError::TooLarge {
                width,
                height,
                max_dimension: self.max_dimension,
                max_pixels: self.max_pixels,
            });
        }
        Ok(())
    }
}

/// How to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeOptions {
    pub limits: DecodeLimits,
    /// Rotate/flip the pixels as the EXIF orientation tag says. Off by
    /// default: ThreatExchange, HMA and Meta's reference tools hash the
    /// stored pixels and ignore the tag, and so must we to match their lists.
    pub apply_exif_orientation: bool,
}

/// Decoded pixels, tightly packed rows, top row first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pixels {
    /// Interleaved R, G, B, 3 bytes per pixel.
    Rgb8(Vec<u8>),
    /// One grey byte per pixel.
    Luma8(Vec<u8>),
}

impl Pixels {
    /// The raw sample bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Pixels::Rgb8(v) | Pixels::Luma8(v) => v,
        }
    }

    /// Bytes per pixel (3 or 1).
    pub fn channels(&self) -> usize {
        match self {
            Pixels::Rgb8(_) => 3,
            Pixels::Luma8(_) => 1,
        }
    }
}

/// An image decoded to 8-bit samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedImage {
    pub width: u32,
    pub height: u32,
    pub pixels: Pixels,
}

/// The image formats sigil decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Jpeg,
    Png,
    WebP,
    Gif,
    Bmp,
    Tiff,
}

impl Format {
    /// Lowercase name, as used in messages and benchmark ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::WebP => "webp",
            Format::Gif => "gif",
            Format::Bmp => "bmp",
            Format::Tiff => "tiff",
        }
    }

    fn to_image_format(self) -> ImageFormat {
        match self {
            Format::Jpeg => ImageFormat::Jpeg,
            Format::Png => ImageFormat::Png,
            Format::WebP => ImageFormat::WebP,
            Format::Gif => ImageFormat::Gif,
            Format::Bmp => ImageFormat::Bmp,
            Format::Tiff => ImageFormat::Tiff,
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why bytes could not be decoded. The caller knows the input's name and
/// adds it; these messages name the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty input (0 bytes)")]
    EmptyInput,
    #[error("input is {len} bytes, over the limit of {max} bytes")]
    TooManyBytes { len: u64, max: u64 },
    #[error("not a recognised image format (expected JPEG, PNG, WebP, GIF, BMP or TIFF)")]
    UnknownFormat,
    #[error("unsupported {format} image: {reason}")]
    Unsupported { format: Format, reason: String },
    #[error(
        "image claims {width}x{height} pixels, over the limits \
         ({max_dimension} px per side, {max_pixels} pixels in total)"
    )]
    TooLarge {
        width: u32,
        height: u32,
        max_dimension: u32,
        max_pixels: u64,
    },
    #[error("{format} image has zero size ({width}x{height})")]
    ZeroSize {
        format: Format,
        width: u32,
        height: u32,
    },
    #[error("truncated {format} data: {detail}")]
    Truncated { format: Format, detail: String },
    #[error("corrupt {format} data: {detail}")]
    Corrupt { format: Format, detail: String },
    #[error(
        "{format} image of {width}x{height} ({layout}) needs {needed} bytes of memory to \
         decode, over the limit of {max} bytes per decode"
    )]
    TooMuchMemory {
        format: Format,
        width: u32,
        height: u32,
        /// The decoder's native pixel layout, e.g. `Rgba16`.
        layout: String,
        needed: u64,
        max: u64,
    },
    #[error("{format} decoder exceeded its memory limit: {detail}")]
    LimitExceeded { format: Format, detail: String },
    #[error("{format} decoder panicked: {message}")]
    DecoderPanic { format: Format, message: String },
}

/// Identifies the image format from magic bytes ([`sniff`]). `None` for
/// anything sigil does not decode (videos and formats the image crate knows
/// but we do not enable included).
pub fn sniff_format(bytes: &[u8]) -> Option<Format> {
    match sniff(bytes) {
        MediaKind::Image(format) => Some(format),
        MediaKind::Video(_) | MediaKind::Other => None,
    }
}

/// Decodes `bytes` under `opts`. Never panics on any input: decoder panics
/// are caught and returned as [`DecodeError::DecoderPanic`].
pub fn decode(bytes: &[u8], opts: &DecodeOptions) -> Result<DecodedImage, DecodeError> {
    let format = precheck(bytes, opts)?;
    guarded(format, || decode_format(bytes, format, opts))
}

/// Checks that need no parsing: emptiness, the byte limit, the format.
fn precheck(bytes: &[u8], opts: &DecodeOptions) -> Result<Format, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::EmptyInput);
    }
    let len = bytes.len() as u64;
    if len > opts.limits.max_bytes {
        return Err(DecodeError::TooManyBytes {
            len,
            max: opts.limits.max_bytes,
        });
    }
    sniff_format(bytes).ok_or(DecodeError::UnknownFormat)
}

/// Runs `f`, turning a panic inside it into [`DecodeError::DecoderPanic`].
///
/// The decoders only see borrowed input bytes (never mutated) and state
/// created inside `f`, so nothing observable is left half-updated if one of
/// them unwinds; that is what makes `AssertUnwindSafe` sound here.
fn guarded<T>(
    format: Format,
    f: impl FnOnce() -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let message = if let Some(s) = payload.downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = payload.downcast_ref::<String>() {
                s.clone()
            } else {
                "non-string panic payload".to_string()
            };
            Err(DecodeError::DecoderPanic { format, message })
        }
    }
}

/// Width and height from the header alone, after the same sniffing and
/// byte-limit checks as [`decode`]. Cheap: no pixel data is decoded.
pub fn probe(bytes: &[u8], opts: &DecodeOptions) -> Result<(Format, u32, u32), DecodeError> {
    let format = precheck(bytes, opts)?;
    guarded(format, || {
        let decoder = open_decoder(bytes, format, opts)?;
        let (w, h) = decoder.dimensions();
        Ok((format, w, h))
    })
}

fn image_limits(limits: &DecodeLimits) -> image::Limits {
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_dimension);
    l.max_image_height = Some(limits.max_dimension);
    // The decoders that count their allocations are held to the same
    // budget as the whole decode ([`decode_memory`] is checked first).
    l.max_alloc = Some(limits.max_decode_bytes);
    l
}

fn open_decoder<'a>(
    bytes: &'a [u8],
    format: Format,
    opts: &DecodeOptions,
) -> Result<impl ImageDecoder + 'a, DecodeError> {
    // Fixed-offset headers are checked before any decoder is constructed:
    // some decoders allocate (or reject with a misleading message) while
    // parsing the header.
    if let Some((width, height)) = peek_dimensions(bytes, format) {
        opts.limits.check_dimensions(format, width, height)?;
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.to_image_format());
    reader.limits(image_limits(&opts.limits));
    let decoder = reader
        .into_decoder()
        .map_err(|e| map_image_error(e, format))?;
    let (width, height) = decoder.dimensions();
    opts.limits.check_dimensions(format, width, height)?;
    Ok(decoder)
}

/// Dimensions read straight from the header, for the formats that keep
/// them at a fixed offset (PNG IHDR, GIF logical screen, BMP info header).
/// `None` when the format has no fixed place for them or the header is too
/// short; the decoder's own header parse is checked in any case.
fn peek_dimensions(bytes: &[u8], format: Format) -> Option<(u32, u32)> {
    let be32 = |at: usize| Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let le16 = |at: usize| {
        Some(u32::from(u16::from_le_bytes(
            bytes.get(at..at + 2)?.try_into().ok()?,
        )))
    };
    let le32 = |at: usize| Some(i32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    match format {
        // Signature (8), chunk length (4), "IHDR" (4), width, height.
        Format::Png if bytes.get(12..16) == Some(b"IHDR") => Some((be32(16)?, be32(20)?)),
        Format::Gif => Some((le16(6)?, le16(8)?)),
        Format::Bmp => match le32(14)? {
            // BITMAPCOREHEADER (OS/2): unsigned 16-bit sides.
            12 => Some((le16(18)?, le16(20)?)),
            // BITMAPINFOHEADER and later: signed 32-bit, negative height
            // means top-down rows.
            n if n >= 40 => Some((le32(18)?.unsigned_abs(), le32(22)?.unsigned_abs())),
            _ => None,
        },
        _ => None,
    }
}

fn decode_format(
    bytes: &[u8],
    format: Format,
    opts: &DecodeOptions,
) -> Result<DecodedImage, DecodeError> {
    if format == Format::Jpeg && !jpeg_has_end_of_image(bytes) {
        // The JPEG decoder fills missing scan data with grey and succeeds;
        // a hash of a part-grey image is neither the uploaded picture's nor
        // a useful one, so a cut-off file is reported as such (as Pillow
        // does by default).
        return Err(DecodeError::Truncated {
            format,
            detail: "no end-of-image marker after the last scan (file cut off?)".into(),
        });
    }
    let mut decoder = open_decoder(bytes, format, opts)?;
    let (width, height) = decoder.dimensions();
    let orientation = if opts.apply_exif_orientation {
        // A broken EXIF block must not make an otherwise fine image fail:
        // treat it as "no orientation", which is what viewers do.
        decoder.orientation().unwrap_or(Orientation::NoTransforms)
    } else {
        Orientation::NoTransforms
    };
    let color = decoder.color_type();
    let total = decoder.total_bytes();
    let expected = u64::from(width) * u64::from(height) * u64::from(color.bytes_per_pixel());
    if total != expected {
        return Err(DecodeError::Corrupt {
            format,
            detail: format!("decoder reports {total} bytes for {width}x{height} {color:?}"),
        });
    }
    let needed = decode_memory(
        bytes,
        format,
        width,
        height,
        color,
        orientation != Orientation::NoTransforms,
    );
    if needed > opts.limits.max_decode_bytes {
        return Err(DecodeError::TooMuchMemory {
            format,
            width,
            height,
            layout: format!("{color:?}"),
            needed,
            max: opts.limits.max_decode_bytes,
        });
    }
    let total = usize::try_from(total).map_err(|_| DecodeError::TooLarge {
        width,
        height,
        max_dimension: opts.limits.max_dimension,
        max_pixels: opts.limits.max_pixels,
    })?;
    let mut buf = vec![0u8; total];
    decoder
        .read_image(&mut buf)
        .map_err(|e| map_image_error(e, format))?;
    let pixels = to_pixels(buf, color, format)?;
    let image = DecodedImage {
        width,
        height,
        pixels,
    };
    Ok(apply_orientation(image, orientation))
}

/// What decoding an image holds at its peak, in bytes, from its header
/// alone: the decoder's output buffer in its native layout (`color`: up
/// to 8 bytes a pixel for 16-bit RGBA), what the format's decoder keeps
/// besides it (measured per format, BENCHMARKS.md "Decode memory"), and
/// with `reoriented` the rotated copy. The conversion to 8-bit RGB or
/// grey works in place in the output buffer, and shrinking it gives
/// memory back without a copy. [`decode`] refuses an image whose figure is
/// over [`DecodeLimits::max_decode_bytes`] before allocating anything.
pub fn decode_memory(
    bytes: &[u8],
    format: Format,
    width: u32,
    height: u32,
    color: ColorType,
    reoriented: bool,
) -> u64 {
    let pixels = u64::from(width) * u64::from(height);
    let native = pixels * u64::from(color.bytes_per_pixel());
    let working = match format {
        // Row buffers: a few rows of the native layout.
        Format::Png | Format::Bmp => 4 * u64::from(width) * u64::from(color.bytes_per_pixel()),
        // A progressive JPEG keeps every coefficient (an i16 per sample
        // and component) until the last scan; a sequential one a row of
        // MCUs (16 rows at most) per component.
        Format::Jpeg => match jpeg_frame(bytes) {
            Some((true, components)) => pixels * 2 * u64::from(components),
            Some((false, components)) => 16 * u64::from(width) * 4 * u64::from(components),
            None => pixels * 2 * 4,
        },
        // Lossy ("VP8 "): the Y, U and V planes (1.5 bytes a pixel, 1.4
        // measured); lossless ("VP8L"): 1 byte a pixel allowed, about 0
        // measured; extended files ("VP8X", maybe animated) 4 bytes a pixel.
        Format::WebP => match bytes.get(12..16) {
            Some(b"VP8 ") => pixels * 2,
            Some(b"VP8L") => pixels,
            _ => pixels * 4,
        },
        // The frame's colour indices (1 byte a pixel, 0.93 measured).
        Format::Gif => pixels * 2,
        // The TIFF decoder reads the whole image into a buffer of its own
        // and copies it into the output.
        Format::Tiff => native,
    };
    let copy = if reoriented { pixels * 3 } else { 0 };
    DECODER_FIXED_BYTES + native + working + copy
}

/// What any decode holds whatever the image's size (decoder state,
/// Huffman and zlib tables, the runtime's share): 3 MiB measured for a
/// 64x64 PNG, the whole process included.
const DECODER_FIXED_BYTES: u64 = 16 << 20;

/// Whether a JPEG's frame is progressive, and its component count, from
/// the markers before the first scan; `None` if no frame header is found.
fn jpeg_frame(bytes: &[u8]) -> Option<(bool, u8)> {
    let mut at = 2;
    loop {
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(at + 1)?;
        match marker {
            // Fill bytes before a marker.
            0xFF => at += 1,
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => at += 2,
            // Start of scan: no frame header before it.
            0xDA => return None,
            _ => {
                let len = usize::from(u16::from_be_bytes([
                    *bytes.get(at + 2)?,
                    *bytes.get(at + 3)?,
                ]));
                let is_frame =
                    matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
                if is_frame {
                    let progressive = matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE);
                    return Some((progressive, *bytes.get(at + 9)?));
                }
                at += 2 + len;
            }
        }
    }
}

/// Whether a JPEG stream has an end-of-image marker (FF D9) after its last
/// start-of-scan marker (FF DA) (a stream with no scan at all fails to
/// decode in any case). Entropy-coded data stuffs every FF byte
/// (FF 00), so neither marker can appear inside scan data; markers of an
/// EXIF thumbnail come before the main image's scans, and trailing data
/// after the end-of-image marker (camera trailers) is allowed. Data cut off
/// anywhere in or before the last scan has no such marker.
pub(crate) fn jpeg_has_end_of_image(bytes: &[u8]) -> bool {
    let is = |w: &[u8], marker: u8| w[0] == 0xFF && w[1] == marker;
    // Searching backwards from the end finds the marker after a few bytes in
    // the common case, instead of reading the whole file.
    match bytes.windows(2).rposition(|w| is(w, 0xD9)) {
        Some(eoi) => !bytes[eoi..].windows(2).any(|w| is(w, 0xDA)),
        None => false,
    }
}

/// Converts the decoder's native layout to 8-bit RGB or grey, reusing the
/// decoder's buffer where the conversion only shrinks samples.
fn to_pixels(mut buf: Vec<u8>, color: ColorType, format: Format) -> Result<Pixels, DecodeError> {
    Ok(match color {
        ColorType::L8 => Pixels::Luma8(buf),
        ColorType::Rgb8 => Pixels::Rgb8(buf),
        ColorType::La8 => {
            keep_samples(&mut buf, 2, 1, |src, dst| dst[0] = src[0]);
            Pixels::Luma8(buf)
        }
        ColorType::Rgba8 => {
            keep_samples(&mut buf, 4, 3, |src, dst| dst.copy_from_slice(&src[..3]));
            Pixels::Rgb8(buf)
        }
        // 16-bit samples arrive in native byte order; keep the high byte.
        ColorType::L16 => {
            keep_samples(&mut buf, 2, 1, |src, dst| dst[0] = high_byte(&src[0..2]));
            Pixels::Luma8(buf)
        }
        ColorType::La16 => {
            keep_samples(&mut buf, 4, 1, |src, dst| dst[0] = high_byte(&src[0..2]));
            Pixels::Luma8(buf)
        }
        ColorType::Rgb16 => {
            keep_samples(&mut buf, 6, 3, rgb16_to_8);
            Pixels::Rgb8(buf)
        }
        ColorType::Rgba16 => {
            keep_samples(&mut buf, 8, 3, rgb16_to_8);
            Pixels::Rgb8(buf)
        }
        ColorType::Rgb32F => {
            keep_samples(&mut buf, 12, 3, rgbf32_to_8);
            Pixels::Rgb8(buf)
        }
        ColorType::Rgba32F => {
            keep_samples(&mut buf, 16, 3, rgbf32_to_8);
            Pixels::Rgb8(buf)
        }
        other => {
            return Err(DecodeError::Unsupported {
                format,
                reason: format!("pixel layout {other:?}"),
            })
        }
    })
}

#[inline]
fn high_byte(sample: &[u8]) -> u8 {
    (u16::from_ne_bytes([sample[0], sample[1]]) >> 8) as u8
}

#[inline]
fn rgb16_to_8(src: &[u8], dst: &mut [u8]) {
    for (c, d) in dst.iter_mut().enumerate() {
        *d = high_byte(&src[2 * c..2 * c + 2]);
    }
}

#[inline]
fn rgbf32_to_8(src: &[u8], dst: &mut [u8]) {
    for (c, d) in dst.iter_mut().enumerate() {
        let v = f32::from_ne_bytes(src[4 * c..4 * c + 4].try_into().unwrap());
        // NaN maps to 0 through the saturating cast.
        *d = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    }
}

/// Rewrites `buf` in place from pixels of `from` bytes to pixels of `to`
/// bytes (`to <= from`) and truncates it. Pixel `i` is read at `i * from`
/// and written at `i * to <= i * from`, so a forward pass never overwrites
/// a source pixel before it is read.
fn keep_samples(buf: &mut Vec<u8>, from: usize, to: usize, f: impl Fn(&[u8], &mut [u8])) {
    debug_assert!(to <= from);
    let n = buf.len() / from;
    let mut tmp = [0u8; 16];
    for i in 0..n {
        let (src_at, dst_at) = (i * from, i * to);
        f(&buf[src_at..src_at + from], &mut tmp[..to]);
        buf[dst_at..dst_at + to].copy_from_slice(&tmp[..to]);
    }
    buf.truncate(n * to);
    buf.shrink_to_fit();
}

fn apply_orientation(image: DecodedImage, orientation: Orientation) -> DecodedImage {
    if orientation == Orientation::NoTransforms {
        return image;
    }
    let DecodedImage {
        width,
        height,
        pixels,
    } = image;
    // Both buffers were built to exactly width*height*channels, so
    // `from_raw` cannot fail here.
    let mut dynamic = match pixels {
        Pixels::Rgb8(v) => DynamicImage::ImageRgb8(
            ImageBuffer::from_raw(width, height, v).expect("buffer size matches dimensions"),
        ),
        Pixels::Luma8(v) => DynamicImage::ImageLuma8(
            ImageBuffer::from_raw(width, height, v).expect("buffer size matches dimensions"),
        ),
    };
    dynamic.apply_orientation(orientation);
    let (width, height) = (dynamic.width(), dynamic.height());
    let pixels = match dynamic {
        DynamicImage::ImageLuma8(b) => Pixels::Luma8(b.into_raw()),
        other => Pixels::Rgb8(other.into_rgb8().into_raw()),
    };
    DecodedImage {
        width,
        height,
        pixels,
    }
}

fn map_image_error(e: image::ImageError, format: Format) -> DecodeError {
    use image::ImageError as E;
    match e {
        E::Limits(l) => match l.kind() {
            image::error::LimitErrorKind::DimensionError => DecodeError::LimitExceeded {
                format,
                detail: format!("dimensions over the limit ({l})"),
            },
            _ => DecodeError::LimitExceeded {
                format,
                detail: l.to_string(),
            },
        },
        E::Unsupported(u) => DecodeError::Unsupported {
            format,
            reason: u.to_string(),
        },
        E::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            DecodeError::Truncated {
                format,
                detail: io.to_string(),
            }
        }
        other => {
            let detail = other.to_string();
            if looks_truncated(&detail) {
                DecodeError::Truncated { format, detail }
            } else {
                DecodeError::Corrupt { format, detail }
            }
        }
    }
}

/// Decoders report running out of data in their own words; recognise the
/// common phrasings so a cut-off upload is reported as truncated.
fn looks_truncated(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    [
        "unexpected eof",
        "unexpected end",
        "end of file",
        "eof",
        "truncated",
        "no more bytes",
        "not enough data",
        "exhausted",
    ]
    .iter()
    .any(|p| d.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_samples_drops_alpha_in_place() {
        let mut v = vec![1, 2, 3, 9, 4, 5, 6, 9, 7, 8, 10, 9];
        keep_samples(&mut v, 4, 3, |s, d| d.copy_from_slice(&s[..3]));
        assert_eq!(v, vec![1, 2, 3, 4, 5, 6, 7, 8, 10]);
    }

    #[test]
    fn sixteen_bit_keeps_high_byte() {
        let mut v = Vec::new();
        for s in [0x0000u16, 0x00ff, 0x8000, 0xffff] {
            v.extend_from_slice(&s.to_ne_bytes());
        }
        keep_samples(&mut v, 2, 1, |s, d| d[0] = high_byte(s));
        assert_eq!(v, vec![0x00, 0x00, 0x80, 0xff]);
    }

    #[test]
    fn cut_off_jpegs_are_truncated_errors_and_trailers_are_allowed() {
        let sos_eoi = [0xFF, 0xD8, 0xFF, 0xDA, 1, 2, 0xFF, 0x00, 3, 0xFF, 0xD9];
        assert!(jpeg_has_end_of_image(&sos_eoi));
        // A camera trailer after the end-of-image marker.
        assert!(jpeg_has_end_of_image(&[&sos_eoi[..], b"trailer"].concat()));
        // Cut inside the scan; an EXIF thumbnail's EOI before the main scan.
        assert!(!jpeg_has_end_of_image(&sos_eoi[..9]));
        assert!(!jpeg_has_end_of_image(&[
            0xFF, 0xD8, 0xFF, 0xD9, 0xFF, 0xDA, 1, 2
        ]));
        assert!(!jpeg_has_end_of_image(&[]));
        let jpeg = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/originals/bridge-mods/square-256x256.jpg"
        ))
        .unwrap();
        assert!(decode(&jpeg, &DecodeOptions::default()).is_ok());
        for cut in [jpeg.len() / 3, jpeg.len() - 2] {
            assert!(
                matches!(
                    decode(&jpeg[..cut], &DecodeOptions::default()),
                    Err(DecodeError::Truncated { .. })
                ),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn decoder_panics_become_typed_errors() {
        let r: Result<(), _> = guarded(Format::Tiff, || panic!("boom {}", 42));
        assert_eq!(
            r,
            Err(DecodeError::DecoderPanic {
                format: Format::Tiff,
                message: "boom 42".to_string()
            })
        );
        let r: Result<(), _> = guarded(Format::Gif, || panic!("static"));
        assert!(matches!(r, Err(DecodeError::DecoderPanic { message, .. }) if message == "static"));
        assert_eq!(guarded(Format::Png, || Ok(7)), Ok(7));
    }

    #[test]
    fn limits_default_matches_contract() {
        let l = DecodeLimits::default();
        assert_eq!(l.max_bytes, 64 << 20);
        assert_eq!(l.max_pixels, 100_000_000);
        assert_eq!(l.max_dimension, 30_000);
    }
}
