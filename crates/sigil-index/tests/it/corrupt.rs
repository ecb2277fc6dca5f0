//! Bad index files: zero-length, truncated, bit-flipped, wrong version,
//! hostile section tables (offsets and counts outside the file), and random
//! mutations. Never a panic: a clear error at open, or (for damage past the
//! header) a search that stays in bounds and a `verify` that reports it.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use sigil_core::{HashKind, PdqHash};
use sigil_index::format::{HEADER_LEN, SECTION_ENTRY_LEN};
use sigil_index::segment::Segment;
use sigil_index::{EntryMeta, IndexError, IndexReader, IndexWriter, SearchOptions, SegmentBuilder};

fn hashes(n: usize) -> Vec<[u8; 32]> {
    let mut s: u64 = 0x1234_5678_9abc_def1;
    (0..n)
        .map(|_| {
            let mut h = [0u8; 32];
            for c in h.chunks_mut(8) {
                s ^= s >> 12;
                s ^= s << 25;
                s ^= s >> 27;
                c.copy_from_slice(&s.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
            }
            h
        })
        .collect()
}

/// A valid segment with MIH tables (n >= MIH_MIN_ROWS), overflow, strings and exact keys.
fn valid_segment(dir: &Path, n: usize) -> (PathBuf, Vec<[u8; 32]>) {
    let hs = hashes(n);
    let mut b = SegmentBuilder::new();
    for (i, h) in hs.iter().enumerate() {
        let id = if i % 3 == 0 {
            format!("id-{i}")
        } else {
            i.to_string()
        };
        b.push_pdq(
            h,
            EntryMeta {
                id: &id,
                list: if i % 2 == 0 { "a" } else { "b" },
                category: "A1",
                note: (i % 5 == 0).then_some("note"),
            },
        )
        .unwrap();
    }
    b.push_pdq(
        &hs[0],
        EntryMeta {
            id: "dup",
            list: "a",
            category: "B1",
            note: None,
        },
    )
    .unwrap();
    b.push(
        HashKind::Md5,
        &[7u8; 16],
        EntryMeta {
            id: "m",
            list: "a",
            category: "",
            note: None,
        },
    )
    .unwrap();
    let p = dir.join("seg.sgs");
    b.write(&p).unwrap();
    (p, hs)
}

fn open_bytes(dir: &Path, name: &str, bytes: &[u8]) -> Result<Segment, IndexError> {
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    std::fs::write(&p, bytes).unwrap();
    Segment::open(&p)
}

/// Recomputes the header checksum after editing the header or table (the
/// hostile case: a file crafted to pass the header check).
fn reseal(bytes: &mut [u8]) {
    let count = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let end = HEADER_LEN + count * SECTION_ENTRY_LEN;
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    h.update(&bytes[..56]);
    h.update(&[0u8; 8]);
    h.update(&bytes[HEADER_LEN..end]);
    let c = h.digest();
    bytes[56..64].copy_from_slice(&c.to_le_bytes());
}

fn err_text(r: Result<Segment, IndexError>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn zero_length_truncated_wrong_version_and_flipped_header() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, _) = valid_segment(tmp.path(), 200);
    let good = std::fs::read(&p).unwrap();
    assert!(err_text(open_bytes(tmp.path(), "z.sgs", &[])).contains("zero length"));
    for cut in [1, 63, 64, 100, good.len() / 2, good.len() - 1] {
        let e = err_text(open_bytes(tmp.path(), "t.sgs", &good[..cut]));
        assert!(
            e.contains("corrupt index file") && e.contains("t.sgs"),
            "{cut}: {e}"
        );
    }
    let mut v = good.clone();
    v[8] = 9;
    reseal(&mut v);
    assert!(matches!(
        open_bytes(tmp.path(), "v.sgs", &v),
        Err(IndexError::UnsupportedVersion { found: 9, .. })
    ));
    let mut m = good.clone();
    m[0] = b'X';
    assert!(err_text(open_bytes(tmp.path(), "m.sgs", &m)).contains("bad magic"));
    // Any single bit flip in header or table is caught by the header checksum.
    let count = u32::from_le_bytes(good[12..16].try_into().unwrap()) as usize;
    for byte in (0..HEADER_LEN + count * SECTION_ENTRY_LEN).step_by(7) {
        let mut f = good.clone();
        f[byte] ^= 1 << (byte % 8);
        assert!(
            open_bytes(tmp.path(), "f.sgs", &f).is_err(),
            "flip at {byte} accepted"
        );
    }
}

