//! sigil-core's integration tests, one binary (`cargo test -p sigil-core --test it`):
//! linking the crate graph once instead of once per file. Each former test
//! file is a module; run one with `cargo test -p sigil-core --test it -- MODULE::`.

mod bad_input;
#[cfg(feature = "fast-jpeg")]
mod fast_jpeg;
mod originals_reference;
mod pdq_dihedral_pixels;
mod pdq_kernels;
mod pdq_luma;
mod pdq_reference;
mod support;
