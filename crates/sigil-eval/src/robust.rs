//! Robust matching helpers for run time (scan, serve, index build).
//!
//! Two regimes (issue 6):
//! - **Shared lists**: only the PDQ hash of the original is known, so all the
//!   work is on the query side: [`robust_query_hashes`] hashes the query in
//!   several variants (dihedral, border-trimmed, rotation-compensated,
//!   rescaled) and the caller searches every variant, keeping the best
//!   distance per entry.
//! - **Own bank**: the original is at hand when it is enrolled, so the index
//!   side stores extra hashes: [`enrollment_hashes`] returns the hashes of
//!   crops and small rotations of an original, all to be stored under the
//!   original's entry id.
//!
//! Each extra variant is another chance for an unrelated image to come within
//! the radius, so variants cost false positives; `docs/robustness.md` has the
//! measured recall and false-positive rate of each option.

use std::fmt;

use image::imageops::{self, FilterType};
use image::RgbImage;
use sigil_core::pdq::{PdqHasher, Profile};
use sigil_core::{DecodedImage, Dihedral, PdqHash, Pixels};

use crate::borders;
use crate::transforms::{crop_frac, pad_mirror, rotate_degrees};

/// Which query variant produced a hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueryVariant {
    /// The image as given (always first).
    Original,
    /// A dihedral variant of the whole image (never `Dihedral::Orig`).
    Dihedral(Dihedral),
    /// The content inside detected flat or mirrored borders.
    Trimmed,
    /// A dihedral variant of the trimmed content.
    TrimmedDihedral(Dihedral),
    /// The image rotated back by this many tenths of a degree.
    Rotated(i16),
    /// The image zoomed: < 100 = centre crop of that percentage,
    /// > 100 = mirrored border so the content covers 100/percent.
    Zoomed(u16),
}

impl QueryVariant {
    /// The dihedral transform this variant applied to the image (the
    /// identity for the image and its trimmed content), reported as a
    /// match's variant; `None` for rotations and zooms, which are not
    /// dihedral.
    pub fn dihedral(&self) -> Option<Dihedral> {
        match *self {
            QueryVariant::Original | QueryVariant::Trimmed => Some(Dihedral::Orig),
            QueryVariant::Dihedral(d) | QueryVariant::TrimmedDihedral(d) => Some(d),
            QueryVariant::Rotated(_) | QueryVariant::Zoomed(_) => None,
        }
    }

    /// Short, stable name for reports and match output.
    pub fn name(&self) -> String {
        match self {
            QueryVariant::Original => "orig".into(),
            QueryVariant::Dihedral(d) => format!("dih:{}", d.as_str()),
            QueryVariant::Trimmed => "trim".into(),
            QueryVariant::TrimmedDihedral(d) => format!("trim+dih:{}", d.as_str()),
            QueryVariant::Rotated(t) => format!("rot:{:+.1}", *t as f32 / 10.0),
            QueryVariant::Zoomed(p) => format!("zoom:{p}"),
        }
    }

    /// The family, used by the evaluation to build methods from subsets.
    pub fn family(&self) -> VariantFamily {
        match self {
            QueryVariant::Original => VariantFamily::Original,
            QueryVariant::Dihedral(_) => VariantFamily::Dihedral,
            QueryVariant::Trimmed => VariantFamily::Trim,
            QueryVariant::TrimmedDihedral(_) => VariantFamily::TrimDihedral,
            QueryVariant::Rotated(_) => VariantFamily::Rotation,
            QueryVariant::Zoomed(_) => VariantFamily::Zoom,
        }
    }
}

impl fmt::Display for QueryVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Families of query variants (a method is a set of families).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VariantFamily {
    Original,
    Dihedral,
    Trim,
    TrimDihedral,
    Rotation,
    Zoom,
}

/// One hash of a query variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryHash {
    pub hash: PdqHash,
    pub quality: u32,
    pub variant: QueryVariant,
}

