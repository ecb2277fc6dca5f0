//! sigil-index's integration tests, one binary (`cargo test -p sigil-index --test it`):
//! linking the crate graph once instead of once per file. Each former test
//! file is a module; run one with `cargo test -p sigil-index --test it -- MODULE::`.

mod corrupt;
mod drill_crash;
mod reload;
mod search;
