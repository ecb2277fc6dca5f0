//! Removals: immutable tombstone files, each applying to the segments of
//! earlier generations (a hash removed and later re-added is live again).

use std::collections::HashMap;
use std::path::Path;

use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use sigil_core::HashKind;

use crate::error::{IndexError, Result};
use crate::format::{section, Container, ContainerWriter, MAGIC_TOMBSTONES};

/// One removal.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "lowercase")]
pub enum Tombstone {
    /// Every entry with this hash (lowercase hex).
    Hash { kind: HashKind, hash: String },
    /// Every entry of list `list` with id `id`.
    Id { list: String, id: String },
}

/// Writes a tombstone file (a container with one checksummed JSON section).
pub fn write_file(path: &Path, tombs: &[Tombstone]) -> Result<(u64, u64)> {
    let body = serde_json::to_vec(tombs)
        .map_err(|e| IndexError::Limit(format!("tombstone serialisation: {e}")))?;
    let mut w = ContainerWriter::create(path, MAGIC_TOMBSTONES, 1)?;
    w.section(section::TOMBSTONES, 0, &body)?;
    w.finish(tombs.len() as u64)
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
    let c = Container::parse(path, &map, MAGIC_TOMBSTONES)?;
    c.verify_checksums(path, &map)?;
    let s = c
        .find(section::TOMBSTONES, 0)
        .ok_or_else(|| IndexError::corrupt(path, "no tombstone section"))?;
    let data = &map[s.offset as usize..(s.offset + s.len) as usize];
    let tombs: Vec<Tombstone> = serde_json::from_slice(data)
        .map_err(|e| IndexError::corrupt(path, format!("bad tombstone list: {e}")))?;
    Ok((tombs, c.file_len, c.header_checksum))
}

/// All tombstones of a generation, keyed for lookup: the newest generation
/// that removed each key.
#[derive(Default, Debug)]
pub struct TombstoneSet {
    by_hash: HashMap<(HashKind, Vec<u8>), u64>,
    by_id: HashMap<(String, String), u64>,
}

impl TombstoneSet {
    pub fn insert(&mut self, t: &Tombstone, generation: u64) {
        match t {
            Tombstone::Hash { kind, hash } => {
                let mut b = vec![0u8; kind.byte_len()];
                if sigil_core::hash::decode_hex_into(hash, &mut b).is_ok() {
                    let g = self.by_hash.entry((*kind, b)).or_insert(0);
                    *g = (*g).max(generation);
                }
            }
            Tombstone::Id { list, id } => {
                let g = self.by_id.entry((list.clone(), id.clone())).or_insert(0);
                *g = (*g).max(generation);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty() && self.by_id.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_hash.len() + self.by_id.len()
    }

    /// Whether a hash removal newer than `segment_generation` covers `key`.
    pub fn hash_removed(&self, kind: HashKind, key: &[u8], segment_generation: u64) -> bool {
        !self.by_hash.is_empty()
            && self
                .by_hash
                .get(&(kind, key.to_vec()))
                .is_some_and(|&g| g > segment_generation)
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
}
