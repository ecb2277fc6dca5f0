//! sigil-server's integration tests, one binary (`cargo test -p sigil-server --test it`):
//! linking the crate graph once instead of once per file. Each former test
//! file is a module; run one with `cargo test -p sigil-server --test it -- MODULE::`.

mod console;
mod console_browser;
mod drills;
mod grpc;
mod robust;
mod support;
mod tls;
