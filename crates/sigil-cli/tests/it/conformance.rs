//! One matching rule, three front ends: every case of one table goes
//! through `sigil scan` (the binary), `sigil index query` (the binary) and
//! the gRPC service (`MatchImage` for the images, `MatchHashes` for their
//! hashes; the server in process), and every front end that can express
//! the case must give the same answer: per image, the verdict and the set
//! of (list, id, kind, distance, dihedral variant, query variant), or the
//! same refusal. Each case also states what that answer is (verdict and
//! ids per image), so the front ends cannot agree on nothing.
//!
//! What a front end cannot express, it skips, by rule (`FrontEnd::takes`):
//! `scan` has no per-list radius caps and no match limit (a scan record is
//! the evidence, never cut); `index query` and `MatchHashes` take hashes,
//! not images, so no robust or pixel-domain dihedral matching. The hash
//! front ends get each image's MD5, SHA-1, SHA-256 and PDQ (with its
//! quality) and their answers are folded per image as the matcher folds an
//! image's: matched if any hash matched, otherwise the PDQ hash's verdict.
//!
//! The fixtures are built here from testdata images: a temporary index of
//! four lists (entries at known PDQ distances from the images' hashes, and
//! their exact digests) and a directory of seven images.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use sigil_core::robust::RobustLevel;
use sigil_core::{FileSignatures, HashKind, PdqHash, SignOptions, Signer};
use sigil_index::{EntryMeta, IndexWriter, SegmentBuilder};
use sigil_server::proto::matcher_client::MatcherClient;
use sigil_server::proto::{self, HashQuery, MatchHashesRequest, MatchImageRequest, MatchOptions};
use sigil_server::{RunOptions, RunningServer, ServerConfig};

use crate::support::{sigil, testdata};

// ------------------------------------------------------------- the table

/// One way of asking. `None` and empty fields: the front end's default
/// (the same everywhere: radius 31, every list, quality threshold 50,
/// robust and dihedral off, no match limit short of the service's 100).
#[derive(Clone, Copy, Default)]
struct Case {
    name: &'static str,
    radius: Option<u32>,
    lists: &'static [&'static str],
    /// Per-list radius caps: the server's `[matching] list_radius`,
    /// `index query --list-radius`.
    list_radius: &'static [(&'static str, u32)],
    /// The server's `[matching] quality_threshold`, `--min-quality`.
    quality_threshold: Option<u32>,
    dihedral: bool,
    robust: Option<RobustLevel>,
    max_matches: Option<u32>,
    /// The answer: `refused:MESSAGE`, or `IMAGE=VERDICT[:ID,ID...]` for
    /// each image that is not `no_match` (space-separated).
    expect: &'static str,
}

/// What every image matches with the defaults.
const DEFAULT_ANSWER: &str = "a=match:a-md5,a-near12,a-near20,a-near4,a-sha1,a-sha256 \
     b=match:b-1,b-2,b-3,b-4,b-5,b-6 c=match:c-orig faint=low_quality flat=match:flat-md5";

