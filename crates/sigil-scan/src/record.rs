//! One output record per scanned file.
//!
//! Records carry signatures and verdicts only, never pixels or file bytes:
//! this is the point where image data stops in the scan data flow.

use sigil_core::{Dihedral, HashKind, PdqHash};

/// The outcome for one file.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// At least one list entry matched (perceptual or exact).
    Match,
    /// Hashed and looked up, nothing matched.
    NoMatch,
    /// Decoded, but the PDQ quality is under `--min-quality`, so the
    /// perceptual hash was not looked up (exact hashes still were).
    LowQuality,
    /// The file could not be read or decoded; `error` says why. Exact hashes
    /// are still looked up when the bytes could be read.
    Error,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Match => "match",
            Verdict::NoMatch => "no_match",
            Verdict::LowQuality => "low_quality",
            Verdict::Error => "error",
        }
    }
}

/// Why a file could not be fully scanned (stable snake_case names for the
/// output and the summary).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCause {
    PermissionDenied,
    /// The file disappeared between the walk and the read.
    Vanished,
    /// Size or modification time changed while it was being read.
    ChangedDuringScan,
    EmptyFile,
    /// Larger than the decode byte limit (exact hashes are still computed).
    FileTooLarge,
    SymlinkLoop,
    /// Any other I/O error (EIO, a directory that cannot be listed, ...).
    Unreadable,
    /// Not a recognised image format (for example a text file named `.jpg`).
    NotAnImage,
    UnsupportedImage,
    CorruptImage,
    /// Declared dimensions over the pixel/dimension limits (a decompression bomb).
    ImageTooLarge,
    /// The decoder panicked on hostile input (caught; the scan goes on).
    DecoderPanic,
}

impl ErrorCause {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCause::PermissionDenied => "permission_denied",
            ErrorCause::Vanished => "vanished",
            ErrorCause::ChangedDuringScan => "changed_during_scan",
            ErrorCause::EmptyFile => "empty_file",
            ErrorCause::FileTooLarge => "file_too_large",
            ErrorCause::SymlinkLoop => "symlink_loop",
            ErrorCause::Unreadable => "unreadable",
            ErrorCause::NotAnImage => "not_an_image",
            ErrorCause::UnsupportedImage => "unsupported_image",
            ErrorCause::CorruptImage => "corrupt_image",
            ErrorCause::ImageTooLarge => "image_too_large",
            ErrorCause::DecoderPanic => "decoder_panic",
        }
    }
}

/// A file-level problem: a stable cause plus a human message.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorInfo {
    pub cause: ErrorCause,
    pub message: String,
}

/// One list entry that matched.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MatchRecord {
    pub id: String,
    pub list: String,
    pub category: String,
    pub kind: HashKind,
    /// Hamming distance for PDQ, 0 for exact digests.
    pub distance: u32,
    /// Which dihedral variant of the scanned image matched (with `--dihedral`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<Dihedral>,
    /// With `--robust`: the query variant that matched at this (smallest)
    /// distance, e.g. `orig`, `dih:rot90`, `trim`, `trim+dih:flipx` (names of
    /// `sigil_core::robust::QueryVariant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_variant: Option<String>,
}

/// The record written for one file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScanRecord {
    /// The path as walked (scan root joined with the relative path). Non
    /// UTF-8 bytes are replaced by U+FFFD.
    pub path: String,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub md5: Option<String>,
    pub pdq: Option<PdqHash>,
    pub quality: Option<u32>,
    pub verdict: Verdict,
    pub matches: Vec<MatchRecord>,
    pub error: Option<ErrorInfo>,
}

impl ScanRecord {
    /// A record for a file that could not be read at all.
    pub fn failed(path: String, size: Option<u64>, cause: ErrorCause, message: String) -> Self {
        ScanRecord {
            path,
            size,
            sha256: None,
            md5: None,
            pdq: None,
            quality: None,
            verdict: Verdict::Error,
            matches: Vec::new(),
            error: Some(ErrorInfo { cause, message }),
        }
    }
}
