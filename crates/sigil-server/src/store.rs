//! Report stubs and where they are kept.
//!
//! [`ReportStore`] is the seam for storage backends: SQLite now (embedded,
//! WAL, `synchronous=FULL`), PostgreSQL later. Its methods are synchronous
//! and are called from `spawn_blocking`; the SQL is kept portable (plain
//! tables, no SQLite-only types or upserts). A stub is committed before the
//! matching response is sent, so an acknowledged match survives a crash.
//! No image bytes or pixels ever enter a stub.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::store_sql::{
    audit_from_row, created_audit_details, finish_page, list_query, match_from_row, new_report_id,
    report_from_row, review_update, ReviewedFields, RowValues, SqlArg, AUDIT_COLUMNS,
    MATCH_COLUMNS, REPORT_COLUMNS,
};

/// Preservation period required by 18 U.S.C. 2258A as amended by the REPORT Act.
pub const PRESERVATION_MS: i64 = 365 * 24 * 3600 * 1000;

/// The CyberTipline incident type for known-image matches.
pub const INCIDENT_TYPE: &str = "Child Pornography (possession, manufacture, and distribution)";

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("report database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("report database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("report {0:?} not found")]
    NotFound(String),
    #[error("report {id:?}: {reason}")]
    Rejected { id: String, reason: String },
    #[error("invalid page token {0:?}")]
    BadPageToken(String),
    /// The backend cannot be reached now (the caller may retry).
    #[error("{0}")]
    Unavailable(String),
    /// Any other backend failure, with its message.
    #[error("{0}")]
    Backend(String),
}

/// Review status of a stub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportStatus {
    Pending,
    Confirmed,
    Dismissed,
    Reported,
}

impl ReportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportStatus::Pending => "pending",
            ReportStatus::Confirmed => "confirmed",
            ReportStatus::Dismissed => "dismissed",
            ReportStatus::Reported => "reported",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => ReportStatus::Pending,
            "confirmed" => ReportStatus::Confirmed,
            "dismissed" => ReportStatus::Dismissed,
            "reported" => ReportStatus::Reported,
            _ => return None,
        })
    }
}

/// One match as recorded in a stub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredMatch {
    pub id: String,
    pub list: String,
    pub category: String,
    pub note: Option<String>,
    /// "pdq", "md5", "sha1", "sha256".
    pub kind: String,
    pub distance: u32,
    /// Dihedral variant name, for PDQ matches of a rotated/mirrored query.
    pub variant: Option<String>,
}

/// What the matcher knows when it creates a stub.
#[derive(Debug, Clone, Default)]
pub struct NewReport {
    pub detected_at_ms: i64,
    pub reporting_org: String,
    pub reporting_email: String,
    pub submitter_ref: String,
    pub content_ref: String,
    pub file_name: String,
    /// "image" or "hashes".
    pub source: String,
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
    pub pdq: String,
    pub quality: Option<u32>,
    pub matches: Vec<StoredMatch>,
    /// Who caused the stub (API key name), for the audit trail.
    pub actor: String,
}

/// One audit-trail entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub details_json: String,
}

/// A stored stub.
#[derive(Debug, Clone, Serialize)]
pub struct ReportRecord {
    pub id: String,
    pub status: ReportStatus,
    pub incident_type: String,
    pub detected_at_ms: i64,
    pub preservation_deadline_ms: i64,
    pub reporting_org: String,
    pub reporting_email: String,
    pub submitter_ref: String,
    pub content_ref: String,
    pub file_name: String,
    pub source: String,
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
    pub pdq: String,
    pub quality: Option<u32>,
    pub matches: Vec<StoredMatch>,
    pub viewed: Option<bool>,
    /// "A1", "A2", "B1", "B2".
    pub classification: Option<String>,
    pub annotations: Vec<String>,
    pub reviewer: Option<String>,
    pub updated_at_ms: i64,
    /// Filled by `get` and `update`, empty in listings.
    pub audit: Vec<AuditRecord>,
}

/// Listing filters (all optional).
#[derive(Debug, Clone, Default)]
pub struct ReportFilter {
    pub status: Option<ReportStatus>,
    pub detected_after_ms: Option<i64>,
    pub detected_before_ms: Option<i64>,
    pub list: Option<String>,
    pub page_size: usize,
    pub page_token: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct ReportPage {
    pub reports: Vec<ReportRecord>,
    pub next_page_token: Option<String>,
}

/// A reviewer's changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ReportUpdate {
    pub status: Option<ReportStatus>,
    pub viewed: Option<bool>,
    pub classification: Option<String>,
    pub add_annotations: Vec<String>,
}

