//! Unit tests of the matching rule, against in-memory lookups.

use std::collections::BTreeMap;

use sigil_core::{Dihedral, ExactDigests, FileSignatures, HashKind, ImageSignature, PdqHash};
use sigil_index::{Match, SearchOptions};

use crate::*;
use crate::{QueryHash, QueryVariant, RobustLevel};

/// A fixed PDQ hash with its first `bits` bits flipped.
fn pdq(bits: u32) -> PdqHash {
    let mut h = [0x5au8; 32];
    for b in 0..bits as usize {
        h[b / 8] ^= 0x80 >> (b % 8);
    }
    PdqHash(h)
}

fn digests(bytes: &[u8]) -> ExactDigests {
    ExactDigests::of(bytes)
}

/// Entries at PDQ distances from `pdq(0)`: (list, id, distance).
fn lookup(entries: &[(&str, &str, u32)]) -> MemoryLookup {
    entries.iter().fold(
        MemoryLookup::new().with_generation(7),
        |l, &(list, id, d)| l.with_entry(HashKind::Pdq, &pdq(d).0, list, id, "A1"),
    )
}

fn resolve(policy: &MatchPolicy, request: &MatchRequest, l: &MemoryLookup) -> ResolvedOptions {
    policy.resolve(request, l).expect("options resolve")
}

fn plain(quality: u32) -> ImageQuery<'static> {
    ImageQuery::Pdq {
        hash: pdq(0),
        quality,
        dihedral: None,
    }
}

fn ids(o: &Outcome) -> Vec<(&str, u32)> {
    o.matches
        .iter()
        .map(|m| (m.id.as_str(), m.distance))
        .collect()
}

fn query(bits: u32, quality: u32, variant: QueryVariant) -> QueryHash {
    QueryHash {
        hash: pdq(bits),
        quality,
        variant,
    }
}

#[test]
fn defaults_are_the_named_constants() {
    let p = MatchPolicy::default();
    assert_eq!(p.radius, DEFAULT_RADIUS);
    assert_eq!(p.radius, 31);
    assert_eq!(p.quality_threshold, DEFAULT_QUALITY_THRESHOLD);
    assert_eq!(p.quality_threshold, 50);
    assert_eq!(p.max_radius, DEFAULT_MAX_RADIUS);
    assert_eq!(p.max_matches, DEFAULT_MAX_MATCHES);
    assert_eq!(p.validate(), Ok(()));
    let o = ResolvedOptions::default();
    assert_eq!((o.radius(), o.quality_threshold()), (31, 50));
    assert_eq!(o.max_matches(), usize::MAX);
    assert!(o.lists().is_none() && !o.dihedral() && !o.robust().is_on());
}

#[test]
fn a_request_narrows_the_policy() {
    let l = lookup(&[("a", "x", 0), ("b", "y", 0)]);
    let p = MatchPolicy {
        dihedral: true,
        robust: RobustLevel::Standard,
        ..MatchPolicy::default()
    };
    let o = resolve(&p, &MatchRequest::default(), &l);
    assert_eq!(o.radius(), 31);
    assert!(o.dihedral());
    assert_eq!(o.robust(), RobustLevel::Standard);
    assert_eq!(o.max_matches(), 100);
    let o = resolve(
        &p,
        &MatchRequest {
            radius: Some(12),
            lists: vec!["b".into()],
            dihedral: Some(false),
            robust: Some(RobustLevel::Off),
            max_matches: Some(3),
        },
        &l,
    );
    assert_eq!(o.radius(), 12);
    assert_eq!(o.lists().unwrap().iter().collect::<Vec<_>>(), ["b"]);
    assert!(!o.dihedral() && !o.robust().is_on());
    assert_eq!(o.max_matches(), 3);
    assert_eq!(o.search_options().lists, Some(vec!["b".to_string()]));
    // 0 means the policy's maximum; more than it is cut to it.
    for (asked, got) in [(Some(0), 100), (None, 100), (Some(1000), 100)] {
        let r = MatchRequest {
            max_matches: asked,
            ..Default::default()
        };
        assert_eq!(resolve(&p, &r, &l).max_matches(), got, "{asked:?}");
    }
}

