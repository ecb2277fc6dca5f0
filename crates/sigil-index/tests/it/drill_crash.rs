//! Reliability drills for the index, run as ordinary tests:
//!
//! - kill -9 of a process in the middle of `add` (new segment) and
//!   `compact` leaves an index that opens, verifies (every checksum) and
//!   holds either the last acknowledged generation or the one being
//!   committed, never anything in between; the next writer carries on;
//! - a corrupt generation offered on reload (truncated or overwritten
//!   segment, missing segment, garbage manifest) is refused and the old
//!   generation keeps serving, including requests already in flight;
//! - a reload under query load loses no request: every query during 20
//!   reloads and compactions finds the entry present in every generation.
//!
//! The kill -9 drill re-runs this test binary as the writer process (the
//! library has no binary of its own; `crates/sigil-cli/tests/drills.rs`
//! does the same through `sigil index ...`).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use sigil_core::PdqHash;
use sigil_index::{
    EntryMeta, IndexReader, IndexWriter, SearchOptions, SegmentBuilder, SharedIndex,
};

/// An entry every generation holds: found by every query if nothing is lost.
const SENTINEL: [u8; 32] = [0x5a; 32];
const BATCH: usize = 500;

/// Serialises the drills of this binary. The kill -9 drill forks writer
/// processes; between fork and exec a child holds a copy of every open
/// descriptor of this process, including another drill's `LOCK` file, so
/// that drill's next `IndexWriter::open` would see the index as locked by
/// a writer that is about to vanish. Running the drills one at a time keeps
/// each one's locks its own.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Deterministic pseudo-random hashes (xorshift64*), far from the sentinel
/// with overwhelming probability.
fn hashes(seed: u64, n: usize) -> Vec<[u8; 32]> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            let mut h = [0u8; 32];
            for chunk in h.chunks_mut(8) {
                s ^= s >> 12;
                s ^= s << 25;
                s ^= s >> 27;
                chunk.copy_from_slice(&s.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
            }
            h
        })
        .collect()
}

fn batch_builder(seed: u64, n: usize) -> SegmentBuilder {
    let mut b = SegmentBuilder::new();
    for (i, h) in hashes(seed, n).iter().enumerate() {
        let id = format!("{seed}-{i}");
        b.push_pdq(
            h,
            EntryMeta {
                id: &id,
                list: "drill",
                category: "B2",
                note: None,
            },
        )
        .unwrap();
    }
    b
}

/// Generation 1: the sentinel plus one batch.
fn create_index(dir: &Path) {
    let mut w = IndexWriter::create(dir).unwrap();
    let mut b = batch_builder(1, BATCH);
    b.push_pdq(
        &SENTINEL,
        EntryMeta {
            id: "sentinel",
            list: "drill",
            category: "A1",
            note: None,
        },
    )
    .unwrap();
    assert_eq!(w.add_segment(b).unwrap(), 1);
}

fn total_entries(r: &IndexReader) -> u64 {
    r.stats().entries.values().sum()
}

fn finds_sentinel(r: &IndexReader) -> bool {
    r.search_pdq(&PdqHash(SENTINEL), &SearchOptions::default())
        .iter()
        .any(|m| m.id == "sentinel" && m.distance == 0)
}

// ------------------------------------------------------ kill -9 mid-write

const CHILD_ENV: &str = "SIGIL_DRILL_INDEX_WRITER";

