//! The reduced-scale baseline JPEG decoder behind `--fast`, on real JPEGs
//! from testdata/: its output against `jpeg-decoder`'s scaled decode of the
//! same file, restart intervals, what it declines, and hostile input.

use std::path::{Path, PathBuf};

use sigil_core::decode::fast_jpeg::baseline::{self, Declined, Reduced};
use sigil_core::decode::fast_jpeg::decode_reduced;
use sigil_core::pdq::{PdqHasher, Profile};
use sigil_core::{DecodeLimits, DecodeOptions, Pixels};

use crate::support::SplitMix64;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn read(rel: &str) -> Vec<u8> {
    let p = testdata().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Sequential (baseline) JPEGs: 4:2:0, 4:2:2, 4:4:4, grey, with and
/// without restart intervals, 128 to 1600 px.
const BASELINE: &[&str] = &[
    "originals/bridge-mods/aaa-orig.jpg",
    "originals/misc-images/modes/YCbCr.jpg",
    "originals/bridge-mods/square-512x512.jpg",
    "originals/bridge-mods/shrink-a-lot.jpg",
    "originals/reg-test-input/labelme-subset/q2821.jpg",
    "jpeg/bridge-grey.jpg",
    "jpeg/bridge-422.jpg",
    "jpeg/bridge-444.jpg",
    "jpeg/bridge-444-rst.jpg",
];

/// The 1600x1004 photos of [`BASELINE`], of quality >= 80: large enough
/// for `--fast`'s approximations to be held to its deviation bound.
const PHOTOS: [&str; 2] = [
    "originals/bridge-mods/aaa-orig.jpg",
    "originals/misc-images/modes/YCbCr.jpg",
];

fn reduce(bytes: &[u8], d: u32) -> Result<Reduced, Declined> {
    baseline::decode(bytes, |_, _| Some(d))
}

/// `jpeg-decoder`'s decode at 1/d, as luma (grey as is; RGB by PDQ's
/// weights, rounded).
fn reference_luma(bytes: &[u8], d: u32) -> (u32, u32, Vec<u8>) {
    let mut dec = jpeg_decoder::Decoder::new(bytes);
    dec.read_info().unwrap();
    let info = dec.info().unwrap();
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    let (sw, sh) = dec
        .scale(w.div_ceil(d) as u16, h.div_ceil(d) as u16)
        .unwrap();
    let px = dec.decode().unwrap();
    let luma = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => px,
        jpeg_decoder::PixelFormat::RGB24 => px
            .chunks_exact(3)
            .map(|p| {
                (0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
                    .round() as u8
            })
            .collect(),
        other => panic!("unexpected {other:?}"),
    };
    (u32::from(sw), u32::from(sh), luma)
}

#[test]
fn output_matches_jpeg_decoder_at_every_scale() {
    for rel in BASELINE {
        let bytes = read(rel);
        for d in [2u32, 4, 8] {
            let r = reduce(&bytes, d).unwrap_or_else(|e| panic!("{rel} at 1/{d}: {e:?}"));
            let (w, h, want) = reference_luma(&bytes, d);
            assert_eq!((r.width, r.height), (w, h), "{rel} at 1/{d}");
            assert_eq!(r.channels, 1, "{rel}: YCbCr and grey come back as grey");
            assert_eq!(r.reduction, d);
            assert_eq!(r.pixels.len(), want.len());
            let diffs: Vec<u32> = r
                .pixels
                .iter()
                .zip(&want)
                .map(|(&a, &b)| u32::from(a.abs_diff(b)))
                .collect();
            let mean = diffs.iter().sum::<u32>() as f64 / diffs.len() as f64;
            let max = diffs.iter().copied().max().unwrap_or(0);
            // Same IDCT formulas; only rounding and the clipping of RGB
            // separate Y from the reference's luma.
            assert!(mean <= 0.05, "{rel} at 1/{d}: mean difference {mean:.3}");
            assert!(max <= 12, "{rel} at 1/{d}: max difference {max}");
        }
    }
}

#[test]
fn restart_intervals_decode_to_the_same_pixels() {
    // Same pixels, same quality, encoded with and without restart markers:
    // the coefficients are identical, so the output must be too.
    let plain = read("jpeg/bridge-444.jpg");
    let rst = read("jpeg/bridge-444-rst.jpg");
    assert!(
        rst.windows(2).any(|w| w == [0xFF, 0xDD]),
        "fixture has no DRI"
    );
    assert!(!plain.windows(2).any(|w| w == [0xFF, 0xDD]));
    for d in [2, 4, 8] {
        assert_eq!(
            reduce(&plain, d).unwrap().pixels,
            reduce(&rst, d).unwrap().pixels,
            "1/{d}"
        );
    }
}

#[test]
fn pdq_of_the_reduced_decode_stays_close_to_the_exact_path() {
    // The --fast contract: at most 8 bits from the exact path at quality >= 80.
    let mut hasher = PdqHasher::new();
    for rel in PHOTOS {
        let bytes = read(rel);
        let exact = sigil_core::decode::decode(&bytes, &DecodeOptions::default()).unwrap();
        let Pixels::Rgb8(rgb) = &exact.pixels else {
            panic!("{rel}: expected RGB")
        };
        let want = hasher.hash_rgb8(exact.width, exact.height, rgb, Profile::Full);
        // 1600x1004: the --fast rule (shorter side >= 512 after reduction)
        // would keep it whole; force 1/2, the scale used on 2-4 MP photos.
        let r = reduce(&bytes, 2).unwrap();
        let got = hasher.hash_luma8(r.width, r.height, &r.pixels, Profile::Full);
        let bits = want.hash.hamming(&got.hash);
        assert!(want.quality >= 80);
        assert!(bits <= 8, "{rel}: {bits} bits from the exact path");
    }
}

/// PDQ's 64x64 grid of the exact path: full decode, luma, blur, decimation.
fn exact_grid(bytes: &[u8]) -> [f32; 4096] {
    let img = sigil_core::decode::decode(bytes, &DecodeOptions::default()).unwrap();
    let (w, h) = (img.width as usize, img.height as usize);
    let mut luma = vec![0f32; w * h];
    match &img.pixels {
        Pixels::Rgb8(px) => sigil_core::pdq::luma::luma_rgb8_scalar(px, &mut luma),
        Pixels::Luma8(px) => sigil_core::pdq::luma::luma_grey8_scalar(px, &mut luma),
    }
    sigil_core::pdq::jarosz::blur_decimate_reference(&mut luma, h, w)
}

#[test]
fn grid_from_coefficients_matches_the_exact_path() {
    let mut hasher = PdqHasher::new();
    // Measured with 2x2 coefficients per block: mean 0.25, max 3.5, 0 and
    // 2 bits.
    for rel in PHOTOS {
        let bytes = read(rel);
        let want = exact_grid(&bytes);
        let got = baseline::luma_grid(&bytes, |_, _| true).unwrap();
        assert_eq!((got.width, got.height), (1600, 1004));
        let diffs: Vec<f32> = got
            .grid
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .collect();
        let mean = diffs.iter().sum::<f32>() / 4096.0;
        let max = diffs.iter().copied().fold(0.0, f32::max);
        let bits = hasher
            .hash_grid(&got.grid)
            .hash
            .hamming(&hasher.hash_grid(&want).hash);
        assert!(
            mean <= 0.4 && max <= 5.0,
            "{rel}: grid differs by {mean} on average, up to {max}"
        );
        assert!(bits <= 4, "{rel}: {bits} bits from the exact path");
    }
    // 513x321: output windows of 5 and 3 pixels, where a block can reach
    // three outputs; the grid refuses such sizes (--fast takes the grid
    // path only from a 1024 px shorter side).
    for rel in BASELINE.iter().filter(|r| r.starts_with("jpeg/")) {
        let e = baseline::luma_grid(&read(rel), |_, _| true).unwrap_err();
        assert_eq!(e, Declined::NotReduced, "{rel}");
    }
    // What the grid does not take: RGB components, progressive, and sizes
    // the caller refuses (asked before anything is decoded).
    let e = baseline::luma_grid(
        &read("originals/reg-test-input/dih/bridge-2-rotate-90.jpg"),
        |_, _| true,
    )
    .unwrap_err();
    assert!(matches!(e, Declined::Unsupported(_)), "{e:?}");
    let mut seen = None;
    let e = baseline::luma_grid(&read("jpeg/bridge-444.jpg"), |w, h| {
        seen = Some((w, h));
        false
    })
    .unwrap_err();
    assert_eq!((e, seen), (Declined::NotReduced, Some((513, 321))));
}

#[test]
fn declines_what_it_does_not_implement() {
    for rel in [
        "originals/misc-images/small.jpg",
        "originals/reg-test-input/dih/bridge-2-rotate-90.jpg",
    ] {
        let e = reduce(&read(rel), 2).unwrap_err();
        assert!(matches!(e, Declined::Unsupported(_)), "{rel}: {e:?}");
    }
    let e = reduce(&read("originals/misc-images/modes/CMYK.jpg"), 2).unwrap_err();
    assert_eq!(
        e,
        Declined::Unsupported("component count other than 1 or 3")
    );
    // The caller's choice is honoured: no reduction, no decode.
    let bytes = read("jpeg/bridge-444.jpg");
    let mut seen = None;
    let e = baseline::decode(&bytes, |w, h| {
        seen = Some((w, h));
        None
    })
    .unwrap_err();
    assert_eq!(e, Declined::NotReduced);
    assert_eq!(seen, Some((513, 321)));
}

#[test]
fn decode_reduced_uses_the_baseline_decoder_and_falls_back_for_progressive() {
    let limits = DecodeLimits::default();
    // Baseline: grey output at 1/2 (1600x1004 with a 256 px minimum side).
    let (img, d) = decode_reduced(&read("originals/bridge-mods/aaa-orig.jpg"), &limits, 256)
        .expect("baseline JPEG decodes reduced");
    assert_eq!((img.width, img.height, d), (800, 502, 2));
    assert!(matches!(img.pixels, Pixels::Luma8(_)));
    // Progressive: jpeg-decoder's scaled decode, RGB.
    let (img, d) = decode_reduced(
        &read("originals/reg-test-input/dih/bridge-2-rotate-90.jpg"),
        &limits,
        256,
    )
    .expect("progressive JPEG decodes reduced through jpeg-decoder");
    assert_eq!((img.width, img.height, d), (502, 800, 2));
    assert!(matches!(img.pixels, Pixels::Rgb8(_)));
    // Over the pixel limit: no reduced decode (the exact path reports it).
    let small = DecodeLimits {
        max_pixels: 1_000_000,
        ..DecodeLimits::default()
    };
    assert!(decode_reduced(&read("originals/bridge-mods/aaa-orig.jpg"), &small, 256).is_none());
}

#[test]
fn hostile_input_never_panics() {
    // A fixed sequence of mutation positions.
    let mut rng = SplitMix64::new(0x5EED_1234_ABCD_0001);
    let mut below = |n: usize| rng.below(n as u64) as usize;
    let mut outcomes = [0usize; 2];
    for rel in [
        "jpeg/bridge-444-rst.jpg",
        "originals/bridge-mods/shrink-a-lot.jpg",
    ] {
        let good = read(rel);
        let mut cases: Vec<Vec<u8>> = Vec::new();
        // Truncations, headers included.
        for i in 0..120 {
            cases.push(good[..good.len() * i / 120].to_vec());
        }
        // Single bit flips and byte overwrites anywhere.
        for _ in 0..200 {
            let mut b = good.clone();
            let at = below(b.len());
            b[at] ^= 1 << below(8);
            cases.push(b);
            let mut b = good.clone();
            let at = below(b.len());
            b[at] = [0x00, 0xFF, 0xD9, 0xDA, 0xC4][below(5)];
            cases.push(b);
        }
        for case in &cases {
            for d in [2, 8] {
                // A panic fails the test; Ok or Err are both acceptable.
                outcomes[usize::from(reduce(case, d).is_ok())] += 1;
            }
        }
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

#[test]
fn hostile_headers_get_clear_refusals() {
    // SOI, SOF0 of 60000x60000 with one component, and nothing else.
    let mut b = vec![
        0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8, 0xEA, 0x60, 0xEA, 0x60, 1, 1, 0x11, 0,
    ];
    b.extend_from_slice(&[0xFF, 0xD9]);
    assert_eq!(
        reduce(&b, 8).unwrap_err(),
        Declined::Corrupt("no scan before end of image")
    );
    // A Huffman table with more codes of length 1 than fit.
    let dht = [
        0xFF, 0xD8, 0xFF, 0xC4, 0, 22, 0x00, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2,
        3,
    ];
    assert_eq!(
        reduce(&dht, 8).unwrap_err(),
        Declined::Corrupt("over-subscribed Huffman table")
    );
    // A segment length running past the end of the file.
    let seg = [0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xF0, 0, 0];
    assert_eq!(
        reduce(&seg, 8).unwrap_err(),
        Declined::Corrupt("segment runs past the end of the file")
    );
    assert_eq!(
        reduce(b"\x89PNG\r\n\x1a\n", 8).unwrap_err(),
        Declined::Corrupt("no start-of-image marker")
    );
}
