//! `SharedIndex`: the current generation behind an atomically swapped
//! `Arc`, for servers. A request takes `current()` once and keeps that
//! generation for its whole life, whatever reloads happen meanwhile.
//!
//! A generation is known by where the index path leads ([`OnDisk`]: the
//! directory it resolves to and its manifest's [`IndexIdentity`]), not by
//! its generation number: every fresh `sigil index build` is generation 1,
//! so a symlink swapped to a new build keeps the number and changes the
//! identity. Every generation put in service, the first included, has been
//! fully verified ([`IndexReader::verify`]: every section checksum, as
//! `sigil index verify`) on the caller's thread, while the previous one
//! keeps serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::error::Result;
use crate::manifest::{IndexIdentity, Manifest};
use crate::reader::IndexReader;

/// Where an index path leads now: the directory it resolves to (a swapped
/// symlink changes it) and the identity of that directory's manifest (a
/// new manifest changes it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OnDisk {
    pub dir: PathBuf,
    pub identity: IndexIdentity,
}

impl OnDisk {
    /// Reads where `path` leads now: a readlink and a read of the (small)
    /// manifest, cheap enough to poll.
    pub fn probe(path: &Path) -> Result<OnDisk> {
        let dir = crate::reader::resolve_dir(path);
        let (_, identity) = Manifest::load_with_identity(&dir)?;
        Ok(OnDisk { dir, identity })
    }
}

/// What a [`SharedIndex::reload`] did.
pub enum Reload {
    /// The path still leads to the generation in service.
    Unchanged(Arc<IndexReader>),
    /// A new generation, verified, replaced `previous`.
    Loaded {
        previous: Arc<IndexReader>,
        current: Arc<IndexReader>,
    },
}

impl std::fmt::Debug for Reload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self.current();
        let what = match self {
            Reload::Unchanged(_) => "Unchanged",
            Reload::Loaded { .. } => "Loaded",
        };
        write!(
            f,
            "{what}(generation {}, identity {})",
            c.generation(),
            c.identity()
        )
    }
}

impl Reload {
    /// The generation in service after the reload.
    pub fn current(&self) -> &Arc<IndexReader> {
        match self {
            Reload::Unchanged(c) | Reload::Loaded { current: c, .. } => c,
        }
    }

    /// The generation number in service after the reload.
    pub fn generation(&self) -> u64 {
        self.current().generation()
    }
}

/// A reloadable handle on an index directory.
pub struct SharedIndex {
    path: PathBuf,
    current: ArcSwap<IndexReader>,
    /// Held while a candidate is opened and verified: two reloads at once
    /// would verify the same files twice and race to swap.
    reloading: Mutex<()>,
}

/// Opens the generation `path` leads to and verifies every checksum of it.
fn open_verified(path: &Path) -> Result<IndexReader> {
    let r = IndexReader::open(path)?;
    r.verify()?;
    Ok(r)
}

impl SharedIndex {
    /// Opens the current generation and verifies it fully (reads every
    /// byte of the index: about a second per 10M entries, see
    /// docs/operations.md).
    pub fn open(path: impl AsRef<Path>) -> Result<SharedIndex> {
        let path = path.as_ref().to_path_buf();
        let r = open_verified(&path)?;
        Ok(SharedIndex {
            path,
            current: ArcSwap::from_pointee(r),
            reloading: Mutex::new(()),
        })
    }

    /// The generation in service now.
    pub fn current(&self) -> Arc<IndexReader> {
        self.current.load_full()
    }

    /// Puts the generation the path leads to now in service, if it is
    /// another than the one in service (by [`OnDisk`], not by number).
    /// The candidate is opened and fully verified first, on this thread;
    /// if it cannot be opened or fails verification the error is returned
    /// and the old generation stays in service. Requests meanwhile go on
    /// against the old generation: call this off the request path.
    pub fn reload(&self) -> Result<Reload> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self.current.load_full();
        if OnDisk::probe(&self.path).is_ok_and(|d| d == cur.on_disk()) {
            return Ok(Reload::Unchanged(cur));
        }
        let fresh = Arc::new(
            open_verified(&self.path)?
                .with_kernel(cur.kernel())
                .with_plan(cur.plan()),
        );
        self.current.store(fresh.clone());
        Ok(Reload::Loaded {
            previous: cur,
            current: fresh,
        })
    }

    /// The index path (possibly a symlink).
    pub fn path(&self) -> &Path {
        &self.path
    }
}
