//! PostgreSQL backend of [`ReportStore`]: one report store shared by every
//! replica of the matcher.
//!
//! Same data model and rules as the SQLite store (the shared test suite in
//! `tests/report_store_pg.rs` runs against both). Durability: a stub is
//! acknowledged only after `COMMIT` returns, and PostgreSQL's default
//! `synchronous_commit = on` has flushed the WAL by then, so an acknowledged
//! stub survives a crash of the server or of the database.
//!
//! The trait is synchronous (the server calls it from `spawn_blocking`), so
//! this uses the blocking `postgres` client with a small connection pool.
//! Losing the database while running is not fatal: the failing call returns
//! [`StoreError::Unavailable`] (the server answers UNAVAILABLE and the caller
//! retries), the broken connection is dropped, and the next call reconnects.
//! A call whose `BEGIN` fails on a stale pooled connection is retried once on
//! a fresh connection, which is safe because nothing was sent yet.

use std::convert::Infallible;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Config, Row, Transaction};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::{
    NewReport, ReportFilter, ReportPage, ReportRecord, ReportStatus, ReportStore, ReportUpdate,
    StoreError, INCIDENT_TYPE, PRESERVATION_MS,
};
use crate::store_sql::{
    audit_from_row, created_audit_details, finish_page, list_query, match_from_row, new_report_id,
    report_from_row, review_update, ReviewedFields, RowValues, SqlArg, AUDIT_COLUMNS,
    MATCH_COLUMNS, REPORT_COLUMNS,
};

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Most connections this store opens at once.
    pub max_connections: usize,
    /// Give up connecting after this long (an unreachable server must not
    /// hang start-up or a request).
    pub connect_timeout: Duration,
    /// Time without acknowledgement after which a connection counts as dead
    /// (TCP_USER_TIMEOUT), so a vanished server is noticed mid-query.
    pub tcp_user_timeout: Duration,
    /// Schema for sigil's tables (created if missing); `None` uses the
    /// role's default search path. Tests use a fresh schema each.
    pub schema: Option<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 8,
            connect_timeout: Duration::from_secs(5),
            tcp_user_timeout: Duration::from_secs(10),
            schema: None,
        }
    }
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
    viewed BOOLEAN,
    classification TEXT,
    reviewer TEXT,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_detected ON reports (detected_at_ms, id);
CREATE INDEX IF NOT EXISTS reports_deadline ON reports (preservation_deadline_ms);
CREATE TABLE IF NOT EXISTS report_matches (
    report_id TEXT NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
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
    report_id TEXT NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (report_id, seq)
);
CREATE TABLE IF NOT EXISTS report_audit (
    report_id TEXT NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    details TEXT NOT NULL,
    PRIMARY KEY (report_id, seq)
);
";

/// Report stubs in a PostgreSQL database.
pub struct PgReportStore {
    config: Config,
    tls: MakeRustlsConnect,
    /// The URL with any password removed, for messages.
    display_url: String,
    opts: PgOptions,
    pool: Mutex<Pool>,
    returned: Condvar,
}

struct Pool {
    idle: Vec<Client>,
    /// Connections checked out plus idle ones.
    open: usize,
}

/// A checked-out connection; goes back to the pool on drop unless broken.
struct Lease<'a> {
    store: &'a PgReportStore,
    client: Option<Client>,
}

