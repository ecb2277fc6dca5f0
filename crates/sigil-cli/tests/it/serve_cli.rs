//! `sigil serve` as a process: an acknowledged match survives kill -9 (the
//! report stub is committed before the answer), the submitted image bytes
//! reach no file, log or temp directory, and start-up failures exit
//! non-zero naming the setting or path at fault.
//! Unix only: kill -9 and SIGTERM are the point.
#![cfg(unix)]

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sigil_core::{HashKind, SignOptions, Signer};
use sigil_index::{EntryMeta, IndexWriter, SegmentBuilder};
use sigil_reports::{ReportStatus, ReportStore, SqliteReportStore};
use sigil_server::auth::key_digest_hex;
use sigil_server::proto::matcher_client::MatcherClient;
use sigil_server::proto::reports_client::ReportsClient;
use sigil_server::proto::{self, Verdict};
use tonic::Request;

use crate::support::testdata;

const MATCHER_KEY: &str = "serve-cli-matcher-token";
const REVIEWER_KEY: &str = "serve-cli-reviewer-token";
/// In the test index (PDQ in list "ncmec", MD5 in list "industry").
const KNOWN: &str = "originals/bridge-mods/square-256x256.jpg";

/// Generous caps against hangs (start-up, exit); never timing assertions.
const START_CAP: Duration = Duration::from_secs(180);
const EXIT_CAP: Duration = Duration::from_secs(120);

/// `sigil` with no `SIGIL_*` variables inherited (they override the config).
fn sigil() -> Command {
    let mut cmd = crate::support::sigil();
    cmd.env("RUST_LOG", "debug");
    cmd
}