#[test]
fn an_unknown_list_is_refused_naming_the_known_ones() {
    let l = lookup(&[("ncmec", "x", 0), ("iwf", "y", 0)]);
    let r = MatchRequest {
        lists: vec!["iwf".into(), "nope".into()],
        ..Default::default()
    };
    let err = MatchPolicy::default().resolve(&r, &l).unwrap_err();
    assert_eq!(
        err,
        OptionsError::UnknownList {
            name: "nope".into(),
            known: vec!["iwf".into(), "ncmec".into()],
        }
    );
    assert_eq!(
        err.to_string(),
        "unknown list \"nope\" (known lists: iwf, ncmec)"
    );
    let empty = MemoryLookup::new();
    let err = MatchPolicy::unrestricted().resolve(&r, &empty).unwrap_err();
    assert!(
        err.to_string().contains("the index holds no lists"),
        "{err}"
    );
}

#[test]
fn a_radius_over_the_maximum_is_refused() {
    let l = lookup(&[]);
    let p = MatchPolicy::default();
    let asked = |radius| MatchRequest {
        radius: Some(radius),
        ..Default::default()
    };
    assert_eq!(resolve(&p, &asked(64), &l).radius(), 64);
    assert_eq!(
        p.resolve(&asked(65), &l).unwrap_err(),
        OptionsError::RadiusTooLarge { asked: 65, max: 64 }
    );
    // Never over 256, whatever the policy says.
    let loose = MatchPolicy {
        max_radius: 1000,
        ..MatchPolicy::default()
    };
    assert_eq!(
        loose.resolve(&asked(257), &l).unwrap_err(),
        OptionsError::RadiusTooLarge {
            asked: 257,
            max: 256
        }
    );
    assert_eq!(resolve(&loose, &asked(256), &l).radius(), 256);
}

#[test]
fn a_bad_policy_is_named() {
    let bad = |p: MatchPolicy| p.validate().unwrap_err().to_string();
    let d = MatchPolicy::default;
    assert!(bad(MatchPolicy { radius: 70, ..d() }).contains("max_radius 64"));
    assert!(bad(MatchPolicy {
        max_radius: 300,
        ..d()
    })
    .contains("max_radius is 300"));
    assert!(bad(MatchPolicy {
        list_radius: BTreeMap::from([("ncmec".to_string(), 257)]),
        ..d()
    })
    .contains("list_radius.ncmec"));
    assert!(bad(MatchPolicy {
        quality_threshold: 101,
        ..d()
    })
    .contains("quality_threshold"));
    assert!(bad(MatchPolicy {
        max_matches: 0,
        ..d()
    })
    .contains("max_matches"));
    assert_eq!(MatchPolicy::unrestricted().validate(), Ok(()));
}

#[test]
fn the_radius_is_inclusive_and_the_generation_is_reported() {
    let l = lookup(&[("a", "at", 31), ("a", "over", 32)]);
    let o = ResolvedOptions::default();
    let out = Matcher::new(&l, &o).image(&digests(b"x"), plain(100));
    assert_eq!(out.verdict, Verdict::Match);
    assert_eq!(ids(&out), [("at", 31)]);
    assert_eq!(out.generation, 7);
}

#[test]
fn per_list_radii_are_caps() {
    let l = lookup(&[("capped", "c", 25), ("open", "o", 25), ("capped", "n", 5)]);
    let p = MatchPolicy {
        list_radius: BTreeMap::from([("capped".to_string(), 20)]),
        ..MatchPolicy::default()
    };
    let o = resolve(&p, &MatchRequest::default(), &l);
    assert_eq!((o.radius_for("capped"), o.radius_for("open")), (20, 31));
    let out = Matcher::new(&l, &o).image(&digests(b"x"), plain(100));
    assert_eq!(ids(&out), [("n", 5), ("o", 25)]);
    // A caller asking for less gets less on every list.
    let small = MatchRequest {
        radius: Some(10),
        ..Default::default()
    };
    let o = resolve(&p, &small, &l);
    assert_eq!((o.radius_for("capped"), o.radius_for("open")), (10, 10));
    let out = Matcher::new(&l, &o).image(&digests(b"x"), plain(100));
    assert_eq!(ids(&out), [("n", 5)]);
}

