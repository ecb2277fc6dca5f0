//! The one error type of the crate.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong opening, searching, writing or importing an index.
///
/// Every variant names the file (and where it applies the line) and the cause,
/// so that a CLI can print it as is.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// An operating-system error on a named path.
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// A segment, tombstone or manifest file is not what it claims to be
    /// (bad magic, truncated, out-of-bounds section, checksum mismatch...).
    #[error("{path}: corrupt index file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// A file written by a newer (or unknown) format version.
    #[error(
        "{path}: unsupported index format version {found} (this build reads version {supported})"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// The directory holds no index (no MANIFEST).
    #[error("{path}: not an index (no MANIFEST file)")]
    NotAnIndex { path: PathBuf },
    /// `build` into a directory that already holds an index.
    #[error("{path}: an index already exists here")]
    AlreadyExists { path: PathBuf },
    /// Another writer holds the index lock.
    #[error("{path}: index is locked by another writer")]
    Locked { path: PathBuf },
    /// A bad line in an imported hash list.
    #[error("{path}:{line}: {reason}")]
    BadInput {
        path: PathBuf,
        /// 1-based line number, as editors show it.
        line: u64,
        reason: String,
    },
    /// A limit of the format was exceeded (too many lists, strings over 4 GiB...).
    #[error("index limit exceeded: {0}")]
    Limit(String),
    /// A removal names a list the index does not hold.
    #[error("{path}: no list named {list:?} in this index (its lists: {})", known_lists(.known))]
    UnknownList {
        path: PathBuf,
        list: String,
        known: Vec<String>,
    },
    /// A search option out of range (radius > 256...).
    #[error("invalid search option: {0}")]
    InvalidOption(String),
}

fn known_lists(known: &[String]) -> String {
    if known.is_empty() {
        "none".into()
    } else {
        known.join(", ")
    }
}

impl IndexError {
    /// A short, fixed name of the kind of error, for metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            IndexError::Io { .. } => "io",
            IndexError::Corrupt { .. } => "corrupt",
            IndexError::UnsupportedVersion { .. } => "unsupported_version",
            IndexError::NotAnIndex { .. } => "not_an_index",
            IndexError::AlreadyExists { .. } => "already_exists",
            IndexError::Locked { .. } => "locked",
            IndexError::BadInput { .. } => "bad_input",
            IndexError::Limit(_) => "limit",
            IndexError::UnknownList { .. } => "unknown_list",
            IndexError::InvalidOption(_) => "invalid_option",
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Self {
        IndexError::Io {
            path: path.into(),
            op,
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        IndexError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = IndexError> = std::result::Result<T, E>;
