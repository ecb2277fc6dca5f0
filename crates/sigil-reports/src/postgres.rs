//! PostgreSQL backend of [`ReportStore`]: one report store shared by every
//! replica of the matcher.
//!
//! Built with the `postgres` cargo feature. The same SQL store as SQLite's
//! (one schema description, `sql.rs`, one store logic, `ops.rs`; the
//! shared test suite in `tests/report_store_pg.rs` runs against both).
//! Durability: a stub is acknowledged only after `COMMIT` returns, and
//! PostgreSQL's default `synchronous_commit = on` has flushed the WAL by
//! then, so an acknowledged stub survives a crash of the server or of the
//! database.
//!
//! The trait is synchronous (the server calls it from `spawn_blocking`), so
//! this uses the blocking `postgres` client with a small connection pool.
//! Losing the database while running is not fatal: the failing call returns
//! [`StoreError::Unavailable`] (the server answers UNAVAILABLE and the caller
//! retries), the broken connection is dropped, and the next call reconnects.
//! A call whose `BEGIN` fails on a stale pooled connection is retried once on
//! a fresh connection, which is safe because nothing was sent yet.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Config, Statement, Transaction};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::ops;
use crate::redact_url;
use crate::sql::{Column, Dialect, Row, Tx, Type, Value, ADDED_COLUMNS};
use crate::{
    retention_ms, Filed, NewReport, ReportCounts, ReportFilter, ReportPage, ReportRecord,
    ReportStore, ReportUpdate, StoreError, LEGAL_RETENTION_DAYS,
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

/// Report stubs in a PostgreSQL database.
pub struct PgReportStore {
    config: Config,
    tls: MakeRustlsConnect,
    /// The URL with any password removed, for messages.
    display_url: String,
    opts: PgOptions,
    pool: Mutex<Pool>,
    returned: Condvar,
    retention_ms: i64,
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
            retention_ms: retention_ms(LEGAL_RETENTION_DAYS),
        };
        let mut lease = store.checkout()?;
        let mut ddl = String::new();
        if let Some(schema) = &store.opts.schema {
            ddl.push_str(&format!("CREATE SCHEMA IF NOT EXISTS {schema};"));
            ddl.push_str(&format!("SET search_path TO {schema};"));
        }
        // Tables, then the columns a database from before them lacks, then
        // the indexes (one of which is on such a column).
        ddl.push_str(&Dialect::Postgres.tables());
        for column in ADDED_COLUMNS {
            ddl.push_str(&Dialect::Postgres.add_column(column));
            ddl.push_str(";\n");
        }
        ddl.push_str(&Dialect::Postgres.indexes());
        lease
            .client()
            .batch_execute(&ddl)
            .map_err(|e| store.map_err(e, "creating the report schema"))?;
        drop(lease);
        Ok(store)
    }

    /// Preserves new stubs for `days` after their detection (default:
    /// [`LEGAL_RETENTION_DAYS`]).
    pub fn with_retention_days(mut self, days: u32) -> Self {
        self.retention_ms = retention_ms(days);
        self
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
        mut body: impl FnMut(&mut dyn Tx) -> Result<T, StoreError>,
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
                Ok(mut tx) => match body(&mut self.tx(&mut tx, doing)) {
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

/// One transaction on a pooled connection, its statements prepared once.
struct PgTx<'t, 'c> {
    tx: &'t mut Transaction<'c>,
    store: &'t PgReportStore,
    doing: &'t str,
    prepared: HashMap<String, Statement>,
}

impl PgReportStore {
    fn tx<'t, 'c>(&'t self, tx: &'t mut Transaction<'c>, doing: &'t str) -> PgTx<'t, 'c> {
        PgTx {
            tx,
            store: self,
            doing,
            prepared: HashMap::new(),
        }
    }
}

/// PostgreSQL's INTEGER is 32-bit (a `u32` past its range is stored as its
/// maximum) and it has a BOOLEAN.
fn bind(v: &Value) -> Box<dyn ToSql + Sync> {
    match v {
        Value::Text(s) => Box::new(s.clone()),
        Value::BigInt(i) => Box::new(*i),
        Value::Int(i) => Box::new(i.map(|i| i.min(i32::MAX as u32) as i32)),
        Value::Bool(b) => Box::new(*b),
    }
}

/// Reads column `i` as a value of type `ty` (NULL allowed: the row
/// mapping refuses it where the column is NOT NULL).
fn read(row: &postgres::Row, i: usize, ty: Type) -> Result<Value, postgres::Error> {
    Ok(match ty {
        Type::Text => Value::Text(row.try_get(i)?),
        Type::BigInt => Value::BigInt(row.try_get(i)?),
        Type::Int => Value::Int(row.try_get::<_, Option<i32>>(i)?.map(|v| v as u32)),
        Type::Bool => Value::Bool(row.try_get(i)?),
    })
}

impl PgTx<'_, '_> {
    fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(st) = self.prepared.get(sql) {
            return Ok(st.clone());
        }
        let st = self.tx.prepare(sql).map_err(|e| self.err(e))?;
        self.prepared.insert(sql.to_string(), st.clone());
        Ok(st)
    }

    fn err(&self, e: postgres::Error) -> StoreError {
        self.store.map_err(e, self.doing)
    }
}

impl Tx for PgTx<'_, '_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<(), StoreError> {
        let st = self.statement(sql)?;
        let args: Vec<_> = args.iter().map(bind).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref()).collect();
        self.tx.execute(&st, &refs).map_err(|e| self.err(e))?;
        Ok(())
    }

    fn query(
        &mut self,
        sql: &str,
        args: &[Value],
        columns: &[Column],
    ) -> Result<Vec<Row>, StoreError> {
        let st = self.statement(sql)?;
        let args: Vec<_> = args.iter().map(bind).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref()).collect();
        let rows = self.tx.query(&st, &refs).map_err(|e| self.err(e))?;
        rows.iter()
            .map(|row| {
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| read(row, i, c.ty))
                    .collect::<Result<Vec<Value>, _>>()
                    .map(Row::from)
                    .map_err(|e| self.err(e))
            })
            .collect()
    }
}

impl ReportStore for PgReportStore {
    fn parallelism(&self) -> usize {
        self.opts.max_connections
    }

    fn create_many(&self, reports: &[NewReport]) -> Result<Vec<Filed>, StoreError> {
        self.with_tx("storing report stubs", |tx| {
            ops::create_many(tx, reports, self.retention_ms)
        })
    }

    fn counts(&self, filter: &ReportFilter) -> Result<ReportCounts, StoreError> {
        self.with_tx("counting reports", |tx| ops::counts(tx, filter))
    }

    fn prune(&self, now_ms: i64, apply: bool) -> Result<Vec<ReportRecord>, StoreError> {
        self.with_tx("pruning reports", |tx| ops::prune(tx, now_ms, apply))
    }

    fn get(&self, id: &str) -> Result<ReportRecord, StoreError> {
        self.with_tx("reading a report", |tx| ops::get(tx, id, false))
    }

    fn list(&self, filter: &ReportFilter) -> Result<ReportPage, StoreError> {
        self.with_tx("listing reports", |tx| ops::list(tx, filter))
    }

    fn update(
        &self,
        id: &str,
        update: &ReportUpdate,
        actor: &str,
        now_ms: i64,
    ) -> Result<ReportRecord, StoreError> {
        self.with_tx("updating a report", |tx| {
            ops::update(tx, id, update, actor, now_ms)
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
