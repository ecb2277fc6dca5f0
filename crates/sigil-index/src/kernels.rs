//! CPU-dispatched search kernels. The same generic code is compiled once
//! for the baseline CPU and once with `popcnt` (and `avx2` for the flat
//! scan, which LLVM then vectorises); which one runs is chosen at runtime
//! by [`SearchKernel::detect`] and stored in the reader (no global state).
//! Every variant returns identical results (tested in `tests/kernels.rs`).

use crate::mih::{self, SubstringView};

/// An instruction-set variant of the search loops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchKernel {
    /// Portable code, every CPU.
    Scalar,
    /// x86-64 with the POPCNT instruction.
    Popcnt,
    /// x86-64 with AVX2 and POPCNT.
    Avx2,
}

impl SearchKernel {
    /// The best kernel this CPU runs.
    pub fn detect() -> SearchKernel {
        Self::available()
            .last()
            .copied()
            .unwrap_or(SearchKernel::Scalar)
    }

    /// Every kernel this CPU runs, slowest first.
    pub fn available() -> Vec<SearchKernel> {
        let mut v = vec![SearchKernel::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("popcnt") {
                v.push(SearchKernel::Popcnt);
                if std::arch::is_x86_feature_detected!("avx2") {
                    v.push(SearchKernel::Avx2);
                }
            }
        }
        v
    }

    /// MIH range search (see [`mih::range_search`]).
    pub fn mih_search(
        self,
        keys: &[[u8; 32]],
        subs: &[SubstringView<'_>],
        q: &[u8; 32],
        radius: u32,
        cands: &mut Vec<(u32, u32)>,
        out: &mut Vec<(u32, u32)>,
    ) {
        match self {
            #[cfg(target_arch = "x86_64")]
            SearchKernel::Popcnt | SearchKernel::Avx2 => {
                // SAFETY: these variants are only constructed by `available()`
                // after `is_x86_feature_detected!("popcnt")` returned true
                // (or by a caller who checked the same).
                unsafe { mih_popcnt(keys, subs, q, radius, cands, out) }
            }
            _ => mih::range_search(keys, subs, q, radius, cands, out),
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
        match self {
            #[cfg(target_arch = "x86_64")]
            SearchKernel::Popcnt => {
                // SAFETY: constructed only when POPCNT is detected (see above).
                unsafe { flat_popcnt(keys, q, radius, out) }
            }
            #[cfg(target_arch = "x86_64")]
            SearchKernel::Avx2 => {
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
    cands: &mut Vec<(u32, u32)>,
    out: &mut Vec<(u32, u32)>,
) {
    mih::range_search(keys, subs, q, radius, cands, out)
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
