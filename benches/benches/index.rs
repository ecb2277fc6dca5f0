//! Index search benchmark on the data set of
//! `../shared/tools/peers/index_dataset.py` (db.txt, queries.txt, truth.tsv).
//!
//! SIGIL_INDEX_BENCH_DATA=/work/bench-data/idx1m cargo bench -p sigil-benches --bench index
//!
//! Builds (or reuses) an index in `$SIGIL_INDEX_BENCH_DATA/sigil-index`
//! (set SIGIL_INDEX_BENCH_REBUILD=1 to rebuild and time the build), checks
//! every query's matches against truth.tsv, prints per-query p50/p99 of a
//! radius-31 search one query at a time on one thread (MIH and flat scan),
//! the batched search against one-at-a-time in pairs (batches of 64, 1,000
//! and 4,000), the batch on the rayon pool split by substring against
//! split by query (SIGIL_INDEX_BENCH_POOL_ONLY=1 skips the one-thread
//! batch pass; SIGIL_INDEX_BENCH_SINGLE_ONLY=1 skips both, for quick paired
//! runs of two builds), open time, file size and RSS, then runs the
//! criterion benchmark.
//! Skips with a message when the data is absent.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::Criterion;
use sigil_core::PdqHash;
use sigil_index::{
    ImportOptions, IndexReader, IndexWriter, SearchOptions, SearchPlan, SegmentBuilder,
};

fn rss_kib() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// Answers to the `n` queries repeated (answer `i` for query `i % n`) whose
/// ids differ from truth.tsv's.
fn mismatches(got: &[Vec<sigil_index::Match>], truth: &[BTreeSet<String>], n: usize) -> usize {
    got.iter()
        .enumerate()
        .filter(|(i, m)| {
            let ids: BTreeSet<String> = m.iter().map(|m| m.id.clone()).collect();
            ids != truth[i % n]
        })
        .count()
}

/// Batched search (`search_pdq_many`, one thread) against the same
/// queries one at a time, in pairs: the query set repeated to 4,000 and
/// cut into batches of 64, 1,000 and 4,000; each batch pass directly
/// followed by a one-at-a-time pass over the same queries, `runs` pairs.
fn batch_pass(
    rd: &IndexReader,
    queries: &[PdqHash],
    truth: &[BTreeSet<String>],
    opts: &SearchOptions,
    runs: usize,
) {
    let all: Vec<PdqHash> = queries.iter().cycle().take(4000).copied().collect();
    for size in [64, 1000, 4000] {
        let mut ratios = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let got: Vec<_> = all
                .chunks(size)
                .flat_map(|c| rd.search_pdq_many(c, opts))
                .collect();
            let batch = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for q in &all {
                std::hint::black_box(rd.search_pdq(q, opts));
            }
            let single = t.elapsed().as_secs_f64();
            let mismatches = mismatches(&got, truth, queries.len());
            let per = |s: f64| s / all.len() as f64 * 1e6;
            println!(
                "batch of {size}: {:.1} us per query, one at a time {:.1} us (ratio {:.2}), {mismatches} queries differing from truth.tsv",
                per(batch),
                per(single),
                batch / single
            );
            ratios.push(batch / single);
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "batch of {size}: median ratio of {runs} pairs {:.2}",
            ratios[runs / 2]
        );
    }
}

/// The batch on the rayon pool: `search_pdq_batch` (split by MIH
/// substring set) against the same batches split by query (an equal share
/// of each batch per thread through `search_pdq_many`, the previous way),
/// in pairs, `runs` pairs per batch size; both checked against truth.tsv.
fn pool_pass(
    rd: &IndexReader,
    queries: &[PdqHash],
    truth: &[BTreeSet<String>],
    opts: &SearchOptions,
    runs: usize,
) {
    use rayon::prelude::*;
    let threads = rayon::current_num_threads();
    let all: Vec<PdqHash> = queries.iter().cycle().take(8000).copied().collect();
    for size in [1000, 4000, 8000] {
        let mut ratios = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let by_query: Vec<_> = all
                .chunks(size)
                .flat_map(|c| {
                    c.par_chunks(c.len().div_ceil(threads))
                        .flat_map_iter(|p| rd.search_pdq_many(p, opts))
                        .collect::<Vec<_>>()
                })
                .collect();
            let a = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let by_sub: Vec<_> = all
                .chunks(size)
                .flat_map(|c| rd.search_pdq_batch(c, opts))
                .collect();
            let b = t.elapsed().as_secs_f64();
            let per = |s: f64| s / all.len() as f64 * 1e6;
            println!(
                "pool of {threads}, batch of {size}: split by query {:.1} us per query ({} differing), by substring {:.1} us ({} differing), ratio {:.2}",
                per(a),
                mismatches(&by_query, truth, queries.len()),
                per(b),
                mismatches(&by_sub, truth, queries.len()),
                b / a
            );
            ratios.push(b / a);
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "pool of {threads}, batch of {size}: median ratio by substring / by query of {runs} pairs {:.2}",
            ratios[runs / 2]
        );
    }
}

