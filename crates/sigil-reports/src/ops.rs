//! The store logic, written once for both backends: what filing sightings,
//! reading, listing, counting, reviewing and pruning stubs read and write,
//! through a backend's transaction ([`Tx`]) in its dialect. The review
//! rules themselves are [`crate::review`]'s.

use crate::sql::{
    audit_from_row, audit_values, col, match_from_row, match_values, occurrence_from_row,
    occurrence_values, report_from_row, report_values, text, Dialect, Tx, Type, Value, ANNOTATIONS,
    AUDIT, MATCHES, OCCURRENCES, REPORTS, TABLES,
};
use crate::{
    dedup_key, review, AuditRecord, Filed, Filing, NewReport, Occurrence, ReportCounts,
    ReportFilter, ReportPage, ReportRecord, ReportStatus, ReportUpdate, StoreError,
};

/// A new stub's id, the same form on both backends.
fn new_report_id() -> String {
    // UUIDv7: time-ordered, so ids sort roughly by detection time.
    format!("rpt_{}", uuid::Uuid::now_v7().simple())
}

/// Files each sighting: a new stub (preserved `retention_ms` after its
/// detection), or an occurrence on the open stub of the same content and
/// entries, or nothing when that stub already has this sighting.
pub(crate) fn create_many(
    tx: &mut dyn Tx,
    reports: &[NewReport],
    retention_ms: i64,
) -> Result<Vec<Filed>, StoreError> {
    reports
        .iter()
        .map(|r| file_one(tx, r, retention_ms))
        .collect()
}

fn file_one(tx: &mut dyn Tx, r: &NewReport, retention_ms: i64) -> Result<Filed, StoreError> {
    let key = dedup_key(r);
    let sighting = Occurrence {
        at_ms: r.detected_at_ms,
        submitter_ref: r.submitter_ref.clone(),
        content_ref: r.content_ref.clone(),
        actor: r.actor.clone(),
    };
    // Twice at most: a stub of this key may be opened by another writer
    // between the look-up and the insert (which then inserts nothing), and
    // is found by the second look-up.
    for _ in 0..2 {
        if let Some(id) = open_stub(tx, &key)? {
            return add_sighting(tx, id, &sighting);
        }
        let id = new_report_id();
        let values = report_values(&id, r, retention_ms, &key);
        let inserted = tx.query(
            &tx.dialect().insert_open(),
            &values,
            &[col("id", Type::Text)],
        )?;
        if inserted.is_empty() {
            continue;
        }
        for (seq, m) in r.matches.iter().enumerate() {
            tx.execute(&tx.dialect().insert(&MATCHES), &match_values(&id, seq, m))?;
        }
        tx.execute(
            &tx.dialect().insert(&OCCURRENCES),
            &occurrence_values(&id, 0, &sighting),
        )?;
        let created = AuditRecord {
            at_ms: r.detected_at_ms,
            actor: r.actor.clone(),
            action: "created".into(),
            details_json: serde_json::json!({
                "source": r.source,
                "matches": r.matches.len(),
            })
            .to_string(),
        };
        tx.execute(
            &tx.dialect().insert(&AUDIT),
            &audit_values(&id, 0, &created),
        )?;
        return Ok(Filed {
            id,
            filing: Filing::Opened,
        });
    }
    Err(StoreError::Backend(format!(
        "report store: open stub of key {key} neither found nor inserted"
    )))
}

/// The id of the open stub of `key`, locked (PostgreSQL) until the
/// transaction ends.
fn open_stub(tx: &mut dyn Tx, key: &str) -> Result<Option<String>, StoreError> {
    let sql = tx.dialect().select_open();
    match tx
        .query(&sql, &[text(key)], &[col("id", Type::Text)])?
        .into_iter()
        .next()
    {
        Some(mut row) => Ok(Some(row.text()?)),
        None => Ok(None),
    }
}

fn add_sighting(tx: &mut dyn Tx, id: String, o: &Occurrence) -> Result<Filed, StoreError> {
    let counts = [col("n", Type::BigInt), col("same", Type::BigInt)];
    let args = [text(&id), text(&o.submitter_ref), text(&o.content_ref)];
    let mut row = tx
        .query(&tx.dialect().count_occurrences(), &args, &counts)?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Backend("report store: COUNT returned no row".into()))?;
    let (n, same) = (row.big_int()?, row.big_int()?);
    if same > 0 {
        return Ok(Filed {
            id,
            filing: Filing::AlreadyRecorded,
        });
    }
    let values = occurrence_values(&id, n as usize, o);
    tx.execute(&tx.dialect().insert(&OCCURRENCES), &values)?;
    Ok(Filed {
        id,
        filing: Filing::Sighted,
    })
}

/// One stub with its children; `for_update` locks it until the
/// transaction ends.
pub(crate) fn get(tx: &mut dyn Tx, id: &str, for_update: bool) -> Result<ReportRecord, StoreError> {
    let sql = tx.dialect().select_report(for_update);
    let row = tx
        .query(&sql, &[text(id)], REPORTS.columns)?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    let mut r = report_from_row(row)?;
    load_children(tx, &mut r, true)?;
    Ok(r)
}

