//! CPU-dispatched search kernels. The same generic code is compiled once
//! for the baseline CPU, once with `popcnt` and once with `avx2` (the flat
//! scan, which LLVM then vectorises, and the MIH search with an explicit
//! AVX2 bucket filter); which one runs is chosen at runtime by
//! [`SearchKernel::detect`] and stored in the reader (no global state).
//! Every variant returns identical results (tested in `tests/it/search.rs`,
//! and the SIMD bucket filter against the scalar one below).
//!
//! Soundness: the variants call `#[target_feature]` functions, which are
//! undefined behaviour on a CPU without the feature. So, as ripgrep does
//! with its memory-map choice, the instruction set is a private enum behind
//! an opaque [`SearchKernel`] whose only constructors check the CPU
//! ([`SearchKernel::detect`], [`SearchKernel::available`]) or need nothing
//! ([`SearchKernel::scalar`]): safe code cannot hold a kernel this CPU
//! cannot run.

use std::fmt;

use crate::mih::{self, LowFilter, MihScratch, ScalarLows, SubstringView};
use crate::mih_batch::{self, BatchScratch};

/// An instruction-set variant of the search loops that this CPU runs.
///
/// Opaque on purpose: the only ways to get one are [`SearchKernel::detect`]
/// and [`SearchKernel::available`] (which check the CPU) and
/// [`SearchKernel::scalar`] (portable code).
///
/// ```compile_fail
/// // Safe code cannot name an instruction set the CPU was not checked for:
/// let k = sigil_index::SearchKernel::Avx2;
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SearchKernel(Isa);

/// The instruction sets. Private: holding `Popcnt` or `Avx2` must mean the
/// CPU was checked, which only this module's constructors do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
enum Isa {
    /// Portable code, every CPU.
    Scalar,
    /// x86-64 with the POPCNT instruction.
    Popcnt,
    /// x86-64 with AVX2 and POPCNT.
    Avx2,
}

impl fmt::Debug for SearchKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for SearchKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl SearchKernel {
    /// The best kernel this CPU runs.
    pub fn detect() -> SearchKernel {
        Self::available()
            .last()
            .copied()
            .unwrap_or(SearchKernel::scalar())
    }

    /// Every kernel this CPU runs, slowest first (the scalar one always).
    pub fn available() -> Vec<SearchKernel> {
        let mut v = vec![SearchKernel::scalar()];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("popcnt") {
                v.push(SearchKernel(Isa::Popcnt));
                if std::arch::is_x86_feature_detected!("avx2") {
                    v.push(SearchKernel(Isa::Avx2));
                }
            }
        }
        v
    }

    /// The portable kernel, which every CPU runs.
    pub const fn scalar() -> SearchKernel {
        SearchKernel(Isa::Scalar)
    }

    /// A short name: `scalar`, `popcnt` or `avx2`.
    pub fn name(self) -> &'static str {
        match self.0 {
            Isa::Scalar => "scalar",
            Isa::Popcnt => "popcnt",
            Isa::Avx2 => "avx2",
        }
    }

    /// MIH range search (see [`mih::range_search`]).
    pub fn mih_search(
        self,
        keys: &[[u8; 32]],
        subs: &[SubstringView<'_>],
        q: &[u8; 32],
        radius: u32,
        scratch: &mut MihScratch,
        out: &mut Vec<(u32, u32)>,
    ) {
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            Isa::Popcnt => {
                // SAFETY: a `SearchKernel(Isa::Popcnt)` is only constructed
                // by `available()` after `is_x86_feature_detected!("popcnt")`
                // returned true (the field is private to this module).
                unsafe { mih_popcnt(keys, subs, q, radius, scratch, out) }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: constructed only when AVX2 and POPCNT are detected.
                unsafe { mih_avx2(keys, subs, q, radius, scratch, out) }
            }
            _ => mih::range_search(keys, subs, q, radius, scratch, out),
        }
    }

    /// Batched MIH range search over the substrings in `walk` (see
    /// [`mih_batch::range_search_batch`]).
    #[allow(clippy::too_many_arguments)]
    pub fn mih_search_batch(
        self,
        keys: &[[u8; 32]],
        subs: &[SubstringView<'_>],
        walk: &[usize],
        queries: &[[u8; 32]],
        radius: u32,
        scratch: &mut BatchScratch,
        out: &mut Vec<(u32, u32, u32)>,
    ) {
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            Isa::Popcnt => {
                // SAFETY: constructed only when POPCNT is detected (see above).
                unsafe { batch_popcnt(keys, subs, walk, queries, radius, scratch, out) }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: constructed only when AVX2 and POPCNT are detected.
                unsafe { batch_avx2(keys, subs, walk, queries, radius, scratch, out) }
            }
            _ => mih_batch::range_search_batch(
                ScalarLows, keys, subs, walk, queries, radius, scratch, out,
            ),
        }
    }

    /// Flat scan (see [`mih::flat_scan`]).
    pub fn flat_scan(
        self,
        keys: &[[u8; 32]],
        q: &[u8; 32],
        radius: u32,
        out: &mut Vec<(u32, u32)>,
    ) {
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            Isa::Popcnt => {
                // SAFETY: constructed only when POPCNT is detected (see above).
                unsafe { flat_popcnt(keys, q, radius, out) }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: constructed only when AVX2 and POPCNT are detected.
                unsafe { flat_avx2(keys, q, radius, out) }
            }
            _ => flat_chunked(keys, q, radius, out),
        }
    }
}

