//! `sigil scan` as a process: exit statuses, kill -9 + --resume, Ctrl-C,
//! read-only guarantee, CSV output.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sigil_core::PdqHash;
use sigil_index::{EntryMeta, IndexWriter, SegmentBuilder};

use crate::support::sigil;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
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

    // --matches-ok (batch schedulers): the same match, the same records,
    // exit 0; a scan that cannot run still exits 2.
    let out = sigil()
        .args([
            "scan",
            "--quiet",
            "--matches-ok",
            "--threads",
            "1",
            "--index",
        ])
        .arg(&idx)
        .arg(&tree)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("\"match\"")
            .count(),
        1
    );
    let out = sigil()
        .args(["scan", "--matches-ok", "--index"])
        .arg(d.path().join("nope"))
        .arg(&tree)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

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

/// An index of the given MD5 digests in list "ncmec", plus the bridge's PDQ.
fn build_md5_index(dir: &Path, md5s: &[[u8; 16]]) {
    let mut b = SegmentBuilder::new();
    let meta = |id| EntryMeta {
        id,
        list: "ncmec",
        category: "test",
        note: None,
    };
    b.push_pdq(
        &reference_pdq("bridge-mods/aaa-orig.jpg").0,
        meta("bridge-1"),
    )
    .unwrap();
    let ids: Vec<String> = (0..md5s.len()).map(|i| format!("md5-{i}")).collect();
    for (d, id) in md5s.iter().zip(&ids) {
        b.push(sigil_core::HashKind::Md5, d, meta(id)).unwrap();
    }
    IndexWriter::create(dir).unwrap().add_segment(b).unwrap();
}

/// The file name of a record's path (its exact bytes, from `path_bytes`
/// when the name is not plain).
fn record_name(r: &serde_json::Value) -> Vec<u8> {
    let bytes = match r["path_bytes"].as_str() {
        Some(b64) => sigil_scan::path::from_base64(b64).unwrap(),
        None => r["path"].as_str().unwrap().as_bytes().to_vec(),
    };
    let at = bytes.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    bytes[at..].to_vec()
}