/// A cap on a list the generation does not hold is named (a tool refuses
/// it, a server warns), and does nothing to the lists it does hold.
#[test]
fn caps_on_lists_not_held_are_named() {
    let l = lookup(&[("capped", "c", 25), ("open", "o", 25)]);
    let p = MatchPolicy {
        list_radius: BTreeMap::from([
            ("capped".to_string(), 20),
            ("later".to_string(), 5),
            ("cappd".to_string(), 5),
        ]),
        ..MatchPolicy::default()
    };
    assert_eq!(p.list_radius_not_held(&l), ["cappd", "later"]);
    assert!(MatchPolicy::default().list_radius_not_held(&l).is_empty());
    let o = resolve(&p, &MatchRequest::default(), &l);
    let out = Matcher::new(&l, &o).image(&digests(b"x"), plain(100));
    assert_eq!(ids(&out), [("o", 25)]);
}

/// A lookup that ignores the search options: the matcher still applies
/// the list filter and the radius of each list.
struct Careless(MemoryLookup);

impl Lookup for Careless {
    fn generation(&self) -> u64 {
        self.0.generation()
    }
    fn lists(&self) -> Vec<String> {
        self.0.lists()
    }
    fn exact(&self, kind: HashKind, digest: &[u8]) -> Vec<Match> {
        self.0.exact(kind, digest)
    }
    fn pdq(&self, hash: &PdqHash, _: &SearchOptions) -> Vec<Match> {
        self.0.pdq(
            hash,
            &SearchOptions {
                radius: 256,
                ..SearchOptions::default()
            },
        )
    }
    fn pdq_dihedral(&self, v: &[PdqHash; 8], _: &SearchOptions) -> Vec<Match> {
        self.pdq(&v[0], &SearchOptions::default())
    }
}

#[test]
fn the_rule_holds_whatever_the_lookup_returns() {
    let l = Careless(lookup(&[
        ("a", "near", 3),
        ("a", "far", 40),
        ("b", "other", 1),
    ]));
    let p = MatchPolicy {
        list_radius: BTreeMap::from([("a".to_string(), 30)]),
        ..MatchPolicy::default()
    };
    let r = MatchRequest {
        lists: vec!["a".into()],
        ..Default::default()
    };
    let o = p.resolve(&r, &l).unwrap();
    let out = Matcher::new(&l, &o).image(&digests(b"x"), plain(100));
    assert_eq!(ids(&out), [("near", 3)]);
}

#[test]
fn the_list_filter_applies_to_exact_kinds() {
    let file = b"listed bytes";
    let d = digests(file);
    let l = MemoryLookup::new()
        .with_entry(HashKind::Md5, &d.md5, "md5-list", "m", "A1")
        .with_entry(HashKind::Sha256, &d.sha256, "sha-list", "s", "A1")
        .with_entry(HashKind::Pdq, &pdq(200).0, "pdq-list", "p", "A1");
    let only = |list: &str| {
        let r = MatchRequest {
            lists: vec![list.into()],
            ..Default::default()
        };
        MatchPolicy::default().resolve(&r, &l).unwrap()
    };
    let all = ResolvedOptions::default();
    let out = Matcher::new(&l, &all).image(&d, plain(100));
    assert_eq!(ids(&out), [("m", 0), ("s", 0)]);
    let o = only("sha-list");
    let out = Matcher::new(&l, &o).image(&d, plain(100));
    assert_eq!(ids(&out), [("s", 0)]);
    let o = only("pdq-list");
    let out = Matcher::new(&l, &o).image(&d, plain(100));
    assert_eq!(out.verdict, Verdict::NoMatch);
    // Caller-supplied digests too.
    let item = HashItem {
        kind: HashKind::Md5,
        digest: &d.md5,
        quality: None,
    };
    assert_eq!(Matcher::new(&l, &o).hash(item).verdict, Verdict::NoMatch);
    assert_eq!(Matcher::new(&l, &all).hash(item).verdict, Verdict::Match);
}

