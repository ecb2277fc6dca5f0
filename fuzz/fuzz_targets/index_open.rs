//! Fuzz the index parsers: a segment file (`Segment::open`, then `verify`
//! and searches over whatever opened), a tombstone file, and a MANIFEST
//! (through `IndexReader::open` of a directory holding it).
//!
//! Invariants: never a panic, SIGBUS or out-of-bounds read; hostile offsets
//! and counts must come back as `IndexError`. The first input byte picks the
//! parser, the rest is the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_core::{HashKind, PdqHash};
use sigil_index::segment::Segment;
use sigil_index::{IndexReader, SearchOptions};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    match mode % 3 {
        0 => {
            let path = dir.path().join("seg-0000000001.sgs");
            std::fs::write(&path, body).expect("write segment");
            let Ok(seg) = Segment::open(&path) else {
                return;
            };
            // Opening validates the header only; the rest must still be
            // safe to touch, and verify() must catch any damage.
            let _ = seg.verify();
            let _ = seg.entry_count();
            for kind in [
                HashKind::Pdq,
                HashKind::Md5,
                HashKind::Sha1,
                HashKind::Sha256,
            ] {
                let n = seg.key_count(kind).min(64);
                let mut recs = Vec::new();
                for row in 0..n {
                    let _ = seg.key(kind, row);
                    recs.clear();
                    seg.records(kind, row, &mut recs);
                    for r in &recs {
                        let _ = seg.resolve(r);
                    }
                }
            }
            let _ = seg.mih_views();
        }
        1 => {
            let path = dir.path().join("tomb-0000000001.sgt");
            std::fs::write(&path, body).expect("write tombstone");
            let _ = sigil_index::tombstone::read_file(&path);
        }
        _ => {
            std::fs::write(dir.path().join("MANIFEST"), body).expect("write manifest");
            if let Ok(reader) = IndexReader::open(dir.path()) {
                let _ = reader.stats();
                let _ = reader.search_pdq(&PdqHash([0u8; 32]), &SearchOptions::default());
                let _ = reader.verify();
            }
        }
    }
});
