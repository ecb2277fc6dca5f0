//! From signatures (or caller-supplied hashes) to a verdict and matches,
//! against one index generation. Pure logic: no I/O, no gRPC.

use std::collections::{BTreeMap, BTreeSet};

use sigil_core::robust::{QueryHash, RobustLevel};
use sigil_core::{FileSignatures, HashKind, PdqHash};
use sigil_eval::robust::best_per_entry;
use sigil_index::{IndexReader, Match, SearchOptions};

use crate::config::Matching;

/// The outcome of matching one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Match,
    NoMatch,
    LowQuality,
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

/// A request's options after defaults and limits were applied.
#[derive(Debug, Clone)]
pub struct ResolvedOptions {
    pub radius: u32,
    /// `None`: all lists.
    pub lists: Option<BTreeSet<String>>,
    pub dihedral: bool,
    /// Robust matching of images (see `MatchOptions.robust`).
    pub robust: RobustLevel,
    pub max_matches: usize,
}

/// Why a request's options were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error("radius {asked} is over this server's maximum of {max}")]
    RadiusTooLarge { asked: u32, max: u32 },
    #[error("unknown list {name:?} (known lists: {known})")]
    UnknownList { name: String, known: String },
}

/// Applies the server's defaults and limits to a request's options.
pub fn resolve_options(
    policy: &Matching,
    radius: Option<u32>,
    lists: &[String],
    dihedral: Option<bool>,
    robust: Option<RobustLevel>,
    max_matches: Option<u32>,
    known_lists: &BTreeSet<String>,
) -> Result<ResolvedOptions, OptionsError> {
    let radius = radius.unwrap_or(policy.radius);
    if radius > policy.max_radius {
        return Err(OptionsError::RadiusTooLarge {
            asked: radius,
            max: policy.max_radius,
        });
    }
    let lists = if lists.is_empty() {
        None
    } else {
        let mut set = BTreeSet::new();
        for name in lists {
            if !known_lists.contains(name) {
                return Err(OptionsError::UnknownList {
                    name: name.clone(),
                    known: known_lists
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            set.insert(name.clone());
        }
        Some(set)
    };
    let max_matches = match max_matches {
        Some(0) | None => policy.max_matches,
        Some(n) => (n as usize).min(policy.max_matches),
    };
    Ok(ResolvedOptions {
        radius,
        lists,
        dihedral: dihedral.unwrap_or(policy.dihedral),
        robust: robust.unwrap_or(policy.robust),
        max_matches,
    })
}

/// What one item came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub verdict: Verdict,
    pub matches: Vec<Match>,
    /// For `Verdict::Error`: the cause.
    pub error: Option<String>,
    /// Robust matching: the query variant that matched each PDQ entry,
    /// keyed by (list, id).
    pub query_variants: BTreeMap<(String, String), String>,
}

impl Outcome {
    /// The query variant that matched `m` (robust matching of PDQ only).
    pub fn query_variant(&self, m: &Match) -> Option<&str> {
        if m.kind != HashKind::Pdq {
            return None;
        }
        self.query_variants
            .get(&(m.list.clone(), m.id.clone()))
            .map(String::as_str)
    }
}

/// The PDQ items of a batch that [`Matcher::hashes`] searches in the index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PdqQueries {
    /// Positions of the searched items in the batch, ascending.
    pub positions: Vec<usize>,
    /// `hashes[i]` is the hash of item `positions[i]`.
    pub hashes: Vec<PdqHash>,
}

/// Runs lookups against one generation with one request's options.
pub struct Matcher<'a> {
    pub reader: &'a IndexReader,
    pub policy: &'a Matching,
    pub options: &'a ResolvedOptions,
}