#[test]
fn a_flipped_bit_anywhere_in_the_file_is_caught_by_open_or_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, _) = valid_segment(tmp.path(), 200);
    let good = std::fs::read(&p).unwrap();
    Segment::open(&p).unwrap().verify().unwrap();
    // Every byte of the first 16 KiB (header, table, reserved table space,
    // small sections and the padding between them), then a stride over the
    // rest: open or verify must refuse each flip.
    let bytes = (0..good.len().min(16 << 10)).chain((16 << 10..good.len()).step_by(61));
    for byte in bytes {
        let mut f = good.clone();
        f[byte] ^= 1 << (byte % 8);
        let refused = match open_bytes(tmp.path(), "any.sgs", &f) {
            Err(_) => true,
            Ok(seg) => seg.verify().is_err(),
        };
        assert!(refused, "flip at byte {byte} of {} accepted", good.len());
    }
}

#[test]
fn hostile_section_tables_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, _) = valid_segment(tmp.path(), 9000);
    let good = std::fs::read(&p).unwrap();
    let count = u32::from_le_bytes(good[12..16].try_into().unwrap()) as usize;
    for s in 0..count {
        let at = HEADER_LEN + s * SECTION_ENTRY_LEN;
        for (field, value) in [
            (8, u64::MAX - 10),          // offset near 2^64 (overflow)
            (8, good.len() as u64 + 64), // offset past the end
            (16, good.len() as u64),     // length past the end
            (16, 3),                     // length too short for the contents
            (8, 65),                     // misaligned offset
        ] {
            let mut h = good.clone();
            h[at + field..at + field + 8].copy_from_slice(&value.to_le_bytes());
            reseal(&mut h);
            // Refused at open, or (a shorter opaque string table) caught by verify.
            let refused = match open_bytes(tmp.path(), "h.sgs", &h) {
                Err(_) => true,
                Ok(seg) => seg.verify().is_err(),
            };
            assert!(refused, "section {s} field {field} = {value} accepted");
        }
    }
    // A section count far beyond the file.
    let mut h = good.clone();
    h[12..16].copy_from_slice(&1000u32.to_le_bytes());
    assert!(open_bytes(tmp.path(), "c.sgs", &h).is_err());
}

#[test]
fn damaged_contents_are_reported_by_verify_and_never_crash_search() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, hs) = valid_segment(tmp.path(), 9000);
    let good = std::fs::read(&p).unwrap();
    Segment::open(&p).unwrap().verify().unwrap();
    // Fill MIH offsets, rows and records with garbage but keep the header
    // valid: searches must stay in bounds; verify must fail.
    let count = u32::from_le_bytes(good[12..16].try_into().unwrap()) as usize;
    for s in 0..count {
        let at = HEADER_LEN + s * SECTION_ENTRY_LEN;
        let off = u64::from_le_bytes(good[at + 8..at + 16].try_into().unwrap()) as usize;
        let len = u64::from_le_bytes(good[at + 16..at + 24].try_into().unwrap()) as usize;
        let mut h = good.clone();
        for (k, b) in h[off..off + len].iter_mut().enumerate() {
            *b = (k as u8).wrapping_mul(151) ^ 0xa5;
        }
        let seg = open_bytes(tmp.path(), "d.sgs", &h);
        let Ok(seg) = seg else { continue };
        assert!(
            seg.verify().is_err(),
            "garbage in section {s} passed verify"
        );
        search_everything(tmp.path(), "d.sgs", &hs);
    }
}

