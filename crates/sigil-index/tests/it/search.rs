//! Search results against brute force, the ThreatExchange needle/haystack
//! truth, and the update semantics (duplicates, tombstones, compaction).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use sigil_core::{Dihedral, HashKind, PdqHash};
use sigil_index::{
    EntryMeta, ImportOptions, IndexReader, IndexWriter, SearchKernel, SearchOptions, SearchPlan,
    SegmentBuilder, SharedIndex, Tombstone,
};

/// xorshift64* stream (deterministic, no dependency).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn hash(&mut self) -> [u8; 32] {
        let mut h = [0u8; 32];
        for c in h.chunks_mut(8) {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        h
    }
    fn flip(&mut self, h: &[u8; 32], k: u32) -> [u8; 32] {
        let mut o = *h;
        let mut done = BTreeSet::new();
        while done.len() < k as usize {
            let b = (self.next() % 256) as usize;
            if done.insert(b) {
                o[b / 8] ^= 1 << (b % 8);
            }
        }
        o
    }
}

fn meta(id: &str) -> EntryMeta<'_> {
    EntryMeta {
        id,
        list: "l",
        category: "c",
        note: None,
    }
}

fn dist(a: &[u8; 32], b: &[u8; 32]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// A data set shaped like the benchmark's: random hashes plus near-duplicates.
fn dataset(n: usize, seed: u64) -> Vec<[u8; 32]> {
    let mut r = Rng(seed | 1);
    let mut v: Vec<[u8; 32]> = Vec::with_capacity(n);
    for i in 0..n {
        if i > 0 && r.next().is_multiple_of(10) {
            let src = v[(r.next() % i as u64) as usize];
            let k = (r.next() % 40 + 1) as u32;
            v.push(r.flip(&src, k));
        } else {
            v.push(r.hash());
        }
    }
    v
}

fn build(dir: &Path, db: &[[u8; 32]]) -> IndexReader {
    let mut b = SegmentBuilder::new();
    for (i, h) in db.iter().enumerate() {
        b.push_pdq(h, meta(&i.to_string())).unwrap();
    }
    let mut w = IndexWriter::create(dir).unwrap();
    w.add_segment(b).unwrap();
    IndexReader::open(dir).unwrap()
}

fn ids(m: &[sigil_index::Match]) -> BTreeMap<String, u32> {
    m.iter().map(|m| (m.id.clone(), m.distance)).collect()
}

#[test]
fn range_search_equals_brute_force_for_every_plan_and_kernel() {
    let tmp = tempfile::tempdir().unwrap();
    let db = dataset(30_000, 7);
    let reader = build(tmp.path(), &db);
    assert_eq!(
        reader.stats().mih_segments,
        1,
        "segment should have MIH tables"
    );
    let mut r = Rng(99);
    let mut queries: Vec<[u8; 32]> = (0..40)
        .map(|i| {
            let src = db[(r.next() % db.len() as u64) as usize];
            r.flip(&src, i % 40)
        })
        .collect();
    queries.extend((0..10).map(|_| r.hash()));
    let radii = [0u32, 5, 10, 11, 21, 31, 32, 40, 63];
    // Brute force once per (radius, query).
    let want: Vec<Vec<BTreeMap<String, u32>>> = radii
        .iter()
        .map(|&radius| {
            queries
                .iter()
                .map(|q| {
                    db.iter()
                        .enumerate()
                        .filter(|(_, h)| dist(q, h) <= radius)
                        .map(|(i, h)| (i.to_string(), dist(q, h)))
                        .collect()
                })
                .collect()
        })
        .collect();
    // Pools of 3 and 16 threads besides the global one: the batch on the
    // pool is split by substring set, and with more threads than the 11
    // substrings also by query chunk.
    let pools: Vec<rayon::ThreadPool> = [3, 16]
        .iter()
        .map(|&n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        })
        .collect();
    let mut checked = 0;
    for plan in [SearchPlan::Mih, SearchPlan::Flat, SearchPlan::Auto] {
        for kernel in SearchKernel::available() {
            let rd = IndexReader::open(tmp.path())
                .unwrap()
                .with_plan(plan)
                .with_kernel(kernel);
            for (ri, &radius) in radii.iter().enumerate() {
                let opts = SearchOptions {
                    radius,
                    ..Default::default()
                };
                for (qi, q) in queries.iter().enumerate() {
                    let want = &want[ri][qi];
                    let got = rd.search_pdq(&PdqHash(*q), &opts);
                    assert_eq!(
                        got.len(),
                        want.len(),
                        "duplicates or misses: {plan:?} {kernel:?} r={radius}"
                    );
                    assert_eq!(&ids(&got), want, "{plan:?} {kernel:?} r={radius}");
                    // Sorted by distance.
                    assert!(got.windows(2).all(|w| w[0].distance <= w[1].distance));
                    checked += want.len();
                }
                // The same queries as one batch (the batched MIH search
                // where the plan takes MIH), on this thread and on the pool;
                // eight times over, so that at radius 63 the batch is
                // searched in more than one chunk.
                let batch: Vec<PdqHash> = (0..8)
                    .flat_map(|_| queries.iter().map(|q| PdqHash(*q)))
                    .collect();
                assert!(batch.len() >= sigil_index::reader::BATCH_MIN);
                for (how, all) in [
                    ("many", rd.search_pdq_many(&batch, &opts)),
                    ("batch", rd.search_pdq_batch(&batch, &opts)),
                    (
                        "batch, 3 threads",
                        pools[0].install(|| rd.search_pdq_batch(&batch, &opts)),
                    ),
                    (
                        "batch, 16 threads",
                        pools[1].install(|| rd.search_pdq_batch(&batch, &opts)),
                    ),
                ] {
                    assert_eq!(all.len(), batch.len());
                    for (qi, got) in all.iter().enumerate() {
                        let want = &want[ri][qi % queries.len()];
                        assert_eq!(
                            got.len(),
                            want.len(),
                            "{how}: {plan:?} {kernel:?} r={radius}"
                        );
                        assert_eq!(&ids(got), want, "{how}: {plan:?} {kernel:?} r={radius}");
                        assert!(got.windows(2).all(|w| w[0].distance <= w[1].distance));
                    }
                }
            }
        }
    }
    assert!(
        checked > 100,
        "test data produced too few matches to mean anything"
    );
}