impl Lease<'_> {
    fn client(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .expect("lease holds a client until dropped")
    }
    /// Closes the connection instead of returning it to the pool.
    fn discard(&mut self) {
        self.client = None;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut pool = self.store.lock_pool();
        match self.client.take() {
            Some(c) if !c.is_closed() => pool.idle.push(c),
            _ => pool.open -= 1,
        }
        self.store.returned.notify_one();
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

/// True when `e` means the connection (not the statement) failed: the
/// server is unreachable, restarting, or the socket broke.
fn is_connection_error(e: &postgres::Error) -> bool {
    match e.code() {
        Some(code) => {
            *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::TOO_MANY_CONNECTIONS
                || code.code().starts_with("08") // connection_exception class
        }
        None => e.as_db_error().is_none(),
    }
}

impl PgReportStore {
    /// Connects to `url`, creates the schema if needed and returns the
    /// store. Fails with [`StoreError::Unavailable`] naming the (redacted)
    /// URL and the cause when the server cannot be reached, so start-up
    /// stops with a clear message.
    pub fn connect(url: &str, opts: PgOptions) -> Result<Self, StoreError> {
        let display_url = redact_url(url);
        let mut config: Config = url.parse().map_err(|e: postgres::Error| {
            StoreError::Backend(format!(
                "reports.postgres_url {display_url:?} is not a valid PostgreSQL URL: {e}"
            ))
        })?;
        config.connect_timeout(opts.connect_timeout);
        config.tcp_user_timeout(opts.tcp_user_timeout);
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("sigil-server");
        }
        if let Some(schema) = &opts.schema {
            if schema.is_empty()
                || !schema
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(StoreError::Backend(format!(
                    "schema name {schema:?} must be non-empty ASCII letters, digits or '_'"
                )));
            }
        }
        let store = PgReportStore {
            config,
            tls: make_tls()?,
            display_url,
            opts: PgOptions {
                max_connections: opts.max_connections.max(1),
                ..opts
            },
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        };
        let mut lease = store.checkout()?;
        let mut ddl = String::new();
        if let Some(schema) = &store.opts.schema {
            ddl.push_str(&format!("CREATE SCHEMA IF NOT EXISTS {schema};"));
            ddl.push_str(&format!("SET search_path TO {schema};"));
        }
        ddl.push_str(SCHEMA);
        lease
            .client()
            .batch_execute(&ddl)
            .map_err(|e| store.map_err(e, "creating the report schema"))?;
        drop(lease);
        Ok(store)
    }

    /// The URL without its password.
    pub fn display_url(&self) -> &str {
        &self.display_url
    }

    fn lock_pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        // The pool's invariants hold between statements; a panic elsewhere
        // cannot leave it half-updated.
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open_connection(&self) -> Result<Client, StoreError> {
        let mut client = self
            .config
            .connect(self.tls.clone())
            .map_err(|e| self.map_err(e, "connecting"))?;
        if let Some(schema) = &self.opts.schema {
            client
                .batch_execute(&format!("SET search_path TO {schema}"))
                .map_err(|e| self.map_err(e, "setting search_path"))?;
        }
        Ok(client)
    }

    fn checkout(&self) -> Result<Lease<'_>, StoreError> {
        let mut pool = self.lock_pool();
        loop {
            if let Some(client) = pool.idle.pop() {
                return Ok(Lease {
                    store: self,
                    client: Some(client),
                });
            }
            if pool.open < self.opts.max_connections {
                pool.open += 1;
                drop(pool);
                return match self.open_connection() {
                    Ok(client) => Ok(Lease {
                        store: self,
                        client: Some(client),
                    }),
                    Err(e) => {
                        self.lock_pool().open -= 1;
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            let (p, timeout) = self
                .returned
                .wait_timeout(pool, self.opts.connect_timeout)
                .unwrap_or_else(|p| p.into_inner());
            pool = p;
            if timeout.timed_out() && pool.idle.is_empty() && pool.open >= self.opts.max_connections
            {
                return Err(StoreError::Unavailable(format!(
                    "report database {}: all {} connections busy for {:?}",
                    self.display_url, self.opts.max_connections, self.opts.connect_timeout
                )));
            }
        }
    }

    fn map_err(&self, e: postgres::Error, doing: &str) -> StoreError {
        if is_connection_error(&e) {
            StoreError::Unavailable(format!(
                "report database {} unavailable while {doing}: {}",
                self.display_url,
                error_chain(&e)
            ))
        } else {
            StoreError::Backend(format!(
                "report database {} while {doing}: {}",
                self.display_url,
                error_chain(&e)
            ))
        }
    }

    /// Runs `body` in a transaction and commits it. `BEGIN` failing on a
    /// broken pooled connection is retried once on a new connection; any
    /// later connection failure is returned as `Unavailable` (the outcome
    /// of a lost `COMMIT` is unknown, so it is not replayed).
    fn with_tx<T>(
        &self,
        doing: &str,
        mut body: impl FnMut(&mut Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut lease = self.checkout()?;
            let mut stale = false;
            let result = match lease.client().transaction() {
                Err(e) if attempt == 1 && is_connection_error(&e) => {
                    stale = true;
                    Err(self.map_err(e, doing))
                }
                Err(e) => Err(self.map_err(e, doing)),
                Ok(mut tx) => match body(&mut tx) {
                    Ok(v) => tx.commit().map(|()| v).map_err(|e| self.map_err(e, doing)),
                    // Dropping `tx` rolls back.
                    Err(e) => Err(e),
                },
            };
            if matches!(result, Err(StoreError::Unavailable(_))) {
                lease.discard();
            }
            if stale {
                // Nothing reached the server: safe to try once more.
                continue;
            }
            return result;
        }
    }
}

fn error_chain(e: &postgres::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        let msg = inner.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        src = inner.source();
    }
    s
}

