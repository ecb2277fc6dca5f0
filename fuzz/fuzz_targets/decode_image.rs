//! Fuzz `sigil_core::decode::decode` (every enabled image decoder behind the
//! size and dimension guards) and PDQ hashing of whatever decodes.
//!
//! Invariants checked: never a panic (decoder panics must come back as
//! `DecodeError::DecoderPanic`), decoded dimensions within the limits, and a
//! pixel buffer whose length is exactly width * height * channels.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_core::decode::{decode, DecodeLimits, DecodeOptions};
use sigil_core::pdq::{PdqHasher, Profile};
use sigil_core::Pixels;

// Small limits keep each run fast and inside libFuzzer's RSS limit while
// still exercising the "header claims more than allowed" refusals.
const LIMITS: DecodeLimits = DecodeLimits {
    max_bytes: 1 << 20,
    max_pixels: 1 << 22,
    max_dimension: 4096,
    max_decode_bytes: 1 << 25,
};

fuzz_target!(|data: &[u8]| {
    for apply_exif_orientation in [false, true] {
        let opts = DecodeOptions {
            limits: LIMITS,
            apply_exif_orientation,
        };
        let Ok(img) = decode(data, &opts) else {
            continue;
        };
        assert!(img.width >= 1 && img.height >= 1);
        assert!(img.width <= LIMITS.max_dimension && img.height <= LIMITS.max_dimension);
        let pixels = u64::from(img.width) * u64::from(img.height);
        assert!(pixels <= LIMITS.max_pixels);
        assert_eq!(
            img.pixels.as_bytes().len() as u64,
            pixels * img.pixels.channels() as u64,
            "pixel buffer length disagrees with the dimensions"
        );
        let mut hasher = PdqHasher::new();
        let out = match &img.pixels {
            Pixels::Rgb8(p) => hasher.hash_rgb8(img.width, img.height, p, Profile::Full),
            Pixels::Luma8(p) => hasher.hash_luma8(img.width, img.height, p, Profile::Full),
        };
        assert!(out.quality <= 100);
    }
});
