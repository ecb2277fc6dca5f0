//! A report stub as JSON shaped like a CyberTipline report, for a person to
//! complete. Fields the matcher cannot know are present and `null`, so the
//! gaps are visible rather than silently missing.

use serde_json::{json, Value};

use crate::store::ReportRecord;
use crate::timeutil::rfc3339_ms;

/// Builds the export document.
pub fn cybertipline_json(r: &ReportRecord) -> Value {
    let mut hashes = Vec::new();
    for (name, value) in [("MD5", &r.md5), ("SHA1", &r.sha1), ("SHA256", &r.sha256)] {
        if !value.is_empty() {
            hashes.push(json!({ "hashType": name, "value": value }));
        }
    }
    let mut details = Vec::new();
    if !r.pdq.is_empty() {
        details.push(json!({ "type": "PDQ", "name": "pdq", "value": r.pdq }));
    }
    if let Some(q) = r.quality {
        details.push(json!({ "type": "PDQ", "name": "pdq_quality", "value": q.to_string() }));
    }
    for m in &r.matches {
        let mut value = format!(
            "list={} id={} category={} kind={} distance={}",
            m.list, m.id, m.category, m.kind, m.distance
        );
        if let Some(v) = &m.variant {
            value.push_str(&format!(" variant={v}"));
        }
        details.push(json!({ "type": "MATCH", "name": "hash_list_match", "value": value }));
    }
    json!({
        "format": "sigil-cybertipline-draft/1",
        "incidentSummary": {
            "incidentType": r.incident_type,
            "incidentDateTime": rfc3339_ms(r.detected_at_ms),
            "incidentDateTimeDescription": "time the hash match was detected by sigil",
            "escalateToHighPriority": null,
        },
        "internetDetails": null,
        "reporter": {
            "reportingPerson": null,
            "companyTemplate": null,
            "organisation": {
                "name": r.reporting_org,
                "email": r.reporting_email,
            },
        },
        "reportedPerson": {
            "espIdentifier": if r.submitter_ref.is_empty() { Value::Null } else { json!(r.submitter_ref) },
            "screenName": null,
            "ipCaptureEvents": [],
            "devices": [],
        },
        "victim": null,
        "additionalInfo": null,
        "files": [{
            "fileName": if r.file_name.is_empty() { Value::Null } else { json!(r.file_name) },
            "espContentReference": r.content_ref,
            "fileViewedByEsp": r.viewed,
            "publiclyAvailable": null,
            "industryClassification": r.classification,
            "originalFileHash": hashes,
            "annotations": r.annotations,
            "fileDetails": details,
        }],
        "sigil": {
            "reportId": r.id,
            "status": r.status.as_str(),
            "source": r.source,
            "preservationDeadline": rfc3339_ms(r.preservation_deadline_ms),
            "reviewer": r.reviewer,
            "audit": r.audit.iter().map(|a| json!({
                "at": rfc3339_ms(a.at_ms),
                "actor": a.actor,
                "action": a.action,
                "details": serde_json::from_str::<Value>(&a.details_json).unwrap_or(Value::Null),
            })).collect::<Vec<_>>(),
        },
    })
}