/// Storage of report stubs. Implementations must make `create_many`
/// durable (committed to stable storage) before returning.
pub trait ReportStore: Send + Sync + 'static {
    /// Stores stubs in one transaction and returns their ids, in order.
    fn create_many(&self, reports: &[NewReport]) -> Result<Vec<String>, StoreError>;
    /// One stub with its audit trail.
    fn get(&self, id: &str) -> Result<ReportRecord, StoreError>;
    /// Newest first, filtered and paged.
    fn list(&self, filter: &ReportFilter) -> Result<ReportPage, StoreError>;
    /// Applies a reviewer's update, appends it to the audit trail, and
    /// returns the updated stub.
    fn update(
        &self,
        id: &str,
        update: &ReportUpdate,
        actor: &str,
        now_ms: i64,
    ) -> Result<ReportRecord, StoreError>;
    /// Calls the store can serve at once; more would only wait on its own
    /// lock or pool. The server runs at most this many (see
    /// `store_calls.rs`).
    fn parallelism(&self) -> usize {
        1
    }
}

/// Report stubs in an embedded SQLite database.
pub struct SqliteReportStore {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reports (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    incident_type TEXT NOT NULL,
    detected_at_ms BIGINT NOT NULL,
    preservation_deadline_ms BIGINT NOT NULL,
    reporting_org TEXT NOT NULL,
    reporting_email TEXT NOT NULL,
    submitter_ref TEXT NOT NULL,
    content_ref TEXT NOT NULL,
    file_name TEXT NOT NULL,
    source TEXT NOT NULL,
    md5 TEXT NOT NULL,
    sha1 TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    pdq TEXT NOT NULL,
    quality INTEGER,
    viewed INTEGER,
    classification TEXT,
    reviewer TEXT,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_detected ON reports (detected_at_ms, id);
CREATE TABLE IF NOT EXISTS report_matches (
    report_id TEXT NOT NULL REFERENCES reports (id),
    seq INTEGER NOT NULL,
    entry_id TEXT NOT NULL,
    list TEXT NOT NULL,
    category TEXT NOT NULL,
    note TEXT,
    kind TEXT NOT NULL,
    distance INTEGER NOT NULL,
    variant TEXT,
    PRIMARY KEY (report_id, seq)
);
CREATE INDEX IF NOT EXISTS report_matches_list ON report_matches (list, report_id);
CREATE TABLE IF NOT EXISTS report_annotations (
    report_id TEXT NOT NULL REFERENCES reports (id),
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (report_id, seq)
);
CREATE TABLE IF NOT EXISTS report_audit (
    report_id TEXT NOT NULL REFERENCES reports (id),
    seq INTEGER NOT NULL,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    details TEXT NOT NULL,
    PRIMARY KEY (report_id, seq)
);
";

impl SqliteReportStore {
    /// Opens (creating if needed) the database at `path`, in WAL mode with
    /// `synchronous=FULL` so every commit is on disk when it returns.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(err(rusqlite::Error::InvalidParameterName(format!(
                "could not enable WAL journal mode (got {mode})"
            ))));
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(SqliteReportStore {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-applied
        // transaction (rusqlite rolls back on drop), so poisoning is moot.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// SQLite hands out every integer as `i64` and keeps booleans as 0/1.
impl RowValues for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.get(i)
    }
    fn opt_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.get(i)
    }
    fn big_int(&self, i: usize) -> rusqlite::Result<i64> {
        self.get(i)
    }
    fn u32(&self, i: usize) -> rusqlite::Result<u32> {
        Ok(self.get::<_, i64>(i)? as u32)
    }
    fn opt_u32(&self, i: usize) -> rusqlite::Result<Option<u32>> {
        Ok(self.get::<_, Option<i64>>(i)?.map(|q| q as u32))
    }
    fn opt_bool(&self, i: usize) -> rusqlite::Result<Option<bool>> {
        Ok(self.get::<_, Option<i64>>(i)?.map(|v| v != 0))
    }
}

