//! The report store's one schema, and what both backends read and write.
//!
//! [`TABLES`] and [`INDEXES`] describe the tables once; each [`Dialect`]
//! writes its DDL and statements from them, so the SQLite and PostgreSQL
//! schemas cannot drift apart. Values cross to and from a backend as
//! [`Value`]s typed like their columns, through a backend's transaction
//! ([`Tx`]); `ops.rs` writes the store logic once over these. A backend
//! adds only what differs: connecting, transactions, and how its driver
//! binds and reads each [`Type`].

use crate::{
    AuditRecord, ListOrder, NewReport, Occurrence, ReportFilter, ReportRecord, ReportStatus,
    StoreError, StoredMatch, INCIDENT_TYPE,
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
    /// The DDL default, for columns added to existing databases.
    pub default: Option<&'static str>,
}

pub(crate) const fn col(name: &'static str, ty: Type) -> Column {
    Column {
        name,
        ty,
        nullable: false,
        default: None,
    }
}

const fn opt(name: &'static str, ty: Type) -> Column {
    Column {
        name,
        ty,
        nullable: true,
        default: None,
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
        // Schema version 3 (see [`ADDED_COLUMNS`]): one more with each
        // reviewer's update; 1 for stubs from before.
        Column {
            default: Some("1"),
            ..col("version", BigInt)
        },
        // The stub's `crate::dedup_key` while it is open (pending or
        // confirmed), NULL once closed: unique, so one open stub per
        // content and entries, even with concurrent writers.
        opt("open_key", Text),
        // Which index generation matched (`sigil_index::IndexIdentity` in
        // hex); NULL in stubs from before sigil recorded it.
        opt("index_identity", Text),
    ],
    primary_key: "id",
};

/// Columns added to [`REPORTS`] after the first schema: an existing
/// database gains them (with their defaults) when opened.
pub(crate) const ADDED_COLUMNS: [&str; 3] = ["version", "open_key", "index_identity"];

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

/// Every sighting of a stub's content (schema version 3).
pub(crate) const OCCURRENCES: Table = Table {
    name: "report_occurrences",
    columns: &[
        CHILD_KEY[0],
        CHILD_KEY[1],
        col("at_ms", BigInt),
        col("submitter_ref", Text),
        col("content_ref", Text),
        col("actor", Text),
    ],
    primary_key: "report_id, seq",
};

pub(crate) const TABLES: [&Table; 5] = [&REPORTS, &MATCHES, &ANNOTATIONS, &AUDIT, &OCCURRENCES];

/// (name, table, columns, unique): for listing by time and by deadline,
/// finding stubs past their preservation deadline, the listing's filters
/// by list and category, and the one open stub per content and entries.
pub(crate) const INDEXES: [(&str, &str, &str, bool); 6] = [
    ("reports_detected", "reports", "detected_at_ms, id", false),
    // The review queue (a status by deadline) and the counts by status,
    // read from the index alone (issue 22: console pages under 100 ms
    // with 100,000 stubs).
    (
        "reports_status_deadline",
        "reports",
        "status, preservation_deadline_ms, id",
        false,
    ),
    (
        "reports_deadline",
        "reports",
        "preservation_deadline_ms",
        false,
    ),
    (
        "report_matches_list",
        "report_matches",
        "list, report_id",
        false,
    ),
    (
        "report_matches_category",
        "report_matches",
        "category, report_id",
        false,
    ),
    ("reports_open_key", "reports", "open_key", true),
];

