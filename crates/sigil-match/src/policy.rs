//! The policy (defaults and limits), a request's options, and their
//! resolution against one index generation.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use sigil_core::HashKind;
use sigil_index::{Match, SearchOptions};

use crate::{Lookup, RobustLevel, RobustQueryOptions};

/// Default PDQ match radius (inclusive Hamming distance): the threshold
/// Meta recommends for PDQ, and what the shared lists are tuned for.
pub const DEFAULT_RADIUS: u32 = 31;

/// Default largest radius a service caller may ask for.
pub const DEFAULT_MAX_RADIUS: u32 = 64;

/// The largest radius there is: a PDQ hash has 256 bits.
pub const MAX_RADIUS: u32 = sigil_index::reader::MAX_RADIUS;

/// Default PDQ quality under which a hash is not matched (verdict
/// `low_quality`): Meta's reference treats hashes under 50 as unreliable
/// (flat or tiny images).
pub const DEFAULT_QUALITY_THRESHOLD: u32 = 50;

/// Default number of matches a service result carries at most.
pub const DEFAULT_MAX_MATCHES: usize = 100;

/// The matching defaults and limits: the server's `[matching]` section, and
/// what `sigil scan` and `sigil index query` build from their flags.
///
/// A request can narrow these per call ([`MatchRequest`]); the result is
/// [`ResolvedOptions`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatchPolicy {
    /// PDQ radius when the request does not give one.
    pub radius: u32,
    /// Largest radius a request may ask for.
    pub max_radius: u32,
    /// PDQ quality under which a hash is not matched (`low_quality`); also
    /// the quality a derived robust query variant needs to be searched.
    pub quality_threshold: u32,
    /// Match the dihedral variants unless the request says otherwise.
    pub dihedral: bool,
    /// Robust matching of images unless the request says otherwise.
    pub robust: RobustLevel,
    /// Per-list radius caps: a list's PDQ matches never exceed its cap, and
    /// a request asking for a smaller radius gets that one on every list.
    pub list_radius: BTreeMap<String, u32>,
    /// Most matches in one outcome (the nearest are kept; the rest are
    /// counted in [`crate::Outcome::omitted`]).
    pub max_matches: usize,
}

impl Default for MatchPolicy {
    /// The service's defaults.
    fn default() -> Self {
        MatchPolicy {
            radius: DEFAULT_RADIUS,
            max_radius: DEFAULT_MAX_RADIUS,
            quality_threshold: DEFAULT_QUALITY_THRESHOLD,
            dihedral: false,
            robust: RobustLevel::Off,
            list_radius: BTreeMap::new(),
            max_matches: DEFAULT_MAX_MATCHES,
        }
    }
}

/// Why a [`MatchPolicy`] is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{setting} is {value}, over {MAX_RADIUS} (a PDQ hash has 256 bits)")]
    RadiusOutOfRange { setting: String, value: u32 },
    #[error("radius {radius} is over max_radius {max_radius}: every request would be refused")]
    RadiusOverMaximum { radius: u32, max_radius: u32 },
    #[error("quality_threshold is {0}, over 100 (PDQ quality is 0 to 100)")]
    QualityOutOfRange(u32),
    #[error("max_matches is 0: no match could ever be reported")]
    NoMatches,
}

impl MatchPolicy {
    /// The policy of a tool whose operator sets every option (`sigil scan`,
    /// `sigil index query`): the defaults, any radius up to [`MAX_RADIUS`],
    /// and every match kept (a scan record is the evidence; it is not cut).
    pub fn unrestricted() -> Self {
        MatchPolicy {
            max_radius: MAX_RADIUS,
            max_matches: usize::MAX,
            ..MatchPolicy::default()
        }
    }

