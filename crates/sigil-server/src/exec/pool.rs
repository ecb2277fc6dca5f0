//! The bounded hashing pool: a fixed set of worker threads, each owning its
//! own `Signer` (PdqHasher scratch buffers are per thread), fed through a
//! bounded queue. Admission takes two semaphores: one permit per image
//! (`workers + queue` in all) and one permit per KiB of the image's bytes
//! (the byte budget), so a queue deep enough to absorb bursts of small
//! photos cannot hold as many maximum-size requests. Unary calls try to
//! take their permits and get RESOURCE_EXHAUSTED at once when either runs
//! out; stream items wait for them (HTTP/2 flow control then pushes back on
//! the client). Nothing queues without bound.
//!
//! A job carries the caller's follow-up step (the index lookup of the
//! signatures), which the worker runs right after hashing, once the image
//! buffer is dropped: lookups block, so they belong on these threads and
//! under this bound, not on the async runtime's.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use prost::bytes::Bytes;
use sigil_core::decode::{decode, DecodeLimits, DecodeOptions};
use sigil_core::pdq::{DihedralMethod, PdqHasher, Profile};
use sigil_core::robust::{robust_query_hashes, QueryHash, QueryVariant, RobustQueryOptions};
use sigil_core::{
    Dihedral, ExactDigests, FileSignatures, ImageSignature, PdqHash, SignOptions, Signer,
};
use sigil_match::ResolvedOptions;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::reply::{panic_message, reply, Reply, WorkerPanicked};

/// Why an image was not hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("hashing pool is full ({0} images in flight); retry later")]
    Full(usize),
    /// The images in flight hold the whole byte budget (`limits.hashing_queue_bytes`, MiB).
    #[error("hashing pool is full (its {0} MiB budget of image bytes is taken); retry later")]
    FullBytes(u64),
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
    /// With robust hashing: every query variant of [`HashMode::robust`],
    /// the image as given first. Empty otherwise (or when the bytes did not
    /// decode).
    pub robust: Vec<QueryHash>,
}

/// How to hash one image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HashMode {
    /// The 8 dihedral hashes.
    pub dihedral: bool,
    /// Robust hashing: the query variants to compute (the robust levels
    /// but `Off` imply the dihedral hashes). `None`: the plain hashes.
    pub robust: Option<RobustQueryOptions>,
}

impl HashMode {
    /// What a request's resolved options need hashed: the robust variants
    /// with the request's quality threshold (not the variants' own default,
    /// so a threshold under 50 reaches the derived variants too).
    pub fn of(options: &ResolvedOptions) -> Self {
        HashMode {
            dihedral: options.dihedral(),
            robust: options
                .robust()
                .is_on()
                .then(|| options.robust_query_options()),
        }
    }
}

struct Job {
    image: Bytes,
    mode: HashMode,
    deadline: Instant,
    reply: Box<dyn Reply<Signed, PoolError>>,
    /// The image's slot, released when the job is done (follow-up
    /// included), making room for the next one.
    slot: OwnedSemaphorePermit,
    /// The image's share of the byte budget, released with the image
    /// buffer.
    bytes: OwnedSemaphorePermit,
}

impl WorkerPanicked for PoolError {
    fn worker_panicked(message: String) -> Self {
        PoolError::WorkerPanic(message)
    }
}

/// A fixed pool of hashing threads behind a bounded queue.
pub struct HashPool {
    tx: Mutex<Option<SyncSender<Job>>>,
    admission: Arc<Semaphore>,
    capacity: usize,
    /// KiB of request bytes in flight at most.
    bytes: Arc<Semaphore>,
    budget_kib: u32,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl HashPool {
    /// Starts `workers` threads; at most `workers + queue` images, of at
    /// most `budget_bytes` in all, are in flight (being hashed or waiting)
    /// at any time. An image larger than the whole budget is admitted
    /// alone.
    pub fn new(workers: usize, queue: usize, budget_bytes: u64, limits: DecodeLimits) -> Self {
        let workers = workers.max(1);
        let capacity = workers + queue;
        let budget_kib = (budget_bytes / 1024).clamp(1, u64::from(u32::MAX)) as u32;
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
            bytes: Arc::new(Semaphore::new(budget_kib as usize)),
            budget_kib,
            workers: Mutex::new(handles),
        }
    }

    /// The byte-budget permits an image of `len` bytes takes: its size in
    /// KiB, rounded up, at least 1 and at most the whole budget.
    fn kib(&self, len: usize) -> u32 {
        (len.div_ceil(1024) as u64).clamp(1, u64::from(self.budget_kib)) as u32
    }

