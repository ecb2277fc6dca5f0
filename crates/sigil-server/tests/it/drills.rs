//! Service-level reliability drills, with the real server on loopback:
//!
//! - a bounded load test (fixed request count, and a time cap that stops it
//!   early rather than failing) printing errors, p50/p99 latency and
//!   throughput; zero errors allowed. `SIGIL_LOAD_ENTRIES`,
//!   `SIGIL_LOAD_REQUESTS`, `SIGIL_LOAD_BATCH`, `SIGIL_LOAD_CONCURRENCY`
//!   scale it up for capacity measurements (docs/operations.md);
//! - the PostgreSQL report store lost while serving: report calls and
//!   matches that need a stub answer UNAVAILABLE (retryable), matching that
//!   needs no stub keeps working, and everything recovers when the database
//!   is back, without a restart;
//! - bad start-up input: unreachable PostgreSQL, postgres without a URL,
//!   a missing index: a clear error naming the setting and the cause.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sigil_core::HashKind;
use sigil_index::{EntryMeta, IndexWriter, SegmentBuilder};
use sigil_server::config::ReportsBackend;
use sigil_server::proto::matcher_client::MatcherClient;
use sigil_server::proto::{self, HashKind as PKind, Verdict};
use sigil_server::{RunOptions, ServerConfig};

#[cfg(feature = "postgres")]
use crate::support::relay;
#[cfg(feature = "postgres")]
use {sigil_server::proto::reports_client::ReportsClient, tonic::Code};

/// The entry every drill looks for.
const SENTINEL: [u8; 32] = [0xa5; 32];
const SENTINEL_MD5: [u8; 16] = [0x3c; 16];

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Pseudo-random PDQ hashes (xorshift64*), deterministic per seed.
fn random_hashes(seed: u64, n: usize) -> Vec<[u8; 32]> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            let mut h = [0u8; 32];
            for c in h.chunks_mut(8) {
                s ^= s >> 12;
                s ^= s << 25;
                s ^= s >> 27;
                c.copy_from_slice(&s.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
            }
            h
        })
        .collect()
}

/// An index of `n` random PDQ entries plus the sentinel (PDQ and MD5).
fn build_index(dir: &Path, n: usize) {
    let mut w = IndexWriter::create(dir).unwrap();
    let mut b = SegmentBuilder::new();
    for (i, h) in random_hashes(42, n).iter().enumerate() {
        let id = i.to_string();
        let meta = EntryMeta {
            id: &id,
            list: "bulk",
            category: "B2",
            note: None,
        };
        b.push_pdq(h, meta).unwrap();
    }
    let meta = EntryMeta {
        id: "sentinel",
        list: "ncmec",
        category: "A1",
        note: None,
    };
    b.push_pdq(&SENTINEL, meta).unwrap();
    b.push(HashKind::Md5, &SENTINEL_MD5, meta).unwrap();
    w.add_segment(b).unwrap();
}

fn base_config(dir: &Path) -> ServerConfig {
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        index: Some(dir.join("index")),
        reporting_organisation: "Example T&S".into(),
        reporting_email: "ts@example.invalid".into(),
        insecure_loopback: true,
        ..ServerConfig::default()
    };
    config.reports.path = dir.join("reports.db");
    config.reload.poll_interval_ms = 0;
    config.limits.max_batch = 100_000;
    config
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn pdq_query(id: String, h: &[u8; 32]) -> proto::HashQuery {
    proto::HashQuery {
        id,
        kind: PKind::Pdq as i32,
        hex: hex(h),
        ..Default::default()
    }
}

/// CPU seconds used by this process so far (user + system), from /proc.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some((utime + stime) / 100.0)
}

fn resident_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

