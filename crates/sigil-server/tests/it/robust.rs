//! `MatchOptions.robust` and `[matching] robust` end to end: the real server
//! on loopback, an index holding the PDQ hash of one original, and copies of
//! it rotated by 90 degrees and padded with a black border, which plain
//! matching misses and robust matching finds, and a copy rotated by 6
//! degrees, which only the `full` level finds; and `[matching]
//! quality_threshold` reaching the robust variants.

use std::path::{Path, PathBuf};

use sigil_core::robust::RobustLevel;
use sigil_core::{PdqHash, SignOptions, Signer};
use sigil_index::{EntryMeta, IndexWriter, SegmentBuilder};
use sigil_server::auth::{key_digest_hex, Role};
use sigil_server::config::ApiKeyConfig;
use sigil_server::proto::matcher_client::MatcherClient;
use sigil_server::proto::{self, Verdict};
use sigil_server::{RunOptions, RunningServer, ServerConfig};
use tonic::Request;

const KEY: &str = "test-matcher-token";

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}

const ORIGINAL: &str = "originals/bridge-mods/aaa-orig.jpg";
/// The same photo rotated by 90 degrees (from Meta's PDQ test data).
const ROTATED: &str = "originals/reg-test-input/dih/bridge-2-rotate-90.jpg";

/// The original after `edit`, as PNG.
fn edited_png(edit: impl Fn(&image::RgbImage) -> image::RgbImage) -> Vec<u8> {
    let bytes = std::fs::read(testdata(ORIGINAL)).unwrap();
    let img = sigil_core::decode::decode(&bytes, &Default::default()).unwrap();
    let edited = edit(&sigil_core::robust::rgb_of(&img));
    let mut out = std::io::Cursor::new(Vec::new());
    edited.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// The original with a black border adding 20% to each side.
fn padded_png() -> Vec<u8> {
    edited_png(|img| sigil_core::robust::geometry::pad_flat(img, 0.2, [0; 3]))
}

/// The original rotated by 6 degrees, corners black.
fn tilted_png() -> Vec<u8> {
    edited_png(|img| sigil_core::robust::geometry::rotate_degrees(img, 6.0, [0; 3]))
}

/// The original at a tenth of its contrast (PDQ quality about 38).
fn faint(img: &image::RgbImage) -> image::RgbImage {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        for c in &mut p.0 {
            *c = (128.0 + (f32::from(*c) - 128.0) * 0.11).round() as u8;
        }
    }
    out
}

fn pdq_of(bytes: &[u8]) -> (PdqHash, u32) {
    let image = Signer::new(SignOptions::default())
        .sign(bytes)
        .image
        .unwrap();
    (image.pdq, image.quality)
}

/// Starts a server on an index holding the original's PDQ hash.
async fn start(dir: &Path, robust_default: RobustLevel) -> RunningServer {
    let (pdq, _) = pdq_of(&std::fs::read(testdata(ORIGINAL)).unwrap());
    start_on(dir, pdq, |c| c.matching.robust = robust_default).await
}

/// Starts a server on an index holding `pdq` (list "ncmec", id
/// "bridge-1"), its config changed by `tweak`.
async fn start_on(
    dir: &Path,
    pdq: PdqHash,
    tweak: impl FnOnce(&mut ServerConfig),
) -> RunningServer {
    let index = dir.join("index");
    let mut b = SegmentBuilder::new();
    b.push_pdq(
        &pdq.0,
        EntryMeta {
            id: "bridge-1",
            list: "ncmec",
            category: "A1",
            note: None,
        },
    )
    .unwrap();
    IndexWriter::create(&index).unwrap().add_segment(b).unwrap();
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        index: Some(index),
        reporting_organisation: "Example T&S".into(),
        reporting_email: "ts@example.invalid".into(),
        ..ServerConfig::default()
    };
    config.reports.path = dir.join("reports.db");
    config.reload.poll_interval_ms = 0;
    config.limits.hashing_workers = 1;
    config.api_keys = vec![ApiKeyConfig {
        name: "pipeline".into(),
        sha256: key_digest_hex(KEY),
        role: Role::Matcher,
        rate_limit_per_s: 100_000.0,
        burst: None,
    }];
    tweak(&mut config);
    sigil_server::start(config, RunOptions::default())
        .await
        .unwrap()
}

async fn match_image(
    server: &RunningServer,
    image: Vec<u8>,
    robust: Option<i32>,
) -> proto::MatchResult {
    try_match_image(server, image, robust).await.unwrap()
}

