//! Report store calls: off the async threads, and bounded.
//!
//! The stores are synchronous (SQLite behind one connection's mutex,
//! PostgreSQL behind a small pool), so each call runs on tokio's blocking
//! pool. Unbounded, a burst of matches or of reviewer calls would take up to
//! 512 blocking threads, all but a few of them parked on the store's lock.
//! Calls wait here instead, as futures holding nothing but their arguments,
//! for one of [`ReportStore::parallelism`] permits.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinError;

use sigil_reports::{ReportStore, StoreError};

/// The server's one way to call its [`ReportStore`].
pub struct StoreCalls {
    store: Arc<dyn ReportStore>,
    permits: Arc<Semaphore>,
}

impl StoreCalls {
    pub fn new(store: Arc<dyn ReportStore>) -> Self {
        let permits = Arc::new(Semaphore::new(store.parallelism().max(1)));
        StoreCalls { store, permits }
    }

    /// Runs `f` on a blocking thread once a permit is free. The outer error
    /// is the task's failure (a panic in the store), the inner one the
    /// store's. Dropping the future before the permit is granted runs
    /// nothing; after that, the call completes even if nobody waits for it
    /// (a stub being committed is not abandoned halfway).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn ReportStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<Result<T, StoreError>, JoinError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the store's semaphore is never closed");
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(store.as_ref())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use sigil_reports::{
        Filed, Filing, NewReport, ReportCounts, ReportFilter, ReportPage, ReportRecord,
        ReportUpdate,
    };

    /// Records how many calls run at once.
    #[derive(Default)]
    struct Probe {
        running: AtomicUsize,
        most: AtomicUsize,
        calls: AtomicUsize,
    }

    impl Probe {
        fn enter(&self) {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            self.running.fetch_sub(1, Ordering::SeqCst);
            self.calls.fetch_add(1, Ordering::SeqCst);
        }
    }

    struct SlowStore {
        probe: Arc<Probe>,
        parallelism: usize,
    }

    impl ReportStore for SlowStore {
        fn create_many(&self, reports: &[NewReport]) -> Result<Vec<Filed>, StoreError> {
            self.probe.enter();
            let filed = Filed {
                id: "r".into(),
                filing: Filing::Opened,
            };
            Ok(vec![filed; reports.len()])
        }
        fn get(&self, id: &str) -> Result<ReportRecord, StoreError> {
            self.probe.enter();
            Err(StoreError::NotFound(id.into()))
        }
        fn list(&self, _: &ReportFilter) -> Result<ReportPage, StoreError> {
            unreachable!("not called")
        }
        fn counts(&self, _: &ReportFilter) -> Result<ReportCounts, StoreError> {
            unreachable!("not called")
        }
        fn prune(&self, _: i64, _: bool) -> Result<Vec<ReportRecord>, StoreError> {
            unreachable!("not called")
        }
        fn update(
            &self,
            _: &str,
            _: &ReportUpdate,
            _: &str,
            _: i64,
        ) -> Result<ReportRecord, StoreError> {
            unreachable!("not called")
        }
        fn parallelism(&self) -> usize {
            self.parallelism
        }
    }

    /// 40 concurrent calls against stores of parallelism 1 and 3: all of
    /// them run and answer, never more than the store's parallelism at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_run_at_most_parallelism_at_once() {
        for parallelism in [1, 3] {
            let probe = Arc::new(Probe::default());
            let calls = Arc::new(StoreCalls::new(Arc::new(SlowStore {
                probe: probe.clone(),
                parallelism,
            })));
            let mut tasks = Vec::new();
            for i in 0..40 {
                let calls = calls.clone();
                tasks.push(tokio::spawn(async move {
                    if i % 2 == 0 {
                        let ids = calls.run(|s| s.create_many(&[])).await.unwrap().unwrap();
                        assert!(ids.is_empty());
                    } else {
                        let err = calls.run(|s| s.get("x")).await.unwrap().unwrap_err();
                        assert!(matches!(err, StoreError::NotFound(_)));
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(probe.calls.load(Ordering::SeqCst), 40);
            let most = probe.most.load(Ordering::SeqCst);
            assert!(
                most <= parallelism,
                "{most} calls at once, parallelism {parallelism}"
            );
        }
    }

    /// A panicking store call is the task's error, and it gives its permit
    /// back: the next call runs.
    #[tokio::test]
    async fn a_panicking_call_frees_its_permit() {
        let calls = StoreCalls::new(Arc::new(SlowStore {
            probe: Arc::new(Probe::default()),
            parallelism: 1,
        }));
        let r: Result<Result<(), StoreError>, JoinError> = calls.run(|_| panic!("store bug")).await;
        assert!(r.unwrap_err().is_panic());
        let ids = calls.run(|s| s.create_many(&[])).await.unwrap().unwrap();
        assert!(ids.is_empty());
    }
}
