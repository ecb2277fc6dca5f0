//! sigil-reports: report stubs, what the matcher records when something
//! matched, for a human reviewer to complete into a CyberTipline report;
//! and where they are kept. Used by the server (`sigil serve`), `sigil
//! reports` and `sigil scan --reports`, so every front end reads and writes
//! stubs by the same rules.
//!
//! [`ReportStore`] is the seam for storage backends: [`SqliteReportStore`]
//! (embedded, WAL, `synchronous=FULL`) and, with the `postgres` cargo
//! feature, `PgReportStore` (one store shared by every replica). Both are
//! the same SQL store: one description of the tables (`sql.rs`) gives both
//! dialects their DDL and statements, and the store logic (what a create,
//! a get, a listing and an update read and write, `ops.rs`) is written once
//! over it; a backend adds only its connection handling. A stub is
//! committed before `create_many` returns, so an acknowledged match
//! survives a crash. No image bytes or pixels ever enter a stub.
//!
//! The methods are synchronous; an async caller runs them off its async
//! threads, bounded by [`ReportStore::parallelism`].

mod config;
pub mod export;
mod ops;
pub mod output;
#[cfg(feature = "postgres")]
mod postgres;
pub mod review;
mod sql;
mod sqlite;
pub mod time;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use sigil_match::MatchedEntry;

pub use config::{ReportsBackend, ReportsConfig};
#[cfg(feature = "postgres")]
pub use postgres::{PgOptions, PgReportStore};
pub use review::Conflict;
pub use sqlite::SqliteReportStore;

/// The preservation period required by 18 U.S.C. 2258A as amended by the
/// REPORT Act, in days: the least `reports.retention_days` may be, and its
/// default.
pub const LEGAL_RETENTION_DAYS: u32 = 365;

/// [`LEGAL_RETENTION_DAYS`] in milliseconds.
pub const PRESERVATION_MS: i64 = retention_ms(LEGAL_RETENTION_DAYS);

/// A retention period of `days`, in milliseconds.
pub const fn retention_ms(days: u32) -> i64 {
    days as i64 * 24 * 3600 * 1000
}

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
    /// The update was made against an older version of the stub (see
    /// [`review`]): nothing was written.
    #[error("report {id:?} {conflict}")]
    Conflict { id: String, conflict: Box<Conflict> },
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportStatus {
    #[default]
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

    /// Every status, in review order.
    pub const ALL: [ReportStatus; 4] = [
        ReportStatus::Pending,
        ReportStatus::Confirmed,
        ReportStatus::Dismissed,
        ReportStatus::Reported,
    ];

    /// Dismissed and reported stubs are closed: review is over, a new
    /// sighting of the same content opens a new stub, and once past its
    /// preservation deadline the stub may be pruned.
    pub fn is_closed(self) -> bool {
        matches!(self, ReportStatus::Dismissed | ReportStatus::Reported)
    }
}

