//! Report stubs and where they are kept.
//!
//! [`ReportStore`] is the seam for storage backends: [`SqliteReportStore`]
//! (embedded, WAL, `synchronous=FULL`) and, with the `postgres` cargo
//! feature, `PgReportStore` (one store shared by every replica). Both are
//! the same SQL store: one description of the tables (`sql.rs`) gives both
//! dialects their DDL and statements, and the store logic (what a create,
//! a get, a listing and an update read and write, `ops.rs`) is written once
//! over it; a backend adds only its connection handling. A stub is committed before
//! the matching response is sent, so an acknowledged match survives a
//! crash. No image bytes or pixels ever enter a stub.
//!
//! The methods are synchronous; the server calls them off the async
//! threads, bounded by [`ReportStore::parallelism`]
//! (`crate::exec::store_calls`).

pub mod export;
mod ops;
#[cfg(feature = "postgres")]
mod postgres;
mod sql;
mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use sigil_match::MatchedEntry;

use crate::config::{ReportsBackend, ReportsConfig};
#[cfg(feature = "postgres")]
pub use postgres::{redact_url, PgOptions, PgReportStore};
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
    /// The identity of the index generation that matched; `None` for stubs
    /// stored before sigil recorded it.
    pub index_identity: Option<String>,
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
    /// lock or pool. The server runs at most this many.
    fn parallelism(&self) -> usize {
        1
    }
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
             (build sigil-server with the cargo feature `postgres`, which sigil-cli enables \
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
        let id = store.create_many(&[new]).unwrap().remove(0);
        let r = store.get(&id).unwrap();
        assert_eq!(r.preservation_deadline_ms, 1_000 + 400 * 86_400_000);
    }
}
