//! Batched MIH range search: many queries against one segment at once.
//!
//! One query's search ([`crate::mih::range_search`]) visits ~1,400 buckets
//! at random and checks ~3,000 random candidates at 10M entries (a row
//! number, then a key); nearly every one of those reads misses the caches,
//! and the search waits on memory. A batch turns the bucket visits into one
//! ordered pass per substring: the probes of all queries are sorted by
//! bucket, then the bucket offsets, low bytes and posting rows are read in
//! address order, which the hardware prefetcher streams, and a bucket
//! probed by several queries is read once. Only the candidates' 32-byte
//! keys remain random reads; they are prefetched ahead, as in the single
//! search. (Sorting the candidates by row to read the keys in order too
//! measured slower: a batch of 4,000 queries has 12M candidates.)
//!
//! The result is the same set of `(row, distance)` per query as the single
//! search (tested against brute force), in another order.

use crate::mih::{
    buckets_within, extract, fill_radii, for_each_candidate, found_earlier, hamming32,
    masks_within, prefetch, prefetch_span, to_words, LowFilter, SubstringView, BUCKET_BITS,
    MAX_SUBSTRINGS,
};
use crate::radix::scatter_by_digit;

/// Probes held at once per substring. A batch is searched in chunks of
/// queries so that one chunk's probes stay below this (16 MiB of probes,
/// twice for the radix sort).
const MAX_PROBES: usize = 1 << 21;

/// Postings held before they are checked (32 MiB).
const MAX_POSTINGS: usize = 1 << 22;

/// `(bucket, first probe, end, first posting, end)` of a probed bucket.
type Group = (u32, u32, u32, u32, u32);

/// Buffers of [`range_search_batch`], reused across segments and calls.
#[derive(Default)]
pub struct BatchScratch {
    /// The 16-bit bucket masks within the current substring radius, with
    /// their popcount.
    masks: Vec<(u32, u32)>,
    /// Probes of one substring, sorted by bucket.
    probes: Vec<u64>,
    /// The radix sort's other buffer.
    sorted: Vec<u64>,
    /// Every bucket probed, in bucket order.
    groups: Vec<Group>,
    /// `(posting, query in chunk)` of one substring's postings that passed
    /// the low-bit filter.
    postings: Vec<(u32, u32)>,
    /// The row of each of those postings.
    cands: Vec<u32>,
    /// The substring values of every query of the chunk, `m` per query.
    qsub: Vec<u32>,
    /// Postings held before they are checked; 0 means [`MAX_POSTINGS`]
    /// (tests set a small one to exercise the flush).
    max_postings: usize,
}

/// Range search of every query in `queries` with the MIH tables, walking
/// the substrings listed in `walk`: pushes `(query index, row, distance)`
/// for every key within `radius` of the query that one of those
/// substrings is the first to find. Walking all substrings (`0..m`) finds
/// every match, each (query, row) pair once; walks over disjoint sets of
/// substrings (see [`split_substrings`]) find disjoint parts of that set,
/// so they can run on different threads. Like the single search, corrupt
/// tables cannot cause a panic: bad ranges are clamped, bad rows skipped,
/// substrings past `m` ignored.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn range_search_batch<L: LowFilter>(
    filter: L,
    keys: &[[u8; 32]],
    subs: &[SubstringView<'_>],
    walk: &[usize],
    queries: &[[u8; 32]],
    radius: u32,
    scratch: &mut BatchScratch,
    out: &mut Vec<(u32, u32, u32)>,
) {
    let m = subs.len();
    if m == 0 || m > MAX_SUBSTRINGS || queries.is_empty() {
        return;
    }
    let mut radii = [-1i32; MAX_SUBSTRINGS];
    fill_radii(m, |j| subs[j].sub.len, radius, &mut radii);
    let widest = walk
        .iter()
        .filter_map(|&j| radii[..m].get(j))
        .copied()
        .max()
        .unwrap_or(-1)
        .max(0) as u32;
    let per_query = buckets_within(widest);
    let chunk = (MAX_PROBES / per_query.max(1)).clamp(1, queries.len());
    for (c, qs) in queries.chunks(chunk).enumerate() {
        search_chunk(
            filter,
            keys,
            subs,
            walk,
            qs,
            (c * chunk) as u32,
            radius,
            &radii[..m],
            scratch,
            out,
        );
    }
}

