//! `sigil index ...` (not yet implemented).

use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print statistics about an index.
    Stats,
}

pub fn run(_cmd: Command) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`sigil index` is not implemented yet")
}
