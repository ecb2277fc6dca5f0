//! Robust hashing: the extra PDQ hashes that let a match survive the edits
//! offenders make (used by `scan --robust`, `serve` and `index build
//! --augment`; measured by `sigil-eval`).
//!
//! Two regimes:
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
//!
//! Parts: [`query`]-side variants and their [`RobustLevel`]s, [`enroll`]ment
//! augmentation, [`borders`] (flat and mirrored border detection for the
//! trimmed variants) and [`geometry`] (the image edits both make).

pub mod borders;
pub mod enroll;
pub mod geometry;
pub mod query;

pub use enroll::{
    enroll_file, enrollment_hashes, enrollment_hashes_rgb, AugmentOptions, EnrollError, EnrollHash,
    EnrollVariant, EnrolledFile, CROP_POSITIONS,
};
pub use geometry::work_copy;
pub use query::{
    robust_query_hashes, robust_query_hashes_rgb, QueryHash, QueryVariant, RobustLevel,
    RobustQueryOptions, VariantFamily,
};

use image::RgbImage;

use crate::pdq::{PdqHasher, Profile};
use crate::{DecodedImage, PdqHash, Pixels};

/// Converts a decoded image to RGB8 (grey is replicated).
pub fn rgb_of(img: &DecodedImage) -> RgbImage {
    let raw = match &img.pixels {
        Pixels::Rgb8(v) => v.clone(),
        Pixels::Luma8(v) => v.iter().flat_map(|&g| [g, g, g]).collect(),
    };
    RgbImage::from_raw(img.width, img.height, raw)
        .unwrap_or_else(|| RgbImage::new(img.width.max(1), img.height.max(1)))
}

fn hash_rgb(hasher: &mut PdqHasher, img: &RgbImage, profile: Profile) -> (PdqHash, u32) {
    let o = hasher.hash_rgb8(img.width(), img.height(), img.as_raw(), profile);
    (o.hash, o.quality)
}

/// A real photo from testdata (256x256), rescaled.
#[cfg(test)]
fn test_photo(w: u32, h: u32) -> RgbImage {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/eval/q2821.jpg");
    let img = image::open(p).expect("testdata photo").to_rgb8();
    image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle)
}
