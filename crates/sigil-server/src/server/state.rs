//! What the handlers and the background tasks share: the configuration,
//! the index, the bounded executors, the report store and the metrics;
//! and how it is built at start-up.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use sigil_core::decode::DecodeLimits;
use sigil_index::{IndexIdentity, OnDisk, Reload, SharedIndex};

use super::ServerError;
use crate::auth::KeyRing;
use crate::config::ServerConfig;
use crate::exec::lookup::{BatchStats, LookupQueue};
use crate::exec::pool::HashPool;
use crate::exec::store_calls::StoreCalls;
use crate::metrics::Metrics;
use sigil_reports::time::now_ms;

/// `MatchHashes` lookup threads. One: each index search already runs on
/// every core (rayon), and more workers would split waiting requests into
/// smaller, costlier-per-hash batches.
const LOOKUP_WORKERS: usize = 1;

/// A generation (by identity: two builds may share a number) and its
/// lists' entry counts, by list name.
pub(crate) type ListCounts = (IndexIdentity, Vec<(String, u64)>);

/// Where the index path led when a reload was refused (`None`: nowhere
/// readable), so that polling does not verify the same bad candidate again
/// and again.
pub(crate) type Refused = Option<OnDisk>;

/// State shared by both services and the background tasks.
pub(crate) struct AppState {
    pub config: ServerConfig,
    pub index: Arc<SharedIndex>,
    pub pool: HashPool,
    /// Runs `MatchHashes` lookups, bounded, coalescing concurrent requests.
    pub lookup: LookupQueue,
    /// The report store, called through a bound of its own parallelism.
    pub store: StoreCalls,
    pub metrics: Arc<Metrics>,
    /// When the current generation was loaded (Unix ms).
    pub loaded_at_ms: AtomicI64,
    /// Per-list entry counts of one generation (counting walks every
    /// entry, so it is done once per generation).
    pub list_cache: tokio::sync::Mutex<Option<ListCounts>>,
    /// The API keys, shared by the gRPC services and the console's sign-in.
    pub keys: Arc<KeyRing>,
}

impl AppState {
    /// Opens the index and the report store (each on a blocking thread)
    /// and starts the hashing pool and the lookup queue.
    pub async fn open(config: ServerConfig) -> Result<Self, ServerError> {
        let index_path = config.index.clone().unwrap_or_default();
        let index = {
            let p = index_path.clone();
            let index_error = |message: String| ServerError::Index {
                path: index_path.clone(),
                message,
            };
            tokio::task::spawn_blocking(move || SharedIndex::open(&p))
                .await
                .map_err(|e| index_error(e.to_string()))?
                .map_err(|e| index_error(e.to_string()))?
        };
        let store = {
            let reports = config.reports.clone();
            // An unreachable database stops start-up here with the
            // (password-free) URL and the cause.
            tokio::task::spawn_blocking(move || sigil_reports::open(&reports))
                .await
                .map_err(|e| ServerError::Task(format!("opening the report store: {e}")))??
        };
        let limits = DecodeLimits {
            max_bytes: config.limits.max_message_bytes as u64,
            max_pixels: config.limits.max_pixels,
            max_dimension: config.limits.max_dimension,
            max_decode_bytes: config.limits.max_decode_bytes,
        };
        let pool = HashPool::new(
            config.hashing_workers(),
            config.limits.hashing_queue,
            config.limits.hashing_queue_bytes,
            limits,
        );
        let metrics = Arc::new(Metrics::new());
        let lookup = {
            let metrics = metrics.clone();
            LookupQueue::new(
                LOOKUP_WORKERS,
                config.limits.lookup_queue,
                move |b: BatchStats| {
                    metrics.lookup_batch_requests.observe(b.requests as f64);
                    metrics.lookup_batch_hashes.observe(b.hashes as f64);
                },
            )
        };
        let keys = Arc::new(if config.api_keys.is_empty() {
            KeyRing::insecure_open()
        } else {
            KeyRing::from_config(&config.api_keys)
        });
        let state = AppState {
            keys,
            config,
            index: Arc::new(index),
            pool,
            lookup,
            store: StoreCalls::new(store),
            metrics,
            loaded_at_ms: AtomicI64::new(now_ms()),
            list_cache: tokio::sync::Mutex::new(None),
        };
        state.update_index_gauges();
        state.check_list_radius();
        Ok(state)
    }

