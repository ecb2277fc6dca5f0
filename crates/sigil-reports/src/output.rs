//! Stubs as text for people and programs: the listing formats of `sigil
//! reports list` (text, JSON Lines, CSV), one stub in full (`show`), and the
//! preservation list (CSV, one row per content reference to preserve).
//!
//! Every field a platform or a reviewer supplied (content and submitter
//! references, annotations, file names) is written through a serializer
//! (serde_json, csv) or, in the text formats, with control characters
//! escaped, so a crafted reference cannot forge lines or columns.

use std::io::Write;

use serde::Serialize;

use crate::time::rfc3339_ms;
use crate::{ReportCounts, ReportRecord};

/// Why a listing could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("writing the output: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// A field as one line of text: control characters (newlines included)
/// escaped.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || c == '\\' {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whole days from `now_ms` to `deadline_ms`, negative when overdue
/// (rounded down, so the last day before a deadline is day 0).
pub fn days_left(deadline_ms: i64, now_ms: i64) -> i64 {
    (deadline_ms - now_ms).div_euclid(86_400_000)
}

/// One stub as a JSON object: every field, with times also as RFC 3339.
/// Used by `list --format jsonl` (one per line) and `show --format json`.
pub fn stub_json(r: &ReportRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or(serde_json::Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("detected_at".into(), rfc3339_ms(r.detected_at_ms).into());
        o.insert(
            "preservation_deadline".into(),
            rfc3339_ms(r.preservation_deadline_ms).into(),
        );
    }
    v
}