    /// Checks the policy itself (a configuration file's values).
    pub fn validate(&self) -> Result<(), PolicyError> {
        let radii = [("radius", self.radius), ("max_radius", self.max_radius)];
        for (setting, value) in radii {
            if value > MAX_RADIUS {
                return Err(PolicyError::RadiusOutOfRange {
                    setting: setting.to_string(),
                    value,
                });
            }
        }
        for (list, &value) in &self.list_radius {
            if value > MAX_RADIUS {
                return Err(PolicyError::RadiusOutOfRange {
                    setting: format!("list_radius.{list}"),
                    value,
                });
            }
        }
        if self.radius > self.max_radius {
            return Err(PolicyError::RadiusOverMaximum {
                radius: self.radius,
                max_radius: self.max_radius,
            });
        }
        if self.quality_threshold > 100 {
            return Err(PolicyError::QualityOutOfRange(self.quality_threshold));
        }
        if self.max_matches == 0 {
            return Err(PolicyError::NoMatches);
        }
        Ok(())
    }

    /// The lists named in `list_radius` that the generation `lookup`
    /// answers from does not hold, sorted. A cap on such a list does
    /// nothing until a generation holds it: a tool given it by its operator
    /// refuses it (a typo would otherwise go unnoticed); a server warns
    /// (a list may arrive with a later generation).
    pub fn list_radius_not_held<L: Lookup + ?Sized>(&self, lookup: &L) -> Vec<String> {
        let known = lookup.lists();
        self.list_radius
            .keys()
            .filter(|l| !known.contains(l))
            .cloned()
            .collect()
    }

    /// Applies the policy's defaults and limits to a request and checks it
    /// against the generation `lookup` answers from: a list the generation
    /// does not hold is an error naming the lists it does (searching it
    /// would find nothing, silently).
    pub fn resolve<L: Lookup + ?Sized>(
        &self,
        request: &MatchRequest,
        lookup: &L,
    ) -> Result<ResolvedOptions, OptionsError> {
        let radius = request.radius.unwrap_or(self.radius);
        let max = self.max_radius.min(MAX_RADIUS);
        if radius > max {
            return Err(OptionsError::RadiusTooLarge { asked: radius, max });
        }
        let lists = if request.lists.is_empty() {
            None
        } else {
            let known = lookup.lists();
            if let Some(name) = request.lists.iter().find(|l| !known.contains(l)) {
                return Err(OptionsError::UnknownList {
                    name: name.clone(),
                    known,
                });
            }
            Some(request.lists.iter().cloned().collect())
        };
        let max_matches = match request.max_matches {
            Some(0) | None => self.max_matches,
            Some(n) => n.min(self.max_matches),
        };
        Ok(ResolvedOptions::new(
            self,
            radius,
            lists,
            request.dihedral.unwrap_or(self.dihedral),
            request.robust.unwrap_or(self.robust),
            max_matches,
        ))
    }
}

/// What one request asks for (a gRPC call's `MatchOptions`, a scan's or an
/// `index query`'s flags). `None` and empty fields take the policy's value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchRequest {
    pub radius: Option<u32>,
    /// Only these lists (empty: all). Applies to every hash kind.
    pub lists: Vec<String>,
    pub dihedral: Option<bool>,
    pub robust: Option<RobustLevel>,
    /// At most this many matches (`None` or 0: the policy's maximum; more
    /// than the policy's maximum is cut to it).
    pub max_matches: Option<usize>,
}

/// Why a request's options were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error("radius {asked} is over the maximum of {max}")]
    RadiusTooLarge { asked: u32, max: u32 },
    #[error("unknown list {name:?} ({})", known_lists(.known))]
    UnknownList {
        name: String,
        /// The lists of the generation, sorted.
        known: Vec<String>,
    },
}

fn known_lists(known: &[String]) -> String {
    if known.is_empty() {
        "the index holds no lists".to_string()
    } else {
        format!("known lists: {}", known.join(", "))
    }
}

