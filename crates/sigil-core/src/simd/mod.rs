//! SIMD kernels and runtime CPU dispatch.
//!
//! Which kernel runs is decided once, by [`Kernel::detect`] when a
//! `PdqHasher` is created, and stored in it: no global state. Every kernel
//! computes bit-identical results to the scalar code (tests in
//! `tests/pdq_kernels.rs`), because each output value goes through the same
//! float operations in the same order; vectors only run several independent
//! outputs side by side.

use std::fmt;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;

use crate::hash::PdqHash;
use crate::pdq::dct::{dct_scalar, DctMatrix};

/// An instruction-set path for the PDQ and Hamming kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Portable Rust, every CPU.
    Scalar,
    /// x86-64 AVX2 (256-bit).
    Avx2,
    /// x86-64 AVX-512 (F + BW + VPOPCNTDQ): a native-popcount Hamming kernel;
    /// the PDQ stages use the AVX2 code, which such CPUs also run.
    Avx512,
    /// AArch64 NEON (128-bit).
    Neon,
}

impl Kernel {
    /// The best kernel this CPU supports.
    pub fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if Kernel::Avx512.is_available() {
                return Kernel::Avx512;
            }
            if Kernel::Avx2.is_available() {
                return Kernel::Avx2;
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if Kernel::Neon.is_available() {
                return Kernel::Neon;
            }
        }
        Kernel::Scalar
    }

    /// Every kernel this CPU can run, scalar first.
    pub fn available() -> Vec<Kernel> {
        [Kernel::Scalar, Kernel::Avx2, Kernel::Avx512, Kernel::Neon]
            .into_iter()
            .filter(|k| k.is_available())
            .collect()
    }

    /// Whether this CPU can run `self`.
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
            }
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Lowercase name ("scalar", "avx2", "avx512", "neon").
    pub fn as_str(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512",
            Kernel::Neon => "neon",
        }
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The 16x16 DCT of a 64x64 block on `kernel`.
pub fn dct(kernel: Kernel, m: &DctMatrix, a: &[f32; 4096], out: &mut [f32; 256]) {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 | Kernel::Avx512 => avx2::dct(&m.d, &m.dt, a, out),
        #[cfg(target_arch = "aarch64")]
        Kernel::Neon => neon::dct(&m.d, &m.dt, a, out),
        _ => dct_scalar(m, a, out),
    }
}

/// Hamming distances from `query` to every hash of `haystack`:
/// `out[i] = popcount(query ^ haystack[i])` (0..=256).
///
/// Uses the best instruction set of this CPU (detected per call; the check is
/// a cached atomic load). `out` must be at least as long as `haystack`.
///
/// # Panics
/// If `out.len() < haystack.len()`.
pub fn hamming_many(query: &PdqHash, haystack: &[[u8; 32]], out: &mut [u16]) {
    hamming_many_with(Kernel::detect(), query, haystack, out)
}

/// [`hamming_many`] on an explicit kernel (which must be available).
///
/// # Panics
/// If `out.len() < haystack.len()` or `kernel` is not available.
pub fn hamming_many_with(kernel: Kernel, query: &PdqHash, haystack: &[[u8; 32]], out: &mut [u16]) {
    assert!(
        out.len() >= haystack.len(),
        "hamming_many: out shorter than haystack"
    );
    assert!(
        kernel.is_available(),
        "hamming_many: kernel {kernel} not available"
    );
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => avx2::hamming_many(&query.0, haystack, out),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => avx512::hamming_many(&query.0, haystack, out),
        #[cfg(target_arch = "aarch64")]
        Kernel::Neon => neon::hamming_many(&query.0, haystack, out),
        _ => hamming_many_scalar(query, haystack, out),
    }
}

/// Portable Hamming distances (four u64 popcounts per hash).
pub fn hamming_many_scalar(query: &PdqHash, haystack: &[[u8; 32]], out: &mut [u16]) {
    let q = words(&query.0);
    for (h, o) in haystack.iter().zip(out.iter_mut()) {
        let w = words(h);
        let d = (q[0] ^ w[0]).count_ones()
            + (q[1] ^ w[1]).count_ones()
            + (q[2] ^ w[2]).count_ones()
            + (q[3] ^ w[3]).count_ones();
        *o = d as u16;
    }
}

#[inline(always)]
fn words(b: &[u8; 32]) -> [u64; 4] {
    let mut w = [0u64; 4];
    for (i, wi) in w.iter_mut().enumerate() {
        *wi = u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    }
    w
}
