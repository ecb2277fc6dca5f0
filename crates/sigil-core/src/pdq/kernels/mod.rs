//! Every CPU dispatch of the PDQ stages, in one place.
//!
//! The stages (`luma`, `jarosz`, `pipeline`, `dct`) are portable code and
//! know nothing of instruction sets; this module imports them, and the
//! leaves (`avx2`, `neon`) implement the same stages with vectors. Only the
//! stages' entry point, [`PdqHasher`](super::PdqHasher), calls in here.
//!
//! Which kernel runs is decided once, by [`Kernel::detect`] (from
//! [`CpuFeatures`]) when a `PdqHasher` is created, and stored in it: no
//! global state. Every kernel computes bit-identical results to the scalar
//! code (tests in `tests/it/pdq_kernels.rs`), because each output value goes
//! through the same float operations in the same order; vectors only run
//! several independent outputs side by side.

use std::fmt;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "aarch64")]
pub mod neon;

use super::dct::{dct_scalar, DctMatrix};
use super::pipeline::{blur_decimate_scalar, Scratch, Source};
use crate::cpu::CpuFeatures;

/// An instruction-set path for the PDQ stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Portable Rust, every CPU.
    Scalar,
    /// x86-64 AVX2 (256-bit).
    Avx2,
    /// x86-64 with AVX-512 (F + BW + VPOPCNTDQ). The PDQ stages run the AVX2
    /// code, which such CPUs also run: the box filter is bound by division
    /// throughput, not vector width. Kept as its own name so reports and
    /// benchmarks say which CPU class they ran on.
    Avx512,
    /// AArch64 NEON (128-bit).
    Neon,
}

impl Kernel {
    /// The best kernel this CPU supports.
    pub fn detect() -> Kernel {
        let cpu = CpuFeatures::detect();
        [Kernel::Avx512, Kernel::Avx2, Kernel::Neon]
            .into_iter()
            .find(|k| k.runs_on(cpu))
            .unwrap_or(Kernel::Scalar)
    }

    /// Every kernel this CPU can run, scalar first.
    pub fn available() -> Vec<Kernel> {
        let cpu = CpuFeatures::detect();
        [Kernel::Scalar, Kernel::Avx2, Kernel::Avx512, Kernel::Neon]
            .into_iter()
            .filter(|k| k.runs_on(cpu))
            .collect()
    }

    /// Whether this CPU can run `self`.
    pub fn is_available(self) -> bool {
        self.runs_on(CpuFeatures::detect())
    }

    fn runs_on(self, cpu: CpuFeatures) -> bool {
        match self {
            Kernel::Scalar => true,
            Kernel::Avx2 => cpu.has_avx2(),
            Kernel::Avx512 => cpu.has_avx2() && cpu.has_avx512(),
            Kernel::Neon => cpu.has_neon(),
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

/// Blur and decimate `src` (`h x w`, both >= 5) into `out` (64x64
/// row-major) on `kernel`.
///
/// # Panics
/// If `kernel` is not available on this CPU (the SIMD leaves check).
pub fn blur_decimate(
    kernel: Kernel,
    src: Source<'_>,
    w: usize,
    h: usize,
    s: &mut Scratch,
    out: &mut [f32; 4096],
) {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 | Kernel::Avx512 => avx2::blur_decimate(src, w, h, s, out),
        #[cfg(target_arch = "aarch64")]
        Kernel::Neon => neon::blur_decimate(src, w, h, s, out),
        _ => blur_decimate_scalar(src, w, h, s, out),
    }
}

/// The 16x16 DCT of a 64x64 block on `kernel`.
///
/// # Panics
/// If `kernel` is not available on this CPU (the SIMD leaves check).
pub fn dct(kernel: Kernel, m: &DctMatrix, a: &[f32; 4096], out: &mut [f32; 256]) {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 | Kernel::Avx512 => avx2::dct(&m.d, &m.dt, a, out),
        #[cfg(target_arch = "aarch64")]
        Kernel::Neon => neon::dct(&m.d, &m.dt, a, out),
        _ => dct_scalar(m, a, out),
    }
}