/// Not a test of its own: the writer process of the kill -9 drill. Adds a
/// segment, and every third step compacts, printing `ACK <generation>
/// <entries>` after each commit returns.
#[test]
fn drill_child_writer_entry() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut out = std::io::stdout().lock();
    let mut w = IndexWriter::open(&dir).unwrap();
    // Bounded: the parent kills us long before this ends.
    for step in 0..10_000u64 {
        let g = if step % 3 == 2 {
            w.compact().unwrap()
        } else {
            w.add_segment(batch_builder(1000 + step, BATCH)).unwrap()
        };
        let r = IndexReader::open(&dir).unwrap();
        writeln!(out, "ACK {g} {}", total_entries(&r)).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn drill_kill9_during_add_and_compact_leaves_a_valid_index() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    create_index(dir.path());
    let exe = std::env::current_exe().unwrap();
    // Kill at different points: after k acknowledged commits plus a delay
    // that lands inside the next segment write, fsync, rename or compaction.
    for (round, (acks_before_kill, delay_us)) in
        [(1, 0), (2, 300), (3, 1500), (4, 5000), (2, 12000), (5, 800)]
            .into_iter()
            .enumerate()
    {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                &test_path("drill_child_writer_entry"),
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut last: Option<(u64, u64)> = None;
        let mut seen = 0;
        let mut line = String::new();
        while seen < acks_before_kill {
            line.clear();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "writer exited early"
            );
            if let Some(rest) = line.trim().strip_prefix("ACK ") {
                let mut it = rest.split(' ').map(|x| x.parse::<u64>().unwrap());
                last = Some((it.next().unwrap(), it.next().unwrap()));
                seen += 1;
            }
        }
        thread::sleep(Duration::from_micros(delay_us));
        child.kill().unwrap(); // SIGKILL
        assert!(!child.wait().unwrap().success());
        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        for l in rest.lines() {
            if let Some(r) = l.trim().strip_prefix("ACK ") {
                let mut it = r.split(' ').map(|x| x.parse::<u64>().unwrap());
                last = Some((it.next().unwrap(), it.next().unwrap()));
            }
        }
        let (acked_gen, acked_entries) = last.unwrap();

        // The index opens, every checksum holds, and it is the acknowledged
        // generation or the one that was being committed, whole.
        let r = IndexReader::open(dir.path())
            .unwrap_or_else(|e| panic!("round {round}: index unusable after kill -9: {e}"));
        r.verify()
            .unwrap_or_else(|e| panic!("round {round}: verify failed after kill -9: {e}"));
        let g = r.generation();
        let n = total_entries(&r);
        eprintln!(
            "drill kill -9 round {round}: acknowledged generation {acked_gen} ({acked_entries} entries), found {g} ({n} entries)"
        );
        assert!(
            g == acked_gen || g == acked_gen + 1,
            "round {round}: generation {g} after acknowledged {acked_gen}"
        );
        if g == acked_gen {
            assert_eq!(n, acked_entries, "round {round}: entries of generation {g}");
        } else {
            // The next step was a whole add (+BATCH) or a compaction (same count).
            assert!(
                n == acked_entries || n == acked_entries + BATCH as u64,
                "round {round}: {n} entries in generation {g}, acknowledged {acked_entries}"
            );
        }
        assert!(finds_sentinel(&r), "round {round}: sentinel lost");
        drop(r);

        // The lock died with the process: a new writer opens and cleans up
        // the dead writer's temporary files.
        let w = IndexWriter::open(dir.path()).unwrap();
        w.remove_unreferenced().unwrap();
        drop(w);
        assert!(IndexReader::open(dir.path()).is_ok());
    }
}

// ------------------------------------------------- corrupt generation offered

