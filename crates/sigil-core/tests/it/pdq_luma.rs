//! The exact-integer luma every kernel uses equals the reference data's
//! luma (f64 `0.299 R + 0.587 G + 0.114 B` rounded to f32) for all 2^24
//! RGB triples, and grey `v` equals the RGB formula on `(v, v, v)`.

use sigil_core::pdq::luma::{luma_exact, luma_reference_f64};

#[test]
fn integer_luma_equals_f64_binding_luma_for_every_triple() {
    let mut mismatches = 0u64;
    let mut first = None;
    for r in 0..=255u8 {
        for g in 0..=255u8 {
            for b in 0..=255u8 {
                if luma_exact(r, g, b).to_bits() != luma_reference_f64(r, g, b).to_bits() {
                    mismatches += 1;
                    first.get_or_insert((r, g, b));
                }
            }
        }
    }
    assert_eq!(mismatches, 0, "first mismatch at {first:?}");
}

#[test]
fn grey_equals_rgb_of_equal_channels() {
    for v in 0..=255u8 {
        assert_eq!(
            luma_reference_f64(v, v, v).to_bits(),
            f32::from(v).to_bits(),
            "v = {v}"
        );
    }
}
