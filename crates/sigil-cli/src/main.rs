//! The `sigil` binary: argument parsing and wiring only. Each subcommand
//! lives in its own module with an `Args` struct and a `run` function that
//! returns the process exit code.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd_bench_server;
mod cmd_eval;
mod cmd_hash;
mod cmd_index;
mod cmd_scan;
mod cmd_serve;

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
    /// Measure matching robustness on an image corpus.
    Eval(cmd_eval::Args),
    /// Load-test a running `sigil serve` (throughput and latency percentiles).
    BenchServer(cmd_bench_server::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hash(a) => cmd_hash::run(a),
        Command::Scan(a) => cmd_scan::run(a),
        Command::Index(c) => cmd_index::run(c),
        Command::Serve(a) => cmd_serve::run(a),
        Command::Eval(a) => cmd_eval::run(a),
        Command::BenchServer(a) => cmd_bench_server::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sigil: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
