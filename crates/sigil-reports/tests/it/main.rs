//! sigil-reports's integration tests, one binary (`cargo test -p sigil-reports --test it`):
//! linking the crate graph once instead of once per file. Each former test
//! file is a module; run one with `cargo test -p sigil-reports --test it -- MODULE::`.

mod export_xml;
mod report_store_pg;
