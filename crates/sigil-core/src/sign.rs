//! The facade most callers want: bytes in, every signature out.
//!
//! [`Signer::sign`] always computes the exact digests (an exact-hash list
//! matches any file, image or not) and, when the bytes decode, the PDQ hash,
//! its quality and optionally the 8 dihedral hashes. A decode failure is
//! carried in [`FileSignatures::image`] rather than returned as an error, so
//! a caller scanning a directory still gets the exact digests of a file
//! that is not an image.

use crate::decode::{decode, DecodeError, DecodeOptions, DecodedImage, Pixels};
use crate::exact::ExactDigests;
use crate::hash::PdqHash;
use crate::pdq::{DihedralMethod, PdqHasher, PdqOutput, Profile};

/// What to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SignOptions {
    /// Pre-processing before PDQ: `Full` (HMA/ThreatExchange) or `Cli512`
    /// (Meta's C++ command-line hasher).
    pub profile: Profile,
    /// Also compute the 8 dihedral hashes.
    pub dihedral: bool,
    /// How: the reference's DCT-derived ones (the default; what `sigil hash
    /// --dihedral` prints) or the hashes of the transformed pixels (what
    /// matching searches).
    pub dihedral_method: DihedralMethod,
    pub decode: DecodeOptions,
}

/// The perceptual signature of one decoded image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSignature {
    /// Decoded size (after EXIF orientation, when applied).
    pub width: u32,
    pub height: u32,
    pub pdq: PdqHash,
    /// 0..=100; hashes under 50 are unreliable and should not be matched.
    pub quality: u32,
    /// In `Dihedral::ALL` order; `[0]` equals `pdq`. Present when
    /// [`SignOptions::dihedral`] is set, computed by
    /// [`SignOptions::dihedral_method`].
    pub dihedral: Option<[PdqHash; 8]>,
}

/// Everything computed for one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSignatures {
    pub exact: ExactDigests,
    pub image: Result<ImageSignature, DecodeError>,
}

/// Decodes and hashes inputs. Holds a [`PdqHasher`] (scratch buffers and
/// the CPU's kernel), so make one per thread and reuse it.
#[derive(Debug)]
pub struct Signer {
    options: SignOptions,
    hasher: PdqHasher,
}

impl Signer {
    pub fn new(options: SignOptions) -> Self {
        Signer {
            options,
            hasher: PdqHasher::new(),
        }
    }

    /// A signer using a given hasher (e.g. one pinned to a kernel).
    pub fn with_hasher(options: SignOptions, hasher: PdqHasher) -> Self {
        Signer { options, hasher }
    }

    pub fn options(&self) -> &SignOptions {
        &self.options
    }

    /// Exact digests and, if the bytes decode, the PDQ signature.
    pub fn sign(&mut self, bytes: &[u8]) -> FileSignatures {
        FileSignatures {
            exact: ExactDigests::of(bytes),
            image: self.sign_image(bytes),
        }
    }

    /// Only the perceptual signature (no exact digests).
    pub fn sign_image(&mut self, bytes: &[u8]) -> Result<ImageSignature, DecodeError> {
        let decoded = decode(bytes, &self.options.decode)?;
        Ok(self.sign_decoded(&decoded))
    }

    /// The perceptual signature of already decoded pixels.
    pub fn sign_decoded(&mut self, image: &DecodedImage) -> ImageSignature {
        let (w, h, profile) = (image.width, image.height, self.options.profile);
        let (pdq, quality, dihedral) = if !self.options.dihedral {
            let out = match &image.pixels {
                Pixels::Rgb8(px) => self.hasher.hash_rgb8(w, h, px, profile),
                Pixels::Luma8(px) => self.hasher.hash_luma8(w, h, px, profile),
            };
            (out.hash, out.quality, None)
        } else if self.options.dihedral_method == DihedralMethod::Pixels {
            let out: [PdqOutput; 8] = match &image.pixels {
                Pixels::Rgb8(px) => self.hasher.dihedral_pixels_rgb8(w, h, px, profile),
                Pixels::Luma8(px) => self.hasher.dihedral_pixels_luma8(w, h, px, profile),
            };
            (out[0].hash, out[0].quality, Some(out.map(|o| o.hash)))
        } else {
            let out = match &image.pixels {
                Pixels::Rgb8(px) => self.hasher.dihedral_rgb8(w, h, px, profile),
                Pixels::Luma8(px) => self.hasher.dihedral_luma8(w, h, px, profile),
            };
            (out.hashes[0], out.quality, Some(out.hashes))
        };
        ImageSignature {
            width: w,
            height: h,
            pdq,
            quality,
            dihedral,
        }
    }
}