/// What [`robust_query_hashes`] computes.
#[derive(Clone, Debug, PartialEq)]
pub struct RobustQueryOptions {
    /// The 8 dihedral variants (free: derived from one DCT).
    pub dihedral: bool,
    /// Trim flat and mirrored borders and hash the content too.
    pub trim: bool,
    /// Rotate the query back by these angles (degrees) and hash each.
    pub rotations: Vec<f32>,
    /// Zoom factors (e.g. 0.9 = centre crop of 90%, 1.1 = add a border).
    pub zooms: Vec<f32>,
    /// Derived variants (rotations, zooms) are computed on a copy whose
    /// longer side is at most this (PDQ reduces to 64x64 anyway; this keeps
    /// the extra variants cheap).
    pub work_side: u32,
    /// Derived variants below this PDQ quality are dropped.
    pub min_quality: u32,
    pub profile: Profile,
}

impl Default for RobustQueryOptions {
    /// The plain PDQ query (original only).
    fn default() -> Self {
        RobustQueryOptions {
            dihedral: false,
            trim: false,
            rotations: Vec::new(),
            zooms: Vec::new(),
            work_side: 512,
            min_quality: 50,
            profile: Profile::Full,
        }
    }
}

impl RobustQueryOptions {
    /// What `--robust` means for scan and serve: dihedral + border trimming
    /// (the shared-list winners in docs/robustness.md: large recall gains on
    /// flips, rotations by 90 degrees and padding at no measurable
    /// false-positive cost at distance 31).
    pub fn recommended() -> Self {
        RobustQueryOptions {
            dihedral: true,
            trim: true,
            ..Default::default()
        }
    }

    /// Everything the evaluation measures: dihedral, trimming, rotation
    /// compensation and zooms.
    pub fn everything() -> Self {
        RobustQueryOptions {
            dihedral: true,
            trim: true,
            rotations: vec![-9.0, -6.0, -3.0, 3.0, 6.0, 9.0],
            zooms: vec![0.85, 1.15],
            ..Default::default()
        }
    }
}

/// How much robust query work scan and serve do (`--robust[=LEVEL]`,
/// `[matching] robust`, `MatchOptions.robust`).
///
/// Levels rather than a switch because the cost differs by a factor of two:
/// `standard` is about 13 hashes per image, `full` about 21 (and as many
/// index lookups). The measured recall and false-positive rate of each are
/// in docs/robustness.md.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RobustLevel {
    /// The plain PDQ query (and the dihedral variants if asked separately).
    #[default]
    Off,
    /// Dihedral variants of the image and of its border-trimmed content
    /// ([`RobustQueryOptions::recommended`]).
    Standard,
    /// `standard` plus rotation compensation and zooms
    /// ([`RobustQueryOptions::everything`]).
    Full,
}

impl RobustLevel {
    pub const NAMES: [&'static str; 3] = ["off", "standard", "full"];

    pub fn is_on(self) -> bool {
        self != RobustLevel::Off
    }

    pub fn name(self) -> &'static str {
        match self {
            RobustLevel::Off => "off",
            RobustLevel::Standard => "standard",
            RobustLevel::Full => "full",
        }
    }

    /// The query variants of this level (the plain query for `Off`).
    pub fn query_options(self) -> RobustQueryOptions {
        match self {
            RobustLevel::Off => RobustQueryOptions::default(),
            RobustLevel::Standard => RobustQueryOptions::recommended(),
            RobustLevel::Full => RobustQueryOptions::everything(),
        }
    }

    /// `true`/`false` (the switch this setting used to be) or a level name.
    fn from_switch_or_name(v: SwitchOrName) -> Result<Self, String> {
        match v {
            SwitchOrName::Switch(true) => Ok(RobustLevel::Standard),
            SwitchOrName::Switch(false) => Ok(RobustLevel::Off),
            SwitchOrName::Name(n) => n.parse(),
        }
    }
}

impl fmt::Display for RobustLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for RobustLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "false" => Ok(RobustLevel::Off),
            "standard" | "true" => Ok(RobustLevel::Standard),
            "full" => Ok(RobustLevel::Full),
            other => Err(format!(
                "unknown robust level {other:?} (expected one of: {})",
                RobustLevel::NAMES.join(", ")
            )),
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum SwitchOrName {
    Switch(bool),
    Name(String),
}

