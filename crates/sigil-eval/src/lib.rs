//! sigil-eval: measures how well sigil's matching survives the edits images
//! go through (re-encoding, rescaling, crops, padding, rotations, overlays):
//! the transform suite, the methods (PDQ with the robust variants of
//! `sigil_core::robust`, and a second gradient-grid signature), metrics at a
//! fixed precision, the report and its plots.
//!
//! `sigil eval` drives [`harness::run`]. Nothing on the serving path should
//! depend on this crate; scan and serve still import
//! [`robust::best_per_entry`] until the matching policy owns it.

pub mod font;
pub mod gradient;
pub mod harness;
pub mod metrics;
pub mod plots;
pub mod report;
pub mod rng;
pub mod robust;
pub mod transforms;
