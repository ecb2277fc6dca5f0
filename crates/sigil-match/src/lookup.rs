//! The lookup seam: where signatures meet the lists.
//!
//! The [`crate::Matcher`] asks a [`Lookup`] for candidate matches and then
//! applies the policy to them; [`IndexReader`] answers from one mapped
//! generation, [`MemoryLookup`] from entries held in memory (tests, small
//! embedders).

use sigil_core::{Dihedral, HashKind, PdqHash};
use sigil_index::{IndexIdentity, IndexReader, Match, SearchOptions};

/// Answers "which list entries match these signatures", from one
/// consistent generation of the lists.
pub trait Lookup: Sync {
    /// The generation answering (reported with every outcome).
    fn generation(&self) -> u64;

    /// The identity of the generation answering (reported with every
    /// outcome); lookups that are no index on disk have the zero identity.
    fn identity(&self) -> IndexIdentity {
        IndexIdentity::default()
    }

    /// The names of the lists this generation holds, sorted.
    fn lists(&self) -> Vec<String>;

    /// Whether any entry of `kind` could match. Scans leave out the SHA-1
    /// digest when this says no SHA-1 entry exists. `true` unless an
    /// implementation knows better.
    fn has_entries(&self, kind: HashKind) -> bool {
        let _ = kind;
        true
    }

    /// Entries whose `kind` digest equals `digest` (distance 0).
    fn exact(&self, kind: HashKind, digest: &[u8]) -> Vec<Match>;

    /// PDQ entries within `opts` of `hash`, nearest first, each entry once
    /// (as [`IndexReader::search_pdq`]: `opts.radius` inclusive, overridden
    /// per list by `opts.list_radius`; only `opts.lists`; with
    /// `opts.dihedral`, also the bit-domain dihedral variants of `hash`).
    fn pdq(&self, hash: &PdqHash, opts: &SearchOptions) -> Vec<Match>;

    /// PDQ entries within `opts` of any of an image's 8 dihedral hashes
    /// (`Dihedral::ALL` order), each entry once at its smallest distance,
    /// with the variant that reached it.
    fn pdq_dihedral(&self, variants: &[PdqHash; 8], opts: &SearchOptions) -> Vec<Match>;

    /// [`Lookup::pdq`] of every query: the result `i` answers `queries[i]`.
    /// An index searches a batch for less than the sum of its queries.
    fn pdq_many(&self, queries: &[PdqHash], opts: &SearchOptions) -> Vec<Vec<Match>> {
        queries.iter().map(|q| self.pdq(q, opts)).collect()
    }
}

impl Lookup for IndexReader {
    fn generation(&self) -> u64 {
        IndexReader::generation(self)
    }

    fn identity(&self) -> IndexIdentity {
        IndexReader::identity(self)
    }

    fn lists(&self) -> Vec<String> {
        self.stats().lists
    }

    fn has_entries(&self, kind: HashKind) -> bool {
        self.segments().any(|(s, _)| s.key_count(kind) > 0)
    }

    fn exact(&self, kind: HashKind, digest: &[u8]) -> Vec<Match> {
        self.lookup_exact(kind, digest)
    }

    fn pdq(&self, hash: &PdqHash, opts: &SearchOptions) -> Vec<Match> {
        self.search_pdq(hash, opts)
    }

    fn pdq_dihedral(&self, variants: &[PdqHash; 8], opts: &SearchOptions) -> Vec<Match> {
        self.search_pdq_dihedral(variants, opts)
    }

    fn pdq_many(&self, queries: &[PdqHash], opts: &SearchOptions) -> Vec<Vec<Match>> {
        self.search_pdq_many(queries, opts)
    }
}

/// A [`Lookup`] over entries held in memory, searched one by one. For
/// tests and small lists; it follows [`IndexReader`]'s answers (order:
/// nearest first, then insertion order).
#[derive(Debug, Clone, Default)]
pub struct MemoryLookup {
    generation: u64,
    entries: Vec<MemoryEntry>,
}

#[derive(Debug, Clone)]
struct MemoryEntry {
    kind: HashKind,
    key: Vec<u8>,
    list: String,
    id: String,
    category: String,
}

impl MemoryLookup {
    /// An empty lookup of generation 0.
    pub fn new() -> Self {
        MemoryLookup::default()
    }

    /// Reports `generation` as the generation answering.
    pub fn with_generation(mut self, generation: u64) -> Self {
        self.generation = generation;
        self
    }

    /// Adds an entry: its hash (`key`, raw bytes of `kind`), list, id and
    /// category.
    pub fn with_entry(
        mut self,
        kind: HashKind,
        key: &[u8],
        list: &str,
        id: &str,
        category: &str,
    ) -> Self {
        self.entries.push(MemoryEntry {
            kind,
            key: key.to_vec(),
            list: list.to_string(),
            id: id.to_string(),
            category: category.to_string(),
        });
        self
    }

    fn found(e: &MemoryEntry, distance: u32, variant: Option<Dihedral>) -> Match {
        Match {
            id: e.id.clone(),
            list: e.list.clone(),
            category: e.category.clone(),
            note: None,
            kind: e.kind,
            distance,
            variant,
        }
    }

    fn search(&self, variants: &[PdqHash], dihedral: bool, opts: &SearchOptions) -> Vec<Match> {
        let mut out: Vec<Match> = Vec::new();
        for e in self.entries.iter().filter(|e| e.kind == HashKind::Pdq) {
            if opts.lists.as_ref().is_some_and(|ls| !ls.contains(&e.list)) {
                continue;
            }
            let Ok(key) = <[u8; 32]>::try_from(&e.key[..]) else {
                continue;
            };
            let key = PdqHash(key);
            // Smallest distance over the variants; ties: the earlier one.
            let Some((vi, d)) = variants
                .iter()
                .map(|v| v.hamming(&key))
                .enumerate()
                .min_by_key(|&(i, d)| (d, i))
            else {
                continue;
            };
            let radius = opts
                .list_radius
                .get(&e.list)
                .copied()
                .unwrap_or(opts.radius);
            if d <= radius {
                out.push(Self::found(e, d, dihedral.then(|| Dihedral::ALL[vi])));
            }
        }
        out.sort_by_key(|m| m.distance);
        out
    }
}

impl Lookup for MemoryLookup {
    fn generation(&self) -> u64 {
        self.generation
    }

    fn lists(&self) -> Vec<String> {
        let mut lists: Vec<String> = self.entries.iter().map(|e| e.list.clone()).collect();
        lists.sort();
        lists.dedup();
        lists
    }

    fn has_entries(&self, kind: HashKind) -> bool {
        self.entries.iter().any(|e| e.kind == kind)
    }

    fn exact(&self, kind: HashKind, digest: &[u8]) -> Vec<Match> {
        self.entries
            .iter()
            .filter(|e| e.kind == kind && e.key == digest)
            .map(|e| Self::found(e, 0, None))
            .collect()
    }

    fn pdq(&self, hash: &PdqHash, opts: &SearchOptions) -> Vec<Match> {
        if opts.dihedral {
            let variants: [PdqHash; 8] =
                std::array::from_fn(|i| hash.dihedral_transform(Dihedral::ALL[i]));
            self.search(&variants, true, opts)
        } else {
            self.search(std::slice::from_ref(hash), false, opts)
        }
    }

    fn pdq_dihedral(&self, variants: &[PdqHash; 8], opts: &SearchOptions) -> Vec<Match> {
        self.search(variants, true, opts)
    }
}
