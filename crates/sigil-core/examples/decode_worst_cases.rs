//! Writes one image per format and layout at a given size (default
//! 10000x10000, the default `max_pixels`), for measuring what decoding
//! each costs in memory (BENCHMARKS.md, "Decode memory"):
//!
//! ```text
//! cargo run --release -p sigil-core --example decode_worst_cases -- OUT_DIR [SIDE]
//! /usr/bin/time -v target/release/sigil hash OUT_DIR/png-rgba16.png
//! # or, to decode past the default max_decode_bytes and print the bound:
//! /usr/bin/time -v target/release/examples/decode_worst_cases --decode FILE
//! ```
//!
//! The content is a smooth gradient of few colours, so the files stay
//! small (a hostile upload is small too: the size that matters is the
//! decoded one). Progressive JPEG and lossy WebP have no encoder here:
//! make them from `rgb8.ppm` with `cjpeg -progressive` and `cwebp`.

use std::path::PathBuf;

use image::{ImageFormat, Rgb, Rgba, RgbaImage};

/// Decodes `path` with no memory budget (every other limit at its
/// default) and prints the bound `decode_memory` computes for it.
fn decode_unbudgeted(path: &str) {
    use sigil_core::decode::{decode, decode_memory, probe, DecodeLimits, DecodeOptions};
    let bytes = std::fs::read(path).expect("read FILE");
    let opts = DecodeOptions {
        limits: DecodeLimits {
            max_bytes: u64::MAX,
            max_decode_bytes: u64::MAX,
            ..DecodeLimits::default()
        },
        ..DecodeOptions::default()
    };
    let (format, w, h) = probe(&bytes, &opts).expect("probe");
    let reader = image::ImageReader::with_format(
        std::io::Cursor::new(&bytes[..]),
        image::ImageFormat::from_path(path).expect("known extension"),
    );
    let color = {
        use image::ImageDecoder;
        let mut r = reader;
        r.no_limits();
        r.into_decoder().expect("decoder").color_type()
    };
    let bound = decode_memory(&bytes, format, w, h, color, false);
    let img = decode(&bytes, &opts).expect("decode");
    println!(
        "{path}: {format} {w}x{h} {color:?}, bound {bound} bytes ({:.0} MiB), decoded to {} bytes",
        bound as f64 / (1 << 20) as f64,
        img.pixels.as_bytes().len()
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    if let Some(path) = std::env::args()
        .nth(2)
        .filter(|_| std::env::args().nth(1).as_deref() == Some("--decode"))
    {
        decode_unbudgeted(&path);
        return;
    }
    let out = PathBuf::from(
        args.next()
            .expect("usage: decode_worst_cases OUT_DIR [SIDE]"),
    );
    let side: u32 = args
        .next()
        .map_or(10_000, |s| s.parse().expect("SIDE is a number"));
    std::fs::create_dir_all(&out).expect("create OUT_DIR");
    // 8 x 8 x 4 levels: at most 256 colours, so GIF needs no quantiser.
    let level = |v: u32, n: u32| ((v * n / side).min(n - 1) * 255 / (n - 1)) as u8;
    let rgba8 = RgbaImage::from_fn(side, side, |x, y| {
        Rgba([level(x, 8), level(y, 8), level((x + y) / 2, 4), 255])
    });
    let rgba16 = image::ImageBuffer::<Rgba<u16>, Vec<u16>>::from_fn(side, side, |x, y| {
        let p = rgba8.get_pixel(x, y).0;
        Rgba([
            257 * u16::from(p[0]),
            257 * u16::from(p[1]),
            257 * u16::from(p[2]),
            65535,
        ])
    });
    let rgb8 = image::ImageBuffer::<Rgb<u8>, Vec<u8>>::from_fn(side, side, |x, y| {
        let p = rgba8.get_pixel(x, y).0;
        Rgb([p[0], p[1], p[2]])
    });
    let save = |name: &str, result: image::ImageResult<()>| {
        result.unwrap_or_else(|e| panic!("{name}: {e}"));
        println!("{}", out.join(name).display());
    };
    save(
        "png-rgba8.png",
        rgba8.save_with_format(out.join("png-rgba8.png"), ImageFormat::Png),
    );
    save(
        "png-rgba16.png",
        rgba16.save_with_format(out.join("png-rgba16.png"), ImageFormat::Png),
    );
    save(
        "jpeg-baseline.jpg",
        rgb8.save_with_format(out.join("jpeg-baseline.jpg"), ImageFormat::Jpeg),
    );
    save(
        "webp-lossless.webp",
        rgba8.save_with_format(out.join("webp-lossless.webp"), ImageFormat::WebP),
    );
    save(
        "gif.gif",
        rgba8.save_with_format(out.join("gif.gif"), ImageFormat::Gif),
    );
    save(
        "bmp-rgba8.bmp",
        rgba8.save_with_format(out.join("bmp-rgba8.bmp"), ImageFormat::Bmp),
    );
    save(
        "tiff-rgba16.tiff",
        rgba16.save_with_format(out.join("tiff-rgba16.tiff"), ImageFormat::Tiff),
    );
    // PPM by hand (the workspace's image crate has no PNM codec): the
    // input of `cjpeg -progressive` and `cwebp`.
    let mut ppm = format!("P6\n{side} {side}\n255\n").into_bytes();
    ppm.extend_from_slice(rgb8.as_raw());
    save(
        "rgb8.ppm",
        std::fs::write(out.join("rgb8.ppm"), ppm).map_err(image::ImageError::from),
    );
}
