//! SQLite backend of [`ReportStore`]: an embedded database file, in WAL
//! mode with `synchronous=FULL` so every commit is on disk when it
//! returns; one connection behind a mutex.
//!
//! Schema versions (`PRAGMA user_version`): 3 is the tables as
//! `sql::TABLES` describes them. 2 lacks the occurrences table and the
//! `version` and `open_key` columns (`sql::ADDED_COLUMNS`): opening it adds
//! them, its stubs at version 1 and without an open key (a new sighting of
//! their content opens a new stub). 1 is a database created before the
//! table description existed, by a DDL without the `reports_deadline`
//! index and without `ON DELETE CASCADE` on the child tables' foreign keys:
//! opening it also creates the index, and the foreign keys stay as they
//! are (SQLite cannot alter a constraint without rebuilding the tables, a
//! copy of every stub not worth its risk), which is why pruning deletes a
//! stub's children first. A version newer than 3 is refused.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::types::{ToSqlOutput, Value as Sqlite};
use rusqlite::{params_from_iter, Connection, ToSql, Transaction, TransactionBehavior};

use crate::ops;
use crate::sql::{Column, Dialect, Row, Tx, Type, Value, ADDED_COLUMNS};
use crate::{
    retention_ms, Filed, NewReport, ReportCounts, ReportFilter, ReportPage, ReportRecord,
    ReportStore, ReportUpdate, StoreError, LEGAL_RETENTION_DAYS,
};

/// The schema this code creates.
const SCHEMA_VERSION: i64 = 3;
/// A database created by the DDL before the table description.
const LEGACY_VERSION: i64 = 1;

/// Report stubs in an embedded SQLite database.
pub struct SqliteReportStore {
    conn: Mutex<Connection>,
    retention_ms: i64,
}

impl SqliteReportStore {
    /// Opens (creating or migrating if needed) the database at `path`, in
    /// WAL mode with `synchronous=FULL` so every commit is on disk when it
    /// returns. Stubs are preserved for [`LEGAL_RETENTION_DAYS`] unless
    /// [`SqliteReportStore::with_retention_days`] says otherwise.
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
        migrate(&conn).map_err(|e| match e {
            StoreError::Sql(source) => err(source),
            other => other,
        })?;
        Ok(SqliteReportStore {
            conn: Mutex::new(conn),
            retention_ms: retention_ms(LEGAL_RETENTION_DAYS),
        })
    }

    /// Preserves new stubs for `days` after their detection.
    pub fn with_retention_days(mut self, days: u32) -> Self {
        self.retention_ms = retention_ms(days);
        self
    }

    /// Runs `body` in a transaction and commits it.
    fn with_tx<T>(
        &self,
        body: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A panic while holding the lock cannot leave a half-applied
        // transaction (rusqlite rolls back on drop), so poisoning is moot.
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        // IMMEDIATE: the write lock is taken at BEGIN, so another process
        // on the same file (`sigil scan --reports` beside `sigil serve`)
        // waits its turn (busy timeout) instead of failing at the first
        // write of a read-then-write transaction.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let v = body(&mut SqliteTx(&tx))?;
        // synchronous=FULL in WAL mode: the commit is fsynced before this returns.
        tx.commit()?;
        Ok(v)
    }
}

/// Creates the tables and indexes that are missing and records the
/// schema version (see the module's doc).
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "report database schema version {version} is newer than this sigil's \
             ({SCHEMA_VERSION}); use a newer sigil"
        )));
    }
    let existed: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'reports'",
        [],
        |r| r.get(0),
    )?;
    conn.execute_batch(&Dialect::Sqlite.tables())?;
    let mut have = Vec::new();
    {
        let mut st = conn.prepare("SELECT name FROM pragma_table_info('reports')")?;
        for name in st.query_map([], |r| r.get::<_, String>(0))? {
            have.push(name?);
        }
    }
    for column in ADDED_COLUMNS {
        if !have.iter().any(|h| h == column) {
            conn.execute_batch(&Dialect::Sqlite.add_column(column))?;
        }
    }
    conn.execute_batch(&Dialect::Sqlite.indexes())?;
    let version = match version {
        0 if existed => LEGACY_VERSION,
        LEGACY_VERSION => LEGACY_VERSION,
        _ => SCHEMA_VERSION,
    };
    conn.pragma_update(None, "user_version", version)?;
    Ok(())
}