    /// Reloads the index now if its path leads to another generation
    /// than the one in service, keeping the current generation if the new
    /// one is refused; `why` is logged. The candidate is opened and fully
    /// verified on a blocking thread while the current generation keeps
    /// answering. Returns where the path led if the candidate was refused.
    pub async fn reload_index(&self, why: &str) -> Option<Refused> {
        let index = self.index.clone();
        let before = index.current();
        let candidate = OnDisk::probe(index.path()).ok();
        let reloads = &self.metrics.reloads;
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || index.reload()).await;
        let seconds = started.elapsed().as_secs_f64();
        let refuse = |reason: &str| {
            reloads.with_label_values(&["error"]).inc();
            self.metrics
                .reload_failures
                .with_label_values(&[reason])
                .inc();
            Some(candidate.clone())
        };
        match result {
            Ok(Ok(Reload::Unchanged(_))) => {
                reloads.with_label_values(&["unchanged"]).inc();
                tracing::info!(
                    why,
                    generation = before.generation(),
                    identity = %before.identity(),
                    "index unchanged; still serving the same generation"
                );
                None
            }
            Ok(Ok(Reload::Loaded { previous, current })) => {
                reloads.with_label_values(&["ok"]).inc();
                self.metrics.reload_verify_seconds.set(seconds);
                self.loaded_at_ms.store(now_ms(), Ordering::Relaxed);
                self.update_index_gauges();
                tracing::info!(
                    why,
                    generation = current.generation(),
                    identity = %current.identity(),
                    dir = %current.on_disk().dir.display(),
                    previous_generation = previous.generation(),
                    previous_identity = %previous.identity(),
                    verify_seconds = seconds,
                    "index reloaded: new generation verified and in service"
                );
                self.check_list_radius();
                None
            }
            Ok(Err(e)) => {
                tracing::error!(
                    why,
                    error = %e,
                    reason = e.reason(),
                    candidate_identity = candidate.as_ref().map(|c| c.identity.to_string()),
                    generation = before.generation(),
                    identity = %before.identity(),
                    "index reload refused; still serving the previous generation"
                );
                refuse(e.reason())
            }
            Err(e) => {
                tracing::error!(why, error = %e, "index reload task failed; still serving the previous generation");
                refuse("task")
            }
        }
    }

    /// The index residency gauges, read from this process's mappings now.
    pub fn refresh_residency(&self) {
        self.metrics.set_residency(self.index.current().residency());
    }

    /// Warns about `[matching] list_radius` entries naming a list the
    /// current generation does not hold, and counts them: such a cap does
    /// nothing yet (a list may arrive with a later generation, so this is
    /// no reason to refuse the configuration), but a misspelt list name
    /// must not go unnoticed. Called at start and after each reload.
    fn check_list_radius(&self) {
        let reader = self.index.current();
        let not_held = self.config.matching.list_radius_not_held(&*reader);
        self.metrics.list_radius_not_held.set(not_held.len() as i64);
        if !not_held.is_empty() {
            tracing::warn!(
                lists = ?not_held,
                known = ?reader.stats().lists,
                generation = reader.generation(),
                "[matching] list_radius names lists this index generation does not hold; \
                 their caps apply once a generation holds them"
            );
        }
    }

    fn update_index_gauges(&self) {
        let reader = self.index.current();
        let m = &self.metrics;
        m.index_generation.set(reader.generation() as i64);
        m.index_entries
            .set(reader.stats().entries.values().sum::<u64>() as i64);
    }
}
