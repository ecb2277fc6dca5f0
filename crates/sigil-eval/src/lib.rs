//! sigil-eval: measures how well sigil's matching survives the edits images
//! go through (re-encoding, rescaling, crops, padding, rotations, overlays),
//! and hosts the robust-matching helpers that the winning methods need at run
//! time (query-side variants, index-side enrollment augmentation, a second
//! gradient-grid signature).
//!
//! `sigil eval` drives [`harness::run`]; scan, serve and index build call
//! [`robust`] directly.

pub mod borders;
pub mod font;
pub mod gradient;
pub mod harness;
pub mod metrics;
pub mod plots;
pub mod report;
pub mod rng;
pub mod robust;
pub mod transforms;