/// The newest segment file named by the manifest.
fn newest_segment(dir: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sgs"))
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

#[test]
fn drill_corrupt_generation_is_refused_and_old_keeps_serving() {
    let _serial = serial();
    type Corruptor = fn(&Path);
    let corruptions: [(&str, Corruptor); 5] = [
        ("truncated segment", |dir| {
            let p = newest_segment(dir);
            let len = std::fs::metadata(&p).unwrap().len();
            let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            f.set_len(len / 2).unwrap();
        }),
        ("overwritten segment header", |dir| {
            let p = newest_segment(dir);
            let mut bytes = std::fs::read(&p).unwrap();
            for b in bytes.iter_mut().take(64) {
                *b ^= 0xff;
            }
            std::fs::write(&p, bytes).unwrap();
        }),
        ("zero-length segment", |dir| {
            std::fs::write(newest_segment(dir), b"").unwrap();
        }),
        ("missing segment", |dir| {
            std::fs::remove_file(newest_segment(dir)).unwrap();
        }),
        ("garbage manifest", |dir| {
            std::fs::write(dir.join("MANIFEST"), b"{\"generation\": 99, \"segm").unwrap();
        }),
    ];
    for (what, corrupt) in corruptions {
        let dir = tempfile::tempdir().unwrap();
        create_index(dir.path());
        let shared = SharedIndex::open(dir.path()).unwrap();
        let in_flight = shared.current();
        assert_eq!(in_flight.generation(), 1);

        // A new generation is committed, then damaged before the reload.
        let mut w = IndexWriter::open(dir.path()).unwrap();
        assert_eq!(w.add_segment(batch_builder(7, BATCH)).unwrap(), 2);
        drop(w);
        corrupt(dir.path());

        let err = shared
            .reload()
            .err()
            .unwrap_or_else(|| panic!("{what}: corrupt generation was accepted"));
        eprintln!("drill corrupt reload ({what}): refused: {err}");
        assert!(!err.to_string().is_empty());
        // The old generation serves new requests and the in-flight one.
        let now = shared.current();
        assert_eq!(now.generation(), 1, "{what}: generation changed");
        assert!(
            finds_sentinel(&now),
            "{what}: new request lost the sentinel"
        );
        assert!(
            finds_sentinel(&in_flight),
            "{what}: in-flight request broke"
        );
        assert_eq!(total_entries(&now), BATCH as u64 + 1);
    }
}

// ----------------------------------------------------- reload under load

#[test]
fn drill_reload_under_load_loses_no_request() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    create_index(dir.path());
    let shared = SharedIndex::open(dir.path()).unwrap();
    let stop = AtomicBool::new(false);
    let queries = AtomicU64::new(0);
    let misses = AtomicU64::new(0);
    let generations_seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
    const RELOADS: u64 = 20;

    thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut seen = std::collections::BTreeSet::new();
                // Bounded by the writer finishing, and by a hard cap.
                for _ in 0..5_000_000u64 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    // What a request does: take one generation, use it throughout.
                    let r = shared.current();
                    seen.insert(r.generation());
                    queries.fetch_add(1, Ordering::Relaxed);
                    if !finds_sentinel(&r) {
                        misses.fetch_add(1, Ordering::Relaxed);
                    }
                }
                generations_seen.lock().unwrap().extend(seen);
            });
        }
        s.spawn(|| {
            let mut w = IndexWriter::open(dir.path()).unwrap();
            for step in 0..RELOADS {
                if step % 5 == 4 {
                    w.compact().unwrap();
                } else {
                    w.add_segment(batch_builder(5000 + step, 200)).unwrap();
                }
                let g = shared.reload().unwrap().generation();
                assert_eq!(g, w.generation());
                // Let the readers run on this generation for a moment.
                thread::sleep(Duration::from_millis(5));
            }
            stop.store(true, Ordering::SeqCst);
        });
    });

    let q = queries.load(Ordering::SeqCst);
    let m = misses.load(Ordering::SeqCst);
    let gens = generations_seen.into_inner().unwrap();
    eprintln!(
        "drill reload under load: {q} queries over {RELOADS} reloads, {m} lost, generations served: {}",
        gens.len()
    );
    assert_eq!(m, 0, "queries lost during reloads");
    assert!(q > 0);
    assert_eq!(shared.current().generation(), 1 + RELOADS);
    assert!(finds_sentinel(&shared.current()));
}

/// The name by which the test harness knows `test` of this module, whether
/// this file is its own test binary or a module of one (`drill_crash::...`).
fn test_path(test: &str) -> String {
    match module_path!().split_once("::") {
        Some((_, module)) => format!("{module}::{test}"),
        None => test.to_string(),
    }
}
