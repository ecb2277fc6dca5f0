//! How a job run on a worker thread gets back to its async caller, shared
//! by the hashing pool and the lookup queue: the worker produces an input
//! (an image's signatures, a search's matches), runs the caller's
//! follow-up step on it there, releases the job's place in the queue and
//! sends what the follow-up returned.

use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

use tokio::sync::{oneshot, OwnedSemaphorePermit};

/// An error that can say "the worker panicked".
pub(crate) trait WorkerPanicked {
    fn worker_panicked(message: String) -> Self;
}

/// A job's way back to its caller. Type-erased so that one queue carries
/// callers whose follow-ups return different types.
pub(crate) trait Reply<I, E>: Send {
    /// The caller gave up (deadline or disconnect): nothing to do.
    fn is_closed(&self) -> bool;
    /// Runs the follow-up on `input` (unless it is an error, or the caller
    /// gave up meanwhile), then releases `permit` and replies. The permit
    /// goes before the reply, so a caller that has its answer can submit
    /// again at once and find the room it left.
    fn send(self: Box<Self>, input: Result<I, E>, permit: OwnedSemaphorePermit);
}

/// Where a caller waits for its job's result.
pub(crate) type Answer<T, E> = oneshot::Receiver<Result<T, E>>;

/// A [`Reply`] running `then`, and the receiver its result arrives on.
pub(crate) fn reply<I, E, T, F>(then: F) -> (Box<dyn Reply<I, E>>, Answer<T, E>)
where
    I: 'static,
    E: WorkerPanicked + Send + 'static,
    T: Send + 'static,
    F: FnOnce(I) -> T + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let reply = Box::new(TypedReply {
        tx,
        then,
        input: PhantomData,
    });
    (reply, rx)
}

struct TypedReply<I, T, E, F> {
    tx: oneshot::Sender<Result<T, E>>,
    then: F,
    /// `fn(I)`: the reply consumes an `I`; it holds none.
    input: PhantomData<fn(I)>,
}

impl<I, T, E, F> Reply<I, E> for TypedReply<I, T, E, F>
where
    E: WorkerPanicked + Send,
    T: Send,
    F: FnOnce(I) -> T + Send,
{
    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    fn send(self: Box<Self>, input: Result<I, E>, permit: OwnedSemaphorePermit) {
        let TypedReply { tx, then, .. } = *self;
        if tx.is_closed() {
            return; // gave up meanwhile: skip the follow-up
        }
        let result = input.and_then(|i| {
            catch_unwind(AssertUnwindSafe(|| then(i)))
                .map_err(|p| E::worker_panicked(panic_message(p.as_ref())))
        });
        drop(permit);
        let _ = tx.send(result);
    }
}

/// The message of a caught panic (`panic!` with a literal or a format).
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}
