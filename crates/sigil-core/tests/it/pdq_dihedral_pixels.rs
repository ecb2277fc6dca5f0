//! The pixel-domain dihedral hashes (`PdqHasher::dihedral_pixels_*`) are
//! bit-exact with hashing the actually rotated or mirrored pixels (rotated
//! here by the `image` crate, independently of sigil's transform), on every
//! kernel, both profiles, grey and RGB, many sizes including odd, tiny and
//! squashed ones, on synthetic content and a real photo. And they are named
//! as the reference's DCT-derived variants: where blur and decimation are
//! symmetric (64x64), both agree.

use crate::support::SplitMix64;
use image::{imageops, GrayImage, RgbImage};
use sigil_core::pdq::{Kernel, PdqHasher, PdqOutput, Profile};
use sigil_core::Dihedral;

fn testdata() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// The image transformed by `d` as the `image` crate does it (`Dihedral`'s
/// names: `Rot90` counter-clockwise, `FlipX` top-bottom, `FlipPlus1` the
/// main-diagonal transpose).
fn rotated<P: image::Pixel + 'static>(
    img: &image::ImageBuffer<P, Vec<P::Subpixel>>,
    d: Dihedral,
) -> image::ImageBuffer<P, Vec<P::Subpixel>> {
    match d {
        Dihedral::Orig => img.clone(),
        Dihedral::Rot90 => imageops::rotate270(img),
        Dihedral::Rot180 => imageops::rotate180(img),
        Dihedral::Rot270 => imageops::rotate90(img),
        Dihedral::FlipX => imageops::flip_vertical(img),
        Dihedral::FlipY => imageops::flip_horizontal(img),
        Dihedral::FlipPlus1 => imageops::flip_horizontal(&imageops::rotate90(img)),
        Dihedral::FlipMinus1 => imageops::flip_horizontal(&imageops::rotate270(img)),
    }
}

/// Photo-like synthetic content: a gradient with noise, so the blur's
/// running sums see many different values.
fn synthetic(rng: &mut SplitMix64, w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let base = (y * 255 / h + x * 97 / w) as i64;
        let mut px =
            |c: i64| ((base + c * 40) % 256 + rng.below(31) as i64 - 15).clamp(0, 255) as u8;
        image::Rgb([px(0), px(1), px(2)])
    })
}

fn photo(w: u32, h: u32) -> RgbImage {
    let img = image::open(testdata().join("eval/q2821.jpg"))
        .expect("testdata photo")
        .to_rgb8();
    imageops::resize(&img, w, h, imageops::FilterType::Triangle)
}

fn check_rgb(hasher: &mut PdqHasher, img: &RgbImage, profile: Profile, what: &str) {
    let (w, h) = img.dimensions();
    let got = hasher.dihedral_pixels_rgb8(w, h, img.as_raw(), profile);
    for (i, d) in Dihedral::ALL.into_iter().enumerate() {
        let t = rotated(img, d);
        let want = hasher.hash_rgb8(t.width(), t.height(), t.as_raw(), profile);
        assert_eq!(got[i], want, "{what} {w}x{h} {profile} {d}");
    }
}

fn check_grey(hasher: &mut PdqHasher, img: &GrayImage, profile: Profile, what: &str) {
    let (w, h) = img.dimensions();
    let got = hasher.dihedral_pixels_luma8(w, h, img.as_raw(), profile);
    for (i, d) in Dihedral::ALL.into_iter().enumerate() {
        let t = rotated(img, d);
        let want = hasher.hash_luma8(t.width(), t.height(), t.as_raw(), profile);
        assert_eq!(got[i], want, "{what} grey {w}x{h} {profile} {d}");
    }
}

