//! `IndexWriter`: the single writer of an index directory. Every change
//! writes new immutable files under temporary names, fsyncs and renames
//! them, then replaces the MANIFEST atomically; a crash at any moment
//! leaves the previous generation intact and readable.

use std::fs::File;
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;
use sigil_core::HashKind;

use crate::builder::{EntryMeta, SegmentBuilder};
use crate::error::{IndexError, Result};
use crate::fsio;
use crate::manifest::{FileRef, Manifest, MANIFEST};
use crate::reader::IndexReader;
use crate::tombstone::{self, Tombstone};

/// What [`IndexWriter::remove`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removed {
    /// The generation now committed (unchanged if nothing was removed).
    pub generation: u64,
    /// Distinct live entries removed.
    pub entries: u64,
    /// For each removal asked, the live entries it covered (0: not found,
    /// nothing recorded for it).
    pub per_removal: Vec<u64>,
}

/// Name of the advisory lock file held by a writer.
pub const LOCK: &str = "LOCK";

/// Exclusive writer of one index directory (advisory `flock` on `LOCK`).
pub struct IndexWriter {
    dir: PathBuf,
    manifest: Manifest,
    _lock: File,
}

fn lock(dir: &Path) -> Result<File> {
    let p = dir.join(LOCK);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| IndexError::io(&p, "open lock file", e))?;
    match f.try_lock_exclusive() {
        Ok(true) => Ok(f),
        Ok(false) => Err(IndexError::Locked {
            path: dir.to_path_buf(),
        }),
        Err(e) => Err(IndexError::io(&p, "lock", e)),
    }
}

