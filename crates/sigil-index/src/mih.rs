//! Multi-index hashing (Norouzi, Punjani & Fleet) over 256-bit PDQ hashes.
//!
//! The hash is cut into `m` contiguous substrings. If two hashes are within
//! Hamming distance `r`, the substring distances `d_j` sum to at most `r`,
//! so for any radii `r_j` with `sum (r_j + 1) >= r + 1` some substring has
//! `d_j <= r_j` (pigeonhole): probing each substring's neighbourhood of its
//! `r_j` finds every true match, and candidates are then checked on all 256
//! bits. [`substring_radii`] spreads the `r + 1` units as evenly as
//! possible, which is tighter than the textbook `floor(r / m)` for all: at
//! `r = 31` and 11 substrings, ten get radius 2 and one gets radius 1.
//!
//! Why 11 substrings of 23-24 bits rather than the 16 x 16 of Meta's MIH:
//! with 16-bit substrings a radius-31 query over 10M hashes checks ~41k
//! random candidates (each a cache miss), about 4 ms. With 23-24 bit
//! substrings it checks ~3k. Each substring table is a 65536-bucket offset
//! table on the substring's top 16 bits (O(1) per probe, mmap-friendly) and,
//! per posting, the remaining 7-8 low bits (`lows`, sorted within a bucket)
//! and the row number. A probe of a top-16 neighbour at distance `dh` keeps
//! postings whose low bits are within `r_j - dh`: the sorted run of equal
//! low bits when that is 0 (see [`LowFilter`]), a short byte scan otherwise.
//! In effect 24-bit substrings at the memory cost of 16-bit tables plus one
//! byte per posting.

use crate::radix::scatter_by_digit;

/// Segments with fewer PDQ rows than this get no MIH tables (a flat scan is
/// as fast and the 256 KiB offset tables would dominate the file).
pub const MIH_MIN_ROWS: usize = 8192;
/// Upper bound on substrings accepted from a file.
pub const MAX_SUBSTRINGS: usize = 64;
/// Bits of every substring that index the bucket table.
pub const BUCKET_BITS: u32 = 16;
/// Entries of a bucket offset table (65536 buckets + end).
pub const OFFSETS_LEN: usize = (1 << BUCKET_BITS) + 1;

/// One substring: `len` bits starting `start` bits from the most significant
/// bit of the 256-bit value (hex order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Substring {
    pub start: u32,
    pub len: u32,
}

impl Substring {
    /// Bits below the bucket bits (0..=8).
    #[inline]
    pub fn low_bits(&self) -> u32 {
        self.len - BUCKET_BITS
    }
}

/// The layout this build writes: 3 substrings of 24 bits then 8 of 23.
pub fn default_layout() -> Vec<Substring> {
    let mut v = Vec::with_capacity(11);
    let mut start = 0;
    for i in 0..11 {
        let len = if i < 3 { 24 } else { 23 };
        v.push(Substring { start, len });
        start += len;
    }
    debug_assert_eq!(start, 256);
    v
}

/// Checks a layout read from a file: 16..=24 bits each, inside 256 bits.
pub fn layout_is_valid(subs: &[Substring]) -> bool {
    !subs.is_empty()
        && subs.len() <= MAX_SUBSTRINGS
        && subs.iter().all(|s| {
            (BUCKET_BITS..=BUCKET_BITS + 8).contains(&s.len) && s.start as u64 + s.len as u64 <= 256
        })
}

/// The hash as four big-endian words (word 0 = the first 16 hex digits).
#[inline(always)]
pub fn to_words(h: &[u8; 32]) -> [u64; 4] {
    let mut w = [0u64; 4];
    for (i, wi) in w.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[i * 8..i * 8 + 8]);
        *wi = u64::from_be_bytes(b);
    }
    w
}

/// Bits `start..start+len` (from the MSB) of the 256-bit value, `len <= 32`.
#[inline(always)]
pub fn extract(w: &[u64; 4], start: u32, len: u32) -> u32 {
    let word = (start / 64) as usize;
    let off = start % 64;
    let hi = w[word & 3] as u128;
    let lo = if word + 1 < 4 { w[word + 1] as u128 } else { 0 };
    let both = (hi << 64) | lo;
    ((both >> (128 - off - len)) & ((1u128 << len) - 1)) as u32
}

