//! What the SQLite and PostgreSQL report stores share: the column lists, the
//! mapping from a result row to the report types, the review rules of an
//! update, the audit details of a new stub, and the listing query with its
//! page tokens.
//!
//! Only what both backends read and write the same way lives here. Each
//! backend keeps in its own file its DDL (the column types differ), its
//! other statements (the placeholders differ), how it binds values and how
//! its rows hand out typed values ([`RowValues`]).

use crate::store::{
    AuditRecord, NewReport, ReportFilter, ReportRecord, ReportStatus, ReportUpdate, StoreError,
    StoredMatch,
};

/// The `reports` columns, in the order [`report_from_row`] reads them.
pub(crate) const REPORT_COLUMNS: &str =
    "id, status, incident_type, detected_at_ms, preservation_deadline_ms, \
     reporting_org, reporting_email, submitter_ref, content_ref, file_name, source, md5, sha1, \
     sha256, pdq, quality, viewed, classification, reviewer, updated_at_ms";

/// The `report_matches` columns of one match, in the order
/// [`match_from_row`] reads them.
pub(crate) const MATCH_COLUMNS: &str = "entry_id, list, category, note, kind, distance, variant";

/// The `report_audit` columns of one entry, in the order [`audit_from_row`]
/// reads them.
pub(crate) const AUDIT_COLUMNS: &str = "at_ms, actor, action, details";

/// Typed values of one result row, by column position: what the shared row
/// mappings need from a backend. The integer and boolean columns are typed
/// differently in each dialect (SQLite hands out every integer as `i64` and
/// keeps booleans as 0/1; PostgreSQL has 32-bit `INTEGER` and `BOOLEAN`), so
/// each backend converts its own.
pub(crate) trait RowValues {
    type Error;
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
    /// A `BIGINT` column.
    fn big_int(&self, i: usize) -> Result<i64, Self::Error>;
    /// An `INTEGER` column written from a `u32`.
    fn u32(&self, i: usize) -> Result<u32, Self::Error>;
    fn opt_u32(&self, i: usize) -> Result<Option<u32>, Self::Error>;
    fn opt_bool(&self, i: usize) -> Result<Option<bool>, Self::Error>;
}

/// A stub from a row of [`REPORT_COLUMNS`], without its matches,
/// annotations and audit trail (they live in tables of their own).
pub(crate) fn report_from_row<R: RowValues>(row: &R) -> Result<ReportRecord, R::Error> {
    Ok(ReportRecord {
        id: row.text(0)?,
        status: ReportStatus::parse(&row.text(1)?).unwrap_or(ReportStatus::Pending),
        incident_type: row.text(2)?,
        detected_at_ms: row.big_int(3)?,
        preservation_deadline_ms: row.big_int(4)?,
        reporting_org: row.text(5)?,
        reporting_email: row.text(6)?,
        submitter_ref: row.text(7)?,
        content_ref: row.text(8)?,
        file_name: row.text(9)?,
        source: row.text(10)?,
        md5: row.text(11)?,
        sha1: row.text(12)?,
        sha256: row.text(13)?,
        pdq: row.text(14)?,
        quality: row.opt_u32(15)?,
        viewed: row.opt_bool(16)?,
        classification: row.opt_text(17)?,
        reviewer: row.opt_text(18)?,
        updated_at_ms: row.big_int(19)?,
        matches: Vec::new(),
        annotations: Vec::new(),
        audit: Vec::new(),
    })
}

/// A match from a row of [`MATCH_COLUMNS`].
pub(crate) fn match_from_row<R: RowValues>(row: &R) -> Result<StoredMatch, R::Error> {
    Ok(StoredMatch {
        id: row.text(0)?,
        list: row.text(1)?,
        category: row.text(2)?,
        note: row.opt_text(3)?,
        kind: row.text(4)?,
        distance: row.u32(5)?,
        variant: row.opt_text(6)?,
    })
}

/// An audit entry from a row of [`AUDIT_COLUMNS`].
pub(crate) fn audit_from_row<R: RowValues>(row: &R) -> Result<AuditRecord, R::Error> {
    Ok(AuditRecord {
        at_ms: row.big_int(0)?,
        actor: row.text(1)?,
        action: row.text(2)?,
        details_json: row.text(3)?,
    })
}

/// A new stub's id, the same form on both backends.
pub(crate) fn new_report_id() -> String {
    // UUIDv7: time-ordered, so ids sort roughly by detection time.
    format!("rpt_{}", uuid::Uuid::now_v7().simple())
}

/// The details of a new stub's `created` audit entry, as JSON text.
pub(crate) fn created_audit_details(r: &NewReport) -> String {
    serde_json::json!({
        "source": r.source,
        "matches": r.matches.len(),
    })
    .to_string()
}

/// The reviewer fields a [`ReportUpdate`] leaves on a stub, once the review
/// rules have been checked: both backends apply exactly these.
pub(crate) struct ReviewedFields {
    pub status: ReportStatus,
    pub viewed: Option<bool>,
    pub classification: Option<String>,
    /// The audit-trail details of the update, as JSON text.
    pub audit_details: String,
}

