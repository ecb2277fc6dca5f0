//! The machine's floor for random memory reads: what an exact index search
//! costs at least when every candidate is a read from a random place in
//! DRAM. Not a criterion bench (nothing of sigil runs here); it prints
//! nanoseconds per random 8-byte read in a 1 GiB buffer mapped with 2 MiB
//! pages, as the index segments are:
//!
//! - dependent: each address comes from the previous load (latency);
//! - independent: addresses precomputed into an array read in order, so
//!   the core keeps as many misses in flight as it can (throughput, per
//!   core; computing them in the loop measured the arithmetic instead);
//! - the same on both cores at once (two threads, one buffer).
//!
//! `cargo bench -p sigil-benches --bench memory`; BENCHMARKS.md, "gRPC
//! service", uses it to bound MatchHashes.

use std::time::Instant;

use sigil_eval::rng::SplitMix64;

const LEN: usize = 1 << 30;
const READS: usize = 32_000_000;

/// ns per read, addresses known in advance (read from `idx` in order, so
/// the core keeps as many misses in flight as it can).
fn independent(v: &[u64], idx: &[u32]) -> f64 {
    let mut acc = 0u64;
    let t = Instant::now();
    for &i in idx {
        acc = acc.wrapping_add(v[i as usize]);
    }
    std::hint::black_box(acc);
    t.elapsed().as_secs_f64() * 1e9 / idx.len() as f64
}

/// ns per read, each address depending on the previous value.
fn dependent(v: &[u64]) -> f64 {
    let mask = (v.len() - 1) as u64;
    let reads = READS / 8;
    let mut p = 12345u64;
    let t = Instant::now();
    for _ in 0..reads {
        p = v[(p & mask) as usize] ^ p.rotate_left(7);
    }
    std::hint::black_box(p);
    t.elapsed().as_secs_f64() * 1e9 / reads as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut map = memmap2::MmapMut::map_anon(LEN).expect("1 GiB anonymous mapping");
    let huge = map.advise(memmap2::Advice::HugePage).is_ok();
    // A page-aligned mapping is aligned for u64, so the cast cannot fail.
    let words: &mut [u64] = bytemuck::cast_slice_mut(&mut map[..]);
    let mut rng = SplitMix64::new(0x9E37_79B9_7F4A_7C15);
    for w in words.iter_mut() {
        *w = rng.next_u64();
    }
    let v: &[u64] = words;
    let mask = (v.len() - 1) as u64;
    let idx: Vec<u32> = (0..READS).map(|_| (rng.next_u64() & mask) as u32).collect();
    let (lo, hi) = idx.split_at(READS / 2);
    let (mut dep, mut one, mut two) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        dep.push(dependent(v));
        one.push(independent(v, &idx));
        let pair = std::thread::scope(|s| {
            let a = s.spawn(|| independent(v, lo));
            let b = s.spawn(|| independent(v, hi));
            (a.join().unwrap_or(f64::NAN) + b.join().unwrap_or(f64::NAN)) / 2.0
        });
        two.push(pair);
    }
    println!(
        "1 GiB buffer, MADV_HUGEPAGE {}",
        if huge { "accepted" } else { "refused" }
    );
    println!(
        "dependent reads, 1 thread:          {:6.1} ns/read (median of 5)",
        median(dep)
    );
    println!(
        "independent reads, 1 thread:        {:6.1} ns/read",
        median(one)
    );
    println!(
        "independent reads, 2 threads:       {:6.1} ns/read per thread",
        median(two)
    );
}
