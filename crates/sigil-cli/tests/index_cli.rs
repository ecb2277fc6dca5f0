//! `sigil index ...` end to end: build, query (against the ThreatExchange
//! needle truth), add/remove/compact/export round trips, bad input and
//! corrupt or interrupted indexes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn sigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
}

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
    std::fs::write(&extra, format!("{H2},z,other,A2\n")).unwrap();
    ok(run(&["index", "add", i, extra.to_str().unwrap()]));
    ok(run(&[
        "index", "remove", i, "--by", "id", "--list", "iwf", "--id", "b",
    ]));
    ok(run(&[
        "index",
        "remove",
        i,
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
    let o = run(&["index", "build", "--output", i, bad.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.txt:3:") && err.contains("hex"), "{err}");
    let o = run(&[
        "index",
        "build",
        "--output",
        i,
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
    std::fs::write(&list, format!("{H1},a,ncmec,A1\n{H1},b,iwf,B2\n")).unwrap();
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
    std::fs::write(&small, format!("{H1},keep,l,A1\n")).unwrap();
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
        kill_during(&["index", "add", i, big.to_str().unwrap()], delay_ms);
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
            &["index", "build", "--output", f, big.to_str().unwrap()],
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