fn main() {
    let Some(data) = std::env::var_os("SIGIL_INDEX_BENCH_DATA").map(PathBuf::from) else {
        eprintln!("index bench skipped: set SIGIL_INDEX_BENCH_DATA to a directory made by index_dataset.py");
        return;
    };
    if !data.join("db.txt").exists() {
        eprintln!("index bench skipped: {} has no db.txt", data.display());
        return;
    }
    let out = data.join("sigil-index");
    let rebuild = std::env::var_os("SIGIL_INDEX_BENCH_REBUILD").is_some();
    if rebuild && out.exists() {
        std::fs::remove_dir_all(&out).expect("remove old index");
    }
    if !out.join("MANIFEST").exists() {
        let t = Instant::now();
        let mut b = SegmentBuilder::new();
        // db.txt is a plain list of PDQ hashes: its kind must be said.
        let pdq = ImportOptions {
            kind: Some(sigil_core::HashKind::Pdq),
            ..ImportOptions::default()
        };
        let st = sigil_index::import::import_file(&data.join("db.txt"), &pdq, &mut b)
            .expect("import db.txt");
        let parsed = t.elapsed();
        IndexWriter::create(&out)
            .and_then(|mut w| w.add_segment(b))
            .expect("build index");
        println!(
            "build: {} entries in {:.2} s (parse {:.2} s, sort+MIH+write+fsync {:.2} s)",
            st.added,
            t.elapsed().as_secs_f64(),
            parsed.as_secs_f64(),
            (t.elapsed() - parsed).as_secs_f64()
        );
    }
    let mut opens = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        drop(IndexReader::open(&out).expect("open"));
        opens.push(t.elapsed());
    }
    opens.sort();
    let reader = IndexReader::open(&out).expect("open");
    let stats = reader.stats();
    println!(
        "index: {} bytes ({:.3} GB), open p50 {:.3} ms, kernel {:?}",
        stats.bytes,
        stats.bytes as f64 / 1e9,
        percentile(&opens, 0.5),
        reader.kernel()
    );
    let queries: Vec<PdqHash> = std::fs::read_to_string(data.join("queries.txt"))
        .expect("queries.txt")
        .lines()
        .map(|l| PdqHash::from_hex(l.trim()).expect("query hex"))
        .collect();
    let truth: Vec<BTreeSet<String>> = std::fs::read_to_string(data.join("truth.tsv"))
        .expect("truth.tsv")
        .lines()
        .map(|l| l.split('\t').skip(1).map(str::to_string).collect())
        .collect();
    let opts = SearchOptions::default();
    let runs: usize = std::env::var("SIGIL_INDEX_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    // SIGIL_INDEX_BENCH_FLAT=0 skips the (slow) flat-scan pass.
    let with_flat = std::env::var("SIGIL_INDEX_BENCH_FLAT").map_or(true, |v| v != "0");
    for plan in [SearchPlan::Auto, SearchPlan::Flat] {
        let rd = IndexReader::open(&out).expect("open").with_plan(plan);
        // Warm the page cache and check results.
        let mut mismatches = 0;
        for (q, t) in queries.iter().zip(&truth) {
            let got: BTreeSet<String> = rd.search_pdq(q, &opts).into_iter().map(|m| m.id).collect();
            if &got != t {
                mismatches += 1;
            }
        }
        // Latency on a VM drifts from run to run: SIGIL_INDEX_BENCH_RUNS
        // repeats the timed pass and prints the median of the runs' p50s.
        let runs = if plan == SearchPlan::Flat { 1 } else { runs };
        let mut p50s = Vec::with_capacity(runs);
        for _ in 0..runs {
            let mut lat = Vec::with_capacity(queries.len());
            let mut found = 0;
            for q in &queries {
                let t = Instant::now();
                let m = rd.search_pdq(q, &opts);
                lat.push(t.elapsed());
                found += m.len();
            }
            lat.sort();
            p50s.push(percentile(&lat, 0.5));
            println!(
                "{plan:?}: radius 31, {} queries one at a time: p50 {:.4} ms, p99 {:.4} ms, {} matches, {} queries differing from truth.tsv",
                queries.len(),
                percentile(&lat, 0.5),
                percentile(&lat, 0.99),
                found,
                mismatches
            );
        }
        // How much of the mapping the kernel maps with 2 MiB pages (see
        // Segment::open): TLB misses, and so latency, depend on it.
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
        let pmd_kib: u64 = smaps
            .lines()
            .filter(|l| l.starts_with("FilePmdMapped:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
        println!(
            "mapped with 2 MiB pages: {:.1} MiB",
            pmd_kib as f64 / 1024.0
        );
        // Measured while this reader is open and has searched: the mapped
        // pages it touched count in RSS (another reader's would not).
        let (rss, hwm) = rss_kib();
        println!(
            "rss: {:.1} MiB now, {:.1} MiB peak; file {:.1} MiB; rss/file {:.2}",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0,
            stats.bytes as f64 / 1048576.0,
            rss as f64 * 1024.0 / stats.bytes as f64
        );
        if runs > 1 {
            p50s.sort_by(f64::total_cmp);
            println!(
                "{plan:?}: median p50 of {runs} runs {:.4} ms",
                p50s[runs / 2]
            );
        }
        if plan == SearchPlan::Auto && std::env::var_os("SIGIL_INDEX_BENCH_SINGLE_ONLY").is_none() {
            if std::env::var_os("SIGIL_INDEX_BENCH_POOL_ONLY").is_none() {
                batch_pass(&rd, &queries, &truth, &opts, runs);
            }
            pool_pass(&rd, &queries, &truth, &opts, runs);
        }
        if plan == SearchPlan::Flat || !with_flat {
            break;
        }
    }
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    let mut i = 0;
    c.bench_function("index/radius31_single_query", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            reader.search_pdq(&queries[i], &opts)
        })
    });
    c.final_summary();
}
