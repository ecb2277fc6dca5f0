//! Removals: immutable tombstone files, each applying to the segments of
//! earlier generations (a hash removed and later re-added is live again).

use std::collections::HashMap;
use std::path::Path;

use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use sigil_core::HashKind;

use crate::error::{IndexError, Result};
use crate::format::{section, Container, ContainerWriter, MAGIC_TOMBSTONES, TOMBSTONE_VERSION};

/// One removal.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "lowercase")]
pub enum Tombstone {
    /// The entries with this hash (lowercase hex): those of list `list`,
    /// or of every list when `list` is `None` (the only form version 1
    /// tombstone files hold).
    Hash {
        kind: HashKind,
        hash: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        list: Option<String>,
    },
    /// Every entry of list `list` with id `id`.
    Id { list: String, id: String },
}

impl Tombstone {
    /// The list this removal is limited to (`None`: every list).
    pub fn list(&self) -> Option<&str> {
        match self {
            Tombstone::Hash { list, .. } => list.as_deref(),
            Tombstone::Id { list, .. } => Some(list),
        }
    }
}

/// Writes a tombstone file (a container with one checksummed JSON section),
/// format version [`TOMBSTONE_VERSION`].
pub fn write_file(path: &Path, tombs: &[Tombstone]) -> Result<(u64, u64)> {
    let body = serde_json::to_vec(tombs)
        .map_err(|e| IndexError::Limit(format!("tombstone serialisation: {e}")))?;
    let mut w = ContainerWriter::create(path, MAGIC_TOMBSTONES, TOMBSTONE_VERSION, 1)?;
    w.section(section::TOMBSTONES, 0, &body)?;
    w.finish(tombs.len() as u64)
}

/// Parses and fully checks the bytes of a tombstone file (`path` only names
/// it in errors). Returns the tombstones and the (file length, header
/// checksum) pair.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<(Vec<Tombstone>, u64, u64)> {
    let c = Container::parse(path, bytes, MAGIC_TOMBSTONES)?;
    c.verify_checksums(path, bytes)?;
    let s = c
        .find(section::TOMBSTONES, 0)
        .ok_or_else(|| IndexError::corrupt(path, "no tombstone section"))?;
    let data = &bytes[s.offset as usize..(s.offset + s.len) as usize];
    let tombs: Vec<Tombstone> = serde_json::from_slice(data)
        .map_err(|e| IndexError::corrupt(path, format!("bad tombstone list: {e}")))?;
    if c.version < 2
        && tombs
            .iter()
            .any(|t| matches!(t, Tombstone::Hash { list: Some(_), .. }))
    {
        // A version 1 reader would apply such a removal to every list.
        return Err(IndexError::corrupt(
            path,
            "a version 1 tombstone file holds a hash removal limited to one list",
        ));
    }
    Ok((tombs, c.file_len, c.header_checksum))
}

/// Reads and fully checks a tombstone file. Returns the tombstones and the
/// (file length, header checksum) pair.
pub fn read_file(path: &Path) -> Result<(Vec<Tombstone>, u64, u64)> {
    let file = std::fs::File::open(path).map_err(|e| IndexError::io(path, "open", e))?;
    let len = file
        .metadata()
        .map_err(|e| IndexError::io(path, "stat", e))?
        .len();
    if len == 0 {
        return Err(IndexError::corrupt(path, "file is empty (zero length)"));
    }
    // SAFETY: as for segments, tombstone files are never modified after being
    // renamed into place; the map is dropped before this function returns.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| IndexError::io(path, "mmap", e))?;
    parse(path, &map)
}

/// The key of a hash removal: kind and digest bytes.
type HashKey = (HashKind, Vec<u8>);

/// All tombstones of a generation, keyed for lookup: the newest generation
/// that removed each key.
#[derive(Default, Debug)]
pub struct TombstoneSet {
    /// Hash removals from every list.
    by_hash: HashMap<HashKey, u64>,
    /// Hash removals from one list: list name -> hash -> generation.
    by_list_hash: HashMap<String, HashMap<HashKey, u64>>,
    by_id: HashMap<(String, String), u64>,
}

fn newest(g: &mut u64, generation: u64) {
    *g = (*g).max(generation);
}

impl TombstoneSet {
    pub fn insert(&mut self, t: &Tombstone, generation: u64) {
        match t {
            Tombstone::Hash { kind, hash, list } => {
                let mut b = vec![0u8; kind.byte_len()];
                if sigil_core::hash::decode_hex_into(hash, &mut b).is_err() {
                    return;
                }
                let map = match list {
                    None => &mut self.by_hash,
                    Some(l) => self.by_list_hash.entry(l.clone()).or_default(),
                };
                newest(map.entry((*kind, b)).or_insert(0), generation);
            }
            Tombstone::Id { list, id } => {
                newest(
                    self.by_id.entry((list.clone(), id.clone())).or_insert(0),
                    generation,
                );
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Distinct removals in force.
    pub fn len(&self) -> usize {
        self.by_hash.len()
            + self.by_id.len()
            + self.by_list_hash.values().map(HashMap::len).sum::<usize>()
    }

    /// Whether a hash removal from every list, newer than
    /// `segment_generation`, covers `key`.
    pub fn hash_removed(&self, kind: HashKind, key: &[u8], segment_generation: u64) -> bool {
        !self.by_hash.is_empty()
            && self
                .by_hash
                .get(&(kind, key.to_vec()))
                .is_some_and(|&g| g > segment_generation)
    }

    /// Whether a removal of `key` from `list`, newer than
    /// `segment_generation`, covers it (removals from every list are
    /// [`TombstoneSet::hash_removed`]'s).
    pub fn list_hash_removed(
        &self,
        kind: HashKind,
        key: &[u8],
        list: &str,
        segment_generation: u64,
    ) -> bool {
        !self.by_list_hash.is_empty()
            && self.by_list_hash.get(list).is_some_and(|m| {
                m.get(&(kind, key.to_vec()))
                    .is_some_and(|&g| g > segment_generation)
            })
    }

    /// Whether an id removal newer than `segment_generation` covers (list, id).
    pub fn id_removed(&self, list: &str, id: &str, segment_generation: u64) -> bool {
        !self.by_id.is_empty()
            && self
                .by_id
                .get(&(list.to_string(), id.to_string()))
                .is_some_and(|&g| g > segment_generation)
    }

    pub fn has_id_removals(&self) -> bool {
        !self.by_id.is_empty()
    }

    /// Whether some removal applies to single records (by id, or by hash
    /// from one list) rather than to a whole key.
    pub fn has_record_removals(&self) -> bool {
        !self.by_id.is_empty() || !self.by_list_hash.is_empty()
    }

    /// Whether a record (`kind`, `key`, `list`, `id`) of a segment of
    /// `segment_generation` is removed by any tombstone. `id` is asked for
    /// only when an id removal could apply.
    pub fn record_removed<'a>(
        &self,
        kind: HashKind,
        key: &[u8],
        list: &str,
        id: impl FnOnce() -> std::borrow::Cow<'a, str>,
        segment_generation: u64,
    ) -> bool {
        self.hash_removed(kind, key, segment_generation)
            || self.list_hash_removed(kind, key, list, segment_generation)
            || (self.has_id_removals() && self.id_removed(list, &id(), segment_generation))
    }
}
