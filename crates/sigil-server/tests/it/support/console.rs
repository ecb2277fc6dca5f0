//! Shared by the console tests (tests/it/console.rs over plain HTTP,
//! tests/it/console_browser.rs in Chromium): a server with the console on,
//! its keys, stubs seeded into its store, and a small HTTP/1.1 client.

#![allow(dead_code)] // each test binary uses its own part of this

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use sigil_index::{EntryMeta, IndexWriter, SegmentBuilder};
use sigil_reports::{NewReport, ReportStore, SqliteReportStore, StoredMatch};
use sigil_server::auth::{key_digest_hex, Role};
use sigil_server::config::ApiKeyConfig;
use sigil_server::{RunOptions, RunningServer, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const ALICE_KEY: &str = "console-test-alice-reviewer";
pub const BOB_KEY: &str = "console-test-bob-reviewer";
pub const MATCHER_KEY: &str = "console-test-matcher";
pub const CONTENT_URL: &str = "https://mod.example/item/{content_ref}";
/// The PDQ hash the test index holds (entry "sentinel" of list "ncmec").
pub const SENTINEL: [u8; 32] = [0x5a; 32];
const DAY_MS: i64 = 24 * 3600 * 1000;

pub struct ConsoleServer {
    pub dir: tempfile::TempDir,
    pub server: RunningServer,
    pub console: SocketAddr,
}

impl ConsoleServer {
    pub async fn stop(self) {
        self.server.shutdown();
        self.server.wait().await.unwrap();
    }
}

/// One stub to seed: detected `age_days` ago, matched on `list`/`category`.
pub fn stub(content_ref: &str, list: &str, category: &str, age_days: i64) -> NewReport {
    let now = sigil_reports::time::now_ms();
    NewReport {
        detected_at_ms: now - age_days * DAY_MS,
        reporting_org: "Example T&S".into(),
        reporting_email: "ts@example.invalid".into(),
        submitter_ref: format!("user-{list}"),
        content_ref: content_ref.into(),
        file_name: "upload.jpg".into(),
        source: "hashes".into(),
        md5: "0".repeat(32),
        sha1: String::new(),
        sha256: format!("{:0>64}", content_ref.len() * 7 + age_days as usize),
        pdq: "5a".repeat(32),
        quality: Some(90),
        matches: vec![StoredMatch {
            id: format!("entry-{list}"),
            list: list.into(),
            category: category.into(),
            note: None,
            kind: "pdq".into(),
            distance: 3,
            variant: Some("rot90".into()),
        }],
        actor: "pipe".into(),
        index_identity: "0123456789abcdef".into(),
    }
}

/// The default seed: four stubs, one of them past its preservation
/// deadline, two lists, two categories.
pub fn default_stubs() -> Vec<NewReport> {
    vec![
        stub("item-new", "ncmec", "A1", 1),
        stub("item-old", "iwf", "B2", 400),
        stub("item-mid", "ncmec", "A2", 30),
        stub("item-iwf", "iwf", "A1", 10),
    ]
}

fn build_index(dir: &Path) {
    let mut w = IndexWriter::create(dir).unwrap();
    let mut b = SegmentBuilder::new();
    let meta = EntryMeta {
        id: "sentinel",
        list: "ncmec",
        category: "A1",
        note: None,
    };
    b.push_pdq(&SENTINEL, meta).unwrap();
    w.add_segment(b).unwrap();
}

fn key(name: &str, token: &str, role: Role) -> ApiKeyConfig {
    ApiKeyConfig {
        name: name.into(),
        sha256: key_digest_hex(token),
        role,
        rate_limit_per_s: 1000.0,
        burst: None,
    }
}

/// A server with the console on loopback, `stubs` seeded in its SQLite
/// store (ids returned, in order), after `tweak`.
pub async fn start(
    stubs: &[NewReport],
    tweak: impl FnOnce(&mut ServerConfig),
) -> (ConsoleServer, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    build_index(&dir.path().join("index"));
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        console_listen: Some("127.0.0.1:0".parse().unwrap()),
        index: Some(dir.path().join("index")),
        reporting_organisation: "Example T&S".into(),
        reporting_email: "ts@example.invalid".into(),
        api_keys: vec![
            key("alice", ALICE_KEY, Role::Reviewer),
            key("bob", BOB_KEY, Role::Reviewer),
            key("pipe", MATCHER_KEY, Role::Matcher),
        ],
        ..ServerConfig::default()
    };
    config.reports.path = dir.path().join("reports.db");
    config.reload.poll_interval_ms = 0;
    config.console.content_url = Some(CONTENT_URL.into());
    let ids = if stubs.is_empty() {
        Vec::new()
    } else {
        let store = SqliteReportStore::open(&config.reports.path).unwrap();
        let filed = store.create_many(stubs).unwrap();
        filed.into_iter().map(|f| f.id).collect()
    };
    tweak(&mut config);
    let server = sigil_server::start(config, RunOptions::default())
        .await
        .unwrap();
    let console = server.console_addr.expect("console listener");
    (
        ConsoleServer {
            dir,
            server,
            console,
        },
        ids,
    )
}