#[test]
fn k_nearest_matches_brute_force() {
    let tmp = tempfile::tempdir().unwrap();
    let db = dataset(12_000, 3);
    let reader = build(tmp.path(), &db);
    let mut r = Rng(5);
    for i in 0..30 {
        let q = r.flip(&db[i * 97], (i % 30) as u32);
        for k in [1usize, 3, 10] {
            let opts = SearchOptions {
                radius: 63,
                k: Some(k),
                ..Default::default()
            };
            let got = reader.search_pdq(&PdqHash(q), &opts);
            let mut all: Vec<u32> = db
                .iter()
                .map(|h| dist(&q, h))
                .filter(|&d| d <= 63)
                .collect();
            all.sort();
            all.truncate(k);
            let gd: Vec<u32> = got.iter().map(|m| m.distance).collect();
            assert_eq!(gd, all, "k={k}");
        }
    }
}

#[test]
fn threatexchange_needles_match_truth_exactly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/hash-lists");
    let tmp = tempfile::tempdir().unwrap();
    let mut b = SegmentBuilder::new();
    // The haystack is a plain list of PDQ hashes: its kind must be said.
    let pdq = ImportOptions {
        kind: Some(HashKind::Pdq),
        ..ImportOptions::default()
    };
    let st = sigil_index::import::import_file(&root.join("haystack.txt"), &pdq, &mut b).unwrap();
    assert!(st.added > 1000);
    IndexWriter::create(tmp.path())
        .unwrap()
        .add_segment(b)
        .unwrap();
    let needles: Vec<PdqHash> = std::fs::read_to_string(root.join("needles.txt"))
        .unwrap()
        .lines()
        .map(|l| PdqHash::from_hex(l.trim()).unwrap())
        .collect();
    let truth = std::fs::read_to_string(root.join("needles-within-31.tsv")).unwrap();
    let mut lines = 0;
    for line in truth
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut f = line.split('\t');
        let n: usize = f.next().unwrap().parse().unwrap();
        let want: BTreeMap<String, u32> = f
            .map(|p| {
                let (id, d) = p.split_once(':').unwrap();
                (id.to_string(), d.parse().unwrap())
            })
            .collect();
        for plan in [SearchPlan::Auto, SearchPlan::Flat] {
            let rd = IndexReader::open(tmp.path()).unwrap().with_plan(plan);
            let got = rd.search_pdq(&needles[n], &SearchOptions::default());
            assert_eq!(ids(&got), want, "needle {n}");
        }
        lines += 1;
    }
    assert_eq!(lines, needles.len());
}