const CASES: &[Case] = &[
    Case {
        name: "defaults: several lists, every kind",
        expect: DEFAULT_ANSWER,
        ..NONE
    },
    Case {
        name: "radius 10",
        radius: Some(10),
        expect: "a=match:a-md5,a-near4,a-sha1,a-sha256 b=match:b-1,b-2,b-3,b-4,b-5,b-6 \
                 c=match:c-orig faint=low_quality flat=match:flat-md5",
        ..NONE
    },
    Case {
        name: "radius 45",
        radius: Some(45),
        expect: "a=match:a-far40,a-md5,a-near12,a-near20,a-near4,a-sha1,a-sha256 \
                 b=match:b-1,b-2,b-3,b-4,b-5,b-6 c=match:c-orig faint=low_quality \
                 flat=match:flat-md5",
        ..NONE
    },
    Case {
        name: "list iwf: the filter applies to exact kinds",
        lists: &["iwf"],
        expect: "a=match:a-near12,a-sha256 faint=low_quality flat=low_quality",
        ..NONE
    },
    Case {
        name: "lists tc and bulk",
        lists: &["tc", "bulk"],
        expect: "a=match:a-md5,a-sha1 b=match:b-1,b-2,b-3,b-4,b-5,b-6 faint=low_quality \
                 flat=match:flat-md5",
        ..NONE
    },
    Case {
        name: "unknown list",
        lists: &["iwf", "nope"],
        expect: "refused:unknown list \"nope\" (known lists: bulk, iwf, ncmec, tc)",
        ..NONE
    },
    Case {
        name: "per-list caps ncmec=10 iwf=40",
        list_radius: CAPS,
        expect: "a=match:a-md5,a-near12,a-near4,a-sha1,a-sha256 b=match:b-1,b-2,b-3,b-4,b-5,b-6 \
                 c=match:c-orig faint=low_quality flat=match:flat-md5",
        ..NONE
    },
    Case {
        name: "per-list caps, radius 45 (iwf's cap reached, ncmec's kept)",
        list_radius: CAPS,
        radius: Some(45),
        expect: "a=match:a-far40,a-md5,a-near12,a-near4,a-sha1,a-sha256 \
                 b=match:b-1,b-2,b-3,b-4,b-5,b-6 c=match:c-orig faint=low_quality \
                 flat=match:flat-md5",
        ..NONE
    },
    Case {
        name: "per-list caps, radius 8 (a cap never widens)",
        list_radius: CAPS,
        radius: Some(8),
        expect: "a=match:a-md5,a-near4,a-sha1,a-sha256 b=match:b-1,b-2,b-3,b-4,b-5,b-6 \
                 c=match:c-orig faint=low_quality flat=match:flat-md5",
        ..NONE
    },
    Case {
        name: "max matches 3 (list bulk)",
        lists: &["bulk"],
        max_matches: Some(3),
        expect: "b=match:b-1,b-2,b-3 faint=low_quality flat=low_quality",
        ..NONE
    },
    Case {
        name: "quality threshold 30 (the faint image is matched)",
        quality_threshold: Some(30),
        expect: "a=match:a-md5,a-near12,a-near20,a-near4,a-sha1,a-sha256 \
                 b=match:b-1,b-2,b-3,b-4,b-5,b-6 c=match:c-orig faint=match:faint \
                 flat=match:flat-md5",
        ..NONE
    },
    Case {
        name: "dihedral",
        dihedral: true,
        expect: "a=match:a-md5,a-near12,a-near20,a-near4,a-sha1,a-sha256 \
                 b=match:b-1,b-2,b-3,b-4,b-5,b-6 c=match:c-orig c-rot90=match:c-orig \
                 faint=low_quality flat=match:flat-md5",
        ..NONE
    },
    Case {
        name: "robust off",
        robust: Some(RobustLevel::Off),
        expect: DEFAULT_ANSWER,
        ..NONE
    },
    Case {
        name: "robust standard",
        robust: Some(RobustLevel::Standard),
        expect: "a=match:a-md5,a-near12,a-near20,a-near4,a-sha1,a-sha256 \
                 b=match:b-1,b-2,b-3,b-4,b-5,b-6 c=match:c-orig c-padded=match:c-orig \
                 c-rot90=match:c-orig faint=low_quality flat=match:flat-md5",
        ..NONE
    },
];

const CAPS: &[(&str, u32)] = &[("ncmec", 10), ("iwf", 40)];

const NONE: Case = Case {
    name: "",
    radius: None,
    lists: &[],
    list_radius: &[],
    quality_threshold: None,
    dihedral: false,
    robust: None,
    max_matches: None,
    expect: "",
};

// ------------------------------------------------------------ the answer

/// One match, as every front end can say it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Hit {
    list: String,
    id: String,
    kind: String,
    distance: u32,
    /// The dihedral variant's name (`orig`, `rot90`, ...), or empty.
    variant: String,
    /// The robust query variant's name (`orig`, `dih:rot90`, `trim`, ...),
    /// or empty.
    query_variant: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    /// Per image (by file stem): the verdict and the matches.
    Items(BTreeMap<String, (String, BTreeSet<Hit>)>),
    /// The request was refused: the message's part naming the cause.
    Refused(String),
}

