//! From signatures (or caller-supplied hashes) to an [`Outcome`], against
//! one [`Lookup`] with one request's [`ResolvedOptions`]. Pure logic: the
//! only I/O is the lookup's.

use std::collections::BTreeMap;

use sigil_core::{ExactDigests, FileSignatures, HashKind, PdqHash};
use sigil_index::{IndexIdentity, Match, SearchOptions};

use crate::{Lookup, MatchedEntry, Outcome, QueryHash, ResolvedOptions, Verdict};

/// The perceptual side of one image, as the caller computed it.
#[derive(Clone, Copy, Debug)]
pub enum ImageQuery<'a> {
    /// The bytes were not decoded (or not decodable): only the exact
    /// digests are looked up, and no match makes the verdict `error`.
    Undecoded,
    /// The image's PDQ hash and quality, with its 8 dihedral hashes
    /// (`Dihedral::ALL` order, `[0]` = `hash`) when they were computed;
    /// they are searched when the options ask for dihedral matching.
    Pdq {
        hash: PdqHash,
        quality: u32,
        dihedral: Option<&'a [PdqHash; 8]>,
    },
    /// Robust matching: the image's query variants, the image as given
    /// first (`robust_query_hashes` with
    /// [`ResolvedOptions::robust_query_options`]).
    Robust(&'a [QueryHash]),
}

/// One caller-supplied hash (`MatchHashes`, `sigil index query`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashItem<'a> {
    pub kind: HashKind,
    /// Raw bytes; an item whose length is not its kind's is an error
    /// outcome.
    pub digest: &'a [u8],
    /// The PDQ quality, when the caller knows it (under the threshold: the
    /// hash is not looked up).
    pub quality: Option<u32>,
}

/// The PDQ items of a batch that need an index search (see
/// [`Matcher::pdq_queries`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PdqQueries {
    /// Positions of the searched items in the batch, ascending.
    pub positions: Vec<usize>,
    /// `hashes[i]` is the hash of item `positions[i]`.
    pub hashes: Vec<PdqHash>,
}

/// Runs the lookups of one request against one generation.
pub struct Matcher<'a, L: Lookup + ?Sized> {
    lookup: &'a L,
    options: &'a ResolvedOptions,
    generation: u64,
    identity: IndexIdentity,
}

impl<L: Lookup + ?Sized> Clone for Matcher<'_, L> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<L: Lookup + ?Sized> Copy for Matcher<'_, L> {}

impl<'a, L: Lookup + ?Sized> Matcher<'a, L> {
    /// A matcher over `lookup` with `options` (resolved against `lookup`'s
    /// generation by [`crate::MatchPolicy::resolve`]).
    pub fn new(lookup: &'a L, options: &'a ResolvedOptions) -> Self {
        Matcher {
            lookup,
            options,
            generation: lookup.generation(),
            identity: lookup.identity(),
        }
    }