fn load_children(
    conn: &Connection,
    r: &mut ReportRecord,
    with_audit: bool,
) -> rusqlite::Result<()> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {MATCH_COLUMNS} FROM report_matches WHERE report_id = ?1 ORDER BY seq"
    ))?;
    r.matches = st
        .query_map([&r.id], |row| match_from_row(row))?
        .collect::<Result<_, _>>()?;
    let mut st = conn
        .prepare_cached("SELECT body FROM report_annotations WHERE report_id = ?1 ORDER BY seq")?;
    r.annotations = st
        .query_map([&r.id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    if with_audit {
        let mut st = conn.prepare_cached(&format!(
            "SELECT {AUDIT_COLUMNS} FROM report_audit WHERE report_id = ?1 ORDER BY seq"
        ))?;
        r.audit = st
            .query_map([&r.id], |row| audit_from_row(row))?
            .collect::<Result<_, _>>()?;
    }
    Ok(())
}

fn get_in(conn: &Connection, id: &str) -> Result<ReportRecord, StoreError> {
    let sql = format!("SELECT {REPORT_COLUMNS} FROM reports WHERE id = ?1");
    let mut r = conn
        .query_row(&sql, [id], |row| report_from_row(row))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    load_children(conn, &mut r, true)?;
    Ok(r)
}

fn next_seq(conn: &Connection, table: &str, id: &str) -> rusqlite::Result<i64> {
    conn.query_row(
        &format!("SELECT COALESCE(MAX(seq), -1) + 1 FROM {table} WHERE report_id = ?1"),
        [id],
        |r| r.get(0),
    )
}

impl ReportStore for SqliteReportStore {
    fn create_many(&self, reports: &[NewReport]) -> Result<Vec<String>, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mut ids = Vec::with_capacity(reports.len());
        {
            let mut ins = tx.prepare_cached(&format!(
                "INSERT INTO reports ({REPORT_COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, NULL, NULL, NULL, ?17)"
            ))?;
            let mut ins_match = tx.prepare_cached(&format!(
                "INSERT INTO report_matches (report_id, seq, {MATCH_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))?;
            let mut ins_audit = tx.prepare_cached(&format!(
                "INSERT INTO report_audit (report_id, seq, {AUDIT_COLUMNS}) \
                 VALUES (?1, 0, ?2, ?3, 'created', ?4)"
            ))?;
            for r in reports {
                let id = new_report_id();
                ins.execute(params![
                    id,
                    ReportStatus::Pending.as_str(),
                    INCIDENT_TYPE,
                    r.detected_at_ms,
                    r.detected_at_ms + PRESERVATION_MS,
                    r.reporting_org,
                    r.reporting_email,
                    r.submitter_ref,
                    r.content_ref,
                    r.file_name,
                    r.source,
                    r.md5,
                    r.sha1,
                    r.sha256,
                    r.pdq,
                    r.quality.map(i64::from),
                    r.detected_at_ms,
                ])?;
                for (seq, m) in r.matches.iter().enumerate() {
                    ins_match.execute(params![
                        id,
                        seq as i64,
                        m.id,
                        m.list,
                        m.category,
                        m.note,
                        m.kind,
                        m.distance as i64,
                        m.variant,
                    ])?;
                }
                let details = created_audit_details(r);
                ins_audit.execute(params![id, r.detected_at_ms, r.actor, details])?;
                ids.push(id);
            }
        }
        // synchronous=FULL in WAL mode: the commit is fsynced before this returns.
        tx.commit()?;
        Ok(ids)
    }

    fn get(&self, id: &str) -> Result<ReportRecord, StoreError> {
        let conn = self.lock();
        get_in(&conn, id)
    }

    fn list(&self, filter: &ReportFilter) -> Result<ReportPage, StoreError> {
        let query = list_query(filter, '?')?;
        let args = query.args.into_iter().map(|a| match a {
            SqlArg::Text(s) => rusqlite::types::Value::Text(s),
            SqlArg::Int(i) => rusqlite::types::Value::Integer(i),
        });
        let conn = self.lock();
        let mut st = conn.prepare(&query.sql)?;
        let mut reports: Vec<ReportRecord> = st
            .query_map(rusqlite::params_from_iter(args), |row| report_from_row(row))?
            .collect::<Result<_, _>>()?;
        let next_page_token = finish_page(&mut reports, query.page_size);
        for r in &mut reports {
            load_children(&conn, r, false)?;
        }
        Ok(ReportPage {
            reports,
            next_page_token,
        })
    }

    fn update(
        &self,
        id: &str,
        update: &ReportUpdate,
        actor: &str,
        now_ms: i64,
    ) -> Result<ReportRecord, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let current = get_in(&tx, id)?;
        let ReviewedFields {
            status,
            viewed,
            classification,
            audit_details,
        } = review_update(id, &current, update)?;
        tx.execute(
            "UPDATE reports SET status = ?2, viewed = ?3, classification = ?4, reviewer = ?5, \
             updated_at_ms = ?6 WHERE id = ?1",
            params![
                id,
                status.as_str(),
                viewed.map(i64::from),
                classification,
                actor,
                now_ms
            ],
        )?;
        let first_seq = next_seq(&tx, "report_annotations", id)?;
        for (seq, a) in (first_seq..).zip(&update.add_annotations) {
            tx.execute(
                "INSERT INTO report_annotations (report_id, seq, body) VALUES (?1, ?2, ?3)",
                params![id, seq, a],
            )?;
        }
        let audit_seq = next_seq(&tx, "report_audit", id)?;
        tx.execute(
            "INSERT INTO report_audit (report_id, seq, at_ms, actor, action, details) \
             VALUES (?1, ?2, ?3, ?4, 'updated', ?5)",
            params![id, audit_seq, now_ms, actor, audit_details],
        )?;
        let updated = get_in(&tx, id)?;
        tx.commit()?;
        Ok(updated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stub(ms: i64, list: &str) -> NewReport {
        NewReport {
            detected_at_ms: ms,
            reporting_org: "Example".into(),
            source: "image".into(),
            md5: "00".repeat(16),
            actor: "pipe".into(),
            matches: vec![StoredMatch {
                id: "e1".into(),
                list: list.into(),
                category: "A1".into(),
                note: None,
                kind: "pdq".into(),
                distance: 3,
                variant: Some("rot90".into()),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn create_get_list_update_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite");
        let store = SqliteReportStore::open(&path).unwrap();
        let ids = store
            .create_many(&[stub(1000, "a"), stub(2000, "b"), stub(3000, "a")])
            .unwrap();
        let r = store.get(&ids[0]).unwrap();
        assert_eq!(r.preservation_deadline_ms, 1000 + PRESERVATION_MS);
        assert_eq!(r.matches[0].variant.as_deref(), Some("rot90"));
        assert_eq!(r.status, ReportStatus::Pending);
        assert_eq!(r.audit.len(), 1);

        // Paging newest first, two per page, filtered by list.
        let mut f = ReportFilter {
            page_size: 1,
            list: Some("a".into()),
            ..Default::default()
        };
        let p1 = store.list(&f).unwrap();
        assert_eq!(p1.reports[0].id, ids[2]);
        f.page_token = p1.next_page_token.clone();
        let p2 = store.list(&f).unwrap();
        assert_eq!(p2.reports[0].id, ids[0]);
        assert!(p2.next_page_token.is_none());

        // Confirming needs viewed = true.
        let confirm = ReportUpdate {
            status: Some(ReportStatus::Confirmed),
            ..Default::default()
        };
        assert!(matches!(
            store.update(&ids[1], &confirm, "rev", 5000),
            Err(StoreError::Rejected { .. })
        ));
        let u = ReportUpdate {
            status: Some(ReportStatus::Confirmed),
            viewed: Some(true),
            classification: Some("B1".into()),
            add_annotations: vec!["checked".into()],
        };
        let r = store.update(&ids[1], &u, "rev", 5000).unwrap();
        assert_eq!(r.status, ReportStatus::Confirmed);
        assert_eq!(r.audit.len(), 2);
        assert_eq!(r.audit[1].actor, "rev");
        drop(store);

        let store = SqliteReportStore::open(&path).unwrap();
        let r = store.get(&ids[1]).unwrap();
        assert_eq!(r.annotations, vec!["checked".to_string()]);
        assert_eq!(r.classification.as_deref(), Some("B1"));
        assert!(matches!(store.get("nope"), Err(StoreError::NotFound(_))));
        let f = ReportFilter {
            status: Some(ReportStatus::Pending),
            page_size: 10,
            ..Default::default()
        };
        assert_eq!(store.list(&f).unwrap().reports.len(), 2);
    }
}
