//! sigil-scan's integration tests, one binary (`cargo test -p sigil-scan --test it`):
//! linking the crate graph once instead of once per file. Each former test
//! file is a module; run one with `cargo test -p sigil-scan --test it -- MODULE::`.

mod pipeline;