#[test]
fn low_quality_skips_the_perceptual_hash_only() {
    let file = b"listed bytes";
    let d = digests(file);
    let l = lookup(&[("a", "p", 0)]).with_entry(HashKind::Sha256, &d.sha256, "a", "s", "A1");
    let o = ResolvedOptions::default();
    let m = Matcher::new(&l, &o);
    let out = m.image(&digests(b"other bytes"), plain(49));
    assert_eq!(out.verdict, Verdict::LowQuality);
    assert!(out.matches.is_empty());
    // An exact match still counts.
    let out = m.image(&d, plain(49));
    assert_eq!(out.verdict, Verdict::Match);
    assert_eq!(ids(&out), [("s", 0)]);
    assert_eq!(m.image(&d, plain(50)).matches.len(), 2);
    // Caller-supplied PDQ hashes with their quality.
    let h = pdq(0);
    let item = |quality| HashItem {
        kind: HashKind::Pdq,
        digest: &h.0,
        quality,
    };
    assert_eq!(m.hash(item(Some(10))).verdict, Verdict::LowQuality);
    assert_eq!(m.hash(item(None)).verdict, Verdict::Match);
    // Not decoded: only exact digests, and no match is an error.
    assert_eq!(m.image(&d, ImageQuery::Undecoded).verdict, Verdict::Match);
    let out = m.image(&digests(b"junk"), ImageQuery::Undecoded);
    assert_eq!(out.verdict, Verdict::Error);
    // Not an image: only exact digests, and no match is no match.
    assert_eq!(m.not_an_image(&d).verdict, Verdict::Match);
    assert_eq!(ids(&m.not_an_image(&d)), [("s", 0)]);
    let out = m.not_an_image(&digests(b"junk"));
    assert_eq!((out.verdict, out.error), (Verdict::NoMatch, None));
}

#[test]
fn a_threshold_under_50_reaches_the_robust_variants() {
    let l = lookup(&[("a", "orig", 2), ("a", "trim", 60), ("a", "dim", 120)]);
    let p = MatchPolicy {
        quality_threshold: 30,
        robust: RobustLevel::Standard,
        ..MatchPolicy::unrestricted()
    };
    let o = resolve(&p, &MatchRequest::default(), &l);
    // The variants are computed down to the threshold, not to 50.
    assert_eq!(o.robust_query_options().min_quality, 30);
    assert!(o.robust_query_options().trim);
    let variants = [
        query(0, 40, QueryVariant::Original),
        query(60, 35, QueryVariant::Trimmed),
        query(120, 29, QueryVariant::Zoomed(85)),
    ];
    let out = Matcher::new(&l, &o).image(&digests(b"x"), ImageQuery::Robust(&variants));
    assert_eq!(out.verdict, Verdict::Match);
    // "dim" was reached only by a variant under the threshold: skipped.
    assert_eq!(ids(&out), [("trim", 0), ("orig", 2)]);
    let names: Vec<String> = out
        .matches
        .iter()
        .map(|m| m.query_variant.unwrap().name())
        .collect();
    assert_eq!(names, ["trim", "orig"]);
    assert_eq!(out.matches[1].variant, Some(Dihedral::Orig));
    // The image as given under the threshold: low quality, whatever the
    // derived variants.
    let low = [
        query(0, 29, QueryVariant::Original),
        query(60, 90, QueryVariant::Trimmed),
    ];
    let out = Matcher::new(&l, &o).image(&digests(b"x"), ImageQuery::Robust(&low));
    assert_eq!(out.verdict, Verdict::LowQuality);
    let none = Matcher::new(&l, &o).image(&digests(b"x"), ImageQuery::Robust(&[]));
    assert_eq!(none.verdict, Verdict::Error);
}

#[test]
fn each_entry_once_at_its_nearest_variant_ties_to_the_earlier() {
    let l = lookup(&[("a", "e", 10)]);
    let o = ResolvedOptions::default();
    let m = Matcher::new(&l, &o);
    let flip = QueryVariant::Dihedral(Dihedral::FlipX);
    // Two variants at the same distance (8 from the entry): the earlier.
    let tie = [
        query(0, 100, QueryVariant::Original),
        query(2, 100, QueryVariant::Trimmed),
        query(18, 100, flip),
    ];
    let out = m.image(&digests(b"x"), ImageQuery::Robust(&tie));
    assert_eq!(ids(&out), [("e", 8)]);
    assert_eq!(out.matches[0].query_variant, Some(QueryVariant::Trimmed));
    // A nearer later variant wins, and reports its dihedral transform.
    let nearer = [query(0, 100, QueryVariant::Original), query(9, 100, flip)];
    let out = m.image(&digests(b"x"), ImageQuery::Robust(&nearer));
    assert_eq!(ids(&out), [("e", 1)]);
    assert_eq!(out.matches[0].query_variant, Some(flip));
    assert_eq!(out.matches[0].variant, Some(Dihedral::FlipX));
}

