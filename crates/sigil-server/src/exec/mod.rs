//! The bounded executors: everything that runs a request's work off the
//! async threads, or limits how much of it runs at once. Each refuses or
//! waits at its bound; nothing here queues without one.
//!
//! - [`pool`]: image hashing on fixed threads (the image's own index lookup
//!   runs there too, right after the hash);
//! - [`lookup`]: `MatchHashes` searches on fixed threads, coalescing
//!   compatible requests into one batched search;
//! - [`store_calls`]: report store calls, at most the store's parallelism;
//! - [`connections`]: accepted connections, bounded in number (in all and
//!   per peer address) and in time (handshake, idle);
//! - [`calls`]: each call marked open on its connection, and request
//!   bodies bounded in bytes (across all calls) and time while they
//!   arrive.

pub mod calls;
pub mod connections;
pub mod lookup;
pub mod pool;
mod reply;
pub mod store_calls;