/// Checks `update` against the review rules (confirming or reporting needs
/// a person to have viewed the content; reporting needs a classification)
/// and merges it with the stub's `current` fields.
pub(crate) fn review_update(
    id: &str,
    current: &ReportRecord,
    update: &ReportUpdate,
) -> Result<ReviewedFields, StoreError> {
    let viewed = update.viewed.or(current.viewed);
    let classification = update
        .classification
        .clone()
        .or(current.classification.clone());
    if let Some(status) = update.status {
        let needs_view = matches!(status, ReportStatus::Confirmed | ReportStatus::Reported);
        if needs_view && viewed != Some(true) {
            return Err(StoreError::Rejected {
                id: id.to_string(),
                reason: format!(
                    "status {} requires a person to have viewed the content (viewed = true)",
                    status.as_str()
                ),
            });
        }
        if status == ReportStatus::Reported && classification.is_none() {
            return Err(StoreError::Rejected {
                id: id.to_string(),
                reason: "status reported requires a classification".into(),
            });
        }
    }
    let mut details = serde_json::Map::new();
    if let Some(s) = update.status {
        details.insert("status".into(), s.as_str().into());
    }
    if let Some(v) = update.viewed {
        details.insert("viewed".into(), v.into());
    }
    if let Some(c) = &update.classification {
        details.insert("classification".into(), c.clone().into());
    }
    if !update.add_annotations.is_empty() {
        details.insert(
            "add_annotations".into(),
            serde_json::to_value(&update.add_annotations).unwrap_or_default(),
        );
    }
    Ok(ReviewedFields {
        status: update.status.unwrap_or(current.status),
        viewed,
        classification,
        audit_details: serde_json::Value::Object(details).to_string(),
    })
}

/// A value for one placeholder of a [`ListQuery`]; each backend binds it
/// as its own parameter type.
pub(crate) enum SqlArg {
    Text(String),
    Int(i64),
}

/// The query for one page of a listing.
pub(crate) struct ListQuery {
    /// Selects [`REPORT_COLUMNS`], newest first, one row more than a page
    /// (to tell whether another page follows).
    pub sql: String,
    /// The values of the numbered placeholders, in order.
    pub args: Vec<SqlArg>,
    /// Rows in a full page.
    pub page_size: usize,
}

/// The query for the page of `filter`. Placeholders are numbered and
/// written with `mark` (`?1` for SQLite, `$1` for PostgreSQL); everything
/// else is SQL both dialects read the same way.
pub(crate) fn list_query(filter: &ReportFilter, mark: char) -> Result<ListQuery, StoreError> {
    let page_size = filter.page_size.clamp(1, 1000);
    let mut sql = format!("SELECT {REPORT_COLUMNS} FROM reports r WHERE 1 = 1");
    let mut args = Vec::new();
    let mut push = |sql: &mut String, clause: &str, v: SqlArg| {
        args.push(v);
        sql.push_str(&clause.replace('?', &format!("{mark}{}", args.len())));
    };
    if let Some(s) = filter.status {
        push(
            &mut sql,
            " AND status = ?",
            SqlArg::Text(s.as_str().to_string()),
        );
    }
    if let Some(t) = filter.detected_after_ms {
        push(&mut sql, " AND detected_at_ms >= ?", SqlArg::Int(t));
    }
    if let Some(t) = filter.detected_before_ms {
        push(&mut sql, " AND detected_at_ms < ?", SqlArg::Int(t));
    }
    if let Some(l) = &filter.list {
        push(
            &mut sql,
            " AND EXISTS (SELECT 1 FROM report_matches m WHERE m.report_id = r.id AND m.list = ?)",
            SqlArg::Text(l.clone()),
        );
    }
    if let Some(tok) = &filter.page_token {
        // Keyset paging on (detected_at_ms, id), newest first; the token is
        // the one `finish_page` gives, so it means the same on both backends.
        let (ms, id) = tok
            .split_once('.')
            .and_then(|(ms, id)| Some((ms.parse::<i64>().ok()?, id.to_string())))
            .ok_or_else(|| StoreError::BadPageToken(tok.clone()))?;
        push(&mut sql, " AND (detected_at_ms < ?", SqlArg::Int(ms));
        push(&mut sql, " OR (detected_at_ms = ?", SqlArg::Int(ms));
        push(&mut sql, " AND id < ?))", SqlArg::Text(id));
    }
    sql.push_str(&format!(
        " ORDER BY detected_at_ms DESC, id DESC LIMIT {}",
        page_size + 1
    ));
    Ok(ListQuery {
        sql,
        args,
        page_size,
    })
}

/// Drops the row a [`ListQuery`] reads past the page and returns the token
/// of the next page, if there is one.
pub(crate) fn finish_page(reports: &mut Vec<ReportRecord>, page_size: usize) -> Option<String> {
    if reports.len() > page_size {
        reports.truncate(page_size);
        reports
            .last()
            .map(|r| format!("{}.{}", r.detected_at_ms, r.id))
    } else {
        None
    }
}
