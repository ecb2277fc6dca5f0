use super::*;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use sigil_index::{EntryMeta, IndexWriter, SegmentBuilder};

/// A deterministic stream of pseudo-random hashes.
fn random_hashes(seed: u64, n: usize) -> Vec<PdqHash> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            let mut h = [0u8; 32];
            for b in h.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            PdqHash(h)
        })
        .collect()
}

/// `h` with `bits` low bits of its first bytes flipped.
fn near(h: &PdqHash, bits: usize) -> PdqHash {
    let mut out = *h;
    for bit in 0..bits {
        out.0[bit * 5 / 8] ^= 1 << (bit * 5 % 8);
    }
    out
}

/// An index of `entries` (split over lists "a" and "b"), opened.
fn build_index(dir: &Path, entries: &[PdqHash]) -> Arc<IndexReader> {
    let mut w = IndexWriter::create(dir).unwrap();
    let mut b = SegmentBuilder::new();
    for (i, h) in entries.iter().enumerate() {
        let id = format!("e{i}");
        b.push_pdq(
            &h.0,
            EntryMeta {
                id: &id,
                list: if i % 2 == 0 { "a" } else { "b" },
                category: "A1",
                note: None,
            },
        )
        .unwrap();
    }
    w.add_segment(b).unwrap();
    drop(w);
    Arc::new(IndexReader::open(dir).unwrap())
}

/// Queries for `entries`: near copies of some (at distances 0 to 20)
/// and unrelated hashes, mixed.
fn queries(entries: &[PdqHash], seed: u64, n: usize) -> Vec<PdqHash> {
    let other = random_hashes(seed, n);
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                near(&entries[(seed as usize + i) % entries.len()], i % 21)
            } else {
                other[i]
            }
        })
        .collect()
}

fn alone(reader: &IndexReader, qs: &[PdqHash], opts: &SearchOptions) -> Vec<Vec<Match>> {
    qs.iter().map(|q| reader.search_pdq(q, opts)).collect()
}

fn radius(r: u32) -> SearchOptions {
    SearchOptions {
        radius: r,
        ..SearchOptions::default()
    }
}

fn far_deadline() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

fn wait<T>(p: PendingLookup<T>) -> Result<T, LookupError> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(p.wait())
}

/// A queue whose observer records every search.
fn recording_queue(queue: usize) -> (LookupQueue, Arc<Mutex<Vec<BatchStats>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let q = LookupQueue::new(1, queue, move |b| s.lock().unwrap().push(b));
    (q, seen)
}

/// Occupies the (single) worker: queues a job whose finishing step
/// waits until the returned sender is dropped or sent to, and returns
/// once the worker is inside it. Jobs queued afterwards wait for it.
fn block_worker(
    q: &LookupQueue,
    reader: &Arc<IndexReader>,
) -> (mpsc::Sender<()>, PendingLookup<()>) {
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let pending = q
        .try_search(
            reader.clone(),
            radius(31),
            Vec::new(),
            far_deadline(),
            move |_| {
                let _ = started_tx.send(());
                let _ = release_rx.recv();
            },
        )
        .unwrap();
    started.recv().unwrap();
    (release, pending)
}

#[test]
fn concurrent_jobs_with_the_same_options_are_searched_together_and_split_back() {
    let dir = tempfile::tempdir().unwrap();
    let entries = random_hashes(7, 400);
    let reader = build_index(dir.path(), &entries);
    let (q, seen) = recording_queue(8);
    let (release, blocker) = block_worker(&q, &reader);
    let opts = radius(31);
    let jobs: Vec<Vec<PdqHash>> = (0..5)
        .map(|j| queries(&entries, 100 + j, 10 + 7 * j as usize))
        .collect();
    let pending: Vec<_> = jobs
        .iter()
        .map(|qs| {
            q.try_search(
                reader.clone(),
                opts.clone(),
                qs.clone(),
                far_deadline(),
                |f| f,
            )
            .unwrap()
        })
        .collect();
    drop(release);
    wait(blocker).unwrap();
    let mut matched = 0;
    for (qs, p) in jobs.iter().zip(pending) {
        let got = wait(p).unwrap();
        assert_eq!(got, alone(&reader, qs, &opts));
        matched += got.iter().filter(|m| !m.is_empty()).count();
    }
    assert!(matched > 0, "the queries include near copies of entries");
    let total: usize = jobs.iter().map(Vec::len).sum();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            BatchStats {
                requests: 1,
                hashes: 0
            },
            BatchStats {
                requests: 5,
                hashes: total
            }
        ]
    );
}

