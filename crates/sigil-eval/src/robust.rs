//! The evaluation's distance between an image's query variants and an
//! original's enrolled hashes ([`best_distance`]). The variants come from
//! `sigil_core::robust`; matching a list entry at its best variant, as scan
//! and serve do, is `sigil_match::best_per_entry`, not this.

use sigil_core::robust::{EnrollHash, QueryHash};

/// The best (smallest) distance between any query variant and any stored
/// hash of one entry, with the variants that achieved it.
pub fn best_distance<'a>(
    query: &'a [QueryHash],
    stored: &'a [EnrollHash],
) -> Option<(u32, &'a QueryHash, &'a EnrollHash)> {
    let mut best: Option<(u32, &QueryHash, &EnrollHash)> = None;
    for q in query {
        for s in stored {
            let d = q.hash.hamming(&s.hash);
            if best.is_none_or(|(b, _, _)| d < b) {
                best = Some((d, q, s));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;
    use sigil_core::pdq::PdqHasher;
    use sigil_core::robust::geometry::rotate_degrees;
    use sigil_core::robust::{
        enrollment_hashes_rgb, robust_query_hashes_rgb, AugmentOptions, EnrollVariant,
        RobustQueryOptions,
    };

    /// A real photo from testdata (256x256), rescaled.
    fn photo(w: u32, h: u32) -> RgbImage {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/eval/q2821.jpg");
        let img = image::open(p).expect("testdata photo").to_rgb8();
        image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle)
    }

    #[test]
    fn enrollment_rotation_matches_rotated_query() {
        let mut h = PdqHasher::new();
        let img = photo(300, 200);
        let stored = enrollment_hashes_rgb(&mut h, &img, &AugmentOptions::default());
        assert!(stored.len() > 5);
        assert_eq!(stored[0].variant, EnrollVariant::Original);
        let rotated = rotate_degrees(&img, 3.0, [0, 0, 0]);
        let q = robust_query_hashes_rgb(&mut h, &rotated, &RobustQueryOptions::default());
        let (d, _, s) = best_distance(&q, &stored).unwrap();
        let d_orig = q[0].hash.hamming(&stored[0].hash);
        assert!(d <= d_orig);
        assert!(d <= 20, "best {d} via {}", s.variant.name());
    }
}