/// Number of differing bits between two 32-byte hashes.
#[inline(always)]
pub fn hamming32(a: &[u8; 32], b: &[u8; 32]) -> u32 {
    let mut d = 0;
    for i in 0..4 {
        let mut x = [0u8; 8];
        let mut y = [0u8; 8];
        x.copy_from_slice(&a[i * 8..i * 8 + 8]);
        y.copy_from_slice(&b[i * 8..i * 8 + 8]);
        d += (u64::from_ne_bytes(x) ^ u64::from_ne_bytes(y)).count_ones();
    }
    d
}

/// One substring's table as built in memory (and written as three sections).
pub struct SubstringTable {
    pub offsets: Vec<u32>,
    pub lows: Vec<u8>,
    pub rows: Vec<u32>,
}

/// Builds substring `sub`'s table over sorted keys: postings grouped by the
/// top 16 bits, sorted by the low bits, then by row.
///
/// Each posting is packed as `value << 32 | row`. One stable pass
/// distributes them by the top 8 bucket bits (256 output streams stay in
/// cache); each of those 256 groups (about n/256 postings, a few hundred KB)
/// is then radix-sorted by the low bits and the next 8 bucket bits while it
/// sits in cache. The previous counting sort gathered `vals[row]` at random
/// and scattered into 65536 buckets, which missed cache and TLB on nearly
/// every posting (about 1.8 s per substring at 10M keys). Rows enter in
/// ascending order and every pass is stable, so equal values keep row
/// order, as the format requires.
pub fn build_substring(keys: &[[u8; 32]], sub: Substring) -> SubstringTable {
    let n = keys.len();
    let low_bits = sub.low_bits();
    let low_mask = (1u32 << low_bits) - 1;
    let vals: Vec<u32> = keys
        .iter()
        .map(|k| extract(&to_words(k), sub.start, sub.len))
        .collect();
    let mut offsets = vec![0u32; OFFSETS_LEN];
    for &v in &vals {
        offsets[(v >> low_bits) as usize + 1] += 1;
    }
    for i in 1..OFFSETS_LEN {
        offsets[i] += offsets[i - 1];
    }
    // Pass 1: by the top 8 bucket bits; group g starts at bucket g << 8.
    let group_start = |g: usize| offsets[g << 8] as usize;
    let mut fill: Vec<usize> = (0..256).map(group_start).collect();
    let mut a = vec![0u64; n];
    for (row, &v) in vals.iter().enumerate() {
        let g = (v >> (low_bits + 8)) as usize;
        a[fill[g]] = ((v as u64) << 32) | row as u64;
        fill[g] += 1;
    }
    drop(vals);
    // Pass 2: within each group, stable LSD passes on the low bits, then on
    // the low 8 bucket bits.
    let mut rows = vec![0u32; n];
    let mut lows = if low_bits == 0 {
        Vec::new()
    } else {
        vec![0u8; n]
    };
    let mut tmp: Vec<u64> = Vec::new();
    for g in 0..256 {
        let (s, e) = (group_start(g), offsets[(g + 1) << 8] as usize);
        if s == e {
            continue;
        }
        let grp = &mut a[s..e];
        tmp.clear();
        tmp.resize(grp.len(), 0);
        for (shift, bits) in [(32, low_bits), (32 + low_bits, 8)] {
            if bits == 0 {
                continue;
            }
            let mask = (1u64 << bits) - 1;
            scatter_by_digit(grp, &mut tmp, |&p| ((p >> shift) & mask) as usize);
            grp.copy_from_slice(&tmp);
        }
        for (i, &p) in grp.iter().enumerate() {
            rows[s + i] = p as u32;
        }
        if low_bits > 0 {
            for (i, &p) in grp.iter().enumerate() {
                lows[s + i] = ((p >> 32) as u32 & low_mask) as u8;
            }
        }
    }
    SubstringTable {
        offsets,
        lows,
        rows,
    }
}

/// A substring table borrowed from a mapped segment.
#[derive(Clone, Copy)]
pub struct SubstringView<'a> {
    pub sub: Substring,
    pub offsets: &'a [u32],
    /// Empty when the substring has no low bits.
    pub lows: &'a [u8],
    pub rows: &'a [u32],
}