// ------------------------------------------------------------- load test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_drill_bounded_loopback() {
    let entries = env_or("SIGIL_LOAD_ENTRIES", 20_000);
    let requests = env_or("SIGIL_LOAD_REQUESTS", 300);
    let batch = env_or("SIGIL_LOAD_BATCH", 100).max(1);
    let concurrency = env_or("SIGIL_LOAD_CONCURRENCY", 4).max(1);
    let time_cap = Duration::from_secs(env_or("SIGIL_LOAD_MAX_SECONDS", 60) as u64);

    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let index_dir = dir.path().join("index");
    tokio::task::spawn_blocking({
        let d = index_dir.clone();
        move || build_index(&d, entries)
    })
    .await
    .unwrap();
    let build_s = t.elapsed().as_secs_f64();
    let index_bytes: u64 = std::fs::read_dir(&index_dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    let rss_before = resident_mib();
    let mut config = base_config(dir.path());
    // Closed-loop callers: room for all of them, so a scaled-up drill
    // measures the lookups rather than RESOURCE_EXHAUSTED refusals.
    config.limits.lookup_queue = config.limits.lookup_queue.max(concurrency);
    let server = sigil_server::start(config, RunOptions::default())
        .await
        .unwrap();
    let addr = server.addr;

    // Queries: random hashes (almost never within radius 31 of an entry, so
    // each is a full search) and, once per request, the sentinel, which
    // must match every time.
    let queries = Arc::new(random_hashes(7, 4096));
    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    let deadline = started + time_cap;
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let queries = queries.clone();
        let mine = requests / concurrency + usize::from(c < requests % concurrency);
        tasks.push(tokio::spawn(async move {
            let mut client = MatcherClient::connect(format!("http://{addr}"))
                .await
                .unwrap()
                .max_decoding_message_size(256 << 20);
            let mut latencies = Vec::with_capacity(mine);
            let mut errors = Vec::new();
            let mut missed = 0usize;
            for r in 0..mine {
                if Instant::now() >= deadline {
                    break;
                }
                let mut hashes: Vec<proto::HashQuery> = (0..batch - 1)
                    .map(|i| {
                        let q = &queries[(c * 7919 + r * batch + i) % queries.len()];
                        pdq_query(format!("q{i}"), q)
                    })
                    .collect();
                hashes.push(pdq_query("sentinel".into(), &SENTINEL));
                let req = proto::MatchHashesRequest {
                    hashes,
                    ..Default::default()
                };
                let t = Instant::now();
                match client.match_hashes(req).await {
                    Ok(resp) => {
                        latencies.push(t.elapsed());
                        let resp = resp.into_inner();
                        let s = resp.results.last().unwrap();
                        if s.id != "sentinel" || s.verdict != Verdict::Match as i32 {
                            missed += 1;
                        }
                    }
                    Err(status) => errors.push(status.code()),
                }
            }
            (latencies, errors, missed)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    let mut missed = 0;
    for t in tasks {
        let (l, e, m) = t.await.unwrap();
        latencies.extend(l);
        errors.extend(e);
        missed += m;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = match (cpu_before, process_cpu_seconds()) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    };
    latencies.sort();
    let done = latencies.len();
    let hashes_done = (done * batch) as f64;
    println!(
        "load drill: index {entries} entries, {:.1} MiB on disk ({:.1} bytes/entry), built in {build_s:.2} s",
        index_bytes as f64 / 1048576.0,
        index_bytes as f64 / (entries + 1) as f64
    );
    println!(
        "load drill: {done}/{requests} MatchHashes requests x {batch} hashes, {concurrency} concurrent, {:.2} s: \
         errors {}, sentinel missed {missed}, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        elapsed,
        errors.len(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    println!(
        "load drill: {:.0} hashes/s, {:.0} requests/s; process CPU {cpu:.2} s (server + client) = {:.0} hashes per CPU-second; \
         RSS {:.0} MiB before start, {:.0} MiB after load",
        hashes_done / elapsed,
        done as f64 / elapsed,
        hashes_done / cpu,
        rss_before.unwrap_or(f64::NAN),
        resident_mib().unwrap_or(f64::NAN),
    );
    assert!(errors.is_empty(), "errors under load: {errors:?}");
    assert_eq!(
        missed, 0,
        "the sentinel was not matched in {missed} responses"
    );
    assert!(done > 0, "no request completed within {time_cap:?}");
    server.shutdown();
    server.wait().await.unwrap();
}

// ------------------------------------- PostgreSQL lost while the server runs

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_postgres_lost_while_serving() {
    let Ok(url) = std::env::var("SIGIL_TEST_PG_URL") else {
        eprintln!("NOTICE: SIGIL_TEST_PG_URL is unset: skipping the PostgreSQL serving drill");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    build_index(&dir.path().join("index"), 100);
    let relay = relay::Relay::start(relay::upstream_of(&url));
    let mut config = base_config(dir.path());
    config.reports.backend = ReportsBackend::Postgres;
    config.reports.postgres_url = Some(relay::via_relay(&url, relay.addr));
    let server = sigil_server::start(config, RunOptions::default())
        .await
        .unwrap();
    let addr = format!("http://{}", server.addr);
    let mut matcher = MatcherClient::connect(addr.clone()).await.unwrap();
    let mut reports = ReportsClient::connect(addr).await.unwrap();
    let one = |h: &[u8; 32], id: &str| proto::MatchHashesRequest {
        hashes: vec![pdq_query(id.into(), h)],
        ..Default::default()
    };
    let miss = random_hashes(99, 1)[0];

    // Healthy: a match creates a stub in PostgreSQL.
    let r = matcher
        .match_hashes(one(&SENTINEL, "a"))
        .await
        .unwrap()
        .into_inner();
    let first_report = r.results[0].report_id.clone();
    assert!(!first_report.is_empty());

    relay.cut();
    // Matching that needs no stub keeps working.
    for _ in 0..3 {
        let r = matcher
            .match_hashes(one(&miss, "m"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.results[0].verdict, Verdict::NoMatch as i32);
    }
    // A match whose stub cannot be stored is UNAVAILABLE (retry), never a
    // match without a stub; report calls are UNAVAILABLE too.
    let err = matcher.match_hashes(one(&SENTINEL, "b")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let err = reports
        .get_report(proto::GetReportRequest {
            id: first_report.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    eprintln!(
        "drill postgres lost while serving: report call -> {:?}: {}",
        err.code(),
        err.message()
    );

    // Back: the same server recovers on the next call (retry succeeds).
    relay.restore();
    let r = matcher
        .match_hashes(one(&SENTINEL, "c"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.results[0].verdict, Verdict::Match as i32);
    assert!(!r.results[0].report_id.is_empty());
    let got = reports
        .get_report(proto::GetReportRequest {
            id: first_report.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.id, first_report);
    server.shutdown();
    server.wait().await.unwrap();
}

// ------------------------------------------------------ bad start-up input

#[cfg(feature = "postgres")]
#[tokio::test]
async fn startup_refuses_unreachable_postgres_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    build_index(&dir.path().join("index"), 10);
    let mut config = base_config(dir.path());
    config.reports.backend = ReportsBackend::Postgres;
    config.reports.postgres_url =
        Some("postgres://sigil:hunter2@127.0.0.1:1/sigil?sslmode=disable".into());
    let err = match sigil_server::start(config, RunOptions::default()).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("started without its report database"),
    };
    eprintln!("startup with unreachable postgres: {err}");
    assert!(err.contains("postgres://sigil@127.0.0.1:1/sigil"), "{err}");
    assert!(err.contains("connect"), "{err}");
    assert!(!err.contains("hunter2"), "password leaked: {err}");
}

#[tokio::test]
async fn startup_refuses_postgres_without_url() {
    let dir = tempfile::tempdir().unwrap();
    build_index(&dir.path().join("index"), 10);
    let mut config = base_config(dir.path());
    config.reports.backend = ReportsBackend::Postgres;
    config.reports.postgres_url = None;
    let err = match sigil_server::start(config, RunOptions::default()).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("started with backend postgres and no URL"),
    };
    assert!(err.contains("reports.postgres_url"), "{err}");
}

#[tokio::test]
async fn startup_refuses_missing_index_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = base_config(dir.path());
    let err = match sigil_server::start(config, RunOptions::default()).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("started without an index"),
    };
    eprintln!("startup with a missing index: {err}");
    assert!(
        err.contains(&dir.path().join("index").display().to_string()),
        "{err}"
    );
}