impl Answer {
    /// `expect`'s notation of this answer (verdict and ids), over `images`.
    fn summary(&self, images: &[&str]) -> String {
        match self {
            Answer::Refused(m) => format!("refused:{m}"),
            Answer::Items(items) => {
                let mut out = Vec::new();
                for &image in images {
                    let Some((verdict, hits)) = items.get(image) else {
                        out.push(format!("{image}=MISSING"));
                        continue;
                    };
                    let ids: BTreeSet<&str> = hits.iter().map(|h| h.id.as_str()).collect();
                    match (verdict.as_str(), ids.is_empty()) {
                        ("no_match", true) => {}
                        (v, true) => out.push(format!("{image}={v}")),
                        (v, false) => out.push(format!(
                            "{image}={v}:{}",
                            ids.into_iter().collect::<Vec<_>>().join(",")
                        )),
                    }
                }
                out.join(" ")
            }
        }
    }
}

/// The cause of a refusal, as the front ends name it (their own wording
/// around it differs: exit status and stderr, or a gRPC status).
fn refusal(message: &str) -> Answer {
    let cause = message
        .find("unknown list")
        .and_then(|i| message[i..].find(')').map(|j| &message[i..=i + j]))
        .unwrap_or(message);
    Answer::Refused(cause.to_string())
}

/// Folds the answers for an image's hashes (MD5, SHA-1, SHA-256, PDQ) as
/// the matcher folds an image: matched if any matched, else the PDQ
/// hash's verdict.
fn fold(per_hash: Vec<(String, BTreeSet<Hit>)>) -> (String, BTreeSet<Hit>) {
    let hits: BTreeSet<Hit> = per_hash.iter().flat_map(|(_, h)| h.clone()).collect();
    let verdict = if per_hash.iter().any(|(v, _)| v == "match") {
        "match".to_string()
    } else {
        per_hash.last().map(|(v, _)| v.clone()).unwrap_or_default()
    };
    (verdict, hits)
}

// ------------------------------------------------------------ the fixture

struct Fixture {
    dir: tempfile::TempDir,
    /// Image file stem -> its signatures (as the library computes them).
    sigs: BTreeMap<String, FileSignatures>,
}

impl Fixture {
    fn images(&self) -> PathBuf {
        self.dir.path().join("images")
    }
    fn index(&self) -> PathBuf {
        self.dir.path().join("index")
    }
    fn names(&self) -> Vec<&str> {
        self.sigs.keys().map(String::as_str).collect()
    }
}