async fn try_match_image(
    server: &RunningServer,
    image: Vec<u8>,
    robust: Option<i32>,
) -> Result<proto::MatchResult, tonic::Status> {
    let mut m = MatcherClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    let mut req = Request::new(proto::MatchImageRequest {
        image: image.into(),
        request_id: "r".into(),
        options: Some(proto::MatchOptions {
            robust,
            ..Default::default()
        }),
        ..Default::default()
    });
    req.metadata_mut()
        .insert("authorization", format!("Bearer {KEY}").parse().unwrap());
    m.match_image(req).await.map(|r| r.into_inner())
}

const OFF: Option<i32> = Some(proto::RobustLevel::Off as i32);
const STANDARD: Option<i32> = Some(proto::RobustLevel::Standard as i32);
const FULL: Option<i32> = Some(proto::RobustLevel::Full as i32);

fn assert_robust_match(res: &proto::MatchResult, variant_prefix: &str) {
    assert_eq!(res.verdict(), Verdict::Match, "{res:?}");
    assert_eq!(res.matches.len(), 1, "one match per entry: {res:?}");
    let m = &res.matches[0];
    assert_eq!(m.id, "bridge-1");
    assert!(m.distance <= 31, "{res:?}");
    assert!(
        m.query_variant.starts_with(variant_prefix),
        "matched via {:?}",
        m.query_variant
    );
    assert!(!res.report_id.is_empty());
}

#[tokio::test]
async fn robust_option_matches_rotated_and_padded_copies() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), RobustLevel::Off).await;
    let rotated = std::fs::read(testdata(ROTATED)).unwrap();
    let padded = padded_png();

    // Server default (robust off) and an explicit false: plain PDQ misses both.
    for robust in [None, OFF] {
        for img in [&rotated, &padded] {
            let res = match_image(&server, img.clone(), robust).await;
            assert_eq!(res.verdict(), Verdict::NoMatch, "{res:?}");
            assert!(res.matches.is_empty());
        }
    }
    // Asked for per request: both match, with the variant that did it.
    let res = match_image(&server, rotated.clone(), STANDARD).await;
    assert_robust_match(&res, "dih:");
    let res = match_image(&server, padded.clone(), STANDARD).await;
    assert_robust_match(&res, "trim");
    // The computed hashes are those of the image as given, robust or not.
    let plain = match_image(&server, padded, OFF).await;
    assert_eq!(res.hashes, plain.hashes);

    server.shutdown();
    server.wait().await.unwrap();
}

#[tokio::test]
async fn robust_server_default_applies_unless_the_request_says_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), RobustLevel::Standard).await;
    let rotated = std::fs::read(testdata(ROTATED)).unwrap();

    let res = match_image(&server, rotated.clone(), None).await;
    assert_robust_match(&res, "dih:");
    let res = match_image(&server, rotated, OFF).await;
    assert_eq!(res.verdict(), Verdict::NoMatch, "{res:?}");

    server.shutdown();
    server.wait().await.unwrap();
}

/// `ROBUST_LEVEL_FULL` adds rotation compensation: a copy tilted by 6
/// degrees misses with the standard level and matches with the full one;
/// a level outside the enum is refused, naming the value.
#[tokio::test]
async fn full_level_matches_a_tilted_copy_and_unknown_levels_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), RobustLevel::Off).await;
    let tilted = tilted_png();

    let res = match_image(&server, tilted.clone(), STANDARD).await;
    assert_eq!(res.verdict(), Verdict::NoMatch, "{res:?}");
    let res = match_image(&server, tilted.clone(), FULL).await;
    assert_robust_match(&res, "rot:");

    let err = try_match_image(&server, tilted, Some(7)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("robust level 7"), "{err:?}");

    server.shutdown();
    server.wait().await.unwrap();
}

/// A quality threshold under 50 reaches the robust variants: a faint copy
/// (quality about 38) tilted by 6 degrees is found through its
/// rotated-back variant (quality under 50) when `quality_threshold` is 30,
/// and missed at the default of 50, where that variant is not searched.
#[tokio::test]
async fn a_low_quality_threshold_reaches_the_robust_variants() {
    let faint_original = edited_png(faint);
    let (pdq, quality) = pdq_of(&faint_original);
    assert!(
        (30..50).contains(&quality),
        "precondition: quality {quality}"
    );
    let tilted =
        edited_png(|img| sigil_core::robust::geometry::rotate_degrees(&faint(img), 6.0, [0; 3]));
    for (threshold, found) in [(30, true), (50, false)] {
        let dir = tempfile::tempdir().unwrap();
        let server = start_on(dir.path(), pdq, |c| {
            c.matching.quality_threshold = threshold;
        })
        .await;
        let res = match_image(&server, tilted.clone(), FULL).await;
        if found {
            assert_robust_match(&res, "rot:");
        } else {
            assert_eq!(
                res.verdict(),
                Verdict::NoMatch,
                "threshold {threshold}: {res:?}"
            );
        }
        server.shutdown();
        server.wait().await.unwrap();
    }
}
