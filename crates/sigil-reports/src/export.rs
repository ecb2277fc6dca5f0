//! A report stub as a CyberTipline report draft, for a person to complete:
//! the Reporting API's XML ([`cybertipline_xml`], elements in the schema's
//! order) and a JSON rendering of the same ([`cybertipline_json`]). Fields
//! the matcher cannot know are listed ([`left_for_reviewer`]; in the JSON
//! also present and `null`), so the gaps are visible rather than silently
//! missing.

use serde_json::{json, Value};

use crate::time::rfc3339_ms;
use crate::ReportRecord;

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
        "leftForReviewer": left_for_reviewer(r),
        "sigil": {
            "reportId": r.id,
            "version": r.version,
            "occurrences": r.occurrences,
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

// ------------------------------------------------------------------- XML

use std::io;

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

/// A field of the CyberTipline report the matcher cannot fill: where it
/// goes and why it is empty. The console and `sigil reports show` list
/// them; the XML draft carries them in `<leftForReviewer>`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeftForReviewer {
    /// The element's path, e.g. `report/reporter/reportingPerson/firstName`.
    pub element: &'static str,
    pub why: &'static str,
}

/// What the reviewer must still supply for `r`'s report, in document order.
pub fn left_for_reviewer(r: &ReportRecord) -> Vec<LeftForReviewer> {
    let mut left = Vec::new();
    let mut add = |element, why| left.push(LeftForReviewer { element, why });
    add(
        "report/internetDetails",
        "where the content was found (web page, chat, email, ...): the platform knows, the matcher does not",
    );
    add(
        "report/reporter/reportingPerson/firstName",
        "the person filing the report",
    );
    add(
        "report/reporter/reportingPerson/lastName",
        "the person filing the report",
    );
    if r.reporting_email.is_empty() {
        add(
            "report/reporter/reportingPerson/email",
            "required by NCMEC: set reporting_email in the server config",
        );
    }
    add(
        "report/personOrUserReported",
        "the account that uploaded the content (screen name, IP capture events, devices); sigil has only the submitter reference",
    );
    add(
        "fileDetails/reportId",
        "assigned by NCMEC when the report is opened (POST /submit)",
    );
    add(
        "fileDetails/fileId",
        "assigned by NCMEC when the file is uploaded (POST /upload)",
    );
    if r.viewed.is_none() {
        add(
            "fileDetails/fileViewedByEsp",
            "whether a person viewed the file: set it in the review",
        );
    }
    add(
        "fileDetails/publiclyAvailable",
        "whether the file was publicly accessible: the platform knows",
    );
    add(
        "fileDetails/fileAnnotations",
        "tags describing the file (e.g. generativeAi, viral): a reviewer's judgement",
    );
    if r.classification.is_none() {
        add(
            "fileDetails/industryClassification",
            "A1, A2, B1 or B2: set it in the review",
        );
    }
    left
}

/// Text as XML 1.0 may carry it: characters the format forbids (most
/// control characters) become U+FFFD; markup characters are escaped by the
/// writer.
fn xml_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 => '\u{FFFD}',
            '\u{FFFE}' | '\u{FFFF}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

type Xml = Writer<Vec<u8>>;

/// `<name>text</name>`, the text escaped.
fn leaf(w: &mut Xml, name: &str, text: &str) -> io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(&xml_text(text)))?;
    Ok(())
}

/// The stub as a CyberTipline Reporting API draft: a `<cyberTiplineDraft>`
/// holding the `<report>` document (the body of `POST /submit`), the
/// `<fileDetails>` document of the matched file (`POST /fileinfo`), and
/// `<leftForReviewer>` (what a person must still fill). Children follow the
/// schema's order (`testdata/cybertipline/element-order.txt`); every value is
/// escaped by the XML writer.
pub fn cybertipline_xml(r: &ReportRecord) -> io::Result<String> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.create_element("cyberTiplineDraft")
        .with_attribute(("generator", "sigil"))
        .with_attribute(("sigilReportId", xml_text(&r.id).as_str()))
        .with_attribute(("status", r.status.as_str()))
        .with_attribute(("version", r.version.to_string().as_str()))
        .write_inner_content(|w| {
            write_report(w, r)?;
            write_file_details(w, r)?;
            w.create_element("leftForReviewer")
                .write_inner_content(|w| {
                    for f in left_for_reviewer(r) {
                        w.create_element("field")
                            .with_attribute(("element", f.element))
                            .write_text_content(BytesText::new(f.why))?;
                    }
                    Ok(())
                })?;
            Ok(())
        })?;
    let mut out = String::from_utf8(w.into_inner())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    out.push('\n');
    Ok(out)
}