/// Accepts `true`/`false` as well as a level name, so configs and scan
/// manifests written when robust matching was a switch still read.
impl<'de> serde::Deserialize<'de> for RobustLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = SwitchOrName::deserialize(d)?;
        RobustLevel::from_switch_or_name(v).map_err(serde::de::Error::custom)
    }
}

/// Searches every query variant and keeps each list entry once, at its
/// smallest distance (ties: the earlier variant), with the variant that
/// reached it. `search` returns the matches of one variant (empty to skip
/// it); `key` names the entry (e.g. list and id). Results come in key order.
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
    let mut best: std::collections::BTreeMap<K, (M, &'v QueryHash)> = Default::default();
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

/// Converts a decoded image to RGB8 (grey is replicated).
pub fn rgb_of(img: &DecodedImage) -> RgbImage {
    let raw = match &img.pixels {
        Pixels::Rgb8(v) => v.clone(),
        Pixels::Luma8(v) => v.iter().flat_map(|&g| [g, g, g]).collect(),
    };
    RgbImage::from_raw(img.width, img.height, raw)
        .unwrap_or_else(|| RgbImage::new(img.width.max(1), img.height.max(1)))
}

/// [`robust_query_hashes_rgb`] for a decoded image (what scan and serve hold).
pub fn robust_query_hashes(
    hasher: &mut PdqHasher,
    img: &DecodedImage,
    opts: &RobustQueryOptions,
) -> Vec<QueryHash> {
    robust_query_hashes_rgb(hasher, &rgb_of(img), opts)
}

fn hash_rgb(hasher: &mut PdqHasher, img: &RgbImage, profile: Profile) -> (PdqHash, u32) {
    let o = hasher.hash_rgb8(img.width(), img.height(), img.as_raw(), profile);
    (o.hash, o.quality)
}

fn push_dihedral(
    out: &mut Vec<QueryHash>,
    hasher: &mut PdqHasher,
    img: &RgbImage,
    opts: &RobustQueryOptions,
    orig: QueryVariant,
    dih: fn(Dihedral) -> QueryVariant,
    min_quality: Option<u32>,
) {
    let profile = opts.profile;
    if opts.dihedral {
        let d = hasher.dihedral_rgb8(img.width(), img.height(), img.as_raw(), profile);
        if min_quality.is_some_and(|q| d.quality < q) {
            return;
        }
        for (i, h) in d.hashes.iter().enumerate() {
            let v = if i == 0 { orig } else { dih(Dihedral::ALL[i]) };
            out.push(QueryHash {
                hash: *h,
                quality: d.quality,
                variant: v,
            });
        }
    } else {
        let (h, q) = hash_rgb(hasher, img, profile);
        if min_quality.is_some_and(|m| q < m) {
            return;
        }
        out.push(QueryHash {
            hash: h,
            quality: q,
            variant: orig,
        });
    }
}

/// Downscales so the longer side is at most `side` (no upscaling).
pub fn work_copy(img: &RgbImage, side: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let m = w.max(h);
    if m <= side {
        return img.clone();
    }
    let f = side as f32 / m as f32;
    let nw = ((w as f32 * f).round() as u32).max(1);
    let nh = ((h as f32 * f).round() as u32).max(1);
    imageops::resize(img, nw, nh, FilterType::Triangle)
}

/// All query variants of an RGB image. The first entry is always the
/// original's hash (whatever its quality); derived variants below
/// `min_quality` are dropped.
pub fn robust_query_hashes_rgb(
    hasher: &mut PdqHasher,
    img: &RgbImage,
    opts: &RobustQueryOptions,
) -> Vec<QueryHash> {
    let mut out = Vec::new();
    push_dihedral(
        &mut out,
        hasher,
        img,
        opts,
        QueryVariant::Original,
        QueryVariant::Dihedral,
        None,
    );
    let need_derived = opts.trim || !opts.rotations.is_empty() || !opts.zooms.is_empty();
    if !need_derived || img.width() < 16 || img.height() < 16 {
        return out;
    }
    let work = work_copy(img, opts.work_side);
    // Trimming is detected on the work copy and applied to the full image.
    // Rotations and zooms start from the untrimmed image: a trim can eat
    // flat sky, and rotated copies rarely have straight borders.
    let base = &work;
    if opts.trim {
        for r in borders::detect_content(&work) {
            let full = r.rescale(work.width(), work.height(), img.width(), img.height());
            if full.width() >= 8 && full.height() >= 8 {
                let content =
                    imageops::crop_imm(img, full.x0, full.y0, full.width(), full.height())
                        .to_image();
                push_dihedral(
                    &mut out,
                    hasher,
                    &content,
                    opts,
                    QueryVariant::Trimmed,
                    QueryVariant::TrimmedDihedral,
                    Some(opts.min_quality),
                );
            }
        }
    }
    for &deg in &opts.rotations {
        let rotated = rotate_degrees(base, deg, mean_colour(base));
        let (h, q) = hash_rgb(hasher, &rotated, opts.profile);
        if q >= opts.min_quality {
            out.push(QueryHash {
                hash: h,
                quality: q,
                variant: QueryVariant::Rotated((deg * 10.0).round() as i16),
            });
        }
    }
    for &z in &opts.zooms {
        let zoomed = zoom(base, z);
        let (h, q) = hash_rgb(hasher, &zoomed, opts.profile);
        if q >= opts.min_quality {
            out.push(QueryHash {
                hash: h,
                quality: q,
                variant: QueryVariant::Zoomed((z * 100.0).round() as u16),
            });
        }
    }
    out
}

fn mean_colour(img: &RgbImage) -> [u8; 3] {
    let mut s = [0u64; 3];
    for p in img.pixels() {
        for c in 0..3 {
            s[c] += p[c] as u64;
        }
    }
    let n = (img.width() as u64 * img.height() as u64).max(1);
    [(s[0] / n) as u8, (s[1] / n) as u8, (s[2] / n) as u8]
}

/// `z < 1`: centre crop keeping `z` of each side; `z > 1`: mirrored border
/// so the image covers `1/z` of each side.
pub fn zoom(img: &RgbImage, z: f32) -> RgbImage {
    if z < 1.0 {
        let m = (1.0 - z) / 2.0;
        crop_frac(img, m, m, z, z)
    } else if z > 1.0 {
        pad_mirror(img, z - 1.0)
    } else {
        img.clone()
    }
}

/// Where an enrollment hash came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EnrollVariant {
    Original,
    /// A crop keeping `keep_percent` of each side at a position: an index
    /// into [`CROP_POSITIONS`] (centre, corners, edge midpoints).
    Crop {
        keep_percent: u8,
        position: u8,
    },
    /// Rotated by this many tenths of a degree (counter-clockwise).
    Rotated(i16),
}

