//! `MatchOptions.robust` and `[matching] robust` end to end: the real server
//! on loopback, an index holding the PDQ hash of one original, and copies of
//! it rotated by 90 degrees and padded with a black border, which plain
//! matching misses and robust matching finds, and a copy rotated by 6
//! degrees, which only the `full` level finds.

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

/// Starts a server on an index holding the original's PDQ hash.
async fn start(dir: &Path, robust_default: RobustLevel) -> RunningServer {
    let original =
        Signer::new(SignOptions::default()).sign(&std::fs::read(testdata(ORIGINAL)).unwrap());
    let pdq: PdqHash = original.image.unwrap().pdq;
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
    config.matching.robust = robust_default;
    config.api_keys = vec![ApiKeyConfig {
        name: "pipeline".into(),
        sha256: key_digest_hex(KEY),
        role: Role::Matcher,
        rate_limit_per_s: 100_000.0,
        burst: None,
    }];
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