#[test]
fn duplicates_exact_kinds_tombstones_compaction_and_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let h = [0x11u8; 32];
    let md5 = [0xabu8; 16];
    let sha1 = [0xcdu8; 20];
    let sha256 = [0xefu8; 32];
    let mut b = SegmentBuilder::new();
    b.push_pdq(
        &h,
        EntryMeta {
            id: "a",
            list: "ncmec",
            category: "A1",
            note: Some("first, with comma"),
        },
    )
    .unwrap();
    b.push_pdq(
        &h,
        EntryMeta {
            id: "b",
            list: "iwf",
            category: "B2",
            note: None,
        },
    )
    .unwrap();
    b.push(HashKind::Md5, &md5, meta("m")).unwrap();
    b.push(HashKind::Sha1, &sha1, meta("s1")).unwrap();
    b.push(HashKind::Sha256, &sha256, meta("s256")).unwrap();
    let mut w = IndexWriter::create(dir).unwrap();
    assert_eq!(w.add_segment(b).unwrap(), 1);
    let shared = SharedIndex::open(dir).unwrap();
    let r = shared.current();
    let m = r.search_pdq(&PdqHash(h), &SearchOptions::default());
    assert_eq!(m.len(), 2, "duplicate hash keeps both ids");
    assert_eq!(m[0].note.as_deref(), Some("first, with comma"));
    assert_eq!(r.lookup_exact(HashKind::Md5, &md5)[0].id, "m");
    assert_eq!(r.lookup_exact(HashKind::Sha1, &sha1)[0].id, "s1");
    assert_eq!(r.lookup_exact(HashKind::Sha256, &sha256)[0].id, "s256");
    assert!(r.lookup_exact(HashKind::Sha256, &[0u8; 32]).is_empty());
    // A SHA-256 digest equal to a PDQ key is not a PDQ match.
    assert!(r.lookup_exact(HashKind::Pdq, &sha256).is_empty());
    let only = SearchOptions {
        lists: Some(vec!["iwf".into()]),
        ..Default::default()
    };
    assert_eq!(
        ids(&r.search_pdq(&PdqHash(h), &only))
            .keys()
            .collect::<Vec<_>>(),
        ["b"]
    );

    // Per-list radius: a 5-bit neighbour; ncmec at radius 4 drops it.
    let mut near = h;
    near[0] ^= 0b1_1111;
    let per = SearchOptions {
        list_radius: [("ncmec".to_string(), 4)].into(),
        ..Default::default()
    };
    assert_eq!(
        ids(&r.search_pdq(&PdqHash(near), &per))
            .keys()
            .collect::<Vec<_>>(),
        ["b"]
    );

    // Remove id b of iwf, then the MD5 by hash.
    w.add_tombstones(&[Tombstone::Id {
        list: "iwf".into(),
        id: "b".into(),
    }])
    .unwrap();
    w.add_tombstones(&[Tombstone::Hash {
        kind: HashKind::Md5,
        hash: sigil_core::hash::encode_hex(&md5),
        list: None,
    }])
    .unwrap();
    assert_eq!(shared.reload().unwrap().generation(), 3);
    let r2 = shared.current();
    assert_eq!(
        ids(&r2.search_pdq(&PdqHash(h), &SearchOptions::default()))
            .keys()
            .collect::<Vec<_>>(),
        ["a"]
    );
    assert!(r2.lookup_exact(HashKind::Md5, &md5).is_empty());
    // The old generation is untouched for requests holding it.
    assert_eq!(
        r.search_pdq(&PdqHash(h), &SearchOptions::default()).len(),
        2
    );

    // Re-adding a removed hash makes it live again (tombstones apply to older segments).
    let mut b = SegmentBuilder::new();
    b.push(HashKind::Md5, &md5, meta("m2")).unwrap();
    w.add_segment(b).unwrap();
    let r3 = IndexReader::open(dir).unwrap();
    assert_eq!(r3.lookup_exact(HashKind::Md5, &md5)[0].id, "m2");

    // Compaction keeps exactly the live entries, drops tombstones and old files.
    let before = collect_all(&r3);
    let g = w.compact().unwrap();
    let r4 = IndexReader::open(dir).unwrap();
    assert_eq!(r4.generation(), g);
    assert_eq!(r4.stats().segments, 1);
    assert_eq!(r4.stats().tombstone_files, 0);
    assert_eq!(collect_all(&r4), before);
    r4.verify().unwrap();
    let files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files.iter().filter(|f| f.ends_with(".sgs")).count(),
        1,
        "{files:?}"
    );
    assert_eq!(
        files.iter().filter(|f| f.ends_with(".sgt")).count(),
        0,
        "{files:?}"
    );
}

