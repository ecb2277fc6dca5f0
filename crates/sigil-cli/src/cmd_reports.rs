//! `sigil reports`: the report stubs from the command line: list, show,
//! update, export, the preservation list and pruning. Wiring only: the
//! store, the review rules, the formats and the export are sigil-reports'.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use sigil_reports::time::{now_ms, parse_utc_ms};
use sigil_reports::{output, ListOrder, ReportFilter, ReportStatus, ReportUpdate, StoreError};

use crate::report_store::{OpenStore, StoreArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// List stubs, filtered, newest first or by preservation deadline.
    List(ListArgs),
    /// Show one stub in full: matches, sightings, annotations, audit trail.
    Show(ShowArgs),
    /// Record a review: status, viewed, classification, notes.
    Update(UpdateArgs),
    /// Export a stub as a CyberTipline report draft.
    Export(ExportArgs),
    /// Every stub whose preservation deadline has not passed, one CSV row
    /// per content reference to preserve.
    Preservation(OutputArgs),
    /// Delete closed stubs (dismissed, reported) past their preservation
    /// deadline. A dry run unless --apply.
    Prune(PruneArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ListFormat {
    Text,
    Jsonl,
    Csv,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Order {
    /// Newest detection first.
    Newest,
    /// Earliest preservation deadline first (the review queue).
    Deadline,
}

#[derive(clap::Args)]
struct ListArgs {
    /// Only this status.
    #[arg(long, value_parser = parse_status)]
    status: Option<ReportStatus>,
    /// Only stubs with a match on this list.
    #[arg(long)]
    list: Option<String>,
    /// Only stubs with a match of this category.
    #[arg(long)]
    category: Option<String>,
    /// Only stubs first sighted for this submitter reference.
    #[arg(long)]
    submitter: Option<String>,
    /// Only stubs detected at or after this UTC date/time (YYYY-MM-DD or
    /// YYYY-MM-DDTHH:MM:SSZ).
    #[arg(long, value_parser = parse_utc_ms, value_name = "TIME")]
    since: Option<i64>,
    /// Only stubs detected before this UTC date/time.
    #[arg(long, value_parser = parse_utc_ms, value_name = "TIME")]
    until: Option<i64>,
    #[arg(long, value_enum, default_value_t = Order::Newest)]
    order: Order,
    /// At most this many stubs (0: all).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Continue a listing from the token a previous one printed.
    #[arg(long)]
    page_token: Option<String>,
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    format: ListFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ShowFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct ShowArgs {
    /// Report id (rpt_...).
    id: String,
    #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
    format: ShowFormat,
}

#[derive(clap::Args)]
struct UpdateArgs {
    /// Report id (rpt_...).
    id: String,
    /// New status: pending, confirmed, dismissed or reported.
    #[arg(long, value_parser = parse_status)]
    status: Option<ReportStatus>,
    /// Whether you viewed the content (confirming and reporting need true).
    #[arg(long, value_name = "true|false")]
    viewed: Option<bool>,
    /// Industry classification: A1, A2, B1 or B2.
    #[arg(long)]
    classification: Option<String>,
    /// An annotation to append (repeatable); dismissing needs one: the reason.
    #[arg(long = "note", value_name = "TEXT")]
    notes: Vec<String>,
    /// The stub version you reviewed (`show` prints it): when someone
    /// changed the stub since, nothing is written and the change that came
    /// first is named.
    #[arg(long)]
    expected_version: Option<i64>,
    /// Your name in the audit trail (default: "cli:" and $USER).
    #[arg(long)]
    actor: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    /// CyberTipline Reporting API XML (`<report>`), for a person to complete.
    Xml,
    /// The same draft as JSON.
    Json,
}

#[derive(clap::Args)]
struct ExportArgs {
    /// Report id (rpt_...).
    id: String,
    #[arg(long, value_enum, default_value_t = ExportFormat::Xml)]
    format: ExportFormat,
    /// Write here (atomically: a temporary file renamed into place)
    /// instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

#[derive(clap::Args)]
struct OutputArgs {
    /// Write here (atomically) instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

#[derive(clap::Args)]
struct PruneArgs {
    /// Delete them (without it: list what would be deleted).
    #[arg(long)]
    apply: bool,
}

fn parse_status(s: &str) -> Result<ReportStatus, String> {
    s.parse()
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let open = args.store.open(false)?;
    match args.command {
        Command::List(a) => list(&open, a),
        Command::Show(a) => show(&open, a),
        Command::Update(a) => update(&open, a),
        Command::Export(a) => export(&open, a),
        Command::Preservation(a) => preservation(&open, a),
        Command::Prune(a) => prune(&open, a),
    }
}

/// A store error with the id and the store named.
fn store_err(open: &OpenStore, e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NotFound(id) => anyhow::anyhow!("no report {id:?} in the {}", open.name),
        other => anyhow::Error::new(other).context(format!("the {}", open.name)),
    }
}

fn list(open: &OpenStore, a: ListArgs) -> anyhow::Result<ExitCode> {
    let mut filter = ReportFilter {
        status: a.status,
        list: a.list,
        category: a.category,
        submitter_ref: a.submitter,
        detected_after_ms: a.since,
        detected_before_ms: a.until,
        order: match a.order {
            Order::Newest => ListOrder::Newest,
            Order::Deadline => ListOrder::Deadline,
        },
        page_token: a.page_token,
        ..ReportFilter::default()
    };
    let mut reports = Vec::new();
    let next = loop {
        let want = if a.limit == 0 {
            1000
        } else {
            (a.limit - reports.len()).min(1000)
        };
        filter.page_size = want;
        let page = open.store.list(&filter).map_err(|e| store_err(open, e))?;
        reports.extend(page.reports);
        match page.next_page_token {
            Some(t) if a.limit == 0 || reports.len() < a.limit => filter.page_token = Some(t),
            other => break other,
        }
    };
    let mut out = std::io::stdout().lock();
    match a.format {
        ListFormat::Text => {
            output::write_text(&mut out, &reports, now_ms())?;
            let counts = open.store.counts(&filter).map_err(|e| store_err(open, e))?;
            writeln!(out, "{}", output::counts_line(&counts))?;
        }
        ListFormat::Jsonl => output::write_jsonl(&mut out, &reports)?,
        ListFormat::Csv => output::write_csv(&mut out, &reports)?,
    }
    out.flush()?;
    if let Some(t) = next {
        eprintln!(
            "sigil: {} stubs listed; more follow: --page-token {t}",
            reports.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn show(open: &OpenStore, a: ShowArgs) -> anyhow::Result<ExitCode> {
    let r = open.store.get(&a.id).map_err(|e| store_err(open, e))?;
    let mut out = std::io::stdout().lock();
    match a.format {
        ShowFormat::Text => output::write_stub_text(&mut out, &r, now_ms())?,
        ShowFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &output::stub_json(&r))?;
            writeln!(out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn update(open: &OpenStore, a: UpdateArgs) -> anyhow::Result<ExitCode> {
    let update = ReportUpdate {
        status: a.status,
        viewed: a.viewed,
        classification: a.classification.map(|c| c.to_ascii_uppercase()),
        add_annotations: a.notes,
        expected_version: a.expected_version,
    };
    let actor = a.actor.unwrap_or_else(|| {
        format!(
            "cli:{}",
            std::env::var("USER").unwrap_or_else(|_| "unknown".into())
        )
    });
    let r = open
        .store
        .update(&a.id, &update, &actor, now_ms())
        .map_err(|e| store_err(open, e))?;
    println!(
        "{}: {} (version {}), viewed {}, classification {}",
        r.id,
        r.status.as_str(),
        r.version,
        r.viewed.map_or("-".into(), |v| v.to_string()),
        r.classification.as_deref().unwrap_or("-")
    );
    Ok(ExitCode::SUCCESS)
}

fn export(open: &OpenStore, a: ExportArgs) -> anyhow::Result<ExitCode> {
    let r = open.store.get(&a.id).map_err(|e| store_err(open, e))?;
    let doc = match a.format {
        ExportFormat::Json => {
            let mut s =
                serde_json::to_string_pretty(&sigil_reports::export::cybertipline_json(&r))?;
            s.push('\n');
            s
        }
        ExportFormat::Xml => sigil_reports::export::cybertipline_xml(&r)
            .with_context(|| format!("exporting {}", r.id))?,
    };
    emit(a.output.as_deref(), doc.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn preservation(open: &OpenStore, a: OutputArgs) -> anyhow::Result<ExitCode> {
    let now = now_ms();
    let mut filter = ReportFilter {
        deadline_after_ms: Some(now),
        order: ListOrder::Deadline,
        page_size: 1000,
        ..ReportFilter::default()
    };
    let mut reports = Vec::new();
    loop {
        let page = open.store.list(&filter).map_err(|e| store_err(open, e))?;
        for r in page.reports {
            // The listing carries the count of sightings, not the sightings.
            reports.push(if r.occurrence_count > 1 {
                open.store.get(&r.id).map_err(|e| store_err(open, e))?
            } else {
                r
            });
        }
        match page.next_page_token {
            Some(t) => filter.page_token = Some(t),
            None => break,
        }
    }
    let mut csv = Vec::new();
    let rows = output::write_preservation_csv(&mut csv, &reports)?;
    emit(a.output.as_deref(), &csv)?;
    eprintln!(
        "sigil: {} stubs under preservation, {rows} content references",
        reports.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn prune(open: &OpenStore, a: PruneArgs) -> anyhow::Result<ExitCode> {
    let due = open
        .store
        .prune(now_ms(), a.apply)
        .map_err(|e| store_err(open, e))?;
    let mut out = std::io::stdout().lock();
    output::write_text(&mut out, &due, now_ms())?;
    if a.apply {
        writeln!(
            out,
            "deleted {} closed stubs past their deadline",
            due.len()
        )?;
    } else {
        writeln!(
            out,
            "dry run: {} closed stubs past their deadline would be deleted; run with --apply",
            due.len()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to `path` atomically (a temporary file in the same
/// directory, synced, renamed into place: never a half-written file), or
/// to standard output.
fn emit(path: Option<&Path>, bytes: &[u8]) -> anyhow::Result<()> {
    let Some(path) = path else {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)?;
        out.flush()?;
        return Ok(());
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file name", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        bail!("writing {}: {e}", path.display());
    }
    Ok(())
}
