//! `sigil hash` end to end: spawns the built binary on testdata images.

use std::path::{Path, PathBuf};
use std::process::Output;

use sigil_core::{ExactDigests, PdqHash};

use crate::support::sigil;

fn originals() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/originals")
}

fn run(args: &[&str]) -> Output {
    sigil().args(args).output().expect("spawn sigil")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A scratch directory removed on drop (no tempfile dependency needed).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("sigil-hash-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The reference row for `file` from testdata/originals.csv:
/// (pdq_full, quality_full, pdq_cli512).
fn reference(file: &str) -> (PdqHash, u32, PdqHash) {
    let csv = std::fs::read_to_string(originals().join("../originals.csv")).unwrap();
    let line = csv
        .lines()
        .find(|l| l.split(',').next() == Some(file))
        .unwrap_or_else(|| panic!("{file} not in originals.csv"));
    let f: Vec<&str> = line.split(',').collect();
    (
        PdqHash::from_hex(f[4]).unwrap(),
        f[5].parse().unwrap(),
        PdqHash::from_hex(f[6]).unwrap(),
    )
}

#[test]
fn hashes_one_png_exactly() {
    let path = originals().join("misc-images/modes/P.png");
    let o = run(&["hash", path.to_str().unwrap()]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("file,width,height,pdq,quality,md5,sha1,sha256")
    );
    let row: Vec<&str> = lines.next().expect("one row").split(',').collect();
    assert_eq!(lines.next(), None);
    let (pdq, quality, _) = reference("misc-images/modes/P.png");
    let exact = ExactDigests::of(&std::fs::read(&path).unwrap());
    assert_eq!(row[0], path.to_str().unwrap());
    assert_eq!((row[1], row[2]), ("1600", "1004"));
    assert_eq!(row[3], pdq.to_hex());
    assert_eq!(row[4], quality.to_string());
    assert_eq!(row[5], exact.md5_hex());
    assert_eq!(row[6], exact.sha1_hex().unwrap());
    assert_eq!(row[7], exact.sha256_hex());
}

#[test]
fn directories_recurse_in_sorted_order_whatever_the_thread_count() {
    let dir = originals().join("reg-test-input");
    let one = run(&["hash", "--threads", "1", dir.to_str().unwrap()]);
    let two = run(&["hash", "--threads", "2", dir.to_str().unwrap()]);
    let four = run(&["hash", "--threads", "4", dir.to_str().unwrap()]);
    assert!(one.status.success(), "stderr: {}", stderr(&one));
    assert_eq!(stdout(&one), stdout(&two));
    assert_eq!(stdout(&one), stdout(&four));
    let files: Vec<String> = stdout(&one)
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    // dih/, labelme-subset/ (7 files), pen-and-coaster.png
    assert_eq!(files.len(), 9, "{files:?}");
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted);
    assert!(files[0].ends_with("dih/bridge-2-rotate-90.jpg"));
    assert!(files[8].ends_with("pen-and-coaster.png"));
}

#[test]
fn failures_are_reported_and_the_rest_still_printed() {
    let tmp = Scratch::new("failures");
    let good = tmp.path().join("a-good.png");
    std::fs::copy(originals().join("misc-images/modes/1.png"), &good).unwrap();
    let fake = tmp.path().join("b-not-an-image.jpg");
    std::fs::write(&fake, b"plain text, not a JPEG\n").unwrap();
    let empty = tmp.path().join("c-empty.png");
    std::fs::write(&empty, b"").unwrap();
    let missing = tmp.path().join("d-missing.png");

    let o = run(&[
        "hash",
        tmp.path().to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(&o));
    let err = stderr(&o);
    let err_lines: Vec<&str> = err.lines().collect();
    assert_eq!(err_lines.len(), 3, "one line per failed file: {err}");
    assert!(err_lines[0].starts_with(&format!("sigil: {}: ", fake.display())));
    assert!(err_lines[0].contains("not a recognised image format"));
    assert!(err_lines[1].starts_with(&format!("sigil: {}: ", empty.display())));
    assert!(err_lines[1].contains("empty input"));
    assert!(err_lines[2].starts_with(&format!("sigil: {}: ", missing.display())));

    let out = stdout(&o);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 3, "good + two undecodable rows: {out}");
    let (pdq, _, _) = reference("misc-images/modes/1.png");
    assert_eq!(rows[0][3], pdq.to_hex());
    // The undecodable file still gets its exact digests (exact lists match
    // any file) with empty PDQ fields.
    let exact = ExactDigests::of(b"plain text, not a JPEG\n");
    assert_eq!(&rows[1][1..5], &["", "", "", ""]);
    assert_eq!(rows[1][5], exact.md5_hex());
    assert_eq!(rows[1][7], exact.sha256_hex());
}

#[test]
fn jsonl_with_dihedral() {
    let path = originals().join("misc-images/modes/LA.png");
    let o = run(&[
        "hash",
        "--format",
        "jsonl",
        "--dihedral",
        path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1);
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    let (pdq, quality, _) = reference("misc-images/modes/LA.png");
    assert_eq!(v["pdq"], pdq.to_hex());
    assert_eq!(v["quality"], quality);
    assert_eq!(v["dih_orig"], v["pdq"]);
    for k in [
        "dih_rot90",
        "dih_rot180",
        "dih_rot270",
        "dih_flipx",
        "dih_flipy",
        "dih_flipplus1",
        "dih_flipminus1",
    ] {
        let h = v[k].as_str().unwrap_or_else(|| panic!("{k} missing"));
        assert_eq!(h.len(), 64);
        assert_ne!(h, pdq.to_hex(), "{k}");
    }
    assert_eq!(v["width"], 1600);
    assert!(v["md5"].as_str().unwrap().len() == 32);
}

#[test]
fn csv_dihedral_columns_and_cli512_profile() {
    let path = originals().join("misc-images/modes/RGBA.png");
    let o = run(&[
        "hash",
        "--profile",
        "cli512",
        "--dihedral",
        path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    assert!(header.ends_with(
        ",dih_orig,dih_rot90,dih_rot180,dih_rot270,dih_flipx,dih_flipy,dih_flipplus1,dih_flipminus1"
    ));
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(row.len(), 16);
    let (_, _, cli512) = reference("misc-images/modes/RGBA.png");
    assert_eq!(row[3], cli512.to_hex());
    assert_eq!(row[8], row[3]);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["hash"]).status.code(), Some(2));
    let p = originals().join("misc-images/wee.jpg");
    assert_eq!(
        run(&["hash", "--profile", "bogus", p.to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(&["hash", "--threads", "0", p.to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );
}
