//! The one way sigil chooses a CPU path: detect the instruction-set
//! extensions once, hold them as a value, ask it.
//!
//! ```
//! let cpu = sigil_core::cpu::CpuFeatures::detect();
//! if cpu.has_avx2() {
//!     // an AVX2 kernel may run
//! }
//! ```
//!
//! A `true` answer is a guarantee: the fields are private and only
//! [`CpuFeatures::detect`] sets them, so `unsafe` code that calls a
//! `#[target_feature]` function may rely on it (say so in its `// SAFETY:`
//! comment). Safe code can only ever ask for *less* ([`CpuFeatures::portable`]),
//! never claim a feature the CPU lacks. No global state: the standard
//! library's detection macros cache their answer, and callers keep the value
//! where they keep the kernel they chose (a hasher, an index reader).

use std::fmt;

/// Instruction-set extensions of this CPU that sigil's kernels use.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CpuFeatures {
    popcnt: bool,
    sse41: bool,
    avx2: bool,
    avx512: bool,
    neon: bool,
}

impl CpuFeatures {
    /// The features of the CPU this runs on.
    pub fn detect() -> CpuFeatures {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            CpuFeatures {
                popcnt: has!("popcnt"),
                sse41: has!("sse4.1"),
                avx2: has!("avx2"),
                avx512: has!("avx512f") && has!("avx512bw") && has!("avx512vpopcntdq"),
                neon: false,
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            CpuFeatures {
                neon: std::arch::is_aarch64_feature_detected!("neon"),
                ..CpuFeatures::portable()
            }
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            CpuFeatures::portable()
        }
    }

    /// No extensions at all: only portable code paths (for tests and
    /// comparisons; every CPU runs it).
    pub const fn portable() -> CpuFeatures {
        CpuFeatures {
            popcnt: false,
            sse41: false,
            avx2: false,
            avx512: false,
            neon: false,
        }
    }

    /// x86-64 POPCNT.
    pub fn has_popcnt(self) -> bool {
        self.popcnt
    }

    /// x86-64 SSE4.1.
    pub fn has_sse41(self) -> bool {
        self.sse41
    }

    /// x86-64 AVX2.
    pub fn has_avx2(self) -> bool {
        self.avx2
    }

    /// x86-64 AVX-512 F, BW and VPOPCNTDQ together (the subset a 512-bit
    /// popcount kernel needs).
    pub fn has_avx512(self) -> bool {
        self.avx512
    }

    /// AArch64 NEON (Advanced SIMD).
    pub fn has_neon(self) -> bool {
        self.neon
    }

    /// Names of the detected features, for logs ("popcnt sse4.1 avx2").
    pub fn names(self) -> Vec<&'static str> {
        [
            ("popcnt", self.popcnt),
            ("sse4.1", self.sse41),
            ("avx2", self.avx2),
            ("avx512", self.avx512),
            ("neon", self.neon),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect()
    }
}

impl fmt::Debug for CpuFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_agrees_with_the_standard_library() {
        let cpu = CpuFeatures::detect();
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            assert_eq!(cpu.has_popcnt(), has!("popcnt"));
            assert_eq!(cpu.has_sse41(), has!("sse4.1"));
            assert_eq!(cpu.has_avx2(), has!("avx2"));
            assert_eq!(
                cpu.has_avx512(),
                has!("avx512f") && has!("avx512bw") && has!("avx512vpopcntdq")
            );
            assert!(!cpu.has_neon());
        }
        #[cfg(target_arch = "aarch64")]
        {
            assert_eq!(
                cpu.has_neon(),
                std::arch::is_aarch64_feature_detected!("neon")
            );
            assert!(!cpu.has_avx2() && !cpu.has_sse41());
        }
        assert_eq!(cpu, CpuFeatures::detect(), "detection is stable");
    }

    #[test]
    fn portable_claims_nothing() {
        let p = CpuFeatures::portable();
        assert!(!p.has_popcnt() && !p.has_sse41() && !p.has_avx2());
        assert!(!p.has_avx512() && !p.has_neon());
        assert!(p.names().is_empty());
        assert_eq!(format!("{p:?}"), "[]");
    }
}
