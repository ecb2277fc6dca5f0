//! The lookup seam: where signatures meet the lists.
//!
//! The pipeline asks a [`Lookup`] for matches; [`IndexLookup`] answers from a
//! mapped `sigil-index` generation. Tests (and embedders with their own
//! store) can supply another implementation.

use sigil_core::{HashKind, PdqHash};
use sigil_index::{IndexReader, SearchOptions};

use crate::record::MatchRecord;

/// Answers "which list entries match these signatures".
pub trait Lookup: Sync {
    /// PDQ entries within `radius` of `hash` or, when `dihedral` holds the 8
    /// variants of the image (order `Dihedral::ALL`), of any variant.
    fn pdq(&self, hash: &PdqHash, dihedral: Option<&[PdqHash; 8]>, radius: u32)
        -> Vec<MatchRecord>;
    /// Entries whose `kind` digest equals `digest`.
    fn exact(&self, kind: HashKind, digest: &[u8]) -> Vec<MatchRecord>;
    /// Whether any entry of `kind` could match. The scan leaves out the
    /// SHA-1 digest (records carry only MD5 and SHA-256) when this says no
    /// SHA-1 entry exists. `true` unless an implementation knows better.
    fn has_entries(&self, kind: HashKind) -> bool {
        let _ = kind;
        true
    }
}

/// A [`Lookup`] over one consistent index generation.
pub struct IndexLookup {
    reader: IndexReader,
    base: SearchOptions,
    /// The kinds with at least one stored key in this generation.
    kinds: Vec<HashKind>,
}

impl IndexLookup {
    pub fn new(reader: IndexReader) -> Self {
        let kinds = HashKind::ALL
            .into_iter()
            .filter(|&k| reader.segments().any(|(s, _)| s.key_count(k) > 0))
            .collect();
        IndexLookup {
            reader,
            base: SearchOptions::default(),
            kinds,
        }
    }

    /// Restricts PDQ searches to these lists (None = all).
    pub fn with_lists(mut self, lists: Option<Vec<String>>) -> Self {
        self.base.lists = lists;
        self
    }

    pub fn reader(&self) -> &IndexReader {
        &self.reader
    }
}

fn convert(m: sigil_index::Match) -> MatchRecord {
    MatchRecord {
        id: m.id,
        list: m.list,
        category: m.category,
        kind: m.kind,
        distance: m.distance,
        variant: m.variant,
        query_variant: None,
    }
}

impl Lookup for IndexLookup {
    fn pdq(
        &self,
        hash: &PdqHash,
        dihedral: Option<&[PdqHash; 8]>,
        radius: u32,
    ) -> Vec<MatchRecord> {
        let opts = SearchOptions {
            radius,
            ..self.base.clone()
        };
        let found = match dihedral {
            Some(v) => self.reader.search_pdq_dihedral(v, &opts),
            None => self.reader.search_pdq(hash, &opts),
        };
        found.into_iter().map(convert).collect()
    }

    fn exact(&self, kind: HashKind, digest: &[u8]) -> Vec<MatchRecord> {
        self.reader
            .lookup_exact(kind, digest)
            .into_iter()
            .map(convert)
            .collect()
    }

    fn has_entries(&self, kind: HashKind) -> bool {
        self.kinds.contains(&kind)
    }
}
