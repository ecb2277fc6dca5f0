//! sigil-match: the one place a verdict is decided.
//!
//! Everything downstream of the signatures goes through this crate:
//! `sigil scan`, `sigil index query` and the gRPC service all ask the same
//! questions in the same order, so they cannot disagree on what a match is.
//!
//! - [`MatchPolicy`]: the defaults and limits (radius, per-list radius
//!   caps, quality threshold, robust level, dihedral, max matches), with the
//!   default values as named constants ([`DEFAULT_RADIUS`],
//!   [`DEFAULT_QUALITY_THRESHOLD`], ...).
//! - [`MatchPolicy::resolve`]: a request's options ([`MatchRequest`])
//!   checked against the policy and the index generation, giving
//!   [`ResolvedOptions`]. An unknown list or a radius over the maximum is an
//!   [`OptionsError`], never an empty result; a per-list radius cap on a
//!   list the generation does not hold is named by
//!   [`MatchPolicy::list_radius_not_held`] (a tool refuses it, the server
//!   warns).
//! - [`Lookup`]: the seam to the lists. [`sigil_index::IndexReader`]
//!   implements it; [`MemoryLookup`] is a small in-memory one for tests.
//! - [`Matcher`]: runs the lookups for a file's signatures
//!   ([`Matcher::image`], [`Matcher::file`]) or for caller-supplied hashes
//!   ([`Matcher::hashes`], or in two steps around a shared batch search:
//!   [`Matcher::pdq_queries`], [`Matcher::hash_outcomes`]), and returns an
//!   [`Outcome`]: one [`Verdict`], the matches ([`MatchedEntry`]) and the
//!   index generation that produced them.
//!
//! The rule, in one paragraph: exact digests (MD5, SHA-1, SHA-256) are
//! always looked up; the PDQ hash only when its quality reaches the
//! threshold (otherwise the verdict is `low_quality` unless an exact digest
//! matched), with the dihedral hashes or the robust query variants when
//! asked (derived variants under the threshold are skipped). A PDQ match
//! counts when its distance is at most the radius of its list (inclusive).
//! The list filter applies to every kind. Each entry is reported once per
//! kind, at its smallest distance (ties: the earlier query variant); matches
//! are sorted nearest first, then by list and id, and cut at max matches
//! (the cut is counted in [`Outcome::omitted`]).

mod lookup;
mod matcher;
mod outcome;
mod policy;

// The run-time robust helpers (query variants) come from sigil-core.
use sigil_core::robust::{QueryHash, QueryVariant, RobustLevel, RobustQueryOptions};

pub use lookup::{Lookup, MemoryLookup};
pub use matcher::{best_per_entry, HashItem, ImageQuery, Matcher, PdqQueries};
pub use outcome::{MatchedEntry, Outcome, Verdict};
pub use policy::{
    MatchPolicy, MatchRequest, OptionsError, PolicyError, ResolvedOptions, DEFAULT_MAX_MATCHES,
    DEFAULT_MAX_RADIUS, DEFAULT_QUALITY_THRESHOLD, DEFAULT_RADIUS, MAX_RADIUS,
};

#[cfg(test)]
mod tests;
