//! End-to-end tests: the real server on loopback (ephemeral ports), in
//! process, called through the generated tonic clients. Test indexes are
//! built with the sigil-index writer from hashes of testdata images computed
//! with sigil-core's Signer.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use sigil_core::{HashKind, PdqHash, SignOptions, Signer};
use sigil_index::{EntryMeta, IndexWriter, SegmentBuilder};
use sigil_server::auth::{key_digest_hex, Role};
use sigil_server::config::ApiKeyConfig;
use sigil_server::proto::matcher_client::MatcherClient;
use sigil_server::proto::reports_client::ReportsClient;
use sigil_server::proto::{self, HashKind as PKind, Verdict};
use sigil_server::{RunOptions, RunningServer, ServerConfig};
use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::support::hostile;

const MATCHER_KEY: &str = "test-matcher-token";
const REVIEWER_KEY: &str = "test-reviewer-token";

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}

fn read_testdata(rel: &str) -> Vec<u8> {
    std::fs::read(testdata(rel)).unwrap_or_else(|e| panic!("reading testdata/{rel}: {e}"))
}

/// The known image (in the test index) and one that is not.
const KNOWN: &str = "originals/bridge-mods/square-256x256.jpg";
const UNKNOWN: &str = "originals/misc-images/wee.jpg";

fn sign(bytes: &[u8]) -> sigil_core::FileSignatures {
    Signer::new(SignOptions::default()).sign(bytes)
}

/// Captured log output of every server in this test binary (JSON lines).
fn log_buffer() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer_buf = buf.clone();
        let make_writer = move || SharedWriter(writer_buf.clone());
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(make_writer)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
    .clone()
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);
impl Write for SharedWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    server: Option<RunningServer>,
    known_pdq: PdqHash,
}

impl Fixture {
    fn index_dir(&self) -> PathBuf {
        self.dir.path().join("index")
    }
    fn addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().addr
    }
    async fn matcher(&self) -> MatcherClient<Channel> {
        MatcherClient::connect(format!("http://{}", self.addr()))
            .await
            .unwrap()
            .max_decoding_message_size(64 << 20)
    }
    async fn reports(&self) -> ReportsClient<Channel> {
        ReportsClient::connect(format!("http://{}", self.addr()))
            .await
            .unwrap()
    }
    async fn stop(mut self) -> tempfile::TempDir {
        let s = self.server.take().unwrap();
        s.shutdown();
        s.wait().await.unwrap();
        self.dir
    }
}

/// Builds an index holding the known image's PDQ (list "ncmec") and MD5
/// (list "industry"), and starts a server on it.
async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Fixture {
    log_buffer();
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    let known = sign(&read_testdata(KNOWN));
    let known_pdq = known.image.as_ref().unwrap().pdq;
    let mut w = IndexWriter::create(&index).unwrap();
    let mut b = SegmentBuilder::new();
    b.push_pdq(
        &known_pdq.0,
        EntryMeta {
            id: "bridge-1",
            list: "ncmec",
            category: "A1",
            note: Some("test entry"),
        },
    )
    .unwrap();
    b.push(
        HashKind::Md5,
        &known.exact.md5,
        EntryMeta {
            id: "bridge-md5",
            list: "industry",
            category: "B2",
            note: None,
        },
    )
    .unwrap();
    w.add_segment(b).unwrap();
    drop(w);

    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        index: Some(index),
        reporting_organisation: "Example T&S".into(),
        reporting_email: "ts@example.invalid".into(),
        ..ServerConfig::default()
    };
    config.reports.path = dir.path().join("reports.db");
    config.reload.poll_interval_ms = 0;
    config.limits.hashing_workers = 2;
    config.api_keys = vec![
        ApiKeyConfig {
            name: "pipeline".into(),
            sha256: key_digest_hex(MATCHER_KEY),
            role: Role::Matcher,
            rate_limit_per_s: 100_000.0,
            burst: None,
        },
        ApiKeyConfig {
            name: "reviewer-1".into(),
            sha256: key_digest_hex(REVIEWER_KEY),
            role: Role::Reviewer,
            rate_limit_per_s: 100_000.0,
            burst: None,
        },
    ];
    tweak(&mut config);
    let server = sigil_server::start(config, RunOptions::default())
        .await
        .unwrap();
    Fixture {
        dir,
        server: Some(server),
        known_pdq,
    }
}

async fn start() -> Fixture {
    start_with(|_| {}).await
}

fn authed<T>(msg: T, key: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    r
}

fn image_req(bytes: Vec<u8>, id: &str) -> proto::MatchImageRequest {
    proto::MatchImageRequest {
        image: bytes.into(),
        request_id: id.into(),
        content_ref: format!("s3://bucket/{id}"),
        submitter_ref: "user-42".into(),
        ..Default::default()
    }
}