impl std::str::FromStr for ReportStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ReportStatus::parse(&s.to_ascii_lowercase()).ok_or_else(|| {
            format!("unknown status {s:?}: expected pending, confirmed, dismissed or reported")
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

/// A match as a stub records it: its kind and variant by name.
impl From<&MatchedEntry> for StoredMatch {
    fn from(m: &MatchedEntry) -> Self {
        StoredMatch {
            id: m.id.clone(),
            list: m.list.clone(),
            category: m.category.clone(),
            note: m.note.clone(),
            kind: m.kind.as_str().to_string(),
            distance: m.distance,
            variant: m.variant.map(|v| v.as_str().to_string()),
        }
    }
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
    /// The identity of the index generation that matched (16 hex digits,
    /// `sigil_index::IndexIdentity`).
    pub index_identity: String,
}

/// The key that makes repeated sightings one stub: the content (its
/// SHA-256 when known; else the caller's content reference; else the
/// submitted hash itself) and the matched entries (list and entry id, in
/// any order), hashed. Two sightings with equal keys while a stub of that
/// key is open (pending or confirmed) are one stub with two occurrences.
pub fn dedup_key(r: &NewReport) -> String {
    use sha2::{Digest, Sha256};
    let content = if !r.sha256.is_empty() {
        format!("sha256:{}", r.sha256.to_ascii_lowercase())
    } else if !r.content_ref.is_empty() {
        format!("ref:{}", r.content_ref)
    } else {
        let hashes = [("pdq", &r.pdq), ("md5", &r.md5), ("sha1", &r.sha1)];
        let known: Vec<String> = hashes
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}:{}", v.to_ascii_lowercase()))
            .collect();
        known.join(",")
    };
    let mut entries: Vec<(&str, &str)> = r
        .matches
        .iter()
        .map(|m| (m.list.as_str(), m.id.as_str()))
        .collect();
    entries.sort_unstable();
    entries.dedup();
    let mut h = Sha256::new();
    // Lengths before values: no two different inputs make the same bytes.
    for part in
        std::iter::once(content.as_str()).chain(entries.iter().flat_map(|(l, id)| [*l, *id]))
    {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    format!("v1:{:x}", h.finalize())
}

/// One audit-trail entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub details_json: String,
}

/// One sighting of a stub's content: the first is the detection that
/// opened the stub, each later one a repeated match of the same content
/// and entries while the stub was open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Occurrence {
    pub at_ms: i64,
    pub submitter_ref: String,
    pub content_ref: String,
    /// Who sent it (API key name, or the scanning tool).
    pub actor: String,
}

/// What `create_many` did with one [`NewReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Filing {
    /// A new stub.
    Opened,
    /// A repeated sighting: an occurrence added to the open stub of the
    /// same content and entries.
    Sighted,
    /// This sighting (same submitter and content reference) was already on
    /// the open stub: nothing written (a resumed scan, a retried call).
    AlreadyRecorded,
}

impl Filing {
    pub fn as_str(self) -> &'static str {
        match self {
            Filing::Opened => "opened",
            Filing::Sighted => "sighted",
            Filing::AlreadyRecorded => "already_recorded",
        }
    }
}

/// A stub id and what happened to the sighting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Filed {
    pub id: String,
    pub filing: Filing,
}

/// A stored stub.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReportRecord {
    pub id: String,
    /// Starts at 1, one more with each reviewer's update (optimistic
    /// concurrency: [`ReportUpdate::expected_version`]).
    pub version: i64,
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
    /// Every sighting, oldest first (the detection itself first). Filled by
    /// `get` and `update`; listings carry the count only.
    pub occurrences: Vec<Occurrence>,
    /// How many sightings the stub has.
    pub occurrence_count: u32,
    /// The identity of the index generation that matched; `None` for stubs
    /// stored before sigil recorded it.
    pub index_identity: Option<String>,
}

/// The order of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListOrder {
    /// Newest detection first.
    #[default]
    Newest,
    /// Earliest preservation deadline first: a review queue.
    Deadline,
}

/// Listing filters (all optional; they combine with AND).
#[derive(Debug, Clone, Default)]
pub struct ReportFilter {
    pub status: Option<ReportStatus>,
    pub detected_after_ms: Option<i64>,
    pub detected_before_ms: Option<i64>,
    /// Only stubs whose preservation deadline is at or after this time.
    pub deadline_after_ms: Option<i64>,
    /// Only stubs with a match on this list.
    pub list: Option<String>,
    /// Only stubs with a match of this category.
    pub category: Option<String>,
    /// Only stubs first sighted for this submitter reference.
    pub submitter_ref: Option<String>,
    pub order: ListOrder,
    pub page_size: usize,
    /// From a previous page of the same filter and order.
    pub page_token: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct ReportPage {
    pub reports: Vec<ReportRecord>,
    pub next_page_token: Option<String>,
}

/// How many stubs match a filter (its status and paging aside), by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReportCounts {
    pub pending: u64,
    pub confirmed: u64,
    pub dismissed: u64,
    pub reported: u64,
}

