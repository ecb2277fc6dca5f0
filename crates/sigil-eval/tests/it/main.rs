//! sigil-eval's integration tests, one binary (`cargo test -p sigil-eval --test it`):
//! linking the crate graph once instead of once per file. Each former test
//! file is a module; run one with `cargo test -p sigil-eval --test it -- MODULE::`.

mod eval_smoke;