impl IndexWriter {
    /// Starts a new index in `dir` (created if missing). Fails if `dir`
    /// already holds an index. Nothing is visible until the first commit.
    pub fn create(dir: impl AsRef<Path>) -> Result<IndexWriter> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, "create directory", e))?;
        let l = lock(dir)?;
        if dir.join(MANIFEST).exists() {
            return Err(IndexError::AlreadyExists {
                path: dir.to_path_buf(),
            });
        }
        Ok(IndexWriter {
            dir: dir.to_path_buf(),
            manifest: Manifest::empty(),
            _lock: l,
        })
    }

    /// Opens an existing index for writing.
    pub fn open(dir: impl AsRef<Path>) -> Result<IndexWriter> {
        let dir = dir.as_ref();
        if !dir.join(MANIFEST).exists() {
            return Err(IndexError::NotAnIndex {
                path: dir.to_path_buf(),
            });
        }
        let l = lock(dir)?;
        let manifest = Manifest::load(dir)?;
        Ok(IndexWriter {
            dir: dir.to_path_buf(),
            manifest,
            _lock: l,
        })
    }

    /// The generation last committed.
    pub fn generation(&self) -> u64 {
        self.manifest.generation
    }

    fn commit(&mut self, m: Manifest) -> Result<u64> {
        m.store(&self.dir)?;
        self.manifest = m;
        Ok(self.manifest.generation)
    }

    fn write_segment(&self, builder: SegmentBuilder, generation: u64) -> Result<FileRef> {
        let name = format!("seg-{generation:010}.sgs");
        self.write_file(name, generation, |tmp| builder.write(tmp))
    }

    /// Writes the index file `name` of `generation` with `write` under a
    /// temporary name, publishes it as `name`, and returns its manifest
    /// entry. `write` returns the file's (length, header checksum). On any
    /// failure the temporary file is removed, so only `compact` ever finds
    /// leftovers (of writers that crashed).
    fn write_file(
        &self,
        name: String,
        generation: u64,
        write: impl FnOnce(&Path) -> Result<(u64, u64)>,
    ) -> Result<FileRef> {
        let tmp = fsio::temp_path(&self.dir, &name);
        let res = write(&tmp).and_then(|(len, header)| {
            fsio::publish(&tmp, &self.dir.join(&name))?;
            Ok(FileRef {
                file: name,
                generation,
                len,
                header_xxh3: format!("{header:016x}"),
            })
        });
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    }

    /// Adds the builder's entries as a new segment and commits a new
    /// generation. Returns the generation (unchanged if the builder is empty
    /// and the index already exists).
    pub fn add_segment(&mut self, builder: SegmentBuilder) -> Result<u64> {
        let first = self.manifest.generation == 0 && !self.dir.join(MANIFEST).exists();
        if builder.is_empty() && !first {
            return Ok(self.manifest.generation);
        }
        let generation = self.manifest.generation + 1;
        let mut m = self.manifest.clone();
        m.generation = generation;
        if !builder.is_empty() {
            m.segments.push(self.write_segment(builder, generation)?);
        }
        self.commit(m)
    }

    /// Records removals in a new tombstone file and commits a new generation.
    pub fn add_tombstones(&mut self, tombs: &[Tombstone]) -> Result<u64> {
        if tombs.is_empty() {
            return Ok(self.manifest.generation);
        }
        let generation = self.manifest.generation + 1;
        let name = format!("tomb-{generation:010}.sgt");
        let r = self.write_file(name, generation, |tmp| tombstone::write_file(tmp, tombs))?;
        let mut m = self.manifest.clone();
        m.generation = generation;
        m.tombstones.push(r);
        self.commit(m)
    }

    /// Removes what `removals` name, as far as it is in the index: a
    /// tombstone file records the removals that cover live entries (none is
    /// written, and the generation stays, if none does). A removal limited
    /// to a list the index does not hold is an error naming the lists it
    /// holds, and nothing is recorded.
    pub fn remove(&mut self, removals: &[Tombstone]) -> Result<Removed> {
        let reader = IndexReader::open(&self.dir)?;
        if reader.generation() != self.manifest.generation {
            return Err(IndexError::corrupt(
                self.dir.join(MANIFEST),
                "manifest changed under the writer lock",
            ));
        }
        let known = reader.lists();
        if let Some(list) = removals
            .iter()
            .filter_map(Tombstone::list)
            .find(|l| !known.iter().any(|k| k == l))
        {
            return Err(IndexError::UnknownList {
                path: self.dir.clone(),
                list: list.to_string(),
                known,
            });
        }
        let (per_removal, entries) = reader.count_removals(removals)?;
        drop(reader);
        let mut found: Vec<Tombstone> = Vec::new();
        for (t, &n) in removals.iter().zip(&per_removal) {
            if n > 0 && !found.contains(t) {
                found.push(t.clone());
            }
        }
        let generation = self.add_tombstones(&found)?;
        Ok(Removed {
            generation,
            entries,
            per_removal,
        })
    }

    /// Merges every segment into one, dropping removed entries, commits a
    /// generation without tombstones, then deletes files no longer
    /// referenced (readers holding them mapped keep working: unlinking a
    /// mapped file leaves the mapping intact) and leftover temporary files.
    pub fn compact(&mut self) -> Result<u64> {
        let reader = IndexReader::open(&self.dir)?;
        if reader.generation() != self.manifest.generation {
            return Err(IndexError::corrupt(
                self.dir.join(MANIFEST),
                "manifest changed under the writer lock",
            ));
        }
        let mut b = SegmentBuilder::new();
        reader.for_each_entry(|kind, key, e| {
            let meta = EntryMeta {
                id: &e.id,
                list: e.list,
                category: e.category,
                note: e.note,
            };
            if kind == HashKind::Pdq {
                b.push_pdq(key.try_into().unwrap_or(&[0u8; 32]), meta)
            } else {
                b.push(kind, key, meta)
            }
        })?;
        drop(reader);
        let generation = self.manifest.generation + 1;
        let mut m = self.manifest.clone();
        m.generation = generation;
        m.segments = if b.is_empty() {
            Vec::new()
        } else {
            vec![self.write_segment(b, generation)?]
        };
        m.tombstones.clear();
        self.commit(m)?;
        self.remove_unreferenced()?;
        Ok(generation)
    }

    /// Deletes segment/tombstone files the manifest does not list and
    /// temporary files of interrupted writers (we hold the lock, so no
    /// writer is running).
    pub fn remove_unreferenced(&self) -> Result<usize> {
        let keep: Vec<&str> = self
            .manifest
            .segments
            .iter()
            .chain(&self.manifest.tombstones)
            .map(|f| f.file.as_str())
            .collect();
        let mut removed = 0;
        let rd = std::fs::read_dir(&self.dir)
            .map_err(|e| IndexError::io(&self.dir, "read directory", e))?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = name.starts_with(fsio::TEMP_PREFIX)
                || ((name.starts_with("seg-") && name.ends_with(".sgs"))
                    || (name.starts_with("tomb-") && name.ends_with(".sgt")))
                    && !keep.contains(&name.as_str());
            if ours && std::fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
        if removed > 0 {
            fsio::fsync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}
