//! The review rules, in one place: what a reviewer's update may do to a
//! stub. The store applies them inside the update's transaction (so every
//! front end, gRPC, `sigil reports update` and the console, is held to
//! them), and a front end may call [`check`] first to explain a refusal
//! before it writes anything.
//!
//! Status moves (`from → to`; staying put is always allowed):
//!
//! | from | to |
//! |---|---|
//! | pending | confirmed, dismissed, reported |
//! | confirmed | pending, dismissed, reported |
//! | dismissed | pending, confirmed |
//! | reported | (none: submitted to the CyberTipline, the stub is a record) |
//!
//! What must hold after every update:
//! - confirmed and reported need a person to have viewed the content
//!   (`viewed = true`); a confirmed stub cannot be set to "not viewed"
//!   without leaving `confirmed` in the same update;
//! - reported needs a classification;
//! - dismissing needs a reason (an annotation in the same update);
//! - a reported stub takes annotations only: its status, `viewed` and
//!   classification are what was filed.
//!
//! And the optimistic concurrency rule: an update naming the version it
//! was made against ([`ReportUpdate::expected_version`]) is refused with a
//! [`Conflict`] naming the change that came first, when the stub has moved
//! on since; nothing is lost silently.

use serde::Serialize;

use crate::{AuditRecord, ReportRecord, ReportStatus, ReportUpdate, StoreError};

/// The industry classifications a reviewer may give, as stored.
pub const CLASSIFICATIONS: [&str; 4] = ["A1", "A2", "B1", "B2"];

/// The longest annotation accepted, in bytes: room for a reviewer's
/// notes, not for a pasted document.
pub const MAX_ANNOTATION_BYTES: usize = 10_000;

/// The statuses a stub in `from` may be moved to (besides staying).
pub fn allowed_moves(from: ReportStatus) -> &'static [ReportStatus] {
    use ReportStatus::*;
    match from {
        Pending => &[Confirmed, Dismissed, Reported],
        Confirmed => &[Pending, Dismissed, Reported],
        Dismissed => &[Pending, Confirmed],
        Reported => &[],
    }
}

/// The change that won a race: who made it, what, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// The version the update was made against.
    pub expected_version: i64,
    /// The stub's version now.
    pub current_version: i64,
    /// The latest change to the stub (its last audit entry).
    pub latest: AuditRecord,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "changed since version {} (now version {}): {} by {} at {}: {}; reload it and \
             decide again",
            self.expected_version,
            self.current_version,
            self.latest.action,
            self.latest.actor,
            crate::time::rfc3339_ms(self.latest.at_ms),
            self.latest.details_json
        )
    }
}

/// The reviewer fields an update leaves on a stub, once the rules hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewed {
    pub status: ReportStatus,
    pub viewed: Option<bool>,
    pub classification: Option<String>,
    /// The audit-trail details of the update, as JSON text.
    pub audit_details: String,
}

/// Checks `update` against the rules for the stub as it is (`current`, its
/// audit trail loaded), and merges the two. Refusals are
/// [`StoreError::Rejected`] (a rule) or [`StoreError::Conflict`] (a stale
/// version), each naming the stub.
pub fn check(current: &ReportRecord, update: &ReportUpdate) -> Result<Reviewed, StoreError> {
    let rejected = |reason: String| StoreError::Rejected {
        id: current.id.clone(),
        reason,
    };
    if let Some(expected) = update.expected_version {
        if expected != current.version {
            let latest = current.audit.last().cloned().unwrap_or(AuditRecord {
                at_ms: current.updated_at_ms,
                actor: current.reviewer.clone().unwrap_or_default(),
                action: "updated".into(),
                details_json: "{}".into(),
            });
            return Err(StoreError::Conflict {
                id: current.id.clone(),
                conflict: Box::new(Conflict {
                    expected_version: expected,
                    current_version: current.version,
                    latest,
                }),
            });
        }
    }
    if update.is_empty() {
        return Err(rejected(
            "the update changes nothing: give a status, viewed, a classification or an \
             annotation"
                .into(),
        ));
    }
    if let Some(c) = &update.classification {
        if !CLASSIFICATIONS.contains(&c.as_str()) {
            return Err(rejected(format!(
                "classification {c:?} is not one of {}",
                CLASSIFICATIONS.join(", ")
            )));
        }
    }
    for (i, a) in update.add_annotations.iter().enumerate() {
        if a.trim().is_empty() {
            return Err(rejected(format!("annotation {i} is empty")));
        }
        if a.len() > MAX_ANNOTATION_BYTES {
            return Err(rejected(format!(
                "annotation {i} is {} bytes, over the limit of {MAX_ANNOTATION_BYTES}",
                a.len()
            )));
        }
    }
    let status = update.status.unwrap_or(current.status);
    if status != current.status && !allowed_moves(current.status).contains(&status) {
        return Err(rejected(format!(
            "a {} stub cannot become {} (it may become: {})",
            current.status.as_str(),
            status.as_str(),
            names(allowed_moves(current.status))
        )));
    }
    let viewed = update.viewed.or(current.viewed);
    let classification = update
        .classification
        .clone()
        .or(current.classification.clone());
    if current.status == ReportStatus::Reported
        && (viewed != current.viewed || classification != current.classification)
    {
        return Err(rejected(
            "it was reported to the CyberTipline: its viewed flag and classification are \
             what was filed and cannot change (annotations may still be added)"
                .into(),
        ));
    }
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
    if status == ReportStatus::Dismissed
        && current.status != ReportStatus::Dismissed
        && update.add_annotations.is_empty()
    {
        return Err(rejected(
            "dismissing needs a reason: add an annotation saying why the match is false".into(),
        ));
    }
    Ok(Reviewed {
        status,
        viewed,
        classification,
        audit_details: audit_details(update, current.version + 1),
    })
}

