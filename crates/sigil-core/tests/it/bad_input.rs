//! Hostile and odd inputs: each must give a typed error or a defined
//! result, never a panic. Inputs are crafted in memory (tiny headers) or
//! made with the image crate's encoders, so the tests need no fixtures
//! beyond two JPEGs in testdata/ (the CMYK one and its RGB original).

use std::io::Cursor;
use std::path::PathBuf;

use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgb, Rgba};
use sigil_core::decode::{decode, DecodeError, DecodeLimits, DecodeOptions, Format, Pixels};
use sigil_core::{ExactDigests, PdqHash, SignOptions, Signer};

fn opts() -> DecodeOptions {
    DecodeOptions::default()
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode test image");
    out.into_inner()
}

/// A 64x48 RGB test pattern with structure in both directions.
fn pattern() -> DynamicImage {
    DynamicImage::ImageRgb8(ImageBuffer::from_fn(64, 48, |x, y| {
        Rgb([(x * 4) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8])
    }))
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

/// A PNG that is only a (valid, CRC-correct) IHDR claiming `w`x`h` 8-bit
/// RGB, a tiny IDAT and IEND.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    png_header_claiming(w, h, 8, 2)
}

/// As [`png_header_only`], with the IHDR's bit depth and colour type
/// (6: RGBA).
fn png_header_claiming(w: u32, h: u32, depth: u8, color_type: u8) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[depth, color_type, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    // zlib stream of a few zero bytes: far too little data for the claim.
    png_chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01],
    );
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A GIF whose logical screen and single frame claim `w`x`h`.
fn gif_header_only(w: u16, h: u16) -> Vec<u8> {
    let mut out = b"GIF89a".to_vec();
    out.extend_from_slice(&w.to_le_bytes());
    out.extend_from_slice(&h.to_le_bytes());
    out.extend_from_slice(&[0x80, 0, 0]); // global palette of 2 colours
    out.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
    out.push(0x2c); // image descriptor
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&w.to_le_bytes());
    out.extend_from_slice(&h.to_le_bytes());
    out.push(0);
    out.extend_from_slice(&[2, 2, 0x4c, 0x01, 0]); // min code size 2, one tiny block
    out.push(0x3b);
    out
}

/// A BMP (BITMAPINFOHEADER, 24-bit) claiming `w`x`h` with no pixel data.
fn bmp_header_only(w: i32, h: i32) -> Vec<u8> {
    let mut out = b"BM".to_vec();
    out.extend_from_slice(&(54u32 + 16).to_le_bytes()); // file size
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&54u32.to_le_bytes()); // pixel data offset
    out.extend_from_slice(&40u32.to_le_bytes()); // header size
    out.extend_from_slice(&w.to_le_bytes());
    out.extend_from_slice(&h.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // planes
    out.extend_from_slice(&24u16.to_le_bytes()); // bits per pixel
    out.extend_from_slice(&0u32.to_le_bytes()); // BI_RGB
    out.extend_from_slice(&0u32.to_le_bytes()); // image size
    out.extend_from_slice(&[0; 16]); // resolution, palette counts
    out.extend_from_slice(&[0; 16]); // a few pixel bytes
    out
}

/// A real (small) baseline JPEG whose SOF0 header is patched to claim
/// `w`x`h`: the headers parse, the claim is absurd.
fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut jpeg = encode(&pattern(), ImageFormat::Jpeg);
    let sof = jpeg
        .windows(2)
        .position(|m| m == [0xff, 0xc0])
        .expect("baseline SOF0");
    // marker (2), length (2), precision (1), height (2), width (2)
    jpeg[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    jpeg
}

#[test]
fn zero_byte_file_is_empty_input() {
    assert_eq!(decode(&[], &opts()), Err(DecodeError::EmptyInput));
}