/// Matches and annotations always; the audit trail and occurrences with
/// `full` (else the occurrences' count only).
fn load_children(tx: &mut dyn Tx, r: &mut ReportRecord, full: bool) -> Result<(), StoreError> {
    let id = [text(&r.id)];
    r.matches = tx
        .query(&tx.dialect().select_children(&MATCHES), &id, MATCHES.data())?
        .into_iter()
        .map(match_from_row)
        .collect::<Result<_, _>>()?;
    r.annotations = tx
        .query(
            &tx.dialect().select_children(&ANNOTATIONS),
            &id,
            ANNOTATIONS.data(),
        )?
        .into_iter()
        .map(|mut row| row.text())
        .collect::<Result<_, _>>()?;
    if full {
        r.audit = tx
            .query(&tx.dialect().select_children(&AUDIT), &id, AUDIT.data())?
            .into_iter()
            .map(audit_from_row)
            .collect::<Result<_, _>>()?;
        r.occurrences = tx
            .query(
                &tx.dialect().select_children(&OCCURRENCES),
                &id,
                OCCURRENCES.data(),
            )?
            .into_iter()
            .map(occurrence_from_row)
            .collect::<Result<_, _>>()?;
        r.occurrence_count = r.occurrences.len() as u32;
    } else {
        let args = [text(&r.id), text(""), text("")];
        let counts = [col("n", Type::BigInt), col("same", Type::BigInt)];
        if let Some(mut row) = tx
            .query(&tx.dialect().count_occurrences(), &args, &counts)?
            .into_iter()
            .next()
        {
            r.occurrence_count = row.big_int()? as u32;
        }
    }
    Ok(())
}

/// One page of `filter`, in its order.
pub(crate) fn list(tx: &mut dyn Tx, filter: &ReportFilter) -> Result<ReportPage, StoreError> {
    let page_size = filter.page_size.clamp(1, 1000);
    // One row more than a page tells whether another page follows.
    let (sql, args) = tx.dialect().list(filter, page_size + 1)?;
    let mut reports = tx
        .query(&sql, &args, REPORTS.columns)?
        .into_iter()
        .map(report_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let mut next_page_token = None;
    if reports.len() > page_size {
        reports.truncate(page_size);
        next_page_token = reports.last().map(|r| Dialect::page_token(filter.order, r));
    }
    for r in &mut reports {
        load_children(tx, r, false)?;
    }
    Ok(ReportPage {
        reports,
        next_page_token,
    })
}

/// The stubs `filter` selects, by status.
pub(crate) fn counts(tx: &mut dyn Tx, filter: &ReportFilter) -> Result<ReportCounts, StoreError> {
    let (sql, args) = tx.dialect().counts(filter);
    let mut counts = ReportCounts::default();
    for mut row in tx.query(
        &sql,
        &args,
        &[col("status", Type::Text), col("n", Type::BigInt)],
    )? {
        let status = row.text()?;
        let n = row.big_int()?;
        let status = ReportStatus::parse(&status).ok_or_else(|| {
            StoreError::Backend(format!("a report has an unknown status {status:?}"))
        })?;
        *counts.slot(status) += n as u64;
    }
    Ok(counts)
}

/// Closed stubs past their deadline; deleted with `apply`.
pub(crate) fn prune(
    tx: &mut dyn Tx,
    now_ms: i64,
    apply: bool,
) -> Result<Vec<ReportRecord>, StoreError> {
    let sql = tx.dialect().select_prunable();
    let due = tx
        .query(&sql, &[Value::BigInt(now_ms)], REPORTS.columns)?
        .into_iter()
        .map(report_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    if apply {
        for r in &due {
            // Children first: a version 1 SQLite database has no ON DELETE
            // CASCADE (see sqlite.rs).
            for t in TABLES.iter().rev() {
                tx.execute(&tx.dialect().delete(t), &[text(&r.id)])?;
            }
        }
    }
    Ok(due)
}

/// Applies a reviewer's update under the review rules, appends it to
/// the audit trail and returns the updated stub.
pub(crate) fn update(
    tx: &mut dyn Tx,
    id: &str,
    update: &ReportUpdate,
    actor: &str,
    now_ms: i64,
) -> Result<ReportRecord, StoreError> {
    // Locked, so concurrent reviewers of one stub are serialised: the
    // second sees the first's version (and is refused if it expected the
    // older one) and cannot take the same sequence numbers below.
    let current = get(tx, id, true)?;
    let reviewed = review::check(&current, update)?;
    let values = [
        text(id),
        text(reviewed.status.as_str()),
        Value::Bool(reviewed.viewed),
        Value::Text(reviewed.classification),
        text(actor),
        Value::BigInt(now_ms),
        Value::BigInt(current.version + 1),
    ];
    tx.execute(&tx.dialect().update_review(), &values)?;
    if reviewed.status.is_closed() {
        // A later sighting of the same content opens a new stub.
        tx.execute(&tx.dialect().close(), &[text(id)])?;
    }
    let first = current.annotations.len();
    for (seq, body) in (first..).zip(&update.add_annotations) {
        let values = [text(id), Value::Int(Some(seq as u32)), text(body)];
        tx.execute(&tx.dialect().insert(&ANNOTATIONS), &values)?;
    }
    let updated = AuditRecord {
        at_ms: now_ms,
        actor: actor.to_string(),
        action: "updated".into(),
        details_json: reviewed.audit_details,
    };
    let values = audit_values(id, current.audit.len(), &updated);
    tx.execute(&tx.dialect().insert(&AUDIT), &values)?;
    get(tx, id, false)
}
