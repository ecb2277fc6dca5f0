//! sigil-cli's integration tests, one binary (`cargo test -p sigil-cli --test it`):
//! linking the crate graph once instead of once per file. Each former test
//! file is a module; run one with `cargo test -p sigil-cli --test it -- MODULE::`.

mod conformance;
mod hash_cli;
mod index_cli;
mod reports_cli;
mod robust_cli;
mod runbook;
mod scan_cli;
mod serve_cli;
mod support;
