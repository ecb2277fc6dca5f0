//! `sigil scan`: batch-scan directories against an index (wiring only; the
//! pipeline lives in sigil-scan).

use std::collections::HashSet;
use std::fs::File;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use sigil_core::pdq::Profile;
use sigil_core::robust::RobustLevel;
use sigil_core::DecodeOptions;
use sigil_index::IndexReader;
use sigil_match::{MatchPolicy, MatchRequest, DEFAULT_QUALITY_THRESHOLD, DEFAULT_RADIUS};
use sigil_reports::{Filing, NewReport, StoredMatch};
use sigil_scan::journal::{open_for_resume, read_journal, ScanManifest, MANIFEST_VERSION};
use sigil_scan::output::OutputTarget;
use sigil_scan::path::{escape, path_bytes};
use sigil_scan::record::ScanRecord;
use sigil_scan::walk::WalkOptions;
use sigil_scan::{
    run_scan, IndexProvenance, MatchSink, OutputFormat, Progress, RecordWriter, ScanConfig, Shard,
    Sinks, SkippedWriter,
};

use crate::report_store::{OpenStore, StoreArgs};

/// Exit status when the scan was interrupted (128 + SIGINT, as shells do).
const EXIT_INTERRUPTED: u8 = 130;

#[derive(clap::Args)]
#[command(after_help = "Exit status: 0 nothing matched, 1 something matched \
    (0 with --matches-ok), 2 the scan could not run (bad index, arguments or output), \
    130 interrupted.")]