    /// Hashes `image` if there is room now, then runs `then` on the
    /// result on the same worker thread (the index lookup: it blocks, so it
    /// stays off the async threads and inside the pool's bound);
    /// RESOURCE_EXHAUSTED-style [`PoolError::Full`] at once otherwise.
    pub async fn try_sign<T, F>(
        &self,
        image: Bytes,
        mode: HashMode,
        deadline: Instant,
        then: F,
    ) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce(Signed) -> T + Send + 'static,
    {
        let slot = self
            .admission
            .clone()
            .try_acquire_owned()
            .map_err(|_| PoolError::Full(self.capacity))?;
        let bytes = self
            .bytes
            .clone()
            .try_acquire_many_owned(self.kib(image.len()))
            .map_err(|_| PoolError::FullBytes(u64::from(self.budget_kib) / 1024))?;
        self.submit(image, mode, deadline, then, slot, bytes).await
    }

    /// [`HashPool::try_sign`], waiting for room in the pool.
    pub async fn sign_waiting<T, F>(
        &self,
        image: Bytes,
        mode: HashMode,
        deadline: Instant,
        then: F,
    ) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce(Signed) -> T + Send + 'static,
    {
        let slot = self
            .admission
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PoolError::ShutDown)?;
        let bytes = self
            .bytes
            .clone()
            .acquire_many_owned(self.kib(image.len()))
            .await
            .map_err(|_| PoolError::ShutDown)?;
        self.submit(image, mode, deadline, then, slot, bytes).await
    }

    async fn submit<T, F>(
        &self,
        image: Bytes,
        mode: HashMode,
        deadline: Instant,
        then: F,
        slot: OwnedSemaphorePermit,
        bytes: OwnedSemaphorePermit,
    ) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce(Signed) -> T + Send + 'static,
    {
        let (reply, rx) = reply(then);
        let job = Job {
            image,
            mode,
            deadline,
            reply,
            slot,
            bytes,
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
        self.bytes.close();
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
        // Matching searches the hashes of the rotated and mirrored pixels.
        dihedral_method: DihedralMethod::Pixels,
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
            slot,
            bytes,
        } = job;
        if reply.is_closed() {
            continue; // caller gave up (deadline or disconnect)
        }
        if Instant::now() >= deadline {
            drop((image, bytes));
            reply.send(Err(PoolError::DeadlineExpired), slot);
            continue;
        }
        // sign() and decode() catch decoder panics themselves; this guards
        // the hashers too, so one bad image cannot take a worker down.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if let Some(robust) = &mode.robust {
                let decode_opts = options(false).decode;
                let hasher = robust_hasher.get_or_insert_with(PdqHasher::new);
                sign_robust(hasher, &image, &decode_opts, robust)
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
        .map_err(|p| PoolError::WorkerPanic(panic_message(p.as_ref())));
        // The image buffer is dropped as soon as it is hashed: nothing after
        // this point (the lookup included) can reach the bytes.
        drop((image, bytes));
        reply.send(result, slot);
    }
}