/// Tiny, odd, around 64 and 128 (window lengths 1 and 2), the 300-480 px
/// photo sizes where the DCT-derived variants were furthest off, and sizes
/// over 512 (squashed by `cli512`).
const SIZES: [(u32, u32); 22] = [
    (5, 5),
    (5, 9),
    (6, 7),
    (13, 5),
    (31, 17),
    (63, 64),
    (64, 64),
    (64, 65),
    (65, 63),
    (127, 129),
    (128, 128),
    (129, 200),
    (255, 256),
    (300, 400),
    (333, 479),
    (399, 401),
    (480, 300),
    (457, 311),
    (500, 375),
    (513, 300),
    (640, 427),
    (777, 515),
];

#[test]
fn pixel_variants_equal_hashing_rotated_pixels() {
    let mut rng = SplitMix64::new(20);
    for kernel in Kernel::available() {
        let mut hasher = PdqHasher::with_kernel(kernel).unwrap();
        for (w, h) in SIZES {
            let img = synthetic(&mut rng, w, h);
            let grey = image::DynamicImage::ImageRgb8(img.clone()).to_luma8();
            for profile in [Profile::Full, Profile::Cli512] {
                check_rgb(&mut hasher, &img, profile, &format!("{kernel} synthetic"));
                check_grey(&mut hasher, &grey, profile, &format!("{kernel} synthetic"));
            }
        }
    }
}

#[test]
fn pixel_variants_of_photo_crops_equal_hashing_rotated_pixels() {
    let mut hasher = PdqHasher::new();
    for (w, h) in [(300, 400), (361, 481), (480, 320), (417, 333), (512, 384)] {
        let img = photo(w, h);
        check_rgb(&mut hasher, &img, Profile::Full, "photo");
    }
}

/// Images under 5 px hash to zero in every orientation, as their rotated
/// pixels do.
#[test]
fn tiny_images_give_zero_in_every_orientation() {
    let mut hasher = PdqHasher::new();
    let mut rng = SplitMix64::new(4);
    for (w, h) in [(1, 1), (4, 4), (4, 9), (9, 4), (2, 600)] {
        let img = synthetic(&mut rng, w, h);
        check_rgb(&mut hasher, &img, Profile::Full, "tiny");
        let got = hasher.dihedral_pixels_rgb8(w, h, img.as_raw(), Profile::Full);
        assert!(got
            .iter()
            .all(|o| o.quality == 0 && o.hash.count_ones() == 0));
    }
}

/// On a 64x64 grey image the blur window is 1 and decimation is the
/// identity, so the DCT-derived variant of each name is (up to the DCT's
/// rounding) the hash of the pixels transformed as that name says: the
/// pixel variants use the reference's names and order.
#[test]
fn names_agree_with_the_reference_where_the_blur_is_symmetric() {
    let mut hasher = PdqHasher::new();
    let grey = image::DynamicImage::ImageRgb8(photo(64, 64)).to_luma8();
    let pixels = hasher.dihedral_pixels_luma8(64, 64, grey.as_raw(), Profile::Full);
    let derived = hasher.dihedral_luma8(64, 64, grey.as_raw(), Profile::Full);
    for (i, d) in Dihedral::ALL.into_iter().enumerate() {
        let near = pixels[i].hash.hamming(&derived.hashes[i]);
        assert!(
            near <= 4,
            "{d}: pixel and derived variants {near} bits apart"
        );
        for (j, e) in Dihedral::ALL.into_iter().enumerate() {
            if j != i {
                let far = pixels[i].hash.hamming(&derived.hashes[j]);
                assert!(far > 20, "{d} is {far} bits from the derived {e}");
            }
        }
    }
}

/// A length mismatch is an error naming the sizes, not a panic.
#[test]
fn wrong_length_is_an_error() {
    let mut hasher = PdqHasher::new();
    let e = hasher
        .try_dihedral_pixels_rgb8(10, 10, &[0u8; 299], Profile::Full)
        .unwrap_err();
    assert!(e.to_string().contains("10x10"), "{e}");
    let ok: [PdqOutput; 8] = hasher
        .try_dihedral_pixels_luma8(10, 10, &[7u8; 100], Profile::Full)
        .unwrap();
    assert_eq!(ok[0], hasher.hash_luma8(10, 10, &[7u8; 100], Profile::Full));
}