/// The probe radius of each substring for a search of `radius`: `r_j` with
/// `sum (r_j + 1) = radius + 1`, as even as possible, where the units left
/// over after an even split go to the shortest substrings first (their
/// neighbourhoods are the smallest). `-1` means the substring need not be
/// probed at all (possible when `radius + 1 < m`).
pub fn substring_radii(subs: &[Substring], radius: u32) -> Vec<i32> {
    let mut radii = vec![0; subs.len()];
    fill_radii(subs.len(), |j| subs[j].len, radius, &mut radii);
    radii
}

/// [`substring_radii`] into `out[..m]` without allocating (the search path).
pub(crate) fn fill_radii(m: usize, len_of: impl Fn(usize) -> u32, radius: u32, out: &mut [i32]) {
    if m == 0 {
        return;
    }
    let total = radius as usize + 1;
    let (base, extra) = (total / m, total % m);
    let base = base as i32 - 1;
    out[..m].fill(base);
    // One leftover unit each to the `extra` (< m) shortest substrings, ties
    // to the lower index.
    for _ in 0..extra {
        let shortest = (0..m)
            .filter(|&j| out[j] == base)
            .min_by_key(|&j| (len_of(j), j))
            .expect("fewer leftover units than substrings");
        out[shortest] += 1;
    }
}

/// Top-16-bit buckets within distance `s` of a value: what one substring
/// probed at radius `s` visits.
pub(crate) fn buckets_within(s: u32) -> usize {
    (0..=s.min(BUCKET_BITS))
        .map(|d| binom(BUCKET_BITS, d) as usize)
        .sum()
}

/// Calls `f(mask, popcount)` for every 16-bit mask with at most `s`
/// (<= 16) bits set, fewest bits first ([`buckets_within`] of them).
#[inline(always)]
pub(crate) fn masks_within(s: u32, mut f: impl FnMut(u32, u32)) {
    for dh in 0..=s.min(BUCKET_BITS) {
        // Gosper's hack: every 16-bit mask with `dh` bits set, ascending.
        let mut mask: u32 = (1u32 << dh) - 1;
        while mask < (1 << BUCKET_BITS) {
            f(mask, dh);
            if mask == 0 {
                break;
            }
            let c = mask & mask.wrapping_neg();
            let r = mask + c;
            mask = (((r ^ mask) >> 2) / c) | r;
        }
    }
}

