//! PDQ perceptual hashing, bit-exact with Meta's reference core.
//!
//! Given the same pixels, [`PdqHasher`] produces the same 256 bits and the
//! same quality as `pdqHash256FromFloatLuma` (and the 8 hashes of
//! `pdqDihedralHash256esFromFloatLuma`), on every kernel: the SIMD kernels
//! vectorize across independent rows, columns and outputs and keep the
//! reference's float operation order for every value (no reassociation, no
//! fused multiply-add). See `../shared/notes/pdq-spec.md` for the algorithm.
//!
//! Stages: luma ([`luma`]), Jarosz tent filter and decimation ([`jarosz`],
//! [`pipeline`]), quality ([`quality`]), DCT ([`dct`]), median threshold and
//! the reference's DCT-derived dihedral variants ([`threshold`]),
//! pre-processing profiles ([`profile`]).
//!
//! Two kinds of dihedral hashes: `dihedral_*` are the reference's (8 hashes
//! from one DCT by sign flips; `sigil hash --dihedral` prints them), and
//! `dihedral_pixels_*` hash the 8 transformed copies of the pixels
//! ([`dihedral`]), bit-exact with hashing the image rotated or mirrored.
//! Matching uses the latter: the reference's are up to 36 bits away from
//! them on common sizes (see [`dihedral`] for why).
//! The stages are portable code; [`kernels`] holds every CPU dispatch and
//! the SIMD versions, and only [`PdqHasher`] calls it.

pub mod dct;
pub mod dihedral;
pub mod jarosz;
pub mod kernels;
pub mod luma;
pub mod pipeline;
pub mod profile;
pub mod quality;
pub mod threshold;

pub use kernels::Kernel;
pub use profile::{Profile, ProfileParseError};

use crate::hash::{Dihedral, PdqHash};
use dct::DctMatrix;
use pipeline::{Scratch, Source};

/// Images with a side shorter than this hash to zero with quality 0.
pub const MIN_HASHABLE_DIM: usize = 5;

/// A PDQ hash and its quality (0..=100; below 50 is unreliable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PdqOutput {
    pub hash: PdqHash,
    pub quality: u32,
}

/// The 8 dihedral hashes (order = `Dihedral::ALL`) and the shared quality.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DihedralOutput {
    pub hashes: [PdqHash; 8],
    pub quality: u32,
}

/// How the 8 dihedral hashes are computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DihedralMethod {
    /// The reference's: derived from the image's one DCT by sign flips and
    /// transposes ([`PdqHasher::dihedral_rgb8`]), bit-exact with Meta's
    /// `dih_*` hashes. What `sigil hash --dihedral` prints.
    #[default]
    Derived,
    /// Each the hash of the transformed pixels
    /// ([`PdqHasher::dihedral_pixels_rgb8`]): what matching searches, so a
    /// rotated or mirrored copy is found as its pixels rotated back would be.
    Pixels,
}

/// Why pixels could not be hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdqError {
    #[error("pixel buffer has {found} elements, but {width}x{height} with {channels} channel(s) needs {expected}")]
    BufferLength {
        width: u32,
        height: u32,
        channels: usize,
        expected: usize,
        found: usize,
    },
    #[error("{width}x{height} image is too large to address")]
    TooLarge { width: u32, height: u32 },
    #[error("PDQ kernel {0} is not available on this CPU")]
    KernelUnavailable(Kernel),
}

/// Computes PDQ hashes. Owns scratch buffers and the kernel chosen for this
/// CPU, so create one per thread and reuse it (it is `Send`, not shared).
pub struct PdqHasher {
    kernel: Kernel,
    dct: DctMatrix,
    scratch: Scratch,
    /// Luma and transformed copies for the pixel-domain dihedral hashes.
    dihedral: DihedralScratch,
}

/// Buffers of [`PdqHasher::dihedral_pixels_rgb8`], reused across images.
#[derive(Default)]
struct DihedralScratch {
    luma: Vec<f32>,
    moved: Vec<f32>,
    moved_px: Vec<u8>,
}

impl Default for PdqHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PdqHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdqHasher")
            .field("kernel", &self.kernel)
            .finish_non_exhaustive()
    }
}

/// 64x64 buffer + quality, or `None` for images under 5 px.
type Core = Option<([f32; 256], u32)>;

impl PdqHasher {
    /// A hasher using the best kernel this CPU supports ([`Kernel::detect`]).
    pub fn new() -> Self {
        Self::build(Kernel::detect())
    }

    /// A hasher using `kernel`, if this CPU supports it.
    pub fn with_kernel(kernel: Kernel) -> Result<Self, PdqError> {
        if kernel.is_available() {
            Ok(Self::build(kernel))
        } else {
            Err(PdqError::KernelUnavailable(kernel))
        }
    }