/// `<report>`: incidentSummary, reporter, personOrUserReported,
/// additionalInfo (internetDetails and the rest are the reviewer's).
fn write_report(w: &mut Xml, r: &ReportRecord) -> io::Result<()> {
    w.create_element("report").write_inner_content(|w| {
        w.create_element("incidentSummary")
            .write_inner_content(|w| {
                leaf(w, "incidentType", &r.incident_type)?;
                leaf(w, "incidentDateTime", &rfc3339_ms(r.detected_at_ms))?;
                leaf(
                    w,
                    "incidentDateTimeDescription",
                    "time the hash match was detected by sigil",
                )
            })?;
        w.create_element("reporter").write_inner_content(|w| {
            // Its email is required; without one the reviewer adds the
            // whole element (see leftForReviewer).
            if !r.reporting_email.is_empty() {
                w.create_element("reportingPerson")
                    .write_inner_content(|w| leaf(w, "email", &r.reporting_email))?;
            }
            if !r.reporting_org.is_empty() {
                leaf(w, "companyTemplate", &r.reporting_org)?;
            }
            Ok(())
        })?;
        if !r.submitter_ref.is_empty() {
            w.create_element("personOrUserReported")
                .write_inner_content(|w| leaf(w, "espIdentifier", &r.submitter_ref))?;
        }
        let lists: Vec<String> = r
            .matches
            .iter()
            .map(|m| format!("{}/{}", m.list, m.id))
            .collect();
        leaf(
            w,
            "additionalInfo",
            &format!(
                "Detected by a hash match (sigil report {}) against hash list entries: {}. \
                 Seen {} time(s).",
                r.id,
                lists.join(", "),
                r.occurrence_count.max(1)
            ),
        )
    })?;
    Ok(())
}

/// `<fileDetails>` of the matched file: name, viewed flag,
/// classification, hashes, and PDQ and match details as name/value pairs.
fn write_file_details(w: &mut Xml, r: &ReportRecord) -> io::Result<()> {
    w.create_element("fileDetails").write_inner_content(|w| {
        // Assigned by NCMEC: left empty for the reviewer (see leftForReviewer).
        w.create_element("reportId").write_empty()?;
        w.create_element("fileId").write_empty()?;
        if !r.file_name.is_empty() {
            leaf(w, "originalFileName", &r.file_name)?;
        }
        if let Some(viewed) = r.viewed {
            leaf(w, "fileViewedByEsp", if viewed { "true" } else { "false" })?;
        }
        if let Some(c) = &r.classification {
            leaf(w, "industryClassification", c)?;
        }
        for (kind, value) in [("MD5", &r.md5), ("SHA1", &r.sha1), ("SHA256", &r.sha256)] {
            if !value.is_empty() {
                w.create_element("originalFileHash")
                    .with_attribute(("hashType", kind))
                    .write_text_content(BytesText::new(&xml_text(value)))?;
            }
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        if !r.pdq.is_empty() {
            pairs.push(("PDQ".into(), r.pdq.clone()));
        }
        if let Some(q) = r.quality {
            pairs.push(("PDQ quality".into(), q.to_string()));
        }
        for m in &r.matches {
            let mut value = format!(
                "list={} entry={} category={} kind={} distance={}",
                m.list, m.id, m.category, m.kind, m.distance
            );
            if let Some(v) = &m.variant {
                value.push_str(&format!(" variant={v}"));
            }
            pairs.push(("hash list match".into(), value));
        }
        if !pairs.is_empty() {
            w.create_element("details")
                .with_attribute(("type", "HASH"))
                .write_inner_content(|w| {
                    for (name, value) in &pairs {
                        w.create_element("nameValuePair").write_inner_content(|w| {
                            leaf(w, "name", name)?;
                            leaf(w, "value", value)
                        })?;
                    }
                    Ok(())
                })?;
        }
        Ok(())
    })?;
    Ok(())
}
