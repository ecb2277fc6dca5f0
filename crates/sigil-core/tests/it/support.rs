//! Helpers shared by the modules of these tests.

/// The crate's own test generator (unit and integration tests share it).
#[path = "../../src/test_rng.rs"]
mod test_rng;

pub use test_rng::SplitMix64;
