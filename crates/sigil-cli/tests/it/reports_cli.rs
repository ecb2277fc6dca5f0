//! `sigil scan --reports` and `sigil reports` as processes: the README's
//! scan filed twice writes each stub once; listing formats, show, update
//! under the review rules and versions, export, preservation and prune;
//! errors that name their input.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `sigil`, run from the repository root (the docs' commands name
/// `testdata/...`).
fn sigil() -> Command {
    let mut c = crate::support::sigil();
    c.current_dir(repo());
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("sigil runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `sigil scan testdata --index testdata/index` (the README's first
/// command) with `--reports --db DB`; its records go to `out`.
fn scan_with_reports(db: &Path, out: &Path) -> Output {
    let o = run(sigil()
        .args(["scan", "testdata", "--index", "testdata/index", "--quiet"])
        .args(["--threads", "2", "--reports", "--db"])
        .arg(db)
        .arg("--output")
        .arg(out)
        .arg("--overwrite"));
    assert_eq!(o.status.code(), Some(1), "matches expected: {}", stderr(&o));
    o
}

fn list_jsonl(db: &Path) -> Vec<serde_json::Value> {
    let o = run(sigil()
        .args(["reports", "--db"])
        .arg(db)
        .args(["list", "--format", "jsonl", "--limit", "0"]));
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The target of issue 22: the README's scan with --reports, run twice,
/// files each match's stub once, and every matched path once.
#[test]
fn scanning_the_readme_testdata_twice_files_each_stub_once() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("reports.db");
    let out = d.path().join("scan.jsonl");
    scan_with_reports(&db, &out);
    let records: Vec<serde_json::Value> = fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let matched: Vec<&serde_json::Value> =
        records.iter().filter(|r| r["verdict"] == "match").collect();
    assert!(matched.len() >= 2, "the demo index matches testdata");
    // One stub per content and set of entries.
    let keys: BTreeSet<(String, Vec<String>)> = matched
        .iter()
        .map(|r| {
            let mut entries: Vec<String> = r["matches"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| format!("{}/{}", m["list"], m["id"]))
                .collect();
            entries.sort();
            entries.dedup();
            (r["sha256"].as_str().unwrap().to_string(), entries)
        })
        .collect();

    let first = list_jsonl(&db);
    assert_eq!(first.len(), keys.len());
    let sightings = |stubs: &[serde_json::Value]| -> u64 {
        stubs
            .iter()
            .map(|s| s["occurrence_count"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(sightings(&first) as usize, matched.len());
    for s in &first {
        assert_eq!(s["status"], "pending");
        assert_eq!(s["source"], "scan");
        assert!(s["content_ref"].as_str().unwrap().starts_with("testdata"));
        assert!(s["id"].as_str().unwrap().starts_with("rpt_"));
    }

    // Again: nothing new.
    scan_with_reports(&db, &out);
    let second = list_jsonl(&db);
    let ids = |v: &[serde_json::Value]| -> BTreeMap<String, u64> {
        v.iter()
            .map(|s| {
                (
                    s["id"].as_str().unwrap().to_string(),
                    s["occurrence_count"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(ids(&first), ids(&second));
    // A third time with the summary on: every match already recorded.
    let o = run(sigil()
        .args([
            "scan",
            "testdata",
            "--index",
            "testdata/index",
            "--threads",
            "2",
        ])
        .args(["--reports", "--db"])
        .arg(&db)
        .arg("--output")
        .arg(&out)
        .arg("--overwrite"));
    assert!(
        stderr(&o).contains(&format!(
            "0 opened, 0 sightings added to open stubs, {} already recorded",
            matched.len()
        )),
        "{}",
        stderr(&o)
    );
}

/// Review from the command line: list formats, show, update under the
/// rules (with a version conflict naming the first change), export XML and
/// JSON, preservation CSV, prune dry run; bad input named.
#[test]
fn reports_commands_review_export_and_refuse_bad_input() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("reports.db");
    scan_with_reports(&db, &d.path().join("scan.jsonl"));
    let stubs = list_jsonl(&db);
    let id = stubs[0]["id"].as_str().unwrap().to_string();
    let reports = |args: &[&str]| run(sigil().args(["reports", "--db"]).arg(&db).args(args));

    // Text listing with counts; CSV with a header and one row per stub.
    let o = reports(&["list", "--order", "deadline"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("{} stubs: {} pending", stubs.len(), stubs.len())));
    let o = reports(&["list", "--format", "csv"]);
    let mut rdr = csv::Reader::from_reader(o.stdout.as_slice());
    assert_eq!(&rdr.headers().unwrap()[0], "id");
    assert_eq!(rdr.records().count(), stubs.len());

    // Confirming without viewing is refused, naming the rule.
    let o = reports(&["update", &id, "--status", "confirmed"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("viewed"), "{}", stderr(&o));
    let o = reports(&[
        "update",
        &id,
        "--viewed",
        "true",
        "--note",
        "checked",
        "--expected-version",
        "1",
        "--actor",
        "alice",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("version 2"), "{}", stdout(&o));
    // Bob decided on version 1 too: a conflict naming Alice's change.
    let o = reports(&[
        "update",
        &id,
        "--status",
        "dismissed",
        "--note",
        "no",
        "--expected-version",
        "1",
        "--actor",
        "bob",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("alice") && e.contains("now version 2"), "{e}");
    let o = reports(&[
        "update",
        &id,
        "--status",
        "confirmed",
        "--classification",
        "a1",
        "--expected-version",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Show: the audit trail names both reviews.
    let o = reports(&["show", &id]);
    let text = stdout(&o);
    assert!(text.contains("status:           confirmed"), "{text}");
    assert!(text.contains("alice"), "{text}");

    // Export: XML (escaped, in schema order: tested in sigil-reports) and JSON.
    let xml_path = d.path().join("draft.xml");
    let o = run(sigil()
        .args(["reports", "--db"])
        .arg(&db)
        .args(["export", &id, "--format", "xml", "--output"])
        .arg(&xml_path));
    assert!(o.status.success(), "{}", stderr(&o));
    let xml = fs::read_to_string(&xml_path).unwrap();
    assert!(xml.contains("<industryClassification>A1</industryClassification>"));
    assert!(xml.contains("<fileViewedByEsp>true</fileViewedByEsp>"));
    let o = reports(&["export", &id, "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["sigil"]["reportId"], id.as_str());

    // Preservation: every stub under its deadline, one row per content reference.
    let o = reports(&["preservation"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut rdr = csv::Reader::from_reader(o.stdout.as_slice());
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    let total: u64 = stubs
        .iter()
        .map(|s| s["occurrence_count"].as_u64().unwrap())
        .sum();
    assert_eq!(rows.len() as u64, total);
    assert!(rows.iter().all(|r| r[3].starts_with("testdata")));

    // Prune: nothing is past its deadline; a dry run unless --apply.
    let o = reports(&["prune"]);
    assert!(
        stdout(&o).contains("dry run: 0 closed stubs"),
        "{}",
        stdout(&o)
    );

    // Bad input, each named.
    let o = reports(&["show", "rpt_nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("rpt_nope") && stderr(&o).contains("reports.db"));
    let o = reports(&["list", "--status", "done"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("done"), "{}", stderr(&o));
    let o = run(sigil()
        .args(["reports", "--db"])
        .arg(d.path().join("missing.db"))
        .arg("list"));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing.db"), "{}", stderr(&o));
    assert!(
        !d.path().join("missing.db").exists(),
        "no empty database made"
    );
    let o = run(sigil().args([
        "reports",
        "--db",
        "postgres://sigil:secret@127.0.0.1:1/sigil?connect_timeout=2",
        "list",
    ]));
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("127.0.0.1:1") && !e.contains("secret"), "{e}");
}