    fn build(kernel: Kernel) -> Self {
        PdqHasher {
            kernel,
            dct: DctMatrix::new(),
            scratch: Scratch::default(),
            dihedral: DihedralScratch::default(),
        }
    }

    /// The kernel in use.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Hash of interleaved RGB8 pixels (`3 * width * height` bytes).
    ///
    /// # Panics
    /// If the buffer length does not match the dimensions (a caller bug);
    /// use [`PdqHasher::try_hash_rgb8`] to get an error instead.
    pub fn hash_rgb8(
        &mut self,
        width: u32,
        height: u32,
        rgb: &[u8],
        profile: Profile,
    ) -> PdqOutput {
        self.try_hash_rgb8(width, height, rgb, profile)
            .unwrap_or_else(|e| panic!("hash_rgb8: {e}"))
    }

    /// Hash of greyscale pixels (`width * height` bytes).
    ///
    /// # Panics
    /// If the buffer length does not match the dimensions.
    pub fn hash_luma8(
        &mut self,
        width: u32,
        height: u32,
        grey: &[u8],
        profile: Profile,
    ) -> PdqOutput {
        self.try_hash_luma8(width, height, grey, profile)
            .unwrap_or_else(|e| panic!("hash_luma8: {e}"))
    }

    /// The 8 dihedral hashes of interleaved RGB8 pixels.
    ///
    /// # Panics
    /// If the buffer length does not match the dimensions.
    pub fn dihedral_rgb8(
        &mut self,
        width: u32,
        height: u32,
        rgb: &[u8],
        profile: Profile,
    ) -> DihedralOutput {
        self.try_dihedral_rgb8(width, height, rgb, profile)
            .unwrap_or_else(|e| panic!("dihedral_rgb8: {e}"))
    }

    /// The 8 dihedral hashes of greyscale pixels.
    ///
    /// # Panics
    /// If the buffer length does not match the dimensions.
    pub fn dihedral_luma8(
        &mut self,
        width: u32,
        height: u32,
        grey: &[u8],
        profile: Profile,
    ) -> DihedralOutput {
        self.try_dihedral_luma8(width, height, grey, profile)
            .unwrap_or_else(|e| panic!("dihedral_luma8: {e}"))
    }

    /// The hashes of the 8 dihedral transforms of interleaved RGB8 pixels
    /// (`Dihedral::ALL` order), each bit-exact with [`PdqHasher::hash_rgb8`]
    /// of the transformed pixels; `[0]` is the image's own hash. What
    /// matching uses to find rotated and mirrored copies (unlike
    /// [`PdqHasher::dihedral_rgb8`], the reference's DCT-derived variants).
    ///
    /// # Panics
    /// If the buffer length does not match the dimensions.
    pub fn dihedral_pixels_rgb8(
        &mut self,
        width: u32,
        height: u32,
        rgb: &[u8],
        profile: Profile,
    ) -> [PdqOutput; 8] {
        self.try_dihedral_pixels_rgb8(width, height, rgb, profile)
            .unwrap_or_else(|e| panic!("dihedral_pixels_rgb8: {e}"))
    }

    /// [`PdqHasher::dihedral_pixels_rgb8`] of greyscale pixels.
    ///
    /// # Panics
    /// If the buffer length does not match the dimensions.
    pub fn dihedral_pixels_luma8(
        &mut self,
        width: u32,
        height: u32,
        grey: &[u8],
        profile: Profile,
    ) -> [PdqOutput; 8] {
        self.try_dihedral_pixels_luma8(width, height, grey, profile)
            .unwrap_or_else(|e| panic!("dihedral_pixels_luma8: {e}"))
    }

    /// [`PdqHasher::dihedral_pixels_rgb8`] returning an error on a length
    /// mismatch.
    pub fn try_dihedral_pixels_rgb8(
        &mut self,
        width: u32,
        height: u32,
        rgb: &[u8],
        profile: Profile,
    ) -> Result<[PdqOutput; 8], PdqError> {
        self.run_dihedral_pixels(width, height, rgb, 3, profile)
    }

    /// [`PdqHasher::dihedral_pixels_luma8`] returning an error on a length
    /// mismatch.
    pub fn try_dihedral_pixels_luma8(
        &mut self,
        width: u32,
        height: u32,
        grey: &[u8],
        profile: Profile,
    ) -> Result<[PdqOutput; 8], PdqError> {
        self.run_dihedral_pixels(width, height, grey, 1, profile)
    }

