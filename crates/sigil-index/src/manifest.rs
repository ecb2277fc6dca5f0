//! The MANIFEST: which segment and tombstone files make up the current
//! generation. Replaced atomically (temp file, fsync, rename, dir fsync);
//! its last line is an xxh3 checksum of the JSON line before it.

use std::path::Path;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{IndexError, Result};
use crate::fsio;

/// File name of the manifest inside an index directory.
pub const MANIFEST: &str = "MANIFEST";
/// Manifest format tag.
pub const FORMAT: &str = "sigil-index";

/// A file of the generation, with what it must look like.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileRef {
    /// File name inside the index directory (no path separators).
    pub file: String,
    /// Generation that wrote it: tombstones apply to older segments only.
    pub generation: u64,
    /// Expected file length.
    pub len: u64,
    /// Expected header checksum (hex), so a swapped file is detected at open.
    pub header_xxh3: String,
}

/// What names one generation of an index on disk: the checksum of its
/// MANIFEST's contents. The manifest lists every segment and tombstone
/// file with its length and header checksum (which covers every section's
/// checksum), so two directories with equal identities hold the same
/// files; and two fresh builds, which are both generation 1, differ in
/// identity as soon as their entries differ. Shown as 16 hex digits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IndexIdentity(pub u64);

impl std::fmt::Display for IndexIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl serde::Serialize for IndexIdentity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The contents of MANIFEST.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub generation: u64,
    pub segments: Vec<FileRef>,
    pub tombstones: Vec<FileRef>,
}

impl Manifest {
    /// An index with nothing in it yet.
    pub fn empty() -> Self {
        Manifest {
            format: FORMAT.into(),
            version: crate::format::VERSION,
            generation: 0,
            segments: Vec::new(),
            tombstones: Vec::new(),
        }
    }

    /// Reads and checks `dir/MANIFEST`.
    pub fn load(dir: &Path) -> Result<Manifest> {
        Self::load_with_identity(dir).map(|(m, _)| m)
    }

    /// Reads and checks `dir/MANIFEST`, with the identity of what it read.
    pub fn load_with_identity(dir: &Path) -> Result<(Manifest, IndexIdentity)> {
        let path = dir.join(MANIFEST);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(IndexError::NotAnIndex {
                    path: dir.to_path_buf(),
                })
            }
            Err(e) => return Err(IndexError::io(&path, "read", e)),
        };
        let corrupt = |r: &str| IndexError::corrupt(&path, r.to_string());
        let text = std::str::from_utf8(&text).map_err(|_| corrupt("not UTF-8"))?;
        let mut lines = text.lines();
        let body = lines.next().ok_or_else(|| corrupt("empty manifest"))?;
        let sum = lines
            .next()
            .and_then(|l| l.strip_prefix("xxh3="))
            .ok_or_else(|| corrupt("missing checksum line"))?;
        let identity = IndexIdentity(xxh3_64(body.as_bytes()));
        if sum != identity.to_string() {
            return Err(corrupt("checksum mismatch"));
        }
        let m: Manifest = serde_json::from_str(body)
            .map_err(|e| IndexError::corrupt(&path, format!("bad JSON: {e}")))?;
        if m.format != FORMAT {
            return Err(corrupt("not a sigil index manifest"));
        }
        if m.version != crate::format::VERSION {
            return Err(IndexError::UnsupportedVersion {
                path,
                found: m.version,
                supported: crate::format::VERSION,
            });
        }
        for f in m.segments.iter().chain(&m.tombstones) {
            if f.file.is_empty() || f.file.contains(['/', '\\']) || f.file.starts_with('.') {
                return Err(corrupt("file name with a path separator"));
            }
        }
        Ok((m, identity))
    }

    /// Replaces `dir/MANIFEST` atomically.
    pub fn store(&self, dir: &Path) -> Result<()> {
        let body = serde_json::to_string(self)
            .map_err(|e| IndexError::Limit(format!("manifest serialisation: {e}")))?;
        let text = format!("{body}\nxxh3={:016x}\n", xxh3_64(body.as_bytes()));
        fsio::write_atomic(&dir.join(MANIFEST), text.as_bytes())
    }
}