/// A request's options after the policy's defaults and limits, checked
/// against one index generation. Made by [`MatchPolicy::resolve`] (or
/// [`ResolvedOptions::default`]); read-only, so the index search options
/// derived from it once stay true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedOptions {
    radius: u32,
    lists: Option<BTreeSet<String>>,
    dihedral: bool,
    robust: RobustLevel,
    quality_threshold: u32,
    max_matches: usize,
    /// The index search of image signatures (the dihedral hashes, when
    /// searched, are the caller's).
    search: SearchOptions,
    /// The index search of caller-supplied hashes: with `dihedral`, the
    /// index derives the variants of the hash (bit-domain approximation).
    hash_search: SearchOptions,
}

impl Default for ResolvedOptions {
    /// [`MatchPolicy::unrestricted`] with an empty request: radius 31, every
    /// list, every match.
    fn default() -> Self {
        let policy = MatchPolicy::unrestricted();
        ResolvedOptions::new(
            &policy,
            policy.radius,
            None,
            policy.dihedral,
            policy.robust,
            policy.max_matches,
        )
    }
}

impl ResolvedOptions {
    fn new(
        policy: &MatchPolicy,
        radius: u32,
        lists: Option<BTreeSet<String>>,
        dihedral: bool,
        robust: RobustLevel,
        max_matches: usize,
    ) -> Self {
        // The policy's per-list radii are caps: a caller asking for a
        // smaller radius gets it on every list.
        let list_radius = policy
            .list_radius
            .iter()
            .map(|(l, &cap)| (l.clone(), cap.min(radius)))
            .collect();
        let search = SearchOptions {
            radius,
            k: None,
            dihedral: false,
            lists: lists.as_ref().map(|s| s.iter().cloned().collect()),
            list_radius,
        };
        let hash_search = SearchOptions {
            dihedral,
            ..search.clone()
        };
        ResolvedOptions {
            radius,
            lists,
            dihedral,
            robust,
            quality_threshold: policy.quality_threshold,
            max_matches,
            search,
            hash_search,
        }
    }

    /// The PDQ radius (inclusive), before per-list caps.
    pub fn radius(&self) -> u32 {
        self.radius
    }

    /// The radius that applies to `list`'s PDQ entries.
    pub fn radius_for(&self, list: &str) -> u32 {
        self.search
            .list_radius
            .get(list)
            .copied()
            .unwrap_or(self.radius)
    }

    /// The lists searched (`None`: all).
    pub fn lists(&self) -> Option<&BTreeSet<String>> {
        self.lists.as_ref()
    }

    /// Whether the dihedral variants are searched.
    pub fn dihedral(&self) -> bool {
        self.dihedral
    }

    /// The robust level for images.
    pub fn robust(&self) -> RobustLevel {
        self.robust
    }

    /// PDQ quality under which a hash is not matched.
    pub fn quality_threshold(&self) -> u32 {
        self.quality_threshold
    }

    /// Most matches in one outcome.
    pub fn max_matches(&self) -> usize {
        self.max_matches
    }

    /// What to compute for robust matching of an image: the level's query
    /// variants, derived ones kept down to the quality threshold (not the
    /// variants' own default), so a threshold under 50 reaches them too.
    pub fn robust_query_options(&self) -> RobustQueryOptions {
        RobustQueryOptions {
            min_quality: self.quality_threshold,
            ..self.robust.query_options()
        }
    }

    /// The index search options of image signatures.
    pub fn search_options(&self) -> &SearchOptions {
        &self.search
    }

    /// The index search options of caller-supplied PDQ hashes (what the
    /// hashes of [`crate::Matcher::pdq_queries`] are searched with).
    pub fn hash_search_options(&self) -> &SearchOptions {
        &self.hash_search
    }

    /// Whether a match found by a lookup stands under these options: its
    /// list is searched and, for PDQ, its distance is within its list's
    /// radius. Applied to every lookup's answer, whatever the [`Lookup`].
    pub fn admits(&self, m: &Match) -> bool {
        if let Some(lists) = &self.lists {
            if !lists.contains(m.list.as_str()) {
                return false;
            }
        }
        m.kind != HashKind::Pdq || m.distance <= self.radius_for(&m.list)
    }
}
