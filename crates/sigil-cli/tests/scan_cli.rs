//! `sigil scan` as a process: exit statuses, kill -9 + --resume, Ctrl-C,
//! read-only guarantee, CSV output.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sigil_core::PdqHash;
use sigil_index::{EntryMeta, IndexWriter, SegmentBuilder};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn sigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
}

fn reference_pdq(file: &str) -> PdqHash {
    let csv = fs::read_to_string(testdata().join("originals.csv")).unwrap();
    let row = csv
        .lines()
        .find(|l| l.starts_with(&format!("{file},")))
        .unwrap();
    PdqHash::from_hex(row.split(',').nth(4).unwrap()).unwrap()
}

/// An index with the PDQ of bridge-mods/aaa-orig.jpg in list "demo".
fn build_index(dir: &Path) {
    let mut b = SegmentBuilder::new();
    b.push_pdq(
        &reference_pdq("bridge-mods/aaa-orig.jpg").0,
        EntryMeta {
            id: "bridge-1",
            list: "demo",
            category: "test",
            note: None,
        },
    )
    .unwrap();
    let mut w = IndexWriter::create(dir).unwrap();
    w.add_segment(b).unwrap();
}

fn copy(src: &str, dst: &Path) {
    fs::create_dir_all(dst.parent().unwrap()).unwrap();
    fs::copy(testdata().join(src), dst).unwrap();
}

/// A tree of `n` small JPEGs (copies of a fixture) in a few directories.
fn many_files(root: &Path, n: usize) {
    for i in 0..n {
        copy(
            "originals/bridge-mods/square-128x128.jpg",
            &root.join(format!("dir{}/img{i:03}.jpg", i % 5)),
        );
    }
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn exit_status_follows_matches_and_index_problems() {
    let d = tempfile::tempdir().unwrap();
    let idx = d.path().join("index");
    build_index(&idx);
    let tree = d.path().join("tree");
    copy(
        "originals/bridge-mods/aaa-orig.jpg",
        &tree.join("match/bridge.jpg"),
    );
    copy("pixels/pen_401x319.png", &tree.join("clean/pen.png"));

    let out = sigil()
        .args(["scan", "--quiet", "--index"])
        .arg(&idx)
        .arg(tree.join("clean"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = sigil()
        .args(["scan", "--quiet", "--threads", "1", "--index"])
        .arg(&idx)
        .arg(&tree)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 2);
    let m = recs.iter().find(|r| r["verdict"] == "match").unwrap();
    assert!(m["path"].as_str().unwrap().ends_with("bridge.jpg"));
    assert_eq!(m["matches"][0]["id"], "bridge-1");
    assert_eq!(m["matches"][0]["list"], "demo");
    assert_eq!(m["matches"][0]["kind"], "pdq");

    // Missing index: exit 2 at once with a message naming it.
    let out = sigil()
        .args(["scan", "--index"])
        .arg(d.path().join("nope"))
        .arg(&tree)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));

    // Corrupt index: every file in it overwritten with garbage.
    let bad = d.path().join("bad-index");
    build_index(&bad);
    for e in fs::read_dir(&bad).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            fs::write(&p, b"garbage garbage garbage").unwrap();
        }
    }
    let out = sigil()
        .args(["scan", "--index"])
        .arg(&bad)
        .arg(&tree)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

