//! The Markdown report (and a JSON copy of the numbers), written atomically.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::harness::{EvalError, EvalOutcome, MethodResult, Regime, PDQ_STANDARD_DISTANCE};
use crate::plots;

/// Files a report run produced.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    pub markdown: PathBuf,
    pub json: PathBuf,
    pub plots: Vec<PathBuf>,
}

/// fsyncs `tmp` and renames it over `path`.
pub fn sync_and_rename(tmp: &Path, path: &Path) -> Result<(), EvalError> {
    let werr = |source| EvalError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(werr)?;
    std::fs::rename(tmp, path).map_err(werr)
}

/// Writes `bytes` to `path` via a temp file, fsync and rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EvalError> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("out")
    ));
    let werr = |source| EvalError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::create(&tmp).map_err(werr)?;
    f.write_all(bytes).map_err(werr)?;
    f.sync_all().map_err(werr)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(werr)
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn fmt_t(t: f32) -> String {
    if t.fract() == 0.0 {
        format!("{t:.0}")
    } else {
        format!("{t:.4}")
    }
}

fn find<'a>(out: &'a EvalOutcome, name: &str) -> Option<&'a MethodResult> {
    out.methods.iter().find(|m| m.name == name)
}

fn recall_of(m: &MethodResult, out: &EvalOutcome, transform: &str) -> Option<f64> {
    let i = out.transforms.iter().position(|t| t == transform)?;
    m.recall_per_transform.get(i).copied()
}

/// One target line: (description, measured, pass).
pub type TargetCheck = (String, String, bool);

/// Checks the issue-6 targets against the results (transforms that were
/// not run are skipped).
pub fn check_targets(out: &EvalOutcome) -> Vec<TargetCheck> {
    let mut v = Vec::new();
    let pdq = find(out, "pdq");
    let pdq_fp31 = pdq.and_then(|m| m.at_31).map(|o| o.fp_per_million());
    // Shared-list regime: judged on the --robust method and on query-all.
    for name in ["pdq+dihedral+trim", "pdq+query-all"] {
        let Some(m) = find(out, name) else { continue };
        for t in ["pad_20_flat", "pad_20_mirror"] {
            if let Some(r) = recall_of(m, out, t) {
                v.push((
                    format!("shared list, {name}: {t} >= 90%"),
                    pct(r),
                    r >= 0.90,
                ));
            }
        }
        for t in ["rotate_90", "rotate_180", "rotate_270", "flip_h", "flip_v"] {
            if let Some(r) = recall_of(m, out, t) {
                v.push((format!("shared list, {name}: {t} = 100%"), pct(r), r >= 1.0));
            }
        }
        if let Some(p) = pdq {
            let mut worst: Option<(String, f64)> = None;
            for (i, t) in out.transforms.iter().enumerate() {
                if p.recall_per_transform.get(i).copied().unwrap_or(0.0) >= 0.99 {
                    let r = m.recall_per_transform.get(i).copied().unwrap_or(0.0);
                    if worst.as_ref().is_none_or(|w| r < w.1) {
                        worst = Some((t.clone(), r));
                    }
                }
            }
            if let Some((t, r)) = worst {
                v.push((format!("shared list, {name}: every transform where PDQ >= 99% stays >= 99% (worst: {t})"), pct(r), r >= 0.99));
            }
        }
        if let (Some(op), Some(base)) = (m.at_target, pdq_fp31) {
            v.push((
                format!("shared list, {name}: FP rate at its threshold <= plain PDQ at 31 ({base:.2}/M)"),
                format!("{:.2}/M", op.fp_per_million()),
                op.fp_per_million() <= base,
            ));
        }
    }
    for name in [
        "pdq+augment+query-all",
        "pdq+augment+dihedral+trim",
        "fusion",
    ] {
        let Some(m) = find(out, name) else { continue };
        if let Some(op) = m.at_target {
            v.push((
                format!("own bank, {name}: overall >= 95%"),
                pct(op.recall()),
                op.recall() >= 0.95,
            ));
        }
        if let Some(r) = recall_of(m, out, "crop_10") {
            v.push((
                format!("own bank, {name}: crop_10 >= 90%"),
                pct(r),
                r >= 0.90,
            ));
        }
        for t in ["rotate_+4", "rotate_-4"] {
            if let Some(r) = recall_of(m, out, t) {
                v.push((format!("own bank, {name}: {t} >= 90%"), pct(r), r >= 0.90));
            }
        }
        if let (Some(op), Some(base)) = (m.at_target, pdq_fp31) {
            v.push((
                format!("own bank, {name}: FP rate <= plain PDQ at 31 ({base:.2}/M)"),
                format!("{:.2}/M", op.fp_per_million()),
                op.fp_per_million() <= base,
            ));
        }
    }
    v
}