fn flat_png(w: u32, h: u32) -> Vec<u8> {
    let img = image::GrayImage::from_pixel(w, h, image::Luma([128]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_creates_a_durable_report_and_reviewers_complete_it() {
    let fx = start().await;
    let mut m = fx.matcher().await;
    let bytes = read_testdata(KNOWN);
    let res = m
        .match_image(authed(image_req(bytes.clone(), "r1"), MATCHER_KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.verdict(), Verdict::Match, "{res:?}");
    assert_eq!(res.request_id, "r1");
    let h = res.hashes.as_ref().unwrap();
    assert_eq!(h.pdq, fx.known_pdq.to_hex());
    assert_eq!(h.md5, sign(&bytes).exact.md5_hex());
    assert!(h.quality >= 50);
    // Both the PDQ entry and the MD5 entry matched, nearest first.
    let lists: Vec<&str> = res.matches.iter().map(|x| x.list.as_str()).collect();
    assert!(
        lists.contains(&"ncmec") && lists.contains(&"industry"),
        "{lists:?}"
    );
    let pdq_match = res.matches.iter().find(|x| x.list == "ncmec").unwrap();
    assert_eq!(pdq_match.kind(), PKind::Pdq);
    assert_eq!(pdq_match.distance, 0);
    assert_eq!(pdq_match.id, "bridge-1");
    assert!(!res.report_id.is_empty());

    // A list filter narrows the matches.
    let mut req = image_req(bytes.clone(), "r2");
    req.options = Some(proto::MatchOptions {
        lists: vec!["industry".into()],
        ..Default::default()
    });
    let res2 = m
        .match_image(authed(req, MATCHER_KEY))
        .await
        .unwrap()
        .into_inner();
    assert!(res2.matches.iter().all(|x| x.list == "industry"));
    assert_eq!(res2.matches[0].kind(), PKind::Md5);

    // Reviewer flow.
    let mut r = fx.reports().await;
    let rep = r
        .get_report(authed(
            proto::GetReportRequest {
                id: res.report_id.clone(),
            },
            REVIEWER_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rep.status(), proto::ReportStatus::Pending);
    assert_eq!(rep.md5, h.md5);
    assert_eq!(rep.content_ref, "s3://bucket/r1");
    assert_eq!(rep.reporting_org, "Example T&S");
    assert_eq!(
        rep.preservation_deadline_unix_ms - rep.detected_at_unix_ms,
        365 * 24 * 3600 * 1000
    );
    assert_eq!(rep.viewed, None);
    assert_eq!(rep.audit.len(), 1);

    let listed = r
        .list_reports(authed(
            proto::ListReportsRequest {
                list: "ncmec".into(),
                page_size: 10,
                ..Default::default()
            },
            REVIEWER_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.reports.len(), 1, "only r1 matched list ncmec");
    assert_eq!(listed.reports[0].id, res.report_id);

    // Confirming without having viewed the content is refused.
    let err = r
        .update_report(authed(
            proto::UpdateReportRequest {
                id: res.report_id.clone(),
                status: proto::ReportStatus::Confirmed as i32,
                ..Default::default()
            },
            REVIEWER_KEY,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let upd = r
        .update_report(authed(
            proto::UpdateReportRequest {
                id: res.report_id.clone(),
                status: proto::ReportStatus::Confirmed as i32,
                viewed: Some(true),
                classification: proto::Classification::A1 as i32,
                add_annotations: vec!["matches the list entry".into()],
                expected_version: Some(rep.version),
            },
            REVIEWER_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(upd.status(), proto::ReportStatus::Confirmed);
    assert_eq!(upd.reviewer, "reviewer-1");
    assert_eq!(upd.audit.len(), 2);
    assert_eq!(upd.audit[1].actor, "reviewer-1");
    assert_eq!(upd.version, rep.version + 1);
    // A second reviewer who decided on the old version: ABORTED, naming the
    // change that came first; nothing written.
    let err = r
        .update_report(authed(
            proto::UpdateReportRequest {
                id: res.report_id.clone(),
                status: proto::ReportStatus::Dismissed as i32,
                add_annotations: vec!["looks benign".into()],
                expected_version: Some(rep.version),
                ..Default::default()
            },
            REVIEWER_KEY,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    assert!(
        err.message().contains("reviewer-1") && err.message().contains("confirmed"),
        "{}",
        err.message()
    );

    let export = r
        .export_report(authed(
            proto::ExportReportRequest {
                id: res.report_id.clone(),
            },
            REVIEWER_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    let doc: serde_json::Value = serde_json::from_str(&export.json).unwrap();
    assert!(
        export
            .xml
            .contains("<industryClassification>A1</industryClassification>"),
        "{}",
        export.xml
    );
    assert_eq!(doc["files"][0]["fileViewedByEsp"], true);
    assert_eq!(doc["files"][0]["industryClassification"], "A1");
    assert_eq!(doc["files"][0]["originalFileHash"][0]["value"], h.md5);
    assert_eq!(doc["reportedPerson"]["espIdentifier"], "user-42");

    let missing = r
        .get_report(authed(
            proto::GetReportRequest {
                id: "rpt_nope".into(),
            },
            REVIEWER_KEY,
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    // The stub is on disk: a fresh store (as after a crash) finds it.
    let report_id = res.report_id.clone();
    let dir = fx.stop().await;
    let store = sigil_reports::SqliteReportStore::open(&dir.path().join("reports.db")).unwrap();
    use sigil_reports::ReportStore;
    let rec = store.get(&report_id).unwrap();
    assert_eq!(rec.status, sigil_reports::ReportStatus::Confirmed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_match_low_quality_and_undecodable() {
    let fx = start().await;
    let mut m = fx.matcher().await;

    let unknown = read_testdata(UNKNOWN);
    let q = sign(&unknown).image.unwrap().quality;
    assert!(q >= 50, "test precondition: {UNKNOWN} has quality {q}");
    let res = m
        .match_image(authed(image_req(unknown, "n1"), MATCHER_KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.verdict(), Verdict::NoMatch, "{res:?}");
    assert!(res.matches.is_empty() && res.report_id.is_empty());

    let flat = flat_png(64, 64);
    let res = m
        .match_image(authed(image_req(flat, "lq"), MATCHER_KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.verdict(), Verdict::LowQuality, "{res:?}");
    assert!(res.hashes.unwrap().quality < 50);

    let res = m
        .match_image(authed(
            image_req(b"this is not an image at all".to_vec(), "bad"),
            MATCHER_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.verdict(), Verdict::Error);
    assert!(res.error.contains("could not be decoded"), "{}", res.error);
    // Exact digests are still computed for undecodable bytes.
    assert_eq!(res.hashes.unwrap().md5.len(), 32);

    // Truncated JPEG of the known image: not decodable, and its MD5 differs.
    let mut truncated = read_testdata(KNOWN);
    truncated.truncate(truncated.len() / 3);
    let res = m
        .match_image(authed(image_req(truncated, "trunc"), MATCHER_KEY))
        .await
        .unwrap()
        .into_inner();
    assert!(
        matches!(
            res.verdict(),
            Verdict::Error | Verdict::NoMatch | Verdict::Match
        ),
        "{res:?}"
    );

    let err = m
        .match_image(authed(image_req(Vec::new(), "empty"), MATCHER_KEY))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("image is empty"));

    // The server keeps serving after all of that.
    let res = m
        .match_image(authed(
            image_req(read_testdata(KNOWN), "again"),
            MATCHER_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.verdict(), Verdict::Match);
    fx.stop().await;
}

/// Images larger than an HTTP/2 frame (1 MiB), than a call's receive window
/// (4 MiB) and, four at once on one connection, than the connection's
/// window (16 MiB) arrive whole: each answer carries the hashes of exactly
/// the bytes sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_larger_than_the_http2_windows_arrive_whole() {
    let fx = start().await;
    let m = fx.matcher().await;
    let photo = image::load_from_memory(&read_testdata("originals/misc-images/c.png"))
        .unwrap()
        .to_rgba8();
    let mut calls = Vec::new();
    for i in 0..4u8 {
        // Four different images: one pixel differs per image.
        let mut img = photo.clone();
        img.get_pixel_mut(0, 0).0[0] = i;
        let mut bmp = std::io::Cursor::new(Vec::new());
        img.write_to(&mut bmp, image::ImageFormat::Bmp).unwrap();
        let bmp = bmp.into_inner();
        assert!(
            bmp.len() > 4 << 20,
            "test precondition: {} bytes",
            bmp.len()
        );
        let want = sign(&bmp);
        let mut m = m.clone();
        calls.push(tokio::spawn(async move {
            let res = m
                .match_image(authed(image_req(bmp, &format!("big{i}")), MATCHER_KEY))
                .await
                .unwrap()
                .into_inner();
            (res, want)
        }));
    }
    for call in calls {
        let (res, want) = call.await.unwrap();
        let got = res.hashes.clone().unwrap();
        assert_eq!(res.verdict(), Verdict::NoMatch, "{res:?}");
        assert_eq!(got.md5, sigil_core::hash::encode_hex(&want.exact.md5));
        assert_eq!(got.pdq, want.image.unwrap().pdq.to_hex());
    }
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_roles_and_limits() {
    let fx = start_with(|c| {
        c.limits.max_message_bytes = 16 * 1024;
    })
    .await;
    let mut m = fx.matcher().await;
    let small = flat_png(8, 8);

    let err = m
        .match_image(Request::new(image_req(small.clone(), "x")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let err = m
        .match_image(authed(image_req(small.clone(), "x"), "wrong-token"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = m
        .match_image(authed(image_req(small.clone(), "x"), REVIEWER_KEY))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("reviewer-1"));
    let mut r = fx.reports().await;
    let err = r
        .list_reports(authed(proto::ListReportsRequest::default(), MATCHER_KEY))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Oversized: over the configured 16 KiB message limit.
    let big = read_testdata(KNOWN);
    assert!(big.len() > 16 * 1024);
    let err = m
        .match_image(authed(image_req(big, "big"), MATCHER_KEY))
        .await
        .unwrap_err();
    assert!(
        matches!(err.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{err:?}"
    );

    // Still serving.
    let ok = m
        .match_image(authed(image_req(small, "ok"), MATCHER_KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.verdict(), Verdict::LowQuality);

    // Refusals are counted like calls, by method and by key name (never
    // the key; one label for every unknown key).
    let text = fx.server.as_ref().unwrap().metrics_text();
    for series in [
        "sigil_grpc_requests_total{code=\"UNAUTHENTICATED\",method=\"MatchImage\"} 2",
        "sigil_grpc_requests_total{code=\"PERMISSION_DENIED\",method=\"MatchImage\"} 1",
        "sigil_grpc_requests_total{code=\"PERMISSION_DENIED\",method=\"ListReports\"} 1",
        "sigil_requests_by_key_total{code=\"UNAUTHENTICATED\",key=\"(none)\"} 1",
        "sigil_requests_by_key_total{code=\"UNAUTHENTICATED\",key=\"(unknown)\"} 1",
        "sigil_requests_by_key_total{code=\"PERMISSION_DENIED\",key=\"reviewer-1\"} 1",
        "sigil_requests_by_key_total{code=\"OK\",key=\"pipeline\"} 1",
    ] {
        assert!(text.contains(series), "no {series} in\n{text}");
    }
    assert!(!text.contains("wrong-token"));
    fx.stop().await;
}

/// The server's own deadline: with a zero server-side timeout every image
/// call has expired before hashing starts and gets DEADLINE_EXCEEDED from
/// the server. (A short client `grpc-timeout` cannot test this: tonic's
/// client enforces it itself and reports CANCELLED before the server's
/// answer arrives.) Calls that hash nothing are still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_server_deadline_is_deadline_exceeded() {
    let fx = start_with(|c| {
        c.limits.request_timeout_ms = 0;
    })
    .await;
    let mut m = fx.matcher().await;
    let err = m
        .match_image(authed(image_req(read_testdata(KNOWN), "dl"), MATCHER_KEY))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    m.index_info(authed(proto::IndexInfoRequest {}, MATCHER_KEY))
        .await
        .unwrap();
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_per_key() {
    let fx = start_with(|c| {
        c.api_keys[0].rate_limit_per_s = 0.001;
        c.api_keys[0].burst = Some(2);
    })
    .await;
    let mut m = fx.matcher().await;
    for _ in 0..2 {
        m.index_info(authed(proto::IndexInfoRequest {}, MATCHER_KEY))
            .await
            .unwrap();
    }
    let err = m
        .index_info(authed(proto::IndexInfoRequest {}, MATCHER_KEY))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("pipeline"));
    let text = fx.server.as_ref().unwrap().metrics_text();
    for series in [
        "sigil_grpc_requests_total{code=\"RESOURCE_EXHAUSTED\",method=\"IndexInfo\"} 1",
        "sigil_requests_by_key_total{code=\"RESOURCE_EXHAUSTED\",key=\"pipeline\"} 1",
        "sigil_requests_by_key_total{code=\"OK\",key=\"pipeline\"} 2",
    ] {
        assert!(text.contains(series), "no {series} in\n{text}");
    }
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_hashes_batches_and_bad_input() {
    let fx = start_with(|c| c.limits.max_batch = 50).await;
    let mut m = fx.matcher().await;
    let known = sign(&read_testdata(KNOWN));
    let q = |id: &str, kind: PKind, hex: String| proto::HashQuery {
        id: id.into(),
        kind: kind as i32,
        hex,
        ..Default::default()
    };
    // A PDQ hash 5 bits away from the known one still matches at radius 31.
    let mut near = fx.known_pdq;
    for bit in [0, 17, 100, 200, 255] {
        near.0[bit / 8] ^= 1 << (bit % 8);
    }
    // Unrelated PDQ hashes after the six under test make the batch large
    // enough for the batched index search.
    let mut unrelated = Vec::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..20 {
        let mut h = [0u8; 32];
        for b in h.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        unrelated.push(q(&format!("other-{i}"), PKind::Pdq, PdqHash(h).to_hex()));
    }
    let batch = proto::MatchHashesRequest {
        hashes: vec![
            q(
                "pdq-upper",
                PKind::Pdq,
                fx.known_pdq.to_hex().to_uppercase(),
            ),
            q("pdq-near", PKind::Pdq, near.to_hex()),
            q("md5", PKind::Md5, known.exact.md5_hex()),
            q("sha1", PKind::Sha1, known.exact.sha1_hex().unwrap()),
            q("sha256", PKind::Sha256, known.exact.sha256_hex()),
            proto::HashQuery {
                quality: Some(10),
                ..q("pdq-lowq", PKind::Pdq, fx.known_pdq.to_hex())
            },
        ]
        .into_iter()
        .chain(unrelated)
        .collect(),
        submitter_ref: "batch-user".into(),
        ..Default::default()
    };
    let res = m
        .match_hashes(authed(batch, MATCHER_KEY))
        .await
        .unwrap()
        .into_inner();
    let v: Vec<(String, Verdict)> = res
        .results
        .iter()
        .map(|r| (r.id.clone(), r.verdict()))
        .collect();
    assert_eq!(v.len(), 26);
    assert!(v[6..]
        .iter()
        .enumerate()
        .all(|(i, r)| *r == (format!("other-{i}"), Verdict::NoMatch)));
    assert_eq!(
        v[..6].to_vec(),
        vec![
            ("pdq-upper".into(), Verdict::Match),
            ("pdq-near".into(), Verdict::Match),
            ("md5".into(), Verdict::Match),
            ("sha1".into(), Verdict::NoMatch),
            ("sha256".into(), Verdict::NoMatch),
            ("pdq-lowq".into(), Verdict::LowQuality),
        ]
    );
    assert_eq!(
        res.results[0].hex,
        fx.known_pdq.to_hex(),
        "normalised to lowercase"
    );
    assert_eq!(res.results[1].matches[0].distance, 5);
    assert!(res.results[..3].iter().all(|r| !r.report_id.is_empty()));

    // Radius narrower than the distance: no match.
    let narrow = proto::MatchHashesRequest {
        hashes: vec![q("pdq-near", PKind::Pdq, near.to_hex())],
        options: Some(proto::MatchOptions {
            radius: Some(4),
            ..Default::default()
        }),
        ..Default::default()
    };
    let res = m
        .match_hashes(authed(narrow, MATCHER_KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.results[0].verdict(), Verdict::NoMatch);

    let bad = |hashes: Vec<proto::HashQuery>, options: Option<proto::MatchOptions>| {
        authed(
            proto::MatchHashesRequest {
                hashes,
                options,
                ..Default::default()
            },
            MATCHER_KEY,
        )
    };
    let cases = vec![
        (bad(vec![], None), "no hashes"),
        (
            bad(vec![q("short", PKind::Sha1, "ab".repeat(16))], None),
            "hashes[0] (id \"short\")",
        ),
        (
            bad(
                vec![
                    q("ok", PKind::Md5, "ab".repeat(16)),
                    q("nonhex", PKind::Md5, "zz".repeat(16)),
                ],
                None,
            ),
            "hashes[1] (id \"nonhex\")",
        ),
        (
            bad(vec![q("nokind", PKind::Unspecified, "ab".repeat(16))], None),
            "kind is not set",
        ),
        (
            bad(
                vec![q("a", PKind::Md5, "ab".repeat(16))],
                Some(proto::MatchOptions {
                    lists: vec!["no-such-list".into()],
                    ..Default::default()
                }),
            ),
            "unknown list \"no-such-list\"",
        ),
        (
            bad(
                (0..51)
                    .map(|i| q(&i.to_string(), PKind::Md5, "ab".repeat(16)))
                    .collect(),
                None,
            ),
            "limit of 50",
        ),
        (
            bad(
                vec![q("a", PKind::Md5, "ab".repeat(16))],
                Some(proto::MatchOptions {
                    radius: Some(200),
                    ..Default::default()
                }),
            ),
            "radius 200",
        ),
    ];
    for (req, needle) in cases {
        let err = m.match_hashes(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{needle}: {err:?}");
        assert!(
            err.message().contains(needle),
            "{needle}: {}",
            err.message()
        );
    }

    // The batch stubs were stored; no stub was lost to the bad requests.
    let mut r = fx.reports().await;
    let listed = r
        .list_reports(authed(
            proto::ListReportsRequest {
                page_size: 2,
                ..Default::default()
            },
            REVIEWER_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.reports.len(), 2);
    let page2 = r
        .list_reports(authed(
            proto::ListReportsRequest {
                page_size: 2,
                page_token: listed.next_page_token.clone(),
                ..Default::default()
            },
            REVIEWER_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page2.reports.len(), 1);
    assert!(page2.next_page_token.is_empty());
    assert_eq!(page2.reports[0].source, "hashes");

    let info = m
        .index_info(authed(proto::IndexInfoRequest {}, MATCHER_KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.entries, 2);
    assert_eq!(info.pdq_entries, 1);
    let names: Vec<&str> = info.lists.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, vec!["industry", "ncmec"]);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_results_come_back_in_request_order() {
    let fx = start_with(|c| c.limits.stream_window = 3).await;
    let mut m = fx.matcher().await;
    let known = read_testdata(KNOWN);
    let unknown = read_testdata(UNKNOWN);
    let items = vec![
        image_req(known.clone(), "s0"),
        image_req(unknown.clone(), "s1"),
        image_req(b"garbage".to_vec(), "s2"),
        image_req(Vec::new(), "s3"),
        image_req(flat_png(32, 32), "s4"),
        image_req(known.clone(), "s5"),
        image_req(unknown.clone(), "s6"),
    ];
    let out = m
        .match_image_stream(authed(tokio_stream::iter(items), MATCHER_KEY))
        .await
        .unwrap()
        .into_inner();
    use tokio_stream::StreamExt;
    let results: Vec<proto::MatchResult> = out.map(|r| r.unwrap()).collect().await;
    let got: Vec<(String, Verdict)> = results
        .iter()
        .map(|r| (r.request_id.clone(), r.verdict()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("s0".into(), Verdict::Match),
            ("s1".into(), Verdict::NoMatch),
            ("s2".into(), Verdict::Error),
            ("s3".into(), Verdict::Error),
            ("s4".into(), Verdict::LowQuality),
            ("s5".into(), Verdict::Match),
            ("s6".into(), Verdict::NoMatch),
        ]
    );
    assert!(results[3].error.contains("image is empty"));
    // The same image twice is one stub with two sightings (issue 22: one
    // stub per sighting of a content and its entries, not per call).
    assert_eq!(results[0].report_id, results[5].report_id);
    let rep = fx
        .reports()
        .await
        .get_report(authed(
            proto::GetReportRequest {
                id: results[0].report_id.clone(),
            },
            REVIEWER_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    let refs: Vec<&str> = rep
        .occurrences
        .iter()
        .map(|o| o.content_ref.as_str())
        .collect();
    assert_eq!(refs.len(), 2, "{refs:?}");
    assert!(refs.contains(&"s3://bucket/s0") && refs.contains(&"s3://bucket/s5"));
    // check_only: matched, no stub, no sighting.
    let mut checked = image_req(known.clone(), "s7");
    checked.options = Some(proto::MatchOptions {
        check_only: Some(true),
        ..Default::default()
    });
    let res = m
        .match_image(authed(checked, MATCHER_KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.verdict(), Verdict::Match);
    assert!(res.report_id.is_empty());
    let again = fx
        .reports()
        .await
        .get_report(authed(
            proto::GetReportRequest {
                id: results[0].report_id.clone(),
            },
            REVIEWER_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.occurrence_count, 2);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_pool_refuses_at_once_instead_of_queueing() {
    // One worker, no queue: a second concurrent image must be refused.
    let fx = start_with(|c| {
        c.limits.hashing_workers = 1;
        c.limits.hashing_queue = 0;
    })
    .await;
    let big = read_testdata("originals/misc-images/c.png");
    let mut refused = 0;
    let mut done = 0;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut m = fx.matcher().await;
        let big = big.clone();
        tasks.push(tokio::spawn(async move {
            m.match_image(authed(image_req(big, &format!("p{i}")), MATCHER_KEY))
                .await
        }));
    }
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => done += 1,
            Err(e) => {
                assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
                assert!(e.message().contains("pool is full"));
                refused += 1;
            }
        }
    }
    assert!(done >= 1, "at least the first image is hashed");
    assert_eq!(done + refused, 8);
    // Whether any were refused depends on scheduling; the counter must agree.
    let metrics = fx.server.as_ref().unwrap().metrics_text();
    assert!(
        metrics.contains(&format!("sigil_hash_pool_rejections_total {refused}")),
        "{metrics}"
    );
    fx.stop().await;
}

/// Pseudo-random PDQ hashes (none near the known image's, in practice).
fn unrelated_pdq(seed: u64, n: usize) -> Vec<PdqHash> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            let mut h = [0u8; 32];
            for b in h.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            PdqHash(h)
        })
        .collect()
}

/// A `MatchHashes` batch of `n` hashes for caller `t` and the verdict
/// each must get at radius `radius`: the known PDQ hash at distance 0 and
/// 5, its MD5, a low-quality copy, and unrelated PDQ hashes.
fn mixed_batch(
    fx: &Fixture,
    known_md5: &str,
    t: usize,
    n: usize,
    radius: u32,
) -> (proto::MatchHashesRequest, Vec<(String, Verdict)>) {
    let mut near = fx.known_pdq;
    for bit in [3, 40, 99, 150, 201] {
        near.0[bit / 8] ^= 1 << (bit % 8);
    }
    let others = unrelated_pdq(1000 + t as u64, n);
    let mut hashes = Vec::with_capacity(n);
    let mut want = Vec::with_capacity(n);
    for (i, other) in others.iter().enumerate() {
        let id = format!("t{t}-{i}");
        let (kind, hex, quality, verdict) = match (i + t) % 7 {
            0 => (PKind::Pdq, fx.known_pdq.to_hex(), None, Verdict::Match),
            1 => (
                PKind::Pdq,
                near.to_hex(),
                Some(90),
                if radius >= 5 {
                    Verdict::Match
                } else {
                    Verdict::NoMatch
                },
            ),
            2 => (PKind::Md5, known_md5.to_string(), None, Verdict::Match),
            3 => (
                PKind::Pdq,
                fx.known_pdq.to_hex(),
                Some(10),
                Verdict::LowQuality,
            ),
            _ => (PKind::Pdq, other.to_hex(), None, Verdict::NoMatch),
        };
        hashes.push(proto::HashQuery {
            id: id.clone(),
            kind: kind as i32,
            hex,
            quality,
            ..Default::default()
        });
        want.push((id, verdict));
    }
    let req = proto::MatchHashesRequest {
        hashes,
        options: Some(proto::MatchOptions {
            radius: Some(radius),
            ..Default::default()
        }),
        submitter_ref: format!("caller-{t}"),
    };
    (req, want)
}

fn verdicts(res: &proto::MatchHashesResponse) -> Vec<(String, Verdict)> {
    res.results
        .iter()
        .map(|r| (r.id.clone(), r.verdict()))
        .collect()
}

/// Concurrent calls share the lookup queue (and may be searched together)
/// but each gets exactly its own verdicts; calls with another radius are
/// never judged with the wrong one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_match_hashes_calls_each_get_their_own_verdicts() {
    let fx = start().await;
    let known_md5 = sign(&read_testdata(KNOWN)).exact.md5_hex();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let mut m = fx.matcher().await;
        let radius = if t % 2 == 0 { 31 } else { 4 };
        let (req, want) = mixed_batch(&fx, &known_md5, t, 50, radius);
        tasks.push(tokio::spawn(async move {
            let res = m
                .match_hashes(authed(req, MATCHER_KEY))
                .await
                .unwrap()
                .into_inner();
            (res, want)
        }));
    }
    for t in tasks {
        let (res, want) = t.await.unwrap();
        assert_eq!(verdicts(&res), want);
        for r in &res.results {
            let ids: Vec<&str> = r.matches.iter().map(|m| m.id.as_str()).collect();
            match r.verdict() {
                Verdict::Match if r.kind() == PKind::Pdq => assert_eq!(ids, ["bridge-1"]),
                Verdict::Match => assert_eq!(ids, ["bridge-md5"]),
                _ => assert!(ids.is_empty(), "{r:?}"),
            }
            assert_eq!(r.report_id.is_empty(), r.verdict() != Verdict::Match);
        }
    }
    let metrics = fx.server.as_ref().unwrap().metrics_text();
    assert!(
        metrics.contains("sigil_lookup_batch_requests_count"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sigil_lookup_queue_rejections_total 0"),
        "{metrics}"
    );
    fx.stop().await;
}

/// With room for two calls (one searched, `lookup_queue = 1` waiting), a
/// flood of concurrent calls is answered or refused with
/// RESOURCE_EXHAUSTED at once, never queued without bound, and the server
/// keeps serving afterwards. The calls are released together against an
/// index of 20,000 entries, so refusals are likely, but how many there are
/// depends on scheduling and is not asserted (the lookup queue's unit tests
/// hold the worker to make a refusal certain); every answer must be right
/// and the counter must agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_match_hashes_is_answered_or_refused_at_once_and_serving_continues() {
    let fx = start_with(|c| c.limits.lookup_queue = 1).await;
    let server = fx.server.as_ref().unwrap();
    {
        let index = fx.index_dir();
        tokio::task::spawn_blocking(move || {
            let mut w = IndexWriter::open(&index).unwrap();
            let mut b = SegmentBuilder::new();
            for (i, h) in unrelated_pdq(77, 20_000).iter().enumerate() {
                let id = format!("filler-{i}");
                b.push_pdq(
                    &h.0,
                    EntryMeta {
                        id: &id,
                        list: "filler",
                        category: "B2",
                        note: None,
                    },
                )
                .unwrap();
            }
            w.add_segment(b).unwrap();
        })
        .await
        .unwrap();
    }
    server.reload_now().await;
    let known_md5 = sign(&read_testdata(KNOWN)).exact.md5_hex();
    let calls = 16;
    let go = Arc::new(tokio::sync::Barrier::new(calls));
    let mut tasks = Vec::new();
    for t in 0..calls {
        let mut m = fx.matcher().await;
        let (req, want) = mixed_batch(&fx, &known_md5, t, 1000, 31);
        let go = go.clone();
        tasks.push(tokio::spawn(async move {
            go.wait().await;
            (m.match_hashes(authed(req, MATCHER_KEY)).await, want)
        }));
    }
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            (Ok(res), want) => assert_eq!(verdicts(&res.into_inner()), want),
            (Err(e), _) => {
                assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
                assert!(e.message().contains("lookup queue is full"), "{e:?}");
                refused += 1;
            }
        }
    }
    let metrics = server.metrics_text();
    assert!(
        metrics.contains(&format!("sigil_lookup_queue_rejections_total {refused}")),
        "{metrics}"
    );
    // Every flood call has its answer, so its room was given back.
    let mut m = fx.matcher().await;
    for t in 100..104 {
        let (req, want) = mixed_batch(&fx, &known_md5, t, 20, 31);
        let res = m
            .match_hashes(authed(req, MATCHER_KEY))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(verdicts(&res), want);
    }
    println!("lookup flood: {refused} of {calls} calls refused");
    fx.stop().await;
}

/// Adds an entry for `pdq` to the index on disk (a new generation).
fn add_entry(index: &Path, pdq: &PdqHash, id: &str) -> u64 {
    let mut w = IndexWriter::open(index).unwrap();
    let mut b = SegmentBuilder::new();
    b.push_pdq(
        &pdq.0,
        EntryMeta {
            id,
            list: "ncmec",
            category: "A2",
            note: None,
        },
    )
    .unwrap();
    w.add_segment(b).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_fails_no_request() {
    let fx = start().await;
    let unknown_pdq = sign(&read_testdata(UNKNOWN)).image.unwrap().pdq;
    let before = fx.server.as_ref().unwrap().generation();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for t in 0..4 {
        let mut m = fx.matcher().await;
        let stop = stop.clone();
        let known = fx.known_pdq;
        load.push(tokio::spawn(async move {
            let mut calls = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || calls < 20 {
                let req = proto::MatchHashesRequest {
                    hashes: vec![proto::HashQuery {
                        id: format!("{t}-{calls}"),
                        kind: PKind::Pdq as i32,
                        hex: known.to_hex(),
                        ..Default::default()
                    }],
                    ..Default::default()
                };
                let res = m
                    .match_hashes(authed(req, MATCHER_KEY))
                    .await
                    .expect("no call may fail during a reload")
                    .into_inner();
                assert_eq!(res.results[0].verdict(), Verdict::Match);
                calls += 1;
            }
            calls
        }));
    }
    // Three new generations while the load runs.
    let server = fx.server.as_ref().unwrap();
    for i in 0..3 {
        let g = add_entry(&fx.index_dir(), &unknown_pdq, &format!("new-{i}"));
        server.reload_now().await;
        assert_eq!(server.generation(), g);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in load {
        assert!(l.await.unwrap() >= 20);
    }
    assert!(server.generation() > before);

    // The new entries are served.
    let mut m = fx.matcher().await;
    let res = m
        .match_image(authed(
            image_req(read_testdata(UNKNOWN), "after"),
            MATCHER_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.verdict(), Verdict::Match);
    assert_eq!(res.matches.len(), 3);
    assert!(res.index_generation > before);

    // A corrupt generation is refused and the old one keeps serving.
    let g = server.generation();
    std::fs::write(fx.index_dir().join("MANIFEST"), b"garbage").unwrap();
    server.reload_now().await;
    assert_eq!(server.generation(), g);
    let res = m
        .match_image(authed(
            image_req(read_testdata(UNKNOWN), "still"),
            MATCHER_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.verdict(), Verdict::Match);
    assert!(server
        .metrics_text()
        .contains("sigil_index_reloads_total{outcome=\"error\"} 1"));
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reflection_and_metrics_endpoints() {
    let fx = start().await;
    let channel = Channel::from_shared(format!("http://{}", fx.addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let st = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "sigil.v1.Matcher".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        st.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    let mut m = fx.matcher().await;
    m.match_image(authed(image_req(read_testdata(KNOWN), "m"), MATCHER_KEY))
        .await
        .unwrap();
    let addr = fx.server.as_ref().unwrap().metrics_addr.unwrap();
    let body = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(
        body.contains("sigil_grpc_requests_total{code=\"OK\",method=\"MatchImage\"} 1"),
        "{body}"
    );
    assert!(body.contains("sigil_matches_total{kind=\"pdq\",list=\"ncmec\"} 1"));
    assert!(body.contains("sigil_index_entries 2"));
    assert!(body.contains("sigil_grpc_request_seconds_bucket"));
    // Read at scrape time from this process's mappings: the lookup above
    // touched the index, so some of it is resident.
    let gauge = |name: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<i64>().ok())
            .unwrap_or_else(|| panic!("no {name} in {body}"))
    };
    let resident = gauge("sigil_index_resident_bytes");
    if cfg!(target_os = "linux") {
        assert!(resident > 0, "{body}");
    }
    assert!((0..=resident).contains(&gauge("sigil_index_huge_page_bytes")));
    fx.stop().await;
}

/// Reflection answers under both protocol names: grpcurl speaks v1, while
/// grpcio-reflection's client, Postman and older grpcurl speak v1alpha.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_is_served_as_v1_and_v1alpha() {
    let fx = start().await;
    let channel = Channel::from_shared(format!("http://{}", fx.addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    macro_rules! list_services {
        ($pb:path) => {{
            use $pb as pb;
            let mut client =
                pb::server_reflection_client::ServerReflectionClient::new(channel.clone());
            let request = pb::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(pb::server_reflection_request::MessageRequest::ListServices(
                    String::new(),
                )),
            };
            let mut replies = client
                .server_reflection_info(tokio_stream::iter([request]))
                .await
                .unwrap()
                .into_inner();
            let reply = replies.message().await.unwrap().unwrap();
            match reply.message_response.unwrap() {
                pb::server_reflection_response::MessageResponse::ListServicesResponse(l) => {
                    l.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
                }
                other => panic!("unexpected reflection reply {other:?}"),
            }
        }};
    }
    for names in [
        list_services!(tonic_reflection::pb::v1),
        list_services!(tonic_reflection::pb::v1alpha),
    ] {
        for want in [
            "sigil.v1.Matcher",
            "sigil.v1.Reports",
            "grpc.health.v1.Health",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
    }
    fx.stop().await;
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_bytes_never_reach_disk_or_logs() {
    let fx = start().await;
    let bytes = read_testdata(KNOWN);
    // A distinctive run from the middle of the compressed data.
    let mid = bytes.len() / 2;
    let needle = bytes[mid..mid + 48].to_vec();
    let needle_hex = sigil_core::hash::encode_hex(&needle);
    let mut m = fx.matcher().await;
    let res = m
        .match_image(authed(image_req(bytes.clone(), "secret"), MATCHER_KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.verdict(), Verdict::Match);
    let mut stream_items = vec![image_req(bytes.clone(), "secret-stream")];
    stream_items[0].file_name = "upload.jpg".into();
    let out = m
        .match_image_stream(authed(tokio_stream::iter(stream_items), MATCHER_KEY))
        .await
        .unwrap()
        .into_inner();
    use tokio_stream::StreamExt;
    let n = out.collect::<Vec<_>>().await.len();
    assert_eq!(n, 1);
    // Inspect the files while the server still runs (WAL not checkpointed)
    // and after it stopped.
    let inspect = |dir: &Path| {
        let mut files = Vec::new();
        files_under(dir, &mut files);
        assert!(
            files
                .iter()
                .any(|f| f.to_string_lossy().ends_with("reports.db-wal")),
            "{files:?}"
        );
        for f in files {
            let data = std::fs::read(&f).unwrap();
            assert!(
                !contains(&data, &needle),
                "image bytes found in {}",
                f.display()
            );
            assert!(
                !contains(&data, needle_hex.as_bytes()),
                "image bytes (hex) found in {}",
                f.display()
            );
        }
    };
    inspect(fx.dir.path());
    let logs = log_buffer().lock().unwrap().clone();
    assert!(contains(&logs, b"image matched"), "logs were captured");
    assert!(!contains(&logs, &needle));
    assert!(!contains(&logs, needle_hex.as_bytes()));
    let dir = fx.stop().await;
    let mut files = Vec::new();
    files_under(dir.path(), &mut files);
    for f in files {
        let data = std::fs::read(&f).unwrap();
        assert!(
            !contains(&data, &needle),
            "image bytes found in {}",
            f.display()
        );
    }
}

/// `limits.max_connections`: with the one slot held by an idle client, a
/// second client is not served (its call does not complete); once the idle
/// one disconnects, the waiting client is accepted and answered. The gauge
/// `sigil_connections_open` counts open connections.
#[tokio::test]
async fn connection_cap_holds_new_clients_until_a_slot_frees() {
    let f = start_with(|c| c.limits.max_connections = 1).await;
    let idle = f.matcher().await;
    let mut idle_for_info = idle.clone();
    idle_for_info
        .index_info(authed(proto::IndexInfoRequest {}, MATCHER_KEY))
        .await
        .unwrap();
    assert!(
        f.server
            .as_ref()
            .unwrap()
            .metrics_text()
            .contains("sigil_connections_open 1"),
        "one connection open"
    );

    let addr = f.addr();
    let waiting = tokio::spawn(async move {
        let mut m = MatcherClient::connect(format!("http://{addr}")).await?;
        m.index_info(authed(proto::IndexInfoRequest {}, MATCHER_KEY))
            .await
            .map_err(Into::into)
            .map(|r| r.into_inner())
    });
    // Not served while the slot is taken. (Only "not yet" is asserted here:
    // a slow machine cannot make this fail.)
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "second client served over the cap");

    drop(idle_for_info);
    drop(idle);
    let info: Result<proto::IndexInfoResponse, Box<dyn std::error::Error + Send + Sync>> =
        waiting.await.unwrap();
    let info = info.unwrap();
    assert!(info.entries > 0, "{info:?}");
    f.stop().await;
}

/// Adds an unrelated PDQ entry of `list` to the index on disk.
fn add_list_entry(index: &Path, list: &str, id: &str) {
    let mut w = IndexWriter::open(index).unwrap();
    let mut b = SegmentBuilder::new();
    let meta = EntryMeta {
        id,
        list,
        category: "B2",
        note: None,
    };
    b.push_pdq(&unrelated_pdq(5, 1)[0].0, meta).unwrap();
    w.add_segment(b).unwrap();
}

/// A `[matching] list_radius` entry naming a list the loaded generation
/// does not hold is not ignored silently: a warning at start and at each
/// reload while it lasts, counted in `IndexInfo` and the metrics, until a
/// generation brings the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_radius_for_a_list_not_held_is_warned_and_counted() {
    const LATER: &str = "list-of-later-generations";
    let fx = start_with(|c| {
        c.matching.list_radius = [("ncmec".to_string(), 10), (LATER.to_string(), 5)].into();
    })
    .await;
    let server = fx.server.as_ref().unwrap();
    let warnings = || {
        let logs = log_buffer().lock().unwrap().clone();
        String::from_utf8_lossy(&logs)
            .lines()
            .filter(|l| l.contains(LATER) && l.contains("does not hold") && l.contains("WARN"))
            .count()
    };
    let not_held = || async {
        let mut m = fx.matcher().await;
        m.index_info(authed(proto::IndexInfoRequest {}, MATCHER_KEY))
            .await
            .unwrap()
            .into_inner()
            .list_radius_not_held
    };
    assert_eq!(not_held().await, [LATER]);
    assert_eq!(warnings(), 1, "warned at start");
    assert!(server
        .metrics_text()
        .contains("sigil_list_radius_lists_not_held 1"));

    add_list_entry(&fx.index_dir(), "unrelated", "u-1");
    server.reload_now().await;
    assert_eq!(not_held().await, [LATER]);
    assert_eq!(warnings(), 2, "warned again at the reload");

    add_list_entry(&fx.index_dir(), LATER, "l-1");
    server.reload_now().await;
    assert!(not_held().await.is_empty());
    assert_eq!(warnings(), 2, "no warning once the list is held");
    assert!(server
        .metrics_text()
        .contains("sigil_list_radius_lists_not_held 0"));
    fx.stop().await;
}

// ------------------------------------------- reload by identity, verified

/// Serves the index through a symlink `current` (next to the fixture's
/// index, which it points at), as a deployment that swaps builds does.
fn serve_through_symlink(c: &mut ServerConfig) {
    let index = c.index.clone().unwrap();
    let link = index.with_file_name("current");
    std::os::unix::fs::symlink(&index, &link).unwrap();
    c.index = Some(link);
}

/// Builds a fresh index (generation 1, like every fresh build) at
/// `dir/name` holding the known image's PDQ in list `list`.
fn fresh_build(fx: &Fixture, name: &str, list: &str) -> PathBuf {
    let dir = fx.dir.path().join(name);
    let mut b = SegmentBuilder::new();
    b.push_pdq(
        &fx.known_pdq.0,
        EntryMeta {
            id: "rebuilt-1",
            list,
            category: "A1",
            note: None,
        },
    )
    .unwrap();
    assert_eq!(
        IndexWriter::create(&dir).unwrap().add_segment(b).unwrap(),
        1
    );
    dir
}

/// Points the fixture's `current` symlink at `target` atomically.
fn swap_symlink(fx: &Fixture, target: &Path) {
    let tmp = fx.dir.path().join("current.tmp");
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, fx.dir.path().join("current")).unwrap();
}

/// Flips one byte of `index`'s only segment: inside the PDQ key section
/// (only full verification, `sigil index verify`, sees it) or, with
/// `header`, in the header (open refuses it).
fn damage_segment(index: &Path, header: bool) {
    use sigil_index::format::{section, Container, MAGIC_SEGMENT};
    let m = sigil_index::manifest::Manifest::load(index).unwrap();
    let p = index.join(&m.segments[0].file);
    let mut bytes = std::fs::read(&p).unwrap();
    let at = if header {
        30
    } else {
        let c = Container::parse(&p, &bytes, MAGIC_SEGMENT).unwrap();
        c.find(section::KEYS, 0).unwrap().offset as usize + 3
    };
    bytes[at] ^= 0x10;
    std::fs::write(&p, &bytes).unwrap();
}

/// The (list, id) of the matches of the known PDQ, with the identity the
/// answer names.
async fn known_pdq_answer(fx: &Fixture) -> (Vec<(String, String)>, u64, String) {
    let mut m = fx.matcher().await;
    let req = proto::MatchHashesRequest {
        hashes: vec![proto::HashQuery {
            id: "q".into(),
            kind: PKind::Pdq as i32,
            hex: fx.known_pdq.to_hex(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let res = m
        .match_hashes(authed(req, MATCHER_KEY))
        .await
        .unwrap()
        .into_inner();
    let found = res.results[0]
        .matches
        .iter()
        .map(|m| (m.list.clone(), m.id.clone()))
        .collect();
    (found, res.index_generation, res.index_identity)
}

/// A fresh build is generation 1 like the one in service: swapping the
/// symlink to it is noticed by polling (by identity), and its lists are
/// served, with the new identity in answers and report stubs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_swapped_to_a_fresh_build_is_served() {
    let fx = start_with(|c| {
        serve_through_symlink(c);
        c.reload.poll_interval_ms = 20;
    })
    .await;
    let server = fx.server.as_ref().unwrap();
    let (found, generation, old_identity) = known_pdq_answer(&fx).await;
    assert_eq!(found, [("ncmec".to_string(), "bridge-1".to_string())]);
    assert_eq!(generation, 1);
    assert_eq!(old_identity, server.identity().to_string());
    assert_eq!(old_identity.len(), 16);

    let rebuilt = fresh_build(&fx, "rebuilt", "rebuilt-list");
    swap_symlink(&fx, &rebuilt);
    // Polling picks it up; bounded wait (a safety net, not a timing claim).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server.identity().to_string() == old_identity {
        assert!(std::time::Instant::now() < deadline, "swap never loaded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (found, generation, identity) = known_pdq_answer(&fx).await;
    assert_eq!(
        found,
        [("rebuilt-list".to_string(), "rebuilt-1".to_string())]
    );
    assert_eq!(generation, 1);
    assert_ne!(identity, old_identity);

    // The stub of a match names the identity that matched.
    let mut m = fx.matcher().await;
    let res = m
        .match_image(authed(image_req(read_testdata(KNOWN), "id-1"), MATCHER_KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.index_identity, identity);
    let stub = fx
        .reports()
        .await
        .get_report(authed(
            proto::GetReportRequest {
                id: res.report_id.clone(),
            },
            REVIEWER_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stub.index_identity, identity);
    let info = m
        .index_info(authed(proto::IndexInfoRequest {}, MATCHER_KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.identity, identity);
    assert_eq!(info.lists[0].name, "rebuilt-list");
    fx.stop().await;
}

/// A candidate whose data section (or header) is damaged is refused after
/// full verification, counted by cause, and not tried again by polling
/// while the symlink still points at it; the old generation answers
/// throughout. A good build after it is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_candidate_is_refused_counted_and_the_old_one_serves() {
    let fx = start_with(|c| {
        serve_through_symlink(c);
        c.reload.poll_interval_ms = 20;
    })
    .await;
    let server = fx.server.as_ref().unwrap();
    let old = known_pdq_answer(&fx).await;
    let failures =
        |n: usize| format!("sigil_index_reload_failures_total{{reason=\"corrupt\"}} {n}\n");
    let wait_for = |what: String| async move {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !server.metrics_text().contains(&what) {
            assert!(std::time::Instant::now() < deadline, "never saw {what}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    let mut refused = 0;
    for header in [false, true] {
        let bad = fresh_build(&fx, &format!("bad-{header}"), "bad-list");
        damage_segment(&bad, header);
        swap_symlink(&fx, &bad);
        refused += 1;
        wait_for(failures(refused)).await;
        assert_eq!(known_pdq_answer(&fx).await, old);
        // Many poll intervals later the same candidate was not verified again.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(server.metrics_text().contains(&failures(refused)));
        // An explicit reload tries it again, and refuses it again.
        server.reload_now().await;
        refused += 1;
        assert!(server.metrics_text().contains(&failures(refused)));
        assert_eq!(known_pdq_answer(&fx).await, old);
    }
    let logs = String::from_utf8_lossy(&log_buffer().lock().unwrap()).to_string();
    assert!(
        logs.lines()
            .any(|l| l.contains("index reload refused")
                && l.contains("checksum mismatch in section")),
        "the refusal of the data-damaged candidate is logged with its cause"
    );
    let good = fresh_build(&fx, "good", "good-list");
    swap_symlink(&fx, &good);
    server.reload_now().await;
    let (found, _, identity) = known_pdq_answer(&fx).await;
    assert_eq!(found, [("good-list".to_string(), "rebuilt-1".to_string())]);
    assert_ne!(identity, old.2);
    fx.stop().await;
}

// --------------------------------------- client strings in logs and errors

/// A request id with a newline cannot start a log line of its own, and a
/// 20 MB request id, hash id or report id makes a bounded log line and a
/// bounded error (`untrusted::text`: escaped, cut at 256 characters).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_strings_are_escaped_and_bounded_in_logs_and_errors() {
    let fx = start().await;
    let mut m = fx.matcher().await;
    let huge = "R".repeat(20 << 20);
    let forged = "id-1\n{\"level\":\"ERROR\",\"fields\":{\"message\":\"forged\"}}";
    for (request_id, content_ref) in [(forged.to_string(), "ref\r\nX"), (huge.clone(), "ok")] {
        let mut req = image_req(read_testdata(KNOWN), "x");
        req.request_id = request_id.clone();
        req.content_ref = content_ref.into();
        let res = m
            .match_image(authed(req, MATCHER_KEY))
            .await
            .unwrap()
            .into_inner();
        // The id is echoed whole in the result (the caller's correlation).
        assert_eq!(res.request_id, request_id);
    }
    let logs = String::from_utf8_lossy(&log_buffer().lock().unwrap()).to_string();
    let matched: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("image matched"))
        .collect();
    assert!(
        matched.iter().any(|l| l.contains(r#"id-1\\n{\"level"#)),
        "the newline is shown escaped: {matched:?}"
    );
    // (The JSON format escapes a raw newline too; the text format writes a
    // field as it is displayed, so the escaping above is what keeps it on
    // one line there.)
    assert!(
        matched.iter().any(|l| l.contains(r#"ref\\r\\nX"#)),
        "content_ref escaped: {matched:?}"
    );
    let long = matched
        .iter()
        .find(|l| l.contains("RRRR"))
        .expect("the 20 MB request id's log line");
    assert!(long.len() < 4096, "log line of {} bytes", long.len());
    assert!(long.contains("more bytes of 20971520"), "{long}");

    // Errors naming a client string: a hash id, a report id, a page token.
    let req = proto::MatchHashesRequest {
        hashes: vec![proto::HashQuery {
            id: huge.clone(),
            kind: PKind::Pdq as i32,
            hex: "not hex".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let e = m.match_hashes(authed(req, MATCHER_KEY)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().len() < 1024,
        "error of {} bytes",
        e.message().len()
    );
    assert!(e.message().contains("hashes[0]"), "{}", e.message());
    let mut r = fx.reports().await;
    let e = r
        .get_report(authed(
            proto::GetReportRequest {
                id: format!("rpt\n{huge}"),
            },
            REVIEWER_KEY,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(
        e.message().len() < 1024 && e.message().contains("rpt\\n"),
        "{}",
        &e.message()[..100]
    );
    let e = r
        .list_reports(authed(
            proto::ListReportsRequest {
                page_token: huge.clone(),
                ..Default::default()
            },
            REVIEWER_KEY,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().len() < 1024,
        "error of {} bytes",
        e.message().len()
    );
    let logs = String::from_utf8_lossy(&log_buffer().lock().unwrap()).to_string();
    let longest = logs.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 8192, "a log line of {longest} bytes");
    fx.stop().await;
}

// ---- Hostile clients (issue 21): connections, streams and bodies that
// ---- must not hold what other callers need.

impl Fixture {
    fn metrics_text(&self) -> String {
        self.server.as_ref().unwrap().metrics_text()
    }
    fn metric(&self, name_and_labels: &str) -> f64 {
        hostile::metric(&self.metrics_text(), name_and_labels)
    }
}

/// A legitimate caller's three calls: a matching `MatchImage` and
/// `MatchHashes` (each commits a report stub) and a `ListReports`.
async fn legitimate_calls(fx: &Fixture, id: &str) {
    let mut m = fx.matcher().await;
    let res = m
        .match_image(authed(image_req(read_testdata(KNOWN), id), MATCHER_KEY))
        .await
        .unwrap_or_else(|e| panic!("{id}: MatchImage: {e}"))
        .into_inner();
    assert_eq!(res.verdict(), Verdict::Match, "{id}: {res:?}");
    assert!(!res.report_id.is_empty());
    let hashes = proto::MatchHashesRequest {
        hashes: vec![proto::HashQuery {
            id: "1".into(),
            kind: PKind::Pdq as i32,
            hex: fx.known_pdq.to_hex(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let res = m
        .match_hashes(authed(hashes, MATCHER_KEY))
        .await
        .unwrap_or_else(|e| panic!("{id}: MatchHashes: {e}"))
        .into_inner();
    assert!(!res.results[0].report_id.is_empty(), "{id}: {res:?}");
    let mut r = fx.reports().await;
    let listed = r
        .list_reports(authed(
            proto::ListReportsRequest {
                page_size: 5,
                ..Default::default()
            },
            REVIEWER_KEY,
        ))
        .await
        .unwrap_or_else(|e| panic!("{id}: ListReports: {e}"))
        .into_inner();
    assert!(!listed.reports.is_empty(), "{id}: no reports listed");
}

/// Opens a `MatchImageStream` on a raw HTTP/2 connection whose client
/// never grants the server more than `window` bytes of response, sends
/// `items` matching images and never reads. Returns the connection's
/// driver (ends when the connection closes) and the request stream.
async fn stalled_stream(
    fx: &Fixture,
    window: u32,
    items: usize,
) -> (
    tokio::task::JoinHandle<Result<(), h2::Error>>,
    h2::SendStream<prost::bytes::Bytes>,
    h2::client::ResponseFuture,
) {
    let io = tokio::net::TcpStream::connect(fx.addr()).await.unwrap();
    let (send, driver) = hostile::h2_client(io, window).await;
    let mut send = send.ready().await.unwrap();
    let req = hostile::grpc_request(fx.addr(), "/sigil.v1.Matcher/MatchImageStream", MATCHER_KEY);
    let (response, mut body) = send.send_request(req, false).unwrap();
    let image = read_testdata(KNOWN);
    for i in 0..items {
        let msg = image_req(image.clone(), &format!("stalled-{i}"));
        body.send_data(hostile::grpc_frame(&msg).into(), false)
            .unwrap();
    }
    // Keep the client's handle so its connection stays open.
    std::mem::forget(send);
    (driver, body, response)
}

/// Issue 21.1: a `MatchImageStream` client that sends matching images and
/// stops reading (HTTP/2 flow control exhausted, no WINDOW_UPDATE) holds
/// no report-store permit, hashing slot or lookup slot: other callers'
/// matching `MatchImage`/`MatchHashes` and `ListReports` keep succeeding
/// while its connection stays open. (Before the fix, an item granted the
/// store's single permit was never polled again: 7 of 10 trials froze
/// the store.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_client_stops_reading_holds_no_shared_permit() {
    let fx = start_with(|c| {
        c.limits.stream_window = 4;
        // Long enough that the stall persists for the whole test.
        c.limits.stream_stall_timeout_ms = 600_000;
        c.limits.request_timeout_ms = 20_000;
    })
    .await;
    // Several stalled streams, each granting room for about one result,
    // with more items than their window.
    let mut stalled = Vec::new();
    for _ in 0..3 {
        stalled.push(stalled_stream(&fx, 600, 12).await);
    }
    // Until every stalled stream has its window of items finished (each
    // filed in the report store: one stub for the image, the rest
    // sightings of it), then, while they stay stalled, other callers.
    let filings = || {
        ["opened", "sighted", "already_recorded"]
            .iter()
            .map(|f| fx.metric(&format!("sigil_report_filings_total{{filing=\"{f}\"}}")))
            .sum::<f64>()
    };
    hostile::bounded("stalled items finish", async {
        while filings() < 3.0 * 4.0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    for round in 0..5 {
        hostile::bounded("legitimate calls beside stalled streams", async {
            legitimate_calls(&fx, &format!("legit-{round}")).await
        })
        .await;
    }
    for (driver, _, _) in &stalled {
        assert!(!driver.is_finished(), "the stalled connections stay open");
    }
    assert_eq!(
        fx.metric(r#"sigil_connections_closed_total{listener="grpc",reason="stream_stalled"}"#),
        0.0
    );
    drop(stalled);
    fx.stop().await;
}

/// Issue 21.1: a stream whose client keeps sending and leaves its results
/// unread (HTTP/2 window shut) for `stream_stall_timeout_ms` has its
/// connection closed, counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_is_reset_after_the_stall_timeout() {
    let fx = start_with(|c| c.limits.stream_stall_timeout_ms = 300).await;
    // More items than one chunk of results: hyper moves the first ready
    // results into h2's send buffer whole, then holds the next chunk while
    // the window stays shut, which is what the server sees.
    let (driver, _body, _response) = stalled_stream(&fx, 100, 40).await;
    hostile::bounded("the stalled connection is closed", driver)
        .await
        .unwrap()
        .ok();
    assert_eq!(
        fx.metric(r#"sigil_connections_closed_total{listener="grpc",reason="stream_stalled"}"#),
        1.0
    );
    legitimate_calls(&fx, "after-stall").await;
    fx.stop().await;
}

/// Issue 21.2: sockets that send nothing, or half the HTTP/2 preface, are
/// closed once `handshake_timeout_ms` has passed, on the gRPC and the
/// metrics listener; a legitimate client is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_finish_the_handshake_are_closed() {
    use tokio::io::AsyncWriteExt;
    let fx = start_with(|c| c.limits.handshake_timeout_ms = 300).await;
    let metrics_addr = fx.server.as_ref().unwrap().metrics_addr.unwrap();
    let mut silent = tokio::net::TcpStream::connect(fx.addr()).await.unwrap();
    let mut half = tokio::net::TcpStream::connect(fx.addr()).await.unwrap();
    half.write_all(&hostile::PREFACE[..12]).await.unwrap();
    // The whole preface but not the SETTINGS frame that must follow it.
    let mut no_settings = tokio::net::TcpStream::connect(fx.addr()).await.unwrap();
    no_settings.write_all(hostile::PREFACE).await.unwrap();
    let mut metrics_silent = tokio::net::TcpStream::connect(metrics_addr).await.unwrap();
    let mut metrics_half = tokio::net::TcpStream::connect(metrics_addr).await.unwrap();
    metrics_half.write_all(b"GET /metr").await.unwrap();
    legitimate_calls(&fx, "beside-silent").await;
    hostile::closed_by_server("silent socket", &mut silent).await;
    hostile::closed_by_server("half a preface", &mut half).await;
    hostile::closed_by_server("preface without SETTINGS", &mut no_settings).await;
    hostile::closed_by_server("silent metrics socket", &mut metrics_silent).await;
    hostile::closed_by_server("half a metrics request", &mut metrics_half).await;
    assert_eq!(
        fx.metric(r#"sigil_connections_closed_total{listener="grpc",reason="handshake_timeout"}"#),
        3.0
    );
    assert!(
        fx.metric(
            r#"sigil_connections_closed_total{listener="metrics",reason="handshake_timeout"}"#
        ) >= 1.0
    );
    fx.stop().await;
}

/// Issue 21.2: an established HTTP/2 connection without a call is closed
/// after `idle_timeout_ms` (its pings would not keep it), counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed() {
    let fx = start_with(|c| c.limits.idle_timeout_ms = 300).await;
    let io = tokio::net::TcpStream::connect(fx.addr()).await.unwrap();
    let (send, driver) = hostile::h2_client(io, 65_535).await;
    hostile::bounded("the idle connection is closed", driver)
        .await
        .unwrap()
        .ok();
    drop(send);
    assert_eq!(
        fx.metric(r#"sigil_connections_closed_total{listener="grpc",reason="idle"}"#),
        1.0
    );
    fx.stop().await;
}

/// Issue 21.2: one peer address holds at most `max_connections_per_peer`
/// connections; a further one is closed at once, and a client from
/// another address is served while that peer holds its cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_cannot_take_every_connection_slot() {
    let fx = start_with(|c| {
        c.limits.max_connections = 6;
        c.limits.max_connections_per_peer = 4;
        // The attacker's sockets stay for the whole test.
        c.limits.handshake_timeout_ms = 600_000;
    })
    .await;
    let attacker: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(hostile::connect_from(fx.addr(), attacker).await);
    }
    let mut over = hostile::connect_from(fx.addr(), attacker).await;
    hostile::closed_by_server("the peer's fifth connection", &mut over).await;
    hostile::bounded("a legitimate client beside a peer at its cap", async {
        legitimate_calls(&fx, "beside-capped-peer").await
    })
    .await;
    assert_eq!(
        fx.metric(r#"sigil_connections_refused_total{listener="grpc",reason="per_peer_cap"}"#),
        1.0
    );
    drop(held);
    fx.stop().await;
}

/// Opens `count` `MatchImage` calls on one raw HTTP/2 connection, each
/// declaring a message of `declared` bytes and sending only `sent` of it.
async fn stalled_uploads(
    fx: &Fixture,
    count: usize,
    declared: usize,
    sent: usize,
) -> (
    Vec<(
        h2::client::ResponseFuture,
        h2::SendStream<prost::bytes::Bytes>,
    )>,
    SendRequest,
) {
    let io = tokio::net::TcpStream::connect(fx.addr()).await.unwrap();
    let (send, _driver) = hostile::h2_client(io, 65_535).await;
    let mut calls = Vec::new();
    let mut send = send;
    for _ in 0..count {
        send = send.ready().await.unwrap();
        let req = hostile::grpc_request(fx.addr(), "/sigil.v1.Matcher/MatchImage", MATCHER_KEY);
        let (response, mut body) = send.send_request(req, false).unwrap();
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(&(declared as u32).to_be_bytes());
        bytes.resize(5 + sent, 0x0a);
        body.send_data(bytes.into(), false).unwrap();
        calls.push((response, body));
    }
    (calls, send)
}

type SendRequest = h2::client::SendRequest<prost::bytes::Bytes>;

/// Issue 21.3: uploads that stall mid-message, on one connection and on
/// many: the bytes they hold stay within `max_body_bytes_in_flight` (the
/// rest wait, unread), each is reset with DEADLINE_EXCEEDED once its
/// message has not arrived within the request timeout, all counted, and
/// legitimate calls are served afterwards with the budget back to zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_are_bounded_in_bytes_and_time() {
    const BUDGET: u64 = 300 << 10;
    let fx = start_with(|c| {
        c.limits.max_message_bytes = 256 << 10;
        c.limits.http2_max_frame_bytes = 16 << 10;
        c.limits.max_body_bytes_in_flight = BUDGET;
        c.limits.request_timeout_ms = 3_000;
    })
    .await;
    // One connection, ten stalled uploads of 100 KiB each (1 MB declared
    // in all, over three times the budget); then eight connections with
    // one each.
    let (one_conn, _keep) = stalled_uploads(&fx, 10, 200 << 10, 100 << 10).await;
    let mut many = Vec::new();
    for _ in 0..8 {
        many.push(stalled_uploads(&fx, 1, 200 << 10, 100 << 10).await);
    }
    hostile::bounded("uploads wait for the budget", async {
        while fx.metric("sigil_request_body_budget_waits_total") < 1.0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    let in_flight = fx.metric("sigil_request_body_bytes_in_flight");
    assert!(
        in_flight > 0.0 && in_flight <= BUDGET as f64,
        "{in_flight} bytes in flight, budget {BUDGET}"
    );
    let mut statuses = Vec::new();
    let all = one_conn
        .into_iter()
        .chain(many.into_iter().flat_map(|(calls, _)| calls));
    for (response, body) in all {
        statuses.push(
            hostile::bounded("a stalled upload is reset", hostile::grpc_status(response)).await,
        );
        drop(body);
    }
    assert!(
        statuses
            .iter()
            .all(|s| *s == Some(Code::DeadlineExceeded as i32)),
        "{statuses:?}"
    );
    assert_eq!(fx.metric("sigil_request_body_timeouts_total"), 18.0);
    assert_eq!(fx.metric("sigil_request_body_bytes_in_flight"), 0.0);
    legitimate_calls(&fx, "after-stalled-uploads").await;
    fx.stop().await;
}
