//! End-to-end tests of the scan pipeline on real fixture images (testdata/),
//! with an in-memory lookup (`sigil_match::MemoryLookup`) standing in for
//! the index.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use sigil_core::{HashKind, PdqHash};
use sigil_index::{Match, SearchOptions};
use sigil_match::{MatchPolicy, MatchRequest, MemoryLookup};
use sigil_scan::output::OutputTarget;
use sigil_scan::walk::WalkOptions;
use sigil_scan::{
    run_scan, ErrorCause, Lookup, OutputFormat, RecordWriter, ScanConfig, ScanRecord, Shard,
    Verdict,
};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// A list held in memory: PDQ hashes and SHA-256 digests with ids.
fn mem_lookup(pdq: &[(PdqHash, &str)], sha256: &[([u8; 32], &str)]) -> MemoryLookup {
    let l = pdq.iter().fold(MemoryLookup::new(), |l, (h, id)| {
        l.with_entry(HashKind::Pdq, &h.0, "test", id, "fixture")
    });
    sha256.iter().fold(l, |l, (d, id)| {
        l.with_entry(HashKind::Sha256, d, "test", id, "fixture")
    })
}

/// A lookup that finds nothing and holds every call after the first `free`
/// until `open` is called, so a test can cancel a scan at a known point
/// whatever the speed of the machine.
struct GatedLookup {
    free: usize,
    calls: AtomicUsize,
    open: Mutex<bool>,
    opened: Condvar,
}

impl GatedLookup {
    fn new(free: usize) -> Self {
        GatedLookup {
            free,
            calls: AtomicUsize::new(0),
            open: Mutex::new(false),
            opened: Condvar::new(),
        }
    }
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl Lookup for GatedLookup {
    fn generation(&self) -> u64 {
        0
    }
    fn lists(&self) -> Vec<String> {
        Vec::new()
    }
    fn pdq(&self, _: &PdqHash, _: &SearchOptions) -> Vec<Match> {
        if self.calls.fetch_add(1, Ordering::SeqCst) >= self.free {
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.opened.wait(open).unwrap();
            }
        }
        Vec::new()
    }
    fn pdq_dihedral(&self, v: &[PdqHash; 8], opts: &SearchOptions) -> Vec<Match> {
        self.pdq(&v[0], opts)
    }
    fn exact(&self, _: HashKind, _: &[u8]) -> Vec<Match> {
        Vec::new()
    }
}

/// Collects written records in memory.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);
impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl Sink {
    fn records(&self) -> Vec<ScanRecord> {
        let buf = self.0.lock().unwrap();
        buf.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }
}

fn scan(
    cfg: &ScanConfig,
    lookup: &dyn Lookup,
    done: &HashSet<String>,
    cancel_after: Option<u64>,
) -> (Vec<ScanRecord>, sigil_scan::Summary) {
    scan_with(cfg, lookup, done, cancel_after, &|| {})
}

/// [`scan`], calling `on_cancel` once the cancel flag is raised.
fn scan_with(
    cfg: &ScanConfig,
    lookup: &dyn Lookup,
    done: &HashSet<String>,
    cancel_after: Option<u64>,
    on_cancel: &dyn Fn(),
) -> (Vec<ScanRecord>, sigil_scan::Summary) {
    let sink = Sink::default();
    let mut w = RecordWriter::new(
        OutputFormat::Jsonl,
        OutputTarget::Writer(Box::new(sink.clone())),
        true,
    )
    .unwrap();
    let cancel = AtomicBool::new(false);
    let mut progress = |p: &sigil_scan::Progress| {
        if let Some(n) = cancel_after {
            if p.done >= n && !cancel.swap(true, Ordering::SeqCst) {
                on_cancel();
            }
        }
    };
    let summary = run_scan(
        cfg,
        lookup,
        &mut w,
        OutputFormat::Jsonl,
        done,
        &cancel,
        &mut progress,
    )
    .unwrap();
    (sink.records(), summary)
}

fn copy(src: &str, dst: &Path) {
    fs::create_dir_all(dst.parent().unwrap()).unwrap();
    fs::copy(testdata().join(src), dst).unwrap();
}

/// A PNG whose header claims 60000 x 60000 pixels (a decompression bomb).
fn bomb_png() -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(60000u32.to_be_bytes());
    ihdr.extend(60000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32(&ihdr).to_be_bytes());
    png.extend([0u8; 64]);
    png
}

