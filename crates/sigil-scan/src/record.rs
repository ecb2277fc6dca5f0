//! One output record per scanned file.
//!
//! Records carry signatures and verdicts only, never pixels or file bytes:
//! this is the point where image data stops in the scan data flow.

use sigil_core::decode::MediaKind;
use sigil_core::{Dihedral, HashKind, PdqHash};
use sigil_match::MatchedEntry;

use crate::path::PathName;

/// The outcome for one file: `sigil_match`'s verdict, the one the
/// service gives too (`match`, `no_match`, `low_quality`, `error`).
pub use sigil_match::Verdict;

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
    /// An image larger than the decode byte limit (its exact digests are
    /// still computed and looked up), or a file that grew over the limit
    /// for reading (`--max-file-bytes`) between the walk and the read.
    FileTooLarge,
    SymlinkLoop,
    /// Any other I/O error (EIO, a directory that cannot be listed, ...).
    Unreadable,
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
    /// `QueryVariant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_variant: Option<String>,
}

impl From<MatchedEntry> for MatchRecord {
    fn from(m: MatchedEntry) -> Self {
        MatchRecord {
            id: m.id,
            list: m.list,
            category: m.category,
            kind: m.kind,
            distance: m.distance,
            variant: m.variant,
            query_variant: m.query_variant.map(|v| v.name()),
        }
    }
}

/// What a file's content is, from its first bytes (never from its name).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Media {
    /// An image format sigil decodes: it gets a PDQ hash.
    Image,
    /// A video container (exact digests only, until video matching).
    Video,
    /// Anything else (archives, documents, image formats sigil does not
    /// decode): exact digests only.
    Other,
}

impl Media {
    pub fn as_str(self) -> &'static str {
        match self {
            Media::Image => "image",
            Media::Video => "video",
            Media::Other => "other",
        }
    }

    /// The media kind and its format name (`jpeg`, `mp4`, ...) of what
    /// [`sniff`] recognised.
    pub fn of(kind: MediaKind) -> (Media, Option<String>) {
        match kind {
            MediaKind::Image(f) => (Media::Image, Some(f.as_str().to_string())),
            MediaKind::Video(c) => (Media::Video, Some(c.as_str().to_string())),
            MediaKind::Other => (Media::Other, None),
        }
    }
}

/// A named outcome a verdict does not say by itself.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Note {
    /// The content is not an image (see `media`): only its exact digests
    /// were looked up, and the verdict is `match` or `no_match` on them.
    NotAnImage,
}

impl Note {
    pub fn as_str(self) -> &'static str {
        match self {
            Note::NotAnImage => "not_an_image",
        }
    }
}

/// The record written for one file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScanRecord {
    /// The path as walked (scan root joined with the relative path), on one
    /// line: the path itself, or its escaped form when it is not valid
    /// UTF-8 or holds control characters (see [`crate::path`]).
    pub path: String,
    /// The path's exact bytes (base64), present exactly when `path` is
    /// escaped.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::path::base64_opt"
    )]
    pub path_bytes: Option<Vec<u8>>,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub md5: Option<String>,
    /// What the content is (`None` when the file could not be read).
    #[serde(default)]
    pub media: Option<Media>,
    /// The image format or video container (`jpeg`, `png`, `mp4`, ...).
    #[serde(default)]
    pub format: Option<String>,
    pub pdq: Option<PdqHash>,
    pub quality: Option<u32>,
    pub verdict: Verdict,
    pub matches: Vec<MatchRecord>,
    pub error: Option<ErrorInfo>,
    /// `not_an_image` for content that is not an image.
    #[serde(default)]
    pub note: Option<Note>,
}

impl ScanRecord {
    /// A record for `name` with nothing known yet (verdict `no_match`).
    pub fn new(name: PathName) -> Self {
        ScanRecord {
            path: name.text,
            path_bytes: name.bytes,
            size: None,
            sha256: None,
            md5: None,
            media: None,
            format: None,
            pdq: None,
            quality: None,
            verdict: Verdict::NoMatch,
            matches: Vec::new(),
            error: None,
            note: None,
        }
    }

    /// A record for a file that could not be read at all.
    pub fn failed(name: PathName, size: Option<u64>, cause: ErrorCause, message: String) -> Self {
        ScanRecord {
            size,
            verdict: Verdict::Error,
            error: Some(ErrorInfo { cause, message }),
            ..ScanRecord::new(name)
        }
    }

    /// Sets `media` and `format` from what the content was recognised as.
    pub fn set_media(&mut self, kind: MediaKind) {
        let (media, format) = Media::of(kind);
        self.media = Some(media);
        self.format = format;
    }

    /// The file's identity: its path's exact bytes.
    pub fn identity(&self) -> &[u8] {
        crate::path::identity(&self.path, self.path_bytes.as_deref())
    }
}

/// Why a path the scan reached was not read (stable snake_case names for
/// `--skipped`, the summary and its JSON).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Left out by `--include`/`--exclude` (a directory excluded is not
    /// descended into; it is listed once).
    Excluded,
    /// In another shard of `--shard I/N` (counted, not listed: the shard
    /// that owns the file scans it).
    OtherShard,
    /// A symbolic link, not followed without `--follow-symlinks`.
    SymlinkNotFollowed,
    /// A FIFO, socket or device: never opened (a FIFO would block a read
    /// forever, a device may never end).
    SpecialFile,
    /// A regular file over `--max-file-bytes`, refused from its metadata
    /// without reading a byte.
    TooLarge,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Excluded => "excluded",
            SkipReason::OtherShard => "other_shard",
            SkipReason::SymlinkNotFollowed => "symlink_not_followed",
            SkipReason::SpecialFile => "special_file",
            SkipReason::TooLarge => "too_large",
        }
    }

    /// Whether skipped paths of this reason are listed (`--skipped`, the
    /// summary); other shards' files are only counted.
    pub fn listed(self) -> bool {
        self != SkipReason::OtherShard
    }
}

/// A path not scanned, with the reason (one line of `--skipped`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SkippedPath {
    /// As [`ScanRecord::path`].
    pub path: String,
    /// As [`ScanRecord::path_bytes`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::path::base64_opt"
    )]
    pub path_bytes: Option<Vec<u8>>,
    pub reason: SkipReason,
    /// What exactly (`fifo`, `12884901888 bytes, over --max-file-bytes ...`).
    pub detail: String,
}

impl SkippedPath {
    pub fn new(name: PathName, reason: SkipReason, detail: String) -> Self {
        SkippedPath {
            path: name.text,
            path_bytes: name.bytes,
            reason,
            detail,
        }
    }
}
