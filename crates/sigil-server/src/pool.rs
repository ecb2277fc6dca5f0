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

use prost::bytes::Bytes;
use sigil_core::decode::{decode, DecodeLimits, DecodeOptions};
use sigil_core::pdq::{PdqHasher, Profile};
use sigil_core::{
    Dihedral, ExactDigests, FileSignatures, ImageSignature, PdqHash, SignOptions, Signer,
};
use sigil_eval::robust::{robust_query_hashes, QueryHash, QueryVariant, RobustLevel};
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

/// What a worker computed for one image.
#[derive(Debug, Clone)]
pub struct Signed {
    pub sigs: FileSignatures,
    /// With robust hashing: every query variant of the level
    /// ([`RobustLevel::query_options`]), the image as given first.
    /// Empty otherwise (or when the bytes did not decode).
    pub robust: Vec<QueryHash>,
}

/// How to hash one image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashMode {
    /// The 8 dihedral hashes.
    pub dihedral: bool,
    /// The robust query variants of this level (any level but `Off`
    /// implies the dihedral hashes).
    pub robust: RobustLevel,
}

struct Job {
    image: Bytes,
    mode: HashMode,
    deadline: Instant,
    reply: oneshot::Sender<Result<Signed, PoolError>>,
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
        image: Bytes,
        mode: HashMode,
        deadline: Instant,
    ) -> Result<Signed, PoolError> {
        let permit = self
            .admission
            .clone()
            .try_acquire_owned()
            .map_err(|_| PoolError::Full(self.capacity))?;
        self.submit(image, mode, deadline, permit).await
    }

    /// Hashes `image`, waiting for room in the pool.
    pub async fn sign_waiting(
        &self,
        image: Bytes,
        mode: HashMode,
        deadline: Instant,
    ) -> Result<Signed, PoolError> {
        let permit = self
            .admission
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PoolError::ShutDown)?;
        self.submit(image, mode, deadline, permit).await
    }

    async fn submit(
        &self,
        image: Bytes,
        mode: HashMode,
        deadline: Instant,
        permit: OwnedSemaphorePermit,
    ) -> Result<Signed, PoolError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            image,
            mode,
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
    let mut robust_hasher: Option<PdqHasher> = None;
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
            mode,
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
        // sign() and decode() catch decoder panics themselves; this guards
        // the hashers too, so one bad image cannot take a worker down.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if mode.robust.is_on() {
                let decode_opts = options(false).decode;
                let hasher = robust_hasher.get_or_insert_with(PdqHasher::new);
                sign_robust(hasher, &image, &decode_opts, mode.robust)
            } else {
                let signer = if mode.dihedral {
                    with_dihedral.get_or_insert_with(|| Signer::new(options(true)))
                } else {
                    &mut plain
                };
                Signed {
                    sigs: signer.sign(&image),
                    robust: Vec::new(),
                }
            }
        }))
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

/// Exact digests and the robust query variants of one image. The
/// signature's PDQ hash, quality and dihedral hashes are those of the image
/// as given (the first 8 variants), so nothing is hashed twice.
fn sign_robust(
    hasher: &mut PdqHasher,
    bytes: &[u8],
    decode_opts: &DecodeOptions,
    level: RobustLevel,
) -> Signed {
    let exact = ExactDigests::of(bytes);
    let img = match decode(bytes, decode_opts) {
        Ok(img) => img,
        Err(e) => {
            return Signed {
                sigs: FileSignatures {
                    exact,
                    image: Err(e),
                },
                robust: Vec::new(),
            }
        }
    };
    let opts = level.query_options();
    let variants = robust_query_hashes(hasher, &img, &opts);
    let is_dihedral = variants.len() >= 8
        && variants[..8].iter().enumerate().all(|(i, v)| {
            v.variant
                == if i == 0 {
                    QueryVariant::Original
                } else {
                    QueryVariant::Dihedral(Dihedral::ALL[i])
                }
        });
    let dihedral: Option<[PdqHash; 8]> =
        is_dihedral.then(|| std::array::from_fn(|i| variants[i].hash));
    let sig = ImageSignature {
        width: img.width,
        height: img.height,
        pdq: variants[0].hash,
        quality: variants[0].quality,
        dihedral,
    };
    Signed {
        sigs: FileSignatures {
            exact,
            image: Ok(sig),
        },
        robust: variants,
    }
}
