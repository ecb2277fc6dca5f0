//! Matching across robust variants: each entry once at its best distance
//! over every query variant ([`best_per_entry`], which scan and serve still
//! call until the matching policy owns it), and the best distance between
//! query variants and enrolled hashes ([`best_distance`], the evaluation's).
//! The variants themselves come from `sigil_core::robust`.

use sigil_core::robust::{EnrollHash, QueryHash};

/// Searches every query variant and keeps each list entry once, at its
/// smallest distance (ties: the earlier variant), with the variant that
/// reached it. `search` returns the matches of one variant (empty to skip
/// it); `key` names the entry (e.g. list and id). Results come in key order.
///
/// One entry reached by several variants is one match: reporting it per
/// variant would inflate match counts and reports, and the nearest variant
/// is the one a reviewer wants to see.
pub fn best_per_entry<'v, M, K: Ord>(
    variants: &'v [QueryHash],
    mut search: impl FnMut(usize, &QueryHash) -> Vec<M>,
    key: impl Fn(&M) -> K,
    distance: impl Fn(&M) -> u32,
) -> Vec<(M, &'v QueryHash)> {
    let mut best: std::collections::BTreeMap<K, (M, &'v QueryHash)> = Default::default();
    for (i, v) in variants.iter().enumerate() {
        for m in search(i, v) {
            let k = key(&m);
            match best.get(&k) {
                Some((b, _)) if distance(b) <= distance(&m) => {}
                _ => {
                    best.insert(k, (m, v));
                }
            }
        }
    }
    best.into_values().collect()
}

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
        QueryVariant, RobustQueryOptions,
    };
    use sigil_core::PdqHash;

    /// A real photo from testdata (256x256), rescaled.
    fn photo(w: u32, h: u32) -> RgbImage {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/eval/q2821.jpg");
        let img = image::open(p).expect("testdata photo").to_rgb8();
        image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle)
    }

    #[test]
    fn best_per_entry_keeps_the_nearest_variant_per_entry() {
        let q = |i: u8, v: QueryVariant| QueryHash {
            hash: PdqHash([i; 32]),
            quality: 100,
            variant: v,
        };
        let variants = [
            q(0, QueryVariant::Original),
            q(1, QueryVariant::Trimmed),
            q(2, QueryVariant::Rotated(30)),
            q(3, QueryVariant::Zoomed(85)),
        ];
        // (entry, distance) found by each variant.
        let found: [&[(&str, u32)]; 4] = [
            &[("a", 20), ("b", 30)],
            &[("a", 12), ("b", 30)],
            &[("a", 12), ("c", 5)],
            &[("a", 1)],
        ];
        let best = best_per_entry(
            &variants,
            |i, _| {
                if i == 3 {
                    Vec::new()
                } else {
                    found[i].to_vec()
                }
            },
            |m| m.0,
            |m| m.1,
        );
        let got: Vec<(&str, u32, String)> = best
            .iter()
            .map(|(m, v)| (m.0, m.1, v.variant.name()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", 12, "trim".to_string()),
                ("b", 30, "orig".to_string()),
                ("c", 5, "rot:+3.0".to_string()),
            ]
        );
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