impl EnrollVariant {
    pub fn name(&self) -> String {
        match self {
            EnrollVariant::Original => "orig".into(),
            EnrollVariant::Crop {
                keep_percent,
                position,
            } => {
                let pos = CROP_POSITIONS.get(*position as usize).map_or("?", |p| p.0);
                format!("crop{keep_percent}:{pos}")
            }
            EnrollVariant::Rotated(t) => format!("rot:{:+.1}", *t as f32 / 10.0),
        }
    }
}

/// Where enrollment crops sit: name, and the crop's offset as a share of
/// the margin (0 = flush left/top, 1 = flush right/bottom). A 3x3 grid
/// rather than the centre and corners alone: PDQ moves by 30-50 bits when
/// a crop window shifts by 5% of the side, so a crop taken anywhere must
/// land within about 2.5% of a stored one (measured in docs/robustness.md:
/// crop 10% at random positions, 66% recall with 5 positions).
pub const CROP_POSITIONS: [(&str, f32, f32); 9] = [
    ("c", 0.5, 0.5),
    ("tl", 0.0, 0.0),
    ("tr", 1.0, 0.0),
    ("bl", 0.0, 1.0),
    ("br", 1.0, 1.0),
    ("t", 0.5, 0.0),
    ("b", 0.5, 1.0),
    ("l", 0.0, 0.5),
    ("r", 1.0, 0.5),
];

