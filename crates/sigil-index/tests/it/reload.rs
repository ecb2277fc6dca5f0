//! Reload by identity: a symlinked index swapped to another fresh build
//! (generation 1 like the one in service) is loaded; a candidate whose
//! data sections or header are damaged is refused at reload, after full
//! verification, while the old generation keeps answering.

use std::path::Path;

use sigil_core::PdqHash;
use sigil_index::format::{section, Container, MAGIC_SEGMENT};
use sigil_index::manifest::Manifest;
use sigil_index::{
    EntryMeta, IndexReader, IndexWriter, Reload, SearchOptions, SegmentBuilder, SharedIndex,
};

const HASH: [u8; 32] = [0x5a; 32];

/// A fresh one-segment index (generation 1) at `dir` with `HASH` in `list`.
fn build(dir: &Path, list: &str, id: &str) {
    let mut b = SegmentBuilder::new();
    b.push_pdq(
        &HASH,
        EntryMeta {
            id,
            list,
            category: "A1",
            note: None,
        },
    )
    .unwrap();
    let g = IndexWriter::create(dir).unwrap().add_segment(b).unwrap();
    assert_eq!(g, 1);
}

/// Points the symlink `link` at `target`, atomically (new link, rename).
fn point(link: &Path, target: &Path) {
    let tmp = link.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, link).unwrap();
}

/// The (list, id) pairs `HASH` matches in `r`.
fn answer(r: &IndexReader) -> Vec<(String, String)> {
    r.search_pdq(&PdqHash(HASH), &SearchOptions::default())
        .into_iter()
        .map(|m| (m.list, m.id))
        .collect()
}

/// Flips a byte inside the PDQ key section of `dir`'s only segment (the
/// header and section table stay valid: only full verification sees it),
/// or inside the header when `header` is set.
fn damage(dir: &Path, header: bool) {
    let m = Manifest::load(dir).unwrap();
    let p = dir.join(&m.segments[0].file);
    let mut bytes = std::fs::read(&p).unwrap();
    let at = if header {
        30
    } else {
        let c = Container::parse(&p, &bytes, MAGIC_SEGMENT).unwrap();
        c.find(section::KEYS, 0).unwrap().offset as usize + 3
    };
    bytes[at] ^= 0x10;
    std::fs::write(&p, &bytes).unwrap();
}

#[test]
fn a_symlink_swapped_to_another_fresh_build_is_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, link) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("current"),
    );
    build(&a, "old", "1");
    build(&b, "new", "2");
    point(&link, &a);
    let shared = SharedIndex::open(&link).unwrap();
    let before = shared.current();
    assert_eq!(answer(&before), [("old".into(), "1".into())]);
    assert!(matches!(shared.reload().unwrap(), Reload::Unchanged(_)));

    point(&link, &b);
    let r = shared.reload().unwrap();
    assert!(matches!(r, Reload::Loaded { .. }), "{r:?}");
    let now = shared.current();
    assert_eq!(now.generation(), 1, "both builds are generation 1");
    assert_ne!(now.identity(), before.identity());
    assert_eq!(answer(&now), [("new".into(), "2".into())]);
    // The generation a request took before the swap still answers.
    assert_eq!(answer(&before), [("old".into(), "1".into())]);
    assert!(matches!(shared.reload().unwrap(), Reload::Unchanged(_)));
}

#[test]
fn a_damaged_candidate_is_refused_and_the_old_generation_serves() {
    for header in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, link) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("current"),
        );
        build(&a, "old", "1");
        build(&b, "new", "2");
        damage(&b, header);
        if !header {
            // Damage inside a data section passes the header checks of
            // open and only full verification (`sigil index verify`) sees it.
            let r = IndexReader::open(&b).unwrap();
            let e = r.verify().unwrap_err().to_string();
            assert!(e.contains("checksum mismatch"), "{e}");
        }
        point(&link, &a);
        let shared = SharedIndex::open(&link).unwrap();
        point(&link, &b);
        let e = shared.reload().unwrap_err();
        assert_eq!(e.reason(), "corrupt", "{e}");
        assert!(e.to_string().contains("checksum"), "{e}");
        assert_eq!(answer(&shared.current()), [("old".into(), "1".into())]);
        // Still refused when asked again.
        assert!(shared.reload().is_err());
        assert_eq!(answer(&shared.current()), [("old".into(), "1".into())]);
    }
}

#[test]
fn a_damaged_index_is_refused_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    build(&a, "old", "1");
    damage(&a, false);
    let e = SharedIndex::open(&a).err().expect("damaged index opened");
    assert!(e.to_string().contains("checksum mismatch"), "{e}");
}