fn png(img: &image::RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn rgb(bytes: &[u8]) -> image::RgbImage {
    let img = sigil_core::decode::decode(bytes, &Default::default()).unwrap();
    sigil_core::robust::rgb_of(&img)
}

/// A photo at the first contrast (of a few, falling) that takes its PDQ
/// quality under 50 and keeps it at 30 or more: a low-quality image that
/// a threshold of 30 matches.
fn faint(photo: &[u8]) -> Vec<u8> {
    let photo = rgb(photo);
    for contrast in [0.2, 0.17, 0.15, 0.13, 0.11, 0.09, 0.07] {
        let mut faint = photo.clone();
        for p in faint.pixels_mut() {
            for c in &mut p.0 {
                *c = (128.0 + (f32::from(*c) - 128.0) * contrast).round() as u8;
            }
        }
        let bytes = png(&faint);
        let q = Signer::new(SignOptions::default())
            .sign(&bytes)
            .image
            .unwrap()
            .quality;
        if (30..50).contains(&q) {
            return bytes;
        }
    }
    panic!("no contrast gives a quality from 30 to 50");
}

/// `h` with its first `bits` bits flipped: an entry at that distance.
fn flipped(h: PdqHash, bits: usize) -> PdqHash {
    let mut h = h;
    for b in 0..bits {
        h.0[b / 8] ^= 0x80 >> (b % 8);
    }
    h
}

fn build_fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let read = |rel: &str| std::fs::read(testdata(rel)).unwrap();
    let bridge = read("originals/bridge-mods/aaa-orig.jpg");
    let faint = faint(&read("originals/reg-test-input/labelme-subset/q0746.jpg"));
    let files: [(&str, Vec<u8>); 7] = [
        (
            "a.jpg",
            read("originals/reg-test-input/labelme-subset/q2821.jpg"),
        ),
        (
            "b.jpg",
            read("originals/reg-test-input/labelme-subset/q1050.jpg"),
        ),
        ("c.jpg", bridge.clone()),
        (
            "c-rot90.jpg",
            read("originals/reg-test-input/dih/bridge-2-rotate-90.jpg"),
        ),
        (
            "c-padded.png",
            png(&sigil_core::robust::geometry::pad_flat(
                &rgb(&bridge),
                0.2,
                [0; 3],
            )),
        ),
        ("faint.png", faint),
        (
            "flat.png",
            png(&image::RgbImage::from_pixel(64, 64, image::Rgb([128; 3]))),
        ),
    ];
    let mut sigs = BTreeMap::new();
    let mut signer = Signer::new(SignOptions::default());
    for (name, bytes) in &files {
        std::fs::write(images.join(name), bytes).unwrap();
        let stem = name.split('.').next().unwrap().to_string();
        sigs.insert(stem, signer.sign(bytes));
    }
    let img = |n: &str| sigs[n].image.as_ref().unwrap();
    let q = img("faint").quality;
    assert!((30..50).contains(&q), "precondition: faint quality {q}");
    assert!(img("flat").quality < 30, "precondition: flat quality");
    for n in ["a", "b", "c"] {
        assert!(img(n).quality >= 50, "precondition: {n} quality");
    }

    let mut b = SegmentBuilder::new();
    let mut pdq = |h: PdqHash, list: &str, id: &str| {
        let meta = EntryMeta {
            id,
            list,
            category: "A1",
            note: None,
        };
        b.push_pdq(&h.0, meta).unwrap();
    };
    let a = img("a").pdq;
    for (bits, list, id) in [
        (4, "ncmec", "a-near4"),
        (20, "ncmec", "a-near20"),
        (12, "iwf", "a-near12"),
        (40, "iwf", "a-far40"),
    ] {
        pdq(flipped(a, bits), list, id);
    }
    for i in 1..=6 {
        pdq(flipped(img("b").pdq, i), "bulk", &format!("b-{i}"));
    }
    pdq(img("c").pdq, "ncmec", "c-orig");
    pdq(img("faint").pdq, "ncmec", "faint");
    let mut exact = |kind: HashKind, key: &[u8], list: &str, id: &str| {
        let meta = EntryMeta {
            id,
            list,
            category: "B1",
            note: None,
        };
        b.push(kind, key, meta).unwrap();
    };
    let ea = &sigs["a"].exact;
    exact(HashKind::Md5, &ea.md5, "tc", "a-md5");
    exact(HashKind::Sha1, ea.sha1.as_ref().unwrap(), "tc", "a-sha1");
    exact(HashKind::Sha256, &ea.sha256, "iwf", "a-sha256");
    exact(HashKind::Md5, &sigs["flat"].exact.md5, "tc", "flat-md5");
    IndexWriter::create(dir.path().join("index"))
        .unwrap()
        .add_segment(b)
        .unwrap();
    Fixture { dir, sigs }
}

// ------------------------------------------------------------ front ends

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FrontEnd {
    Scan,
    IndexQuery,
    MatchImage,
    MatchHashes,
}

impl FrontEnd {
    const ALL: [FrontEnd; 4] = [
        FrontEnd::Scan,
        FrontEnd::IndexQuery,
        FrontEnd::MatchImage,
        FrontEnd::MatchHashes,
    ];