/// SQLite binds every integer as `i64` and a boolean as 0/1.
impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Owned(match self {
            Value::Text(Some(s)) => Sqlite::Text(s.clone()),
            Value::BigInt(v) => Sqlite::Integer(*v),
            Value::Int(Some(v)) => Sqlite::Integer(i64::from(*v)),
            Value::Bool(Some(v)) => Sqlite::Integer(i64::from(*v)),
            Value::Text(None) | Value::Int(None) | Value::Bool(None) => Sqlite::Null,
        }))
    }
}

/// Reads column `i` as a value of type `ty` (NULL allowed: the row
/// mapping refuses it where the column is NOT NULL).
fn read(row: &rusqlite::Row<'_>, i: usize, ty: Type) -> rusqlite::Result<Value> {
    let int = |i| row.get::<_, Option<i64>>(i);
    Ok(match ty {
        Type::Text => Value::Text(row.get(i)?),
        Type::BigInt => Value::BigInt(row.get(i)?),
        Type::Int => Value::Int(int(i)?.map(|v| v as u32)),
        Type::Bool => Value::Bool(int(i)?.map(|v| v != 0)),
    })
}

struct SqliteTx<'a>(&'a Transaction<'a>);

impl Tx for SqliteTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<(), StoreError> {
        self.0
            .prepare_cached(sql)?
            .execute(params_from_iter(args))?;
        Ok(())
    }

    fn query(
        &mut self,
        sql: &str,
        args: &[Value],
        columns: &[Column],
    ) -> Result<Vec<Row>, StoreError> {
        let mut st = self.0.prepare_cached(sql)?;
        let rows = st.query_map(params_from_iter(args), |row| {
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| read(row, i, c.ty))
                .collect::<rusqlite::Result<Vec<Value>>>()
        })?;
        Ok(rows
            .map(|r| r.map(Row::from))
            .collect::<rusqlite::Result<_>>()?)
    }
}

impl ReportStore for SqliteReportStore {
    fn create_many(&self, reports: &[NewReport]) -> Result<Vec<Filed>, StoreError> {
        self.with_tx(|tx| ops::create_many(tx, reports, self.retention_ms))
    }

    fn counts(&self, filter: &ReportFilter) -> Result<ReportCounts, StoreError> {
        self.with_tx(|tx| ops::counts(tx, filter))
    }

    fn prune(&self, now_ms: i64, apply: bool) -> Result<Vec<ReportRecord>, StoreError> {
        self.with_tx(|tx| ops::prune(tx, now_ms, apply))
    }

    fn get(&self, id: &str) -> Result<ReportRecord, StoreError> {
        self.with_tx(|tx| ops::get(tx, id, false))
    }

    fn list(&self, filter: &ReportFilter) -> Result<ReportPage, StoreError> {
        self.with_tx(|tx| ops::list(tx, filter))
    }

