//! The `sigil` binary: argument parsing and wiring only. Each subcommand
//! lives in its own module with an `Args` struct and a `run` function that
//! returns the process exit code.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd_eval;
mod cmd_hash;
mod cmd_index;
mod cmd_reports;
mod cmd_scan;
mod cmd_serve;
mod report_store;

#[derive(Parser)]
#[command(
    name = "sigil",
    version,
    about = "Find known images by perceptual and exact hash"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Hash image files (PDQ, quality, MD5, SHA-1, SHA-256).
    Hash(cmd_hash::Args),
    /// Batch-scan directories against an index.
    Scan(cmd_scan::Args),
    /// Build, update, inspect and query signature indexes.
    #[command(subcommand)]
    Index(cmd_index::Command),
    /// Run the gRPC matching service.
    Serve(cmd_serve::Args),
    /// Review report stubs: list, show, update, export, preservation, prune.
    Reports(cmd_reports::Args),
    /// Measure matching robustness on an image corpus.
    Eval(cmd_eval::Args),
}

fn main() -> ExitCode {
    install_panic_hook();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        restore_default_sigpipe();
    }
    let result = match cli.command {
        Command::Hash(a) => cmd_hash::run(a),
        Command::Scan(a) => cmd_scan::run(a),
        Command::Index(c) => cmd_index::run(c),
        Command::Serve(a) => cmd_serve::run(a),
        Command::Reports(a) => cmd_reports::run(a),
        Command::Eval(a) => cmd_eval::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sigil: error: {}", error_report(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, each said once.
///
/// Library errors often both show their cause in their message and expose it
/// as their `source` (thiserror's `#[error("... {source}")]`), so printing
/// the chain would say it twice ("Address already in use (os error 98):
/// Address already in use (os error 98)"). A cause whose text already ends
/// what was printed is skipped.
fn error_report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Lets a closed pipe end the command as it ends `grep` or `head`'s other
/// producers: killed by SIGPIPE, quietly, with the status a shell reports
/// for that (141). Rust ignores SIGPIPE by default, so every write to a
/// closed pipe would fail with "Broken pipe" (or `println!` would panic).
/// Not for `serve`: a server must survive a peer that goes away, and there
/// the error on the socket is the right outcome.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called once at start-up, before any other thread exists;
    // SIG_DFL is a valid disposition for SIGPIPE and no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Installs the process's panic hook (the binary owns the process; the
/// libraries never touch it).
///
/// Image decoders run on untrusted bytes and can panic; sigil-core catches
/// those panics and reports them as a `decoder_panic` error for the file.
/// Rust's default hook would still print each one on stderr (three lines,
/// or a whole backtrace under `RUST_BACKTRACE`), interleaved with a scan's
/// progress and outside `serve`'s structured logs. So a panic located in a
/// dependency gets one line, through tracing once `serve` has set up its
/// logs; a panic in sigil's own code is a bug and keeps the default report.
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let Some(loc) = info.location().filter(|l| is_dependency_source(l.file())) else {
            default(info);
            return;
        };
        let message = panic_message(info.payload());
        let at = format!("{}:{}", loc.file(), loc.line());
        if tracing::dispatcher::has_been_set() {
            tracing::error!(location = %at, message = %message, "panic in a dependency");
        } else {
            eprintln!("sigil: panic in a dependency at {at}: {message}");
        }
    }));
}

/// Whether a panic location is in a dependency's source (cargo's registry
/// or git checkouts) rather than in this workspace or the standard library.
fn is_dependency_source(file: &str) -> bool {
    let file = file.replace('\\', "/");
    file.contains("/registry/src/") || file.contains("/git/checkouts/")
}

/// The panic's message, cut to 200 characters: a decoder's message may
/// quote values from the file, and it goes to logs.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.as_str()
    } else {
        "non-string panic payload"
    };
    let mut out: String = text.chars().take(200).collect();
    if out.len() < text.len() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_sources_are_told_from_own_code() {
        assert!(is_dependency_source(
            "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/png-0.17.16/src/decoder/stream.rs"
        ));
        assert!(is_dependency_source(
            "/home/ci/.cargo/git/checkouts/image-3f1a/abc123/src/codecs/tiff.rs"
        ));
        assert!(is_dependency_source(
            r"C:\Users\ci\.cargo\registry\src\index.crates.io-6f17\gif-0.13.1\src\reader\mod.rs"
        ));
        assert!(!is_dependency_source("crates/sigil-core/src/decode.rs"));
        assert!(!is_dependency_source(
            "/rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/core/src/slice/index.rs"
        ));
    }

    #[test]
    fn an_error_report_says_each_cause_once() {
        #[derive(Debug)]
        struct Bind(std::io::Error);
        impl std::fmt::Display for Bind {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "cannot listen on 127.0.0.1:1: {}", self.0)
            }
        }
        impl std::error::Error for Bind {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let e = anyhow::Error::new(Bind(io)).context("starting the server");
        assert_eq!(
            error_report(&e),
            "starting the server: cannot listen on 127.0.0.1:1: Address already in use"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_report(&plain), "outer: inner");
    }

    #[test]
    fn panic_messages_are_bounded() {
        let long = "x".repeat(1000);
        let m = panic_message(&long);
        assert_eq!(m.len(), 203);
        assert!(m.ends_with("..."));
        assert_eq!(panic_message(&"short"), "short");
        assert_eq!(panic_message(&42u32), "non-string panic payload");
    }
}