    /// Whether this front end can ask what `case` asks.
    fn takes(self, case: &Case) -> bool {
        let image_only = case.dihedral || case.robust.is_some();
        match self {
            FrontEnd::Scan => case.list_radius.is_empty() && case.max_matches.is_none(),
            FrontEnd::IndexQuery | FrontEnd::MatchHashes => !image_only,
            FrontEnd::MatchImage => true,
        }
    }

    fn name(self) -> &'static str {
        match self {
            FrontEnd::Scan => "sigil scan",
            FrontEnd::IndexQuery => "sigil index query",
            FrontEnd::MatchImage => "gRPC MatchImage",
            FrontEnd::MatchHashes => "gRPC MatchHashes",
        }
    }
}

/// A match as scan and index query write it (serialised `MatchedEntry`).
fn hit_of_json(m: &serde_json::Value) -> Hit {
    let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
    Hit {
        list: s("list"),
        id: s("id"),
        kind: s("kind"),
        distance: m["distance"].as_u64().unwrap() as u32,
        variant: s("variant"),
        query_variant: s("query_variant"),
    }
}

/// The lowercase name of a proto enum value (`DIHEDRAL_ROT90` -> `rot90`),
/// read from the generated enum's own names, not the server's conversions.
fn proto_name(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_ascii_lowercase()
}

fn hit_of_proto(m: &proto::Match) -> Hit {
    let kind = proto::HashKind::try_from(m.kind).unwrap();
    let variant = proto::Dihedral::try_from(m.variant).unwrap();
    Hit {
        list: m.list.clone(),
        id: m.id.clone(),
        kind: proto_name(kind.as_str_name(), "HASH_KIND_"),
        distance: m.distance,
        variant: match variant {
            proto::Dihedral::Unspecified => String::new(),
            v => proto_name(v.as_str_name(), "DIHEDRAL_"),
        },
        query_variant: m.query_variant.clone(),
    }
}

fn verdict_name(v: i32) -> String {
    proto_name(
        proto::Verdict::try_from(v).unwrap().as_str_name(),
        "VERDICT_",
    )
}

fn scan(fx: &Fixture, case: &Case) -> Answer {
    let mut cmd = sigil();
    cmd.arg("scan")
        .arg(fx.images())
        .arg("--index")
        .arg(fx.index())
        .args(["--format", "jsonl", "--quiet"]);
    if let Some(r) = case.radius {
        cmd.args(["--radius", &r.to_string()]);
    }
    for l in case.lists {
        cmd.args(["--list", l]);
    }
    if let Some(q) = case.quality_threshold {
        cmd.args(["--min-quality", &q.to_string()]);
    }
    if case.dihedral {
        cmd.arg("--dihedral");
    }
    if let Some(level) = case.robust {
        cmd.arg(format!("--robust={level}"));
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0 | 1) => {}
        Some(2) => return refusal(&stderr),
        other => panic!("scan: exit {other:?}: {stderr}"),
    }
    let mut items = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let path = PathBuf::from(r["path"].as_str().unwrap());
        let stem = path.file_stem().unwrap().to_string_lossy();
        let stem = stem.to_string();
        let hits = r["matches"].as_array().unwrap().iter().map(hit_of_json);
        let verdict = r["verdict"].as_str().unwrap().to_string();
        items.insert(stem, (verdict, hits.collect()));
    }
    Answer::Items(items)
}

/// An image's hashes as `index query` lines: MD5, SHA-1, SHA-256, then
/// PDQ with its quality.
fn query_lines(sigs: &FileSignatures) -> String {
    let img = sigs.image.as_ref().unwrap();
    let e = &sigs.exact;
    format!(
        "md5:{}\nsha1:{}\nsha256:{}\npdq:{},{}\n",
        e.md5_hex(),
        e.sha1_hex().unwrap(),
        e.sha256_hex(),
        img.pdq.to_hex(),
        img.quality
    )
}