/// Builds a tree of good and bad files; returns the bridge image's PDQ.
fn build_tree(root: &Path) -> PdqHash {
    copy(
        "originals/bridge-mods/aaa-orig.jpg",
        &root.join("photos/bridge.jpg"),
    );
    copy(
        "originals/bridge-mods/shrink-a-lot.jpg",
        &root.join("photos/nested/small bridge.jpg"),
    );
    copy("pixels/pen_401x319.png", &root.join("photos/pen.png"));
    copy(
        "pixels/synthetic_flat_gray_320x240.png",
        &root.join("flat.png"),
    );
    fs::write(root.join("empty.jpg"), b"").unwrap();
    fs::write(root.join("notes-not-an-image.png"), b"hello, I am text\n").unwrap();
    let jpg = fs::read(testdata().join("originals/bridge-mods/square-256x256.jpg")).unwrap();
    fs::write(root.join("truncated.jpg"), &jpg[..jpg.len() / 3]).unwrap();
    fs::write(root.join("bomb.png"), bomb_png()).unwrap();
    fs::write(root.join("readme.txt"), b"not scanned by default").unwrap();
    // PDQ of aaa-orig.jpg from the reference CSV.
    let csv = fs::read_to_string(testdata().join("originals.csv")).unwrap();
    let row = csv
        .lines()
        .find(|l| l.starts_with("bridge-mods/aaa-orig.jpg,"))
        .unwrap();
    PdqHash::from_hex(row.split(',').nth(4).unwrap()).unwrap()
}

fn by_name(recs: &[ScanRecord]) -> BTreeMap<String, ScanRecord> {
    recs.iter()
        .map(|r| {
            let name = Path::new(&r.path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (name, r.clone())
        })
        .collect()
}

#[test]

fn every_file_gets_one_record_with_its_cause() {
    let d = tempfile::tempdir().unwrap();
    let bridge = build_tree(d.path());
    let sha_pen = {
        use sha2_digest::sha256;
        sha256(&fs::read(d.path().join("photos/pen.png")).unwrap())
    };
    let lookup = mem_lookup(&[(bridge, "bridge")], &[(sha_pen, "pen-exact")]);
    let cfg = ScanConfig {
        roots: vec![d.path().to_path_buf()],
        threads: 2,
        ..Default::default()
    };
    let (recs, summary) = scan(&cfg, &lookup, &HashSet::new(), None);
    let m = by_name(&recs);
    assert_eq!(recs.len(), 8, "{:#?}", m.keys());
    assert!(!m.contains_key("readme.txt"));

    let b = &m["bridge.jpg"];
    assert_eq!(b.verdict, Verdict::Match);
    assert!(b.quality.unwrap() >= 50);
    assert_eq!(b.matches[0].id, "bridge");
    assert!(b.matches[0].distance <= 8, "{b:?}");
    // The shrunk copy is a near duplicate: still within the radius.
    assert_eq!(m["small bridge.jpg"].verdict, Verdict::Match);
    // Exact SHA-256 lists match too.
    assert_eq!(m["pen.png"].verdict, Verdict::Match);
    assert_eq!(m["pen.png"].matches[0].kind, HashKind::Sha256);
    // A flat image has no usable PDQ.
    assert_eq!(m["flat.png"].verdict, Verdict::LowQuality);

    let cause = |n: &str| m[n].error.as_ref().map(|e| e.cause);
    assert_eq!(cause("empty.jpg"), Some(ErrorCause::EmptyFile));
    assert_eq!(
        cause("notes-not-an-image.png"),
        Some(ErrorCause::NotAnImage)
    );
    assert_eq!(cause("bomb.png"), Some(ErrorCause::ImageTooLarge));
    assert!(matches!(
        cause("truncated.jpg"),
        Some(ErrorCause::CorruptImage) | Some(ErrorCause::UnsupportedImage)
    ));
    for n in [
        "empty.jpg",
        "notes-not-an-image.png",
        "bomb.png",
        "truncated.jpg",
    ] {
        assert_eq!(m[n].verdict, Verdict::Error, "{n}");
    }
    // Readable files carry their exact digests even when they do not decode.
    assert_eq!(
        m["notes-not-an-image.png"].sha256.as_ref().unwrap().len(),
        64
    );

    assert_eq!(summary.files, 8);
    assert_eq!(summary.matched, 3);
    assert_eq!(summary.error_count(), 4);
    assert_eq!(summary.skipped, 1);
}

#[test]
fn shards_cover_the_tree_exactly_once() {
    let d = tempfile::tempdir().unwrap();
    build_tree(d.path());
    let lookup = MemoryLookup::new();
    let mut seen = Vec::new();
    for i in 0..3 {
        let cfg = ScanConfig {
            roots: vec![d.path().to_path_buf()],
            walk: WalkOptions {
                shard: Shard { index: i, count: 3 },
                ..Default::default()
            },
            ..Default::default()
        };
        seen.extend(
            scan(&cfg, &lookup, &HashSet::new(), None)
                .0
                .into_iter()
                .map(|r| r.path),
        );
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), unique.len(), "a file was scanned by two shards");
    assert_eq!(unique.len(), 8);
}

