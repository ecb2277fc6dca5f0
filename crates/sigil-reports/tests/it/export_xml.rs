//! The CyberTipline XML draft against the schema description in
//! `testdata/cybertipline/element-order.txt`: every parent's children in
//! schema order and known to the schema; every confirmed stub in a store
//! exports; hostile text is escaped.

use std::collections::HashMap;
use std::path::Path;

use quick_xml::events::Event;
use quick_xml::Reader;
use sigil_reports::export::{cybertipline_xml, left_for_reviewer};
use sigil_reports::{
    NewReport, ReportFilter, ReportRecord, ReportStatus, ReportStore, ReportUpdate,
    SqliteReportStore, StoredMatch,
};

/// parent → its children in schema order.
fn schema() -> HashMap<String, Vec<String>> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/cybertipline/element-order.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (parent, children) = l.split_once(':').unwrap();
            (
                parent.trim().to_string(),
                children.split_whitespace().map(str::to_string).collect(),
            )
        })
        .collect()
}

/// Every element with its parent's name and its children's names, in
/// document order; the text of every leaf by path.
struct Parsed {
    children: Vec<(String, Vec<String>)>,
    texts: Vec<(String, String)>,
}

fn parse(xml: &str) -> Parsed {
    let mut reader = Reader::from_str(xml);
    // (name, children, text) of the open elements.
    let mut stack: Vec<(String, Vec<String>, String)> = Vec::new();
    let mut parsed = Parsed {
        children: Vec::new(),
        texts: Vec::new(),
    };
    let name_of = |n: &str| n.to_string();
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) => {
                let name = name_of(e.name().as_ref());
                if let Some(parent) = stack.last_mut() {
                    parent.1.push(name.clone());
                }
                stack.push((name, Vec::new(), String::new()));
            }
            Event::Empty(e) => {
                let name = name_of(e.name().as_ref());
                if let Some(parent) = stack.last_mut() {
                    parent.1.push(name);
                }
            }
            Event::Text(t) => {
                if let Some(open) = stack.last_mut() {
                    open.2.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let entity = r.xml10_content();
                let resolved = match r.resolve_char_ref().unwrap() {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::resolve_xml_entity(&entity)
                        .unwrap_or_else(|| panic!("unknown entity &{entity};"))
                        .to_string(),
                };
                if let Some(open) = stack.last_mut() {
                    open.2.push_str(&resolved);
                }
            }
            Event::End(_) => {
                let path: Vec<&str> = stack.iter().map(|(n, _, _)| n.as_str()).collect();
                let path = path.join("/");
                let (name, children, text) = stack.pop().unwrap();
                if children.is_empty() && !text.is_empty() {
                    parsed.texts.push((path, text));
                }
                parsed.children.push((name, children));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(stack.is_empty(), "unclosed elements");
    parsed
}

/// Children of every described parent are known to the schema and in its
/// order (an element may be absent, never moved).
fn assert_schema_order(xml: &str) {
    let schema = schema();
    let parsed = parse(xml);
    let mut checked = 0;
    for (parent, children) in &parsed.children {
        let Some(order) = schema.get(parent) else {
            continue;
        };
        checked += 1;
        let mut last = 0;
        for child in children {
            let at = order
                .iter()
                .position(|c| c == child)
                .unwrap_or_else(|| panic!("<{child}> is not a child of <{parent}> in the schema"));
            assert!(
                at >= last,
                "<{child}> comes after <{}> in <{parent}>, against the schema order {order:?}",
                order[last]
            );
            last = at;
        }
    }
    for required in ["report", "incidentSummary", "reporter", "fileDetails"] {
        assert!(
            parsed.children.iter().any(|(p, _)| p == required),
            "no <{required}> in the export"
        );
    }
    assert!(checked >= 4, "only {checked} described parents exported");
}

fn confirmed_stub(store: &dyn ReportStore, ms: i64, hostile: &str) -> String {
    let new = NewReport {
        detected_at_ms: ms,
        reporting_org: format!("Example {hostile}"),
        reporting_email: "ts@example.invalid".into(),
        submitter_ref: format!("user {hostile}"),
        content_ref: format!("s3://bucket/{hostile}"),
        file_name: format!("{hostile}.jpg"),
        source: "image".into(),
        md5: format!("{ms:032x}"),
        sha1: format!("{ms:040x}"),
        sha256: format!("{ms:064x}"),
        pdq: format!("{:064x}", ms * 3),
        quality: Some(92),
        matches: vec![StoredMatch {
            id: format!("entry {hostile}"),
            list: "ncmec".into(),
            category: "A1".into(),
            note: None,
            kind: "pdq".into(),
            distance: 4,
            variant: Some("rot90".into()),
        }],
        actor: "test".into(),
        index_identity: "0123456789abcdef".into(),
    };
    let id = store.create_many(&[new]).unwrap().remove(0).id;
    let confirm = ReportUpdate {
        status: Some(ReportStatus::Confirmed),
        viewed: Some(true),
        classification: Some("A2".into()),
        add_annotations: vec![format!("note {hostile}")],
        ..ReportUpdate::default()
    };
    store.update(&id, &confirm, "rev", ms + 1).unwrap();
    id
}

const HOSTILE: &str = "<b>&amp;\"'</report>]]>\u{1}";

/// Every confirmed stub in a store exports, in schema order, with the
/// reviewer's findings and the hashes; the hostile text comes back intact
/// (escaped on the way out, unescaped by a parser).
#[test]
fn every_confirmed_stub_exports_in_schema_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteReportStore::open(&dir.path().join("r.db")).unwrap();
    for i in 0..5 {
        confirmed_stub(&store, 1_000 + i, HOSTILE);
    }
    let page = store
        .list(&ReportFilter {
            status: Some(ReportStatus::Confirmed),
            page_size: 100,
            ..ReportFilter::default()
        })
        .unwrap();
    assert_eq!(page.reports.len(), 5);
    for listed in &page.reports {
        let r = store.get(&listed.id).unwrap();
        let xml = cybertipline_xml(&r).unwrap();
        assert_schema_order(&xml);
        assert!(!xml.contains("<b>"), "markup leaked: {xml}");
        let parsed = parse(&xml);
        let text = |path: &str| -> Vec<&str> {
            parsed
                .texts
                .iter()
                .filter(|(p, _)| p.ends_with(path))
                .map(|(_, t)| t.as_str())
                .collect()
        };
        assert_eq!(text("fileDetails/industryClassification"), ["A2"]);
        assert_eq!(text("fileDetails/fileViewedByEsp"), ["true"]);
        assert_eq!(
            text("fileDetails/originalFileHash").len(),
            3,
            "MD5, SHA1, SHA256"
        );
        assert!(xml.contains(r#"<originalFileHash hashType="SHA256">"#));
        let escaped_back = HOSTILE.replace('\u{1}', "\u{FFFD}");
        assert_eq!(
            text("personOrUserReported/espIdentifier"),
            [format!("user {escaped_back}").as_str()]
        );
        assert_eq!(
            text("fileDetails/originalFileName"),
            [format!("{escaped_back}.jpg").as_str()]
        );
        // Nothing the reviewer already gave is listed as missing.
        let left: Vec<&str> = left_for_reviewer(&r).iter().map(|f| f.element).collect();
        assert!(!left.contains(&"fileDetails/industryClassification"));
        assert!(left.contains(&"fileDetails/reportId"));
    }
}

/// A pending stub exports too, and says what the reviewer must still give.
#[test]
fn a_pending_stub_lists_what_is_left() {
    let r = ReportRecord {
        id: "rpt_x".into(),
        incident_type: sigil_reports::INCIDENT_TYPE.into(),
        ..ReportRecord::default()
    };
    let xml = cybertipline_xml(&r).unwrap();
    assert_schema_order(&xml);
    for element in [
        "fileDetails/industryClassification",
        "fileDetails/fileViewedByEsp",
        "report/reporter/reportingPerson/email",
    ] {
        assert!(
            xml.contains(&format!("element=\"{element}\"")),
            "{element} not listed: {xml}"
        );
    }
}
