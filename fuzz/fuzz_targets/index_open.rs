//! Fuzz the index parsers: a segment (`Segment::from_bytes` on the plain
//! bytes, aligned or not, then `verify` and reads over whatever parsed), a
//! tombstone file (`tombstone::parse`), and a MANIFEST (through
//! `IndexReader::open` of a directory holding it).
//!
//! Invariants: never a panic or out-of-bounds read; hostile offsets and
//! counts must come back as `IndexError`. The first input byte picks the
//! parser, the rest is the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_core::{HashKind, PdqHash};
use std::path::Path;

use sigil_index::segment::{AlignedBytes, Segment};
use sigil_index::{IndexReader, SearchOptions};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let name = Path::new("fuzz-0000000001.sgs");
    match mode % 4 {
        0 | 3 => {
            // Mode 3: the bytes where they lie, at any alignment (refused
            // when a cast would be misaligned, never misread).
            let aligned = AlignedBytes::copy_from(body);
            let bytes: &[u8] = if mode % 4 == 0 { aligned.as_ref() } else { body };
            let Ok(seg) = Segment::from_bytes(name, bytes) else {
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
            let _ = sigil_index::tombstone::parse(Path::new("tomb-0000000001.sgt"), body);
        }
        _ => {
            let dir = tempfile::tempdir().expect("temp dir");
            std::fs::write(dir.path().join("MANIFEST"), body).expect("write manifest");
            if let Ok(reader) = IndexReader::open(dir.path()) {
                let _ = reader.stats();
                let _ = reader.search_pdq(&PdqHash([0u8; 32]), &SearchOptions::default());
                let _ = reader.verify();
            }
        }
    }
});