#[test]
fn best_per_entry_keeps_the_nearest_variant_per_entry() {
    let q = |v| query(0, 100, v);
    let variants = [
        q(QueryVariant::Original),
        q(QueryVariant::Trimmed),
        q(QueryVariant::Rotated(30)),
        q(QueryVariant::Zoomed(85)),
    ];
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
        [
            ("a", 12, "trim".to_string()),
            ("b", 30, "orig".to_string()),
            ("c", 5, "rot:+3.0".to_string()),
        ]
    );
}

#[test]
fn max_matches_keeps_the_nearest_and_counts_the_rest() {
    let l = lookup(&[
        ("a", "d4", 4),
        ("a", "d1", 1),
        ("b", "d3", 3),
        ("a", "d2", 2),
        ("a", "d5", 5),
    ]);
    let r = MatchRequest {
        max_matches: Some(2),
        ..Default::default()
    };
    let o = resolve(&MatchPolicy::default(), &r, &l);
    let out = Matcher::new(&l, &o).image(&digests(b"x"), plain(100));
    assert_eq!(out.verdict, Verdict::Match);
    assert_eq!(ids(&out), [("d1", 1), ("d2", 2)]);
    assert_eq!(out.omitted, 3);
    let all = ResolvedOptions::default();
    let out = Matcher::new(&l, &all).image(&digests(b"x"), plain(100));
    assert_eq!(out.omitted, 0);
    assert_eq!(out.matches.len(), 5);
}

#[test]
fn an_entry_is_reported_once_per_kind_sorted_by_distance_list_id() {
    let d = digests(b"file");
    // "e" is stored under two PDQ hashes (as augmented enrolment does) and
    // by its MD5; "b" and "a" tie at one distance.
    let l = lookup(&[("l", "e", 9), ("l", "b", 4), ("k", "a", 4), ("l", "e", 6)]).with_entry(
        HashKind::Md5,
        &d.md5,
        "l",
        "e",
        "A1",
    );
    let o = ResolvedOptions::default();
    let out = Matcher::new(&l, &o).image(&d, plain(100));
    let got: Vec<(&str, &str, HashKind, u32)> = out
        .matches
        .iter()
        .map(|m| (m.list.as_str(), m.id.as_str(), m.kind, m.distance))
        .collect();
    assert_eq!(
        got,
        [
            ("l", "e", HashKind::Md5, 0),
            ("k", "a", HashKind::Pdq, 4),
            ("l", "b", HashKind::Pdq, 4),
            ("l", "e", HashKind::Pdq, 6),
        ]
    );
}

#[test]
fn dihedral_hashes_are_searched_only_when_asked() {
    let l = lookup(&[("a", "flipped", 0)]);
    let mut variants = [pdq(100); 8];
    variants[3] = pdq(0);
    let image = ImageQuery::Pdq {
        hash: variants[0],
        quality: 100,
        dihedral: Some(&variants),
    };
    let off = ResolvedOptions::default();
    let out = Matcher::new(&l, &off).image(&digests(b"x"), image);
    assert_eq!(out.verdict, Verdict::NoMatch);
    let p = MatchPolicy {
        dihedral: true,
        ..MatchPolicy::unrestricted()
    };
    let on = resolve(&p, &MatchRequest::default(), &l);
    let out = Matcher::new(&l, &on).image(&digests(b"x"), image);
    assert_eq!(ids(&out), [("flipped", 0)]);
    assert_eq!(out.matches[0].variant, Some(Dihedral::ALL[3]));
}

