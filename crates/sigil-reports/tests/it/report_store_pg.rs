//! One report-store test suite, run against both backends: SQLite (always)
//! and PostgreSQL (with the `postgres` feature, on by default, when
//! `SIGIL_TEST_PG_URL` points at a server; `.ci/run` starts one with
//! `.ci/postgres.sh`). Without that variable the PostgreSQL half prints a
//! notice and passes, so a laptop without PostgreSQL can run the rest.
//!
//! Also the reliability drills of the report store:
//! - kill -9 of a process that is creating stubs loses no stub whose
//!   creation it had acknowledged (both backends);
//! - a lost database connection makes report calls fail with `Unavailable`
//!   (never hang, never panic) and the store recovers by itself when the
//!   database is back; a stale pooled connection is replaced transparently.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
#[cfg(feature = "postgres")]
use std::time::Duration;

use sigil_reports::{
    Filing, ListOrder, NewReport, ReportFilter, ReportStatus, ReportStore, ReportUpdate,
    SqliteReportStore, StoreError, StoredMatch, PRESERVATION_MS,
};
#[cfg(feature = "postgres")]
use sigil_reports::{PgOptions, PgReportStore};

#[cfg(feature = "postgres")]
// The relay is shared with sigil-server's drills (one copy of the helper).
#[path = "../../../sigil-server/tests/it/support/relay.rs"]
mod relay;
#[cfg(feature = "postgres")]
use relay::Relay;

#[cfg(feature = "postgres")]
const PG_ENV: &str = "SIGIL_TEST_PG_URL";

// ---------------------------------------------------------------- helpers

#[cfg(feature = "postgres")]
fn pg_url() -> Option<String> {
    match std::env::var(PG_ENV) {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!(
                "NOTICE: {PG_ENV} is unset: skipping the PostgreSQL report-store tests \
                 (run `source .ci/postgres.sh` to start a local server)"
            );
            None
        }
    }
}

#[cfg(feature = "postgres")]
/// A schema name no other test (or earlier run) uses.
fn fresh_schema(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("sigil_test_{tag}_{}_{nanos}", std::process::id())
}

