//! The bounded, coalescing lookup queue for `MatchHashes`: a fixed set of
//! worker threads fed through a bounded queue, like the hashing pool
//! ([`super::pool`]). Admission is a semaphore sized to the queue: a call
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

use super::reply::{panic_message, reply, Reply, WorkerPanicked};

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
    #[cfg(test)]
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
mod tests;