#[test]
fn a_file_that_did_not_decode_names_the_cause() {
    let l = lookup(&[("a", "p", 0)]);
    let o = ResolvedOptions::default();
    let m = Matcher::new(&l, &o);
    let sigs = FileSignatures {
        exact: digests(b"junk"),
        image: Err(sigil_core::DecodeError::EmptyInput),
    };
    let out = m.file(&sigs, &[]);
    assert_eq!(out.verdict, Verdict::Error);
    assert!(out
        .error
        .as_deref()
        .unwrap()
        .starts_with("image could not be decoded: "));
    let sigs = FileSignatures {
        exact: digests(b"image"),
        image: Ok(ImageSignature {
            width: 64,
            height: 64,
            pdq: pdq(3),
            quality: 90,
            dihedral: None,
        }),
    };
    assert_eq!(ids(&m.file(&sigs, &[])), [("p", 3)]);
}

#[test]
fn a_batch_of_hashes_matches_as_one_by_one() {
    let d = digests(b"listed");
    let l = lookup(&[("a", "p0", 0), ("a", "p9", 9), ("b", "q", 40)]).with_entry(
        HashKind::Sha1,
        &d.sha1.unwrap(),
        "b",
        "s",
        "A1",
    );
    let o = ResolvedOptions::default();
    let m = Matcher::new(&l, &o);
    let (h0, h9, h40) = (pdq(0), pdq(9), pdq(40));
    let sha1 = d.sha1.unwrap();
    let items = [
        HashItem {
            kind: HashKind::Pdq,
            digest: &h0.0,
            quality: Some(90),
        },
        HashItem {
            kind: HashKind::Sha1,
            digest: &sha1,
            quality: None,
        },
        HashItem {
            kind: HashKind::Pdq,
            digest: &h9.0,
            quality: Some(20),
        },
        HashItem {
            kind: HashKind::Pdq,
            digest: &h40.0[..31],
            quality: None,
        },
        HashItem {
            kind: HashKind::Pdq,
            digest: &h40.0,
            quality: None,
        },
    ];
    let q = m.pdq_queries(&items);
    assert_eq!(q.positions, [0, 4]);
    assert_eq!(q.hashes, [h0, h40]);
    let batch = m.hashes(&items);
    let single: Vec<Outcome> = items.iter().map(|&it| m.hash(it)).collect();
    assert_eq!(batch, single);
    let verdicts: Vec<Verdict> = batch.iter().map(|o| o.verdict).collect();
    assert_eq!(
        verdicts,
        [
            Verdict::Match,
            Verdict::Match,
            Verdict::LowQuality,
            Verdict::Error,
            Verdict::Match,
        ]
    );
    assert!(batch[3].error.as_deref().unwrap().contains("32 bytes"));
    // A search that lost an answer is an error for that item, not a miss.
    let mut found = l.pdq_many(&q.hashes, m.search_options());
    found.pop();
    let partial = m.hash_outcomes(&items, &q, found);
    assert_eq!(partial[0], batch[0]);
    assert_eq!(partial[4].verdict, Verdict::Error);
}

#[test]
fn verdicts_serialise_in_snake_case() {
    let all = [
        Verdict::Match,
        Verdict::NoMatch,
        Verdict::LowQuality,
        Verdict::Error,
    ];
    for v in all {
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, format!("\"{}\"", v.as_str()));
        assert_eq!(serde_json::from_str::<Verdict>(&json).unwrap(), v);
    }
    let m = MatchedEntry {
        query_variant: Some(QueryVariant::TrimmedDihedral(Dihedral::Rot90)),
        ..MatchedEntry::from(Match {
            id: "e".into(),
            list: "l".into(),
            category: "A1".into(),
            note: None,
            kind: HashKind::Pdq,
            distance: 3,
            variant: Some(Dihedral::Rot90),
        })
    };
    let v: serde_json::Value = serde_json::to_value(&m).unwrap();
    assert_eq!(v["query_variant"], "trim+dih:rot90");
    assert!(v.get("note").is_none());
}

#[test]
fn policies_read_from_config_text() {
    let p: MatchPolicy =
        serde_json::from_str(r#"{"radius": 20, "list_radius": {"ncmec": 10}, "robust": true}"#)
            .unwrap();
    assert_eq!(p.radius, 20);
    assert_eq!(p.robust, RobustLevel::Standard);
    assert_eq!(p.max_matches, DEFAULT_MAX_MATCHES);
    assert!(serde_json::from_str::<MatchPolicy>(r#"{"radiuss": 20}"#).is_err());
}