#[cfg(feature = "postgres")]
fn pg_store(url: &str, schema: &str) -> PgReportStore {
    PgReportStore::connect(
        url,
        PgOptions {
            schema: Some(schema.to_string()),
            ..PgOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("connecting to {PG_ENV}: {e}"))
}

#[cfg(feature = "postgres")]
/// Drops a test schema (best effort: a leftover schema only costs space).
fn drop_schema(url: &str, schema: &str) {
    if let Ok(mut c) = postgres::Client::connect(url, postgres::NoTls) {
        let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    }
}

fn stub(ms: i64, list: &str, n_matches: usize) -> NewReport {
    NewReport {
        detected_at_ms: ms,
        reporting_org: "Example T&S".into(),
        reporting_email: "ts@example.invalid".into(),
        submitter_ref: format!("user-{ms}"),
        content_ref: format!("s3://bucket/{ms}"),
        file_name: format!("{ms}.jpg"),
        source: "image".into(),
        md5: format!("{:032x}", ms),
        sha1: format!("{:040x}", ms),
        sha256: format!("{:064x}", ms),
        pdq: format!("{:064x}", ms * 7),
        quality: Some(90),
        matches: (0..n_matches)
            .map(|i| StoredMatch {
                id: format!("entry-{i}"),
                list: list.into(),
                category: if i % 2 == 0 { "A1".into() } else { "B2".into() },
                note: (i == 0).then(|| "first".to_string()),
                kind: "pdq".into(),
                distance: i as u32 * 3,
                variant: (i == 1).then(|| "rot90".to_string()),
            })
            .collect(),
        actor: "pipeline".into(),
        index_identity: format!("{ms:016x}"),
    }
}

/// Files `reports` and returns the stub ids, in order.
fn file(store: &dyn ReportStore, reports: &[NewReport]) -> Vec<String> {
    store
        .create_many(reports)
        .unwrap()
        .into_iter()
        .map(|f| f.id)
        .collect()
}

// ------------------------------------------------------------- the suite

/// Every behaviour a backend must share. `store` starts empty.
fn suite(store: &dyn ReportStore) {
    round_trip(store);
    listing_filters_and_paging(store);
    review_rules_and_audit(store);
    concurrent_creates(store);
    one_stub_per_sighting(store);
    concurrent_sightings_make_one_stub(store);
    versions_refuse_lost_updates(store);
    counts_deadline_order_and_prune(store);
}

fn round_trip(store: &dyn ReportStore) {
    let new = stub(1_000, "ncmec", 3);
    let ids = file(store, std::slice::from_ref(&new));
    assert_eq!(ids.len(), 1);
    let r = store.get(&ids[0]).unwrap();
    assert_eq!(r.id, ids[0]);
    assert_eq!(r.status, ReportStatus::Pending);
    assert!(!r.incident_type.is_empty());
    assert_eq!(r.detected_at_ms, 1_000);
    assert_eq!(r.preservation_deadline_ms, 1_000 + PRESERVATION_MS);
    assert_eq!(r.reporting_org, new.reporting_org);
    assert_eq!(r.reporting_email, new.reporting_email);
    assert_eq!(r.submitter_ref, new.submitter_ref);
    assert_eq!(r.content_ref, new.content_ref);
    assert_eq!(r.file_name, new.file_name);
    assert_eq!(
        r.index_identity.as_deref(),
        Some(new.index_identity.as_str())
    );
    assert_eq!(r.source, "image");
    assert_eq!(
        (r.md5.as_str(), r.sha1.as_str()),
        (new.md5.as_str(), new.sha1.as_str())
    );
    assert_eq!(
        (r.sha256.as_str(), r.pdq.as_str()),
        (new.sha256.as_str(), new.pdq.as_str())
    );
    assert_eq!(r.quality, Some(90));
    assert_eq!(
        r.matches, new.matches,
        "matches kept in order with all fields"
    );
    assert_eq!(r.viewed, None);
    assert_eq!(r.classification, None);
    assert_eq!(r.reviewer, None);
    assert!(r.annotations.is_empty());
    assert_eq!(r.audit.len(), 1);
    assert_eq!(r.audit[0].action, "created");
    assert_eq!(r.audit[0].actor, "pipeline");

    assert!(matches!(
        store.get("rpt_missing"),
        Err(StoreError::NotFound(_))
    ));
    // An empty batch is fine and stores nothing.
    assert!(store.create_many(&[]).unwrap().is_empty());
}

fn listing_filters_and_paging(store: &dyn ReportStore) {
    // 7 stubs at distinct times on two lists, created in one batch.
    let batch: Vec<NewReport> = (0..7)
        .map(|i| stub(10_000 + i * 100, if i % 2 == 0 { "iwf" } else { "tc" }, 1))
        .collect();
    let ids = file(store, &batch);
    assert_eq!(ids.len(), 7);
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        7,
        "ids are unique"
    );

    // Paging newest first over the time window, 3 per page: every stub once.
    let mut seen = Vec::new();
    let mut filter = ReportFilter {
        detected_after_ms: Some(10_000),
        detected_before_ms: Some(20_000),
        page_size: 3,
        ..Default::default()
    };
    let mut pages = 0;
    loop {
        let page = store.list(&filter).unwrap();
        pages += 1;
        assert!(page.reports.len() <= 3);
        seen.extend(
            page.reports
                .iter()
                .map(|r| (r.detected_at_ms, r.id.clone())),
        );
        match page.next_page_token {
            Some(t) => filter.page_token = Some(t),
            None => break,
        }
        assert!(pages < 10, "paging does not terminate");
    }
    assert_eq!(pages, 3);
    let want: Vec<(i64, String)> = (0..7)
        .rev()
        .map(|i| (10_000 + i as i64 * 100, ids[i].clone()))
        .collect();
    assert_eq!(seen, want, "newest first, no gaps, no duplicates");

    // List filter: only stubs with a match on that list.
    let iwf = store
        .list(&ReportFilter {
            list: Some("iwf".into()),
            detected_after_ms: Some(10_000),
            page_size: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(iwf.reports.len(), 4);
    assert!(iwf.reports.iter().all(|r| r.matches[0].list == "iwf"));
    assert!(iwf.next_page_token.is_none());

    // Time window bounds: after is inclusive, before exclusive.
    let window = store
        .list(&ReportFilter {
            detected_after_ms: Some(10_100),
            detected_before_ms: Some(10_300),
            page_size: 100,
            ..Default::default()
        })
        .unwrap();
    let times: Vec<i64> = window.reports.iter().map(|r| r.detected_at_ms).collect();
    assert_eq!(times, vec![10_200, 10_100]);

    // A garbage page token is refused, not misread.
    let bad = store.list(&ReportFilter {
        page_token: Some("not-a-token".into()),
        page_size: 10,
        ..Default::default()
    });
    assert!(matches!(bad, Err(StoreError::BadPageToken(_))));
}

fn review_rules_and_audit(store: &dyn ReportStore) {
    let id = file(store, &[stub(50_000, "ncmec", 1)]).remove(0);

    // Confirming or reporting needs a person to have viewed the content.
    for status in [ReportStatus::Confirmed, ReportStatus::Reported] {
        let u = ReportUpdate {
            status: Some(status),
            ..Default::default()
        };
        assert!(matches!(
            store.update(&id, &u, "rev", 51_000),
            Err(StoreError::Rejected { .. })
        ));
    }
    // Reporting also needs a classification.
    let u = ReportUpdate {
        status: Some(ReportStatus::Reported),
        viewed: Some(true),
        ..Default::default()
    };
    assert!(matches!(
        store.update(&id, &u, "rev", 51_000),
        Err(StoreError::Rejected { .. })
    ));
    // Rejected updates changed nothing.
    let r = store.get(&id).unwrap();
    assert_eq!(
        (r.status, r.viewed, r.audit.len()),
        (ReportStatus::Pending, None, 1)
    );

    let u = ReportUpdate {
        viewed: Some(true),
        add_annotations: vec!["looked at it".into()],
        ..Default::default()
    };
    store.update(&id, &u, "alice", 52_000).unwrap();
    let u = ReportUpdate {
        status: Some(ReportStatus::Reported),
        classification: Some("A1".into()),
        add_annotations: vec!["filed".into(), "ticket 42".into()],
        ..Default::default()
    };
    let r = store.update(&id, &u, "bob", 53_000).unwrap();
    assert_eq!(r.status, ReportStatus::Reported);
    assert_eq!(r.viewed, Some(true));
    assert_eq!(r.classification.as_deref(), Some("A1"));
    assert_eq!(r.reviewer.as_deref(), Some("bob"));
    assert_eq!(r.updated_at_ms, 53_000);
    assert_eq!(r.annotations, vec!["looked at it", "filed", "ticket 42"]);
    let actions: Vec<(&str, &str, i64)> = r
        .audit
        .iter()
        .map(|a| (a.action.as_str(), a.actor.as_str(), a.at_ms))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("created", "pipeline", 50_000),
            ("updated", "alice", 52_000),
            ("updated", "bob", 53_000)
        ]
    );
    assert!(r.audit[2].details_json.contains("reported"));
    // The preservation deadline never moves with reviews.
    assert_eq!(r.preservation_deadline_ms, 50_000 + PRESERVATION_MS);

    // Status filter sees it.
    let reported = store
        .list(&ReportFilter {
            status: Some(ReportStatus::Reported),
            page_size: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(reported.reports.len(), 1);
    assert_eq!(reported.reports[0].id, id);

    let missing = store.update("rpt_missing", &ReportUpdate::default(), "x", 1);
    assert!(matches!(missing, Err(StoreError::NotFound(_))));
}

fn concurrent_creates(store: &dyn ReportStore) {
    let ids = Mutex::new(Vec::new());
    thread::scope(|s| {
        for t in 0..4 {
            let ids = &ids;
            s.spawn(move || {
                for i in 0..25 {
                    let got = file(store, &[stub(100_000 + t * 1000 + i, "tc", 2)]);
                    ids.lock().unwrap().extend(got);
                }
            });
        }
    });
    let ids = ids.into_inner().unwrap();
    assert_eq!(ids.len(), 100);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 100);
    for id in &ids {
        assert_eq!(store.get(id).unwrap().matches.len(), 2);
    }
}

/// A repeated match of the same content and entries is an occurrence of the
/// open stub; the same sighting twice is recorded once; other entries, or
/// a closed stub, open a new one.
fn one_stub_per_sighting(store: &dyn ReportStore) {
    let first = stub(200_000, "ncmec", 2);
    let opened = store.create_many(std::slice::from_ref(&first)).unwrap();
    assert_eq!(opened[0].filing, Filing::Opened);
    let id = opened[0].id.clone();
    let again = NewReport {
        detected_at_ms: 200_500,
        submitter_ref: "user-other".into(),
        content_ref: "s3://bucket/copy".into(),
        actor: "scan".into(),
        ..first.clone()
    };
    // In one batch: the new sighting, then the same sighting again.
    let filed = store.create_many(&[again.clone(), again.clone()]).unwrap();
    let filings: Vec<(&str, Filing)> = filed.iter().map(|f| (f.id.as_str(), f.filing)).collect();
    assert_eq!(
        filings,
        [
            (id.as_str(), Filing::Sighted),
            (id.as_str(), Filing::AlreadyRecorded)
        ]
    );
    let r = store.get(&id).unwrap();
    let seen: Vec<(i64, &str, &str)> = r
        .occurrences
        .iter()
        .map(|o| (o.at_ms, o.content_ref.as_str(), o.actor.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (200_000, "s3://bucket/200000", "pipeline"),
            (200_500, "s3://bucket/copy", "scan")
        ]
    );
    assert_eq!(r.occurrence_count, 2);
    assert_eq!(r.version, 1, "a sighting is not a review");
    // The listing carries the count.
    let listed = store
        .list(&ReportFilter {
            detected_after_ms: Some(200_000),
            detected_before_ms: Some(200_001),
            page_size: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(listed.reports[0].occurrence_count, 2);

    // Fewer entries: another stub.
    let other = file(store, &[stub(200_000, "ncmec", 1)]).remove(0);
    assert_ne!(other, id);
    // Hashes only (no SHA-256): the content reference is the content.
    let hashes_only = |submitter: &str| NewReport {
        sha256: String::new(),
        submitter_ref: submitter.into(),
        content_ref: "upload-77".into(),
        source: "hashes".into(),
        ..stub(201_000, "iwf", 1)
    };
    let a = file(store, &[hashes_only("u1")]).remove(0);
    assert_eq!(file(store, &[hashes_only("u2")]), [a]);

    // Dismissed, the stub is closed: the next sighting opens a new stub.
    let dismiss = ReportUpdate {
        status: Some(ReportStatus::Dismissed),
        add_annotations: vec!["false positive: a logo".into()],
        ..Default::default()
    };
    store.update(&id, &dismiss, "rev", 202_000).unwrap();
    let reopened = store.create_many(std::slice::from_ref(&again)).unwrap();
    assert_eq!(reopened[0].filing, Filing::Opened);
    assert_ne!(reopened[0].id, id);
    assert_eq!(store.get(&id).unwrap().occurrence_count, 2);
}

/// Sightings of one content from four writers at once: one stub, every
/// sighting on it once.
fn concurrent_sightings_make_one_stub(store: &dyn ReportStore) {
    let ids = Mutex::new(Vec::new());
    thread::scope(|s| {
        for t in 0..4 {
            let ids = &ids;
            s.spawn(move || {
                for i in 0..10 {
                    let sighting = NewReport {
                        submitter_ref: format!("w{t}-{i}"),
                        ..stub(300_000, "tc", 2)
                    };
                    ids.lock().unwrap().extend(file(store, &[sighting]));
                }
            });
        }
    });
    let ids = ids.into_inner().unwrap();
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 1, "{distinct:?}");
    assert_eq!(store.get(&ids[0]).unwrap().occurrence_count, 40);
}

/// Optimistic concurrency: an update made against an older version is
/// refused, naming the change that won; two reviewers racing on one
/// version: exactly one wins.
fn versions_refuse_lost_updates(store: &dyn ReportStore) {
    let id = file(store, &[stub(400_000, "ncmec", 1)]).remove(0);
    assert_eq!(store.get(&id).unwrap().version, 1);
    let viewed = |v: i64| ReportUpdate {
        viewed: Some(true),
        add_annotations: vec![format!("seen at v{v}")],
        expected_version: Some(v),
        ..Default::default()
    };
    let r = store.update(&id, &viewed(1), "alice", 400_100).unwrap();
    assert_eq!(r.version, 2);
    let dismiss = ReportUpdate {
        status: Some(ReportStatus::Dismissed),
        add_annotations: vec!["not it".into()],
        expected_version: Some(1),
        ..Default::default()
    };
    match store.update(&id, &dismiss, "bob", 400_200) {
        Err(StoreError::Conflict { conflict, .. }) => {
            assert_eq!(conflict.current_version, 2);
            assert_eq!(conflict.latest.actor, "alice");
            assert_eq!(conflict.latest.at_ms, 400_100);
            assert!(conflict.latest.details_json.contains("viewed"));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let r = store.get(&id).unwrap();
    assert_eq!(
        (r.status, r.version, r.audit.len()),
        (ReportStatus::Pending, 2, 2)
    );

    let results = Mutex::new(Vec::new());
    thread::scope(|s| {
        for who in ["carol", "dave"] {
            let results = &results;
            let id = &id;
            let update = viewed(2);
            s.spawn(move || {
                let got = store.update(id, &update, who, 400_300);
                results.lock().unwrap().push(got.map(|r| r.version));
            });
        }
    });
    let results = results.into_inner().unwrap();
    let won: Vec<i64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    assert_eq!(won, [3]);
    assert!(results
        .iter()
        .any(|r| matches!(r, Err(StoreError::Conflict { .. }))));
    assert_eq!(store.get(&id).unwrap().annotations.len(), 2);

    // The bug of issue 22: a reported stub accepted viewed = false.
    let reported = ReportUpdate {
        status: Some(ReportStatus::Reported),
        classification: Some("A2".into()),
        ..Default::default()
    };
    store.update(&id, &reported, "erin", 400_400).unwrap();
    let unview = ReportUpdate {
        viewed: Some(false),
        ..Default::default()
    };
    assert!(matches!(
        store.update(&id, &unview, "erin", 400_500),
        Err(StoreError::Rejected { .. })
    ));
    let r = store.get(&id).unwrap();
    assert_eq!((r.status, r.viewed), (ReportStatus::Reported, Some(true)));
}

/// Counts by status under a filter, the review queue's deadline order
/// with paging, and pruning of closed stubs past their deadline.
fn counts_deadline_order_and_prune(store: &dyn ReportStore) {
    let batch: Vec<NewReport> = (0..5).map(|i| stub(500_000 + i * 10, "queue", 1)).collect();
    let ids = file(store, &batch);
    let window = ReportFilter {
        detected_after_ms: Some(500_000),
        detected_before_ms: Some(500_100),
        ..Default::default()
    };
    let dismiss = ReportUpdate {
        status: Some(ReportStatus::Dismissed),
        add_annotations: vec!["no".into()],
        ..Default::default()
    };
    store.update(&ids[1], &dismiss, "rev", 500_500).unwrap();
    // The status filter does not narrow the counts: they are by status.
    let counts = store
        .counts(&ReportFilter {
            status: Some(ReportStatus::Reported),
            ..window.clone()
        })
        .unwrap();
    assert_eq!(
        (counts.pending, counts.dismissed, counts.total()),
        (4, 1, 5)
    );
    let category = store
        .counts(&ReportFilter {
            category: Some("A1".into()),
            list: Some("queue".into()),
            ..window.clone()
        })
        .unwrap();
    assert_eq!(category.total(), 5);
    let no_category = store
        .counts(&ReportFilter {
            category: Some("B2".into()),
            ..window.clone()
        })
        .unwrap();
    assert_eq!(no_category.total(), 0);

    // Deadline first, two per page: oldest detection first, every stub once.
    let mut filter = ReportFilter {
        order: ListOrder::Deadline,
        page_size: 2,
        ..window.clone()
    };
    let mut seen = Vec::new();
    loop {
        let page = store.list(&filter).unwrap();
        seen.extend(page.reports.iter().map(|r| r.id.clone()));
        match page.next_page_token {
            Some(t) => filter.page_token = Some(t),
            None => break,
        }
        assert!(seen.len() <= 5, "paging does not terminate");
    }
    assert_eq!(seen, ids);
    // A newest-first token is not a deadline token.
    let bad = store.list(&ReportFilter {
        page_token: Some(format!("500000.{}", ids[0])),
        ..filter.clone()
    });
    assert!(matches!(bad, Err(StoreError::BadPageToken(_))));

    // Only closed stubs past their deadline are pruned; dry run first.
    let after_deadline = 500_020 + PRESERVATION_MS;
    let due = store.prune(after_deadline, false).unwrap();
    let due_ids: Vec<&str> = due.iter().map(|r| r.id.as_str()).collect();
    assert!(due_ids.contains(&ids[1].as_str()), "{due_ids:?}");
    assert!(due
        .iter()
        .all(|r| r.status.is_closed() && r.preservation_deadline_ms < after_deadline));
    assert!(store.get(&ids[1]).is_ok(), "a dry run deletes nothing");
    assert_eq!(store.prune(after_deadline, true).unwrap().len(), due.len());
    assert!(matches!(store.get(&ids[1]), Err(StoreError::NotFound(_))));
    assert!(store.get(&ids[0]).is_ok(), "open stubs are kept");
    assert!(store.prune(after_deadline, false).unwrap().is_empty());
}

#[test]
fn sqlite_backend_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteReportStore::open(&dir.path().join("reports.db")).unwrap();
    suite(&store);
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_backend_passes_the_suite() {
    let Some(url) = pg_url() else { return };
    let schema = fresh_schema("suite");
    let store = pg_store(&url, &schema);
    suite(&store);
    let before = store.counts(&ReportFilter::default()).unwrap();
    assert!(before.total() > 100, "{before:?}");
    // Reconnecting to an existing schema keeps the data (CREATE IF NOT
    // EXISTS, ADD COLUMN IF NOT EXISTS).
    drop(store);
    let store = pg_store(&url, &schema);
    let all = store
        .list(&ReportFilter {
            page_size: 1000,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(all.reports.len() as u64, before.total());
    drop(store);
    drop_schema(&url, &schema);
}

// ------------------------------------------------ drill: kill -9 mid-write

/// Where the drill's child process writes: "sqlite:PATH" or "pg:SCHEMA".
const CHILD_ENV: &str = "SIGIL_DRILL_STORE_CHILD";

/// Not a test of its own: the body of the child process the kill -9 drill
/// starts (this same test binary, re-run with `CHILD_ENV` set). It creates
/// stubs in a loop and prints `ACK <id>` after each `create_many` returns,
/// which is exactly when the server would acknowledge a match.
#[test]
fn drill_child_process_entry() {
    let Ok(target) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store: Box<dyn ReportStore> = if let Some(path) = target.strip_prefix("sqlite:") {
        Box::new(SqliteReportStore::open(Path::new(path)).unwrap())
    } else {
        #[cfg(feature = "postgres")]
        if let Some(schema) = target.strip_prefix("pg:") {
            Box::new(pg_store(&std::env::var(PG_ENV).unwrap(), schema))
        } else {
            panic!("bad {CHILD_ENV}={target}");
        }
        #[cfg(not(feature = "postgres"))]
        panic!("bad {CHILD_ENV}={target}");
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    // Bounded: the parent kills us long before this ends.
    for i in 0..100_000 {
        let ids = store
            .create_many(&[stub(1_000_000 + i, "ncmec", 2)])
            .unwrap();
        writeln!(out, "ACK {}", ids[0].id).unwrap();
        out.flush().unwrap();
    }
}

/// Starts the child, lets it acknowledge `kill_after` stubs, kills it with
/// SIGKILL, and returns every id it acknowledged.
fn run_child_and_kill(target: &str, kill_after: usize) -> Vec<String> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            &test_path("drill_child_process_entry"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, target)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut acked = Vec::new();
    let mut line = String::new();
    while acked.len() < kill_after {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("drill child exited early after {} acks", acked.len());
        }
        if let Some(id) = line.trim().strip_prefix("ACK ") {
            acked.push(id.to_string());
        }
    }
    // SIGKILL: no destructors, no flush, no clean shutdown of the database handle.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "child was not killed: {status:?}");
    // Acks the child printed before it died are acknowledgements too.
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    acked.extend(
        rest.lines()
            .filter_map(|l| l.trim().strip_prefix("ACK ").map(str::to_string)),
    );
    acked
}

fn assert_all_present(store: &dyn ReportStore, acked: &[String], backend: &str) {
    let lost: Vec<&String> = acked
        .iter()
        .filter(|id| !matches!(store.get(id), Ok(r) if r.matches.len() == 2))
        .collect();
    eprintln!(
        "drill kill -9 ({backend}): {} acknowledged stubs, {} lost",
        acked.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "{backend}: acknowledged stubs lost after kill -9: {lost:?}"
    );
}

#[test]
fn drill_sqlite_kill9_loses_no_acknowledged_stub() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reports.db");
    let acked = run_child_and_kill(&format!("sqlite:{}", path.display()), 40);
    let store = SqliteReportStore::open(&path).unwrap();
    assert_all_present(&store, &acked, "sqlite");
}

#[cfg(feature = "postgres")]
#[test]
fn drill_postgres_kill9_loses_no_acknowledged_stub() {
    let Some(url) = pg_url() else { return };
    let schema = fresh_schema("kill9");
    // Create the schema up front so the child only writes.
    drop(pg_store(&url, &schema));
    let acked = run_child_and_kill(&format!("pg:{schema}"), 40);
    let store = pg_store(&url, &schema);
    assert_all_present(&store, &acked, "postgres");
    drop(store);
    drop_schema(&url, &schema);
}

// --------------------------------------- drill: database lost while running

#[cfg(feature = "postgres")]
#[test]
fn drill_postgres_lost_connection_is_unavailable_then_recovers() {
    let Some(url) = pg_url() else { return };
    let relay = Relay::start(relay::upstream_of(&url));
    let relayed = relay::via_relay(&url, relay.addr);
    let password = url
        .parse::<postgres::Config>()
        .unwrap()
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();

    let schema = fresh_schema("lost");
    let store = PgReportStore::connect(
        &relayed,
        PgOptions {
            schema: Some(schema.clone()),
            connect_timeout: Duration::from_secs(2),
            tcp_user_timeout: Duration::from_secs(2),
            max_connections: 2,
        },
    )
    .unwrap();
    let before = file(&store, &[stub(7_000, "ncmec", 1)]);

    // The database vanishes: every call fails fast with Unavailable.
    relay.cut();
    for attempt in 0..3 {
        match store.create_many(&[stub(7_100 + attempt, "ncmec", 1)]) {
            Err(StoreError::Unavailable(msg)) => {
                assert!(!msg.contains(&format!(":{password}@")), "password in {msg}");
                assert!(msg.contains("unavailable"), "{msg}");
            }
            other => panic!("expected Unavailable while the database is gone, got {other:?}"),
        }
        assert!(matches!(
            store.get(&before[0]),
            Err(StoreError::Unavailable(_))
        ));
    }

    // It comes back: the very next call reconnects and succeeds, and the
    // stub acknowledged before the outage is intact.
    relay.restore();
    let after = file(&store, &[stub(7_200, "ncmec", 1)]);
    assert_eq!(store.get(&before[0]).unwrap().detected_at_ms, 7_000);
    assert_eq!(store.get(&after[0]).unwrap().detected_at_ms, 7_200);
    drop(store);
    drop_schema(&url, &schema);
}

#[cfg(feature = "postgres")]
#[test]
fn drill_postgres_stale_pooled_connection_is_replaced_transparently() {
    let Some(url) = pg_url() else { return };
    let schema = fresh_schema("stale");
    // A session name of its own, so only this test's sessions are ended
    // (the other tests run in parallel against the same server).
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = pg_store(&format!("{url}{sep}application_name={schema}"), &schema);
    let id = file(&store, &[stub(9_000, "iwf", 1)]).remove(0);
    // The server ends every session of this application (as a failover or
    // a restart would); the pooled connection is now dead.
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
            &[&schema],
        )
        .unwrap()
        .len();
    assert!(
        killed >= 1,
        "no sigil-server session was found to terminate"
    );
    // No error reaches the caller: BEGIN fails on the dead connection, is
    // retried on a fresh one.
    assert_eq!(store.get(&id).unwrap().detected_at_ms, 9_000);
    store.create_many(&[stub(9_100, "iwf", 1)]).unwrap();
    drop(store);
    drop_schema(&url, &schema);
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_unreachable_at_start_names_setting_and_cause() {
    // Needs no server: nothing listens on port 1.
    let err = match PgReportStore::connect(
        "postgres://sigil:secret@127.0.0.1:1/sigil?sslmode=disable",
        PgOptions::default(),
    ) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("connected to a closed port"),
    };
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(
        err.to_lowercase().contains("refused") || err.contains("connect"),
        "{err}"
    );
    assert!(!err.contains("secret"), "password leaked: {err}");
}

/// The name by which the test harness knows `test` of this module, whether
/// this file is its own test binary or a module of one
/// (`report_store_pg::...`).
fn test_path(test: &str) -> String {
    match module_path!().split_once("::") {
        Some((_, module)) => format!("{module}::{test}"),
        None => test.to_string(),
    }
}
