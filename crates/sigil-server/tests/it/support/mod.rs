//! Helpers shared by the modules of these tests.

/// Raw HTTP/2 and TLS clients that misbehave on purpose (hostile-client tests).
pub mod hostile;
/// A TCP relay in front of PostgreSQL that a test can cut (drills).
#[cfg(feature = "postgres")]
pub mod relay;