fn index_query(fx: &Fixture, case: &Case) -> Answer {
    let input = fx.dir.path().join("hashes.txt");
    let text: String = fx.sigs.values().map(query_lines).collect();
    std::fs::write(&input, text).unwrap();
    let mut cmd = sigil();
    cmd.args(["index", "query"])
        .arg(fx.index())
        .arg("--with-quality");
    if let Some(r) = case.radius {
        cmd.args(["--radius", &r.to_string()]);
    }
    for l in case.lists {
        cmd.args(["--list", l]);
    }
    for (l, r) in case.list_radius {
        cmd.args(["--list-radius", &format!("{l}={r}")]);
    }
    if let Some(q) = case.quality_threshold {
        cmd.args(["--min-quality", &q.to_string()]);
    }
    if let Some(k) = case.max_matches {
        cmd.args(["--k", &k.to_string()]);
    }
    let out = cmd.arg(&input).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(2) => return refusal(&stderr),
        other => panic!("index query: exit {other:?}: {stderr}"),
    }
    let per_hash: Vec<(String, BTreeSet<Hit>)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let hits = v["matches"].as_array().unwrap().iter().map(hit_of_json);
            (v["verdict"].as_str().unwrap().to_string(), hits.collect())
        })
        .collect();
    assert_eq!(per_hash.len(), 4 * fx.sigs.len(), "one line per hash");
    let mut per_hash = per_hash.into_iter();
    let items = fx
        .sigs
        .keys()
        .map(|name| (name.clone(), fold(per_hash.by_ref().take(4).collect())))
        .collect();
    Answer::Items(items)
}

fn options(case: &Case) -> MatchOptions {
    MatchOptions {
        radius: case.radius,
        lists: case.lists.iter().map(|l| l.to_string()).collect(),
        dihedral: case.dihedral.then_some(true),
        max_matches: case.max_matches,
        check_only: None,
        robust: case.robust.map(|level| match level {
            RobustLevel::Off => proto::RobustLevel::Off as i32,
            RobustLevel::Standard => proto::RobustLevel::Standard as i32,
            RobustLevel::Full => proto::RobustLevel::Full as i32,
        }),
    }
}

async fn match_image(addr: SocketAddr, fx: &Fixture, case: &Case) -> Answer {
    let mut client = MatcherClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut items = BTreeMap::new();
    for entry in std::fs::read_dir(fx.images()).unwrap() {
        let path = entry.unwrap().path();
        let req = MatchImageRequest {
            image: std::fs::read(&path).unwrap().into(),
            request_id: path.display().to_string(),
            options: Some(options(case)),
            ..Default::default()
        };
        let res = match client.match_image(req).await {
            Ok(r) => r.into_inner(),
            Err(status) => return refusal(status.message()),
        };
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let hits = res.matches.iter().map(hit_of_proto).collect();
        items.insert(stem, (verdict_name(res.verdict), hits));
    }
    Answer::Items(items)
}

async fn match_hashes(addr: SocketAddr, fx: &Fixture, case: &Case) -> Answer {
    let mut client = MatcherClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut hashes = Vec::new();
    for sigs in fx.sigs.values() {
        let img = sigs.image.as_ref().unwrap();
        let e = &sigs.exact;
        for (kind, hex, quality) in [
            (proto::HashKind::Md5, e.md5_hex(), None),
            (proto::HashKind::Sha1, e.sha1_hex().unwrap(), None),
            (proto::HashKind::Sha256, e.sha256_hex(), None),
            (proto::HashKind::Pdq, img.pdq.to_hex(), Some(img.quality)),
        ] {
            hashes.push(HashQuery {
                kind: kind as i32,
                hex,
                quality,
                ..Default::default()
            });
        }
    }
    let req = MatchHashesRequest {
        hashes,
        options: Some(options(case)),
        ..Default::default()
    };
    let res = match client.match_hashes(req).await {
        Ok(r) => r.into_inner(),
        Err(status) => return refusal(status.message()),
    };
    let mut per_hash = res.results.iter().map(|r| {
        let hits = r.matches.iter().map(hit_of_proto).collect();
        (verdict_name(r.verdict), hits)
    });
    let items = fx
        .sigs
        .keys()
        .map(|name| (name.clone(), fold(per_hash.by_ref().take(4).collect())))
        .collect();
    Answer::Items(items)
}