#[test]
fn non_image_with_image_extension_is_unknown_format() {
    // What a text file renamed to .jpg looks like to the decoder: the name
    // is never consulted, only the bytes.
    let text = b"this is not a JPEG, whatever its name says\n";
    assert_eq!(decode(text, &opts()), Err(DecodeError::UnknownFormat));
    // Formats the image crate could sniff but sigil does not decode.
    assert_eq!(
        decode(b"qoif\0\0\0\x01", &opts()),
        Err(DecodeError::UnknownFormat)
    );
}

#[test]
fn too_many_bytes_is_refused_before_parsing() {
    let png = encode(&pattern(), ImageFormat::Png);
    let mut o = opts();
    o.limits.max_bytes = 100;
    match decode(&png, &o) {
        Err(DecodeError::TooManyBytes { len, max: 100 }) => assert_eq!(len, png.len() as u64),
        other => panic!("expected TooManyBytes, got {other:?}"),
    }
}

#[test]
fn truncated_png_is_a_typed_error() {
    let png = encode(&pattern(), ImageFormat::Png);
    for cut in [8, 20, 40, png.len() / 2, png.len() - 13] {
        match decode(&png[..cut], &opts()) {
            Err(DecodeError::Truncated { format, .. })
            | Err(DecodeError::Corrupt { format, .. }) => {
                assert_eq!(format, Format::Png, "cut at {cut}")
            }
            other => panic!("cut at {cut}: expected truncated/corrupt, got {other:?}"),
        }
    }
}

#[test]
fn truncated_jpeg_never_panics() {
    let jpeg = encode(&pattern(), ImageFormat::Jpeg);
    for cut in [3, 30, 200, jpeg.len() / 2, jpeg.len() - 2] {
        // zune-jpeg, like libjpeg, may fill a cut-off scan with grey and
        // return the image; that is a defined result. Otherwise a typed
        // error naming JPEG.
        match decode(&jpeg[..cut], &opts()) {
            Ok(img) => assert_eq!((img.width, img.height), (64, 48), "cut at {cut}"),
            Err(DecodeError::Truncated { format, .. })
            | Err(DecodeError::Corrupt { format, .. }) => {
                assert_eq!(format, Format::Jpeg)
            }
            Err(other) => panic!("cut at {cut}: unexpected error {other:?}"),
        }
    }
}

