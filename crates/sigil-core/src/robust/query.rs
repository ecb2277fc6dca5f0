//! Query-side variants: hash the query as given and as the edits it may
//! have gone through would have it back (dihedral, border-trimmed,
//! rotation-compensated, zoomed), for lists that hold only the original's
//! hash.

use std::fmt;

use image::imageops;
use image::RgbImage;

use super::borders;
use super::geometry::{rotate_degrees, work_copy, zoom};
use super::{hash_rgb, rgb_of};
use crate::pdq::{PdqHasher, Profile};
use crate::{DecodedImage, Dihedral, PdqHash};

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
    /// The 8 dihedral variants: the hashes of the image rotated and
    /// mirrored (one luma conversion, eight blurs and DCTs).
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

/// [`robust_query_hashes_rgb`] for a decoded image (what scan and serve hold).
pub fn robust_query_hashes(
    hasher: &mut PdqHasher,
    img: &DecodedImage,
    opts: &RobustQueryOptions,
) -> Vec<QueryHash> {
    robust_query_hashes_rgb(hasher, &rgb_of(img), opts)
}

/// Pushes the hash of `img` as `orig` and, with `opts.dihedral`, the hashes
/// of its 7 other dihedral transforms as `dih(..)`: each the hash of the
/// transformed pixels ([`PdqHasher::dihedral_pixels_rgb8`]), so a rotated
/// or mirrored copy is found as its pixels rotated back would be (the
/// reference's DCT-derived variants were up to 36 bits off on common
/// sizes). With `min_quality`, a variant under it is left out.
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
    let kept = |q: u32| min_quality.is_none_or(|m| q >= m);
    if opts.dihedral {
        let d = hasher.dihedral_pixels_rgb8(img.width(), img.height(), img.as_raw(), profile);
        for (i, o) in d.iter().enumerate() {
            if !kept(o.quality) {
                continue;
            }
            let v = if i == 0 { orig } else { dih(Dihedral::ALL[i]) };
            out.push(QueryHash {
                hash: o.hash,
                quality: o.quality,
                variant: v,
            });
        }
    } else {
        let (h, q) = hash_rgb(hasher, img, profile);
        if !kept(q) {
            return;
        }
        out.push(QueryHash {
            hash: h,
            quality: q,
            variant: orig,
        });
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::robust::geometry::pad_flat;
    use crate::robust::test_photo as photo;

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
}
