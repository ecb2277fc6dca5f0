//! Measures what docs/operations.md's capacity arithmetic needs, on the
//! machine it runs on: bytes and resident memory per indexed PDQ hash,
//! index build time, and radius-31 lookups per second on one core (one
//! query at a time, and in batches), over N random hashes (default 1M).
//!
//! Random 256-bit hashes are the hardest case for multi-index hashing
//! (no clustering), so these are conservative figures.

use std::time::Instant;

use sigil_core::PdqHash;
use sigil_index::{EntryMeta, IndexReader, IndexWriter, SearchOptions, SegmentBuilder};

fn random_hashes(seed: u64, n: usize) -> Vec<[u8; 32]> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            let mut h = [0u8; 32];
            for c in h.chunks_mut(8) {
                s ^= s >> 12;
                s ^= s << 25;
                s ^= s >> 27;
                c.copy_from_slice(&s.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
            }
            h
        })
        .collect()
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(f64::NAN)
        / 1024.0
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let index = dir.path().join("index");

    let hashes = random_hashes(42, n);
    let t = Instant::now();
    let mut w = IndexWriter::create(&index).expect("create index");
    let mut b = SegmentBuilder::new();
    for (i, h) in hashes.iter().enumerate() {
        let id = i.to_string();
        let meta = EntryMeta {
            id: &id,
            list: "bulk",
            category: "B2",
            note: None,
        };
        b.push_pdq(h, meta).expect("push");
    }
    w.add_segment(b).expect("write segment");
    drop(w);
    let build_s = t.elapsed().as_secs_f64();
    let bytes: u64 = std::fs::read_dir(&index)
        .expect("index dir")
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    drop(hashes);

    let rss0 = rss_mib();
    let t = Instant::now();
    let reader = IndexReader::open(&index).expect("open");
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    // Queries: half random (full searches, no match), half near an entry
    // (a few bits flipped), as a real mix of misses and hits.
    let entries = random_hashes(42, 1000);
    let mut queries: Vec<PdqHash> = random_hashes(7, 1000).into_iter().map(PdqHash).collect();
    for e in &entries {
        let mut h = *e;
        h[0] ^= 0b1011;
        h[17] ^= 0x40;
        queries.push(PdqHash(h));
    }
    let opts = SearchOptions::default();
    // Warm-up touches the pages a query needs, as a serving replica would.
    let mut found = 0usize;
    for q in &queries {
        found += reader.search_pdq(q, &opts).len();
    }
    let rounds = 5;
    let t = Instant::now();
    for _ in 0..rounds {
        for q in &queries {
            found += reader.search_pdq(q, &opts).len();
        }
    }
    let single_s = t.elapsed().as_secs_f64();
    let single_qps = (rounds * queries.len()) as f64 / single_s;
    let t = Instant::now();
    for _ in 0..rounds {
        found += reader
            .search_pdq_batch(&queries, &opts)
            .iter()
            .map(Vec::len)
            .sum::<usize>();
    }
    let batch_s = t.elapsed().as_secs_f64();
    let batch_qps = (rounds * queries.len()) as f64 / batch_s;
    let rss1 = rss_mib();

    println!("entries                      {n}");
    println!("index build                  {build_s:.2} s");
    println!(
        "index on disk                {:.1} MiB = {:.1} bytes/entry = {:.0} MiB per million",
        bytes as f64 / 1048576.0,
        bytes as f64 / n as f64,
        bytes as f64 / n as f64
    );
    println!("open                         {open_ms:.2} ms");
    println!(
        "RSS after open + queries     +{:.1} MiB over {rss0:.1} MiB",
        rss1 - rss0
    );
    println!(
        "radius-31 lookups, 1 thread  {single_qps:.0}/s ({:.3} ms each)",
        1e3 / single_qps
    );
    println!("batch lookups (rayon, all cores) {batch_qps:.0}/s");
    println!("matches found (sanity)       {found}");
}