impl ReportCounts {
    pub fn total(&self) -> u64 {
        self.pending + self.confirmed + self.dismissed + self.reported
    }
    pub fn of(&self, status: ReportStatus) -> u64 {
        match status {
            ReportStatus::Pending => self.pending,
            ReportStatus::Confirmed => self.confirmed,
            ReportStatus::Dismissed => self.dismissed,
            ReportStatus::Reported => self.reported,
        }
    }
    fn slot(&mut self, status: ReportStatus) -> &mut u64 {
        match status {
            ReportStatus::Pending => &mut self.pending,
            ReportStatus::Confirmed => &mut self.confirmed,
            ReportStatus::Dismissed => &mut self.dismissed,
            ReportStatus::Reported => &mut self.reported,
        }
    }
}

/// A reviewer's changes; `None` leaves a field as it is. The rules they
/// must follow are [`review`]'s.
#[derive(Debug, Clone, Default)]
pub struct ReportUpdate {
    pub status: Option<ReportStatus>,
    pub viewed: Option<bool>,
    /// "A1", "A2", "B1" or "B2".
    pub classification: Option<String>,
    pub add_annotations: Vec<String>,
    /// The stub's version the reviewer saw; when the stub has changed
    /// since, the update is refused with [`StoreError::Conflict`]. `None`:
    /// apply to whatever version is current.
    pub expected_version: Option<i64>,
}

impl ReportUpdate {
    /// True when the update would change nothing.
    pub fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.viewed.is_none()
            && self.classification.is_none()
            && self.add_annotations.is_empty()
    }
}

/// Storage of report stubs. Implementations must make `create_many`
/// durable (committed to stable storage) before returning.
pub trait ReportStore: Send + Sync + 'static {
    /// Files sightings in one transaction: each opens a stub, or is added
    /// to the open stub of the same content and matched entries (see
    /// [`dedup_key`]). Returns the stub ids and what happened, in order.
    fn create_many(&self, reports: &[NewReport]) -> Result<Vec<Filed>, StoreError>;
    /// One stub with its audit trail and occurrences.
    fn get(&self, id: &str) -> Result<ReportRecord, StoreError>;
    /// Filtered and paged, in the filter's order.
    fn list(&self, filter: &ReportFilter) -> Result<ReportPage, StoreError>;
    /// How many stubs match `filter` (its status, order and paging
    /// ignored), by status.
    fn counts(&self, filter: &ReportFilter) -> Result<ReportCounts, StoreError>;
    /// Closed stubs (dismissed or reported) whose preservation deadline
    /// passed before `now_ms`, oldest deadline first, without children;
    /// with `apply`, deleted with their matches, annotations, occurrences
    /// and audit trails, in one transaction.
    fn prune(&self, now_ms: i64, apply: bool) -> Result<Vec<ReportRecord>, StoreError>;
    /// Applies a reviewer's update under the [`review`] rules, appends it
    /// to the audit trail, and returns the updated stub.
    fn update(
        &self,
        id: &str,
        update: &ReportUpdate,
        actor: &str,
        now_ms: i64,
    ) -> Result<ReportRecord, StoreError>;
    /// Calls the store can serve at once; more would only wait on its own
    /// lock or pool. The server runs at most this many.
    fn parallelism(&self) -> usize {
        1
    }
}

