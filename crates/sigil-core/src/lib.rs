//! sigil-core: from image bytes to signatures.
//!
//! This crate is the engine side of sigil: it turns untrusted bytes into
//! decoded pixels (under hard limits), and pixels into signatures: the PDQ
//! hash (bit-exact with Meta's reference core), its 8 dihedral variants, a
//! quality score, and the exact MD5/SHA-1/SHA-256 digests of the raw bytes.
//! [`robust`] adds the extra hashes of edited copies (query variants,
//! enrollment augmentation); [`cpu`] is the one place a CPU path is chosen
//! from. It knows nothing of indexes, lists or reports.

pub mod cpu;
pub mod decode;
pub mod exact;
pub mod hash;
pub mod pdq;
pub mod robust;
pub mod sign;

#[cfg(test)]
mod test_rng;

pub use decode::{DecodeError, DecodeLimits, DecodeOptions, DecodedImage, Pixels};
pub use exact::{ExactDigests, ExactHasher};
pub use hash::{Dihedral, HashKind, HexError, PdqHash};
pub use sign::{FileSignatures, ImageSignature, SignOptions, Signer};
