//! The bounded, coalescing lookup queue for `MatchHashes`: a fixed set of
//! worker threads fed through a bounded queue, like the hashing pool
//! ([`crate::pool`]). Admission is a semaphore sized to the queue: a call
//! that finds no permit gets RESOURCE_EXHAUSTED at once. Nothing queues
//! without bound.
//!
//! A worker takes the oldest request and, with it, every other queued
//! request against the same index generation with the same search options
//! (up to [`MAX_COALESCED_HASHES`] hashes), and searches all their PDQ
//! hashes as one batch: the batched index search costs less per hash the
//! larger the batch (at 10M entries, one thread: 0.85 of a lone search per
//! hash at 64 per batch, 0.59 at 1,000, 0.32 at 4,000), so concurrent
//! callers' requests share one pass over the index tables instead of
//! making one each.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use sigil_core::PdqHash;
use sigil_index::{IndexReader, Match, SearchOptions};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::reply::{panic_message, reply, Reply, WorkerPanicked};

/// Most PDQ hashes searched in one coalesced batch. The batched search
/// holds about 6 MB of buffers per 1,000 hashes at 10M entries
/// (docs/operations.md), so this bounds one search at about 50 MB, the
/// order of what a single request at the default `max_batch` (10,000)
/// already needs. A request larger than this is still searched, alone.
pub const MAX_COALESCED_HASHES: usize = 8_192;

/// Why a lookup was not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("lookup queue is full ({0} MatchHashes requests in flight); retry later")]
    Full(usize),
    #[error("deadline expired before the request reached a lookup worker")]
    DeadlineExpired,
    #[error("lookup queue is shut down")]
    ShutDown,
    #[error("lookup worker failed: {0}")]
    WorkerPanic(String),
}

/// One coalesced search, as reported to the queue's observer (metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchStats {
    /// Requests whose hashes were searched together.
    pub requests: usize,
    /// PDQ hashes in the search.
    pub hashes: usize,
}

impl WorkerPanicked for LookupError {
    fn worker_panicked(message: String) -> Self {
        LookupError::WorkerPanic(message)
    }
}

struct Job {
    /// The generation the request resolved its options against; only jobs
    /// of the same generation (the same `Arc`) are searched together.
    reader: Arc<IndexReader>,
    options: SearchOptions,
    queries: Vec<PdqHash>,
    deadline: Instant,
    reply: Box<dyn Reply<Vec<Vec<Match>>, LookupError>>,
    /// Released when the job is answered, making room for the next one.
    permit: OwnedSemaphorePermit,
}

impl Job {
    fn answer(self, found: Result<Vec<Vec<Match>>, LookupError>) {
        let Job { reply, permit, .. } = self;
        reply.send(found, permit);
    }
}

