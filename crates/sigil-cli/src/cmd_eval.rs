//! `sigil eval`: the robustness evaluation (transform suite, matching
//! methods, thresholds at precision >= 99.99%, Markdown report and plots).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use sigil_core::robust::{AugmentOptions, RobustQueryOptions};
use sigil_eval::harness::{self, EvalConfig};
use sigil_eval::report;
use sigil_eval::transforms;

#[derive(clap::Args)]
pub struct Args {
    /// Directory of original images (searched recursively).
    #[arg(long)]
    originals: PathBuf,
    /// Directory of distractor images (distinct images never transformed).
    #[arg(long)]
    distractors: Option<PathBuf>,
    /// Use every other file of --originals (by name) as a distractor.
    #[arg(long)]
    split: bool,
    /// Output directory for report.md, results.json and the PNG plots.
    #[arg(long)]
    out: PathBuf,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Use at most N originals (and at most N distractors).
    #[arg(long)]
    limit: Option<usize>,
    /// Comma-separated subset of the transform suite (default: all).
    #[arg(long)]
    transforms: Option<String>,
    /// Seed for the random parts of transforms (crop position, noise, ...).
    #[arg(long, default_value_t = 6)]
    seed: u64,
    /// Downscale inputs whose longer side exceeds this before transforming
    /// (0 = keep full size).
    #[arg(long, default_value_t = 1024)]
    max_side: u32,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let transforms = match &args.transforms {
        Some(list) => transforms::select(list).context("--transforms")?,
        None => transforms::standard_suite(),
    };
    let cfg = EvalConfig {
        originals: args.originals.clone(),
        distractors: args.distractors.clone(),
        split: args.split,
        limit: args.limit,
        threads: args.threads,
        transforms,
        seed: args.seed,
        query: RobustQueryOptions::everything(),
        augment: AugmentOptions::default(),
        max_side: (args.max_side > 0).then_some(args.max_side),
    };
    let outcome = harness::run(&cfg, &|line| eprintln!("sigil eval: {line}"))
        .with_context(|| format!("evaluating {}", args.originals.display()))?;
    let files = report::write_report(&outcome, &args.out)
        .with_context(|| format!("writing the report to {}", args.out.display()))?;
    for e in &outcome.exclusions {
        eprintln!(
            "sigil eval: excluded {} {}: {} ({})",
            e.role,
            e.path,
            e.reason.as_str(),
            e.detail
        );
    }
    println!("{}", files.markdown.display());
    Ok(ExitCode::SUCCESS)
}