/// Splits the substrings of a layout into `parts` sets of about equal
/// work for a batch at `radius`, to be walked on different threads
/// ([`range_search_batch`]). The work of a substring is taken as the
/// number of buckets a query probes in it (at radius 31 and 11 substrings,
/// 137 for a substring radius of 2, 17 for 1): the largest first, each to
/// the lightest set so far. Splitting a batch by substring rather than by
/// query keeps the whole batch on every table, so each thread reads a
/// table once for all queries. Returns fewer sets when there are fewer
/// probed substrings than `parts`; each set is in ascending order.
pub fn split_substrings(subs: &[SubstringView<'_>], radius: u32, parts: usize) -> Vec<Vec<usize>> {
    let m = subs.len().min(MAX_SUBSTRINGS);
    let mut radii = [-1i32; MAX_SUBSTRINGS];
    fill_radii(m, |j| subs[j].sub.len, radius, &mut radii);
    let mut probed: Vec<(usize, usize)> = (0..m)
        .filter_map(|j| u32::try_from(radii[j]).ok().map(|s| (buckets_within(s), j)))
        .collect();
    probed.sort_unstable_by(|a, b| b.cmp(a));
    let parts = parts.clamp(1, probed.len().max(1));
    let mut sets: Vec<(usize, Vec<usize>)> = vec![(0, Vec::new()); parts];
    for (cost, j) in probed {
        if let Some(lightest) = sets.iter_mut().min_by_key(|(load, _)| *load) {
            lightest.0 += cost;
            lightest.1.push(j);
        }
    }
    sets.into_iter()
        .filter(|(_, set)| !set.is_empty())
        .map(|(_, mut set)| {
            set.sort_unstable();
            set
        })
        .collect()
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn search_chunk<L: LowFilter>(
    filter: L,
    keys: &[[u8; 32]],
    subs: &[SubstringView<'_>],
    walk: &[usize],
    queries: &[[u8; 32]],
    first: u32,
    radius: u32,
    radii: &[i32],
    scratch: &mut BatchScratch,
    out: &mut Vec<(u32, u32, u32)>,
) {
    let m = subs.len();
    let BatchScratch {
        masks,
        probes,
        sorted,
        groups,
        postings,
        cands,
        qsub,
        max_postings,
    } = scratch;
    let cap = if *max_postings == 0 {
        MAX_POSTINGS
    } else {
        *max_postings
    };
    qsub.clear();
    for q in queries {
        let w = to_words(q);
        qsub.extend(subs.iter().map(|v| extract(&w, v.sub.start, v.sub.len)));
    }
    let ctx = Chunk {
        keys,
        subs,
        queries,
        qsub,
        first,
        radius,
        radii,
    };
    for &j in walk {
        let Some(v) = subs.get(j) else { continue };
        let Ok(s) = u32::try_from(radii[j]) else {
            continue; // radius -1: this substring need not be probed
        };
        let low_bits = v.sub.low_bits();
        let low_mask = (1u32 << low_bits) - 1;
        masks.clear();
        masks_within(s.min(BUCKET_BITS), |mask, dh| masks.push((mask, dh)));
        // Every probe, `bucket << 48 | query << 16 | allowed << 8 | low
        // byte`, sorted by bucket with two byte-wide radix passes (their
        // 256 counters stay in L1, where a 65536-bucket counting sort
        // missed the cache on every count).
        probes.clear();
        for i in 0..queries.len() {
            let qv = ctx.qsub[i * m + j];
            let (qh, ql) = ((qv >> low_bits) as u64, (qv & low_mask) as u64);
            let tail = (i as u64) << 16 | ql;
            probes.extend(
                masks
                    .iter()
                    .map(|&(mask, dh)| (qh ^ mask as u64) << 48 | tail | ((s - dh) as u64) << 8),
            );
        }
        sorted.resize(probes.len(), 0);
        scatter_by_digit(probes, sorted, |&p| (p >> 48) as usize & 0xff);
        scatter_by_digit(sorted, probes, |&p| (p >> 56) as usize);

        // One pass over the probed buckets in address order; a bucket
        // probed by several queries is read once. The pass is pipelined
        // like the single search, as a small batch's buckets lie far apart:
        // while group g is filtered, the low bytes of group g + D and the
        // offsets of group g + 2D are on their way.
        groups.clear();
        let mut g0 = 0;
        while g0 < probes.len() {
            let h = probes[g0] >> 48;
            let g1 = probes[g0..]
                .iter()
                .position(|&p| p >> 48 != h)
                .map_or(probes.len(), |len| g0 + len);
            groups.push((h as u32, g0 as u32, g1 as u32, 0, 0));
            g0 = g1;
        }
        let n = v.rows.len();
        let lows_usable = low_bits > 0 && v.lows.len() == n;
        const DG: usize = 8;
        let prefetch_offsets = |groups: &[Group], g: usize| {
            if let Some(x) = groups.get(g).and_then(|gr| v.offsets.get(gr.0 as usize)) {
                prefetch(x);
            }
        };
        // Reads group g's posting range and prefetches its low bytes.
        let fetch_range = |g: &mut Group| {
            let h = g.0 as usize;
            let a = (*v.offsets.get(h).unwrap_or(&0) as usize).min(n);
            let b = (*v.offsets.get(h + 1).unwrap_or(&0) as usize).min(n);
            if lows_usable && a < b {
                prefetch_span(v.lows, a, b, 4);
            }
            (g.3, g.4) = (a as u32, b.max(a) as u32);
        };
        (0..2 * DG).for_each(|g| prefetch_offsets(groups, g));
        groups.iter_mut().take(DG).for_each(fetch_range);
        postings.clear();
        for gi in 0..groups.len() {
            prefetch_offsets(groups, gi + 2 * DG);
            if let Some(g) = groups.get_mut(gi + DG) {
                fetch_range(g);
            }
            let (_, p0, p1, a, b) = groups[gi];
            let (a, b) = (a as usize, b as usize);
            for &p in &probes[p0 as usize..p1 as usize] {
                let (qi, allowed, ql) = ((p >> 16) as u32, (p >> 8 & 0xff) as u32, p as u8);
                let mut keep = |k: usize| postings.push((k as u32, qi));
                if !lows_usable || allowed >= low_bits {
                    (a..b).for_each(&mut keep);
                } else if allowed == 0 {
                    let (lo, hi) = filter.equal_run(v.lows, a, b, ql);
                    (lo..hi).for_each(&mut keep);
                } else {
                    filter.within(v.lows, a, b, ql, allowed, &mut keep);
                }
                // Bounded memory whatever the data: a list whose hashes
                // share substrings (or a hostile file) can give a batch
                // many candidates per query.
                if postings.len() >= cap {
                    check(&ctx, j, postings, cands, out);
                    postings.clear();
                }
            }
        }
        check(&ctx, j, postings, cands, out);
    }
}

/// What the candidate check of a chunk needs.
struct Chunk<'c, 'v> {
    keys: &'c [[u8; 32]],
    subs: &'c [SubstringView<'v>],
    queries: &'c [[u8; 32]],
    /// `m` substring values per query.
    qsub: &'c [u32],
    /// Index of the chunk's first query in the whole batch.
    first: u32,
    radius: u32,
    radii: &'c [i32],
}

/// Checks substring `j`'s `postings` (posting, query in chunk) on all 256
/// bits and pushes the matches.
#[inline(always)]
fn check(
    ctx: &Chunk<'_, '_>,
    j: usize,
    postings: &[(u32, u32)],
    cands: &mut Vec<u32>,
    out: &mut Vec<(u32, u32, u32)>,
) {
    let Chunk {
        keys,
        subs,
        queries,
        qsub,
        first,
        radius,
        radii,
    } = *ctx;
    let m = subs.len();
    let v = &subs[j];
    // Check the candidates on all 256 bits, pipelined as in the single
    // search (postings in ascending position, so their rows lie far apart).
    let row_at = |k: usize| v.rows.get(postings.get(k)?.0 as usize);
    for_each_candidate::<32>(
        postings.len(),
        row_at,
        keys,
        cands,
        #[inline(always)]
        |k, row, key| {
            let qi = postings[k].1 as usize;
            let d = hamming32(&queries[qi], key);
            if d > radius {
                return;
            }
            // Report a row only from the first substring that finds it.
            let q = &qsub[qi * m..qi * m + m];
            if !found_earlier(&to_words(key), subs, q, radii, j) {
                out.push((first + qi as u32, row, d));
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::SearchKernel;
    use crate::mih::{build_substring, default_layout, range_search, MihScratch};

    /// Hashes from two distinct bytes, so that substrings repeat and
    /// buckets are crowded (the shape that makes a batch's candidates
    /// pile up), searched with a tiny posting cap so that every substring
    /// is checked in many flushes: the same matches as the single search.
    #[test]
    fn flushed_batches_equal_single_searches() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Bytes 0 or 1: hashes ~16 bits apart, every substring one of 8
        // values, so each bucket holds hundreds of keys.
        let mut keys: Vec<[u8; 32]> = (0..3000)
            .map(|_| std::array::from_fn(|_| (next() % 2) as u8))
            .collect();
        keys.sort_unstable();
        let layout = default_layout();
        let tables: Vec<_> = layout.iter().map(|&s| build_substring(&keys, s)).collect();
        let views: Vec<SubstringView<'_>> = layout
            .iter()
            .zip(&tables)
            .map(|(&sub, t)| SubstringView {
                sub,
                offsets: &t.offsets,
                lows: &t.lows,
                rows: &t.rows,
            })
            .collect();
        let queries: Vec<[u8; 32]> = (0..40)
            .map(|i| {
                let mut q = keys[(next() % keys.len() as u64) as usize];
                q[i % 32] ^= 1 << (i % 8);
                q
            })
            .collect();
        let all: Vec<usize> = (0..views.len()).collect();
        for radius in [0, 8, 31] {
            let mut want = Vec::new();
            for (qi, q) in queries.iter().enumerate() {
                let mut one = Vec::new();
                range_search(
                    &keys,
                    &views,
                    q,
                    radius,
                    &mut MihScratch::default(),
                    &mut one,
                );
                want.extend(one.into_iter().map(|(row, d)| (qi as u32, row, d)));
            }
            want.sort_unstable();
            if radius == 31 {
                assert!(want.len() > 1000, "too few matches to mean anything");
            }
            for kernel in SearchKernel::available() {
                let mut scratch = BatchScratch {
                    max_postings: 7,
                    ..Default::default()
                };
                let mut got = Vec::new();
                kernel.mih_search_batch(
                    &keys,
                    &views,
                    &all,
                    &queries,
                    radius,
                    &mut scratch,
                    &mut got,
                );
                got.sort_unstable();
                assert_eq!(got, want, "radius {radius}, {kernel:?}");
                // Walked in disjoint parts, the substrings find the same.
                for parts in [2, 3, 11] {
                    let mut split = Vec::new();
                    for walk in split_substrings(&views, radius, parts) {
                        kernel.mih_search_batch(
                            &keys,
                            &views,
                            &walk,
                            &queries,
                            radius,
                            &mut scratch,
                            &mut split,
                        );
                    }
                    split.sort_unstable();
                    assert_eq!(split, want, "radius {radius}, {parts} parts, {kernel:?}");
                }
            }
        }
    }
}