#[test]
fn resume_skips_recorded_files_and_records_the_rest_once() {
    let d = tempfile::tempdir().unwrap();
    for i in 0..12 {
        copy(
            "originals/bridge-mods/square-128x128.jpg",
            &d.path().join(format!("d{}/img{i}.jpg", i % 3)),
        );
    }
    let cfg = ScanConfig {
        roots: vec![d.path().to_path_buf()],
        threads: 1,
        ..Default::default()
    };
    // Four files go through; a fifth, if the worker reached it before the
    // cancel, waits in the lookup until the scan is cancelled, so the worker
    // cannot race ahead of the cancel however fast the machine.
    let gated = GatedLookup::new(4);
    let (first, s1) = scan_with(&cfg, &gated, &HashSet::new(), Some(4), &|| gated.open());
    assert!(s1.interrupted);
    assert!(
        (4..=5).contains(&first.len()),
        "the four before the cancel and at most one in flight, got {}",
        first.len()
    );
    let lookup = MemoryLookup::new();
    let done: HashSet<String> = first.iter().map(|r| r.path.clone()).collect();
    let (second, s2) = scan(&cfg, &lookup, &done, None);
    assert_eq!(s2.resumed as usize, first.len());
    let mut all: Vec<String> = first.into_iter().chain(second).map(|r| r.path).collect();
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!(n, all.len(), "duplicate records after resume");
    assert_eq!(n, 12);
}