pub struct Args {
    /// Files or directories to scan (recursively). Every regular file is
    /// read and recognised by its content, whatever its name; a file named
    /// here is always scanned (globs do not apply to it).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Index directory (built with `sigil index build`).
    #[arg(long, value_name = "INDEX")]
    index: PathBuf,
    /// PDQ match radius (inclusive Hamming distance).
    #[arg(long, default_value_t = DEFAULT_RADIUS, value_parser = clap::value_parser!(u32).range(0..=256))]
    radius: u32,
    /// Write records to FILE instead of standard output (required by --resume).
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Record format.
    #[arg(long, default_value = "jsonl", value_parser = parse_format)]
    format: OutputFormat,
    /// Worker threads (default: all cores).
    #[arg(long, short = 'j')]
    threads: Option<usize>,
    /// Continue an interrupted scan recorded in --output: finished files are
    /// skipped, nothing is recorded twice. Refused when the index is at
    /// another generation than the records were matched against, unless
    /// --allow-index-change.
    #[arg(long)]
    resume: bool,
    /// With --resume: go on although the index changed generation since the
    /// scan started (the summary and the manifest say where the records of
    /// each generation start).
    #[arg(long, requires = "resume")]
    allow_index_change: bool,
    /// Replace an existing --output file (otherwise the scan refuses to start).
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// Scan only shard I of N (0-based), chosen by a stable hash of each
    /// file's path relative to its root, e.g. 0/4 .. 3/4.
    #[arg(long, value_name = "I/N")]
    shard: Option<Shard>,
    /// Only scan files whose path relative to the root matches GLOB
    /// (repeatable; default: every file). Files left out are listed as
    /// skipped (`excluded`).
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,
    /// Skip files and directories whose relative path matches GLOB (repeatable).
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Follow symbolic links (loops are detected and recorded as errors).
    #[arg(long)]
    follow_symlinks: bool,
    /// Files larger than SIZE are not read at all, not even for their exact
    /// digests (listed as skipped, `too_large`). Suffixes K, M, G, T
    /// (powers of 1024). Images over 64 MiB are never decoded; up to SIZE
    /// they are still exact-hashed.
    #[arg(long, value_name = "SIZE", default_value = "4G", value_parser = parse_size)]
    max_file_bytes: u64,
    /// Write every path reached but not read (excluded, symlink not
    /// followed, special file, too large) to FILE as JSON lines with its
    /// reason; files of other shards are only counted.
    #[arg(long, value_name = "FILE")]
    skipped: Option<PathBuf>,
    /// Also match rotated and mirrored copies (8 dihedral variants).
    #[arg(long)]
    dihedral: bool,
    /// Robust matching. `--robust` (= `standard`): also query the dihedral
    /// variants of the image and of its content inside detected flat or
    /// mirrored borders (padding, letterboxing, rotations by 90/180/270
    /// degrees, flips), ~13 hashes per image. `--robust=full`: also query
    /// copies rotated back by 3, 6 and 9 degrees either way and zoomed to
    /// 85% and 115% (small rotations, crops, padding of any kind), ~21
    /// hashes per image. Each entry is reported once, at its smallest
    /// distance, with the query variant that matched. Implies --dihedral.
    /// Measured recall and false-positive rate: docs/robustness.md.
    #[arg(
        long,
        value_name = "LEVEL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "standard",
        default_value = "off",
        value_parser = parse_robust_level
    )]
    robust: RobustLevel,
    /// PDQ hashes below this quality are not matched (verdict low_quality).
    #[arg(long, default_value_t = DEFAULT_QUALITY_THRESHOLD, value_parser = clap::value_parser!(u32).range(0..=100))]
    min_quality: u32,
    /// Hash large JPEGs from their DCT coefficients or a reduced-scale decode
    /// (faster, approximate; see BENCHMARKS.md).
    #[arg(long)]
    fast: bool,
    /// PDQ pre-processing profile: full (HMA, python-threatexchange) or
    /// cli512 (Meta's C++ command-line tool).
    #[arg(long, default_value = "full")]
    profile: Profile,
    /// Only match entries of these lists, by any kind of hash (repeatable;
    /// default all). A list the index does not hold stops the scan before
    /// it starts.
    #[arg(long = "list", value_name = "NAME")]
    lists: Vec<String>,
    /// Write only records that matched (not with --resume: unmatched files
    /// would not be journaled).
    #[arg(long, conflicts_with = "resume")]
    only_matches: bool,
    /// Also write the final summary as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,
    /// Exit 0 when the scan ran to its end, whether or not something
    /// matched (the records and the summary say what did). For batch
    /// schedulers such as a Kubernetes Job, where any non-zero status means
    /// the run failed: 2 (could not run) and 130 (interrupted) still do.
    #[arg(long)]
    matches_ok: bool,
    /// File a report stub for every match, in the report store named by
    /// --db FILE (SQLite) or --config FILE (a server config's `[reports]`,
    /// PostgreSQL included), with the scanned path as content reference. A
    /// repeated match of the same content and entries adds a sighting to
    /// the open stub instead; the same path twice (a rerun, a resume) is
    /// recorded once. Each stub is committed before the file's record is
    /// written.
    #[arg(long)]
    reports: bool,
    #[command(flatten)]
    store: StoreArgs,
    /// No progress bar and no summary on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Test hook: sleep this many milliseconds per file.
    #[arg(long, hide = true)]
    test_delay_ms: Option<u64>,
}

/// The progress bar's look: before the walk has finished, files done and
/// found so far; after, a bar with the total and an ETA. Rates are rounded
/// to whole files per second.
fn progress_style(total_known: bool) -> indicatif::ProgressStyle {
    let template = if total_known {
        "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} files {rate} {msg} ETA {eta}"
    } else {
        "{spinner} {elapsed_precise} {pos} files done, {len} found so far {rate} {msg}"
    };
    indicatif::ProgressStyle::with_template(template)
        .expect("static progress template")
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0} files/s", state.per_sec());
            },
        )
        .progress_chars("=> ")
}

/// `--robust[=LEVEL]` of scan and serve.
pub(crate) fn parse_robust_level(s: &str) -> Result<RobustLevel, String> {
    s.parse()
}

fn parse_format(s: &str) -> Result<OutputFormat, String> {
    s.parse()
}

/// A byte count with an optional binary suffix: `4G`, `500M`, `4GiB`, `1024`.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected a number of bytes, e.g. 4G or 500M"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {unit:?} (K, M, G or T)"
            ))
        }
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