    fn update(
        &self,
        id: &str,
        update: &ReportUpdate,
        actor: &str,
        now_ms: i64,
    ) -> Result<ReportRecord, StoreError> {
        self.with_tx(|tx| ops::update(tx, id, update, actor, now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ReportStatus, StoredMatch, PRESERVATION_MS};

    fn stub(ms: i64, list: &str) -> NewReport {
        NewReport {
            detected_at_ms: ms,
            reporting_org: "Example".into(),
            source: "image".into(),
            md5: "00".repeat(16),
            sha256: format!("{ms:064x}"),
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
            .unwrap()
            .into_iter()
            .map(|f| f.id)
            .collect::<Vec<_>>();
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
            expected_version: Some(1),
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

    /// The DDL of the SQLite store before the one schema description (as
    /// it was written then): no `ON DELETE CASCADE`, no `reports_deadline`
    /// index, no occurrences, versions or open keys.
    const LEGACY_DDL: &str = "
CREATE TABLE reports (id TEXT NOT NULL, status TEXT NOT NULL, incident_type TEXT NOT NULL,
    detected_at_ms BIGINT NOT NULL, preservation_deadline_ms BIGINT NOT NULL,
    reporting_org TEXT NOT NULL, reporting_email TEXT NOT NULL, submitter_ref TEXT NOT NULL,
    content_ref TEXT NOT NULL, file_name TEXT NOT NULL, source TEXT NOT NULL, md5 TEXT NOT NULL,
    sha1 TEXT NOT NULL, sha256 TEXT NOT NULL, pdq TEXT NOT NULL, quality INTEGER,
    viewed INTEGER, classification TEXT, reviewer TEXT, updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (id));
CREATE TABLE report_matches (report_id TEXT NOT NULL REFERENCES reports (id),
    seq INTEGER NOT NULL, entry_id TEXT NOT NULL, list TEXT NOT NULL, category TEXT NOT NULL,
    note TEXT, kind TEXT NOT NULL, distance INTEGER NOT NULL, variant TEXT,
    PRIMARY KEY (report_id, seq));
CREATE TABLE report_annotations (report_id TEXT NOT NULL REFERENCES reports (id),
    seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (report_id, seq));
CREATE TABLE report_audit (report_id TEXT NOT NULL REFERENCES reports (id),
    seq INTEGER NOT NULL, at_ms BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    details TEXT NOT NULL, PRIMARY KEY (report_id, seq));
CREATE INDEX reports_detected ON reports (detected_at_ms, id);
CREATE INDEX report_matches_list ON report_matches (list, report_id);
INSERT INTO reports VALUES ('rpt_old', 'reported', 'x', 5, 6, 'org', '', '', '', '', 'image',
    '', '', '', '', 80, 1, 'A2', 'rev', 7);
INSERT INTO report_matches VALUES ('rpt_old', 0, 'e', 'ncmec', 'A1', NULL, 'md5', 0, NULL);
INSERT INTO report_audit VALUES ('rpt_old', 0, 5, 'pipe', 'created', '{}');";

    /// A database made by the old DDL opens with its stubs, gains the
    /// deadline index, is marked version 1, and takes new stubs and
    /// reviews; a database from a newer sigil is refused.
    #[test]
    fn legacy_database_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(LEGACY_DDL)
            .unwrap();
        let store = SqliteReportStore::open(&path).unwrap();
        let old = store.get("rpt_old").unwrap();
        assert_eq!(
            (old.status, old.viewed, old.quality),
            (ReportStatus::Reported, Some(true), Some(80))
        );
        assert_eq!(old.matches[0].kind, "md5");
        assert_eq!(old.version, 1);
        // A closed, expired legacy stub is pruned despite the missing
        // cascade: its children go first.
        assert_eq!(store.prune(7, true).unwrap().len(), 1);
        assert!(matches!(store.get("rpt_old"), Err(StoreError::NotFound(_))));
        let id = store.create_many(&[stub(9, "a")]).unwrap().remove(0).id;
        let u = ReportUpdate {
            add_annotations: vec!["n".into()],
            ..Default::default()
        };
        assert_eq!(store.update(&id, &u, "rev", 10).unwrap().annotations, ["n"]);
        drop(store);
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, LEGACY_VERSION);
        let indexed: bool = conn
            .query_row(
                "SELECT COUNT(*) = 1 FROM sqlite_master WHERE name = 'reports_deadline'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(indexed);

        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        let err = SqliteReportStore::open(&path).err().expect("refused");
        assert!(err.to_string().contains("newer"), "{err}");
    }

    /// A database of schema version 2 (what every server wrote before
    /// occurrences and versions) becomes version 3: its stubs read back at
    /// version 1 and are reviewed under the version check; a new sighting
    /// of their content opens a new stub (they have no open key).
    #[test]
    fn version_2_database_is_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(LEGACY_DDL).unwrap();
        conn.execute_batch(
            "UPDATE reports SET status = 'pending', viewed = NULL, classification = NULL;
             CREATE INDEX reports_deadline ON reports (preservation_deadline_ms);",
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        drop(conn);
        let store = SqliteReportStore::open(&path).unwrap();
        let old = store.get("rpt_old").unwrap();
        assert_eq!((old.version, old.occurrence_count), (1, 0));
        let stale = ReportUpdate {
            viewed: Some(true),
            expected_version: Some(0),
            ..Default::default()
        };
        assert!(matches!(
            store.update("rpt_old", &stale, "rev", 8),
            Err(StoreError::Conflict { .. })
        ));
        let fresh = ReportUpdate {
            expected_version: Some(1),
            ..stale
        };
        assert_eq!(
            store.update("rpt_old", &fresh, "rev", 8).unwrap().version,
            2
        );
        let again = NewReport {
            md5: String::new(),
            ..stub(9, "ncmec")
        };
        let filed = store.create_many(&[again.clone(), again]).unwrap();
        assert_ne!(filed[0].id, "rpt_old");
        assert_eq!(filed[1].filing, crate::Filing::AlreadyRecorded);
        drop(store);
        let version: i64 = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    /// A new database is created at the current version.
    #[test]
    fn new_database_has_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        drop(SqliteReportStore::open(&path).unwrap());
        drop(SqliteReportStore::open(&path).unwrap());
        let version: i64 = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }
}
