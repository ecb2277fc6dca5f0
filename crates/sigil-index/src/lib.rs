//! sigil-index: the signature index of sigil.
//!
//! It answers "which known entries lie within Hamming distance r of this
//! PDQ hash" and "which entries have exactly this MD5/SHA-1/SHA-256", for
//! lists of millions of entries, and takes list updates without a restart.
//! It knows nothing of images: signatures in, matches out.
//!
//! - An index is a directory: a `MANIFEST` naming immutable segment files
//!   (entries) and tombstone files (removals). Writers ([`IndexWriter`])
//!   add files under temporary names, fsync, rename, then replace the
//!   manifest atomically; a crash leaves the previous generation intact.
//! - Segments are read through `memmap2` ([`IndexReader`]); opening
//!   validates headers only, in constant time. `verify` checks every checksum.
//!   The segment parser works over any byte buffer
//!   ([`segment::Segment::from_bytes`]); only `Segment::open` maps a file.
//! - Hash lists are imported as what they say they are ([`import`]): a
//!   hash's kind is never guessed, and every line is an entry or a counted
//!   outcome. Removals name their list ([`Tombstone`]).
//! - The CPU search kernel is an opaque [`SearchKernel`] that only CPU
//!   detection can make, so safe code cannot select one the CPU lacks.
//! - PDQ search is exact: multi-index hashing (11 substrings of 23-24 bits,
//!   see [`mih`]) or a popcount flat scan, whichever is cheaper per query.
//! - [`SharedIndex`] swaps generations atomically for servers, each one
//!   known by its [`IndexIdentity`] (the manifest's checksum) and fully
//!   verified before it serves.
//!
//! The byte format is documented in `docs/index-format.md`.

pub mod builder;
mod error;
pub mod format;
pub mod fsio;
pub mod import;
pub mod kernels;
pub mod manifest;
pub mod mih;
pub mod mih_batch;
mod radix;
pub mod reader;
pub mod record;
pub mod residency;
pub mod segment;
pub mod shared;
pub mod tombstone;
pub mod writer;

pub use builder::{EntryId, EntryMeta, SegmentBuilder};
pub use error::{IndexError, Result};
pub use import::{ImportOptions, ImportStats, RemoveBy};
pub use kernels::SearchKernel;
pub use manifest::IndexIdentity;
pub use reader::{IndexReader, IndexStats, Match, SearchOptions, SearchPlan};
pub use residency::Residency;
pub use shared::{OnDisk, Reload, SharedIndex};
pub use tombstone::Tombstone;
pub use writer::{IndexWriter, Removed};
