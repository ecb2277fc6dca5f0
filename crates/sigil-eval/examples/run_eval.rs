//! Runs the evaluation without the CLI (handy while the `sigil` binary is
//! being rebuilt): `run_eval ORIGINALS OUT [--split] [--limit N] [--threads N] [--transforms a,b]`.

use std::path::PathBuf;

use sigil_core::robust::{AugmentOptions, RobustQueryOptions};
use sigil_eval::harness::{self, EvalConfig};
use sigil_eval::report;
use sigil_eval::transforms;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut pos, mut split, mut limit, mut threads, mut tlist) =
        (Vec::new(), false, None, None, None);
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--split" => split = true,
            "--limit" => {
                i += 1;
                limit = Some(args[i].parse()?);
            }
            "--threads" => {
                i += 1;
                threads = Some(args[i].parse()?);
            }
            "--transforms" => {
                i += 1;
                tlist = Some(args[i].clone());
            }
            a => pos.push(PathBuf::from(a)),
        }
        i += 1;
    }
    if pos.len() != 2 {
        return Err(
            "usage: run_eval ORIGINALS OUT [--split] [--limit N] [--threads N] [--transforms a,b]"
                .into(),
        );
    }
    let cfg = EvalConfig {
        originals: pos[0].clone(),
        distractors: None,
        split,
        limit,
        threads,
        transforms: match tlist {
            Some(l) => transforms::select(&l)?,
            None => transforms::standard_suite(),
        },
        seed: 6,
        query: RobustQueryOptions::everything(),
        augment: AugmentOptions::default(),
        max_side: Some(1024),
    };
    let out = harness::run(&cfg, &|l| eprintln!("{l}"))?;
    let files = report::write_report(&out, &pos[1])?;
    println!("{}", files.markdown.display());
    Ok(())
}
