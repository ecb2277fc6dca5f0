//! AVX-512 kernels (x86-64, F + VPOPCNTDQ). Only Hamming has a 512-bit
//! version: it is memory-bound and gains most from a native 64-bit popcount.
//! The PDQ stages of `Kernel::Avx512` run the AVX2 code (every AVX-512 CPU
//! has AVX2; the box filter is bound by division throughput, not width).
//!
//! Tested on CPUs that have it (`tests/pdq_kernels.rs` compares every
//! available kernel with scalar): since 2026-11-29 the development machine
//! (Zen 4) is one, and `Kernel::detect()` picks this kernel there. The code
//! was written on a Zen 3 without AVX-512.

use std::arch::x86_64::*;

/// Hamming distances, two hashes per 512-bit vector, eight per iteration.
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
fn hamming_many_impl(query: &[u8; 32], haystack: &[[u8; 32]], out: &mut [u16]) {
    // SAFETY: `query` is 32 readable bytes.
    let q256 = unsafe { _mm256_loadu_si256(query.as_ptr().cast()) };
    let q = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(q256), q256);
    let mut chunks = haystack.chunks_exact(2);
    let mut outs = out.chunks_exact_mut(2);
    for (pair, o) in (&mut chunks).zip(&mut outs) {
        let bytes: &[[u8; 32]; 2] = pair.try_into().expect("2 hashes");
        // SAFETY: two adjacent 32-byte arrays are 64 readable bytes.
        let v = unsafe { _mm512_loadu_si512(bytes.as_ptr().cast()) };
        let p = _mm512_popcnt_epi64(_mm512_xor_si512(q, v));
        o[0] = _mm512_mask_reduce_add_epi64(0x0f, p) as u16;
        o[1] = _mm512_mask_reduce_add_epi64(0xf0, p) as u16;
    }
    let rest = chunks.remainder();
    let done = haystack.len() - rest.len();
    super::hamming_many_scalar(&crate::hash::PdqHash(*query), rest, &mut out[done..]);
}

/// Hamming distances of `query` to each of `haystack` into `out`.
pub fn hamming_many(query: &[u8; 32], haystack: &[[u8; 32]], out: &mut [u16]) {
    assert!(
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vpopcntdq"),
        "AVX-512 kernel called on a CPU without AVX-512 F/VPOPCNTDQ"
    );
    // SAFETY: the required features were just checked.
    unsafe { hamming_many_impl(query, haystack, out) }
}