fn stdout_records(out: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The tree: 20 images, of which one has no extension and one a
/// wrong one (10%), plus a video, an archive and a document; every file's
/// MD5 is listed. With no option given, every listed file matches.
#[test]
fn every_listed_file_matches_whatever_its_name_with_no_option() {
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("tree");
    let mut images: Vec<PathBuf> = fs::read_dir(testdata().join("pixels"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    images.sort();
    images.truncate(20);
    let mut names = Vec::new();
    for (i, src) in images.iter().enumerate() {
        let ext = src.extension().unwrap().to_string_lossy().into_owned();
        let name = match i {
            3 => format!("uploads/{i:04}"),     // no extension (object stores)
            7 => format!("uploads/{i:04}.txt"), // a wrong one
            _ => format!("uploads/{i:04}.{ext}"),
        };
        fs::create_dir_all(tree.join("uploads")).unwrap();
        fs::copy(src, tree.join(&name)).unwrap();
        names.push(name);
    }
    let mut mp4 = vec![0, 0, 0, 0x18];
    mp4.extend_from_slice(b"ftypisom\0\0\x02\0isommp41");
    mp4.resize(5000, 3);
    let others: [(&str, Vec<u8>); 3] = [
        ("media/clip", mp4),
        ("media/bundle.zip", b"PK\x03\x04 archive bytes".to_vec()),
        ("media/doc.pdf", b"%PDF-1.7 document bytes".to_vec()),
    ];
    for (name, body) in &others {
        fs::create_dir_all(tree.join("media")).unwrap();
        fs::write(tree.join(name), body).unwrap();
        names.push(name.to_string());
    }
    let md5s: Vec<[u8; 16]> = names
        .iter()
        .map(|n| sigil_core::ExactDigests::of(&fs::read(tree.join(n)).unwrap()).md5)
        .collect();
    let idx = d.path().join("index");
    build_md5_index(&idx, &md5s);

    let out = sigil()
        .args(["scan", "--quiet", "--index"])
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
    let recs = stdout_records(&out);
    assert_eq!(recs.len(), names.len());
    let matched = recs.iter().filter(|r| r["verdict"] == "match").count();
    assert_eq!(matched, names.len(), "listed files missed: {recs:#?}");
    let by_name: BTreeMap<Vec<u8>, &serde_json::Value> =
        recs.iter().map(|r| (record_name(r), r)).collect();
    for (n, media, format) in [
        (&b"0003"[..], "image", "png"),
        (b"0007.txt", "image", "png"),
        (b"clip", "video", "mp4"),
    ] {
        let r = by_name[n];
        assert_eq!(
            (r["media"].as_str(), r["format"].as_str()),
            (Some(media), Some(format))
        );
    }
    for n in [&b"clip"[..], b"bundle.zip", b"doc.pdf"] {
        assert_eq!(by_name[n]["note"], "not_an_image");
        assert!(by_name[n]["error"].is_null());
    }

    // A file named on the command line is scanned whatever its name.
    let out = sigil()
        .args(["scan", "--quiet", "--index"])
        .arg(&idx)
        .arg(tree.join("uploads/0003"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let recs = stdout_records(&out);
    assert_eq!(
        (recs.len(), recs[0]["verdict"].as_str()),
        (1, Some("match"))
    );
    // --include still narrows a walk, and says what it left out.
    let skipped = d.path().join("skipped.jsonl");
    let summary = d.path().join("summary.json");
    let out = sigil()
        .args(["scan", "--quiet", "--include", "*.png", "--index"])
        .arg(&idx)
        .arg(&tree)
        .arg("--skipped")
        .arg(&skipped)
        .arg("--summary-json")
        .arg(&summary)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout_records(&out).len(), 18);
    let listed = lines(&skipped);
    assert_eq!(listed.len(), 5);
    assert!(
        listed.iter().all(|s| s["reason"] == "excluded"),
        "{listed:?}"
    );
    let s: serde_json::Value = serde_json::from_slice(&fs::read(&summary).unwrap()).unwrap();
    assert_eq!(
        (
            s["skipped"].as_u64(),
            s["skipped_by_reason"]["excluded"].as_u64()
        ),
        (Some(5), Some(5))
    );
    assert_eq!(s["skipped_paths"].as_array().unwrap().len(), 5);
}

fn index_generation(idx: &Path) -> u64 {
    sigil_index::IndexReader::open(idx).unwrap().generation()
}

/// Keeps the first `n` records of a scan output (and a CSV's header), as
/// an interrupted run would have left them.
fn keep_records(out: &Path, keep: impl Fn(usize, &str) -> bool) {
    let text = fs::read_to_string(out).unwrap();
    let kept: String = text
        .lines()
        .enumerate()
        .filter(|(i, l)| keep(*i, l))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    fs::write(out, kept).unwrap();
}

/// A resume against another index generation is refused, naming both;
/// allowed, the change is recorded in the manifest and the summary.
#[test]
fn resume_refuses_another_index_generation_unless_allowed() {
    let d = tempfile::tempdir().unwrap();
    let idx = d.path().join("index");
    build_index(&idx);
    let tree = d.path().join("tree");
    many_files(&tree, 6);
    let out = d.path().join("out.jsonl");
    let scan = |extra: &[&str]| {
        let mut c = sigil();
        c.args(["scan", "--quiet", "--threads", "1", "--index"])
            .arg(&idx)
            .arg(&tree)
            .arg("--output")
            .arg(&out)
            .args(extra);
        c.output().unwrap()
    };
    assert_eq!(scan(&[]).status.code(), Some(1));
    let g1 = index_generation(&idx);
    let manifest = |()| -> serde_json::Value {
        serde_json::from_slice(&fs::read(d.path().join("out.jsonl.scan.json")).unwrap()).unwrap()
    };
    assert_eq!(manifest(())["index_generation"].as_u64(), Some(g1));
    keep_records(&out, |i, _| i < 2);

    // `sigil index add` makes a new generation.
    let list = d.path().join("more.txt");
    fs::write(&list, "0123456789abcdef0123456789abcdef\n").unwrap();
    let st = sigil()
        .args(["index", "add"])
        .arg(&idx)
        .args(["--list", "more"])
        .arg(&list)
        .output()
        .unwrap();
    assert_eq!(
        st.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let g2 = index_generation(&idx);
    assert_ne!(g1, g2);

    let res = scan(&["--resume"]);
    assert_eq!(res.status.code(), Some(2));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains(&format!("generation {g1}")) && err.contains(&format!("generation {g2}")),
        "{err}"
    );
    assert_eq!(lines(&out).len(), 2, "a refused resume wrote records");

    let summary = d.path().join("summary.json");
    let res = sigil()
        .args([
            "scan",
            "--threads",
            "1",
            "--resume",
            "--allow-index-change",
            "--index",
        ])
        .arg(&idx)
        .arg(&tree)
        .arg("--output")
        .arg(&out)
        .arg("--summary-json")
        .arg(&summary)
        .output()
        .unwrap();
    assert_eq!(
        res.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(lines(&out).len(), 6);
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("index changed on resume"), "{err}");
    let change = serde_json::json!({"from": g1, "to": g2, "records_before": 2});
    let s: serde_json::Value = serde_json::from_slice(&fs::read(&summary).unwrap()).unwrap();
    assert_eq!(s["index"]["generation"].as_u64(), Some(g2));
    assert_eq!(s["index"]["changed_on_resume"], change);
    let m = manifest(());
    assert_eq!(m["index_generation"].as_u64(), Some(g2));
    assert_eq!(m["index_changes"], serde_json::json!([change]));
}

/// Names that differ only in a byte that is not UTF-8, or in a line break
/// against a space, are different files: each gets its own record with its
/// exact bytes, resume tells them apart, and shards split them by their
/// bytes. In JSON Lines and CSV.
#[cfg(unix)]
#[test]
fn names_are_exact_bytes_in_records_resume_and_shards() {
    use std::os::unix::ffi::OsStrExt;
    let d = tempfile::tempdir().unwrap();
    let idx = d.path().join("index");
    build_index(&idx);
    let tree = d.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    let file = |name: &[u8]| tree.join(std::ffi::OsStr::from_bytes(name));
    // The first of each pair (in name order) is a clean image, the second
    // a copy of the listed bridge.
    let names: [&[u8]; 4] = [b"a\nb.png", b"a b.png", b"x\xfe.png", b"x\xff.png"];
    for (i, n) in names.iter().enumerate() {
        let src = if i % 2 == 0 {
            "pixels/pen_401x319.png"
        } else {
            "originals/bridge-mods/aaa-orig.jpg"
        };
        fs::copy(testdata().join(src), file(n)).unwrap();
    }
    let records = |format: &str, out: &Path| -> Vec<(Vec<u8>, String)> {
        if format == "jsonl" {
            lines(out)
                .iter()
                .map(|r| (record_name(r), r["verdict"].as_str().unwrap().to_string()))
                .collect()
        } else {
            let mut rdr = csv::Reader::from_path(out).unwrap();
            let header = rdr.headers().unwrap().clone();
            let col = |name| header.iter().position(|h| h == name).unwrap();
            let (path, bytes, verdict) = (col("path"), col("path_bytes"), col("verdict"));
            rdr.records()
                .map(|r| {
                    let r = r.unwrap();
                    assert!(!r[path].contains('\n'));
                    let full = match &r[bytes] {
                        "" => r[path].as_bytes().to_vec(),
                        b64 => sigil_scan::path::from_base64(b64).unwrap(),
                    };
                    let at = full.iter().rposition(|&b| b == b'/').unwrap() + 1;
                    (full[at..].to_vec(), r[verdict].to_string())
                })
                .collect()
        }
    };
    for format in ["jsonl", "csv"] {
        let out = d.path().join(format!("out.{format}"));
        let scan = |extra: &[&str]| {
            sigil()
                .args([
                    "scan",
                    "--quiet",
                    "--threads",
                    "1",
                    "--format",
                    format,
                    "--index",
                ])
                .arg(&idx)
                .arg(&tree)
                .arg("--output")
                .arg(&out)
                .args(extra)
                .status()
                .unwrap()
                .code()
        };
        assert_eq!(scan(&[]), Some(1));
        let all = records(format, &out);
        let got: Vec<&[u8]> = all.iter().map(|(n, _)| n.as_slice()).collect();
        assert_eq!(
            got, names,
            "{format}: one record per name, each its own bytes"
        );
        // An interrupted run that had recorded the first of each pair.
        let header = usize::from(format == "csv");
        keep_records(&out, |i, _| i < header || (i - header) % 2 == 0);
        assert_eq!(records(format, &out).len(), 2);
        assert_eq!(scan(&["--resume"]), Some(1), "{format}");
        let mut after = records(format, &out);
        after.sort();
        let mut want: Vec<(Vec<u8>, String)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    n.to_vec(),
                    if i % 2 == 0 { "no_match" } else { "match" }.to_string(),
                )
            })
            .collect();
        want.sort();
        assert_eq!(after, want, "{format}: resume");
    }
    // Two shards split the four names between them, each name once.
    let mut seen = Vec::new();
    for shard in ["0/2", "1/2"] {
        let out = sigil()
            .args(["scan", "--quiet", "--shard", shard, "--index"])
            .arg(&idx)
            .arg(&tree)
            .output()
            .unwrap();
        seen.extend(stdout_records(&out).iter().map(record_name));
    }
    seen.sort();
    let mut want: Vec<Vec<u8>> = names.iter().map(|n| n.to_vec()).collect();
    want.sort();
    assert_eq!(seen, want);
}

/// Runs `cmd` as an unprivileged user when the test runs as root (root
/// reads any file, so a permission-denied file needs another user).
#[cfg(unix)]
fn unprivileged(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
    cmd
}

/// A FIFO, a device, a symlink loop, a file that cannot be read and a
/// 50 GB sparse file in a scanned tree: each is a record or a skipped
/// entry with its cause, and the scan ends.
#[cfg(unix)]
#[test]
fn bad_inputs_each_get_a_record_or_a_skipped_entry() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let d = tempfile::tempdir().unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let idx = d.path().join("index");
    build_index(&idx);
    let tree = d.path().join("tree");
    copy("originals/bridge-mods/aaa-orig.jpg", &tree.join("good.jpg"));
    let fifo = std::ffi::CString::new(tree.join("pipe.jpg").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    symlink("/dev/null", tree.join("null.jpg")).unwrap();
    fs::create_dir(tree.join("dir")).unwrap();
    symlink("..", tree.join("dir/up")).unwrap();
    symlink("self.jpg", tree.join("self.jpg")).unwrap();
    copy("pixels/pen_401x319.png", &tree.join("secret.png"));
    fs::set_permissions(tree.join("secret.png"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::File::create(tree.join("huge.mp4"))
        .unwrap()
        .set_len(50 << 30)
        .unwrap();
    let outdir = d.path().join("out");
    fs::create_dir(&outdir).unwrap();
    fs::set_permissions(&outdir, fs::Permissions::from_mode(0o777)).unwrap();
    let (skipped, summary) = (outdir.join("skipped.jsonl"), outdir.join("summary.json"));
    let mut cmd = sigil();
    cmd.args(["scan", "--quiet", "--follow-symlinks", "--index"])
        .arg(&idx)
        .arg(&tree)
        .arg("--skipped")
        .arg(&skipped)
        .arg("--summary-json")
        .arg(&summary);
    let out = unprivileged(&mut cmd).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = stdout_records(&out);
    let cause = |name: &[u8]| -> Option<String> {
        let r = recs.iter().find(|r| record_name(r) == name)?;
        Some(
            r["error"]["cause"]
                .as_str()
                .unwrap_or(r["verdict"].as_str().unwrap())
                .to_string(),
        )
    };
    assert_eq!(cause(b"good.jpg").as_deref(), Some("match"));
    assert_eq!(cause(b"secret.png").as_deref(), Some("permission_denied"));
    assert_eq!(cause(b"self.jpg").as_deref(), Some("symlink_loop"));
    assert_eq!(cause(b"up").as_deref(), Some("symlink_loop"));
    assert_eq!(recs.len(), 4, "{recs:#?}");
    let listed: BTreeMap<Vec<u8>, String> = lines(&skipped)
        .iter()
        .map(|s| (record_name(s), s["reason"].as_str().unwrap().to_string()))
        .collect();
    let want: BTreeMap<Vec<u8>, String> = [
        (&b"huge.mp4"[..], "too_large"),
        (b"null.jpg", "special_file"),
        (b"pipe.jpg", "special_file"),
    ]
    .into_iter()
    .map(|(n, r)| (n.to_vec(), r.to_string()))
    .collect();
    assert_eq!(listed, want);
    let s: serde_json::Value = serde_json::from_slice(&fs::read(&summary).unwrap()).unwrap();
    assert_eq!(
        s["skipped_by_reason"],
        serde_json::json!({"special_file": 2, "too_large": 1})
    );
    assert_eq!(
        s["errors_by_cause"],
        serde_json::json!({"permission_denied": 1, "symlink_loop": 2})
    );
    assert_eq!(
        s["bytes"].as_u64(),
        Some(fs::metadata(tree.join("good.jpg")).unwrap().len())
    );
}

/// The pid's open file descriptors that point at `target`.
#[cfg(target_os = "linux")]
fn has_open(pid: u32, target: &Path) -> bool {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(|e| fs::read_link(e.ok()?.path()).ok())
                .any(|l| l == target)
        })
        .unwrap_or(false)
}

/// SIGTERM stops a scan in the middle of reading a large file (here a
/// 100 GB sparse file under a raised --max-file-bytes, minutes of reading):
/// the read checks the cancel flag between chunks, the file gets no record,
/// and the scan exits 130.
#[cfg(target_os = "linux")]
#[test]
fn sigterm_stops_a_read_in_progress() {
    let d = tempfile::tempdir().unwrap();
    let idx = d.path().join("index");
    build_index(&idx);
    let tree = d.path().join("tree");
    fs::create_dir(&tree).unwrap();
    let big = tree.join("big.bin");
    fs::File::create(&big).unwrap().set_len(100 << 30).unwrap();
    let out = d.path().join("out.jsonl");
    let summary = d.path().join("summary.json");
    let mut child = sigil()
        .args([
            "scan",
            "--quiet",
            "--threads",
            "1",
            "--max-file-bytes",
            "1T",
            "--index",
        ])
        .arg(&idx)
        .arg(&tree)
        .arg("--output")
        .arg(&out)
        .arg("--summary-json")
        .arg(&summary)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the worker has the file open (a safety cap only).
    let big = big.canonicalize().unwrap();
    for _ in 0..6000 {
        if has_open(child.id(), &big) {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "scan exited early");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(has_open(child.id(), &big), "the scan never opened the file");
    // SAFETY: sending SIGTERM to our own child process by its pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    // Reading the whole file would take minutes; stopping takes a chunk.
    let mut status = None;
    for _ in 0..6000 {
        status = child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let Some(status) = status else {
        child.kill().unwrap();
        panic!("SIGTERM did not stop the read");
    };
    assert_eq!(status.code(), Some(130));
    assert!(lines(&out).is_empty(), "a cancelled read was recorded");
    let s: serde_json::Value = serde_json::from_slice(&fs::read(&summary).unwrap()).unwrap();
    assert_eq!(s["interrupted"], true);
}