/// A response: status, headers (lowercase names), body.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of cookie `name` this response sets.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "set-cookie")
            .find_map(|(_, v)| {
                let first = v.split(';').next()?;
                let (k, val) = first.split_once('=')?;
                (k == name).then(|| val.to_string())
            })
    }

    /// The value of the first `name="csrf"` hidden field of the page.
    pub fn csrf(&self) -> Option<String> {
        let at = self.body.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
        let end = self.body[at..].find('"')?;
        Some(self.body[at..at + end].to_string())
    }
}

/// One HTTP/1.1 request (connection closed after it), bounded in time.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&[(&str, &str)]>,
) -> Resp {
    let body = form
        .map(|f| {
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in f {
                s.append_pair(k, v);
            }
            s.finish()
        })
        .unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    if form.is_some() {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        // A server refusing an oversized body may answer and close before
        // reading all of it: keep whatever answer arrived.
        let _ = s.write_all(req.as_bytes()).await;
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
        }
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .expect("console answered within 30 s");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A signed-in reviewer: the session cookie and the session's CSRF token.
pub struct Reviewer {
    pub cookie: String,
    pub csrf: String,
}

/// Signs in with `key`: the sign-in page's response if refused.
pub async fn sign_in(addr: SocketAddr, key: &str) -> Result<Reviewer, Resp> {
    let page = http(addr, "GET", "/signin", None, None).await;
    let token = page.set_cookie("sigil_signin").expect("sign-in cookie");
    let csrf = page.csrf().expect("sign-in form token");
    let cookie = format!("sigil_signin={token}");
    let resp = http(
        addr,
        "POST",
        "/signin",
        Some(&cookie),
        Some(&[("csrf", &csrf), ("key", key)]),
    )
    .await;
    if resp.status != 303 {
        return Err(resp);
    }
    let session = resp.set_cookie("sigil_session").expect("session cookie");
    let cookie = format!("sigil_session={session}");
    let queue = http(addr, "GET", "/queue", Some(&cookie), None).await;
    assert_eq!(queue.status, 200, "{}", queue.body);
    Ok(Reviewer {
        cookie,
        csrf: queue.csrf().expect("session CSRF token"),
    })
}

impl Reviewer {
    pub async fn get(&self, addr: SocketAddr, path: &str) -> Resp {
        http(addr, "GET", path, Some(&self.cookie), None).await
    }

    /// A form POST with the session's CSRF token added.
    pub async fn post(&self, addr: SocketAddr, path: &str, form: &[(&str, &str)]) -> Resp {
        let mut f: Vec<(&str, &str)> = vec![("csrf", &self.csrf)];
        f.extend_from_slice(form);
        http(addr, "POST", path, Some(&self.cookie), Some(&f)).await
    }
}

/// The stub's current version as its page shows it.
pub fn version_on(page: &Resp) -> String {
    let at = page
        .body
        .find("name=\"version\" value=\"")
        .expect("version field")
        + "name=\"version\" value=\"".len();
    let end = page.body[at..].find('"').unwrap();
    page.body[at..at + end].to_string()
}