/// The columns a review changes (after `id`, the statement's first value).
const REVIEW_COLUMNS: [&str; 6] = [
    "status",
    "viewed",
    "classification",
    "reviewer",
    "updated_at_ms",
    "version",
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

    /// The DDL of every table and index, each created if missing (the
    /// stores run it in parts: a database from before [`ADDED_COLUMNS`]
    /// needs [`Dialect::tables`], then those columns, then
    /// [`Dialect::indexes`]).
    #[cfg(test)]
    pub fn schema(self) -> String {
        self.tables() + &self.indexes()
    }

    /// `ALTER TABLE` adding `column` of [`REPORTS`].
    pub fn add_column(self, column: &str) -> String {
        let c = REPORTS
            .columns
            .iter()
            .find(|c| c.name == column)
            .expect("an added column is described");
        let exists = match self {
            Dialect::Postgres => "IF NOT EXISTS ",
            Dialect::Sqlite => "",
        };
        format!(
            "ALTER TABLE reports ADD COLUMN {exists}{}",
            self.column_ddl(c)
        )
    }

    fn column_ddl(self, c: &Column) -> String {
        let null = if c.nullable { "" } else { " NOT NULL" };
        let default = c
            .default
            .map(|d| format!(" DEFAULT {d}"))
            .unwrap_or_default();
        format!("{} {}{null}{default}", c.name, self.type_name(c.ty))
    }

    /// The indexes' DDL, each created if missing.
    pub fn indexes(self) -> String {
        let mut ddl = String::new();
        for (name, table, columns, unique) in INDEXES {
            let unique = if unique { "UNIQUE " } else { "" };
            ddl.push_str(&format!(
                "CREATE {unique}INDEX IF NOT EXISTS {name} ON {table} ({columns});\n"
            ));
        }
        ddl
    }

    /// The tables' DDL, each created if missing.
    pub fn tables(self) -> String {
        let mut ddl = String::new();
        for t in TABLES {
            let mut lines: Vec<String> = t
                .columns
                .iter()
                .map(|c| format!("    {}", self.column_ddl(c)))
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
        ddl
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

pub(crate) fn text(s: &str) -> Value {
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
pub(crate) fn report_values(
    id: &str,
    r: &NewReport,
    retention_ms: i64,
    open_key: &str,
) -> Vec<Value> {
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
        Value::BigInt(1),
        text(open_key),
        text(&r.index_identity),
    ]
}

/// A stub from a [`REPORTS`] row, without its matches, annotations and
/// audit trail (they live in tables of their own).
pub(crate) fn report_from_row(mut row: Row) -> Result<ReportRecord, StoreError> {
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
        version: {
            let v = row.big_int()?;
            // open_key is the store's, not the record's.
            row.opt_text()?;
            v
        },
        index_identity: row.opt_text()?,
        ..ReportRecord::default()
    })
}

pub(crate) fn match_values(id: &str, seq: usize, m: &StoredMatch) -> Vec<Value> {
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

pub(crate) fn match_from_row(mut row: Row) -> Result<StoredMatch, StoreError> {
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

pub(crate) fn audit_values(id: &str, seq: usize, a: &AuditRecord) -> Vec<Value> {
    vec![
        text(id),
        Value::Int(Some(seq as u32)),
        Value::BigInt(a.at_ms),
        text(&a.actor),
        text(&a.action),
        text(&a.details_json),
    ]
}

pub(crate) fn occurrence_values(id: &str, seq: usize, o: &Occurrence) -> Vec<Value> {
    vec![
        text(id),
        Value::Int(Some(seq as u32)),
        Value::BigInt(o.at_ms),
        text(&o.submitter_ref),
        text(&o.content_ref),
        text(&o.actor),
    ]
}

pub(crate) fn occurrence_from_row(mut row: Row) -> Result<Occurrence, StoreError> {
    Ok(Occurrence {
        at_ms: row.big_int()?,
        submitter_ref: row.text()?,
        content_ref: row.text()?,
        actor: row.text()?,
    })
}

pub(crate) fn audit_from_row(mut row: Row) -> Result<AuditRecord, StoreError> {
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

    /// The `WHERE` clause of `filter`'s filters (its status only with
    /// `with_status`), appending its values to `args`.
    fn filter_clause(
        self,
        filter: &ReportFilter,
        with_status: bool,
        args: &mut Vec<Value>,
    ) -> String {
        let mut sql = String::from(" WHERE 1 = 1");
        let mut push = |sql: &mut String, clause: &str, v: Value| {
            args.push(v);
            sql.push_str(&clause.replace('?', &self.param(args.len())));
        };
        if let Some(s) = filter.status.filter(|_| with_status) {
            push(&mut sql, " AND status = ?", text(s.as_str()));
        }
        if let Some(t) = filter.detected_after_ms {
            push(&mut sql, " AND detected_at_ms >= ?", Value::BigInt(t));
        }
        if let Some(t) = filter.detected_before_ms {
            push(&mut sql, " AND detected_at_ms < ?", Value::BigInt(t));
        }
        if let Some(t) = filter.deadline_after_ms {
            push(
                &mut sql,
                " AND preservation_deadline_ms >= ?",
                Value::BigInt(t),
            );
        }
        if let Some(s) = &filter.submitter_ref {
            push(&mut sql, " AND submitter_ref = ?", text(s));
        }
        for (column, value) in [("list", &filter.list), ("category", &filter.category)] {
            if let Some(v) = value {
                // IN (not a correlated EXISTS): the database reads the
                // matching stub ids from the (list|category, report_id)
                // index once, instead of probing it for every stub.
                let clause = format!(
                    " AND r.id IN (SELECT m.report_id FROM report_matches m WHERE m.{column} = ?)"
                );
                push(&mut sql, &clause, text(v));
            }
        }
        sql
    }

    /// The listing query of `filter`, in its order, at most `limit` rows,
    /// and its values; keyset paging on `(detected_at_ms, id)` (newest
    /// first, page token `"<ms>.<id>"`) or `(preservation_deadline_ms, id)`
    /// (deadline first, page token `"d<ms>.<id>"`).
    pub fn list(
        self,
        filter: &ReportFilter,
        limit: usize,
    ) -> Result<(String, Vec<Value>), StoreError> {
        let mut args = Vec::new();
        let mut sql = format!(
            "SELECT {} FROM reports r{}",
            names(REPORTS.columns),
            self.filter_clause(filter, true, &mut args)
        );
        let (key, cmp, dir, prefix) = match filter.order {
            ListOrder::Newest => ("detected_at_ms", "<", "DESC", ""),
            ListOrder::Deadline => ("preservation_deadline_ms", ">", "ASC", "d"),
        };
        if let Some(tok) = &filter.page_token {
            let (ms, id) = tok
                .strip_prefix(prefix)
                .and_then(|t| t.split_once('.'))
                .and_then(|(ms, id)| Some((ms.parse::<i64>().ok()?, id)))
                .ok_or_else(|| StoreError::BadPageToken(tok.clone()))?;
            let mut push = |clause: String, v: Value| {
                args.push(v);
                sql.push_str(&clause.replace('?', &self.param(args.len())));
            };
            push(format!(" AND ({key} {cmp} ?"), Value::BigInt(ms));
            push(format!(" OR ({key} = ?"), Value::BigInt(ms));
            push(format!(" AND id {cmp} ?))"), text(id));
        }
        sql.push_str(&format!(" ORDER BY {key} {dir}, id {dir} LIMIT {limit}"));
        Ok((sql, args))
    }

    /// The page token that continues a listing in `order` after `r`.
    pub fn page_token(order: ListOrder, r: &ReportRecord) -> String {
        match order {
            ListOrder::Newest => format!("{}.{}", r.detected_at_ms, r.id),
            ListOrder::Deadline => format!("d{}.{}", r.preservation_deadline_ms, r.id),
        }
    }

    /// `(status, count)` rows of the stubs `filter` selects, whatever their status.
    pub fn counts(self, filter: &ReportFilter) -> (String, Vec<Value>) {
        let mut args = Vec::new();
        let sql = format!(
            "SELECT status, COUNT(*) FROM reports r{} GROUP BY status",
            self.filter_clause(filter, false, &mut args)
        );
        (sql, args)
    }

    /// The open stub of key `$1`; locked until the transaction ends
    /// (PostgreSQL), so concurrent sightings of it queue.
    pub fn select_open(self) -> String {
        let lock = match self {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        };
        format!(
            "SELECT id FROM reports WHERE open_key = {}{lock}",
            self.param(1)
        )
    }

    /// Inserts a whole [`REPORTS`] row unless an open stub has its
    /// `open_key`, returning the id when it inserted. (PostgreSQL waits for
    /// a concurrent insert of the same key to commit, then inserts nothing.)
    pub fn insert_open(self) -> String {
        format!(
            "{} ON CONFLICT (open_key) DO NOTHING RETURNING id",
            self.insert(&REPORTS)
        )
    }

    /// How many occurrences stub `$1` has (`seq` of the next), and how many
    /// of them are the sighting `$2` (submitter) / `$3` (content reference).
    pub fn count_occurrences(self) -> String {
        format!(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN submitter_ref = {p2} AND content_ref = {p3} \
             THEN 1 ELSE 0 END), 0) FROM report_occurrences WHERE report_id = {p1}",
            p1 = self.param(1),
            p2 = self.param(2),
            p3 = self.param(3)
        )
    }

    /// Empties the `open_key` of stub `$1` (it was closed).
    pub fn close(self) -> String {
        format!(
            "UPDATE reports SET open_key = NULL WHERE id = {}",
            self.param(1)
        )
    }

    /// Closed stubs whose preservation deadline is before `$1`, oldest
    /// deadline first.
    pub fn select_prunable(self) -> String {
        let closed: Vec<String> = ReportStatus::ALL
            .iter()
            .filter(|s| s.is_closed())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        format!(
            "SELECT {} FROM reports WHERE preservation_deadline_ms < {} AND status IN ({}) \
             ORDER BY preservation_deadline_ms, id",
            names(REPORTS.columns),
            self.param(1),
            closed.join(", ")
        )
    }

    /// Deletes `t`'s rows of stub `$1` (a child table's by `report_id`).
    pub fn delete(self, t: &Table) -> String {
        let key = if t.is_child() { "report_id" } else { "id" };
        format!("DELETE FROM {} WHERE {key} = {}", t.name, self.param(1))
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
            (&REPORTS, report_values("id", &r, 1, "key")),
            (
                &OCCURRENCES,
                occurrence_values(
                    "id",
                    0,
                    &Occurrence {
                        at_ms: 1,
                        submitter_ref: "u".into(),
                        content_ref: "c".into(),
                        actor: "a".into(),
                    },
                ),
            ),
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
        assert_eq!(sqlite.matches("ON DELETE CASCADE").count(), 4);
        assert!(sqlite.contains("version BIGINT NOT NULL DEFAULT 1"));
        assert!(sqlite.contains("CREATE UNIQUE INDEX IF NOT EXISTS reports_open_key"));
        assert!(sqlite.contains("reports_deadline ON reports (preservation_deadline_ms)"));
    }
}