/// Removes the password from a connection URL so it can appear in errors
/// and logs.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.rsplit_once('@') {
            let user = userinfo.split(':').next().unwrap_or("");
            return format!("{scheme}://{user}@{host}");
        }
    }
    // key=value form: drop any password=... pair.
    url.split_whitespace()
        .filter(|kv| !kv.to_ascii_lowercase().starts_with("password="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Opens the store `config` describes, its preservation deadlines
/// `reports.retention_days` after detection. A PostgreSQL store needs the
/// `postgres` cargo feature; without it, it is refused with an error that
/// says so.
pub fn open(config: &ReportsConfig) -> Result<Arc<dyn ReportStore>, StoreError> {
    let days = config.retention_days;
    match config.backend {
        ReportsBackend::Sqlite => Ok(Arc::new(
            SqliteReportStore::open(&config.path)?.with_retention_days(days),
        )),
        #[cfg(feature = "postgres")]
        ReportsBackend::Postgres => Ok(Arc::new(
            PgReportStore::connect(
                config.postgres_url.as_deref().unwrap_or_default(),
                PgOptions::default(),
            )?
            .with_retention_days(days),
        )),
        #[cfg(not(feature = "postgres"))]
        ReportsBackend::Postgres => Err(StoreError::Backend(
            "reports.backend = \"postgres\": this build of sigil has no PostgreSQL support \
             (build sigil-reports with the cargo feature `postgres`, which sigil-cli enables \
             by default)"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the feature, a PostgreSQL store is refused, naming it.
    #[cfg(not(feature = "postgres"))]
    #[test]
    fn postgres_needs_the_feature() {
        let config = ReportsConfig {
            backend: ReportsBackend::Postgres,
            postgres_url: Some("postgres://sigil@127.0.0.1:1/sigil".into()),
            ..ReportsConfig::default()
        };
        let err = open(&config).err().expect("refused").to_string();
        assert!(err.contains("cargo feature `postgres`"), "{err}");
    }

    /// `reports.retention_days` sets the preservation deadline.
    #[test]
    fn retention_days_set_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let config = ReportsConfig {
            path: dir.path().join("r.db"),
            retention_days: 400,
            ..ReportsConfig::default()
        };
        let store = open(&config).unwrap();
        let new = NewReport {
            detected_at_ms: 1_000,
            ..NewReport::default()
        };
        let id = store.create_many(&[new]).unwrap().remove(0).id;
        let r = store.get(&id).unwrap();
        assert_eq!(r.preservation_deadline_ms, 1_000 + 400 * 86_400_000);
    }

    fn sighting(sha256: &str, content_ref: &str, entries: &[(&str, &str)]) -> NewReport {
        NewReport {
            sha256: sha256.into(),
            content_ref: content_ref.into(),
            pdq: "ab".repeat(32),
            matches: entries
                .iter()
                .map(|(list, id)| StoredMatch {
                    id: id.to_string(),
                    list: list.to_string(),
                    category: "A1".into(),
                    note: None,
                    kind: "pdq".into(),
                    distance: 0,
                    variant: None,
                })
                .collect(),
            ..NewReport::default()
        }
    }

    /// The key is the content and the set of entries: the SHA-256 first,
    /// the content reference without one, entries in any order.
    #[test]
    fn dedup_key_is_content_and_entries() {
        let a = [("ncmec", "e1"), ("iwf", "e2")];
        let b = [("iwf", "e2"), ("ncmec", "e1")];
        let k = dedup_key(&sighting("00ff", "path/a", &a));
        assert_eq!(k, dedup_key(&sighting("00FF", "path/b", &b)));
        assert_ne!(k, dedup_key(&sighting("00fe", "path/a", &a)));
        assert_ne!(k, dedup_key(&sighting("00ff", "path/a", &a[..1])));
        // Hashes only: the content reference is the content.
        let h = dedup_key(&sighting("", "upload-1", &a));
        assert_eq!(h, dedup_key(&sighting("", "upload-1", &b)));
        assert_ne!(h, dedup_key(&sighting("", "upload-2", &a)));
        // Lengths are part of the key: ("ab","c") is not ("a","bc").
        assert_ne!(
            dedup_key(&sighting("x", "", &[("ab", "c")])),
            dedup_key(&sighting("x", "", &[("a", "bc")]))
        );
    }
}