/// The flat scan in blocks: distances of a block first (a loop LLVM can
/// vectorise), then the filter.
#[inline(always)]
fn flat_chunked(keys: &[[u8; 32]], q: &[u8; 32], radius: u32, out: &mut Vec<(u32, u32)>) {
    const BLOCK: usize = 256;
    let qw: [u64; 4] = std::array::from_fn(|i| {
        u64::from_ne_bytes(q[i * 8..i * 8 + 8].try_into().unwrap_or_default())
    });
    let mut dist = [0u32; BLOCK];
    for (b, block) in keys.chunks(BLOCK).enumerate() {
        for (d, k) in dist.iter_mut().zip(block) {
            let mut s = 0;
            for i in 0..4 {
                let kw = u64::from_ne_bytes(k[i * 8..i * 8 + 8].try_into().unwrap_or_default());
                s += (kw ^ qw[i]).count_ones();
            }
            *d = s;
        }
        for (i, &d) in dist[..block.len()].iter().enumerate() {
            if d <= radius {
                out.push(((b * BLOCK + i) as u32, d));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn mih_popcnt(
    keys: &[[u8; 32]],
    subs: &[SubstringView<'_>],
    q: &[u8; 32],
    radius: u32,
    scratch: &mut MihScratch,
    out: &mut Vec<(u32, u32)>,
) {
    mih::range_search(keys, subs, q, radius, scratch, out)
}

/// The same search with the AVX2 bucket filter ([`Avx2Lows`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn mih_avx2(
    keys: &[[u8; 32]],
    subs: &[SubstringView<'_>],
    q: &[u8; 32],
    radius: u32,
    scratch: &mut MihScratch,
    out: &mut Vec<(u32, u32)>,
) {
    mih::range_search_with(Avx2Lows(()), keys, subs, q, radius, scratch, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
#[allow(clippy::too_many_arguments)]
unsafe fn batch_popcnt(
    keys: &[[u8; 32]],
    subs: &[SubstringView<'_>],
    walk: &[usize],
    queries: &[[u8; 32]],
    radius: u32,
    scratch: &mut BatchScratch,
    out: &mut Vec<(u32, u32, u32)>,
) {
    mih_batch::range_search_batch(ScalarLows, keys, subs, walk, queries, radius, scratch, out)
}

/// The batched search with the AVX2 bucket filter ([`Avx2Lows`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
#[allow(clippy::too_many_arguments)]
unsafe fn batch_avx2(
    keys: &[[u8; 32]],
    subs: &[SubstringView<'_>],
    walk: &[usize],
    queries: &[[u8; 32]],
    radius: u32,
    scratch: &mut BatchScratch,
    out: &mut Vec<(u32, u32, u32)>,
) {
    mih_batch::range_search_batch(
        Avx2Lows(()),
        keys,
        subs,
        walk,
        queries,
        radius,
        scratch,
        out,
    )
}

/// The bucket filter 32 low bytes at a time. A query filters ~1,400
/// buckets of ~150 bytes at 10M entries; scalar, that was the largest
/// share of its CPU time once the memory reads overlapped.
///
/// Only code that runs with AVX2 enabled can build one (the field is
/// private to this module and only `mih_avx2` and `batch_avx2` construct
/// it), which is what makes the calls to the `target_feature` functions
/// below sound.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Avx2Lows(());

#[cfg(target_arch = "x86_64")]
impl LowFilter for Avx2Lows {
    #[inline(always)]
    fn equal_run(self, lows: &[u8], a: usize, b: usize, ql: u8) -> (usize, usize) {
        if b.min(lows.len()).saturating_sub(a) > mih::COUNT_MAX {
            return ScalarLows.equal_run(lows, a, b, ql);
        }
        // SAFETY: an Avx2Lows exists only inside `mih_avx2`, which runs only
        // where AVX2 was detected (see the type's comment).
        unsafe { avx2::equal_run(lows, a, b, ql) }
    }

    #[inline(always)]
    fn within(
        self,
        lows: &[u8],
        a: usize,
        b: usize,
        ql: u8,
        allowed: u32,
        keep: impl FnMut(usize),
    ) {
        // SAFETY: as above.
        unsafe { avx2::within(lows, a, b, ql, allowed, keep) }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use core::arch::x86_64::*;

    /// Bit `i` set when byte `i` of `lows[i0..]` is in `i0..b` and passes
    /// `f`: the block past the slice's end (at most one per table) is done
    /// byte by byte instead of being loaded.
    #[inline(always)]
    fn tail_mask(lows: &[u8], i0: usize, b: usize, f: impl Fn(u8) -> bool) -> u32 {
        let mut m = 0;
        for (k, &x) in lows[i0..b].iter().enumerate() {
            m |= (f(x) as u32) << k;
        }
        m
    }

    /// The 32-byte block at `i` (caller: `i + 32 <= lows.len()`).
    #[inline(always)]
    unsafe fn load(lows: &[u8], i: usize) -> __m256i {
        debug_assert!(i + 32 <= lows.len());
        // SAFETY: the caller checked that the 32 bytes are inside `lows`.
        unsafe { _mm256_loadu_si256(lows.as_ptr().add(i).cast()) }
    }

    #[target_feature(enable = "avx2,popcnt")]
    pub(super) unsafe fn equal_run(lows: &[u8], a: usize, b: usize, ql: u8) -> (usize, usize) {
        let b = b.min(lows.len());
        let q = _mm256_set1_epi8(ql as i8);
        let (mut lt, mut eq) = (0usize, 0usize);
        let mut i = a;
        while i < b {
            let valid = if b - i >= 32 {
                u32::MAX
            } else {
                (1u32 << (b - i)) - 1
            };
            let (me, mle) = if i + 32 <= lows.len() {
                // SAFETY: checked just above.
                let x = unsafe { load(lows, i) };
                let e = _mm256_movemask_epi8(_mm256_cmpeq_epi8(x, q)) as u32;
                // x <= q exactly when max(x, q) == q (unsigned bytes).
                let le = _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_max_epu8(x, q), q)) as u32;
                (e, le)
            } else {
                (
                    tail_mask(lows, i, b, |x| x == ql),
                    tail_mask(lows, i, b, |x| x <= ql),
                )
            };
            eq += (me & valid).count_ones() as usize;
            lt += (mle & !me & valid).count_ones() as usize;
            i += 32;
        }
        (a + lt, a + lt + eq)
    }

    #[target_feature(enable = "avx2,popcnt")]
    pub(super) unsafe fn within(
        lows: &[u8],
        a: usize,
        b: usize,
        ql: u8,
        allowed: u32,
        mut keep: impl FnMut(usize),
    ) {
        let b = b.min(lows.len());
        let q = _mm256_set1_epi8(ql as i8);
        // Bits set in each nibble value, for a byte popcount by table lookup.
        let lut = _mm256_setr_epi8(
            0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2,
            3, 3, 4,
        );
        let nib = _mm256_set1_epi8(0x0f);
        let lim = _mm256_set1_epi8(allowed.min(8) as i8);
        let mut i = a;
        while i < b {
            let valid = if b - i >= 32 {
                u32::MAX
            } else {
                (1u32 << (b - i)) - 1
            };
            let mut m = if i + 32 <= lows.len() {
                // SAFETY: checked just above.
                let y = _mm256_xor_si256(unsafe { load(lows, i) }, q);
                let pc = _mm256_add_epi8(
                    _mm256_shuffle_epi8(lut, _mm256_and_si256(y, nib)),
                    _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(y, 4), nib)),
                );
                // pc <= lim exactly when min(pc, lim) == pc.
                _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_min_epu8(pc, lim), pc)) as u32
            } else {
                tail_mask(lows, i, b, |x| (x ^ ql).count_ones() <= allowed)
            };
            m &= valid;
            while m != 0 {
                keep(i + m.trailing_zeros() as usize);
                m &= m - 1;
            }
            i += 32;
        }
    }
}

#[cfg(test)]
mod construction_tests {
    use super::*;

    /// The kernels on offer are the scalar one first, then only what this
    /// CPU reports, each once; `detect` picks the last (best) of them.
    #[test]
    fn only_detected_kernels_are_offered() {
        let all = SearchKernel::available();
        assert_eq!(all[0], SearchKernel::scalar());
        assert_eq!(SearchKernel::detect(), *all.last().unwrap());
        let names: Vec<&str> = all.iter().map(|k| k.name()).collect();
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(names, unique);
        #[cfg(target_arch = "x86_64")]
        {
            let popcnt = std::arch::is_x86_feature_detected!("popcnt");
            let avx2 = popcnt && std::arch::is_x86_feature_detected!("avx2");
            assert_eq!(names.contains(&"popcnt"), popcnt);
            assert_eq!(names.contains(&"avx2"), avx2);
        }
        #[cfg(not(target_arch = "x86_64"))]
        assert_eq!(names, ["scalar"]);
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// The AVX2 bucket filter equals the scalar one on every bucket shape:
    /// runs of every length, buckets ending at and near the table's end
    /// (where the last block cannot be loaded whole), every query byte.
    #[test]
    fn avx2_bucket_filter_equals_scalar() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("no AVX2 on this CPU: nothing to compare");
            return;
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for case in 0..400 {
            let n = (next() % 400) as usize + 1;
            // Few distinct values in some cases, so runs are long.
            let spread = if case % 3 == 0 { 4 } else { 256 };
            let mut lows: Vec<u8> = (0..n).map(|_| (next() % spread) as u8).collect();
            let a = (next() as usize) % n;
            let b = if case % 2 == 0 {
                n
            } else {
                a + (next() as usize) % (n - a + 1)
            };
            lows[a..b].sort_unstable();
            for ql in [0u8, 1, 2, 3, 127, 128, 254, 255, (next() % 256) as u8] {
                // SAFETY: AVX2 was detected above.
                let got = unsafe { avx2::equal_run(&lows, a, b, ql) };
                assert_eq!(got, ScalarLows.equal_run(&lows, a, b, ql), "case {case}");
                for allowed in 0..=8 {
                    let mut want = Vec::new();
                    ScalarLows.within(&lows, a, b, ql, allowed, |p| want.push(p));
                    let mut got = Vec::new();
                    // SAFETY: AVX2 was detected above.
                    unsafe { avx2::within(&lows, a, b, ql, allowed, |p| got.push(p)) };
                    assert_eq!(got, want, "case {case} allowed {allowed}");
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn flat_popcnt(keys: &[[u8; 32]], q: &[u8; 32], radius: u32, out: &mut Vec<(u32, u32)>) {
    flat_chunked(keys, q, radius, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn flat_avx2(keys: &[[u8; 32]], q: &[u8; 32], radius: u32, out: &mut Vec<(u32, u32)>) {
    flat_chunked(keys, q, radius, out)
}
