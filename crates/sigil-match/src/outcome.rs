//! What matching one item came to: a [`Verdict`] and the matches.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};
use sigil_core::{Dihedral, HashKind};
use sigil_index::Match;

use crate::QueryVariant;

/// The outcome of matching one item (a file, an image, a hash).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// At least one list entry matched (perceptual or exact).
    Match,
    /// Looked up, nothing matched.
    NoMatch,
    /// The PDQ quality is under the threshold, so the perceptual hash was
    /// not looked up (exact digests still were, and nothing matched).
    LowQuality,
    /// The item could not be read or decoded (exact digests, when there
    /// were any, were looked up and nothing matched).
    Error,
}

impl Verdict {
    /// Stable snake_case name (records, metrics, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Match => "match",
            Verdict::NoMatch => "no_match",
            Verdict::LowQuality => "low_quality",
            Verdict::Error => "error",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One list entry that matched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MatchedEntry {
    pub id: String,
    pub list: String,
    pub category: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub kind: HashKind,
    /// Hamming distance for PDQ, 0 for exact digests.
    pub distance: u32,
    /// Which dihedral variant of the image matched (dihedral and robust
    /// matching).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<Dihedral>,
    /// Robust matching: the query variant that reached the entry at this
    /// (smallest) distance; serialised by its name (`orig`, `dih:rot90`,
    /// `trim`, ...).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "variant_name"
    )]
    pub query_variant: Option<QueryVariant>,
}

fn variant_name<S: Serializer>(v: &Option<QueryVariant>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(&v.name()),
        None => s.serialize_none(),
    }
}

impl From<Match> for MatchedEntry {
    fn from(m: Match) -> Self {
        MatchedEntry {
            id: m.id,
            list: m.list,
            category: m.category,
            note: m.note,
            kind: m.kind,
            distance: m.distance,
            variant: m.variant,
            query_variant: None,
        }
    }
}

/// What one item came to, against one index generation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub verdict: Verdict,
    /// Nearest first, then by list and id; each entry once per kind.
    pub matches: Vec<MatchedEntry>,
    /// Matches found beyond the options' max matches, left out (the
    /// nearest are kept). A verdict counts them: `match` even if all were
    /// left out.
    pub omitted: usize,
    /// For [`Verdict::Error`]: the cause, when the matcher knows it.
    pub error: Option<String>,
    /// The index generation that produced the matches.
    pub generation: u64,
    /// Its identity (the manifest's checksum): two builds can share a
    /// generation number, never an identity.
    pub identity: sigil_index::IndexIdentity,
}