    /// The reference core's entry point: hash of float luma, row-major,
    /// no pre-processing profile.
    ///
    /// # Panics
    /// If the buffer length does not match the dimensions.
    pub fn hash_luma_f32(&mut self, width: u32, height: u32, luma: &[f32]) -> PdqOutput {
        self.try_hash_luma_f32(width, height, luma)
            .unwrap_or_else(|e| panic!("hash_luma_f32: {e}"))
    }

    /// [`PdqHasher::hash_rgb8`] returning an error on a length mismatch.
    pub fn try_hash_rgb8(
        &mut self,
        width: u32,
        height: u32,
        rgb: &[u8],
        profile: Profile,
    ) -> Result<PdqOutput, PdqError> {
        let core = self.run_u8(width, height, rgb, 3, profile, false)?;
        Ok(single(core))
    }

    /// [`PdqHasher::hash_luma8`] returning an error on a length mismatch.
    pub fn try_hash_luma8(
        &mut self,
        width: u32,
        height: u32,
        grey: &[u8],
        profile: Profile,
    ) -> Result<PdqOutput, PdqError> {
        let core = self.run_u8(width, height, grey, 1, profile, false)?;
        Ok(single(core))
    }

    /// [`PdqHasher::dihedral_rgb8`] returning an error on a length mismatch.
    pub fn try_dihedral_rgb8(
        &mut self,
        width: u32,
        height: u32,
        rgb: &[u8],
        profile: Profile,
    ) -> Result<DihedralOutput, PdqError> {
        let core = self.run_u8(width, height, rgb, 3, profile, true)?;
        Ok(dihedral(core))
    }

    /// [`PdqHasher::dihedral_luma8`] returning an error on a length mismatch.
    pub fn try_dihedral_luma8(
        &mut self,
        width: u32,
        height: u32,
        grey: &[u8],
        profile: Profile,
    ) -> Result<DihedralOutput, PdqError> {
        let core = self.run_u8(width, height, grey, 1, profile, true)?;
        Ok(dihedral(core))
    }

    /// [`PdqHasher::hash_luma_f32`] returning an error on a length mismatch.
    pub fn try_hash_luma_f32(
        &mut self,
        width: u32,
        height: u32,
        luma: &[f32],
    ) -> Result<PdqOutput, PdqError> {
        let (w, h) = checked_len(width, height, 1, luma.len())?;
        Ok(single(self.core(Source::F32(luma), w, h, false)))
    }

    /// The 8 dihedral hashes of float luma (reference core entry point).
    pub fn try_dihedral_luma_f32(
        &mut self,
        width: u32,
        height: u32,
        luma: &[f32],
    ) -> Result<DihedralOutput, PdqError> {
        let (w, h) = checked_len(width, height, 1, luma.len())?;
        Ok(dihedral(self.core(Source::F32(luma), w, h, true)))
    }

    /// Hashes a 64x64 luma grid that is already blurred and decimated (the
    /// reference's `buffer64x64`, row-major), for callers that compute it
    /// without pixels: `sigil scan --fast` derives it from JPEG DCT
    /// coefficients (`decode::fast_jpeg`, feature `fast-jpeg`). Only quality,
    /// DCT and threshold run here, so the result is as exact as the grid
    /// given.
    pub fn hash_grid(&mut self, grid: &[f32; 4096]) -> PdqOutput {
        single(Some(self.finish(grid)))
    }

    /// The 8 dihedral hashes of a grid as [`PdqHasher::hash_grid`] takes.
    pub fn dihedral_grid(&mut self, grid: &[f32; 4096]) -> DihedralOutput {
        dihedral(Some(self.finish(grid)))
    }

    fn run_u8(
        &mut self,
        width: u32,
        height: u32,
        px: &[u8],
        channels: usize,
        profile: Profile,
        want_dihedral: bool,
    ) -> Result<Core, PdqError> {
        let (w, h) = checked_len(width, height, channels, px.len())?;
        let mut squashed = std::mem::take(&mut self.scratch.squash);
        let (src_px, w, h) = if profile == Profile::Cli512 && profile::needs_squash(w, h) {
            profile::squash512(px, w, h, channels, &mut squashed);
            (&squashed[..], profile::CLI_SIDE, profile::CLI_SIDE)
        } else {
            (px, w, h)
        };
        let src = if channels == 3 {
            Source::Rgb8(src_px)
        } else {
            Source::Luma8(src_px)
        };
        let core = self.core(src, w, h, want_dihedral);
        self.scratch.squash = squashed;
        Ok(core)
    }

