//! Helpers shared by the modules of these tests.

/// A server with the reviewer console and a seeded store, and an HTTP client for it.
pub mod console;

/// Raw HTTP/2 and TLS clients that misbehave on purpose (hostile-client tests).
pub mod hostile;
/// A TCP relay in front of PostgreSQL that a test can cut (drills).
#[cfg(feature = "postgres")]
pub mod relay;
