//! The store logic, written once for both backends: what creating,
//! reading, listing and reviewing stubs reads and writes, through a
//! backend's transaction ([`Tx`]) in its dialect; and
//! the review rules.

use super::sql::{
    audit_from_row, audit_values, match_from_row, match_values, report_from_row, report_values,
    text, Tx, Value, ANNOTATIONS, AUDIT, MATCHES, REPORTS,
};
use super::{
    AuditRecord, NewReport, ReportFilter, ReportPage, ReportRecord, ReportStatus, ReportUpdate,
    StoreError,
};

/// A new stub's id, the same form on both backends.
fn new_report_id() -> String {
    // UUIDv7: time-ordered, so ids sort roughly by detection time.
    format!("rpt_{}", uuid::Uuid::now_v7().simple())
}

/// Stores stubs, each preserved `retention_ms` after its detection, and
/// returns their ids in order.
pub(super) fn create_many(
    tx: &mut dyn Tx,
    reports: &[NewReport],
    retention_ms: i64,
) -> Result<Vec<String>, StoreError> {
    let mut ids = Vec::with_capacity(reports.len());
    for r in reports {
        let id = new_report_id();
        tx.execute(
            &tx.dialect().insert(&REPORTS),
            &report_values(&id, r, retention_ms),
        )?;
        for (seq, m) in r.matches.iter().enumerate() {
            tx.execute(&tx.dialect().insert(&MATCHES), &match_values(&id, seq, m))?;
        }
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
        ids.push(id);
    }
    Ok(ids)
}

/// One stub with its children; `for_update` locks it until the
/// transaction ends.
pub(super) fn get(tx: &mut dyn Tx, id: &str, for_update: bool) -> Result<ReportRecord, StoreError> {
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

fn load_children(
    tx: &mut dyn Tx,
    r: &mut ReportRecord,
    with_audit: bool,
) -> Result<(), StoreError> {
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
    if with_audit {
        r.audit = tx
            .query(&tx.dialect().select_children(&AUDIT), &id, AUDIT.data())?
            .into_iter()
            .map(audit_from_row)
            .collect::<Result<_, _>>()?;
    }
    Ok(())
}

/// Newest first, filtered, one page.
pub(super) fn list(tx: &mut dyn Tx, filter: &ReportFilter) -> Result<ReportPage, StoreError> {
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
        next_page_token = reports
            .last()
            .map(|r| format!("{}.{}", r.detected_at_ms, r.id));
    }
    for r in &mut reports {
        load_children(tx, r, false)?;
    }
    Ok(ReportPage {
        reports,
        next_page_token,
    })
}

/// Applies a reviewer's update under the review rules, appends it to
/// the audit trail and returns the updated stub.
pub(super) fn update(
    tx: &mut dyn Tx,
    id: &str,
    update: &ReportUpdate,
    actor: &str,
    now_ms: i64,
) -> Result<ReportRecord, StoreError> {
    // Locked, so concurrent reviewers of one stub cannot take the same
    // annotation and audit sequence numbers below.
    let current = get(tx, id, true)?;
    let Reviewed {
        status,
        viewed,
        classification,
        audit_details,
    } = review(&current, update)?;
    let values = [
        text(id),
        text(status.as_str()),
        Value::Bool(viewed),
        Value::Text(classification),
        text(actor),
        Value::BigInt(now_ms),
    ];
    tx.execute(&tx.dialect().update_review(), &values)?;
    let first = current.annotations.len();
    for (seq, body) in (first..).zip(&update.add_annotations) {
        let values = [text(id), Value::Int(Some(seq as u32)), text(body)];
        tx.execute(&tx.dialect().insert(&ANNOTATIONS), &values)?;
    }
    let updated = AuditRecord {
        at_ms: now_ms,
        actor: actor.to_string(),
        action: "updated".into(),
        details_json: audit_details,
    };
    let values = audit_values(id, current.audit.len(), &updated);
    tx.execute(&tx.dialect().insert(&AUDIT), &values)?;
    get(tx, id, false)
}

/// The reviewer fields a [`ReportUpdate`] leaves on a stub, once the review
/// rules have been checked.
struct Reviewed {
    status: ReportStatus,
    viewed: Option<bool>,
    classification: Option<String>,
    /// The audit-trail details of the update, as JSON text.
    audit_details: String,
}

/// Checks `update` against the review rules (confirming or reporting needs
/// a person to have viewed the content; reporting needs a classification)
/// and merges it with the stub's `current` fields.
fn review(current: &ReportRecord, update: &ReportUpdate) -> Result<Reviewed, StoreError> {
    let viewed = update.viewed.or(current.viewed);
    let classification = update
        .classification
        .clone()
        .or(current.classification.clone());
    let rejected = |reason: String| StoreError::Rejected {
        id: current.id.clone(),
        reason,
    };
    if let Some(status) = update.status {
        let needs_view = matches!(status, ReportStatus::Confirmed | ReportStatus::Reported);
        if needs_view && viewed != Some(true) {
            return Err(rejected(format!(
                "status {} requires a person to have viewed the content (viewed = true)",
                status.as_str()
            )));
        }
        if status == ReportStatus::Reported && classification.is_none() {
            return Err(rejected("status reported requires a classification".into()));
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
    Ok(Reviewed {
        status: update.status.unwrap_or(current.status),
        viewed,
        classification,
        audit_details: serde_json::Value::Object(details).to_string(),
    })
}