/// One stub per line, each a JSON object with its `id`.
pub fn write_jsonl(out: &mut dyn Write, reports: &[ReportRecord]) -> Result<(), OutputError> {
    for r in reports {
        serde_json::to_writer(&mut *out, &stub_json(r))?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// A listing row of the CSV format.
#[derive(Serialize)]
struct CsvRow<'a> {
    id: &'a str,
    status: &'a str,
    version: i64,
    detected_at: String,
    preservation_deadline: String,
    occurrences: u32,
    submitter_ref: &'a str,
    content_ref: &'a str,
    file_name: &'a str,
    source: &'a str,
    sha256: &'a str,
    md5: &'a str,
    pdq: &'a str,
    /// `list/entry` of every match, `;`-separated.
    matches: String,
    /// Every match's category, `;`-separated, in the order of `matches`.
    categories: String,
    viewed: String,
    classification: &'a str,
    reviewer: &'a str,
}

/// A header and one row per stub.
pub fn write_csv(out: &mut dyn Write, reports: &[ReportRecord]) -> Result<(), OutputError> {
    let mut w = csv::Writer::from_writer(out);
    if reports.is_empty() {
        // The header alone, so an empty listing is still a valid table.
        w.write_record([
            "id",
            "status",
            "version",
            "detected_at",
            "preservation_deadline",
            "occurrences",
            "submitter_ref",
            "content_ref",
            "file_name",
            "source",
            "sha256",
            "md5",
            "pdq",
            "matches",
            "categories",
            "viewed",
            "classification",
            "reviewer",
        ])?;
    }
    for r in reports {
        w.serialize(CsvRow {
            id: &r.id,
            status: r.status.as_str(),
            version: r.version,
            detected_at: rfc3339_ms(r.detected_at_ms),
            preservation_deadline: rfc3339_ms(r.preservation_deadline_ms),
            occurrences: r.occurrence_count,
            submitter_ref: &r.submitter_ref,
            content_ref: &r.content_ref,
            file_name: &r.file_name,
            source: &r.source,
            sha256: &r.sha256,
            md5: &r.md5,
            pdq: &r.pdq,
            matches: r
                .matches
                .iter()
                .map(|m| format!("{}/{}", m.list, m.id))
                .collect::<Vec<_>>()
                .join(";"),
            categories: r
                .matches
                .iter()
                .map(|m| m.category.as_str())
                .collect::<Vec<_>>()
                .join(";"),
            viewed: r.viewed.map(|v| v.to_string()).unwrap_or_default(),
            classification: r.classification.as_deref().unwrap_or(""),
            reviewer: r.reviewer.as_deref().unwrap_or(""),
        })?;
    }
    w.flush()?;
    Ok(())
}

/// One line per stub for a person: id, status, days to the preservation
/// deadline (`OVERDUE` past it), sightings, matches, content reference.
pub fn write_text(
    out: &mut dyn Write,
    reports: &[ReportRecord],
    now_ms: i64,
) -> Result<(), OutputError> {
    for r in reports {
        let days = days_left(r.preservation_deadline_ms, now_ms);
        let deadline = if days < 0 {
            format!("OVERDUE {}d", -days)
        } else {
            format!("{days}d left")
        };
        let matches: Vec<String> = r
            .matches
            .iter()
            .map(|m| {
                format!(
                    "{}/{}({},{}:{})",
                    m.list, m.id, m.category, m.kind, m.distance
                )
            })
            .collect();
        writeln!(
            out,
            "{}  {:<9}  v{}  detected {}  {:<13}  seen {}x  {}  {}",
            r.id,
            r.status.as_str(),
            r.version,
            rfc3339_ms(r.detected_at_ms),
            deadline,
            r.occurrence_count,
            one_line(&matches.join(" ")),
            one_line(&r.content_ref),
        )?;
    }
    Ok(())
}

/// The counts line under a text listing.
pub fn counts_line(c: &ReportCounts) -> String {
    format!(
        "{} stubs: {} pending, {} confirmed, {} dismissed, {} reported",
        c.total(),
        c.pending,
        c.confirmed,
        c.dismissed,
        c.reported
    )
}

/// One stub in full, for a person: every field, the matches, sightings,
/// annotations and the audit trail.
pub fn write_stub_text(
    out: &mut dyn Write,
    r: &ReportRecord,
    now_ms: i64,
) -> Result<(), OutputError> {
    let opt = |s: &Option<String>| s.as_deref().map(one_line).unwrap_or_else(|| "-".into());
    writeln!(out, "report {}  (version {})", r.id, r.version)?;
    writeln!(out, "  status:           {}", r.status.as_str())?;
    writeln!(out, "  incident type:    {}", r.incident_type)?;
    writeln!(out, "  detected:         {}", rfc3339_ms(r.detected_at_ms))?;
    writeln!(
        out,
        "  preserve until:   {} ({} days left)",
        rfc3339_ms(r.preservation_deadline_ms),
        days_left(r.preservation_deadline_ms, now_ms)
    )?;
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            one_line(s)
        }
    };
    writeln!(
        out,
        "  reporter:         {} <{}>",
        or_dash(&r.reporting_org),
        or_dash(&r.reporting_email)
    )?;
    writeln!(out, "  submitter ref:    {}", one_line(&r.submitter_ref))?;
    writeln!(out, "  content ref:      {}", one_line(&r.content_ref))?;
    writeln!(out, "  file name:        {}", one_line(&r.file_name))?;
    writeln!(out, "  source:           {}", r.source)?;
    for (name, value) in [
        ("md5", &r.md5),
        ("sha1", &r.sha1),
        ("sha256", &r.sha256),
        ("pdq", &r.pdq),
    ] {
        if !value.is_empty() {
            writeln!(out, "  {name:<17} {value}", name = format!("{name}:"))?;
        }
    }
    if let Some(q) = r.quality {
        writeln!(out, "  pdq quality:      {q}")?;
    }
    writeln!(
        out,
        "  viewed:           {}",
        r.viewed.map_or("-".to_string(), |v| v.to_string())
    )?;
    writeln!(out, "  classification:   {}", opt(&r.classification))?;
    writeln!(out, "  last reviewer:    {}", opt(&r.reviewer))?;
    writeln!(out, "  matches ({}):", r.matches.len())?;
    for m in &r.matches {
        writeln!(
            out,
            "    {}/{}  category {}  {} distance {}{}{}",
            one_line(&m.list),
            one_line(&m.id),
            one_line(&m.category),
            m.kind,
            m.distance,
            m.variant
                .as_deref()
                .map(|v| format!("  variant {v}"))
                .unwrap_or_default(),
            m.note
                .as_deref()
                .map(|n| format!("  note {}", one_line(n)))
                .unwrap_or_default(),
        )?;
    }
    writeln!(out, "  sightings ({}):", r.occurrences.len())?;
    for o in &r.occurrences {
        writeln!(
            out,
            "    {}  by {}  submitter {}  content {}",
            rfc3339_ms(o.at_ms),
            one_line(&o.actor),
            one_line(&o.submitter_ref),
            one_line(&o.content_ref)
        )?;
    }
    writeln!(out, "  annotations ({}):", r.annotations.len())?;
    for a in &r.annotations {
        writeln!(out, "    - {}", one_line(a))?;
    }
    writeln!(out, "  audit trail:")?;
    for a in &r.audit {
        writeln!(
            out,
            "    {}  {}  {}  {}",
            rfc3339_ms(a.at_ms),
            one_line(&a.actor),
            a.action,
            one_line(&a.details_json)
        )?;
    }
    Ok(())
}

