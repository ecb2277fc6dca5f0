//! The report store's one schema, and what both backends read and write.
//!
//! [`TABLES`] and [`INDEXES`] describe the tables once; each [`Dialect`]
//! writes its DDL and statements from them, so the SQLite and PostgreSQL
//! schemas cannot drift apart. Values cross to and from a backend as
//! [`Value`]s typed like their columns, through a backend's transaction
//! ([`Tx`]); `ops.rs` writes the store logic once over these. A backend
//! adds only what differs: connecting, transactions, and how its driver
//! binds and reads each [`Type`].

use crate::store::{
    AuditRecord, NewReport, ReportFilter, ReportRecord, ReportStatus, StoreError, StoredMatch,
    INCIDENT_TYPE,
};

/// A column's type. SQLite has no boolean (0/1 in an INTEGER) and gives
/// every integer as `i64`; PostgreSQL's INTEGER is 32-bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    Text,
    BigInt,
    /// Written from a `u32`.
    Int,
    Bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub name: &'static str,
    pub ty: Type,
    pub nullable: bool,
}

const fn col(name: &'static str, ty: Type) -> Column {
    Column {
        name,
        ty,
        nullable: false,
    }
}

const fn opt(name: &'static str, ty: Type) -> Column {
    Column {
        name,
        ty,
        nullable: true,
    }
}

pub(crate) struct Table {
    pub name: &'static str,
    /// Every column, in the order rows are written and read.
    pub columns: &'static [Column],
    pub primary_key: &'static str,
}

use Type::{BigInt, Bool, Int, Text};

/// The stubs. [`report_values`] writes and [`report_from_row`] reads these
/// columns in this order.
pub(crate) const REPORTS: Table = Table {
    name: "reports",
    columns: &[
        col("id", Text),
        col("status", Text),
        col("incident_type", Text),
        col("detected_at_ms", BigInt),
        col("preservation_deadline_ms", BigInt),
        col("reporting_org", Text),
        col("reporting_email", Text),
        col("submitter_ref", Text),
        col("content_ref", Text),
        col("file_name", Text),
        col("source", Text),
        col("md5", Text),
        col("sha1", Text),
        col("sha256", Text),
        col("pdq", Text),
        opt("quality", Int),
        opt("viewed", Bool),
        opt("classification", Text),
        opt("reviewer", Text),
        col("updated_at_ms", BigInt),
        INDEX_IDENTITY,
    ],
    primary_key: "id",
};

/// Which index generation matched (`sigil_index::IndexIdentity` in hex).
/// Added after the first schema, so NULL in older stubs.
const INDEX_IDENTITY: Column = opt("index_identity", Text);

/// Columns added to an existing table after it was first created, in the
/// order they were added: a database from before gains them on open
/// ([`Dialect::add_column`]). Each is also in its table's `columns`, last.
pub(crate) const ADDED_COLUMNS: [(&Table, Column); 1] = [(&REPORTS, INDEX_IDENTITY)];

/// The child tables start with `report_id` (referencing `reports (id)`,
/// deleted with it) and `seq` (the order within the stub); the rest is
/// their data, read back without those two.
const CHILD_KEY: [Column; 2] = [col("report_id", Text), col("seq", Int)];

pub(crate) const MATCHES: Table = Table {
    name: "report_matches",
    columns: &[
        CHILD_KEY[0],
        CHILD_KEY[1],
        col("entry_id", Text),
        col("list", Text),
        col("category", Text),
        opt("note", Text),
        col("kind", Text),
        col("distance", Int),
        opt("variant", Text),
    ],
    primary_key: "report_id, seq",
};

pub(crate) const ANNOTATIONS: Table = Table {
    name: "report_annotations",
    columns: &[CHILD_KEY[0], CHILD_KEY[1], col("body", Text)],
    primary_key: "report_id, seq",
};

pub(crate) const AUDIT: Table = Table {
    name: "report_audit",
    columns: &[
        CHILD_KEY[0],
        CHILD_KEY[1],
        col("at_ms", BigInt),
        col("actor", Text),
        col("action", Text),
        col("details", Text),
    ],
    primary_key: "report_id, seq",
};

pub(crate) const TABLES: [&Table; 4] = [&REPORTS, &MATCHES, &ANNOTATIONS, &AUDIT];

/// (name, table, columns): for listing by time, finding stubs past their
/// preservation deadline, and the listing's filter by list.
pub(crate) const INDEXES: [(&str, &str, &str); 3] = [
    ("reports_detected", "reports", "detected_at_ms, id"),
    ("reports_deadline", "reports", "preservation_deadline_ms"),
    ("report_matches_list", "report_matches", "list, report_id"),
];