/// (kind, hash, id, list, category, note) of every live entry.
type EntrySet = BTreeSet<(String, String, String, String, String, Option<String>)>;

fn collect_all(r: &IndexReader) -> EntrySet {
    let mut s = BTreeSet::new();
    r.for_each_entry(|k, key, e| {
        s.insert((
            k.to_string(),
            sigil_core::hash::encode_hex(key),
            e.id.to_string(),
            e.list.to_string(),
            e.category.to_string(),
            e.note.map(str::to_string),
        ));
        Ok(())
    })
    .unwrap();
    s
}

#[test]
fn dihedral_search_reports_the_variant() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = Rng(11);
    let base = PdqHash(r.hash());
    let rotated = base.dihedral_transform(Dihedral::Rot90);
    let mut b = SegmentBuilder::new();
    b.push_pdq(&rotated.0, meta("rot")).unwrap();
    for i in 0..100 {
        b.push_pdq(&r.hash(), meta(&format!("x{i}"))).unwrap();
    }
    IndexWriter::create(tmp.path())
        .unwrap()
        .add_segment(b)
        .unwrap();
    let rd = IndexReader::open(tmp.path()).unwrap();
    assert!(rd.search_pdq(&base, &SearchOptions::default()).is_empty());
    let m = rd.search_pdq(
        &base,
        &SearchOptions {
            dihedral: true,
            ..Default::default()
        },
    );
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].id, "rot");
    assert_eq!(m[0].distance, 0);
    assert_eq!(m[0].variant, Some(Dihedral::Rot90));
}

