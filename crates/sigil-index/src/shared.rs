//! `SharedIndex`: the current generation behind an atomically swapped
//! `Arc`, for servers. A request takes `current()` once and keeps that
//! generation for its whole life, whatever reloads happen meanwhile.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::error::Result;
use crate::reader::IndexReader;

/// A reloadable handle on an index directory.
pub struct SharedIndex {
    path: PathBuf,
    current: ArcSwap<IndexReader>,
}

impl SharedIndex {
    /// Opens the current generation.
    pub fn open(path: impl AsRef<Path>) -> Result<SharedIndex> {
        let path = path.as_ref().to_path_buf();
        let r = IndexReader::open(&path)?;
        Ok(SharedIndex {
            path,
            current: ArcSwap::from_pointee(r),
        })
    }

    /// The generation in service now.
    pub fn current(&self) -> Arc<IndexReader> {
        self.current.load_full()
    }

    /// Opens the newest generation and swaps it in. If it cannot be opened
    /// (corrupt or missing file) the error is returned and the old
    /// generation stays in service. Returns the generation now in service.
    pub fn reload(&self) -> Result<u64> {
        let cur = self.current.load();
        if let Ok(m) = crate::manifest::Manifest::load(&self.path) {
            if m.generation == cur.generation() {
                return Ok(m.generation);
            }
        }
        let fresh = IndexReader::open(&self.path)?
            .with_kernel(cur.kernel())
            .with_plan(cur.plan());
        let g = fresh.generation();
        self.current.store(Arc::new(fresh));
        Ok(g)
    }

    /// The index directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