/// The servers of the table, one per server-side policy (per-list caps,
/// quality threshold), started on first use.
struct Servers {
    rt: tokio::runtime::Runtime,
    running: Vec<(String, RunningServer)>,
}

impl Servers {
    fn addr(&mut self, fx: &Fixture, case: &Case) -> SocketAddr {
        let key = format!("{:?} {:?}", case.list_radius, case.quality_threshold);
        if let Some((_, s)) = self.running.iter().find(|(k, _)| *k == key) {
            return s.addr;
        }
        let mut config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            metrics_listen: None,
            index: Some(fx.index()),
            insecure_loopback: true,
            ..ServerConfig::default()
        };
        let n = self.running.len();
        config.reports.path = fx.dir.path().join(format!("reports-{n}.db"));
        config.reload.poll_interval_ms = 0;
        config.limits.hashing_workers = 2;
        config.matching.list_radius = case
            .list_radius
            .iter()
            .map(|&(l, r)| (l.to_string(), r))
            .collect();
        if let Some(q) = case.quality_threshold {
            config.matching.quality_threshold = q;
        }
        let server = self
            .rt
            .block_on(sigil_server::start(config, RunOptions::default()))
            .unwrap();
        let addr = server.addr;
        self.running.push((key, server));
        addr
    }

    fn ask(&mut self, front: FrontEnd, fx: &Fixture, case: &Case) -> Answer {
        let addr = self.addr(fx, case);
        match front {
            FrontEnd::MatchImage => self.rt.block_on(match_image(addr, fx, case)),
            FrontEnd::MatchHashes => self.rt.block_on(match_hashes(addr, fx, case)),
            _ => unreachable!("not a service call"),
        }
    }

    fn stop(self) {
        for (_, s) in self.running {
            s.shutdown();
            self.rt.block_on(s.wait()).unwrap();
        }
    }
}

/// What differs between two answers, image by image.
fn diff(a: &Answer, b: &Answer) -> String {
    let (Answer::Items(a), Answer::Items(b)) = (a, b) else {
        return format!("{a:?}\n  vs\n{b:?}");
    };
    let mut out = String::new();
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for name in names {
        if a.get(name) != b.get(name) {
            let _ = writeln!(
                out,
                "  {name}:\n    {:?}\n    {:?}",
                a.get(name),
                b.get(name)
            );
        }
    }
    out
}

#[test]
fn every_front_end_gives_the_same_answer() {
    let fx = build_fixture();
    let names = fx.names();
    let mut servers = Servers {
        rt: tokio::runtime::Runtime::new().unwrap(),
        running: Vec::new(),
    };
    let mut failures = Vec::new();
    for case in CASES {
        let fronts: Vec<FrontEnd> = FrontEnd::ALL
            .into_iter()
            .filter(|f| f.takes(case))
            .collect();
        assert!(
            fronts.len() >= 2,
            "{}: a case must be compared between front ends",
            case.name
        );
        let answers: Vec<(FrontEnd, Answer)> = fronts
            .iter()
            .map(|&f| {
                let answer = match f {
                    FrontEnd::Scan => scan(&fx, case),
                    FrontEnd::IndexQuery => index_query(&fx, case),
                    _ => servers.ask(f, &fx, case),
                };
                (f, answer)
            })
            .collect();
        let used: Vec<&str> = fronts.iter().map(|f| f.name()).collect();
        eprintln!("case {:?}: {}", case.name, used.join(", "));
        let (first, reference) = &answers[0];
        for (f, answer) in &answers[1..] {
            if answer != reference {
                failures.push(format!(
                    "case {:?}: {} and {} differ:\n{}",
                    case.name,
                    first.name(),
                    f.name(),
                    diff(reference, answer)
                ));
            }
        }
        let got = reference.summary(&names);
        let want = case.expect.split_whitespace().collect::<Vec<_>>().join(" ");
        if got != want {
            failures.push(format!(
                "case {:?}: {} answered\n  {got}\nwhere the table says\n  {want}",
                case.name,
                first.name()
            ));
        }
    }
    servers.stop();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
