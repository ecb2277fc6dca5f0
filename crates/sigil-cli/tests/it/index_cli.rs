//! `sigil index ...` end to end: build, query (against the ThreatExchange
//! needle truth), add/remove/compact/export round trips, bad input and
//! corrupt or interrupted indexes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use crate::support::sigil;

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("index_cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/hash-lists")
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn run(args: &[&str]) -> Output {
    sigil().args(args).output().unwrap()
}

/// Exit status and stderr of `sigil ARGS`.
fn status(args: &[&str]) -> (i32, String) {
    let o = run(args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The live entries of an index per list and kind, from `stats --json`.
fn live(index: &str) -> serde_json::Value {
    let s: serde_json::Value =
        serde_json::from_str(&ok(run(&["index", "stats", index, "--json"]))).unwrap();
    s["live"].clone()
}

#[test]
fn build_and_query_match_the_threatexchange_truth() {
    let d = scratch("te");
    let idx = d.join("idx");
    let hay = testdata().join("haystack.txt");
    ok(run(&[
        "index",
        "build",
        "--output",
        idx.to_str().unwrap(),
        "--list",
        "te",
        "--kind",
        "pdq",
        hay.to_str().unwrap(),
    ]));
    let needles = testdata().join("needles.txt");
    let out = ok(run(&[
        "index",
        "query",
        idx.to_str().unwrap(),
        needles.to_str().unwrap(),
    ]));
    let needle_lines: Vec<String> = std::fs::read_to_string(&needles)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let truth = std::fs::read_to_string(testdata().join("needles-within-31.tsv")).unwrap();
    let truth: Vec<BTreeMap<String, u64>> = truth
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            l.split('\t')
                .skip(1)
                .map(|p| {
                    let (a, b) = p.split_once(':').unwrap();
                    (a.to_string(), b.parse().unwrap())
                })
                .collect()
        })
        .collect();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), needle_lines.len());
    for (i, v) in lines.iter().enumerate() {
        assert_eq!(v["query"], needle_lines[i].trim(), "input order");
        let got: BTreeMap<String, u64> = v["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                assert_eq!(m["kind"], "pdq");
                assert_eq!(m["list"], "te");
                (
                    m["id"].as_str().unwrap().to_string(),
                    m["distance"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, truth[i], "needle {i}");
    }
    // Same through stdin, with k=1: the nearest only.
    let mut child = sigil()
        .args(["index", "query", idx.to_str().unwrap(), "--k", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(needle_lines[0].as_bytes())
        .unwrap();
    let out = ok(child.wait_with_output().unwrap());
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let m = v["matches"].as_array().unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["distance"].as_u64(), truth[0].values().min().copied());
    ok(run(&["index", "verify", idx.to_str().unwrap()]));
}

const H1: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";
const H2: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Exported cells that a spreadsheet would run as formulas (ids and notes
/// come from third parties) are written as text, and `index build` reads
/// the export back exactly.
#[test]
fn export_neutralises_formula_cells_and_reads_them_back() {
    let d = scratch("formula");
    let idx = d.join("idx");
    let csv = d.join("list.csv");
    std::fs::write(
        &csv,
        format!(
            "hash,kind,id,list,category,note\n\
             {H1},pdq,\"=HYPERLINK(\"\"http://x.invalid\"\")\",ncmec,A1,+1\n\
             {H2},pdq,'=quoted,iwf,B2,-5\n\
             900150983cd24fb0d6963f7d28e17f72,md5,@SUM(A1),iwf,B1,plain\n"
        ),
    )
    .unwrap();
    ok(run(&[
        "index",
        "build",
        "--output",
        idx.to_str().unwrap(),
        csv.to_str().unwrap(),
    ]));
    let export = ok(run(&["index", "export", idx.to_str().unwrap()]));
    let mut reader = csv::Reader::from_reader(export.as_bytes());
    let mut ids = Vec::new();
    for row in reader.records() {
        let row = row.unwrap();
        for cell in row.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "cell {cell:?} would run as a formula: {export}"
            );
        }
        ids.push(row[2].to_string());
    }
    ids.sort();
    // `'=quoted` in the input is read as sigil's own guard: the id is
    // `=quoted`, exported guarded again.
    assert_eq!(
        ids,
        ["'=HYPERLINK(\"http://x.invalid\")", "'=quoted", "'@SUM(A1)"]
    );
    // Rebuilt from its own export, the index holds the original ids.
    let exp = d.join("export.csv");
    std::fs::write(&exp, &export).unwrap();
    let idx2 = d.join("idx2");
    ok(run(&[
        "index",
        "build",
        "--output",
        idx2.to_str().unwrap(),
        exp.to_str().unwrap(),
    ]));
    assert_eq!(
        ok(run(&["index", "export", idx2.to_str().unwrap()])),
        export
    );
}

/// `sigil index export IDX | head -1`: the closed pipe ends the export
/// quietly, as it ends grep, with the status of a process killed by SIGPIPE.
#[cfg(unix)]
#[test]
fn export_into_a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    let d = scratch("pipe");
    let idx = d.join("idx");
    let hay = testdata().join("haystack.txt");
    ok(run(&[
        "index",
        "build",
        "--output",
        idx.to_str().unwrap(),
        "--list",
        "te",
        "--kind",
        "pdq",
        hay.to_str().unwrap(),
    ]));
    let mut child = sigil()
        .args(["index", "export", idx.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("hash,kind,id"), "{first}");
    // The reader is dropped: the pipe is closed with ~130 KB still to come.
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn add_remove_compact_export_round_trip() {
    let d = scratch("rt");
    let idx = d.join("idx");
    let csv = d.join("list.csv");
    std::fs::write(
        &csv,
        format!("hash,kind,id,list,category,note\n{H1},pdq,a,ncmec,A1,\"x, y\"\n{H1},pdq,b,iwf,B2,\n900150983cd24fb0d6963f7d28e17f72,md5,m,iwf,B1,\n"),
    )
    .unwrap();
    let i = idx.to_str().unwrap();
    ok(run(&[
        "index",
        "build",
        "--output",
        i,
        csv.to_str().unwrap(),
    ]));
    let extra = d.join("extra.txt");
    std::fs::write(&extra, format!("pdq:{H2},z,other,A2\n")).unwrap();
    ok(run(&["index", "add", i, extra.to_str().unwrap()]));
    ok(run(&[
        "index", "remove", i, "--by", "id", "--list", "iwf", "--id", "b",
    ]));
    ok(run(&[
        "index",
        "remove",
        i,
        "--list",
        "iwf",
        "--hash",
        "900150983cd24fb0d6963f7d28e17f72",
    ]));
    let stats: serde_json::Value =
        serde_json::from_str(&ok(run(&["index", "stats", i, "--json"]))).unwrap();
    assert_eq!(stats["generation"], 4);
    assert_eq!(stats["segments"], 2);
    let export1 = ok(run(&["index", "export", i]));
    let mut rows: Vec<&str> = export1.lines().skip(1).collect();
    rows.sort();
    // Sorted order: H2 (all zeros) before H1.
    assert_eq!(
        rows,
        [
            format!("{H2},pdq,z,other,A2,"),
            format!("{H1},pdq,a,ncmec,A1,\"x, y\""),
        ]
    );
    ok(run(&["index", "compact", i]));
    // Compaction may reorder entries; the set of rows must be unchanged.
    let sorted = |t: &str| {
        let mut v: Vec<String> = t.lines().map(str::to_owned).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&ok(run(&["index", "export", i]))), sorted(&export1));
    // Export is importable: rebuilding from it gives the same export.
    let exp = d.join("export.csv");
    std::fs::write(&exp, &export1).unwrap();
    let idx2 = d.join("idx2");
    ok(run(&[
        "index",
        "build",
        "--output",
        idx2.to_str().unwrap(),
        exp.to_str().unwrap(),
    ]));
    assert_eq!(
        sorted(&ok(run(&["index", "export", idx2.to_str().unwrap()]))),
        sorted(&export1)
    );
    // Building over an existing index is refused.
    let o = run(&["index", "build", "--output", i, exp.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
}

#[test]
fn bad_lines_and_corrupt_indexes_get_clear_errors() {
    let d = scratch("bad");
    let bad = d.join("bad.txt");
    std::fs::write(&bad, format!("{H1}\n{H1}\nzz{}\n", &H1[2..])).unwrap();
    let idx = d.join("idx");
    let i = idx.to_str().unwrap();
    let o = run(&[
        "index",
        "build",
        "--output",
        i,
        "--kind",
        "pdq",
        bad.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.txt:3:") && err.contains("hex"), "{err}");
    let o = run(&[
        "index",
        "build",
        "--output",
        i,
        "--kind",
        "pdq",
        "--skip-invalid",
        bad.to_str().unwrap(),
    ]);
    let err = ok(o.clone());
    let _ = err;
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 invalid lines skipped"));
    // A query line that is not a hash names file and line.
    let q = d.join("q.txt");
    std::fs::write(&q, format!("{H1}\nnope\n")).unwrap();
    let o = run(&["index", "query", i, q.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("q.txt:2:"));
    // Flip a byte in the last section of the segment: open still works
    // (header intact) but verify reports the checksum.
    let seg = std::fs::read_dir(&idx)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sgs"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let orig = bytes.clone();
    let n = bytes.len();
    // Segment files are immutable: write a corrupted copy under the same name (tests only).
    // Flip a bit in the middle of the file (verify covers every byte:
    // sections by checksum, padding by being zero).
    bytes[n / 2] ^= 0x40;
    std::fs::remove_file(&seg).unwrap();
    std::fs::write(&seg, &bytes).unwrap();
    let o = run(&["index", "verify", i]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("checksum"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Truncated file: refused at open.
    std::fs::remove_file(&seg).unwrap();
    std::fs::write(&seg, &orig[..n / 2]).unwrap();
    let o = run(&["index", "query", i, q.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("corrupt") && err.contains(".sgs"), "{err}");
    // Not an index at all.
    let o = run(&["index", "stats", d.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an index"));
}

/// `index query` applies the matching policy of `scan` and `serve`: an
/// unknown list is refused, per-list radii are caps, and every line names
/// the index generation that answered.
#[test]
fn query_follows_the_matching_policy() {
    let d = scratch("policy");
    let idx = d.join("idx");
    let i = idx.to_str().unwrap();
    let list = d.join("list.txt");
    std::fs::write(&list, format!("pdq:{H1},a,ncmec,A1\npdq:{H1},b,iwf,B2\n")).unwrap();
    ok(run(&[
        "index",
        "build",
        "--output",
        i,
        list.to_str().unwrap(),
    ]));
    // H1 with its first 10 bits flipped.
    let mut near = sigil_core::PdqHash::from_hex(H1).unwrap();
    near.0[0] ^= 0xff;
    near.0[1] ^= 0xc0;
    let q = d.join("q.txt");
    std::fs::write(&q, format!("{}\n", near.to_hex())).unwrap();
    let q = q.to_str().unwrap();
    let found = |args: &[&str]| -> (Vec<(String, u64)>, u64) {
        let mut all = vec!["index", "query", i];
        all.extend_from_slice(args);
        all.push(q);
        let out = ok(run(&all));
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let ids = v["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["id"].as_str().unwrap().to_string(),
                    m["distance"].as_u64().unwrap(),
                )
            })
            .collect();
        (ids, v["index_generation"].as_u64().unwrap())
    };
    let (all, generation) = found(&[]);
    // Nearest first, then by list and id.
    assert_eq!(all, [("b".to_string(), 10), ("a".to_string(), 10)]);
    assert_eq!(generation, 1);
    let (capped, _) = found(&["--list-radius", "iwf=5"]);
    assert_eq!(capped, [("a".to_string(), 10)]);
    // A cap never widens the radius.
    let (none, _) = found(&["--radius", "8", "--list-radius", "iwf=40"]);
    assert!(none.is_empty(), "{none:?}");
    let (only, _) = found(&["--list", "iwf"]);
    assert_eq!(only, [("b".to_string(), 10)]);

    let o = run(&["index", "query", i, "--list", "nope", q]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown list \"nope\" (known lists: iwf, ncmec)"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
}

/// `index query` takes every kind the index holds (`KIND:HEX`, plain hex
/// is PDQ), with --with-quality a PDQ hash's quality (under --min-quality:
/// low_quality, not searched); each line says its kind and verdict. A
/// --list-radius cap on a list the index does not hold is refused.
#[test]
fn query_takes_every_kind_and_quality_and_refuses_caps_on_unknown_lists() {
    let d = scratch("kinds");
    let idx = d.join("idx");
    let i = idx.to_str().unwrap();
    let md5 = "0123456789abcdef0123456789abcdef";
    let list = d.join("list.txt");
    std::fs::write(&list, format!("pdq:{H1},p,ncmec,A1\nmd5:{md5},m,iwf,B2\n")).unwrap();
    ok(run(&[
        "index",
        "build",
        "--output",
        i,
        list.to_str().unwrap(),
    ]));
    let q = d.join("q.txt");
    std::fs::write(
        &q,
        format!(
            "MD5:{}\n{H1},40,photo.jpg\nsha1:{}\n{H1},77\n",
            md5.to_uppercase(),
            "ab".repeat(20)
        ),
    )
    .unwrap();
    let q = q.to_str().unwrap();
    let lines = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut all = vec!["index", "query", i];
        all.extend_from_slice(args);
        all.push(q);
        ok(run(&all))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let summary = |v: &[serde_json::Value]| -> Vec<(String, String, Vec<String>)> {
        v.iter()
            .map(|l| {
                let ids = l["matches"].as_array().unwrap().iter();
                (
                    l["kind"].as_str().unwrap().to_string(),
                    l["verdict"].as_str().unwrap().to_string(),
                    ids.map(|m| m["id"].as_str().unwrap().to_string()).collect(),
                )
            })
            .collect()
    };
    let s = |k: &str, v: &str, ids: &[&str]| {
        (
            k.to_string(),
            v.to_string(),
            ids.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    };
    // Without --with-quality the fields after a hash are ignored.
    let plain = lines(&[]);
    assert_eq!(plain[0]["query"], md5, "lowercase hex");
    assert_eq!(
        summary(&plain),
        [
            s("md5", "match", &["m"]),
            s("pdq", "match", &["p"]),
            s("sha1", "no_match", &[]),
            s("pdq", "match", &["p"]),
        ]
    );
    let with_quality = lines(&["--with-quality"]);
    assert_eq!(with_quality[1]["quality"], 40);
    assert_eq!(
        summary(&with_quality),
        [
            s("md5", "match", &["m"]),
            s("pdq", "low_quality", &[]),
            s("sha1", "no_match", &[]),
            s("pdq", "match", &["p"]),
        ]
    );
    let low_threshold = lines(&["--with-quality", "--min-quality", "30"]);
    assert_eq!(summary(&low_threshold)[1], s("pdq", "match", &["p"]));
    // The list filter applies to exact kinds too.
    let only = lines(&["--list", "ncmec"]);
    assert_eq!(summary(&only)[0], s("md5", "no_match", &[]));

    let (code, err) = status(&[
        "index",
        "query",
        i,
        "--list-radius",
        "ncmec=10",
        "--list-radius",
        "ncmce=5",
        q,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--list-radius ncmce=5: unknown list \"ncmce\" (known lists: iwf, ncmec)"),
        "{err}"
    );
    let bad = d.join("bad.txt");
    for (line, named) in [
        ("sha256:abcd", "bad sha256 hash"),
        ("crc32:abcd", "unknown hash kind"),
        (H1, "no quality"),
    ] {
        std::fs::write(&bad, format!("{line}\n")).unwrap();
        let (code, err) = status(&["index", "query", i, "--with-quality", bad.to_str().unwrap()]);
        assert_eq!(code, 2, "{line}: {err}");
        assert!(err.contains(":1: ") && err.contains(named), "{line}: {err}");
    }
}

/// Runs `sigil ARGS` and kills it (SIGKILL) after `delay_ms`, whatever it
/// is doing by then.
fn kill_during(args: &[&str], delay_ms: u64) {
    let mut child = sigil().args(args).stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(delay_ms));
    let _ = child.kill();
    let _ = child.wait();
}

/// The index verifies and still finds the entry `keep` for the query file `q`.
fn verifies_and_keeps(index: &str, q: &Path) {
    ok(run(&["index", "verify", index]));
    let out = ok(run(&[
        "index",
        "query",
        index,
        "--radius",
        "0",
        q.to_str().unwrap(),
    ]));
    assert!(out.contains("\"id\":\"keep\""), "{out}");
}

#[test]
fn killed_writer_leaves_the_previous_generation_intact() {
    let d = scratch("kill");
    let idx = d.join("idx");
    let i = idx.to_str().unwrap();
    let small = d.join("small.txt");
    std::fs::write(&small, format!("pdq:{H1},keep,l,A1\n")).unwrap();
    ok(run(&[
        "index",
        "build",
        "--output",
        i,
        small.to_str().unwrap(),
    ]));
    // A big list so the add is still running when killed.
    let big = d.join("big.txt");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..300_000 {
        let mut line = String::with_capacity(65);
        for _ in 0..4 {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            line.push_str(&format!("{:016x}", s.wrapping_mul(0x2545_F491_4F6C_DD1D)));
        }
        writeln!(f, "{line}").unwrap();
    }
    drop(f);
    let q = d.join("q.txt");
    std::fs::write(&q, format!("{H1}\n")).unwrap();
    for delay_ms in [5u64, 40, 150] {
        kill_during(
            &["index", "add", i, "--kind", "pdq", big.to_str().unwrap()],
            delay_ms,
        );
        // Whatever the moment of the kill, the index opens, verifies and
        // still holds the first entry.
        verifies_and_keeps(i, &q);
    }
    // kill -9 during `compact` (which rewrites the 300k entries): the index
    // still verifies and holds the first entry.
    for delay_ms in [20u64, 120] {
        kill_during(&["index", "compact", i], delay_ms);
        verifies_and_keeps(i, &q);
    }
    // kill -9 during `build` of a new index: the output is either no index
    // at all (a rerun of the build then succeeds) or a complete one; never
    // a half-written index that opens.
    for delay_ms in [10u64, 60, 200] {
        let fresh = d.join(format!("fresh-{delay_ms}"));
        let f = fresh.to_str().unwrap();
        kill_during(
            &[
                "index",
                "build",
                "--output",
                f,
                "--kind",
                "pdq",
                big.to_str().unwrap(),
            ],
            delay_ms,
        );
        if fresh.join("MANIFEST").exists() {
            ok(run(&["index", "verify", f]));
        } else {
            let o = run(&["index", "stats", f]);
            assert!(
                !o.status.success(),
                "a killed build left an index that opens"
            );
            ok(run(&[
                "index",
                "build",
                "--output",
                f,
                "--kind",
                "pdq",
                big.to_str().unwrap(),
            ]));
            ok(run(&["index", "verify", f]));
        }
    }
    // Leftover temporary files from the killed writers are swept by compact.
    std::fs::write(idx.join(".tmp-seg-9999999999.sgs-1-1"), b"partial").unwrap();
    ok(run(&["index", "verify", i]));
    ok(run(&["index", "compact", i]));
    let left: Vec<String> = std::fs::read_dir(&idx)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    ok(run(&["index", "verify", i]));
}

const MD5: &str = "900150983cd24fb0d6963f7d28e17f72";
const SHA1: &str = "a9993e364706816aba3e25717850c26c9cd0d89d";

#[test]
fn a_64_hex_list_without_a_kind_is_refused_and_says_how_to_name_it() {
    let d = scratch("kindless");
    let list = d.join("list.txt");
    std::fs::write(&list, format!("# exported hashes\n{H1}\n")).unwrap();
    let l = list.to_str().unwrap();
    let idx = d.join("idx");
    let i = idx.to_str().unwrap();
    for extra in [&[][..], &["--skip-invalid"][..]] {
        let mut args = vec!["index", "build", "--output", i];
        args.extend_from_slice(extra);
        args.push(l);
        let (code, err) = status(&args);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("list.txt:2: 64 hex characters are a PDQ hash or a SHA-256 digest"),
            "{err}"
        );
        assert!(err.contains("--kind pdq or --kind sha256"), "{err}");
        assert!(!idx.join("MANIFEST").exists());
    }
    // Named, it is imported as what it is.
    for kind in ["sha256", "pdq"] {
        let idx = d.join(format!("idx-{kind}"));
        let out = run(&[
            "index",
            "build",
            "--output",
            idx.to_str().unwrap(),
            "--kind",
            kind,
            l,
        ]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        ok(out);
        assert!(
            err.contains(&format!("list.txt: 1 entries read (default: {kind} 1)")),
            "{err}"
        );
        assert_eq!(live(idx.to_str().unwrap())["default"][kind], 1);
    }
}

#[test]
fn a_list_mixing_kinds_is_imported_as_each_line_says() {
    let d = scratch("mixed");
    let list = d.join("te.txt");
    // python-threatexchange local-file lines, labels, and lengths that say
    // their kind themselves.
    std::fs::write(
        &list,
        format!("pdq {H1}\nsha256:{H1}\nmd5 {MD5}\n{SHA1}\nPDQ:{H2},z,other\n"),
    )
    .unwrap();
    let l = list.to_str().unwrap();
    let idx = d.join("idx");
    let i = idx.to_str().unwrap();
    let out = run(&["index", "build", "--output", i, "--list", "te", l]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out);
    assert!(
        err.contains("te.txt: 5 entries read (other: pdq 1; te: pdq 1, md5 1, sha1 1, sha256 1)"),
        "{err}"
    );
    assert!(
        err.contains("5 entries (other: pdq 1; te: pdq 1, md5 1, sha1 1, sha256 1)"),
        "{err}"
    );
    let v = live(i);
    assert_eq!(v["te"]["sha256"], 1);
    assert_eq!(v["other"]["pdq"], 1);
    let text = ok(run(&["index", "stats", i]));
    assert!(text.contains("live:         5 entries"), "{text}");
    assert!(
        text.contains("  te          pdq 1, md5 1, sha1 1, sha256 1"),
        "{text}"
    );
    // A line that contradicts --kind is an error naming it.
    let (code, err) = status(&["index", "add", i, "--kind", "pdq", l]);
    assert_eq!(code, 2);
    assert!(
        err.contains("te.txt:2: the line says its hash is sha256 but --kind pdq was given"),
        "{err}"
    );
    // ThreatExchange signal types sigil does not import are named, or
    // skipped and counted.
    let video = d.join("video.txt");
    std::fs::write(&video, format!("video_md5 {MD5}\npdq {H2}\n")).unwrap();
    let v = video.to_str().unwrap();
    let (code, err) = status(&["index", "add", i, v]);
    assert_eq!(code, 2);
    assert!(
        err.contains("video.txt:1: kind video_md5 is a ThreatExchange signal type"),
        "{err}"
    );
    let out = run(&["index", "add", i, "--skip-invalid", v]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out);
    assert!(
        err.contains("video.txt: 1 invalid lines skipped (kind video_md5 1, first at line 1: kind video_md5 is"),
        "{err}"
    );
}

#[test]
fn removal_is_scoped_to_its_list_and_says_what_was_not_there() {
    let d = scratch("remove");
    let csv = d.join("lists.csv");
    std::fs::write(
        &csv,
        format!("hash,kind,id,list\n{H1},pdq,n1,ncmec\n{H1},pdq,i1,iwf\n{MD5},md5,m1,iwf\n"),
    )
    .unwrap();
    let idx = d.join("idx");
    let i = idx.to_str().unwrap();
    ok(run(&[
        "index",
        "build",
        "--output",
        i,
        csv.to_str().unwrap(),
    ]));
    let lists_of_h1 = || -> Vec<String> {
        let q = d.join("q.txt");
        std::fs::write(&q, format!("{H1}\n")).unwrap();
        let out = ok(run(&[
            "index",
            "query",
            i,
            "--radius",
            "0",
            q.to_str().unwrap(),
        ]));
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let mut l: Vec<String> = v["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["list"].as_str().unwrap().to_string())
            .collect();
        l.sort();
        l
    };
    assert_eq!(lists_of_h1(), ["iwf", "ncmec"]);

    // Without --list or --all-lists a hash removal is refused (exit 2).
    let (code, err) = status(&["index", "remove", i, "--hash", &format!("pdq:{H1}")]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--list NAME") && err.contains("--all-lists"),
        "{err}"
    );
    // An unknown list is an error naming the known ones.
    let (code, err) = status(&[
        "index",
        "remove",
        i,
        "--list",
        "ncmc",
        "--hash",
        &format!("pdq:{H1}"),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no list named \"ncmc\" in this index (its lists: iwf, ncmec)"),
        "{err}"
    );

    // The operator's withdrawal file: only NCMEC's entry goes; IWF's
    // identical hash stays. One line names a hash that is not there.
    let withdrawn = d.join("withdrawn.txt");
    std::fs::write(&withdrawn, format!("pdq:{H1}\npdq:{H2}\n")).unwrap();
    let w = withdrawn.to_str().unwrap();
    let (code, err) = status(&["index", "remove", i, "--list", "ncmec", w]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "withdrawn.txt:2: not found: pdq {H2} in list ncmec"
        )),
        "{err}"
    );
    assert!(
        err.contains("removed 1 entries from") && err.contains("2 asked, 1 found, not found 1"),
        "{err}"
    );
    assert_eq!(lists_of_h1(), ["iwf"]);
    assert_eq!(live(i)["iwf"]["md5"], 1);
    // Again: nothing there any more; --missing-ok accepts that.
    let (code, err) = status(&["index", "remove", i, "--list", "ncmec", w]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("removed 0 entries") && err.contains("not found 2"),
        "{err}"
    );
    let (code, _) = status(&["index", "remove", i, "--list", "ncmec", "--missing-ok", w]);
    assert_eq!(code, 0);
    // The MD5 is IWF's, not NCMEC's.
    let (code, err) = status(&["index", "remove", i, "--list", "ncmec", "--hash", MD5]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(live(i)["iwf"]["md5"], 1);
    // By id, in the list the id belongs to.
    let (code, err) = status(&["index", "remove", i, "--by", "id", "--id", "m1"]);
    assert_eq!(code, 2);
    assert!(err.contains("needs --list"), "{err}");
    let (code, err) = status(&[
        "index", "remove", i, "--list", "iwf", "--id", "m1", "--id", "nope",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--id nope: not found: id \"nope\" in list iwf"),
        "{err}"
    );
    assert!(live(i)["iwf"].get("md5").is_none());
    // From every list, said explicitly.
    let (code, err) = status(&[
        "index",
        "remove",
        i,
        "--all-lists",
        "--kind",
        "pdq",
        "--hash",
        H1,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("removed 1 entries"), "{err}");
    assert!(lists_of_h1().is_empty());
    ok(run(&["index", "verify", i]));
}

#[test]
fn import_counts_duplicates_and_extra_fields_and_refuses_control_characters() {
    let d = scratch("hygiene");
    let list = d.join("list.csv");
    // A byte-order mark, a duplicate line, a duplicate entry under the same
    // id, the same hash under another id (kept), a line with a sixth field.
    std::fs::write(
        &list,
        format!(
            "\u{feff}hash,kind,id,list\n{H1},pdq,a,ncmec\n{H1},pdq,a,ncmec\n{H1},pdq,b,ncmec\n{MD5},md5,a,ncmec\n{MD5},md5,a,ncmec,extra\n"
        ),
    )
    .unwrap();
    let l = list.to_str().unwrap();
    let idx = d.join("idx");
    let i = idx.to_str().unwrap();
    let out = run(&["index", "build", "--output", i, l]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out);
    assert!(
        err.contains(
            "list.csv: 5 entries read (ncmec: pdq 3, md5 2); UTF-8 byte-order mark skipped"
        ),
        "{err}"
    );
    assert!(err.contains("list.csv: 2 duplicate entries (same kind, hash, list and id as an earlier one), stored once (first at line 3)"), "{err}");
    assert!(
        err.contains(
            "list.csv: 1 lines with fields past the format's columns, ignored (first at line 6)"
        ),
        "{err}"
    );
    assert!(err.contains("3 entries (ncmec: pdq 2, md5 1)"), "{err}");
    assert_eq!(live(i)["ncmec"]["pdq"], 2);
    // Adding the same list again adds nothing.
    let out = run(&["index", "add", i, l]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out);
    assert!(
        err.contains("list.csv: 3 entries already in the index, not added again (first at line 2)"),
        "{err}"
    );
    assert!(err.contains("added nothing to"), "{err}");
    assert_eq!(live(i)["ncmec"]["pdq"], 2);
    // --strict refuses the duplicate, and the extra field first.
    let strict = d.join("strict");
    let (code, err) = status(&[
        "index",
        "build",
        "--output",
        strict.to_str().unwrap(),
        "--strict",
        l,
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("list.csv:6: 5 fields where the format has 4 (hash,kind,id,list); --strict refuses extra fields"), "{err}");
    let no_extra = d.join("no-extra.csv");
    let text = std::fs::read_to_string(&list)
        .unwrap()
        .replace(",extra", "");
    std::fs::write(&no_extra, text).unwrap();
    let (code, err) = status(&[
        "index",
        "build",
        "--output",
        strict.to_str().unwrap(),
        "--strict",
        no_extra.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no-extra.csv:3: duplicate entry") && err.contains("nothing was written"),
        "{err}"
    );
    assert!(!strict.join("MANIFEST").exists());
    // An id with two PDQ hashes keeps both, and the build says so.
    let two = d.join("two.csv");
    std::fs::write(
        &two,
        format!("hash,kind,id,list\n{H1},pdq,a,ncmec\n{H2},pdq,a,ncmec\n"),
    )
    .unwrap();
    let out = run(&[
        "index",
        "build",
        "--output",
        d.join("two").to_str().unwrap(),
        two.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out);
    assert!(
        err.contains("ncmec: 1 ids carry more than one hash of one kind (all kept"),
        "{err}"
    );
    // A NUL in an id is refused with file and line.
    let nul = d.join("nul.txt");
    std::fs::write(&nul, format!("{MD5},ok\n{SHA1},ab\0c\n")).unwrap();
    let (code, err) = status(&["index", "add", i, nul.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("nul.txt:2: id \"ab\\0c\" contains the control character U+0000"),
        "{err}"
    );
}

/// The list roll-out commands of docs/operations.md section 3, step 1 and
/// 2, run as written on fixtures named like the runbook's files: NCMEC's
/// new drop is added, its withdrawal removes NCMEC's entry only (IWF lists
/// the same MD5 and keeps it), and the checks pass.
#[test]
fn operations_list_rollout_commands_run() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md"),
    )
    .unwrap();
    let section = doc
        .split("## 3. Rolling out a new list version")
        .nth(1)
        .expect("section 3");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block in section 3");
    let d = scratch("ops");
    let work = d.join("work");
    let w = work.to_str().unwrap();
    let serving = d.join("serving.csv");
    std::fs::write(
        &serving,
        format!("hash,kind,id,list\n{MD5},md5,n-old,ncmec\n{MD5},md5,i1,iwf\n"),
    )
    .unwrap();
    ok(run(&[
        "index",
        "build",
        "--output",
        w,
        serving.to_str().unwrap(),
    ]));
    std::fs::write(
        d.join("ncmec-2026-11-28.csv"),
        format!("hash,kind,id\n{H1},pdq,n-new\n{SHA1},sha1,n-sha\n"),
    )
    .unwrap();
    std::fs::write(d.join("withdrawn-2026-11-28.txt"), format!("{MD5}\n")).unwrap();
    let mut ran = 0;
    for line in block.lines() {
        let line = line.split(" #").next().unwrap_or(line).trim();
        let (stdin, command) = match line.split_once(" | ") {
            Some((echo, cmd)) if echo.starts_with("echo ") => (Some(H1), cmd),
            _ => (None, line),
        };
        let Some(args) = command.strip_prefix("sigil ") else {
            continue;
        };
        let args: Vec<String> = args
            .split_whitespace()
            .map(|a| a.replace("/srv/index/work-$G", w))
            .collect();
        let mut cmd = sigil();
        cmd.args(&args).current_dir(&d).stdin(Stdio::piped());
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(h) = stdin {
            writeln!(input, "{h}").unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        let stdout = ok(out);
        if stdin.is_some() {
            assert!(stdout.contains("\"id\":\"n-new\""), "{line}: {stdout}");
        }
        ran += 1;
    }
    assert_eq!(ran, 6, "the runbook's commands changed: update this test");
    let v = live(w);
    assert_eq!(v["iwf"]["md5"], 1);
    assert!(v["ncmec"].get("md5").is_none(), "{v}");
    assert_eq!(
        (v["ncmec"]["pdq"].as_u64(), v["ncmec"]["sha1"].as_u64()),
        (Some(1), Some(1))
    );
}