#[test]
fn corrupt_png_data_is_a_typed_error() {
    let mut png = encode(&pattern(), ImageFormat::Png);
    // Flip bytes inside the first IDAT chunk's data: its CRC no longer
    // matches (and the zlib stream is damaged).
    let idat = png.windows(4).position(|w| w == b"IDAT").expect("IDAT") + 4;
    for b in &mut png[idat + 2..idat + 12] {
        *b ^= 0x5a;
    }
    match decode(&png, &opts()) {
        Err(DecodeError::Corrupt { format, detail }) => {
            assert_eq!(format, Format::Png);
            assert!(!detail.is_empty());
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn corrupt_jpeg_is_a_typed_error() {
    // SOI followed by garbage segments.
    let mut bytes = vec![0xff, 0xd8, 0xff, 0xe0];
    bytes.extend((0..200u32).map(|i| (i * 37 % 256) as u8));
    match decode(&bytes, &opts()) {
        Err(DecodeError::Corrupt { format, .. }) | Err(DecodeError::Truncated { format, .. }) => {
            assert_eq!(format, Format::Jpeg)
        }
        other => panic!("expected a JPEG error, got {other:?}"),
    }
}

#[test]
fn zero_size_images_are_errors() {
    for (name, bytes) in [
        ("png", png_header_only(0, 10)),
        ("gif", gif_header_only(0, 0)),
        ("bmp", bmp_header_only(0, 10)),
    ] {
        match decode(&bytes, &opts()) {
            Err(DecodeError::ZeroSize { .. }) => {}
            other => panic!("{name}: expected an error for a 0-size image, got {other:?}"),
        }
    }
}

#[test]
fn one_by_one_image_decodes() {
    let img = DynamicImage::ImageRgb8(ImageBuffer::from_pixel(1, 1, Rgb([10, 20, 30])));
    for format in [
        ImageFormat::Png,
        ImageFormat::Bmp,
        ImageFormat::Gif,
        ImageFormat::Tiff,
    ] {
        let decoded = decode(&encode(&img, format), &opts()).expect("1x1 decodes");
        assert_eq!((decoded.width, decoded.height), (1, 1), "{format:?}");
        assert_eq!(decoded.pixels.as_bytes().len(), 3, "{format:?}");
    }
}

#[test]
fn images_under_5px_give_the_zero_hash_with_quality_0() {
    let mut signer = Signer::new(SignOptions {
        dihedral: true,
        ..SignOptions::default()
    });
    for (w, h) in [(1, 1), (4, 4), (4, 100), (100, 4)] {
        let img = DynamicImage::ImageRgb8(ImageBuffer::from_fn(w, h, |x, y| {
            Rgb([(x * 50) as u8, (y * 7) as u8, 99])
        }));
        let bytes = encode(&img, ImageFormat::Png);
        let sig = signer.sign(&bytes);
        let image = sig.image.expect("tiny images decode");
        assert_eq!((image.width, image.height), (w, h));
        assert_eq!(image.pdq, PdqHash::ZERO, "{w}x{h}");
        assert_eq!(image.quality, 0, "{w}x{h}");
        assert_eq!(image.dihedral, Some([PdqHash::ZERO; 8]));
        assert_eq!(sig.exact, ExactDigests::of(&bytes));
    }
    // At 5x5 the hash is computed for real.
    let img = DynamicImage::ImageRgb8(ImageBuffer::from_fn(5, 5, |x, y| {
        Rgb([(x * 50) as u8, (y * 40) as u8, 99])
    }));
    let sig = signer.sign(&encode(&img, ImageFormat::Png));
    assert_ne!(sig.image.unwrap().pdq, PdqHash::ZERO);
}

#[test]
fn undecodable_input_still_gets_exact_digests() {
    let mut signer = Signer::new(SignOptions::default());
    let bytes = png_header_only(0, 10);
    let sig = signer.sign(&bytes);
    assert!(matches!(sig.image, Err(DecodeError::ZeroSize { .. })));
    assert_eq!(sig.exact, ExactDigests::of(&bytes));
    let sig = signer.sign(&[]);
    assert_eq!(sig.image, Err(DecodeError::EmptyInput));
    assert_eq!(sig.exact.md5_hex(), "d41d8cd98f00b204e9800998ecf8427e");
}

#[test]
fn header_claiming_50000x50000_is_refused_before_allocation() {
    // Each of these files is tiny (headers only for PNG/GIF/BMP, a 64x48
    // JPEG with a patched SOF); decoding any of them
    // naively would allocate 7.5 GB. The claim must be refused from the
    // header alone.
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("png", png_header_only(50_000, 50_000)),
        ("gif", gif_header_only(50_000, 50_000)),
        ("bmp", bmp_header_only(50_000, 50_000)),
        ("jpeg", jpeg_claiming(50_000, 50_000)),
    ];
    for (name, bytes) in cases {
        assert!(bytes.len() < 2000, "{name} input is {} bytes", bytes.len());
        match decode(&bytes, &opts()) {
            Err(DecodeError::TooLarge { width, height, .. }) => {
                assert_eq!((width, height), (50_000, 50_000), "{name}")
            }
            Err(DecodeError::LimitExceeded { .. }) => {}
            other => panic!("{name}: expected TooLarge, got {other:?}"),
        }
    }
}

#[test]
fn pixel_limit_applies_below_the_dimension_limit() {
    // 20000x20000 is within the per-side limit but 400 Mpx in total.
    let bytes = png_header_only(20_000, 20_000);
    assert!(matches!(
        decode(&bytes, &opts()),
        Err(DecodeError::TooLarge {
            width: 20_000,
            height: 20_000,
            ..
        })
    ));
    // A real image over a tightened pixel limit.
    let png = encode(&pattern(), ImageFormat::Png);
    let o = DecodeOptions {
        limits: DecodeLimits {
            max_pixels: 64 * 48 - 1,
            ..DecodeLimits::default()
        },
        ..DecodeOptions::default()
    };
    assert!(matches!(
        decode(&png, &o),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn animated_gif_gives_first_frame() {
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame};
    let red = ImageBuffer::from_pixel(16, 16, Rgba([255u8, 0, 0, 255]));
    let blue = ImageBuffer::from_pixel(16, 16, Rgba([0u8, 0, 255, 255]));
    let mut bytes = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut bytes);
        enc.encode_frames([
            Frame::from_parts(red, 0, 0, Delay::from_numer_denom_ms(100, 1)),
            Frame::from_parts(blue, 0, 0, Delay::from_numer_denom_ms(100, 1)),
        ])
        .expect("encode animated gif");
    }
    let img = decode(&bytes, &opts()).expect("animated gif decodes");
    assert_eq!((img.width, img.height), (16, 16));
    match img.pixels {
        Pixels::Rgb8(px) => {
            assert!(px.chunks(3).all(|p| p == [255, 0, 0]), "first frame is red")
        }
        other => panic!("expected RGB, got {other:?}"),
    }
}

#[test]
fn sixteen_bit_png_keeps_high_byte() {
    let rgb16 = DynamicImage::ImageRgb16(ImageBuffer::from_fn(8, 8, |x, y| {
        Rgb([(x as u16) * 0x1111, (y as u16) * 0x2001, 0xff00])
    }));
    let img = decode(&encode(&rgb16, ImageFormat::Png), &opts()).unwrap();
    let Pixels::Rgb8(px) = img.pixels else {
        panic!("16-bit RGB should decode to RGB8")
    };
    assert_eq!(&px[3 * 9..3 * 9 + 3], &[0x11, 0x20, 0xff]); // pixel (1, 1)

    let l16 =
        DynamicImage::ImageLuma16(ImageBuffer::from_fn(8, 8, |x, _| Luma([x as u16 * 0x2345])));
    let img = decode(&encode(&l16, ImageFormat::Png), &opts()).unwrap();
    let Pixels::Luma8(px) = img.pixels else {
        panic!("16-bit grey should decode to Luma8")
    };
    assert_eq!(&px[..3], &[0x00, 0x23, 0x46]);
}

#[test]
fn greyscale_alpha_drops_alpha_and_stays_grey() {
    let la = DynamicImage::ImageLumaA8(ImageBuffer::from_fn(5, 5, |x, y| {
        image::LumaA([(x * 40 + y) as u8, 0])
    }));
    let img = decode(&encode(&la, ImageFormat::Png), &opts()).unwrap();
    let Pixels::Luma8(px) = img.pixels else {
        panic!("LA should decode to Luma8")
    };
    assert_eq!(px[6], 41); // (1, 1): alpha 0 did not blank it
}

#[test]
fn rgba_drops_alpha_without_compositing() {
    let rgba = DynamicImage::ImageRgba8(ImageBuffer::from_pixel(6, 6, Rgba([200, 100, 50, 0])));
    for format in [ImageFormat::Png, ImageFormat::WebP, ImageFormat::Tiff] {
        let img = decode(&encode(&rgba, format), &opts()).unwrap();
        assert_eq!(&img.pixels.as_bytes()[..3], &[200, 100, 50], "{format:?}");
    }
}

fn testdata(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}

#[test]
fn cmyk_jpeg_is_not_inverted() {
    // CMYK.jpg is aaa-orig.jpg converted to CMYK by Pillow; a reader that treats
    // C, M, Y as R, G, B produces a negative.
    let cmyk = std::fs::read(testdata("originals/misc-images/modes/CMYK.jpg")).unwrap();
    let rgb = std::fs::read(testdata("originals/bridge-mods/aaa-orig.jpg")).unwrap();
    let a = decode(&cmyk, &opts()).unwrap();
    let b = decode(&rgb, &opts()).unwrap();
    assert_eq!((a.width, a.height), (b.width, b.height));
    let (pa, pb) = (a.pixels.as_bytes(), b.pixels.as_bytes());
    assert_eq!(pa.len(), pb.len());
    let mean_abs: f64 = pa
        .iter()
        .zip(pb)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).abs())
        .sum::<f64>()
        / pa.len() as f64;
    assert!(
        mean_abs < 8.0,
        "CMYK decodes {mean_abs:.1} levels away from RGB on average"
    );
}