#[test]
fn jobs_with_other_options_or_generations_are_not_mixed() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let entries_a = random_hashes(11, 300);
    let entries_b = random_hashes(12, 300);
    let a = build_index(dir_a.path(), &entries_a);
    let b = build_index(dir_b.path(), &entries_b);
    // The same files opened again: equal content, another generation
    // object, so still searched apart.
    let a2 = Arc::new(IndexReader::open(dir_a.path()).unwrap());
    let only_b = SearchOptions {
        lists: Some(vec!["b".into()]),
        ..radius(31)
    };
    let cases: Vec<(Arc<IndexReader>, SearchOptions, Vec<PdqHash>)> = vec![
        (a.clone(), radius(31), queries(&entries_a, 1, 40)),
        (b.clone(), radius(31), queries(&entries_b, 2, 40)),
        (a.clone(), radius(8), queries(&entries_a, 3, 40)),
        (a.clone(), only_b.clone(), queries(&entries_a, 4, 40)),
        (a2.clone(), radius(31), queries(&entries_a, 5, 40)),
        (a.clone(), radius(31), queries(&entries_a, 6, 40)),
        (b.clone(), radius(8), queries(&entries_b, 7, 40)),
    ];
    let (q, seen) = recording_queue(cases.len());
    let (release, blocker) = block_worker(&q, &a);
    let pending: Vec<_> = cases
        .iter()
        .map(|(r, o, qs)| {
            q.try_search(r.clone(), o.clone(), qs.clone(), far_deadline(), |f| f)
                .unwrap()
        })
        .collect();
    drop(release);
    wait(blocker).unwrap();
    for ((r, o, qs), p) in cases.iter().zip(pending) {
        assert_eq!(wait(p).unwrap(), alone(r, qs, o));
    }
    // Only the first and sixth cases (generation a, radius 31) share a
    // search; the rest go one by one, oldest first.
    let requests: Vec<usize> = seen.lock().unwrap().iter().map(|b| b.requests).collect();
    assert_eq!(requests, vec![1, 2, 1, 1, 1, 1, 1]);
}

#[test]
fn batches_stay_within_the_hash_cap() {
    let dir = tempfile::tempdir().unwrap();
    let entries = random_hashes(21, 50);
    let reader = build_index(dir.path(), &entries);
    let (q, seen) = recording_queue(4);
    let (release, blocker) = block_worker(&q, &reader);
    let big = MAX_COALESCED_HASHES / 2 + 1;
    let pending: Vec<_> = (0..3)
        .map(|j| {
            q.try_search(
                reader.clone(),
                radius(31),
                random_hashes(300 + j, big),
                far_deadline(),
                |f| f.len(),
            )
            .unwrap()
        })
        .collect();
    drop(release);
    wait(blocker).unwrap();
    for p in pending {
        assert_eq!(wait(p).unwrap(), big);
    }
    let hashes: Vec<usize> = seen.lock().unwrap().iter().map(|b| b.hashes).collect();
    assert_eq!(hashes, vec![0, big, big, big]);
}

