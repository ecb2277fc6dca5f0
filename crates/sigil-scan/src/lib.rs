//! sigil-scan: batch-scan image stores against a sigil index.
//!
//! The pieces, each usable alone: [`walk`] (every regular file, narrowed by
//! include/exclude globs; symlinks with loop detection; deterministic
//! [`shard`]s; special files and files over the size limit skipped with
//! their reason), the bounded read -> sniff -> decode -> hash pipeline
//! ([`pipeline`]) handing each file's signatures to `sigil_match` for the
//! verdict, one [`record::ScanRecord`] per file (named by its exact path
//! bytes, [`path`]), the [`output`] writers (JSON Lines, CSV, the skipped
//! list), the resume [`journal`] and the end-of-scan [`summary`].
//!
//! The scan is read-only on the scanned trees: files are opened for reading
//! only, and image bytes and pixels never leave the worker that hashes them.

pub mod journal;
pub mod output;
pub mod path;
pub mod pipeline;
pub mod read;
pub mod record;
pub mod shard;
pub mod summary;
pub mod walk;

pub use output::{OutputFormat, RecordWriter, SkippedWriter};
pub use path::PathName;
pub use pipeline::{run_scan, MatchSink, Progress, ScanConfig, ScanError, Sinks};
pub use record::{
    ErrorCause, ErrorInfo, MatchRecord, Media, Note, ScanRecord, SkipReason, SkippedPath, Verdict,
};
pub use shard::Shard;
pub use sigil_match::Lookup;
pub use summary::{IndexProvenance, StageTimes, Summary};