/// One enrollment hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnrollHash {
    pub hash: PdqHash,
    pub quality: u32,
    pub variant: EnrollVariant,
}

/// What [`enrollment_hashes`] stores per original.
#[derive(Clone, Debug, PartialEq)]
pub struct AugmentOptions {
    /// Crops: share of each side kept; each at every [`CROP_POSITIONS`].
    pub crop_keeps: Vec<f32>,
    /// Rotations in degrees (counter-clockwise), corners filled black.
    pub rotations: Vec<f32>,
    pub work_side: u32,
    pub min_quality: u32,
    pub profile: Profile,
}

impl Default for AugmentOptions {
    /// The setting measured in docs/robustness.md.
    fn default() -> Self {
        AugmentOptions {
            crop_keeps: vec![0.9, 0.8],
            rotations: vec![-6.0, -3.0, 3.0, 6.0],
            work_side: 512,
            min_quality: 50,
            profile: Profile::Full,
        }
    }
}

/// [`enrollment_hashes_rgb`] for a decoded image: what `sigil index build
/// --enroll-images DIR --augment` stores, every hash under the original's id.
pub fn enrollment_hashes(
    hasher: &mut PdqHasher,
    img: &DecodedImage,
    opts: &AugmentOptions,
) -> Vec<EnrollHash> {
    enrollment_hashes_rgb(hasher, &rgb_of(img), opts)
}

/// The original's hash first, then the augmented hashes (below
/// `min_quality` dropped, and exact repeats of an earlier hash dropped).
pub fn enrollment_hashes_rgb(
    hasher: &mut PdqHasher,
    img: &RgbImage,
    opts: &AugmentOptions,
) -> Vec<EnrollHash> {
    let (h, q) = hash_rgb(hasher, img, opts.profile);
    let mut out = vec![EnrollHash {
        hash: h,
        quality: q,
        variant: EnrollVariant::Original,
    }];
    if img.width() < 16 || img.height() < 16 {
        return out;
    }
    let work = work_copy(img, opts.work_side);
    let mut push = |out: &mut Vec<EnrollHash>, im: &RgbImage, v: EnrollVariant| {
        let (h, q) = hash_rgb(hasher, im, opts.profile);
        if q >= opts.min_quality && !out.iter().any(|e| e.hash == h) {
            out.push(EnrollHash {
                hash: h,
                quality: q,
                variant: v,
            });
        }
    };
    for &k in &opts.crop_keeps {
        let m = 1.0 - k;
        for (i, (_, fx, fy)) in CROP_POSITIONS.iter().enumerate() {
            let c = crop_frac(&work, m * fx, m * fy, k, k);
            push(
                &mut out,
                &c,
                EnrollVariant::Crop {
                    keep_percent: (k * 100.0).round() as u8,
                    position: i as u8,
                },
            );
        }
    }
    for &deg in &opts.rotations {
        let r = rotate_degrees(&work, deg, [0, 0, 0]);
        push(
            &mut out,
            &r,
            EnrollVariant::Rotated((deg * 10.0).round() as i16),
        );
    }
    out
}

/// Helper for index builders: the (hash, id) entries to store for one
/// enrolled original (its own hash and the augmented ones).
pub fn augmented_entries(
    hasher: &mut PdqHasher,
    img: &DecodedImage,
    id: &str,
    opts: &AugmentOptions,
) -> Vec<(PdqHash, String)> {
    enrollment_hashes(hasher, img, opts)
        .into_iter()
        .map(|e| (e.hash, id.to_string()))
        .collect()
}