#[test]
fn a_full_queue_refuses_at_once_and_takes_work_again_once_answered() {
    let dir = tempfile::tempdir().unwrap();
    let entries = random_hashes(31, 50);
    let reader = build_index(dir.path(), &entries);
    let (q, _) = recording_queue(2);
    assert_eq!(q.capacity(), 3);
    let (release, blocker) = block_worker(&q, &reader);
    let submit = || {
        q.try_search(
            reader.clone(),
            radius(31),
            entries[..3].to_vec(),
            far_deadline(),
            |f| f,
        )
    };
    let queued: Vec<_> = (0..2).map(|_| submit().unwrap()).collect();
    let err = submit().err().unwrap();
    assert_eq!(err, LookupError::Full(3));
    assert!(err.to_string().contains("lookup queue is full"), "{err}");
    drop(release);
    wait(blocker).unwrap();
    for p in queued {
        assert_eq!(wait(p).unwrap().len(), 3);
    }
    // Every answered job gave its room back before its answer came.
    let again: Vec<_> = (0..3).map(|_| submit().unwrap()).collect();
    for p in again {
        assert_eq!(wait(p).unwrap()[0][0].id, "e0");
    }
}

#[test]
fn expired_and_abandoned_jobs_are_skipped_and_a_panic_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    let entries = random_hashes(41, 50);
    let reader = build_index(dir.path(), &entries);
    let (q, seen) = recording_queue(4);
    let (release, blocker) = block_worker(&q, &reader);
    let expired = q
        .try_search(
            reader.clone(),
            radius(31),
            entries[..2].to_vec(),
            Instant::now(),
            |f| f,
        )
        .unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let abandoned = q
        .try_search(
            reader.clone(),
            radius(31),
            entries[..2].to_vec(),
            far_deadline(),
            move |f| {
                r.store(true, Ordering::SeqCst);
                f
            },
        )
        .unwrap();
    drop(abandoned);
    let panics = q
        .try_search(
            reader.clone(),
            radius(31),
            entries[..2].to_vec(),
            far_deadline(),
            |_| panic!("finishing step failed"),
        )
        .unwrap();
    drop(release);
    wait(blocker).unwrap();
    assert_eq!(wait(expired).err(), Some(LookupError::DeadlineExpired));
    let err = wait(panics).err().unwrap();
    assert_eq!(
        err,
        LookupError::WorkerPanic("finishing step failed".into())
    );
    // The worker is still there.
    let after = q
        .try_search(
            reader.clone(),
            radius(31),
            entries[..2].to_vec(),
            far_deadline(),
            |f| f,
        )
        .unwrap();
    assert_eq!(
        wait(after).unwrap(),
        alone(&reader, &entries[..2], &radius(31))
    );
    assert!(
        !ran.load(Ordering::SeqCst),
        "an abandoned job is not finished"
    );
    // Only the live jobs were searched.
    let requests: Vec<usize> = seen.lock().unwrap().iter().map(|b| b.requests).collect();
    assert_eq!(requests, vec![1, 1, 1]);
}

#[test]
fn shutdown_answers_queued_jobs_and_refuses_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let entries = random_hashes(51, 50);
    let reader = build_index(dir.path(), &entries);
    let (q, _) = recording_queue(2);
    let q = Arc::new(q);
    let (release, blocker) = block_worker(&q, &reader);
    let submit = |q: &LookupQueue| {
        q.try_search(
            reader.clone(),
            radius(31),
            entries[..4].to_vec(),
            far_deadline(),
            |f| f,
        )
    };
    let queued: Vec<_> = (0..2).map(|_| submit(&q).unwrap()).collect();
    let stopper = {
        let q = q.clone();
        std::thread::spawn(move || q.shutdown())
    };
    // Full until the shutdown closes admission, then ShutDown.
    loop {
        match submit(&q).err() {
            Some(LookupError::Full(_)) => std::thread::yield_now(),
            Some(LookupError::ShutDown) => break,
            other => panic!("unexpected: {other:?}"),
        }
    }
    drop(release);
    stopper.join().unwrap();
    wait(blocker).unwrap();
    for p in queued {
        assert_eq!(wait(p).unwrap(), alone(&reader, &entries[..4], &radius(31)));
    }
    assert_eq!(submit(&q).err(), Some(LookupError::ShutDown));
}