    pub fn lookup(&self) -> &'a L {
        self.lookup
    }

    pub fn options(&self) -> &'a ResolvedOptions {
        self.options
    }

    /// The generation every outcome of this matcher reports.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// What the hashes of [`Matcher::pdq_queries`] are searched with.
    pub fn search_options(&self) -> &'a SearchOptions {
        self.options.hash_search_options()
    }

    fn outcome_error(&self, error: String) -> Outcome {
        Outcome {
            verdict: Verdict::Error,
            matches: Vec::new(),
            omitted: 0,
            error: Some(error),
            generation: self.generation,
            identity: self.identity,
        }
    }

    /// Keeps what the options admit and converts it.
    fn admitted(&self, found: Vec<Match>, out: &mut Vec<MatchedEntry>) {
        out.extend(
            found
                .into_iter()
                .filter(|m| self.options.admits(m))
                .map(MatchedEntry::from),
        );
    }

    fn exact_into(&self, kind: HashKind, digest: &[u8], out: &mut Vec<MatchedEntry>) {
        self.admitted(self.lookup.exact(kind, digest), out);
    }

    fn digests_into(&self, exact: &ExactDigests, out: &mut Vec<MatchedEntry>) {
        for kind in [HashKind::Md5, HashKind::Sha1, HashKind::Sha256] {
            if let Some(d) = exact.get(kind) {
                self.exact_into(kind, d, out);
            }
        }
    }

    /// Matches content that is not an image (a video, an archive, a text
    /// file): its exact digests are all there is to look up, so no match is
    /// `no_match`, not an error.
    pub fn not_an_image(&self, exact: &ExactDigests) -> Outcome {
        let mut matches = Vec::new();
        self.digests_into(exact, &mut matches);
        self.finish(matches, Verdict::NoMatch, None)
    }

    /// Matches an image (or a file that did not decode): its exact digests
    /// always, its perceptual hash when the quality reaches the threshold.
    pub fn image(&self, exact: &ExactDigests, image: ImageQuery<'_>) -> Outcome {
        let mut matches = Vec::new();
        self.digests_into(exact, &mut matches);
        let threshold = self.options.quality_threshold();
        let search = self.options.search_options();
        match image {
            ImageQuery::Undecoded => self.finish(matches, Verdict::Error, None),
            ImageQuery::Pdq { quality, .. } if quality < threshold => {
                self.finish(matches, Verdict::LowQuality, None)
            }
            ImageQuery::Pdq { hash, dihedral, .. } => {
                let found = match dihedral {
                    Some(variants) if self.options.dihedral() => {
                        self.lookup.pdq_dihedral(variants, search)
                    }
                    _ => self.lookup.pdq(&hash, search),
                };
                self.admitted(found, &mut matches);
                self.finish(matches, Verdict::NoMatch, None)
            }
            ImageQuery::Robust([]) => self.outcome_error(
                "robust matching was given no query variants (not even the image as given)"
                    .to_string(),
            ),
            ImageQuery::Robust(variants) if variants[0].quality < threshold => {
                self.finish(matches, Verdict::LowQuality, None)
            }
            ImageQuery::Robust(variants) => {
                self.robust_into(variants, search, &mut matches);
                self.finish(matches, Verdict::NoMatch, None)
            }
        }
    }

    /// Robust lookup: every query variant (derived ones under the quality
    /// threshold skipped), each entry kept once at its smallest distance
    /// (ties: the earlier variant), tagged with the variant.
    fn robust_into(
        &self,
        variants: &[QueryHash],
        search: &SearchOptions,
        out: &mut Vec<MatchedEntry>,
    ) {
        let threshold = self.options.quality_threshold();
        let best = best_per_entry(
            variants,
            |i, v| {
                if i > 0 && v.quality < threshold {
                    return Vec::new();
                }
                let mut found = self.lookup.pdq(&v.hash, search);
                found.retain(|m| self.options.admits(m));
                found
            },
            |m| (m.list.clone(), m.id.clone()),
            |m| m.distance,
        );
        out.extend(best.into_iter().map(|(m, v)| MatchedEntry {
            variant: v.variant.dihedral(),
            query_variant: Some(v.variant),
            ..MatchedEntry::from(m)
        }));
    }

    /// [`Matcher::image`] of what a `Signer` computed: `robust` holds the
    /// robust query variants (used when the options ask for robust matching
    /// and there are any); an image that did not decode is an error naming
    /// the cause unless an exact digest matched.
    pub fn file(&self, sigs: &FileSignatures, robust: &[QueryHash]) -> Outcome {
        match &sigs.image {
            Err(e) => {
                let mut o = self.image(&sigs.exact, ImageQuery::Undecoded);
                if o.verdict == Verdict::Error {
                    o.error = Some(format!("image could not be decoded: {e}"));
                }
                o
            }
            Ok(_) if self.options.robust().is_on() && !robust.is_empty() => {
                self.image(&sigs.exact, ImageQuery::Robust(robust))
            }
            Ok(img) => self.image(
                &sigs.exact,
                ImageQuery::Pdq {
                    hash: img.pdq,
                    quality: img.quality,
                    dihedral: img.dihedral.as_ref(),
                },
            ),
        }
    }

    /// Matches one caller-supplied hash.
    pub fn hash(&self, item: HashItem<'_>) -> Outcome {
        if let Err(e) = check_length(&item) {
            return self.outcome_error(e);
        }
        let mut matches = Vec::new();
        if item.kind != HashKind::Pdq {
            self.exact_into(item.kind, item.digest, &mut matches);
            return self.finish(matches, Verdict::NoMatch, None);
        }
        if item
            .quality
            .is_some_and(|q| q < self.options.quality_threshold())
        {
            return self.finish(matches, Verdict::LowQuality, None);
        }
        let found = self.lookup.pdq(&pdq_of(item.digest), self.search_options());
        self.admitted(found, &mut matches);
        self.finish(matches, Verdict::NoMatch, None)
    }

    /// [`Matcher::hash`] of every item, the PDQ hashes searched as one
    /// batch ([`Lookup::pdq_many`]): [`Matcher::pdq_queries`], the search,
    /// then [`Matcher::hash_outcomes`].
    pub fn hashes(&self, items: &[HashItem<'_>]) -> Vec<Outcome> {
        let queries = self.pdq_queries(items);
        let found = self.lookup.pdq_many(&queries.hashes, self.search_options());
        self.hash_outcomes(items, &queries, found)
    }

    /// The first step of [`Matcher::hashes`]: the items that need a PDQ
    /// index search (PDQ hashes of the right length, not under the quality
    /// threshold), to be searched with [`Matcher::search_options`] by
    /// whoever runs the search (a queue may search several requests'
    /// queries together, as long as their search options are equal).
    pub fn pdq_queries(&self, items: &[HashItem<'_>]) -> PdqQueries {
        let threshold = self.options.quality_threshold();
        let positions: Vec<usize> = items
            .iter()
            .enumerate()
            .filter(|(_, it)| {
                it.kind == HashKind::Pdq
                    && check_length(it).is_ok()
                    && it.quality.is_none_or(|q| q >= threshold)
            })
            .map(|(i, _)| i)
            .collect();
        let hashes = positions.iter().map(|&i| pdq_of(items[i].digest)).collect();
        PdqQueries { positions, hashes }
    }

    /// The second step of [`Matcher::hashes`]: one outcome per item, in
    /// order. `found[i]` holds the lookup's matches for `queries.hashes[i]`
    /// (as [`Lookup::pdq`] returns them); the other items (exact digests,
    /// low-quality PDQ, bad lengths) are looked up or judged here. A
    /// searched item without its answer in `found` is an error outcome,
    /// never an empty match.
    pub fn hash_outcomes(
        &self,
        items: &[HashItem<'_>],
        queries: &PdqQueries,
        found: Vec<Vec<Match>>,
    ) -> Vec<Outcome> {
        let mut found = found.into_iter();
        let mut searched = queries.positions.iter().copied().peekable();
        items
            .iter()
            .enumerate()
            .map(|(i, &item)| {
                if searched.next_if_eq(&i).is_none() {
                    return self.hash(item);
                }
                let Some(f) = found.next() else {
                    return self
                        .outcome_error(format!("the PDQ search returned no answer for item {i}"));
                };
                let mut matches = Vec::new();
                self.admitted(f, &mut matches);
                self.finish(matches, Verdict::NoMatch, None)
            })
            .collect()
    }

    /// The verdict, and the matches each once, sorted and cut.
    fn finish(
        &self,
        mut matches: Vec<MatchedEntry>,
        fallback: Verdict,
        error: Option<String>,
    ) -> Outcome {
        nearest_first(&mut matches);
        let max = self.options.max_matches();
        let omitted = matches.len().saturating_sub(max);
        matches.truncate(max);
        let matched = !matches.is_empty() || omitted > 0;
        Outcome {
            verdict: if matched { Verdict::Match } else { fallback },
            matches,
            omitted,
            error: if matched { None } else { error },
            generation: self.generation,
            identity: self.identity,
        }
    }
}

fn check_length(item: &HashItem<'_>) -> Result<(), String> {
    let want = item.kind.byte_len();
    if item.digest.len() == want {
        Ok(())
    } else {
        Err(format!(
            "a {} hash is {want} bytes, this one is {}",
            item.kind,
            item.digest.len()
        ))
    }
}

/// The PDQ hash of a digest already checked to be 32 bytes.
fn pdq_of(digest: &[u8]) -> PdqHash {
    let mut h = [0u8; 32];
    h.copy_from_slice(digest);
    PdqHash(h)
}

/// Each entry once per kind, at its smallest distance (ties: the earlier
/// in `matches`), then nearest first, by list and id; equal ones keep their
/// order (exact kinds before PDQ, as looked up).
fn nearest_first(matches: &mut Vec<MatchedEntry>) {
    if matches.len() < 2 {
        return;
    }
    let mut order: Vec<usize> = (0..matches.len()).collect();
    let key = |i: usize| {
        let m = &matches[i];
        (m.list.as_str(), m.id.as_str(), m.kind, m.distance, i)
    };
    order.sort_unstable_by(|&a, &b| key(a).cmp(&key(b)));
    let mut keep = vec![false; matches.len()];
    let mut prev: Option<usize> = None;
    for &i in &order {
        let same = prev.is_some_and(|p| {
            let (a, b) = (&matches[p], &matches[i]);
            a.list == b.list && a.id == b.id && a.kind == b.kind
        });
        if !same {
            keep[i] = true;
        }
        prev = Some(i);
    }
    let mut i = 0;
    matches.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    matches.sort_by(|a, b| (a.distance, &a.list, &a.id).cmp(&(b.distance, &b.list, &b.id)));
}

/// Searches every query variant and keeps each entry once, at its smallest
/// distance (ties: the earlier variant), with the variant that reached it.
/// `search` returns the matches of one variant (empty to skip it); `key`
/// names the entry (e.g. list and id). Results come in key order.
///
/// One entry reached by several variants is one match: reporting it per
/// variant would inflate match counts and reports, and the nearest variant
/// is the one a reviewer wants to see.
pub fn best_per_entry<'v, M, K: Ord>(
    variants: &'v [QueryHash],
    mut search: impl FnMut(usize, &QueryHash) -> Vec<M>,
    key: impl Fn(&M) -> K,
    distance: impl Fn(&M) -> u32,
) -> Vec<(M, &'v QueryHash)> {
    let mut best: BTreeMap<K, (M, &'v QueryHash)> = BTreeMap::new();
    for (i, v) in variants.iter().enumerate() {
        for m in search(i, v) {
            let k = key(&m);
            match best.get(&k) {
                Some((b, _)) if distance(b) <= distance(&m) => {}
                _ => {
                    best.insert(k, (m, v));
                }
            }
        }
    }
    best.into_values().collect()
}