/// Refuses an output file (records, summary, skipped list) inside a scanned
/// tree: the scan must not write into what it scans.
fn check_output_outside_roots(output: &Path, roots: &[PathBuf]) -> anyhow::Result<()> {
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let parent = parent
        .canonicalize()
        .with_context(|| format!("output directory {} does not exist", parent.display()))?;
    let out = parent.join(output.file_name().unwrap_or_default());
    for root in roots {
        if let Ok(r) = root.canonicalize() {
            if out.starts_with(&r) {
                bail!(
                    "output {} is inside the scanned tree {}; the scan never writes into \
                     what it scans, choose another location",
                    output.display(),
                    root.display()
                );
            }
        }
    }
    Ok(())
}

/// Refuses to resume an output whose manifest says it was started
/// differently: by an older sigil that selected files by extension, or
/// with other options.
fn check_resumable(out: &Path, old: &ScanManifest, now: &ScanManifest) -> anyhow::Result<()> {
    if old.version < MANIFEST_VERSION {
        bail!(
            "cannot resume {}: it was started by an older sigil (manifest version {}) that \
             chose files by their extension and named them lossily; this one reads every \
             file and names it by its exact bytes, so continuing would leave gaps or \
             duplicates. Start afresh with --overwrite",
            out.display(),
            old.version
        );
    }
    let diff = old.differences(now);
    if !diff.is_empty() {
        bail!(
            "cannot resume {}: it was started with different options ({}); \
             rerun with the same options, or start afresh with --overwrite",
            out.display(),
            diff.join(", ")
        );
    }
    Ok(())
}

/// Files a report stub (or a sighting) for each matched record.
struct ReportSink {
    open: OpenStore,
    /// The index generation the scan matches against (16 hex digits).
    index_identity: String,
    opened: u64,
    sighted: u64,
    already_recorded: u64,
}