/// The best (smallest) distance between any query variant and any stored
/// hash of one entry, with the variants that achieved it.
pub fn best_distance<'a>(
    query: &'a [QueryHash],
    stored: &'a [EnrollHash],
) -> Option<(u32, &'a QueryHash, &'a EnrollHash)> {
    let mut best: Option<(u32, &QueryHash, &EnrollHash)> = None;
    for q in query {
        for s in stored {
            let d = q.hash.hamming(&s.hash);
            if best.is_none_or(|(b, _, _)| d < b) {
                best = Some((d, q, s));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::{pad_flat, rotate_degrees};

    /// A real photo from testdata (256x256), rescaled.
    fn photo(w: u32, h: u32) -> RgbImage {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/eval/q2821.jpg");
        let img = image::open(p).expect("testdata photo").to_rgb8();
        image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle)
    }

    /// Each entry once, at its smallest distance; a tie keeps the earlier
    /// variant; an empty search skips a variant.
    #[test]
    fn best_per_entry_keeps_the_nearest_variant_per_entry() {
        let q = |i: u8, v: QueryVariant| QueryHash {
            hash: PdqHash([i; 32]),
            quality: 100,
            variant: v,
        };
        let variants = [
            q(0, QueryVariant::Original),
            q(1, QueryVariant::Trimmed),
            q(2, QueryVariant::Rotated(30)),
            q(3, QueryVariant::Zoomed(85)),
        ];
        // (entry, distance) found by each variant.
        let found: [&[(&str, u32)]; 4] = [
            &[("a", 20), ("b", 30)],
            &[("a", 12), ("b", 30)],
            &[("a", 12), ("c", 5)],
            &[("a", 1)],
        ];
        let best = best_per_entry(
            &variants,
            |i, _| {
                if i == 3 {
                    Vec::new()
                } else {
                    found[i].to_vec()
                }
            },
            |m| m.0,
            |m| m.1,
        );
        let got: Vec<(&str, u32, String)> = best
            .iter()
            .map(|(m, v)| (m.0, m.1, v.variant.name()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", 12, "trim".to_string()),
                ("b", 30, "orig".to_string()),
                ("c", 5, "rot:+3.0".to_string()),
            ]
        );
    }

    #[test]
    fn plain_options_give_one_hash_equal_to_pdq() {
        let mut h = PdqHasher::new();
        let img = photo(240, 180);
        let q = robust_query_hashes_rgb(&mut h, &img, &RobustQueryOptions::default());
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].variant, QueryVariant::Original);
        let direct = h.hash_rgb8(240, 180, img.as_raw(), Profile::Full);
        assert_eq!(q[0].hash, direct.hash);
    }

    #[test]
    fn trimming_recovers_padded_image() {
        let mut h = PdqHasher::new();
        let img = photo(240, 180);
        let orig = h.hash_rgb8(240, 180, img.as_raw(), Profile::Full).hash;
        let padded = pad_flat(&img, 0.4, [0, 0, 0]);
        let q = robust_query_hashes_rgb(&mut h, &padded, &RobustQueryOptions::recommended());
        let plain = q[0].hash.hamming(&orig);
        let trimmed = q
            .iter()
            .find(|v| v.variant == QueryVariant::Trimmed)
            .expect("trimmed variant");
        assert!(
            trimmed.hash.hamming(&orig) < plain,
            "trim {} vs plain {plain}",
            trimmed.hash.hamming(&orig)
        );
        assert!(trimmed.hash.hamming(&orig) <= 16);
        // Dihedral variants of the original and of the trimmed content.
        assert_eq!(
            q.iter()
                .filter(|v| v.variant.family() == VariantFamily::Dihedral)
                .count(),
            7
        );
    }

    #[test]
    fn enrollment_rotation_matches_rotated_query() {
        let mut h = PdqHasher::new();
        let img = photo(300, 200);
        let stored = enrollment_hashes_rgb(&mut h, &img, &AugmentOptions::default());
        assert!(stored.len() > 5);
        assert_eq!(stored[0].variant, EnrollVariant::Original);
        let rotated = rotate_degrees(&img, 3.0, [0, 0, 0]);
        let q = robust_query_hashes_rgb(&mut h, &rotated, &RobustQueryOptions::default());
        let (d, _, s) = best_distance(&q, &stored).unwrap();
        let d_orig = q[0].hash.hamming(&stored[0].hash);
        assert!(d <= d_orig);
        assert!(d <= 20, "best {d} via {}", s.variant.name());
    }
}