fn names(statuses: &[ReportStatus]) -> String {
    if statuses.is_empty() {
        return "nothing".into();
    }
    statuses
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The changed fields, and the version the update makes, as a JSON object.
fn audit_details(update: &ReportUpdate, version: i64) -> String {
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
            serde_json::Value::from(update.add_annotations.clone()),
        );
    }
    details.insert("version".into(), version.into());
    serde_json::Value::Object(details).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReportStatus::*;

    fn stub(status: ReportStatus, viewed: Option<bool>, class: Option<&str>) -> ReportRecord {
        ReportRecord {
            id: "rpt_1".into(),
            status,
            viewed,
            classification: class.map(str::to_string),
            version: 3,
            audit: vec![AuditRecord {
                at_ms: 1_000,
                actor: "alice".into(),
                action: "updated".into(),
                details_json: r#"{"viewed":true}"#.into(),
            }],
            ..ReportRecord::default()
        }
    }

    fn status(s: ReportStatus) -> ReportUpdate {
        ReportUpdate {
            status: Some(s),
            ..ReportUpdate::default()
        }
    }

    fn refused(r: &ReportRecord, u: &ReportUpdate) -> String {
        match check(r, u) {
            Err(StoreError::Rejected { reason, .. }) => reason,
            other => panic!("not refused: {other:?}"),
        }
    }

    /// Every (from, to) pair: allowed exactly when the table says so, given
    /// a stub that satisfies every other rule.
    #[test]
    fn status_moves_follow_the_table() {
        let all = [Pending, Confirmed, Dismissed, Reported];
        for from in all {
            for to in all {
                let r = stub(from, Some(true), Some("A1"));
                let u = ReportUpdate {
                    status: Some(to),
                    add_annotations: vec!["why".into()],
                    ..ReportUpdate::default()
                };
                let ok = from == to || allowed_moves(from).contains(&to);
                assert_eq!(check(&r, &u).is_ok(), ok, "{from:?} -> {to:?}");
            }
        }
    }

    /// The bug of issue 22: a reported stub accepted viewed = false.
    #[test]
    fn a_reported_stub_keeps_what_was_filed() {
        let r = stub(Reported, Some(true), Some("A1"));
        let u = ReportUpdate {
            viewed: Some(false),
            ..ReportUpdate::default()
        };
        assert!(refused(&r, &u).contains("reported"));
        let u = ReportUpdate {
            classification: Some("B2".into()),
            ..ReportUpdate::default()
        };
        refused(&r, &u);
        refused(&r, &status(Pending));
        // Annotations (e.g. the CyberTipline's report number) may be added.
        let u = ReportUpdate {
            add_annotations: vec!["NCMEC report 123".into()],
            ..ReportUpdate::default()
        };
        assert_eq!(check(&r, &u).unwrap().status, Reported);
    }

    #[test]
    fn confirming_needs_viewing_and_reporting_a_classification() {
        let r = stub(Pending, None, None);
        assert!(refused(&r, &status(Confirmed)).contains("viewed"));
        let u = ReportUpdate {
            status: Some(Reported),
            viewed: Some(true),
            ..ReportUpdate::default()
        };
        assert!(refused(&r, &u).contains("classification"));
        let confirmed = stub(Confirmed, Some(true), None);
        let u = ReportUpdate {
            viewed: Some(false),
            ..ReportUpdate::default()
        };
        assert!(refused(&confirmed, &u).contains("viewed"));
        // ... unless it leaves confirmed in the same update.
        let u = ReportUpdate {
            status: Some(Pending),
            viewed: Some(false),
            ..ReportUpdate::default()
        };
        assert!(check(&confirmed, &u).is_ok());
    }

    #[test]
    fn dismissing_needs_a_reason_and_input_is_bounded() {
        let r = stub(Pending, None, None);
        assert!(refused(&r, &status(Dismissed)).contains("reason"));
        let long = ReportUpdate {
            add_annotations: vec!["x".repeat(MAX_ANNOTATION_BYTES + 1)],
            ..ReportUpdate::default()
        };
        assert!(refused(&r, &long).contains("over the limit"));
        let bad = ReportUpdate {
            classification: Some("Z9".into()),
            ..ReportUpdate::default()
        };
        assert!(refused(&r, &bad).contains("Z9"));
        assert!(refused(&r, &ReportUpdate::default()).contains("nothing"));
    }

    /// A stale version is a conflict naming the change that won.
    #[test]
    fn a_stale_version_names_the_winning_change() {
        let r = stub(Pending, Some(true), None);
        let u = ReportUpdate {
            status: Some(Confirmed),
            expected_version: Some(2),
            ..ReportUpdate::default()
        };
        match check(&r, &u) {
            Err(e @ StoreError::Conflict { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("alice") && msg.contains("1970-01-01T00:00:01.000Z"));
                assert!(msg.contains("now version 3"), "{msg}");
            }
            other => panic!("no conflict: {other:?}"),
        }
        let u = ReportUpdate {
            expected_version: Some(3),
            ..u
        };
        let ok = check(&r, &u).unwrap();
        assert!(ok.audit_details.contains("\"version\":4"));
    }
}
