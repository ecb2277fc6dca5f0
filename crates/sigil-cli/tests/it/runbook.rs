//! The runbook runs: every shell block of README.md and docs/operations.md
//! is either run here with its expected exit status, or says why it cannot
//! be (it needs a cluster, a registry or production data). A document that
//! drifts from the binary fails this test with the block's file and line.
//!
//! A block is marked by an HTML comment on the line before its fence, which
//! renderers do not show:
//!
//! ```text
//! <!-- runbook: run -->                    run it; it must exit 0
//! <!-- runbook: run status=1 -->           ... it must exit 1
//! <!-- runbook: run needs=python -->       ... with the Python client's packages
//! <!-- runbook: manual (why) -->           not run here, and why
//! ```
//!
//! Blocks run in order, each with `bash -eu -o pipefail`, in one scratch
//! directory holding copies of the repository's `testdata/`, `examples/`,
//! `proto/`, `deploy/` and `.ci/`, with the `sigil` under test first on
//! `PATH` (`cargo run --release -p sigil-cli --` is run as that `sigil`).
//! Processes a block leaves in the background are killed when it ends.
//! `needs=python` takes `SIGIL_RUNBOOK_PYTHON_BIN` (a directory with a
//! `python` that has grpcio and grpcio-tools, which `.ci/run` makes); without
//! it the block is reported as not run, and with `SIGIL_RUNBOOK_STRICT=1`
//! (set by `.ci/run`) that is a failure.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Documents whose every shell block must be marked.
const DOCUMENTS: [&str; 2] = ["README.md", "docs/operations.md"];
/// Repository folders a block may use, copied into its scratch directory.
const COPIED: [&str; 5] = ["testdata", "examples", "proto", "deploy", ".ci"];
/// A block that runs longer is stopped and fails (a safety net, not a
/// measurement).
const BLOCK_CAP: Duration = Duration::from_secs(600);

#[derive(Debug, PartialEq)]
enum Mark {
    Run { status: i32, needs: Option<String> },
    Manual(String),
}

#[derive(Debug)]
struct Block {
    /// `FILE:LINE` of the opening fence.
    place: String,
    mark: Option<Mark>,
    script: String,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shell blocks of a Markdown text, with the marker before each.
fn shell_blocks(name: &str, text: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(info) = lines[i].strip_prefix("```") else {
            i += 1;
            continue;
        };
        let start = i;
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].starts_with("```"))
            .ok_or_else(|| format!("{name}:{}: unclosed code block", start + 1))?;
        if matches!(info.trim(), "sh" | "bash" | "shell") {
            let mark = match start.checked_sub(1).map(|p| lines[p].trim()) {
                Some(prev) if prev.starts_with("<!-- runbook:") => {
                    Some(parse_mark(prev).map_err(|e| format!("{name}:{start}: {e}"))?)
                }
                _ => None,
            };
            blocks.push(Block {
                place: format!("{name}:{}", start + 1),
                mark,
                script: lines[start + 1..end].join("\n"),
            });
        }
        i = end + 1;
    }
    Ok(blocks)
}