/// `--list` applies to every kind of hash, and a list the index does not
/// hold stops the scan before it writes anything (it used to scan on and
/// silently find no perceptual match).
#[test]
fn list_filter_covers_exact_digests_and_refuses_unknown_lists() {
    let d = tempfile::tempdir().unwrap();
    let idx = d.path().join("index");
    let tree = d.path().join("tree");
    copy(
        "originals/bridge-mods/aaa-orig.jpg",
        &tree.join("bridge.jpg"),
    );
    copy("pixels/pen_401x319.png", &tree.join("pen.png"));
    // The bridge's PDQ in "demo", the pen's MD5 in "other".
    let mut b = SegmentBuilder::new();
    let meta = |id, list| EntryMeta {
        id,
        list,
        category: "test",
        note: None,
    };
    let bridge = reference_pdq("bridge-mods/aaa-orig.jpg");
    b.push_pdq(&bridge.0, meta("bridge-1", "demo")).unwrap();
    let pen = sigil_core::ExactDigests::of(&fs::read(tree.join("pen.png")).unwrap());
    b.push(
        sigil_core::HashKind::Md5,
        &pen.md5,
        meta("pen-md5", "other"),
    )
    .unwrap();
    IndexWriter::create(&idx).unwrap().add_segment(b).unwrap();
    let scan = |lists: &[&str]| {
        let mut c = sigil();
        c.args(["scan", "--quiet", "--threads", "1", "--index"])
            .arg(&idx)
            .arg(&tree);
        for l in lists {
            c.args(["--list", l]);
        }
        c.output().unwrap()
    };
    let verdicts = |out: &std::process::Output| -> BTreeMap<String, String> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let name = Path::new(v["path"].as_str().unwrap())
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                (name, v["verdict"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let all = verdicts(&scan(&[]));
    assert_eq!(
        (all["bridge.jpg"].as_str(), all["pen.png"].as_str()),
        ("match", "match")
    );
    let demo = verdicts(&scan(&["demo"]));
    assert_eq!(
        (demo["bridge.jpg"].as_str(), demo["pen.png"].as_str()),
        ("match", "no_match")
    );
    let other = verdicts(&scan(&["other"]));
    assert_eq!(
        (other["bridge.jpg"].as_str(), other["pen.png"].as_str()),
        ("no_match", "match")
    );

    let out_file = d.path().join("never.jsonl");
    let out = sigil()
        .args([
            "scan", "--quiet", "--list", "demo", "--list", "nope", "--index",
        ])
        .arg(&idx)
        .arg(&tree)
        .arg("--output")
        .arg(&out_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown list \"nope\" (known lists: demo, other)"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    assert!(!out_file.exists(), "a refused scan wrote its output file");
}

/// Waits (without a deadline on speed, only a generous safety cap) until
/// the output holds at least `n` complete lines.
fn wait_for_lines(path: &Path, n: usize, child: &mut std::process::Child) {
    for _ in 0..6000 {
        let count = fs::read(path)
            .map(|b| b.iter().filter(|&&c| c == b'\n').count())
            .unwrap_or(0);
        if count >= n {
            return;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("scan exited early: {st}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("scan produced no output");
}

#[test]
fn kill_9_then_resume_records_every_file_exactly_once() {
    let d = tempfile::tempdir().unwrap();
    let idx = d.path().join("index");
    build_index(&idx);
    let tree = d.path().join("tree");
    many_files(&tree, 40);
    let out = d.path().join("out.jsonl");

    let mut child = sigil()
        .args([
            "scan",
            "--quiet",
            "--threads",
            "2",
            "--test-delay-ms",
            "60",
            "--index",
        ])
        .arg(&idx)
        .arg(&tree)
        .arg("--output")
        .arg(&out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_lines(&out, 5, &mut child);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = lines(&out).len();
    assert!(before < 40, "the scan finished before it was killed");

    // Without --resume an existing output is refused.
    let st = sigil()
        .args(["scan", "--quiet", "--index"])
        .arg(&idx)
        .arg(&tree)
        .arg("--output")
        .arg(&out)
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(2));

    // A torn last line, as a crash mid-write would leave.
    {
        use std::io::Write;
        let mut f = fs::OpenOptions::new().append(true).open(&out).unwrap();
        f.write_all(b"{\"path\":\"torn").unwrap();
    }
    let res = sigil()
        .args(["scan", "--quiet", "--threads", "2", "--resume", "--index"])
        .arg(&idx)
        .arg(&tree)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    // Every file is a near copy of the indexed bridge: exit 1 (matches).
    assert_eq!(
        res.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let recs = lines(&out);
    assert!(recs.iter().all(|r| r["verdict"] == "match"), "{recs:?}");
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in &recs {
        *counts
            .entry(r["path"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(counts.len(), 40, "missing files after resume");
    assert!(counts.values().all(|&c| c == 1), "duplicates: {counts:?}");

    // Resuming with other options is refused (it would mix results).
    let st = sigil()
        .args(["scan", "--quiet", "--resume", "--radius", "10", "--index"])
        .arg(&idx)
        .arg(&tree)
        .arg("--output")
        .arg(&out)
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(2));
}

#[cfg(unix)]
#[test]
fn ctrl_c_flushes_and_exits_130_then_resume_completes() {
    let d = tempfile::tempdir().unwrap();
    let idx = d.path().join("index");
    build_index(&idx);
    let tree = d.path().join("tree");
    many_files(&tree, 30);
    let out = d.path().join("out.csv");
    let mut child = sigil()
        .args([
            "scan",
            "--quiet",
            "--format",
            "csv",
            "--threads",
            "1",
            "--test-delay-ms",
            "60",
            "--index",
        ])
        .arg(&idx)
        .arg(&tree)
        .arg("--output")
        .arg(&out)
        .spawn()
        .unwrap();
    wait_for_lines(&out, 4, &mut child);
    // SAFETY: sending SIGINT to our own child process by its pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(130));
    let text = fs::read_to_string(&out).unwrap();
    assert!(text.ends_with('\n'), "output not flushed whole");
    let first = text.lines().count() - 1;
    assert!(first < 30);

    let st = sigil()
        .args(["scan", "--quiet", "--format", "csv", "--resume", "--index"])
        .arg(&idx)
        .arg(&tree)
        .arg("--output")
        .arg(&out)
        .status()
        .unwrap();
    // The tree holds copies of the indexed bridge: exit 1 (matches).
    assert_eq!(st.code(), Some(1));
    let mut rdr = csv::Reader::from_path(&out).unwrap();
    let mut paths: Vec<String> = rdr.records().map(|r| r.unwrap()[0].to_string()).collect();
    paths.sort();
    let n = paths.len();
    paths.dedup();
    assert_eq!((n, paths.len()), (30, 30));
}

/// Paths, sizes, mtimes and contents of every entry under `root`.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime, Vec<u8>)> {
    let mut m = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                stack.push(p.clone());
                m.insert(p, (0, md.modified().unwrap(), Vec::new()));
            } else {
                let bytes = fs::read(&p).unwrap_or_default();
                m.insert(p, (md.len(), md.modified().unwrap(), bytes));
            }
        }
    }
    m
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn scan_is_read_only_and_writes_no_image_bytes() {
    let d = tempfile::tempdir().unwrap();
    let idx = d.path().join("index");
    build_index(&idx);
    let tree = d.path().join("tree");
    copy(
        "originals/bridge-mods/aaa-orig.jpg",
        &tree.join("a/bridge.jpg"),
    );
    copy("pixels/pen_401x319.png", &tree.join("b/pen.png"));
    fs::write(tree.join("b/broken.jpg"), b"\xFF\xD8\xFF\xE0 not really").unwrap();
    let before = snapshot(&tree);
    let outdir = d.path().join("out");
    fs::create_dir(&outdir).unwrap();
    let st = sigil()
        .args(["scan", "--quiet", "--fast", "--dihedral", "--index"])
        .arg(&idx)
        .arg(&tree)
        .arg("--output")
        .arg(outdir.join("r.jsonl"))
        .arg("--summary-json")
        .arg(outdir.join("s.json"))
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(1));
    assert_eq!(snapshot(&tree), before, "the scanned tree changed");

    // No run of image bytes anywhere in what the scan wrote.
    let jpg = fs::read(tree.join("a/bridge.jpg")).unwrap();
    let png = fs::read(tree.join("b/pen.png")).unwrap();
    let needles = [
        &jpg[jpg.len() / 2..jpg.len() / 2 + 32],
        &png[png.len() / 2..png.len() / 2 + 32],
    ];
    for e in fs::read_dir(&outdir).unwrap() {
        let bytes = fs::read(e.unwrap().path()).unwrap();
        for n in needles {
            assert!(!contains(&bytes, n), "image bytes found in scan output");
        }
    }
    // The output may not be placed inside the scanned tree.
    let st = sigil()
        .args(["scan", "--quiet", "--index"])
        .arg(&idx)
        .arg(&tree)
        .arg("--output")
        .arg(tree.join("a/out.jsonl"))
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(2));
    assert_eq!(snapshot(&tree), before);
}

#[test]
fn fast_scan_of_a_large_jpeg_stays_close_to_the_exact_hash() {
    let d = tempfile::tempdir().unwrap();
    let idx = d.path().join("index");
    build_index(&idx);
    // A 2000x1255 sequential JPEG (the bridge fixture upscaled): its shorter
    // side is over 1024 px, so --fast hashes it from DCT coefficients with
    // the full profile and decodes it at 1/2 scale with cli512.
    let tree = d.path().join("tree");
    fs::create_dir(&tree).unwrap();
    let big = image::open(testdata().join("originals/bridge-mods/aaa-orig.jpg"))
        .unwrap()
        .resize_exact(2000, 1255, image::imageops::FilterType::Triangle)
        .to_rgb8();
    let file = fs::File::create(tree.join("big.jpg")).unwrap();
    image::codecs::jpeg::JpegEncoder::new_with_quality(file, 90)
        .encode_image(&big)
        .unwrap();
    for profile in ["full", "cli512"] {
        let run = |fast: bool| {
            let name = format!("{profile}-{fast}");
            let out = d.path().join(format!("{name}.jsonl"));
            let summary = d.path().join(format!("{name}.json"));
            let mut cmd = sigil();
            cmd.args(["scan", "--quiet", "--profile", profile, "--index"])
                .arg(&idx)
                .arg(&tree)
                .arg("--output")
                .arg(&out)
                .arg("--summary-json")
                .arg(&summary);
            if fast {
                cmd.arg("--fast");
            }
            let st = cmd.status().unwrap();
            let rec = lines(&out).remove(0);
            let s: serde_json::Value =
                serde_json::from_str(&fs::read_to_string(&summary).unwrap()).unwrap();
            let counts = (s["fast_decodes"].as_u64(), s["fast_grid"].as_u64());
            (st.code(), rec, counts)
        };
        let (code, exact, fast_count) = run(false);
        assert_eq!(fast_count, (Some(0), Some(0)), "{profile}");
        let (fast_code, fast, fast_count) = run(true);
        // The grid serves the full profile; cli512 needs pixels.
        let grid = u64::from(profile == "full");
        assert_eq!(
            fast_count,
            (Some(1), Some(grid)),
            "{profile}: --fast did not take the file, or by the wrong path"
        );
        let hash = |r: &serde_json::Value| PdqHash::from_hex(r["pdq"].as_str().unwrap()).unwrap();
        let bits = hash(&exact).hamming(&hash(&fast));
        assert!(
            bits <= 8,
            "{profile}: --fast is {bits} bits from the exact hash"
        );
        // The upscaled copy still matches the original's listed hash.
        assert_eq!((code, fast_code), (Some(1), Some(1)), "{profile}");
        assert_eq!(fast["verdict"], "match", "{profile}");
    }
}