fn make_tls() -> Result<MakeRustlsConnect, StoreError> {
    // TLS is used when the URL asks for it (sslmode=require / prefer);
    // server certificates are checked against the system's CA store.
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        // A single unparsable system certificate must not disable TLS.
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StoreError::Backend(format!("TLS setup for the report database: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// PostgreSQL has 32-bit `INTEGER` and `BOOLEAN` columns. `Row::get` panics
/// on a column of another type, which only a schema out of step with this
/// file can cause, so nothing here fails at run time.
impl RowValues for Row {
    type Error = Infallible;
    fn text(&self, i: usize) -> Result<String, Infallible> {
        Ok(self.get(i))
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, Infallible> {
        Ok(self.get(i))
    }
    fn big_int(&self, i: usize) -> Result<i64, Infallible> {
        Ok(self.get(i))
    }
    fn u32(&self, i: usize) -> Result<u32, Infallible> {
        Ok(self.get::<_, i32>(i) as u32)
    }
    fn opt_u32(&self, i: usize) -> Result<Option<u32>, Infallible> {
        Ok(self.get::<_, Option<i32>>(i).map(|q| q as u32))
    }
    fn opt_bool(&self, i: usize) -> Result<Option<bool>, Infallible> {
        Ok(self.get(i))
    }
}

/// Maps `rows` with one of the shared row mappings, which cannot fail here.
fn map_rows<T>(rows: &[Row], from_row: impl Fn(&Row) -> Result<T, Infallible>) -> Vec<T> {
    rows.iter()
        .map(|row| {
            let Ok(v) = from_row(row);
            v
        })
        .collect()
}

fn load_children(
    tx: &mut Transaction<'_>,
    r: &mut ReportRecord,
    with_audit: bool,
) -> Result<(), postgres::Error> {
    let rows = tx.query(
        &format!("SELECT {MATCH_COLUMNS} FROM report_matches WHERE report_id = $1 ORDER BY seq"),
        &[&r.id],
    )?;
    r.matches = map_rows(&rows, match_from_row);
    r.annotations = tx
        .query(
            "SELECT body FROM report_annotations WHERE report_id = $1 ORDER BY seq",
            &[&r.id],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if with_audit {
        let rows = tx.query(
            &format!("SELECT {AUDIT_COLUMNS} FROM report_audit WHERE report_id = $1 ORDER BY seq"),
            &[&r.id],
        )?;
        r.audit = map_rows(&rows, audit_from_row);
    }
    Ok(())
}

impl PgReportStore {
    fn get_in(
        &self,
        tx: &mut Transaction<'_>,
        id: &str,
        lock: bool,
    ) -> Result<ReportRecord, StoreError> {
        let sql = format!(
            "SELECT {REPORT_COLUMNS} FROM reports WHERE id = $1{}",
            if lock { " FOR UPDATE" } else { "" }
        );
        let row = tx
            .query_opt(&sql, &[&id])
            .map_err(|e| self.map_err(e, "reading a report"))?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let Ok(mut r) = report_from_row(&row);
        load_children(tx, &mut r, true).map_err(|e| self.map_err(e, "reading a report"))?;
        Ok(r)
    }
}

impl ReportStore for PgReportStore {
    fn parallelism(&self) -> usize {
        self.opts.max_connections
    }

    fn create_many(&self, reports: &[NewReport]) -> Result<Vec<String>, StoreError> {
        self.with_tx("storing report stubs", |tx| {
            let err = |e| self.map_err(e, "storing report stubs");
            let ins = tx
                .prepare(&format!(
                    "INSERT INTO reports ({REPORT_COLUMNS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, NULL, NULL, NULL, $17)"
                ))
                .map_err(err)?;
            let ins_match = tx
                .prepare(&format!(
                    "INSERT INTO report_matches (report_id, seq, {MATCH_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ))
                .map_err(err)?;
            let ins_audit = tx
                .prepare(&format!(
                    "INSERT INTO report_audit (report_id, seq, {AUDIT_COLUMNS}) \
                     VALUES ($1, 0, $2, $3, 'created', $4)"
                ))
                .map_err(err)?;
            let mut ids = Vec::with_capacity(reports.len());
            for r in reports {
                let id = new_report_id();
                let quality = r.quality.map(|q| q.min(i32::MAX as u32) as i32);
                tx.execute(
                    &ins,
                    &[
                        &id,
                        &ReportStatus::Pending.as_str(),
                        &INCIDENT_TYPE,
                        &r.detected_at_ms,
                        &(r.detected_at_ms + PRESERVATION_MS),
                        &r.reporting_org,
                        &r.reporting_email,
                        &r.submitter_ref,
                        &r.content_ref,
                        &r.file_name,
                        &r.source,
                        &r.md5,
                        &r.sha1,
                        &r.sha256,
                        &r.pdq,
                        &quality,
                        &r.detected_at_ms,
                    ],
                )
                .map_err(err)?;
                for (seq, m) in r.matches.iter().enumerate() {
                    let distance = m.distance.min(i32::MAX as u32) as i32;
                    tx.execute(
                        &ins_match,
                        &[
                            &id,
                            &(seq as i32),
                            &m.id,
                            &m.list,
                            &m.category,
                            &m.note,
                            &m.kind,
                            &distance,
                            &m.variant,
                        ],
                    )
                    .map_err(err)?;
                }
                let details = created_audit_details(r);
                tx.execute(&ins_audit, &[&id, &r.detected_at_ms, &r.actor, &details])
                    .map_err(err)?;
                ids.push(id);
            }
            Ok(ids)
        })
    }

    fn get(&self, id: &str) -> Result<ReportRecord, StoreError> {
        self.with_tx("reading a report", |tx| self.get_in(tx, id, false))
    }

    fn list(&self, filter: &ReportFilter) -> Result<ReportPage, StoreError> {
        let query = list_query(filter, '$')?;
        let params: Vec<&(dyn ToSql + Sync)> = query
            .args
            .iter()
            .map(|a| -> &(dyn ToSql + Sync) {
                match a {
                    SqlArg::Text(s) => s,
                    SqlArg::Int(i) => i,
                }
            })
            .collect();
        self.with_tx("listing reports", |tx| {
            let err = |e| self.map_err(e, "listing reports");
            let rows = tx.query(&query.sql, &params).map_err(err)?;
            let mut reports = map_rows(&rows, report_from_row);
            let next_page_token = finish_page(&mut reports, query.page_size);
            for r in &mut reports {
                load_children(tx, r, false).map_err(err)?;
            }
            Ok(ReportPage {
                reports,
                next_page_token,
            })
        })
    }

    fn update(
        &self,
        id: &str,
        update: &ReportUpdate,
        actor: &str,
        now_ms: i64,
    ) -> Result<ReportRecord, StoreError> {
        self.with_tx("updating a report", |tx| {
            let err = |e| self.map_err(e, "updating a report");
            // FOR UPDATE serialises concurrent reviewers of one stub, so the
            // audit and annotation sequence numbers below cannot collide.
            let current = self.get_in(tx, id, true)?;
            let ReviewedFields {
                status,
                viewed,
                classification,
                audit_details,
            } = review_update(id, &current, update)?;
            tx.execute(
                "UPDATE reports SET status = $2, viewed = $3, classification = $4, reviewer = $5, \
                 updated_at_ms = $6 WHERE id = $1",
                &[
                    &id,
                    &status.as_str(),
                    &viewed,
                    &classification,
                    &actor,
                    &now_ms,
                ],
            )
            .map_err(err)?;
            let first_seq = current.annotations.len() as i32;
            for (seq, a) in (first_seq..).zip(&update.add_annotations) {
                tx.execute(
                    "INSERT INTO report_annotations (report_id, seq, body) VALUES ($1, $2, $3)",
                    &[&id, &seq, a],
                )
                .map_err(err)?;
            }
            let audit_seq = current.audit.len() as i32;
            tx.execute(
                "INSERT INTO report_audit (report_id, seq, at_ms, actor, action, details) \
                 VALUES ($1, $2, $3, $4, 'updated', $5)",
                &[&id, &audit_seq, &now_ms, &actor, &audit_details],
            )
            .map_err(err)?;
            self.get_in(tx, id, false)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_both_url_forms() {
        assert_eq!(
            redact_url("postgres://sigil:s3cret@db.example:5432/sigil?sslmode=require"),
            "postgres://sigil@db.example:5432/sigil?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://db.example/sigil"),
            "postgres://db.example/sigil"
        );
        assert_eq!(
            redact_url("host=db user=sigil password=s3cret dbname=sigil"),
            "host=db user=sigil dbname=sigil"
        );
    }

    #[test]
    fn unreachable_server_is_unavailable_and_names_the_url() {
        // Port 1 on loopback: nothing listens there, the connect is refused at once.
        let opts = PgOptions {
            connect_timeout: Duration::from_secs(2),
            ..PgOptions::default()
        };
        let err = match PgReportStore::connect(
            "postgres://sigil:pw@127.0.0.1:1/sigil?sslmode=disable",
            opts,
        ) {
            Err(e) => e,
            Ok(_) => panic!("connected to a port nobody listens on"),
        };
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Unavailable(_)), "{msg}");
        assert!(msg.contains("postgres://sigil@127.0.0.1:1/sigil"), "{msg}");
        assert!(!msg.contains("pw@"), "password leaked: {msg}");
    }

    #[test]
    fn malformed_url_is_a_clear_error() {
        let err = match PgReportStore::connect("postgres://[::1", PgOptions::default()) {
            Err(e) => e,
            Ok(_) => panic!("accepted a malformed URL"),
        };
        assert!(
            err.to_string().contains("not a valid PostgreSQL URL"),
            "{err}"
        );
    }
}