/// Exact digests and the robust query variants of one image. The
/// signature's PDQ hash, quality and dihedral hashes are those of the image
/// as given (the first 8 variants), so nothing is hashed twice.
fn sign_robust(
    hasher: &mut PdqHasher,
    bytes: &[u8],
    decode_opts: &DecodeOptions,
    opts: &RobustQueryOptions,
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
    let variants = robust_query_hashes(hasher, &img, opts);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Bytes {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/originals/misc-images/wee.jpg"
        );
        Bytes::from(std::fs::read(path).expect("reading the test image"))
    }

    fn later() -> Instant {
        Instant::now() + std::time::Duration::from_secs(60)
    }

    /// With the worker busy, a queued 600 KiB image holds 600 of a
    /// 1024 KiB budget: a second one is refused (FullBytes) though the
    /// queue has room, a small one still gets in, and once the queue
    /// drains the budget is whole again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn byte_budget_refuses_what_does_not_fit() {
        let pool = Arc::new(HashPool::new(1, 8, 1 << 20, DecodeLimits::default()));
        let big = Bytes::from(vec![7u8; 600 << 10]);
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let busy = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.try_sign(image(), HashMode::default(), later(), move |_| {
                    let _ = started_tx.send(());
                    let _ = release_rx.recv();
                })
                .await
            })
        };
        started_rx.await.unwrap();
        let queued = {
            let (pool, big) = (pool.clone(), big.clone());
            tokio::spawn(async move {
                pool.try_sign(big, HashMode::default(), later(), |_| ())
                    .await
            })
        };
        while pool.bytes.available_permits() != 1024 - 600 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let refused = pool
            .try_sign(big.clone(), HashMode::default(), later(), |_| ())
            .await;
        assert_eq!(refused.unwrap_err(), PoolError::FullBytes(1));
        let small = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.try_sign(image(), HashMode::default(), later(), |_| ())
                    .await
            })
        };
        // Admitted (its KiB taken) while the budget is tight.
        while pool.bytes.available_permits() == 1024 - 600 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        release_tx.send(()).unwrap();
        busy.await.unwrap().unwrap();
        queued.await.unwrap().unwrap();
        small.await.unwrap().unwrap();
        assert_eq!(pool.bytes.available_permits(), 1024);
        // An image larger than the whole budget is admitted alone.
        let huge = Bytes::from(vec![7u8; 3 << 20]);
        pool.try_sign(huge, HashMode::default(), later(), |_| ())
            .await
            .unwrap();
    }

    /// A photo at a tenth of its contrast (PDQ quality about 38), tilted
    /// by 6 degrees with black corners (quality about 98 as given: the
    /// corners are sharp).
    fn faint_tilted_png() -> Bytes {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/originals/bridge-mods/aaa-orig.jpg"
        ))
        .unwrap();
        let img = decode(&bytes, &DecodeOptions::default()).unwrap();
        let mut faint = sigil_core::robust::rgb_of(&img);
        for p in faint.pixels_mut() {
            for c in &mut p.0 {
                *c = (128.0 + (f32::from(*c) - 128.0) * 0.11).round() as u8;
            }
        }
        let tilted = sigil_core::robust::geometry::rotate_degrees(&faint, 6.0, [0; 3]);
        let mut out = std::io::Cursor::new(Vec::new());
        tilted.write_to(&mut out, image::ImageFormat::Png).unwrap();
        Bytes::from(out.into_inner())
    }

    /// The robust variants are computed down to the request's quality
    /// threshold: under 50, a faint copy's rotated-back variants (quality
    /// under 50) are hashed; at the default they are left out.
    #[tokio::test]
    async fn robust_variants_follow_the_quality_threshold() {
        use sigil_core::robust::RobustLevel;
        use sigil_match::{MatchPolicy, MatchRequest, MemoryLookup};

        let pool = HashPool::new(1, 1, 64 << 20, DecodeLimits::default());
        let resolved = |quality_threshold| {
            let policy = MatchPolicy {
                quality_threshold,
                robust: RobustLevel::Full,
                ..MatchPolicy::default()
            };
            policy
                .resolve(&MatchRequest::default(), &MemoryLookup::new())
                .unwrap()
        };
        let faint_rotations = |threshold| {
            let mode = HashMode::of(&resolved(threshold));
            let pool = &pool;
            async move {
                pool.try_sign(faint_tilted_png(), mode, later(), |s: Signed| {
                    s.robust
                        .iter()
                        .filter(|v| matches!(v.variant, QueryVariant::Rotated(_)))
                        .map(|v| v.quality)
                        .filter(|&q| q < 50)
                        .count()
                })
                .await
                .unwrap()
            }
        };
        assert!(faint_rotations(30).await > 0, "threshold 30");
        assert_eq!(faint_rotations(50).await, 0, "threshold 50");
        pool.shutdown();
    }

    #[tokio::test]
    async fn follow_up_runs_on_the_hashing_worker() {
        let pool = HashPool::new(1, 1, 64 << 20, DecodeLimits::default());
        let (thread, pdq) = pool
            .try_sign(image(), HashMode::default(), later(), |s: Signed| {
                let pdq = s.sigs.image.map(|i| i.pdq);
                (std::thread::current().name().map(str::to_owned), pdq)
            })
            .await
            .unwrap();
        // The lookup that follows a hash must never run on an async thread.
        assert_eq!(thread.as_deref(), Some("sigil-hash-0"));
        assert!(pdq.is_ok());
        pool.shutdown();
    }

    #[tokio::test]
    async fn a_panicking_follow_up_is_an_error_and_the_worker_survives() {
        let pool = HashPool::new(1, 1, 64 << 20, DecodeLimits::default());
        let got = pool
            .sign_waiting(image(), HashMode::default(), later(), |_: Signed| -> u32 {
                panic!("lookup failed")
            })
            .await;
        assert_eq!(got, Err(PoolError::WorkerPanic("lookup failed".into())));
        let again = pool
            .try_sign(image(), HashMode::default(), later(), |_: Signed| 7u32)
            .await;
        assert_eq!(again, Ok(7));
        pool.shutdown();
    }
}