/// The columns a review changes (after `id`, the statement's first value).
const REVIEW_COLUMNS: [&str; 5] = [
    "status",
    "viewed",
    "classification",
    "reviewer",
    "updated_at_ms",
];

impl Table {
    fn is_child(&self) -> bool {
        self.columns[0].name == CHILD_KEY[0].name
    }

    /// The columns read back: a child's without its key.
    pub fn data(&self) -> &'static [Column] {
        if self.is_child() {
            &self.columns[CHILD_KEY.len()..]
        } else {
            self.columns
        }
    }
}

fn names(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres,
}

impl Dialect {
    fn type_name(self, ty: Type) -> &'static str {
        match (self, ty) {
            (_, Text) => "TEXT",
            (_, BigInt) => "BIGINT",
            (_, Int) => "INTEGER",
            (Dialect::Sqlite, Bool) => "INTEGER",
            (Dialect::Postgres, Bool) => "BOOLEAN",
        }
    }

    /// The `n`th (1-based) placeholder.
    fn param(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// The DDL of every table and index, each created if missing.
    pub fn schema(self) -> String {
        let mut ddl = String::new();
        for t in TABLES {
            let mut lines: Vec<String> = t
                .columns
                .iter()
                .map(|c| {
                    let null = if c.nullable { "" } else { " NOT NULL" };
                    format!("    {} {}{null}", c.name, self.type_name(c.ty))
                })
                .collect();
            if t.is_child() {
                lines[0].push_str(" REFERENCES reports (id) ON DELETE CASCADE");
            }
            lines.push(format!("    PRIMARY KEY ({})", t.primary_key));
            ddl.push_str(&format!(
                "CREATE TABLE IF NOT EXISTS {} (\n{}\n);\n",
                t.name,
                lines.join(",\n")
            ));
        }
        for (name, table, columns) in INDEXES {
            ddl.push_str(&format!(
                "CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns});\n"
            ));
        }
        ddl
    }
}

impl Dialect {
    /// Adds `column` to `table` in a database created before it existed
    /// (nullable columns only: existing rows hold NULL). PostgreSQL skips
    /// a column that exists; SQLite cannot, so its caller checks first.
    pub fn add_column(self, table: &Table, column: &Column) -> String {
        debug_assert!(column.nullable, "an added column must be nullable");
        let if_missing = match self {
            Dialect::Postgres => "IF NOT EXISTS ",
            Dialect::Sqlite => "",
        };
        format!(
            "ALTER TABLE {} ADD COLUMN {if_missing}{} {}",
            table.name,
            column.name,
            self.type_name(column.ty)
        )
    }
}

/// A value bound to or read from a column of the same [`Type`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Text(Option<String>),
    BigInt(i64),
    Int(Option<u32>),
    Bool(Option<bool>),
}

pub(super) fn text(s: &str) -> Value {
    Value::Text(Some(s.to_string()))
}

/// One row's values, taken in column order.
pub(crate) struct Row(std::vec::IntoIter<Value>);

impl From<Vec<Value>> for Row {
    fn from(v: Vec<Value>) -> Self {
        Row(v.into_iter())
    }
}

/// A value that does not fit its column: a NULL in a NOT NULL column (a
/// database edited by hand), or a bug (the backends read each column as
/// its described type).
fn misread(what: &str, got: Option<Value>) -> StoreError {
    StoreError::Backend(format!("report store: expected {what}, read {got:?}"))
}

impl Row {
    pub fn opt_text(&mut self) -> Result<Option<String>, StoreError> {
        match self.0.next() {
            Some(Value::Text(v)) => Ok(v),
            other => Err(misread("text", other)),
        }
    }
    pub fn text(&mut self) -> Result<String, StoreError> {
        self.opt_text()?
            .ok_or_else(|| misread("non-NULL text", Some(Value::Text(None))))
    }
    pub fn big_int(&mut self) -> Result<i64, StoreError> {
        match self.0.next() {
            Some(Value::BigInt(v)) => Ok(v),
            other => Err(misread("a BIGINT", other)),
        }
    }
    pub fn opt_u32(&mut self) -> Result<Option<u32>, StoreError> {
        match self.0.next() {
            Some(Value::Int(v)) => Ok(v),
            other => Err(misread("an INTEGER", other)),
        }
    }
    pub fn u32(&mut self) -> Result<u32, StoreError> {
        self.opt_u32()?
            .ok_or_else(|| misread("a non-NULL INTEGER", Some(Value::Int(None))))
    }
    pub fn opt_bool(&mut self) -> Result<Option<bool>, StoreError> {
        match self.0.next() {
            Some(Value::Bool(v)) => Ok(v),
            other => Err(misread("a boolean", other)),
        }
    }
}