/// Opens the segment file through a one-segment index and runs searches.
fn search_everything(dir: &Path, name: &str, hs: &[[u8; 32]]) {
    let idx = dir.join(format!("idx-{name}"));
    let _ = std::fs::remove_dir_all(&idx);
    std::fs::create_dir_all(&idx).unwrap();
    let Ok(seg) = Segment::open(&dir.join(name)) else {
        return;
    };
    let (len, hc) = (seg.file_len(), seg.header_checksum());
    drop(seg);
    std::fs::copy(dir.join(name), idx.join("seg-0000000001.sgs")).unwrap();
    let m = format!(
        r#"{{"format":"sigil-index","version":1,"generation":1,"segments":[{{"file":"seg-0000000001.sgs","generation":1,"len":{len},"header_xxh3":"{hc:016x}"}}],"tombstones":[]}}"#
    );
    let text = format!(
        "{m}\nxxh3={:016x}\n",
        xxhash_rust::xxh3::xxh3_64(m.as_bytes())
    );
    std::fs::write(idx.join("MANIFEST"), text).unwrap();
    let Ok(r) = IndexReader::open(&idx) else {
        return;
    };
    for plan in [sigil_index::SearchPlan::Mih, sigil_index::SearchPlan::Flat] {
        let r = IndexReader::open(&idx).unwrap().with_plan(plan);
        for h in hs.iter().take(20) {
            let _ = r.search_pdq(
                &PdqHash(*h),
                &SearchOptions {
                    radius: 40,
                    ..Default::default()
                },
            );
            let _ = r.search_pdq(
                &PdqHash(*h),
                &SearchOptions {
                    k: Some(3),
                    dihedral: true,
                    ..Default::default()
                },
            );
        }
        // The batched search reads the same tables in another order.
        let batch: Vec<PdqHash> = hs.iter().take(20).map(|h| PdqHash(*h)).collect();
        let _ = r.search_pdq_many(
            &batch,
            &SearchOptions {
                radius: 40,
                ..Default::default()
            },
        );
    }
    let _ = r.lookup_exact(HashKind::Md5, &[7u8; 16]);
    let _ = r.for_each_entry(|_, _, _| Ok(()));
    let _ = r.verify();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
    /// Random byte mutations and truncations of a valid file: open either
    /// fails with an error or gives a reader whose searches and verify run
    /// without panicking.
    #[test]
    fn random_mutations_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
        cut in proptest::option::of(any::<prop::sample::Index>()),
        reseal_header in any::<bool>(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let (p, hs) = valid_segment(tmp.path(), 300);
        let mut bytes = std::fs::read(&p).unwrap();
        for (i, v) in &edits {
            let at = i.index(bytes.len());
            bytes[at] = *v;
        }
        if reseal_header {
            let count = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
            if HEADER_LEN + count * SECTION_ENTRY_LEN <= bytes.len() {
                reseal(&mut bytes);
            }
        }
        if let Some(c) = cut {
            let l = c.index(bytes.len());
            bytes.truncate(l);
        }
        let _ = open_bytes(tmp.path(), "p.sgs", &bytes).map(|s| s.verify());
        search_everything(tmp.path(), "p.sgs", &hs);
    }
}

#[test]
fn corrupt_manifest_is_refused_and_shared_index_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let mut b = SegmentBuilder::new();
    b.push_pdq(
        &[1u8; 32],
        EntryMeta {
            id: "x",
            list: "a",
            category: "",
            note: None,
        },
    )
    .unwrap();
    IndexWriter::create(&dir).unwrap().add_segment(b).unwrap();
    let shared = sigil_index::SharedIndex::open(&dir).unwrap();
    let manifest = std::fs::read_to_string(dir.join("MANIFEST")).unwrap();
    // Garbage manifest, then a manifest naming a missing segment.
    std::fs::write(
        dir.join("MANIFEST"),
        manifest.replace("\"generation\":1", "\"generation\":2"),
    )
    .unwrap();
    let e = shared.reload().unwrap_err().to_string();
    assert!(e.contains("MANIFEST") && e.contains("checksum"), "{e}");
    assert_eq!(shared.current().generation(), 1);
    assert_eq!(
        shared
            .current()
            .search_pdq(&PdqHash([1u8; 32]), &SearchOptions::default())
            .len(),
        1
    );
    std::fs::write(dir.join("MANIFEST"), "").unwrap();
    assert!(shared.reload().is_err());
    assert_eq!(shared.current().generation(), 1);
}
