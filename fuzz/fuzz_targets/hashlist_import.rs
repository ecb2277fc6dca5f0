//! Fuzz hash-list import: plain `[KIND:]HEX[,id,list,category,note]` lines
//! and CSV with a header, into a segment builder, with or without a given
//! kind, skipping and strictness; and removal lists into tombstones. A
//! segment built from whatever imported, duplicates dropped, must write,
//! reopen and verify.
//!
//! Invariants: never a panic; a bad line is an `IndexError` naming the
//! line (or, with `skip_invalid`, a skipped count); every accepted entry
//! survives the write/reopen round trip.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sigil_index::import::{import_reader, read_removals, ImportOptions, RemoveBy};
use sigil_index::segment::Segment;
use sigil_index::SegmentBuilder;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let opts = ImportOptions {
        skip_invalid: mode & 1 == 1,
        strict: mode & 8 == 8,
        kind: match (mode >> 4) % 5 {
            0 => None,
            k => Some(sigil_core::HashKind::ALL[k as usize - 1]),
        },
        ..ImportOptions::default()
    };
    let name = Path::new("fuzz-list.csv");
    if mode & 2 == 2 {
        let by = if mode & 4 == 4 {
            RemoveBy::Id
        } else {
            RemoveBy::Hash
        };
        let _ = read_removals(name, body, by, &opts, Some("fuzz"));
        return;
    }
    let mut builder = SegmentBuilder::new();
    let Ok(stats) = import_reader(name, body, &opts, &mut builder) else {
        return;
    };
    assert_eq!(builder.len() as u64, stats.added);
    let repeats = builder.drop_duplicates();
    assert_eq!(builder.len() as u64 + repeats.len() as u64, stats.added);
    if builder.is_empty() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("seg-0000000001.sgs");
    builder
        .write(&path)
        .expect("a builder that accepted entries must write");
    let seg = Segment::open(&path).expect("a freshly written segment must open");
    seg.verify().expect("a freshly written segment must verify");
});