impl Matcher<'_> {
    /// The index search options for this request's PDQ lookups.
    pub fn search_options(&self) -> SearchOptions {
        // The config's per-list radii are caps: a caller asking for a
        // smaller radius gets it on every list.
        let list_radius = self
            .policy
            .list_radius
            .iter()
            .map(|(l, &cap)| (l.clone(), cap.min(self.options.radius)))
            .collect();
        SearchOptions {
            radius: self.options.radius,
            lists: self
                .options
                .lists
                .as_ref()
                .map(|s| s.iter().cloned().collect()),
            list_radius,
            ..SearchOptions::default()
        }
    }

    fn keep(&self, m: &Match) -> bool {
        self.options
            .lists
            .as_ref()
            .is_none_or(|lists| lists.contains(&m.list))
    }

    /// Exact-digest lookup.
    pub fn exact(&self, kind: HashKind, digest: &[u8]) -> Vec<Match> {
        let mut v = self.reader.lookup_exact(kind, digest);
        v.retain(|m| self.keep(m));
        v
    }

    /// PDQ lookup of one hash, or of the 8 dihedral variants of an image
    /// (each entry reported once, at its smallest distance, with the variant).
    pub fn pdq(&self, hash: &PdqHash, variants: Option<&[PdqHash; 8]>) -> Vec<Match> {
        let opts = self.search_options();
        let mut v = match variants {
            None => self.reader.search_pdq(hash, &opts),
            Some(hashes) => self.reader.search_pdq_dihedral(hashes, &opts),
        };
        v.retain(|m| self.keep(m));
        v
    }

    fn finish(&self, mut matches: Vec<Match>, fallback: Verdict, error: Option<String>) -> Outcome {
        matches.sort_by(|a, b| (a.distance, &a.list, &a.id).cmp(&(b.distance, &b.list, &b.id)));
        matches.dedup_by(|a, b| a.list == b.list && a.id == b.id && a.kind == b.kind);
        matches.truncate(self.options.max_matches);
        if matches.is_empty() {
            Outcome {
                verdict: fallback,
                matches,
                error,
                query_variants: BTreeMap::new(),
            }
        } else {
            Outcome {
                verdict: Verdict::Match,
                matches,
                error: None,
                query_variants: BTreeMap::new(),
            }
        }
    }

    /// Robust lookup: every query variant (derived ones under the quality
    /// threshold skipped), each entry kept once at its smallest distance
    /// (ties: the earlier variant), with the name of the variant.
    fn pdq_robust(
        &self,
        variants: &[QueryHash],
    ) -> (Vec<Match>, BTreeMap<(String, String), String>) {
        let opts = self.search_options();
        let best = best_per_entry(
            variants,
            |i, v| {
                if i > 0 && v.quality < self.policy.quality_threshold {
                    return Vec::new();
                }
                let mut found = self.reader.search_pdq(&v.hash, &opts);
                found.retain(|m| self.keep(m));
                found
            },
            |m| (m.list.clone(), m.id.clone()),
            |m| m.distance,
        );
        let mut names = BTreeMap::new();
        let mut matches = Vec::with_capacity(best.len());
        for (mut m, v) in best {
            m.variant = v.variant.dihedral();
            names.insert((m.list.clone(), m.id.clone()), v.variant.name());
            matches.push(m);
        }
        (matches, names)
    }

    /// Matches a hashed file: exact digests always, PDQ when the image
    /// decoded with enough quality. With robust options and `robust`
    /// variants (from `sigil_core::robust::robust_query_hashes`), PDQ is
    /// looked up for every variant.
    pub fn signatures(&self, sigs: &FileSignatures, robust: &[QueryHash]) -> Outcome {
        let mut matches = Vec::new();
        for kind in [HashKind::Md5, HashKind::Sha1, HashKind::Sha256] {
            if let Some(d) = sigs.exact.get(kind) {
                matches.extend(self.exact(kind, d));
            }
        }
        match &sigs.image {
            Err(e) => self.finish(
                matches,
                Verdict::Error,
                Some(format!("image could not be decoded: {e}")),
            ),
            Ok(img) if img.quality < self.policy.quality_threshold => {
                self.finish(matches, Verdict::LowQuality, None)
            }
            Ok(_) if self.options.robust.is_on() && !robust.is_empty() => {
                let (found, names) = self.pdq_robust(robust);
                matches.extend(found);
                let mut o = self.finish(matches, Verdict::NoMatch, None);
                o.query_variants = names;
                o
            }
            Ok(img) => {
                let variants = if self.options.dihedral {
                    img.dihedral.as_ref()
                } else {
                    None
                };
                matches.extend(self.pdq(&img.pdq, variants));
                self.finish(matches, Verdict::NoMatch, None)
            }
        }
    }

    /// [`Matcher::hash`] of every item, the PDQ hashes searched as one
    /// batch ([`IndexReader::search_pdq_many`]: at 10M entries a hash in a
    /// batch of 1,000 costs ~0.6 of a lone search): [`Matcher::pdq_queries`],
    /// the search, then [`Matcher::hash_outcomes`].
    pub fn hashes(&self, items: &[(HashKind, &[u8], Option<u32>)]) -> Vec<Outcome> {
        let queries = self.pdq_queries(items);
        let found = self
            .reader
            .search_pdq_many(&queries.hashes, &self.search_options());
        self.hash_outcomes(items, &queries, found)
    }

    /// The first step of [`Matcher::hashes`]: the items that need a PDQ
    /// index search (PDQ hashes not under the quality threshold), to be
    /// searched with [`Matcher::search_options`] by whoever runs the search
    /// (the server's lookup queue searches several requests' queries
    /// together). Every item is expected to have its kind's byte length.
    pub fn pdq_queries(&self, items: &[(HashKind, &[u8], Option<u32>)]) -> PdqQueries {
        let positions: Vec<usize> = (0..items.len())
            .filter(|&i| {
                let (kind, _, quality) = items[i];
                kind == HashKind::Pdq && quality.is_none_or(|q| q >= self.policy.quality_threshold)
            })
            .collect();
        let hashes = positions
            .iter()
            .map(|&i| {
                let mut h = [0u8; 32];
                h.copy_from_slice(items[i].1);
                PdqHash(h)
            })
            .collect();
        PdqQueries { positions, hashes }
    }

    /// The second step of [`Matcher::hashes`]: one outcome per item, in
    /// order. `found[i]` holds the index's matches for `queries.hashes[i]`
    /// (as [`IndexReader::search_pdq`] returns them); the other items (exact
    /// digests, low-quality PDQ) are looked up or judged here.
    pub fn hash_outcomes(
        &self,
        items: &[(HashKind, &[u8], Option<u32>)],
        queries: &PdqQueries,
        found: Vec<Vec<Match>>,
    ) -> Vec<Outcome> {
        let mut found = found.into_iter();
        let mut searched = queries.positions.iter().copied().peekable();
        items
            .iter()
            .enumerate()
            .map(|(i, &(kind, digest, quality))| {
                if searched.next_if_eq(&i).is_none() {
                    return self.hash(kind, digest, quality);
                }
                let mut m = found.next().unwrap_or_default();
                m.retain(|m| self.keep(m));
                self.finish(m, Verdict::NoMatch, None)
            })
            .collect()
    }

    /// Matches one caller-supplied hash.
    pub fn hash(&self, kind: HashKind, digest: &[u8], quality: Option<u32>) -> Outcome {
        match kind {
            HashKind::Pdq => {
                if quality.is_some_and(|q| q < self.policy.quality_threshold) {
                    return self.finish(Vec::new(), Verdict::LowQuality, None);
                }
                let mut h = [0u8; 32];
                h.copy_from_slice(digest);
                let m = self.pdq(&PdqHash(h), None);
                self.finish(m, Verdict::NoMatch, None)
            }
            _ => {
                let m = self.exact(kind, digest);
                self.finish(m, Verdict::NoMatch, None)
            }
        }
    }
}