/// Renders the Markdown report. `plot_dir` is how the report refers to the
/// PNGs (relative to the Markdown file).
pub fn markdown(out: &EvalOutcome, plot_dir: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# sigil robustness evaluation\n");
    let _ = writeln!(
        s,
        "Originals: `{}` ({} files, {} used); distractors: {} ({} files, {} used). {} transforms; \
         {} matching pairs (original vs its transformed copy), {} distinct-image pairs \
         (each transformed copy and each distractor vs every other original). Run time {:.0} s.\n",
        out.originals_dir,
        out.originals_seen,
        out.originals_used,
        out.distractors_dir
            .as_deref()
            .map(|d| format!("`{d}`"))
            .unwrap_or_else(|| "every other file of the originals directory or none".into()),
        out.distractors_seen,
        out.distractors_used,
        out.transforms.len(),
        out.positives,
        out.negatives,
        out.seconds
    );
    let _ = writeln!(
        s,
        "Each method's threshold is the largest distance keeping precision >= 99.99% over all pairs \
         (with this many pairs that means no false positive at all). FP/M = false positives per \
         million distinct-image comparisons. PDQ methods are also shown at PDQ's fixed distance {PDQ_STANDARD_DISTANCE}.\n"
    );

    // Exclusions.
    let mut by_reason: BTreeMap<&str, Vec<&crate::harness::Exclusion>> = BTreeMap::new();
    for e in &out.exclusions {
        by_reason.entry(e.reason.as_str()).or_default().push(e);
    }
    let _ = writeln!(s, "## Excluded inputs: {}\n", out.exclusions.len());
    if by_reason.is_empty() {
        let _ = writeln!(s, "None.\n");
    } else {
        let _ = writeln!(s, "| reason | count | examples |\n|---|---:|---|");
        for (reason, list) in &by_reason {
            let ex: Vec<String> = list
                .iter()
                .take(3)
                .map(|e| {
                    let name = Path::new(&e.path)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    format!("{} ({}: {})", name, e.role, e.detail.replace('|', "/"))
                })
                .collect();
            let _ = writeln!(s, "| {reason} | {} | {} |", list.len(), ex.join("; "));
        }
        let _ = writeln!(s);
    }

    // Summary.
    let _ = writeln!(s, "## Methods\n");
    let _ = writeln!(
        s,
        "| method | regime | threshold | recall | FP/M | recall at 31 | FP/M at 31 | query hashes | stored per original |\n|---|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for m in &out.methods {
        let regime = match m.regime {
            Regime::SharedList => "shared list",
            Regime::OwnBank => "own bank",
        };
        let (t, r, fp) = match m.at_target {
            Some(o) => (
                fmt_t(o.threshold),
                pct(o.recall()),
                format!("{:.2}", o.fp_per_million()),
            ),
            None => ("-".into(), "0%".into(), "-".into()),
        };
        let (r31, fp31) = match m.at_31 {
            Some(o) => (pct(o.recall()), format!("{:.2}", o.fp_per_million())),
            None => ("n/a".into(), "n/a".into()),
        };
        let _ = writeln!(
            s,
            "| {} | {regime} | {t} | {r} | {fp} | {r31} | {fp31} | {:.1} | {:.1} |",
            m.name, m.query_hashes, m.stored_hashes
        );
    }
    let _ = writeln!(s, "\nWhat each method does:\n");
    for m in &out.methods {
        let _ = writeln!(s, "- `{}`: {}", m.name, m.description);
    }

    // Targets.
    let _ = writeln!(
        s,
        "\n## Targets (issue 6)\n\n| target | measured | met |\n|---|---:|:---:|"
    );
    for (d, m, ok) in check_targets(out) {
        let _ = writeln!(s, "| {d} | {m} | {} |", if ok { "yes" } else { "**no**" });
    }

    // Per transform.
    let _ = writeln!(
        s,
        "\n## Recall per transform (at each method's 99.99%-precision threshold)\n"
    );
    let _ = write!(s, "| transform |");
    for m in &out.methods {
        let _ = write!(s, " {} |", m.name);
    }
    let _ = write!(s, "\n|---|");
    for _ in &out.methods {
        let _ = write!(s, "---:|");
    }
    let _ = writeln!(s);
    for (i, t) in out.transforms.iter().enumerate() {
        let _ = write!(s, "| {t} |");
        for m in &out.methods {
            let _ = write!(
                s,
                " {} |",
                m.recall_per_transform
                    .get(i)
                    .map(|r| pct(*r))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "\n## Recall per transform at PDQ distance 31\n");
    let pdq_methods: Vec<&MethodResult> =
        out.methods.iter().filter(|m| m.at_31.is_some()).collect();
    let _ = write!(s, "| transform |");
    for m in &pdq_methods {
        let _ = write!(s, " {} |", m.name);
    }
    let _ = write!(s, "\n|---|");
    for _ in &pdq_methods {
        let _ = write!(s, "---:|");
    }
    let _ = writeln!(s);
    for (i, t) in out.transforms.iter().enumerate() {
        let _ = write!(s, "| {t} |");
        for m in &pdq_methods {
            let _ = write!(
                s,
                " {} |",
                m.recall_per_transform_31
                    .get(i)
                    .map(|r| pct(*r))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(s);
    }

    let _ = writeln!(s, "\n## Plots\n");
    for (f, alt) in [
        (
            "recall_per_transform.png",
            "recall per transform and method",
        ),
        (
            "histograms.png",
            "distance histograms, matches vs non-matches",
        ),
        ("roc.png", "ROC curves"),
    ] {
        let _ = writeln!(s, "![{alt}]({plot_dir}/{f})\n");
    }
    s
}

/// Writes report.md, results.json and the plots into `dir`.
pub fn write_report(out: &EvalOutcome, dir: &Path) -> Result<ReportFiles, EvalError> {
    std::fs::create_dir_all(dir).map_err(|source| EvalError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let plots_list = vec![
        dir.join("recall_per_transform.png"),
        dir.join("histograms.png"),
        dir.join("roc.png"),
    ];
    plots::recall_per_transform(out, &plots_list[0])?;
    plots::histograms(out, &plots_list[1])?;
    plots::roc(out, &plots_list[2])?;
    let md = dir.join("report.md");
    write_atomic(&md, markdown(out, ".").as_bytes())?;
    let json = dir.join("results.json");
    let body = serde_json::to_vec_pretty(out).map_err(|e| EvalError::Write {
        path: json.clone(),
        source: std::io::Error::other(e),
    })?;
    write_atomic(&json, &body)?;
    Ok(ReportFiles {
        markdown: md,
        json,
        plots: plots_list,
    })
}
