//! Decode + PDQ per format, on the same 1600x1004 photo (testdata's
//! `bridge-mods/aaa-orig.jpg`) in each format.
//!
//! JPEG, PNG and WebP inputs are the shipped reference files; GIF, BMP and
//! TIFF are made from the decoded JPEG with the image crate's encoders (no
//! such fixtures are shipped: a 1600x1004 BMP alone is 4.8 MB). The made
//! files are also written to `target/bench-inputs/` so the Pillow +
//! pdqhash side of BENCHMARKS.md (`benches/peers/decode_hash_peer.py`)
//! decodes exactly the same bytes.
//!
//! Run: `cargo bench -p sigil-benches --bench decode`

use std::hint::black_box;
use std::io::Cursor;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use image::{DynamicImage, ImageBuffer, ImageFormat};
use sigil_core::decode::{decode, DecodeOptions, Pixels};
use sigil_core::{SignOptions, Signer};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    let originals = root().join("testdata/originals");
    let read = |p: &str| std::fs::read(originals.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let jpeg = read("bridge-mods/aaa-orig.jpg");
    let decoded = decode(&jpeg, &DecodeOptions::default()).expect("decode aaa-orig.jpg");
    let Pixels::Rgb8(rgb) = decoded.pixels else {
        panic!("aaa-orig.jpg is RGB")
    };
    let img = DynamicImage::ImageRgb8(
        ImageBuffer::from_raw(decoded.width, decoded.height, rgb).expect("buffer"),
    );
    let encode = |format: ImageFormat| {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).expect("encode");
        out.into_inner()
    };
    let made = [
        ("gif", encode(ImageFormat::Gif)),
        ("bmp", encode(ImageFormat::Bmp)),
        ("tiff", encode(ImageFormat::Tiff)),
    ];
    let dump = root().join("target/bench-inputs");
    if std::fs::create_dir_all(&dump).is_ok() {
        for (name, bytes) in &made {
            let _ = std::fs::write(dump.join(format!("aaa-orig.{name}")), bytes);
        }
    }
    let mut all = vec![
        ("jpeg", jpeg),
        // The same photo, lossless RGBA PNG and lossless WebP (Pillow modes set).
        ("png", read("misc-images/modes/RGBA.png")),
        ("webp", read("misc-images/modes/F.webp")),
    ];
    all.extend(made);
    all
}

fn bench_decode(c: &mut Criterion) {
    let inputs = inputs();
    let mut signer = Signer::new(SignOptions::default());
    let opts = DecodeOptions::default();

    let mut group = c.benchmark_group("decode_hash");
    group.sample_size(20);
    for (name, bytes) in &inputs {
        group.bench_function(*name, |b| {
            b.iter(|| signer.sign_image(black_box(bytes)).expect("decodes"))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("decode_only");
    group.sample_size(20);
    for (name, bytes) in &inputs {
        group.bench_function(*name, |b| {
            b.iter(|| decode(black_box(bytes), &opts).expect("decodes"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