impl ReportSink {
    /// What a scan knows of a matched file, as a sighting to file: its
    /// path (the exact bytes' escaped form when not plain UTF-8) is the
    /// content reference.
    fn sighting(&self, rec: &ScanRecord) -> NewReport {
        let file_name = std::path::Path::new(&rec.path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        NewReport {
            detected_at_ms: sigil_reports::time::now_ms(),
            reporting_org: self.open.reporting_org.clone(),
            reporting_email: self.open.reporting_email.clone(),
            submitter_ref: String::new(),
            content_ref: rec.path.clone(),
            file_name,
            source: "scan".into(),
            md5: rec.md5.clone().unwrap_or_default(),
            sha1: String::new(),
            sha256: rec.sha256.clone().unwrap_or_default(),
            pdq: rec.pdq.map(|p| p.to_hex()).unwrap_or_default(),
            quality: rec.quality,
            matches: rec
                .matches
                .iter()
                .map(|m| StoredMatch {
                    id: m.id.clone(),
                    list: m.list.clone(),
                    category: m.category.clone(),
                    note: None,
                    kind: m.kind.as_str().to_string(),
                    distance: m.distance,
                    variant: m.variant.map(|v| v.as_str().to_string()),
                })
                .collect(),
            actor: "sigil scan".into(),
            index_identity: self.index_identity.clone(),
        }
    }

    fn summary(&self) -> String {
        format!(
            "report stubs in the {}: {} opened, {} sightings added to open stubs, {} already recorded\n",
            self.open.name, self.opened, self.sighted, self.already_recorded
        )
    }
}

impl MatchSink for ReportSink {
    fn matched(&mut self, rec: &ScanRecord) -> Result<(), String> {
        let filed = self
            .open
            .store
            .create_many(&[self.sighting(rec)])
            .map_err(|e| format!("cannot file its report stub in the {}: {e}", self.open.name))?;
        for f in filed {
            match f.filing {
                Filing::Opened => self.opened += 1,
                Filing::Sighted => self.sighted += 1,
                Filing::AlreadyRecorded => self.already_recorded += 1,
            }
        }
        Ok(())
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.resume && args.output.is_none() {
        bail!("--resume needs --output FILE (the output file is the resume journal)");
    }
    if args.reports && !args.store.given() {
        bail!(
            "--reports needs a report store: --db FILE (SQLite) or --config FILE (a server config)"
        );
    }
    if !args.reports && args.store.given() {
        bail!("--db and --config name the report store of --reports; add --reports to file stubs");
    }
    for p in &args.paths {
        std::fs::metadata(p).with_context(|| format!("cannot scan {}", p.display()))?;
    }
    for out in [&args.summary_json, &args.skipped].into_iter().flatten() {
        check_output_outside_roots(out, &args.paths)?;
    }
    // An unusable index, or options it cannot answer (a list it does not
    // hold), stop everything before a single file is read or written.
    let reader = IndexReader::open(&args.index)
        .with_context(|| format!("cannot open index {}", args.index.display()))?;
    let policy = MatchPolicy {
        radius: args.radius,
        quality_threshold: args.min_quality,
        dihedral: args.dihedral,
        robust: args.robust,
        ..MatchPolicy::unrestricted()
    };
    let request = MatchRequest {
        lists: args.lists.clone(),
        ..MatchRequest::default()
    };
    let matching = policy.resolve(&request, &reader).with_context(|| {
        format!(
            "cannot scan against index {} (generation {})",
            args.index.display(),
            reader.generation()
        )
    })?;

    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let shard = args.shard.unwrap_or_default();
    let cfg = ScanConfig {
        roots: args.paths.clone(),
        walk: WalkOptions {
            include: args.include.clone(),
            exclude: args.exclude.clone(),
            follow_symlinks: args.follow_symlinks,
            shard,
            max_file_bytes: args.max_file_bytes,
        },
        threads,
        matching,
        profile: args.profile,
        decode: DecodeOptions::default(),
        fast: args.fast,
        per_file_delay: args.test_delay_ms.map(Duration::from_millis),
    };
    let index_name = escape(&path_bytes(&args.index)).into_owned();
    let mut manifest = ScanManifest {
        version: MANIFEST_VERSION,
        format: args.format,
        roots: args
            .paths
            .iter()
            .map(|p| escape(&path_bytes(p)).into_owned())
            .collect(),
        shard: shard.to_string(),
        include: args.include.clone(),
        exclude: args.exclude.clone(),
        follow_symlinks: args.follow_symlinks,
        max_file_bytes: args.max_file_bytes,
        index: index_name.clone(),
        index_generation: Some(reader.generation()),
        index_changes: Vec::new(),
        radius: args.radius,
        dihedral: args.dihedral,
        robust: args.robust,
        min_quality: args.min_quality,
        fast: args.fast,
    };

    let mut done = HashSet::new();
    let mut resumed_matched = 0;
    let mut index_change = None;
    let mut writer = match &args.output {
        None => RecordWriter::new(args.format, OutputTarget::Stdout, true)?,
        Some(out) => {
            check_output_outside_roots(out, &args.paths)?;
            let exists = out.exists();
            if exists && args.resume {
                let journal = read_journal(out, args.format)?;
                let old = ScanManifest::read(out)?;
                if let Some(old) = &old {
                    check_resumable(out, old, &manifest)?;
                    manifest.index_changes = old.index_changes.clone();
                }
                let was = old.as_ref().and_then(|m| m.index_generation);
                if was != Some(reader.generation()) {
                    if !args.allow_index_change {
                        bail!(
                            "cannot resume {}: its records were matched against index {} \
                             generation {}, and the index is now at generation {}; resuming \
                             would mix the two in one output. Pass --allow-index-change to go \
                             on (the change is recorded), or start afresh with --overwrite",
                            out.display(),
                            index_name,
                            was.map_or("unknown (no manifest says)".into(), |g| g.to_string()),
                            reader.generation()
                        );
                    }
                    manifest.index_generation = was;
                    manifest.change_generation(reader.generation(), journal.records());
                    index_change = manifest.index_changes.last().cloned();
                }
                if journal.dropped_bytes > 0 && !args.quiet {
                    eprintln!(
                        "sigil scan: resume: dropped a torn last record ({} bytes) from {}",
                        journal.dropped_bytes,
                        out.display()
                    );
                }
                let file = open_for_resume(out, &journal)
                    .with_context(|| format!("cannot reopen {}", out.display()))?;
                resumed_matched = journal.matched;
                let header = !journal.has_csv_header;
                done = journal.done;
                manifest.write(out)?;
                RecordWriter::new(args.format, OutputTarget::File(file), header)?
            } else {
                if exists && !args.overwrite {
                    bail!(
                        "{} already exists: pass --resume to continue that scan or \
                         --overwrite to replace it",
                        out.display()
                    );
                }
                let file = File::create(out)
                    .with_context(|| format!("cannot create {}", out.display()))?;
                manifest.write(out)?;
                RecordWriter::new(args.format, OutputTarget::File(file), true)?
            }
        }
    };
    if args.only_matches {
        writer = writer.only_matches();
    }

    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        // First Ctrl-C (or SIGTERM): stop taking files, write what is done,
        // sync, exit 130. A second one exits at once (the journal stays valid:
        // records are written whole and a torn tail is cut on resume).
        ctrlc::set_handler(move || {
            if cancel.swap(true, Ordering::SeqCst) {
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            }
            eprintln!(
                "\nsigil scan: interrupted, finishing files in flight (Ctrl-C again to quit now)"
            );
        })
        .context("cannot install the Ctrl-C handler")?;
    }

