//! sigil-eval: measures how well sigil's matching survives the edits images
//! go through (re-encoding, rescaling, crops, padding, rotations, overlays):
//! the transform suite, the methods (PDQ with the robust variants of
//! `sigil_core::robust`, and a second gradient-grid signature), metrics at a
//! fixed precision, the report and its plots.
//!
//! `sigil eval` drives [`harness::run`]. Nothing on the serving or scanning
//! path depends on this crate (a CI check, `.ci/invariants.sh`): it would
//! pull the plotting stack into the server.

pub mod font;
pub mod gradient;
pub mod harness;
pub mod metrics;
pub mod plots;
pub mod report;
pub mod rng;
pub mod robust;
pub mod transforms;
