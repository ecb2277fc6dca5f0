//! Index-side enrollment augmentation: for an original that is at hand
//! when it is enrolled, the hashes of crops and small rotations, all stored
//! under the original's entry id.

use image::RgbImage;

use super::geometry::{crop_frac, rotate_degrees, work_copy};
use super::{hash_rgb, rgb_of};
use crate::pdq::{PdqHasher, Profile};
use crate::{DecodedImage, PdqHash};

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

/// What enrolling one original file came to.
#[derive(Clone, Debug, PartialEq)]
pub struct EnrolledFile {
    /// Its own PDQ hash first (as `sigil scan` and `sigil serve` compute
    /// it), then with augmentation the hashes of its crops and small
    /// rotations, each with a note naming the variant (`augmented: ...`).
    pub hashes: Vec<(PdqHash, Option<String>)>,
    /// The quality of its own hash.
    pub quality: u32,
}

/// Why an original could not be enrolled.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    #[error("{len} bytes, over the decode limit of {max} bytes")]
    TooLarge { len: u64, max: u64 },
    #[error("cannot decode: {0}")]
    Decode(crate::decode::DecodeError),
}

/// Reads, decodes (with the default limits) and hashes one original for
/// `sigil index build --enroll-images DIR [--augment]`. A file over the
/// byte limit is refused from its size, before it is read.
pub fn enroll_file(
    path: &std::path::Path,
    augment: bool,
    hasher: &mut PdqHasher,
) -> Result<EnrolledFile, EnrollError> {
    use crate::{DecodeOptions, Pixels};

    let opts = DecodeOptions::default();
    let max = opts.limits.max_bytes;
    let len = std::fs::metadata(path).map_err(EnrollError::Read)?.len();
    if len > max {
        return Err(EnrollError::TooLarge { len, max });
    }
    let bytes = std::fs::read(path).map_err(EnrollError::Read)?;
    let img = crate::decode::decode(&bytes, &opts).map_err(EnrollError::Decode)?;
    let (w, h) = (img.width, img.height);
    let plain = match &img.pixels {
        Pixels::Rgb8(px) => hasher.hash_rgb8(w, h, px, Profile::Full),
        Pixels::Luma8(px) => hasher.hash_luma8(w, h, px, Profile::Full),
    };
    let mut hashes = vec![(plain.hash, None)];
    if augment {
        for e in enrollment_hashes(hasher, &img, &AugmentOptions::default())
            .into_iter()
            .skip(1)
        {
            if hashes.iter().all(|(h, _)| *h != e.hash) {
                hashes.push((e.hash, Some(format!("augmented: {}", e.variant.name()))));
            }
        }
    }
    Ok(EnrolledFile {
        hashes,
        quality: plain.quality,
    })
}
