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
    run_scan, ErrorCause, Lookup, MatchSink, Media, Note, OutputFormat, RecordWriter, ScanConfig,
    ScanRecord, Shard, Sinks, SkipReason, SkippedPath, SkippedWriter, Verdict,
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
    /// The JSON lines written, parsed.
    fn lines<T: serde::de::DeserializeOwned>(&self) -> Vec<T> {
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
    done: &HashSet<Vec<u8>>,
    cancel_after: Option<u64>,
) -> (Vec<ScanRecord>, sigil_scan::Summary) {
    scan_with(cfg, lookup, done, cancel_after, &|| {})
}

/// [`scan`], calling `on_cancel` once the cancel flag is raised.
fn scan_with(
    cfg: &ScanConfig,
    lookup: &dyn Lookup,
    done: &HashSet<Vec<u8>>,
    cancel_after: Option<u64>,
    on_cancel: &dyn Fn(),
) -> (Vec<ScanRecord>, sigil_scan::Summary) {
    let (recs, _, summary) = scan_listing(cfg, lookup, done, cancel_after, on_cancel);
    (recs, summary)
}

/// [`scan_with`], also returning what went to the skipped list.
fn scan_listing(
    cfg: &ScanConfig,
    lookup: &dyn Lookup,
    done: &HashSet<Vec<u8>>,
    cancel_after: Option<u64>,
    on_cancel: &dyn Fn(),
) -> (Vec<ScanRecord>, Vec<SkippedPath>, sigil_scan::Summary) {
    let sink = Sink::default();
    let skip_sink = Sink::default();
    let mut w = RecordWriter::new(
        OutputFormat::Jsonl,
        OutputTarget::Writer(Box::new(sink.clone())),
        true,
    )
    .unwrap();
    let mut skipped = SkippedWriter::new(Box::new(skip_sink.clone()));
    let cancel = AtomicBool::new(false);
    let mut progress = |p: &sigil_scan::Progress| {
        if let Some(n) = cancel_after {
            if p.done >= n && !cancel.swap(true, Ordering::SeqCst) {
                on_cancel();
            }
        }
    };
    let sinks = Sinks {
        records: &mut w,
        matches: None,
        skipped: Some(&mut skipped),
        progress: &mut progress,
    };
    let summary = run_scan(cfg, lookup, done, &cancel, sinks).unwrap();
    (sink.lines(), skip_sink.lines(), summary)
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
    fs::write(
        root.join("readme.txt"),
        b"not an image, scanned all the same",
    )
    .unwrap();
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
    assert_eq!(recs.len(), 9, "{:#?}", m.keys());

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
    assert_eq!(cause("bomb.png"), Some(ErrorCause::ImageTooLarge));
    assert!(matches!(
        cause("truncated.jpg"),
        Some(ErrorCause::CorruptImage) | Some(ErrorCause::UnsupportedImage)
    ));
    for n in ["empty.jpg", "bomb.png", "truncated.jpg"] {
        assert_eq!(m[n].verdict, Verdict::Error, "{n}");
    }
    // Text is not an image, whatever its name says: exact digests only,
    // no error.
    for n in ["notes-not-an-image.png", "readme.txt"] {
        let r = &m[n];
        assert_eq!(
            (r.verdict, r.media, r.note, &r.error),
            (
                Verdict::NoMatch,
                Some(Media::Other),
                Some(Note::NotAnImage),
                &None
            ),
            "{n}"
        );
        // Readable files carry their exact digests even when they do not decode.
        assert_eq!(r.sha256.as_ref().unwrap().len(), 64);
    }
    assert_eq!(
        (m["bridge.jpg"].media, m["bridge.jpg"].format.as_deref()),
        (Some(Media::Image), Some("jpeg"))
    );

    assert_eq!(summary.files, 9);
    assert_eq!(summary.matched, 3);
    assert_eq!(summary.error_count(), 3);
    assert_eq!(summary.not_an_image.get(&Media::Other), Some(&2));
    assert_eq!(summary.skipped_count(), 0);
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
    assert_eq!(unique.len(), 9);
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
    let done: HashSet<Vec<u8>> = first.iter().map(|r| r.identity().to_vec()).collect();
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
            assert_eq!(
                (r.media, r.note),
                (Some(Media::Other), Some(Note::NotAnImage))
            );
            if kind == HashKind::Sha1 && !with_sha1 {
                assert_eq!(r.verdict, Verdict::NoMatch, "{name}: not an image, no list");
                assert!(r.matches.is_empty() && r.error.is_none());
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

/// A minimal ISO base media header (an MP4 video's first box), then `n`
/// bytes of `fill`.
fn fake_mp4(fill: u8, n: usize) -> Vec<u8> {
    let mut b = vec![0, 0, 0, 0x18];
    b.extend_from_slice(b"ftypisom\0\0\x02\0isommp41");
    b.resize(b.len() + n, fill);
    b
}

/// Files are what their bytes say: an image without an extension or with
/// a wrong one is hashed and matched; a video or an archive listed by an
/// exact digest matches, and is recorded as not an image of its kind.
#[test]
fn files_are_recognised_by_content_whatever_their_names() {
    use sigil_core::ExactDigests;
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("tree");
    let bridge = build_tree(&d.path().join("unused"));
    copy(
        "originals/bridge-mods/aaa-orig.jpg",
        &tree.join("uploads/0001"),
    );
    copy(
        "originals/bridge-mods/aaa-orig.jpg",
        &tree.join("uploads/0002.txt"),
    );
    let video = fake_mp4(7, 3000);
    let archive = b"PK\x03\x04 an archive, listed by MD5".to_vec();
    let unlisted = fake_mp4(9, 100);
    fs::write(tree.join("uploads/0003"), &video).unwrap();
    fs::write(tree.join("uploads/0004.jpg"), &archive).unwrap();
    fs::write(tree.join("uploads/0005.mp4"), &unlisted).unwrap();
    let lookup = mem_lookup(
        &[(bridge, "bridge")],
        &[(ExactDigests::of(&video).sha256, "vid")],
    )
    .with_entry(
        HashKind::Md5,
        &ExactDigests::of(&archive).md5,
        "test",
        "zip",
        "fixture",
    );
    let mut cfg = ScanConfig {
        roots: vec![tree.clone()],
        ..Default::default()
    };
    for decode_limit in [None, Some(1000)] {
        // Under a decode limit smaller than the video, it is streamed (and
        // so are the images, which are then too large to decode).
        if let Some(max) = decode_limit {
            cfg.decode.limits.max_bytes = max;
        }
        let (recs, summary) = scan(&cfg, &lookup, &HashSet::new(), None);
        let m = by_name(&recs);
        assert_eq!(recs.len(), 5);
        for n in ["0001", "0002.txt"] {
            let r = &m[n];
            assert_eq!((r.media, r.note), (Some(Media::Image), None));
            if decode_limit.is_none() {
                assert_eq!(r.verdict, Verdict::Match);
                assert_eq!(r.matches[0].kind, HashKind::Pdq);
            } else {
                // Too large to decode: an error, its digests looked up.
                assert_eq!(r.verdict, Verdict::Error);
                assert_eq!(
                    r.error.as_ref().map(|e| e.cause),
                    Some(ErrorCause::FileTooLarge)
                );
                assert!(r.md5.is_some());
            }
        }
        let v = &m["0003"];
        assert_eq!(
            (v.verdict, v.media, v.format.as_deref(), v.note, &v.error),
            (
                Verdict::Match,
                Some(Media::Video),
                Some("mp4"),
                Some(Note::NotAnImage),
                &None
            ),
            "{decode_limit:?}"
        );
        assert_eq!(
            (v.matches[0].id.as_str(), v.matches[0].kind),
            ("vid", HashKind::Sha256)
        );
        let z = &m["0004.jpg"];
        assert_eq!(
            (z.verdict, z.media, z.note),
            (Verdict::Match, Some(Media::Other), Some(Note::NotAnImage))
        );
        assert_eq!(z.matches[0].kind, HashKind::Md5);
        let u = &m["0005.mp4"];
        assert_eq!(
            (u.verdict, u.media, u.note),
            (Verdict::NoMatch, Some(Media::Video), Some(Note::NotAnImage))
        );
        let images = if decode_limit.is_none() { 2 } else { 0 };
        assert_eq!(summary.matched, 2 + images);
        assert_eq!(summary.not_an_image.get(&Media::Video), Some(&2));
        assert_eq!(summary.not_an_image.get(&Media::Other), Some(&1));
        assert_eq!(summary.not_an_image_matched, 2);
    }
}

/// Every path not read is listed with its reason, and counted.
#[cfg(unix)]
#[test]
fn paths_not_read_are_listed_with_their_reason() {
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("tree");
    copy(
        "originals/bridge-mods/square-128x128.jpg",
        &tree.join("a.jpg"),
    );
    copy(
        "originals/bridge-mods/square-128x128.jpg",
        &tree.join("logs/x.jpg"),
    );
    fs::File::create(tree.join("huge.bin"))
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let fifo = std::ffi::CString::new(tree.join("pipe").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    std::os::unix::fs::symlink("a.jpg", tree.join("link.jpg")).unwrap();
    let cfg = ScanConfig {
        roots: vec![tree.clone()],
        walk: WalkOptions {
            exclude: vec!["logs".into()],
            max_file_bytes: 1 << 30,
            ..Default::default()
        },
        ..Default::default()
    };
    let (recs, skipped, summary) =
        scan_listing(&cfg, &MemoryLookup::new(), &HashSet::new(), None, &|| {});
    assert_eq!(recs.len(), 1);
    let got: Vec<(String, SkipReason)> = skipped
        .iter()
        .map(|s| {
            let name = Path::new(&s.path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (name, s.reason)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("huge.bin".to_string(), SkipReason::TooLarge),
            ("link.jpg".to_string(), SkipReason::SymlinkNotFollowed),
            ("logs".to_string(), SkipReason::Excluded),
            ("pipe".to_string(), SkipReason::SpecialFile),
        ]
    );
    assert!(
        skipped[0].detail.contains("1099511627776 bytes"),
        "{:?}",
        skipped[0]
    );
    assert_eq!(summary.skipped_count(), 4);
    assert_eq!(summary.skipped_paths, skipped);
    assert_eq!(summary.skipped_paths_omitted(), 0);
    let json = summary.to_json();
    assert_eq!(json["skipped_by_reason"]["special_file"], 1);
    assert_eq!(json["skipped_paths"][3]["reason"], "special_file");
}

/// Takes matched records until `refuse_after`, then refuses them.
struct CountingSink {
    taken: Vec<String>,
    refuse_after: usize,
}

impl MatchSink for CountingSink {
    fn matched(&mut self, rec: &ScanRecord) -> Result<(), String> {
        assert_eq!(rec.verdict, Verdict::Match, "only matches reach the sink");
        if self.taken.len() >= self.refuse_after {
            return Err("the report store is away".into());
        }
        self.taken.push(rec.path.clone());
        Ok(())
    }
}

/// Every matched record reaches the match sink before the output; a sink
/// that refuses one stops the scan with an error naming the file, and that
/// record is not written (a resume matches the file again).
#[test]
fn matches_reach_the_sink_before_the_output() {
    let d = tempfile::tempdir().unwrap();
    let bridge = build_tree(d.path());
    let lookup = mem_lookup(&[(bridge, "bridge")], &[]);
    let cfg = ScanConfig {
        roots: vec![d.path().to_path_buf()],
        threads: 1,
        ..Default::default()
    };
    let run = |refuse_after: usize| {
        let out = Sink::default();
        let mut w = RecordWriter::new(
            OutputFormat::Jsonl,
            OutputTarget::Writer(Box::new(out.clone())),
            true,
        )
        .unwrap();
        let mut sink = CountingSink {
            taken: Vec::new(),
            refuse_after,
        };
        let cancel = AtomicBool::new(false);
        let sinks = Sinks {
            records: &mut w,
            matches: Some(&mut sink),
            skipped: None,
            progress: &mut |_: &sigil_scan::Progress| {},
        };
        let result = run_scan(&cfg, &lookup, &HashSet::new(), &cancel, sinks);
        let recs: Vec<ScanRecord> = out.lines();
        (result, sink.taken, recs)
    };
    // Both bridge copies match; each reaches the sink once, and the output.
    let (result, taken, recs) = run(usize::MAX);
    let summary = result.unwrap();
    let matched: Vec<String> = recs
        .iter()
        .filter(|r| r.verdict == Verdict::Match)
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(matched.len(), 2, "{recs:?}");
    assert_eq!(taken, matched);
    assert_eq!(summary.matched, 2);

    // Refusing the second match: an error naming it, and no record of it.
    let (result, taken, recs) = run(1);
    let err = result.unwrap_err().to_string();
    assert_eq!(taken.len(), 1);
    assert!(err.contains("the report store is away"), "{err}");
    let written: Vec<&ScanRecord> = recs
        .iter()
        .filter(|r| r.verdict == Verdict::Match)
        .collect();
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].path, taken[0]);
    assert!(
        !err.contains(&taken[0]),
        "the error names the refused file: {err}"
    );
}