    // The bar goes to stderr on a terminal, and only when the records do
    // not go to the same terminal: a redrawn bar and streamed records would
    // share lines.
    let records_on_terminal = args.output.is_none() && std::io::stdout().is_terminal();
    let bar = (!args.quiet && std::io::stderr().is_terminal() && !records_on_terminal).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(progress_style(false));
        b.enable_steady_tick(Duration::from_millis(200));
        b
    });
    let mut walk_finished = false;
    let mut on_progress = |p: &Progress| {
        if let Some(b) = &bar {
            // While the walk runs the number of files is not known: count
            // what was found so far, with no total and no ETA, until it is.
            if p.walk_done && !walk_finished {
                walk_finished = true;
                b.set_style(progress_style(true));
            }
            b.set_length(p.discovered);
            b.set_position(p.done);
            b.set_message(format!("{} matched, {} errors", p.matched, p.errors));
        }
    };

    let mut skipped = match &args.skipped {
        None => None,
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            Some(SkippedWriter::new(Box::new(file)))
        }
    };
    let mut reports = if args.reports {
        Some(ReportSink {
            open: args.store.open(true)?,
            index_identity: reader.identity().to_string(),
            opened: 0,
            sighted: 0,
            already_recorded: 0,
        })
    } else {
        None
    };
    let sinks = Sinks {
        records: &mut writer,
        matches: reports.as_mut().map(|r| r as &mut dyn MatchSink),
        skipped: skipped.as_mut(),
        progress: &mut on_progress,
    };
    let mut summary = run_scan(&cfg, &reader, &done, &cancel, sinks)?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    summary.resumed_matched = resumed_matched;
    summary.index = Some(IndexProvenance {
        path: index_name,
        generation: reader.generation(),
        change: index_change,
    });
    if !args.quiet {
        eprint!("{}", summary.render());
        if let Some(r) = &reports {
            eprint!("{}", r.summary());
        }
    }
    if let Some(path) = &args.summary_json {
        let body = serde_json::to_vec_pretty(&summary.to_json())?;
        std::fs::write(path, body)
            .with_context(|| format!("cannot write summary {}", path.display()))?;
    }
    Ok(if summary.interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if summary.any_match() && !args.matches_ok {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(
            parse_size("4G"),
            Ok(sigil_scan::walk::DEFAULT_MAX_FILE_BYTES)
        );
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert_eq!(parse_size("3 kb"), Ok(3 << 10));
        for bad in ["", "G", "4X", "-1", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