/// Inserts an APP1 EXIF segment carrying only an orientation tag right
/// after the JPEG's SOI marker.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec(); // big-endian, IFD at 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn exif_orientation_only_applied_on_request() {
    let jpeg = encode(&pattern(), ImageFormat::Jpeg);
    let bytes = with_exif_orientation(&jpeg, 6);
    let plain = decode(&bytes, &opts()).unwrap();
    assert_eq!(
        (plain.width, plain.height),
        (64, 48),
        "tag ignored by default"
    );
    let oriented = decode(
        &bytes,
        &DecodeOptions {
            apply_exif_orientation: true,
            ..opts()
        },
    )
    .unwrap();
    // Orientation 6 is a 90-degree clockwise rotation: the sides swap and
    // the stored top-left pixel ends up at the top-right.
    assert_eq!((oriented.width, oriented.height), (48, 64));
    let (p, o) = (plain.pixels.as_bytes(), oriented.pixels.as_bytes());
    let top_right = 3 * (48 - 1);
    assert_eq!(&o[top_right..top_right + 3], &p[..3]);
}

/// Decode memory is bounded from the header for every bit depth: a PNG
/// claiming 10000x10000 16-bit RGBA (inside `max_pixels`, but 800 MB of
/// native pixels) is refused by the default `max_decode_bytes` before any
/// pixel buffer is allocated; with a budget of exactly what an 8-bit RGBA
/// image needs, that image decodes and the 16-bit one of the same size is
/// refused.
#[test]
fn decode_memory_is_bounded_from_the_header_for_every_bit_depth() {
    use sigil_core::decode::decode_memory;
    match decode(&png_header_claiming(10_000, 10_000, 16, 6), &opts()) {
        Err(DecodeError::TooMuchMemory {
            format: Format::Png,
            needed,
            max,
            ..
        }) => {
            assert!(needed > 800_000_000, "{needed}");
            assert_eq!(max, DecodeLimits::default().max_decode_bytes);
        }
        other => panic!("expected TooMuchMemory, got {other:?}"),
    }
    let rgba8 = DynamicImage::ImageRgba8(ImageBuffer::from_fn(64, 48, |x, y| {
        Rgba([(x * 4) as u8, (y * 5) as u8, 7, 200])
    }));
    let png8 = encode(&rgba8, ImageFormat::Png);
    let png16 = encode(
        &DynamicImage::ImageRgba16(rgba8.to_rgba16()),
        ImageFormat::Png,
    );
    let budget = decode_memory(&png8, Format::Png, 64, 48, image::ColorType::Rgba8, false);
    let o = DecodeOptions {
        limits: DecodeLimits {
            max_decode_bytes: budget,
            ..DecodeLimits::default()
        },
        ..DecodeOptions::default()
    };
    assert!(decode(&png8, &o).is_ok());
    let e = decode(&png16, &o).unwrap_err();
    assert!(matches!(e, DecodeError::TooMuchMemory { .. }), "{e:?}");
    assert!(
        e.to_string().contains("Rgba16") && e.to_string().contains("64x48"),
        "{e}"
    );
}