    /// The pixel-domain dihedral hashes: luma once, then per variant the
    /// transformed luma through the whole core, so each hash is the one of
    /// the transformed pixels (the core only ever sees luma, and luma is
    /// per pixel, so transforming it equals converting the transformed
    /// pixels).
    fn run_dihedral_pixels(
        &mut self,
        width: u32,
        height: u32,
        px: &[u8],
        channels: usize,
        profile: Profile,
    ) -> Result<[PdqOutput; 8], PdqError> {
        let (w, h) = checked_len(width, height, channels, px.len())?;
        let mut out = [single(None); 8];
        if w < MIN_HASHABLE_DIM || h < MIN_HASHABLE_DIM {
            // Every transform keeps the short side short.
            return Ok(out);
        }
        let DihedralScratch {
            mut luma,
            mut moved,
            mut moved_px,
        } = std::mem::take(&mut self.dihedral);
        if profile == Profile::Cli512 && profile::needs_squash(w, h) {
            // The nearest-neighbour squash samples floor(i * n / 512), which
            // is not mirror-symmetric: squash each transformed copy, as
            // hashing that copy would.
            for (o, d) in out.iter_mut().zip(Dihedral::ALL) {
                let (tw, th) = dihedral::transform_into(px, w, h, channels, d, &mut moved_px);
                let src = &moved_px[..px.len()];
                *o = single(self.run_u8(tw as u32, th as u32, src, channels, profile, false)?);
            }
        } else {
            let n = w * h;
            if luma.len() < n {
                luma.resize(n, 0.0);
            }
            let luma = &mut luma[..n];
            if channels == 3 {
                luma::luma_rgb8_scalar(px, luma);
            } else {
                luma::luma_grey8_scalar(px, luma);
            }
            for (o, d) in out.iter_mut().zip(Dihedral::ALL) {
                let core = if d == Dihedral::Orig {
                    self.core(Source::F32(luma), w, h, false)
                } else {
                    let (tw, th) = dihedral::transform_into(luma, w, h, 1, d, &mut moved);
                    self.core(Source::F32(&moved[..n]), tw, th, false)
                };
                *o = single(core);
            }
        }
        self.dihedral = DihedralScratch {
            luma,
            moved,
            moved_px,
        };
        Ok(out)
    }

    /// Blur, decimate, quality and DCT: the reference's
    /// `pdqFloat256FromFloatLuma` (or the dihedral variant, which has no
    /// 64x64 shortcut).
    fn core(&mut self, src: Source<'_>, w: usize, h: usize, want_dihedral: bool) -> Core {
        if w < MIN_HASHABLE_DIM || h < MIN_HASHABLE_DIM {
            return None;
        }
        let mut a = [0.0f32; 4096];
        if w == 64 && h == 64 && !want_dihedral {
            // The reference copies a 64x64 input without blurring. (A window
            // of 1 is *not* an exact identity in float: (x0 + x1) - x0 can
            // round, so the dihedral entry point, which always blurs, may
            // differ in the last bits.)
            match src {
                Source::Rgb8(p) => luma::luma_rgb8_scalar(p, &mut a),
                Source::Luma8(p) => luma::luma_grey8_scalar(p, &mut a),
                Source::F32(f) => a.copy_from_slice(f),
            }
        } else {
            kernels::blur_decimate(self.kernel, src, w, h, &mut self.scratch, &mut a);
        }
        Some(self.finish(&a))
    }

    /// Quality and DCT of the blurred, decimated 64x64 luma.
    fn finish(&self, a: &[f32; 4096]) -> ([f32; 256], u32) {
        let q = quality::quality(a);
        let mut b = [0.0f32; 256];
        kernels::dct(self.kernel, &self.dct, a, &mut b);
        (b, q)
    }
}

fn checked_len(
    width: u32,
    height: u32,
    channels: usize,
    found: usize,
) -> Result<(usize, usize), PdqError> {
    let (w, h) = (width as usize, height as usize);
    let expected = w
        .checked_mul(h)
        .and_then(|n| n.checked_mul(channels))
        .ok_or(PdqError::TooLarge { width, height })?;
    if expected != found {
        return Err(PdqError::BufferLength {
            width,
            height,
            channels,
            expected,
            found,
        });
    }
    Ok((w, h))
}

fn single(core: Core) -> PdqOutput {
    match core {
        None => PdqOutput {
            hash: PdqHash::ZERO,
            quality: 0,
        },
        Some((b, q)) => PdqOutput {
            hash: threshold::bits_from_dct(&b),
            quality: q,
        },
    }
}

fn dihedral(core: Core) -> DihedralOutput {
    match core {
        None => DihedralOutput {
            hashes: [PdqHash::ZERO; 8],
            quality: 0,
        },
        Some((b, q)) => {
            let variants = threshold::dihedral_variants(&b);
            let mut hashes = [PdqHash::ZERO; 8];
            for (h, v) in hashes.iter_mut().zip(variants.iter()) {
                *h = threshold::bits_from_dct(v);
            }
            DihedralOutput { hashes, quality: q }
        }
    }
}