/// Whether a substring before `j` is within its probe radius of the key
/// `kw` (substring values `qsub` of the query): that substring's probe
/// found the key already, so substring `j` does not report it (exact
/// de-duplication without a set).
#[inline(always)]
pub(crate) fn found_earlier(
    kw: &[u64; 4],
    subs: &[SubstringView<'_>],
    qsub: &[u32],
    radii: &[i32],
    j: usize,
) -> bool {
    subs[..j].iter().enumerate().any(|(i, v)| {
        (extract(kw, v.sub.start, v.sub.len) ^ qsub[i]).count_ones() as i32 <= radii[i]
    })
}

/// Estimated work of a MIH probe vs a flat scan, in rough nanoseconds, used
/// to pick the cheaper plan per query (small segments, large radius -> flat).
pub fn mih_is_cheaper(n: usize, subs: &[Substring], radius: u32) -> bool {
    let radii = substring_radii(subs, radius);
    if radii.iter().any(|&r| r > 8) {
        return false;
    }
    let per_bucket = n as f64 / 65536.0;
    let mut cost = 0.0;
    for (sub, &r) in subs.iter().zip(&radii) {
        if r < 0 {
            continue;
        }
        let s = r as u32;
        let mut ball = 0.0; // substring values within s
        for d in 0..=s.min(sub.len) {
            ball += binom(sub.len, d);
        }
        let buckets = buckets_within(s) as f64;
        // A bucket visit: an offset-table read plus a pass over its low bytes.
        cost += buckets * (6.0 + per_bucket * 0.6);
        // A candidate: one random read of its 32-byte hash.
        cost += n as f64 * ball / (1u64 << sub.len) as f64 * 25.0;
    }
    // Flat scan: ~0.5 ns per hash with popcount, plus streaming the keys.
    cost < n as f64 * 0.6
}

fn binom(n: u32, k: u32) -> f64 {
    if k > n {
        return 0.0;
    }
    let mut r = 1.0;
    for i in 0..k {
        r = r * (n - i) as f64 / (i + 1) as f64;
    }
    r
}

/// Buffers of [`range_search`], reused across the segments and dihedral
/// variants of one search.
#[derive(Default)]
pub struct MihScratch {
    /// (bucket, substring, allowed low-bit distance) of every bucket to visit.
    probes: Vec<(u32, u16, u16)>,
    /// (first posting, end, substring, allowed) of every bucket visited
    /// (an empty range for an empty bucket).
    ranges: Vec<(u32, u32, u16, u16)>,
    /// (substring, posting index) of every posting that passed the low bits.
    postings: Vec<(u32, u32)>,
    /// The row of every candidate key.
    cands: Vec<u32>,
}

/// Prefetches the cache lines holding `s[a..b]`, at most `max_lines` of them.
#[inline(always)]
pub(crate) fn prefetch_span<T>(s: &[T], a: usize, b: usize, max_lines: usize) {
    let size = std::mem::size_of::<T>().max(1);
    let base = s.as_ptr() as usize;
    let first = base + a * size;
    let end = base + b.min(s.len()) * size;
    let mut line = first & !63;
    let mut lines = 0;
    while line < end && lines < max_lines {
        if let Some(x) = s.get((line.max(first) - base) / size) {
            prefetch(x);
        }
        line += 64;
        lines += 1;
    }
}

/// How a search filters the low bytes of a bucket: portable code here, a
/// SIMD version in [`crate::kernels`]. Every implementation gives the same
/// answers (tested there).
pub trait LowFilter: Copy {
    /// The postings `lo..hi` within `a..b` whose low byte equals `ql`; the
    /// low bytes of a bucket are sorted, so they form one run.
    fn equal_run(self, lows: &[u8], a: usize, b: usize, ql: u8) -> (usize, usize);
    /// Calls `keep(p)`, in ascending order, for every `p` in `a..b` whose
    /// low byte is within `allowed` bits of `ql`.
    fn within(self, lows: &[u8], a: usize, b: usize, ql: u8, allowed: u32, keep: impl FnMut(usize));
}

/// The portable [`LowFilter`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ScalarLows;

/// Buckets larger than this (skewed lists) are searched by bisection rather
/// than counted.
pub const COUNT_MAX: usize = 1024;

impl LowFilter for ScalarLows {
    /// A bucket of a 10M index holds ~150 postings: counting the smaller
    /// and the equal bytes is branch-free, where a bisection mispredicts
    /// about every other step.
    #[inline(always)]
    fn equal_run(self, lows: &[u8], a: usize, b: usize, ql: u8) -> (usize, usize) {
        let b = b.min(lows.len());
        let Some(run) = lows.get(a..b) else {
            return (a, a);
        };
        if run.len() > COUNT_MAX {
            let lo = run.partition_point(|&x| x < ql);
            return (a + lo, a + lo + run[lo..].partition_point(|&x| x <= ql));
        }
        let (mut lt, mut eq) = (0usize, 0usize);
        // u8 counters cannot overflow within a 240-byte chunk.
        for chunk in run.chunks(240) {
            let (mut l, mut e) = (0u8, 0u8);
            for &x in chunk {
                l += (x < ql) as u8;
                e += (x == ql) as u8;
            }
            lt += l as usize;
            eq += e as usize;
        }
        (a + lt, a + lt + eq)
    }

    #[inline(always)]
    fn within(
        self,
        lows: &[u8],
        a: usize,
        b: usize,
        ql: u8,
        allowed: u32,
        mut keep: impl FnMut(usize),
    ) {
        let b = b.min(lows.len());
        for (p, &l) in lows.iter().enumerate().take(b).skip(a) {
            if (l ^ ql).count_ones() <= allowed {
                keep(p);
            }
        }
    }
}

/// Range search with the MIH tables: pushes `(row, distance)` for every key
/// within `radius` of `q`, each row once. Corrupt tables (offsets out of
/// order or out of range, rows past the end) cannot cause a panic: bad
/// ranges are clamped and bad rows skipped (`verify` reports the corruption).
///
/// A query touches ~1,400 random buckets and a few thousand random keys in
/// tables far larger than the caches, so its cost is memory latency: four
/// dependent misses per candidate (bucket offset, low bytes, row, key).
/// The search is therefore software-pipelined: while it filters bucket
/// `i`, the low bytes of bucket `i + D` and the offsets of bucket `i + 2D`
/// are on their way, and while it checks candidate `k`, the key of
/// candidate `k + D2` and the row of candidate `k + 2 D2`. Many misses
/// overlap, and each line arrives shortly before its use. (Issuing each
/// stage's prefetches all at once measured slower: the miss buffers fill
/// and lines arrive long before their use. Rows prefetched while filtering,
/// as an earlier version did, were often evicted again by the low bytes of
/// later buckets before the candidate stage read them.)
#[inline(always)]
pub fn range_search(
    keys: &[[u8; 32]],
    subs: &[SubstringView<'_>],
    q: &[u8; 32],
    radius: u32,
    scratch: &mut MihScratch,
    out: &mut Vec<(u32, u32)>,
) {
    range_search_with(ScalarLows, keys, subs, q, radius, scratch, out)
}

/// [`range_search`] with the bucket filter of a kernel.
#[inline(always)]
pub fn range_search_with<L: LowFilter>(
    filter: L,
    keys: &[[u8; 32]],
    subs: &[SubstringView<'_>],
    q: &[u8; 32],
    radius: u32,
    scratch: &mut MihScratch,
    out: &mut Vec<(u32, u32)>,
) {
    if subs.is_empty() {
        return;
    }
    let mut radii = [-1i32; MAX_SUBSTRINGS];
    fill_radii(subs.len(), |j| subs[j].sub.len, radius, &mut radii);
    let qw = to_words(q);
    let mut qsub = [0u32; MAX_SUBSTRINGS];
    for (j, v) in subs.iter().enumerate() {
        qsub[j] = extract(&qw, v.sub.start, v.sub.len);
    }
    let MihScratch {
        probes,
        ranges,
        postings,
        cands,
    } = scratch;
    probes.clear();
    ranges.clear();
    postings.clear();
    cands.clear();

    // Stage 1: every bucket to visit (no memory reads yet).
    probes.reserve(
        radii[..subs.len()]
            .iter()
            .filter(|&&r| r >= 0)
            .map(|&r| buckets_within(r as u32))
            .sum(),
    );
    for (j, v) in subs.iter().enumerate() {
        let Ok(s) = u32::try_from(radii[j]) else {
            continue; // radius -1: this substring need not be probed
        };
        let qh = qsub[j] >> v.sub.low_bits();
        masks_within(s.min(BUCKET_BITS), |mask, dh| {
            probes.push((qh ^ mask, j as u16, (s - dh) as u16))
        });
    }

    // Stages 2 and 3, software-pipelined: at step i, prefetch the offset
    // entries of bucket i + 2D, read the posting range of bucket i + D and
    // prefetch its low bytes, and filter bucket i on its low bits. D = 10
    // measured 4-5% faster than 6 at 1M keys on a Zen 4 EPYC (7 paired
    // rounds), and the same at 10M; 14 was no better than 10.
    const D: usize = 10;
    let np = probes.len();
    let prefetch_offsets = |i: usize| {
        if let Some(&(h, j, _)) = probes.get(i) {
            if let Some(x) = subs[j as usize].offsets.get(h as usize) {
                prefetch(x);
            }
        }
    };
    // The range of bucket `i`, empty when the bucket is; prefetches what
    // stage 3 reads of it (the low bytes, or the rows when all are taken).
    let range_of = |i: usize| -> (u32, u32, u16, u16) {
        let (h, j, allowed) = probes[i];
        let v = &subs[j as usize];
        let n = v.rows.len();
        let h = h as usize;
        let a = (*v.offsets.get(h).unwrap_or(&0) as usize).min(n);
        let b = (*v.offsets.get(h + 1).unwrap_or(&0) as usize).min(n);
        if a >= b {
            return (0, 0, j, allowed);
        }
        let low_bits = v.sub.low_bits();
        if low_bits > 0 && v.lows.len() == n && (allowed as u32) < low_bits {
            prefetch_span(v.lows, a, b, 4);
        } else {
            prefetch_span(v.rows, a, b, 16);
        }
        (a as u32, b as u32, j, allowed)
    };
    ranges.resize(np, (0, 0, 0, 0));
    (0..(2 * D).min(np)).for_each(prefetch_offsets);
    for (i, r) in ranges.iter_mut().enumerate().take(D) {
        *r = range_of(i);
    }
    for i in 0..np {
        prefetch_offsets(i + 2 * D);
        if i + D < np {
            ranges[i + D] = range_of(i + D);
        }
        let (a, b, j, allowed) = ranges[i];
        if a >= b {
            continue;
        }
        let (a, b, allowed) = (a as usize, b as usize, allowed as u32);
        let v = &subs[j as usize];
        let low_bits = v.sub.low_bits();
        let n = v.rows.len();
        let j = j as u32;
        let mut keep = |p: usize| postings.push((j, p as u32));
        if low_bits == 0 || v.lows.len() != n || allowed >= low_bits {
            (a..b).for_each(&mut keep);
        } else {
            let ql = (qsub[j as usize] & ((1u32 << low_bits) - 1)) as u8;
            if allowed == 0 {
                let (lo, hi) = filter.equal_run(v.lows, a, b, ql);
                (lo..hi).for_each(&mut keep);
            } else {
                filter.within(v.lows, a, b, ql, allowed, &mut keep);
            }
        }
    }

    // Stages 4 and 5, pipelined the same way (see `for_each_candidate`).
    let row_at = |k: usize| {
        let &(j, p) = postings.get(k)?;
        subs.get(j as usize)?.rows.get(p as usize)
    };
    for_each_candidate::<12>(
        postings.len(),
        row_at,
        keys,
        cands,
        #[inline(always)]
        |k, row, key| {
            let d = hamming32(q, key);
            if d > radius {
                return;
            }
            // Report a row only from the first substring that finds it.
            let j = postings[k].0 as usize;
            if !found_earlier(&to_words(key), subs, &qsub, &radii, j) {
                out.push((row, d));
            }
        },
    );
}

/// The candidate check shared by the single and the batched search, two
/// stages software-pipelined over postings `0..n`: the row slot of posting
/// `k + 2 D` is prefetched (`row_at`), the row of posting `k + D` is read
/// and its key prefetched, then `check(k, row, key)` runs for posting `k`.
/// Each stage is a random read, so keeping ~D of each in flight is what
/// makes the check fast; `D` is tuned per caller. Rows outside `keys`
/// (corrupt tables) are skipped. `rows` is scratch. Callers mark `check`
/// `#[inline(always)]`: left to itself, LLVM made the batch's a call per
/// candidate (~4% more instructions, callgrind).
#[inline(always)]
pub(crate) fn for_each_candidate<'r, const D: usize>(
    n: usize,
    row_at: impl Fn(usize) -> Option<&'r u32>,
    keys: &[[u8; 32]],
    rows: &mut Vec<u32>,
    mut check: impl FnMut(usize, u32, &[u8; 32]),
) {
    // The row of posting k, its key prefetched (u32::MAX when corrupt).
    let resolve = |k: usize| -> u32 {
        match row_at(k) {
            Some(&row) if (row as usize) < keys.len() => {
                prefetch(&keys[row as usize]);
                row
            }
            _ => u32::MAX,
        }
    };
    let prefetch_row = |k: usize| {
        if let Some(x) = row_at(k) {
            prefetch(x);
        }
    };
    rows.clear();
    rows.resize(n, 0);
    (0..(2 * D).min(n)).for_each(prefetch_row);
    for (k, c) in rows.iter_mut().enumerate().take(D) {
        *c = resolve(k);
    }
    for k in 0..n {
        prefetch_row(k + 2 * D);
        if k + D < n {
            rows[k + D] = resolve(k + D);
        }
        let row = rows[k];
        let Some(key) = keys.get(row as usize) else {
            continue;
        };
        check(k, row, key);
    }
}

/// A hint to load the cache line of `r`; no effect on results.
#[inline(always)]
pub(crate) fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults and changes no
    // memory; the pointer comes from a reference, so it is valid anyway.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// Flat scan: every key within `radius`.
#[inline(always)]
pub fn flat_scan(keys: &[[u8; 32]], q: &[u8; 32], radius: u32, out: &mut Vec<(u32, u32)>) {
    for (row, k) in keys.iter().enumerate() {
        let d = hamming32(q, k);
        if d <= radius {
            out.push((row as u32, d));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extract_matches_bit_by_bit() {
        let mut h = [0u8; 32];
        for (i, b) in h.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        let w = to_words(&h);
        for sub in default_layout() {
            let mut v = 0u32;
            for p in sub.start..sub.start + sub.len {
                let bit = (h[(p / 8) as usize] >> (7 - p % 8)) & 1;
                v = (v << 1) | bit as u32;
            }
            assert_eq!(extract(&w, sub.start, sub.len), v, "{sub:?}");
        }
    }

    /// The radix build equals the definition: postings sorted by
    /// (substring value, row), bucket offsets from the top 16 bits.
    #[test]
    fn build_substring_matches_sort_by_value_then_row() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Few distinct bytes so that values repeat and rows must tie-break.
        let mut keys: Vec<[u8; 32]> = (0..20_000)
            .map(|_| {
                let mut k = [0u8; 32];
                for b in k.iter_mut() {
                    *b = (next() % 3) as u8 * 0x55;
                }
                k
            })
            .collect();
        keys.sort_unstable();
        let mut layout = default_layout();
        layout.push(Substring { start: 3, len: 16 });
        for sub in layout {
            let t = build_substring(&keys, sub);
            let mut want: Vec<(u32, u32)> = keys
                .iter()
                .enumerate()
                .map(|(r, k)| (extract(&to_words(k), sub.start, sub.len), r as u32))
                .collect();
            want.sort_unstable();
            let rows: Vec<u32> = want.iter().map(|w| w.1).collect();
            assert_eq!(t.rows, rows, "{sub:?}");
            if sub.low_bits() == 0 {
                assert!(t.lows.is_empty());
            } else {
                let lows: Vec<u8> = want
                    .iter()
                    .map(|w| (w.0 & ((1 << sub.low_bits()) - 1)) as u8)
                    .collect();
                assert_eq!(t.lows, lows, "{sub:?}");
            }
            assert_eq!(t.offsets.len(), OFFSETS_LEN);
            for h in 0..1usize << BUCKET_BITS {
                let (a, b) = (t.offsets[h] as usize, t.offsets[h + 1] as usize);
                assert!(want[a..b]
                    .iter()
                    .all(|w| (w.0 >> sub.low_bits()) as usize == h));
            }
            assert_eq!(t.offsets[OFFSETS_LEN - 1] as usize, keys.len());
        }
    }

    #[test]
    fn substring_radii_cover_every_match() {
        let l = default_layout();
        // Radius 31: ten substrings at 2 and one 24-bit substring at 1.
        let r = substring_radii(&l, 31);
        assert_eq!(r.iter().filter(|&&x| x == 2).count(), 10);
        let one: Vec<usize> = (0..l.len()).filter(|&j| r[j] == 1).collect();
        assert_eq!(one.len(), 1);
        assert_eq!(l[one[0]].len, 24);
        for radius in 0..=63 {
            let r = substring_radii(&l, radius);
            // sum (r_j + 1) = radius + 1, and no two radii differ by more
            // than one: any hash within `radius` has some substring within
            // its r_j, with as few probes as the pigeonhole allows.
            assert_eq!(r.iter().map(|&x| x + 1).sum::<i32>(), radius as i32 + 1);
            let (lo, hi) = (r.iter().min().unwrap(), r.iter().max().unwrap());
            assert!(hi - lo <= 1, "radius {radius}: {r:?}");
        }
        // Exact match: one substring probed at 0, the rest skipped.
        let r = substring_radii(&l, 0);
        assert_eq!(r.iter().filter(|&&x| x == 0).count(), 1);
        assert_eq!(r.iter().filter(|&&x| x == -1).count(), 10);
    }

    #[test]
    fn layout_covers_256_bits() {
        let l = default_layout();
        assert!(layout_is_valid(&l));
        assert_eq!(l.iter().map(|s| s.len).sum::<u32>(), 256);
    }
}