#[cfg(unix)]
#[test]
fn symlink_loops_are_error_records_and_the_scan_goes_on() {
    let d = tempfile::tempdir().unwrap();
    copy(
        "originals/bridge-mods/square-128x128.jpg",
        &d.path().join("a/x.jpg"),
    );
    std::os::unix::fs::symlink(d.path(), d.path().join("a/back")).unwrap();
    let cfg = ScanConfig {
        roots: vec![d.path().to_path_buf()],
        walk: WalkOptions {
            follow_symlinks: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let (recs, _) = scan(&cfg, &MemoryLookup::new(), &HashSet::new(), None);
    assert!(recs
        .iter()
        .any(|r| r.error.as_ref().map(|e| e.cause) == Some(ErrorCause::SymlinkLoop)));
    assert!(recs
        .iter()
        .any(|r| r.path.ends_with("a/x.jpg") && r.verdict != Verdict::Error));
}

/// Minimal SHA-256 for the test's expected value, via sigil-core's digests.
mod sha2_digest {
    pub fn sha256(b: &[u8]) -> [u8; 32] {
        sigil_core::ExactDigests::of(b).sha256
    }
}

/// `robust`: a copy rotated by 90 degrees and a copy padded with a black
/// border (20%) miss with the plain PDQ query and match with the robust query
/// set, reported once per entry with the variant that matched.
#[test]
fn robust_scan_matches_rotated_and_padded_copies() {
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("tree");
    let bridge = build_tree(&d.path().join("unused"));
    copy(
        "originals/reg-test-input/dih/bridge-2-rotate-90.jpg",
        &tree.join("rotated.jpg"),
    );
    let bytes = fs::read(testdata().join("originals/bridge-mods/aaa-orig.jpg")).unwrap();
    let img = sigil_core::decode::decode(&bytes, &Default::default()).unwrap();
    let padded =
        sigil_core::robust::geometry::pad_flat(&sigil_core::robust::rgb_of(&img), 0.2, [0; 3]);
    padded.save(tree.join("padded.png")).unwrap();
    let lookup = mem_lookup(&[(bridge, "bridge")], &[]);
    let plain = ScanConfig {
        roots: vec![tree.clone()],
        ..Default::default()
    };
    let (recs, _) = scan(&plain, &lookup, &HashSet::new(), None);
    let m = by_name(&recs);
    assert_eq!(m["rotated.jpg"].verdict, Verdict::NoMatch, "{m:#?}");
    assert_eq!(m["padded.png"].verdict, Verdict::NoMatch, "{m:#?}");

    let policy = MatchPolicy {
        robust: sigil_core::robust::RobustLevel::Standard,
        ..MatchPolicy::unrestricted()
    };
    let robust = ScanConfig {
        matching: policy.resolve(&MatchRequest::default(), &lookup).unwrap(),
        ..plain
    };
    let (recs, summary) = scan(&robust, &lookup, &HashSet::new(), None);
    assert_eq!(summary.matched, 2);
    let m = by_name(&recs);
    for (name, variant) in [("rotated.jpg", "dih:"), ("padded.png", "trim")] {
        let r = &m[name];
        assert_eq!(r.verdict, Verdict::Match, "{r:?}");
        assert_eq!(r.matches.len(), 1, "one match per entry: {r:?}");
        assert_eq!(r.matches[0].id, "bridge");
        assert!(r.matches[0].distance <= 31, "{r:?}");
        let v = r.matches[0].query_variant.as_deref().unwrap();
        assert!(v.starts_with(variant), "{name}: matched via {v}");
    }
}

/// Exact matches of every kind through a real index, and SHA-1 computed only
/// when the index holds SHA-1 entries (records never carry it).
#[test]
fn exact_lists_of_every_kind_match_through_the_index() {
    use sigil_index::{EntryMeta, IndexReader, IndexWriter, SegmentBuilder};

    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("tree");
    let files: [(&str, &[u8]); 3] = [
        ("a.jpg", b"not an image, listed by MD5\n"),
        ("b.jpg", b"not an image, listed by SHA-1\n"),
        ("c.jpg", b"not an image, listed by SHA-256\n"),
    ];
    fs::create_dir_all(&tree).unwrap();
    for (name, body) in files {
        fs::write(tree.join(name), body).unwrap();
    }
    let digest = |i: usize| sigil_core::ExactDigests::of(files[i].1);
    let build = |dir: &Path, with_sha1: bool| {
        let mut b = SegmentBuilder::new();
        let meta = |id| EntryMeta {
            id,
            list: "exact",
            category: "test",
            note: None,
        };
        b.push(HashKind::Md5, &digest(0).md5, meta("by-md5"))
            .unwrap();
        if with_sha1 {
            b.push(HashKind::Sha1, &digest(1).sha1.unwrap(), meta("by-sha1"))
                .unwrap();
        }
        b.push(HashKind::Sha256, &digest(2).sha256, meta("by-sha256"))
            .unwrap();
        IndexWriter::create(dir).unwrap().add_segment(b).unwrap();
        IndexReader::open(dir).unwrap()
    };
    let cfg = ScanConfig {
        roots: vec![tree.clone()],
        ..Default::default()
    };

    for with_sha1 in [true, false] {
        let lookup = build(&d.path().join(format!("idx-{with_sha1}")), with_sha1);
        assert_eq!(lookup.has_entries(HashKind::Sha1), with_sha1);
        assert!(lookup.has_entries(HashKind::Md5) && lookup.has_entries(HashKind::Sha256));
        let (recs, summary) = scan(&cfg, &lookup, &HashSet::new(), None);
        let m: BTreeMap<String, &ScanRecord> = recs
            .iter()
            .map(|r| {
                (
                    Path::new(&r.path)
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into(),
                    r,
                )
            })
            .collect();
        for (name, id, kind) in [
            ("a.jpg", "by-md5", HashKind::Md5),
            ("b.jpg", "by-sha1", HashKind::Sha1),
            ("c.jpg", "by-sha256", HashKind::Sha256),
        ] {
            let r = m[name];
            if kind == HashKind::Sha1 && !with_sha1 {
                assert_eq!(r.verdict, Verdict::Error, "{name}: not an image, no list");
                assert!(r.matches.is_empty());
            } else {
                assert_eq!(r.verdict, Verdict::Match, "{name} ({with_sha1})");
                assert_eq!((r.matches[0].id.as_str(), r.matches[0].kind), (id, kind));
            }
            // MD5 and SHA-256 are recorded either way.
            let i = name.as_bytes()[0] - b'a';
            assert_eq!(
                r.md5.as_deref(),
                Some(digest(i as usize).md5_hex().as_str())
            );
            assert_eq!(
                r.sha256.as_deref(),
                Some(digest(i as usize).sha256_hex().as_str())
            );
        }
        assert_eq!(summary.matched, if with_sha1 { 3 } else { 2 });
    }
}