/// A child process that is killed (SIGKILL) and reaped when dropped, so no
/// server outlives a failing test.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child already reaped")
    }

    /// kill -9 and reap.
    fn kill_9(&mut self) -> ExitStatus {
        let mut c = self.0.take().expect("child already reaped");
        c.kill().unwrap(); // SIGKILL on Unix
        c.wait().unwrap()
    }

    /// Waits for the child to exit by itself (polling, up to `EXIT_CAP`).
    fn wait_exit(&mut self, what: &str) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child().try_wait().unwrap() {
                self.0 = None;
                return st;
            }
            assert!(
                start.elapsed() < EXIT_CAP,
                "{what}: still running after {EXIT_CAP:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A port that was free a moment ago (the server binds it next).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Builds the index of the known image in `dir`.
fn build_index(dir: &Path, image: &[u8]) {
    let sig = Signer::new(SignOptions::default()).sign(image);
    let mut b = SegmentBuilder::new();
    b.push_pdq(
        &sig.image.as_ref().unwrap().pdq.0,
        EntryMeta {
            id: "bridge-1",
            list: "ncmec",
            category: "A1",
            note: Some("serve drill"),
        },
    )
    .unwrap();
    b.push(
        HashKind::Md5,
        &sig.exact.md5,
        EntryMeta {
            id: "bridge-md5",
            list: "industry",
            category: "B2",
            note: None,
        },
    )
    .unwrap();
    let mut w = IndexWriter::create(dir).unwrap();
    w.add_segment(b).unwrap();
}

/// A complete config: API keys, SQLite store in `root`, no reload polling.
fn write_config(root: &Path, listen: SocketAddr, index: &Path, extra: &str) -> PathBuf {
    let path = root.join("sigil.toml");
    let text = format!(
        r#"listen = "{listen}"
metrics_listen = "127.0.0.1:0"
index = "{index}"
reporting_organisation = "Example T&S"
reporting_email = "ts@example.invalid"
{extra}
[reports]
backend = "sqlite"
path = "{db}"

[limits]
hashing_workers = 1

[reload]
poll_interval_ms = 0

[[api_key]]
name = "pipeline"
sha256 = "{matcher}"
role = "matcher"

[[api_key]]
name = "reviewer-1"
sha256 = "{reviewer}"
role = "reviewer"
"#,
        index = index.display(),
        db = root.join("reports.db").display(),
        matcher = key_digest_hex(MATCHER_KEY),
        reviewer = key_digest_hex(REVIEWER_KEY),
    );
    fs::write(&path, text).unwrap();
    path
}

/// Starts `sigil serve --config` in `root` with stdout/stderr captured to
/// files there (`<tag>.stdout` / `<tag>.stderr`) and TMPDIR pointing at
/// `root/tmp`, so everything the server could write is under `root`.
fn spawn_serve(config: &Path, root: &Path, tag: &str) -> ChildGuard {
    let out = fs::File::create(root.join(format!("{tag}.stdout"))).unwrap();
    let err = fs::File::create(root.join(format!("{tag}.stderr"))).unwrap();
    let tmp = root.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let child = sigil()
        .current_dir(root)
        .env("TMPDIR", &tmp)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    ChildGuard(Some(child))
}

fn authed<T>(msg: T, key: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    r
}

/// Polls IndexInfo until the server answers. Err(stderr) if the process
/// exits first; fails if nothing answers within `START_CAP`.
async fn wait_ready(
    addr: SocketAddr,
    server: &mut ChildGuard,
    stderr: &Path,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if let Some(st) = server.child().try_wait().unwrap() {
            return Err(format!(
                "sigil serve exited during start-up ({st}): {}",
                fs::read_to_string(stderr).unwrap_or_default()
            ));
        }
        if let Ok(mut m) = MatcherClient::connect(format!("http://{addr}")).await {
            if let Ok(info) = m
                .index_info(authed(proto::IndexInfoRequest {}, MATCHER_KEY))
                .await
            {
                assert_eq!(info.into_inner().pdq_entries, 1);
                return Ok(());
            }
        }
        assert!(
            start.elapsed() < START_CAP,
            "sigil serve did not answer within {START_CAP:?}: {}",
            fs::read_to_string(stderr).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes the config with a port picked free just before and starts
/// `sigil serve` on it, waiting until it answers. Another process may take
/// the port in between: then the server fails to bind, and a new port is
/// tried (a few times).
async fn serve_ready(root: &Path, index: &Path, tag: &str) -> (ChildGuard, SocketAddr) {
    let mut last = String::new();
    for _ in 0..5 {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = write_config(root, addr, index, "");
        let mut server = spawn_serve(&config, root, tag);
        match wait_ready(addr, &mut server, &root.join(format!("{tag}.stderr"))).await {
            Ok(()) => return (server, addr),
            Err(e) if e.contains("cannot listen on") => last = e,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("no free port after 5 tries: {last}");
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Asserts that no 64-byte window of `needles` (raw or hex) is in any file
/// under `root` (database, WAL, logs, config, index); returns the files seen.
fn assert_no_image_bytes(root: &Path, needles: &[Vec<u8>]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    files_under(root, &mut files);
    for f in &files {
        let data = fs::read(f).unwrap();
        for n in needles {
            assert!(!contains(&data, n), "image bytes found in {}", f.display());
            let hex = sigil_core::hash::encode_hex(n);
            assert!(
                !contains(&data, hex.as_bytes()),
                "image bytes (hex) found in {}",
                f.display()
            );
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_match_survives_kill_9_and_image_bytes_are_nowhere() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let image = fs::read(testdata(KNOWN)).unwrap();
    let index = root.join("index");
    build_index(&index, &image);
    let db = root.join("reports.db");

    let (mut server, addr) = serve_ready(root, &index, "first").await;

    let mut m = MatcherClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let res = m
        .match_image(authed(
            proto::MatchImageRequest {
                image: image.clone().into(),
                request_id: "drill-1".into(),
                content_ref: "s3://bucket/drill-1".into(),
                submitter_ref: "user-7".into(),
                file_name: "upload.jpg".into(),
                ..Default::default()
            },
            MATCHER_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.verdict(), Verdict::Match, "{res:?}");
    let report_id = res.report_id.clone();
    assert!(!report_id.is_empty(), "{res:?}");
    drop(m);

    // The answer was sent: the stub must already be on disk.
    let status = server.kill_9();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");

    // Windows from the middle of the submitted file, before anything opens
    // (and so checkpoints) the database: the WAL is as the kill left it.
    let mid = image.len() / 2;
    let needles: Vec<Vec<u8>> = [image.len() / 4, mid, mid + 64, image.len() * 3 / 4]
        .iter()
        .map(|&at| image[at..at + 64].to_vec())
        .collect();
    let files = assert_no_image_bytes(root, &needles);
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "reports.db"), "{names:?}");
    let stderr = fs::read_to_string(root.join("first.stderr")).unwrap();
    assert!(
        stderr.contains("sigil: serving gRPC on") && stderr.contains("image matched"),
        "the logs were captured: {stderr}"
    );

    let store = SqliteReportStore::open(&db).unwrap();
    let rec = store.get(&report_id).unwrap();
    assert_eq!(rec.status, ReportStatus::Pending);
    assert_eq!(rec.content_ref, "s3://bucket/drill-1");
    assert_eq!(rec.submitter_ref, "user-7");
    assert_eq!(rec.source, "image");
    let sig = Signer::new(SignOptions::default()).sign(&image);
    assert_eq!(rec.md5, sig.exact.md5_hex());
    assert_eq!(rec.pdq, sig.image.as_ref().unwrap().pdq.to_hex());
    let mut got: Vec<(&str, &str, &str, u32)> = rec
        .matches
        .iter()
        .map(|x| (x.id.as_str(), x.list.as_str(), x.kind.as_str(), x.distance))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("bridge-1", "ncmec", "pdq", 0),
            ("bridge-md5", "industry", "md5", 0)
        ],
        "{rec:?}"
    );
    assert_eq!(rec.matches.len(), res.matches.len());
    drop(store);

    // A restarted server on the same database serves the stub to reviewers
    // and stops cleanly on SIGTERM.
    let (mut server, addr) = serve_ready(root, &index, "second").await;
    let mut r = ReportsClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let rep = r
        .get_report(authed(
            proto::GetReportRequest {
                id: report_id.clone(),
            },
            REVIEWER_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rep.status(), proto::ReportStatus::Pending);
    assert_eq!(rep.md5, rec.md5);
    drop(r);
    let pid = server.child().id() as libc::pid_t;
    // SAFETY: sending SIGTERM to our own child process, by its pid, while
    // the guard still holds it unreaped (the pid cannot have been reused).
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let st = server.wait_exit("sigil serve after SIGTERM");
    assert!(st.success(), "{st}");

    assert_no_image_bytes(root, &needles);
}

/// Runs `sigil serve --config <config>`, expecting it to fail at start-up.
fn serve_fails(config: &Path, root: &Path, tag: &str) -> (ExitStatus, String) {
    let mut server = spawn_serve(config, root, tag);
    let st = server.wait_exit(tag);
    let stderr = fs::read_to_string(root.join(format!("{tag}.stderr"))).unwrap();
    (st, stderr)
}

#[test]
fn start_up_failures_exit_non_zero_naming_the_cause() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();

    // A missing index directory.
    let missing = root.join("no-such-index");
    let config = write_config(root, addr, &missing, "");
    let (st, stderr) = serve_fails(&config, root, "missing-index");
    eprintln!("missing-index: {st}: {}", stderr.trim_end());
    assert!(!st.success(), "{st}");
    assert!(
        stderr.contains(&missing.display().to_string()),
        "stderr does not name the index path: {stderr}"
    );
    assert!(
        !root.join("reports.db").exists(),
        "a failed start created the database"
    );

    // Settings that are not what the config file means. Every case has a
    // valid index so only the setting is at fault.
    let index = root.join("index");
    build_index(&index, &fs::read(testdata(KNOWN)).unwrap());
    let cases: [(&str, &str, &[&str]); 6] = [
        (
            "unknown-top-key",
            "listen_adress = \"127.0.0.1:1\"",
            &["listen_adress"],
        ),
        (
            "unknown-section-key",
            "[matching]\nradiuss = 10",
            &["radiuss"],
        ),
        (
            "bad-address",
            "health_listen = \"not an address\"",
            &["health_listen"],
        ),
        (
            "bad-number",
            "[matching]\nmax_matches = \"lots\"",
            &["max_matches"],
        ),
        (
            "radius-out-of-range",
            "[matching]\nradius = 300",
            &["matching.radius"],
        ),
        (
            "console-link-not-http",
            "[console]\ncontent_url = \"javascript:alert(1)//{content_ref}\"",
            &["console.content_url", "http"],
        ),
    ];
    for (tag, extra, named) in cases {
        let config = write_config(root, addr, &index, extra);
        let (st, stderr) = serve_fails(&config, root, tag);
        eprintln!("{tag}: {st}: {}", stderr.trim_end());
        assert!(!st.success(), "{tag}: {st}");
        for n in named {
            assert!(
                stderr.contains(n),
                "{tag}: stderr does not name {n}: {stderr}"
            );
        }
        assert!(
            stderr.contains(&config.display().to_string()) || stderr.contains("configuration"),
            "{tag}: stderr does not point at the config: {stderr}"
        );
    }
}

/// Runs `sigil ARGS`, which must exit by itself, and returns its status and
/// stderr.
fn run_to_exit(args: &[&str], root: &Path, tag: &str) -> (ExitStatus, String) {
    let stderr = root.join(format!("{tag}.stderr"));
    let child = sigil()
        .args(args)
        .stdout(Stdio::null())
        .stderr(fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let st = ChildGuard(Some(child)).wait_exit(tag);
    (st, fs::read_to_string(&stderr).unwrap())
}

/// `--insecure-loopback` serves without authentication: an address that
/// would reach other hosts is refused by name, not silently rebound; and an
/// error from a lower layer is said once, not repeated by each layer.
#[test]
fn insecure_loopback_refuses_public_addresses_and_errors_are_said_once() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let index = root.join("index");
    build_index(&index, &fs::read(testdata(KNOWN)).unwrap());
    let idx = index.to_str().unwrap();
    let db = root.join("reports.db");
    let db = db.to_str().unwrap();
    let base = ["serve", "--index", idx, "--db", db, "--insecure-loopback"];

    let public = format!("0.0.0.0:{}", free_port());
    let args: Vec<&str> = base.iter().copied().chain(["--listen", &public]).collect();
    let (st, stderr) = run_to_exit(&args, root, "public-listen");
    assert_eq!(st.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--listen") && stderr.contains("not a loopback address"),
        "{stderr}"
    );
    let args: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--metrics-listen", &public])
        .collect();
    let (st, stderr) = run_to_exit(&args, root, "public-metrics");
    assert_eq!(st.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--metrics-listen"), "{stderr}");

    // A port that is taken: the OS error appears once.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    let args: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--listen", &busy, "--metrics-listen", "off"])
        .collect();
    let (st, stderr) = run_to_exit(&args, root, "busy");
    assert!(!st.success(), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains(&busy), "{stderr}");
    assert_eq!(last.matches("os error").count(), 1, "{last}");
}