/// The values of a new stub's [`REPORTS`] row.
pub(super) fn report_values(id: &str, r: &NewReport, retention_ms: i64) -> Vec<Value> {
    vec![
        text(id),
        text(ReportStatus::Pending.as_str()),
        text(INCIDENT_TYPE),
        Value::BigInt(r.detected_at_ms),
        Value::BigInt(r.detected_at_ms + retention_ms),
        text(&r.reporting_org),
        text(&r.reporting_email),
        text(&r.submitter_ref),
        text(&r.content_ref),
        text(&r.file_name),
        text(&r.source),
        text(&r.md5),
        text(&r.sha1),
        text(&r.sha256),
        text(&r.pdq),
        Value::Int(r.quality),
        Value::Bool(None),
        Value::Text(None),
        Value::Text(None),
        Value::BigInt(r.detected_at_ms),
        text(&r.index_identity),
    ]
}

/// A stub from a [`REPORTS`] row, without its matches, annotations and
/// audit trail (they live in tables of their own).
pub(super) fn report_from_row(mut row: Row) -> Result<ReportRecord, StoreError> {
    let id = row.text()?;
    let status = row.text()?;
    let status = ReportStatus::parse(&status).ok_or_else(|| {
        StoreError::Backend(format!("report {id:?} has an unknown status {status:?}"))
    })?;
    Ok(ReportRecord {
        id,
        status,
        incident_type: row.text()?,
        detected_at_ms: row.big_int()?,
        preservation_deadline_ms: row.big_int()?,
        reporting_org: row.text()?,
        reporting_email: row.text()?,
        submitter_ref: row.text()?,
        content_ref: row.text()?,
        file_name: row.text()?,
        source: row.text()?,
        md5: row.text()?,
        sha1: row.text()?,
        sha256: row.text()?,
        pdq: row.text()?,
        quality: row.opt_u32()?,
        viewed: row.opt_bool()?,
        classification: row.opt_text()?,
        reviewer: row.opt_text()?,
        updated_at_ms: row.big_int()?,
        index_identity: row.opt_text()?,
        matches: Vec::new(),
        annotations: Vec::new(),
        audit: Vec::new(),
    })
}

pub(super) fn match_values(id: &str, seq: usize, m: &StoredMatch) -> Vec<Value> {
    vec![
        text(id),
        Value::Int(Some(seq as u32)),
        text(&m.id),
        text(&m.list),
        text(&m.category),
        Value::Text(m.note.clone()),
        text(&m.kind),
        Value::Int(Some(m.distance)),
        Value::Text(m.variant.clone()),
    ]
}

pub(super) fn match_from_row(mut row: Row) -> Result<StoredMatch, StoreError> {
    Ok(StoredMatch {
        id: row.text()?,
        list: row.text()?,
        category: row.text()?,
        note: row.opt_text()?,
        kind: row.text()?,
        distance: row.u32()?,
        variant: row.opt_text()?,
    })
}

pub(super) fn audit_values(id: &str, seq: usize, a: &AuditRecord) -> Vec<Value> {
    vec![
        text(id),
        Value::Int(Some(seq as u32)),
        Value::BigInt(a.at_ms),
        text(&a.actor),
        text(&a.action),
        text(&a.details_json),
    ]
}

pub(super) fn audit_from_row(mut row: Row) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        at_ms: row.big_int()?,
        actor: row.text()?,
        action: row.text()?,
        details_json: row.text()?,
    })
}

/// One transaction of a backend. Rows come back as [`Value`]s, each
/// column read as its type in `columns`.
pub(crate) trait Tx {
    fn dialect(&self) -> Dialect;
    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<(), StoreError>;
    fn query(
        &mut self,
        sql: &str,
        args: &[Value],
        columns: &[Column],
    ) -> Result<Vec<Row>, StoreError>;
}