struct Queue {
    jobs: VecDeque<Job>,
    /// False once shut down: no new jobs; workers drain the queue and exit.
    open: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a job is queued or the queue shuts down.
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic never happens while the lock is held (jobs run outside
        // it), but a poisoned queue is still a consistent one.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A lookup waiting in (or taken from) the queue.
pub struct PendingLookup<T>(oneshot::Receiver<Result<T, LookupError>>);

impl<T> PendingLookup<T> {
    /// The finishing step's result. Dropping the future (e.g. when the
    /// call's deadline passes) tells the worker to skip the job.
    pub async fn wait(self) -> Result<T, LookupError> {
        self.0.await.unwrap_or(Err(LookupError::ShutDown))
    }
}

type Observer = dyn Fn(BatchStats) + Send + Sync;

/// Fixed lookup threads behind a bounded queue that coalesces compatible
/// requests into one index search.
pub struct LookupQueue {
    shared: Arc<Shared>,
    admission: Arc<Semaphore>,
    capacity: usize,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl LookupQueue {
    /// Starts `workers` threads; at most `workers + queue` requests are in
    /// flight (being searched or waiting) at any time. `observe` is called
    /// on a worker thread before each search.
    ///
    /// One worker is the usual choice: each search already spreads over
    /// every core (rayon, [`IndexReader::search_pdq_batch`]), and a second
    /// worker would split the waiting requests into smaller batches.
    pub fn new(
        workers: usize,
        queue: usize,
        observe: impl Fn(BatchStats) + Send + Sync + 'static,
    ) -> Self {
        let workers = workers.max(1);
        let capacity = workers + queue;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::with_capacity(capacity),
                open: true,
            }),
            wake: Condvar::new(),
        });
        let observe: Arc<Observer> = Arc::new(observe);
        let handles = (0..workers)
            .map(|i| {
                let shared = shared.clone();
                let observe = observe.clone();
                std::thread::Builder::new()
                    .name(format!("sigil-lookup-{i}"))
                    .spawn(move || worker_loop(&shared, observe.as_ref()))
                    .expect("spawning a lookup thread")
            })
            .collect();
        LookupQueue {
            shared,
            admission: Arc::new(Semaphore::new(capacity)),
            capacity,
            workers: Mutex::new(handles),
        }
    }

    /// Requests that may be in flight at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Queues a search of `queries` in `reader` if there is room now
    /// ([`LookupError::Full`] at once otherwise). A worker searches them
    /// (possibly together with other requests' queries), then runs `finish`
    /// on the results, `found[i]` answering `queries[i]` exactly as
    /// [`IndexReader::search_pdq`] would, and the returned
    /// [`PendingLookup`] yields what `finish` returned. `finish` runs on the
    /// worker thread, off the async runtime, and is skipped when the caller
    /// has given up.
    pub fn try_search<T, F>(
        &self,
        reader: Arc<IndexReader>,
        options: SearchOptions,
        queries: Vec<PdqHash>,
        deadline: Instant,
        finish: F,
    ) -> Result<PendingLookup<T>, LookupError>
    where
        T: Send + 'static,
        F: FnOnce(Vec<Vec<Match>>) -> T + Send + 'static,
    {
        let permit = match self.admission.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(TryAcquireError::NoPermits) => return Err(LookupError::Full(self.capacity)),
            Err(TryAcquireError::Closed) => return Err(LookupError::ShutDown),
        };
        let (reply, rx) = reply(finish);
        let job = Job {
            reader,
            options,
            queries,
            deadline,
            reply,
            permit,
        };
        {
            let mut q = self.shared.lock();
            if !q.open {
                return Err(LookupError::ShutDown);
            }
            // The permit guarantees room: the deque never outgrows capacity.
            q.jobs.push_back(job);
        }
        self.shared.wake.notify_one();
        Ok(PendingLookup(rx))
    }

    /// Stops accepting work and joins the workers after they have answered
    /// every queued job.
    pub fn shutdown(&self) {
        self.admission.close();
        self.shared.lock().open = false;
        self.shared.wake.notify_all();
        let handles = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for h in handles {
            // A worker never joins itself (were the queue ever dropped from
            // a finishing step, joining would deadlock).
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

impl Drop for LookupQueue {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What a worker takes from the queue in one go.
struct Taken {
    /// Searched together: the oldest live job first, then the compatible
    /// ones behind it, in queue order.
    batch: Vec<Job>,
    /// Jobs whose deadline passed while they waited.
    expired: Vec<Job>,
    /// Jobs whose caller gave up: dropped once the lock is released (the
    /// last reference to an old generation unmaps it, which is not
    /// something to do while holding the queue).
    abandoned: Vec<Job>,
}

/// Takes the oldest live job and every queued job that can share its
/// search (same generation, equal options) while the batch stays within
/// [`MAX_COALESCED_HASHES`]; drops the jobs whose caller gave up and takes
/// out the expired ones, wherever they are in the queue (both would
/// otherwise hold a permit until they reached the front). Everything else
/// stays queued in its order.
fn take_batch(jobs: &mut VecDeque<Job>, now: Instant) -> Taken {
    let mut batch: Vec<Job> = Vec::new();
    let mut expired = Vec::new();
    let mut abandoned = Vec::new();
    let mut hashes = 0usize;
    let mut rest = VecDeque::with_capacity(jobs.len());
    for job in jobs.drain(..) {
        if job.reply.is_closed() {
            abandoned.push(job);
            continue;
        }
        if now >= job.deadline {
            expired.push(job);
            continue;
        }
        let joins = match batch.first() {
            None => true,
            Some(lead) => {
                Arc::ptr_eq(&lead.reader, &job.reader)
                    && lead.options == job.options
                    && hashes + job.queries.len() <= MAX_COALESCED_HASHES
            }
        };
        if joins {
            hashes += job.queries.len();
            batch.push(job);
        } else {
            rest.push_back(job);
        }
    }
    *jobs = rest;
    Taken {
        batch,
        expired,
        abandoned,
    }
}

fn worker_loop(shared: &Shared, observe: &Observer) {
    loop {
        let Taken {
            batch,
            expired,
            abandoned,
        } = {
            let mut q = shared.lock();
            while q.jobs.is_empty() {
                if !q.open {
                    return; // shut down and drained
                }
                q = shared.wake.wait(q).unwrap_or_else(|p| p.into_inner());
            }
            take_batch(&mut q.jobs, Instant::now())
        };
        drop(abandoned); // releases their permits
        for job in expired {
            job.answer(Err(LookupError::DeadlineExpired));
        }
        if !batch.is_empty() {
            search_batch(batch, observe);
        }
    }
}

/// Searches the batch's queries in one go and answers each job with its
/// own share of the results, in order. The finishing steps run here, one
/// after the other: they are the cheap part of a request (exact-digest
/// binary searches and per-hash bookkeeping), and running them on the
/// worker keeps all of a request's work inside the queue's bound.
fn search_batch(batch: Vec<Job>, observe: &Observer) {
    let reader = batch[0].reader.clone();
    let options = batch[0].options.clone();
    let all: Vec<PdqHash> = batch
        .iter()
        .flat_map(|j| j.queries.iter().copied())
        .collect();
    observe(BatchStats {
        requests: batch.len(),
        hashes: all.len(),
    });
    let found = if all.is_empty() {
        Ok(Vec::new())
    } else {
        // The search guards itself against hostile index files; this
        // keeps a bug in it from taking the worker (and every request
        // queued behind it) down.
        catch_unwind(AssertUnwindSafe(|| reader.search_pdq_batch(&all, &options)))
            .map_err(|p| LookupError::WorkerPanic(panic_message(p.as_ref())))
    };
    drop(all);
    match found {
        Ok(found) if found.len() == batch.iter().map(|j| j.queries.len()).sum::<usize>() => {
            let mut found = found.into_iter();
            for job in batch {
                let own: Vec<Vec<Match>> = found.by_ref().take(job.queries.len()).collect();
                job.answer(Ok(own));
            }
        }
        Ok(found) => {
            let e = LookupError::WorkerPanic(format!(
                "the index search returned {} results for {} queries",
                found.len(),
                batch.iter().map(|j| j.queries.len()).sum::<usize>()
            ));
            for job in batch {
                job.answer(Err(e.clone()));
            }
        }
        Err(e) => {
            for job in batch {
                job.answer(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
}