#[test]
fn import_formats_ids_and_bad_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("list.csv");
    let h1 = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";
    std::fs::write(
        &p,
        format!("hash,kind,id,list,category,note\n{h1},pdq,x1,ncmec,A1,\"a, b\"\nd41d8cd98f00b204e9800998ecf8427e,md5,,iwf,B1,\n"),
    )
    .unwrap();
    let mut b = SegmentBuilder::new();
    let st = sigil_index::import::import_file(&p, &ImportOptions::default(), &mut b).unwrap();
    assert_eq!(st.added, 2);
    let dir = tmp.path().join("idx");
    IndexWriter::create(&dir).unwrap().add_segment(b).unwrap();
    let r = IndexReader::open(&dir).unwrap();
    let m = r.search_pdq(&PdqHash::from_hex(h1).unwrap(), &SearchOptions::default());
    assert_eq!(
        (
            m[0].id.as_str(),
            m[0].list.as_str(),
            m[0].category.as_str(),
            m[0].note.as_deref()
        ),
        ("x1", "ncmec", "A1", Some("a, b"))
    );
    let mut md5 = [0u8; 16];
    sigil_core::hash::decode_hex_into("d41d8cd98f00b204e9800998ecf8427e", &mut md5).unwrap();
    // No id: the 0-based line number (line 2 of the file).
    assert_eq!(r.lookup_exact(HashKind::Md5, &md5)[0].id, "2");

    let bad = tmp.path().join("bad.txt");
    std::fs::write(&bad, format!("{h1}\nnot-a-hash\n{h1},7\n")).unwrap();
    let pdq = ImportOptions {
        kind: Some(HashKind::Pdq),
        ..Default::default()
    };
    let err = sigil_index::import::import_file(&bad, &pdq, &mut SegmentBuilder::new()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("bad.txt:2:"), "{msg}");
    let opts = ImportOptions {
        skip_invalid: true,
        ..pdq
    };
    let st = sigil_index::import::import_file(&bad, &opts, &mut SegmentBuilder::new()).unwrap();
    assert_eq!((st.added, st.skipped_total()), (2, 1));
    // Without --kind, the same list is refused at its first line: 64 hex
    // characters may be PDQ or SHA-256.
    let err = sigil_index::import::import_file(
        &bad,
        &ImportOptions::default(),
        &mut SegmentBuilder::new(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}:1: 64 hex", bad.display())),
        "{err}"
    );
}

#[test]
#[cfg(target_os = "linux")]
fn residency_covers_the_mapped_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let db = dataset(12_000, 3);
    let reader = build(tmp.path(), &db);
    let opts = SearchOptions::default();
    for q in db.iter().take(50) {
        assert!(!reader.search_pdq(&PdqHash(*q), &opts).is_empty());
    }
    let r = reader
        .residency()
        .expect("/proc/self/smaps is readable on Linux");
    let file_bytes = reader.stats().bytes;
    assert!(
        r.mapped >= file_bytes,
        "{r:?} against {file_bytes} bytes of files"
    );
    assert!(
        r.mapped < file_bytes + 4096 * 64,
        "{r:?}: other mappings counted"
    );
    assert!(r.resident > 0 && r.resident <= r.mapped, "{r:?}");
    assert!(r.huge <= r.resident, "{r:?}");
}

fn entry<'a>(id: &'a str, list: &'a str) -> EntryMeta<'a> {
    EntryMeta {
        id,
        list,
        category: "",
        note: None,
    }
}