/// The statements the store logic (`ops.rs`) runs, in each dialect.
impl Dialect {
    /// Inserts a whole row of `t`.
    pub fn insert(self, t: &Table) -> String {
        let params: Vec<String> = (1..=t.columns.len()).map(|i| self.param(i)).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            t.name,
            names(t.columns),
            params.join(", ")
        )
    }

    /// The stub with id `$1`; `for_update` locks it until the transaction
    /// ends (PostgreSQL; SQLite's one connection already serialises
    /// writers).
    pub fn select_report(self, for_update: bool) -> String {
        let lock = match self {
            Dialect::Postgres if for_update => " FOR UPDATE",
            _ => "",
        };
        let columns = names(REPORTS.columns);
        format!(
            "SELECT {columns} FROM reports WHERE id = {}{lock}",
            self.param(1)
        )
    }

    /// The data of a child table's rows for stub `$1`, in order.
    pub fn select_children(self, t: &Table) -> String {
        format!(
            "SELECT {} FROM {} WHERE report_id = {} ORDER BY seq",
            names(t.data()),
            t.name,
            self.param(1)
        )
    }

    /// Sets the [`REVIEW_COLUMNS`] (`$2`...) of stub `$1`.
    pub fn update_review(self) -> String {
        let sets: Vec<String> = (REVIEW_COLUMNS.iter().enumerate())
            .map(|(i, c)| format!("{c} = {}", self.param(i + 2)))
            .collect();
        format!(
            "UPDATE reports SET {} WHERE id = {}",
            sets.join(", "),
            self.param(1)
        )
    }

    /// The listing query of `filter`, newest first, at most `limit` rows,
    /// and its values; keyset paging on `(detected_at_ms, id)` with the page
    /// token `"<ms>.<id>"`.
    pub fn list(
        self,
        filter: &ReportFilter,
        limit: usize,
    ) -> Result<(String, Vec<Value>), StoreError> {
        let mut sql = format!(
            "SELECT {} FROM reports r WHERE 1 = 1",
            names(REPORTS.columns)
        );
        let mut args = Vec::new();
        let mut push = |sql: &mut String, clause: &str, v: Value| {
            args.push(v);
            sql.push_str(&clause.replace('?', &self.param(args.len())));
        };
        if let Some(s) = filter.status {
            push(&mut sql, " AND status = ?", text(s.as_str()));
        }
        if let Some(t) = filter.detected_after_ms {
            push(&mut sql, " AND detected_at_ms >= ?", Value::BigInt(t));
        }
        if let Some(t) = filter.detected_before_ms {
            push(&mut sql, " AND detected_at_ms < ?", Value::BigInt(t));
        }
        if let Some(l) = &filter.list {
            push(
                &mut sql,
                " AND EXISTS (SELECT 1 FROM report_matches m WHERE m.report_id = r.id AND m.list = ?)",
                text(l),
            );
        }
        if let Some(tok) = &filter.page_token {
            let (ms, id) = tok
                .split_once('.')
                .and_then(|(ms, id)| Some((ms.parse::<i64>().ok()?, id)))
                .ok_or_else(|| StoreError::BadPageToken(tok.clone()))?;
            push(&mut sql, " AND (detected_at_ms < ?", Value::BigInt(ms));
            push(&mut sql, " OR (detected_at_ms = ?", Value::BigInt(ms));
            push(&mut sql, " AND id < ?))", text(id));
        }
        sql.push_str(&format!(
            " ORDER BY detected_at_ms DESC, id DESC LIMIT {limit}"
        ));
        Ok((sql, args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_of(v: &Value) -> Type {
        match v {
            Value::Text(_) => Text,
            Value::BigInt(_) => BigInt,
            Value::Int(_) => Int,
            Value::Bool(_) => Bool,
        }
    }

    /// The values written for each table have its columns' types, in
    /// order, and NULL only where the column allows it.
    #[test]
    fn written_rows_match_the_description() {
        let r = NewReport {
            matches: vec![StoredMatch {
                id: "e".into(),
                list: "l".into(),
                category: "c".into(),
                note: None,
                kind: "pdq".into(),
                distance: 3,
                variant: None,
            }],
            ..NewReport::default()
        };
        let audit = AuditRecord {
            at_ms: 1,
            actor: "a".into(),
            action: "created".into(),
            details_json: "{}".into(),
        };
        for (table, values) in [
            (&REPORTS, report_values("id", &r, 1)),
            (&MATCHES, match_values("id", 0, &r.matches[0])),
            (&AUDIT, audit_values("id", 0, &audit)),
        ] {
            assert_eq!(values.len(), table.columns.len(), "{}", table.name);
            for (v, c) in values.iter().zip(table.columns) {
                assert_eq!(type_of(v), c.ty, "{}.{}", table.name, c.name);
                let null = matches!(v, Value::Text(None) | Value::Int(None) | Value::Bool(None));
                assert!(!null || c.nullable, "{}.{} is NOT NULL", table.name, c.name);
            }
        }
    }

    /// The two dialects' DDL differ only in the boolean column's type.
    #[test]
    fn dialects_share_the_schema() {
        let sqlite = Dialect::Sqlite.schema();
        let pg = Dialect::Postgres.schema();
        assert_eq!(sqlite, pg.replace("viewed BOOLEAN", "viewed INTEGER"));
        assert_eq!(sqlite.matches("ON DELETE CASCADE").count(), 3);
        assert!(sqlite.contains("reports_deadline ON reports (preservation_deadline_ms)"));
    }
}