fn parse_mark(comment: &str) -> Result<Mark, String> {
    let body = comment
        .strip_prefix("<!-- runbook:")
        .and_then(|s| s.strip_suffix("-->"))
        .ok_or("a runbook marker is `<!-- runbook: ... -->` on one line")?
        .trim();
    if let Some(why) = body.strip_prefix("manual") {
        let why = why
            .trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .trim();
        if why.is_empty() {
            return Err("`manual` needs a reason: `<!-- runbook: manual (why) -->`".into());
        }
        return Ok(Mark::Manual(why.to_string()));
    }
    let mut words = body.split_whitespace();
    if words.next() != Some("run") {
        return Err(format!("unknown runbook marker {body:?} (run or manual)"));
    }
    let (mut status, mut needs) = (0, None);
    for w in words {
        match w.split_once('=') {
            Some(("status", v)) => status = v.parse().map_err(|_| format!("bad status {v:?}"))?,
            Some(("needs", v)) if v == "python" => needs = Some(v.to_string()),
            _ => {
                return Err(format!(
                    "unknown runbook option {w:?} (status=N, needs=python)"
                ))
            }
        }
    }
    Ok(Mark::Run { status, needs })
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ty = e.file_type().unwrap();
        if ty.is_dir() {
            copy_tree(&src, &dst);
        } else if ty.is_file() {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Runs one block; returns its exit status and its output (both streams).
fn run_block(block: &Block, dir: &Path, path_var: &str) -> (Option<i32>, String) {
    let script = block
        .script
        .replace("cargo run --release -p sigil-cli --", "sigil");
    let out_file = dir.join(".runbook-output");
    let out = std::fs::File::create(&out_file).unwrap();
    let mut child = Command::new("bash")
        .args(["-eu", "-o", "pipefail", "-c", &script])
        .current_dir(dir)
        .env("PATH", path_var)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        // Its own process group, so that what it leaves running is found.
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = child.id() as i32;
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if start.elapsed() > BLOCK_CAP {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // SAFETY: kill(2) on a process group this test created; no memory is
    // involved. Ends background servers and anything a timed-out block left.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    let _ = child.wait();
    let mut text = String::new();
    std::fs::File::open(&out_file)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    (status, text)
}

#[test]
fn markers_are_parsed_and_unmarked_blocks_found() {
    let doc = "text\n<!-- runbook: run status=1 -->\n```sh\nsigil scan x\n```\n\
               ```sh\necho unmarked\n```\n<!-- runbook: manual (needs a cluster) -->\n\
               ```bash\nkubectl apply -k x\n```\n```text\nnot shell\n```\n";
    let b = shell_blocks("doc.md", doc).unwrap();
    assert_eq!(b.len(), 3);
    assert_eq!(
        b[0].mark,
        Some(Mark::Run {
            status: 1,
            needs: None
        })
    );
    assert_eq!(b[0].place, "doc.md:3");
    assert_eq!(b[1].mark, None);
    assert_eq!(b[2].mark, Some(Mark::Manual("needs a cluster".into())));
    assert!(parse_mark("<!-- runbook: manual -->").is_err());
    assert!(parse_mark("<!-- runbook: run status=x -->").is_err());
    assert!(parse_mark("<!-- runbook: runn -->").is_err());
}

#[test]
fn every_runbook_block_runs_as_written() {
    let root = repo();
    let scratch = tempfile::tempdir().unwrap();
    for d in COPIED {
        copy_tree(&root.join(d), &scratch.path().join(d));
    }
    let sigil_dir = Path::new(env!("CARGO_BIN_EXE_sigil")).parent().unwrap();
    let python = std::env::var("SIGIL_RUNBOOK_PYTHON_BIN").ok();
    let strict = std::env::var("SIGIL_RUNBOOK_STRICT").is_ok_and(|v| v == "1");
    let base_path = format!(
        "{}:{}",
        sigil_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut failures = Vec::new();
    let (mut ran, mut manual, mut not_run) = (0, 0, Vec::new());
    for doc in DOCUMENTS {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        let blocks = shell_blocks(doc, &text).unwrap_or_else(|e| panic!("{e}"));
        for block in &blocks {
            match &block.mark {
                None => failures.push(format!(
                    "{}: shell block without a runbook marker (<!-- runbook: run --> or \
                     <!-- runbook: manual (why) --> on the line before)",
                    block.place
                )),
                Some(Mark::Manual(why)) => {
                    manual += 1;
                    eprintln!("runbook: {}: manual ({why})", block.place);
                }
                Some(Mark::Run { status, needs }) => {
                    let path_var = match (needs.as_deref(), &python) {
                        (Some("python"), Some(bin)) => format!("{bin}:{base_path}"),
                        (Some(need), None) => {
                            not_run.push(format!("{}: needs {need}", block.place));
                            continue;
                        }
                        _ => base_path.clone(),
                    };
                    let started = Instant::now();
                    let (got, output) = run_block(block, scratch.path(), &path_var);
                    ran += 1;
                    eprintln!(
                        "runbook: {}: exit {got:?} in {:.1} s",
                        block.place,
                        started.elapsed().as_secs_f64()
                    );
                    if got != Some(*status) {
                        let tail: String = {
                            let lines: Vec<&str> = output.lines().collect();
                            lines[lines.len().saturating_sub(30)..].join("\n")
                        };
                        failures.push(format!(
                            "{}: exited {}, the document expects {status}\n{}\n--- output (last 30 lines)\n{tail}",
                            block.place,
                            got.map_or("(stopped after the cap or by a signal)".into(), |c| c.to_string()),
                            block.script
                        ));
                    }
                }
            }
        }
    }
    for n in &not_run {
        eprintln!("runbook: NOT RUN: {n} (set SIGIL_RUNBOOK_PYTHON_BIN; .ci/run does)");
    }
    if strict {
        failures.extend(
            not_run
                .iter()
                .map(|n| format!("{n}: not run under SIGIL_RUNBOOK_STRICT=1")),
        );
    }
    eprintln!(
        "runbook: {ran} blocks run, {manual} manual, {} not run here",
        not_run.len()
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
    assert!(ran > 0, "no runbook block was run");
}

/// The README's synopsis of each command, read from its ```text blocks: a
/// line starting with `sigil`, the command words after it, and the long
/// flags of the line and its indented continuation lines.
fn readme_synopses(readme: &str) -> Vec<(Vec<String>, Vec<String>, String)> {
    let mut out: Vec<(Vec<String>, Vec<String>, String)> = Vec::new();
    let mut in_text = false;
    for (no, line) in readme.lines().enumerate() {
        if line.starts_with("```") {
            in_text = line.trim() == "```text";
            continue;
        }
        if !in_text {
            continue;
        }
        let flags = long_flags(line.split('#').next().unwrap_or_default());
        if let Some(rest) = line.strip_prefix("sigil ") {
            let words: Vec<String> = rest
                .split_whitespace()
                .take_while(|w| {
                    w.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !w.starts_with('-')
                })
                .map(str::to_string)
                .collect();
            out.push((words, flags, format!("README.md:{}", no + 1)));
        } else if line.starts_with(' ') {
            if let Some(last) = out.last_mut() {
                last.1.extend(flags);
            }
        }
    }
    out
}

/// The `--long` flags a text names, without `=value` parts.
fn long_flags(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_string)
        .collect()
}

/// The README's command synopses and `sigil CMD --help` agree: every flag
/// a synopsis names exists, and every flag the binary takes is in the
/// synopsis of its command (a renamed or new flag cannot leave the README
/// behind).
#[test]
fn readme_synopses_match_the_help() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let synopses = readme_synopses(&readme);
    assert!(synopses.len() >= 8, "{synopses:?}");
    let mut by_command: std::collections::BTreeMap<Vec<String>, (Vec<String>, String)> =
        Default::default();
    for (words, flags, place) in synopses {
        let e = by_command
            .entry(words)
            .or_insert_with(|| (Vec::new(), place));
        e.0.extend(flags);
    }
    let mut failures = Vec::new();
    for (words, (flags, place)) in &by_command {
        let out = crate::support::sigil()
            .args(words)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "sigil {words:?} --help failed");
        let help = String::from_utf8(out.stdout).unwrap();
        let in_help: Vec<String> = long_flags(&help)
            .into_iter()
            .filter(|f| f != "--help" && f != "--version")
            .collect();
        for f in flags {
            if !in_help.contains(f) {
                failures.push(format!("{place}: `sigil {}` has no {f}", words.join(" ")));
            }
        }
        for f in &in_help {
            if !flags.contains(f) {
                failures.push(format!(
                    "{place}: the synopsis of `sigil {}` lacks {f} (in its --help)",
                    words.join(" ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