/// A row of the preservation list.
#[derive(Serialize)]
struct PreservationRow<'a> {
    report_id: &'a str,
    status: &'a str,
    preservation_deadline: String,
    content_ref: &'a str,
    submitter_ref: &'a str,
    sighted_at: String,
    sha256: &'a str,
    md5: &'a str,
}

/// The preservation list: for each stub (its occurrences loaded), one row
/// per distinct content reference it was sighted under (a stub without
/// occurrences, from before they were kept: its own), so the platform's
/// preservation job keeps every copy until the deadline.
pub fn write_preservation_csv(
    out: &mut dyn Write,
    reports: &[ReportRecord],
) -> Result<u64, OutputError> {
    // The header is written here, also for an empty list (serde would
    // write it only with the first row).
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out);
    let mut rows = 0u64;
    w.write_record([
        "report_id",
        "status",
        "preservation_deadline",
        "content_ref",
        "submitter_ref",
        "sighted_at",
        "sha256",
        "md5",
    ])?;
    for r in reports {
        let mut seen: Vec<(&str, &str)> = Vec::new();
        let sightings: Vec<(&str, &str, i64)> = if r.occurrences.is_empty() {
            vec![(&r.content_ref, &r.submitter_ref, r.detected_at_ms)]
        } else {
            r.occurrences
                .iter()
                .map(|o| (o.content_ref.as_str(), o.submitter_ref.as_str(), o.at_ms))
                .collect()
        };
        for (content_ref, submitter_ref, at) in sightings {
            if seen.contains(&(content_ref, submitter_ref)) {
                continue;
            }
            seen.push((content_ref, submitter_ref));
            w.serialize(PreservationRow {
                report_id: &r.id,
                status: r.status.as_str(),
                preservation_deadline: rfc3339_ms(r.preservation_deadline_ms),
                content_ref,
                submitter_ref,
                sighted_at: rfc3339_ms(at),
                sha256: &r.sha256,
                md5: &r.md5,
            })?;
            rows += 1;
        }
    }
    w.flush()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Occurrence, ReportStatus};

    fn record() -> ReportRecord {
        ReportRecord {
            id: "rpt_1".into(),
            status: ReportStatus::Pending,
            version: 1,
            detected_at_ms: 0,
            preservation_deadline_ms: 10 * 86_400_000,
            content_ref: "a,\"b\"\nc".into(),
            occurrence_count: 2,
            occurrences: vec![
                Occurrence {
                    at_ms: 0,
                    submitter_ref: "u".into(),
                    content_ref: "a,\"b\"\nc".into(),
                    actor: "x".into(),
                },
                Occurrence {
                    at_ms: 5,
                    submitter_ref: "u".into(),
                    content_ref: "other".into(),
                    actor: "x".into(),
                },
            ],
            ..ReportRecord::default()
        }
    }

    /// CSV quoting keeps a hostile reference in its column; the text
    /// format escapes the newline; JSON Lines is one object per line.
    #[test]
    fn hostile_references_stay_in_their_field() {
        let mut csv_out = Vec::new();
        write_csv(&mut csv_out, &[record()]).unwrap();
        let mut rdr = csv::Reader::from_reader(csv_out.as_slice());
        let row = rdr.records().next().unwrap().unwrap();
        assert_eq!(&row[7], "a,\"b\"\nc");
        let mut text = Vec::new();
        write_text(&mut text, &[record()], 0).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("10d left") && text.contains("a,\"b\"\\nc"),
            "{text}"
        );
        let mut jsonl = Vec::new();
        write_jsonl(&mut jsonl, &[record(), record()]).unwrap();
        let lines: Vec<&str> = std::str::from_utf8(&jsonl).unwrap().lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["id"], "rpt_1");
        assert_eq!(v["preservation_deadline"], "1970-01-11T00:00:00.000Z");
    }

    /// One preservation row per distinct sighting's content reference.
    #[test]
    fn preservation_lists_every_copy() {
        let mut out = Vec::new();
        assert_eq!(write_preservation_csv(&mut out, &[record()]).unwrap(), 2);
        let mut rdr = csv::Reader::from_reader(out.as_slice());
        let refs: Vec<String> = rdr.records().map(|r| r.unwrap()[3].to_string()).collect();
        assert_eq!(refs, ["a,\"b\"\nc", "other"]);
        assert_eq!(days_left(86_400_000 - 1, 0), 0);
        assert_eq!(days_left(-1, 0), -1);
    }
}
