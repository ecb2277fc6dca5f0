//! The bounded hashing pool: a fixed set of worker threads, each owning its
//! own `Signer` (PdqHasher scratch buffers are per thread), fed through a
//! bounded queue. Admission is a semaphore sized to the queue: unary calls
//! try to take a permit and get RESOURCE_EXHAUSTED at once when none is
//! left; stream items wait for one (HTTP/2 flow control then pushes back on
//! the client). Nothing queues without bound.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use sigil_core::decode::{DecodeLimits, DecodeOptions};
use sigil_core::pdq::Profile;
use sigil_core::{FileSignatures, SignOptions, Signer};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// Why an image was not hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("hashing pool is full ({0} images in flight); retry later")]
    Full(usize),
    #[error("deadline expired before the image reached a hashing worker")]
    DeadlineExpired,
    #[error("hashing pool is shut down")]
    ShutDown,
    #[error("hashing worker failed: {0}")]
    WorkerPanic(String),
}

struct Job {
    image: Vec<u8>,
    dihedral: bool,
    deadline: Instant,
    reply: oneshot::Sender<Result<FileSignatures, PoolError>>,
    /// Released when the job is done, making room for the next one.
    _permit: OwnedSemaphorePermit,
}

/// A fixed pool of hashing threads behind a bounded queue.
pub struct HashPool {
    tx: Mutex<Option<SyncSender<Job>>>,
    admission: Arc<Semaphore>,
    capacity: usize,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl HashPool {
    /// Starts `workers` threads; at most `workers + queue` images are in
    /// flight (being hashed or waiting) at any time.
    pub fn new(workers: usize, queue: usize, limits: DecodeLimits) -> Self {
        let workers = workers.max(1);
        let capacity = workers + queue;
        let (tx, rx) = sync_channel::<Job>(capacity);
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..workers)
            .map(|i| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("sigil-hash-{i}"))
                    .spawn(move || worker_loop(rx, limits))
                    .expect("spawning a hashing thread")
            })
            .collect();
        HashPool {
            tx: Mutex::new(Some(tx)),
            admission: Arc::new(Semaphore::new(capacity)),
            capacity,
            workers: Mutex::new(handles),
        }
    }

    /// Images that may be in flight at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Hashes `image` if there is room now; RESOURCE_EXHAUSTED-style
    /// [`PoolError::Full`] otherwise.
    pub async fn try_sign(
        &self,
        image: Vec<u8>,
        dihedral: bool,
        deadline: Instant,
    ) -> Result<FileSignatures, PoolError> {
        let permit = self
            .admission
            .clone()
            .try_acquire_owned()
            .map_err(|_| PoolError::Full(self.capacity))?;
        self.submit(image, dihedral, deadline, permit).await
    }

    /// Hashes `image`, waiting for room in the pool.
    pub async fn sign_waiting(
        &self,
        image: Vec<u8>,
        dihedral: bool,
        deadline: Instant,
    ) -> Result<FileSignatures, PoolError> {
        let permit = self
            .admission
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PoolError::ShutDown)?;
        self.submit(image, dihedral, deadline, permit).await
    }

    async fn submit(
        &self,
        image: Vec<u8>,
        dihedral: bool,
        deadline: Instant,
        permit: OwnedSemaphorePermit,
    ) -> Result<FileSignatures, PoolError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            image,
            dihedral,
            deadline,
            reply,
            _permit: permit,
        };
        {
            let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
            let Some(tx) = tx.as_ref() else {
                return Err(PoolError::ShutDown);
            };
            // The permit guarantees a free slot, so this never blocks.
            match tx.try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => return Err(PoolError::Full(self.capacity)),
                Err(TrySendError::Disconnected(_)) => return Err(PoolError::ShutDown),
            }
        }
        rx.await.unwrap_or(Err(PoolError::ShutDown))
    }

    /// Stops accepting work and joins the workers after they finish the
    /// queued jobs.
    pub fn shutdown(&self) {
        self.admission.close();
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        let handles = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for h in handles {
            let _ = h.join();
        }
    }
}

impl Drop for HashPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn worker_loop(rx: Arc<Mutex<Receiver<Job>>>, limits: DecodeLimits) {
    let options = |dihedral| SignOptions {
        profile: Profile::Full,
        dihedral,
        decode: DecodeOptions {
            limits,
            // Lists are built from the stored pixels (the reference tools ignore
            // the EXIF orientation tag), so the server must hash them the same way.
            apply_exif_orientation: false,
        },
    };
    let mut plain = Signer::new(options(false));
    let mut with_dihedral: Option<Signer> = None;
    loop {
        let job = {
            let guard = rx.lock().unwrap_or_else(|p| p.into_inner());
            match guard.recv() {
                Ok(job) => job,
                Err(_) => return, // pool shut down
            }
        };
        let Job {
            image,
            dihedral,
            deadline,
            reply,
            _permit,
        } = job;
        if reply.is_closed() {
            continue; // caller gave up (deadline or disconnect)
        }
        if Instant::now() >= deadline {
            let _ = reply.send(Err(PoolError::DeadlineExpired));
            continue;
        }
        let signer = if dihedral {
            with_dihedral.get_or_insert_with(|| Signer::new(options(true)))
        } else {
            &mut plain
        };
        // sign() catches decoder panics itself; this guards the hasher too,
        // so one bad image cannot take a worker down.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| signer.sign(&image)))
            .map_err(|p| {
                PoolError::WorkerPanic(
                    p.downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panic".into()),
                )
            });
        // The image buffer is dropped as soon as it is hashed: nothing after
        // this point can reach the bytes.
        drop(image);
        let _ = reply.send(result);
    }
}