/// A removal by hash limited to one list leaves another list's identical
/// hash in place; removals count what they cover and record nothing for
/// what is absent; an unknown list is refused naming the known ones.
#[test]
fn removals_are_scoped_to_their_list_and_report_what_they_found() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (h, other) = ([7u8; 32], [9u8; 32]);
    let md5 = [3u8; 16];
    let mut b = SegmentBuilder::new();
    b.push_pdq(&h, entry("n1", "ncmec")).unwrap();
    b.push_pdq(&h, entry("i1", "iwf")).unwrap();
    b.push_pdq(&other, entry("n2", "ncmec")).unwrap();
    b.push(HashKind::Md5, &md5, entry("42", "iwf")).unwrap();
    let mut w = IndexWriter::create(dir).unwrap();
    w.add_segment(b).unwrap();
    let hex = sigil_core::hash::encode_hex;
    let hash_in = |key: &[u8], kind, list: Option<&str>| Tombstone::Hash {
        kind,
        hash: hex(key),
        list: list.map(str::to_string),
    };
    let ids_of = |r: &IndexReader| -> Vec<(String, String)> {
        let mut v = Vec::new();
        r.for_each_entry(|_, _, e| {
            v.push((e.list.to_string(), e.id.to_string()));
            Ok(())
        })
        .unwrap();
        v.sort();
        v
    };

    let asked = [
        hash_in(&h, HashKind::Pdq, Some("ncmec")),
        hash_in(&[1u8; 32], HashKind::Pdq, Some("ncmec")), // absent
        hash_in(&md5, HashKind::Md5, Some("ncmec")),       // in iwf only
        Tombstone::Id {
            list: "ncmec".into(),
            id: "n1".into(), // the same entry as the first removal
        },
    ];
    let done = w.remove(&asked).unwrap();
    assert_eq!(done.per_removal, [1, 0, 0, 1]);
    assert_eq!((done.generation, done.entries), (2, 1));
    let r = IndexReader::open(dir).unwrap();
    assert_eq!(
        ids_of(&r),
        [("iwf", "42"), ("iwf", "i1"), ("ncmec", "n2")].map(|(a, b)| (a.into(), b.into()))
    );
    // IWF's identical hash still matches; NCMEC's does not.
    let m = r.search_pdq(&PdqHash(h), &SearchOptions::default());
    assert_eq!(
        m.iter().map(|m| m.list.as_str()).collect::<Vec<_>>(),
        ["iwf"]
    );
    assert_eq!(r.lookup_exact(HashKind::Pdq, &h).len(), 1);
    let counts = r.live_counts().unwrap();
    assert_eq!(counts["iwf"][&HashKind::Pdq], 1);
    assert_eq!(counts["iwf"][&HashKind::Md5], 1);
    assert_eq!(counts["ncmec"][&HashKind::Pdq], 1);

    // Removing it again finds nothing and records nothing.
    let again = w.remove(&asked[..1]).unwrap();
    assert_eq!((again.generation, again.entries), (2, 0));
    assert_eq!(again.per_removal, [0]);
    // Ids are numbers or strings as stored.
    let by_id = w
        .remove(&[Tombstone::Id {
            list: "iwf".into(),
            id: "42".into(),
        }])
        .unwrap();
    assert_eq!((by_id.generation, by_id.per_removal), (3, vec![1]));
    // Unknown list: refused, nothing recorded.
    let e = w
        .remove(&[hash_in(&other, HashKind::Pdq, Some("tc"))])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: no list named \"tc\" in this index (its lists: iwf, ncmec)",
            dir.display()
        )
    );
    // From every list.
    let all = w.remove(&[hash_in(&h, HashKind::Pdq, None)]).unwrap();
    assert_eq!((all.generation, all.entries), (4, 1));
    let r = IndexReader::open(dir).unwrap();
    assert_eq!(ids_of(&r), [("ncmec".to_string(), "n2".to_string())]);
    // Compaction keeps exactly that.
    w.compact().unwrap();
    assert_eq!(ids_of(&IndexReader::open(dir).unwrap()), ids_of(&r));
}

/// Version 1 tombstone files (hash removals from every list, no `list`
/// field) are still read; a version 1 file may not hold a list-limited
/// hash removal, and a newer version is refused by number.
#[test]
fn version_1_tombstone_files_are_still_read() {
    use sigil_index::format::{section, ContainerWriter, MAGIC_TOMBSTONES};
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, version: u32, json: &str| {
        let p = tmp.path().join(name);
        let mut w = ContainerWriter::create(&p, MAGIC_TOMBSTONES, version, 1).unwrap();
        w.section(section::TOMBSTONES, 0, json.as_bytes()).unwrap();
        w.finish(1).unwrap();
        p
    };
    let h = "00".repeat(32);
    let v1 = write(
        "v1.sgt",
        1,
        &format!(
            r#"[{{"by":"hash","kind":"pdq","hash":"{h}"}},{{"by":"id","list":"l","id":"a"}}]"#
        ),
    );
    let (t, _, _) = sigil_index::tombstone::read_file(&v1).unwrap();
    assert_eq!(
        t,
        [
            Tombstone::Hash {
                kind: HashKind::Pdq,
                hash: h.clone(),
                list: None
            },
            Tombstone::Id {
                list: "l".into(),
                id: "a".into()
            }
        ]
    );
    let bad = write(
        "bad.sgt",
        1,
        &format!(r#"[{{"by":"hash","kind":"pdq","hash":"{h}","list":"l"}}]"#),
    );
    let e = sigil_index::tombstone::read_file(&bad)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("version 1 tombstone file holds a hash removal limited"),
        "{e}"
    );
    let v3 = write("v3.sgt", 3, "[]");
    let e = sigil_index::tombstone::read_file(&v3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unsupported index format version 3"), "{e}");
}
