//! The end-of-scan summary: every file by outcome (matched, no match, low
//! quality, not an image by kind, errors by cause), every path not read by
//! reason, the index generation that answered, throughput and per-stage
//! timings (summed over worker threads), printed on stderr.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::journal::IndexChange;
use crate::record::{ErrorCause, Media, Note, ScanRecord, SkipReason, SkippedPath, Verdict};

/// Skipped paths listed in the summary (all of them go to `--skipped`).
pub const SUMMARY_SKIPPED_PATHS: usize = 1000;

/// Skipped paths shown in the summary on stderr.
const SHOWN_SKIPPED: usize = 5;

/// Which index answered the scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexProvenance {
    /// The index path as given.
    pub path: String,
    /// The generation that matched this run's records.
    pub generation: u64,
    /// When this run resumed records matched against another generation
    /// (allowed by `--allow-index-change`): that change.
    pub change: Option<IndexChange>,
}

/// Time spent in each pipeline stage, summed over all workers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimes {
    /// Opening and reading files.
    pub read: Duration,
    /// MD5 + SHA-1 + SHA-256 of the bytes.
    pub exact: Duration,
    /// Image decoding (including the reduced-scale JPEG path).
    pub decode: Duration,
    /// PDQ (and dihedral) hashing of the decoded pixels.
    pub pdq: Duration,
    /// Index lookups (PDQ search and exact digests).
    pub lookup: Duration,
}

impl StageTimes {
    pub fn add(&mut self, o: &StageTimes) {
        self.read += o.read;
        self.exact += o.exact;
        self.decode += o.decode;
        self.pdq += o.pdq;
        self.lookup += o.lookup;
    }
}

/// What a scan did.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Files recorded by this run.
    pub files: u64,
    /// Bytes read by this run.
    pub bytes: u64,
    pub matched: u64,
    pub no_match: u64,
    pub low_quality: u64,
    pub errors: BTreeMap<ErrorCause, u64>,
    /// Files whose content is not an image, by kind (`video`, `other`),
    /// whatever their verdict: they are also counted under `matched` or
    /// `no_match`.
    pub not_an_image: BTreeMap<Media, u64>,
    /// Of `not_an_image`, those an exact digest matched.
    pub not_an_image_matched: u64,
    /// Paths reached but not read, by reason.
    pub skipped: BTreeMap<SkipReason, u64>,
    /// The first [`SUMMARY_SKIPPED_PATHS`] listed skipped paths (other
    /// shards' files are counted only).
    pub skipped_paths: Vec<SkippedPath>,
    /// The index and generation that answered (set by the caller).
    pub index: Option<IndexProvenance>,
    /// Files already recorded by an earlier run (resume), not re-scanned.
    pub resumed: u64,
    /// Matches among the resumed records.
    pub resumed_matched: u64,
    /// JPEGs hashed by a `--fast` path: from their DCT coefficients or
    /// decoded at reduced DCT scale.
    pub fast_decodes: u64,
    /// Of `fast_decodes`, those hashed from their DCT coefficients (PDQ's
    /// grid, no pixels); the rest were decoded at 1/2, 1/4 or 1/8 scale.
    pub fast_grid: u64,
    pub elapsed: Duration,
    pub stages: StageTimes,
    pub threads: usize,
    /// The scan was stopped (Ctrl-C) before the walk finished.
    pub interrupted: bool,
}

impl Summary {
    pub fn count(&mut self, rec: &ScanRecord) {
        self.files += 1;
        match rec.verdict {
            Verdict::Match => self.matched += 1,
            Verdict::NoMatch => self.no_match += 1,
            Verdict::LowQuality => self.low_quality += 1,
            Verdict::Error => {}
        }
        if let Some(e) = &rec.error {
            *self.errors.entry(e.cause).or_default() += 1;
        }
        if rec.note == Some(Note::NotAnImage) {
            let media = rec.media.unwrap_or(Media::Other);
            *self.not_an_image.entry(media).or_default() += 1;
            self.not_an_image_matched += u64::from(rec.verdict == Verdict::Match);
        }
    }

    /// Counts a path not read (and lists it, up to the cap).
    pub fn skip(&mut self, entry: SkippedPath) {
        *self.skipped.entry(entry.reason).or_default() += 1;
        if entry.reason.listed() && self.skipped_paths.len() < SUMMARY_SKIPPED_PATHS {
            self.skipped_paths.push(entry);
        }
    }

    pub fn skipped_count(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// Listed skipped paths left out of `skipped_paths`.
    pub fn skipped_paths_omitted(&self) -> u64 {
        let listed: u64 = self
            .skipped
            .iter()
            .filter(|(r, _)| r.listed())
            .map(|(_, n)| n)
            .sum();
        listed - self.skipped_paths.len() as u64
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Whether anything matched, in this run or a resumed earlier one.
    pub fn any_match(&self) -> bool {
        self.matched + self.resumed_matched > 0
    }

    pub fn files_per_second(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.files as f64 / s
        } else {
            0.0
        }
    }

    /// (PDQ hashing + lookup) / decode time: the pipeline's overhead over
    /// the decoder itself.
    pub fn hash_lookup_over_decode(&self) -> f64 {
        let d = self.stages.decode.as_secs_f64();
        if d > 0.0 {
            (self.stages.pdq + self.stages.lookup).as_secs_f64() / d
        } else {
            0.0
        }
    }

    /// Human-readable summary for stderr.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let secs = self.elapsed.as_secs_f64();
        let _ =
            writeln!(
            s,
            "sigil scan: {} files{}, {:.1} MB in {:.2}s ({:.1} files/s, {:.1} MB/s, {} threads)",
            self.files,
            if self.interrupted { " (interrupted)" } else { "" },
            self.bytes as f64 / 1e6,
            secs,
            self.files_per_second(),
            if secs > 0.0 {
                self.bytes as f64 / 1e6 / secs
            } else {
                0.0
            },
            self.threads
        );
        if let Some(ix) = &self.index {
            let _ = writeln!(s, "  index {} generation {}", ix.path, ix.generation);
            if let Some(c) = &ix.change {
                let from = c.from.map_or("unrecorded".to_string(), |g| g.to_string());
                let _ = writeln!(
                    s,
                    "  index changed on resume (--allow-index-change): the first {} records were matched against generation {from}, the rest against {}",
                    c.records_before, c.to
                );
            }
        }
        let _ = writeln!(
            s,
            "  matched {}, no match {}, low quality {}, errors {}, skipped {}",
            self.matched,
            self.no_match,
            self.low_quality,
            self.error_count(),
            self.skipped_count()
        );
        if !self.not_an_image.is_empty() {
            let parts: Vec<String> = self
                .not_an_image
                .iter()
                .map(|(m, n)| format!("{} {n}", m.as_str()))
                .collect();
            let _ = writeln!(
                s,
                "  not an image (exact digests only): {} ({} matched)",
                parts.join(", "),
                self.not_an_image_matched
            );
        }
        if !self.skipped.is_empty() {
            let parts: Vec<String> = self
                .skipped
                .iter()
                .map(|(r, n)| format!("{} {n}", r.as_str()))
                .collect();
            let _ = writeln!(s, "  skipped by reason: {}", parts.join(", "));
            for e in self.skipped_paths.iter().take(SHOWN_SKIPPED) {
                let _ = writeln!(s, "    {}: {} ({})", e.path, e.reason.as_str(), e.detail);
            }
            let more = self.skipped_paths_omitted()
                + self.skipped_paths.len().saturating_sub(SHOWN_SKIPPED) as u64;
            if more > 0 {
                let _ = writeln!(s, "    ... and {more} more (--skipped FILE lists them all)");
            }
        }
        if self.resumed > 0 {
            let _ = writeln!(
                s,
                "  resumed: {} files already recorded ({} matched)",
                self.resumed, self.resumed_matched
            );
        }
        if !self.errors.is_empty() {
            let parts: Vec<String> = self
                .errors
                .iter()
                .map(|(c, n)| format!("{} {}", c.as_str(), n))
                .collect();
            let _ = writeln!(s, "  errors by cause: {}", parts.join(", "));
        }
        let st = &self.stages;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let _ = writeln!(
            s,
            "  stage time (summed over threads): read {:.0} ms, exact digests {:.0} ms, decode {:.0} ms, pdq {:.0} ms, lookup {:.0} ms; (pdq+lookup)/decode {:.1}%{}",
            ms(st.read),
            ms(st.exact),
            ms(st.decode),
            ms(st.pdq),
            ms(st.lookup),
            100.0 * self.hash_lookup_over_decode(),
            if self.fast_decodes > 0 {
                format!(
                    "; --fast: {} JPEGs hashed from DCT coefficients, {} decoded at reduced scale",
                    self.fast_grid,
                    self.fast_decodes - self.fast_grid
                )
            } else {
                String::new()
            }
        );
        s
    }

    /// Machine-readable summary (`--summary-json`).
    pub fn to_json(&self) -> serde_json::Value {
        let secs = |d: Duration| d.as_secs_f64();
        let errors: BTreeMap<&str, u64> =
            self.errors.iter().map(|(c, n)| (c.as_str(), *n)).collect();
        let not_an_image: BTreeMap<&str, u64> = self
            .not_an_image
            .iter()
            .map(|(m, n)| (m.as_str(), *n))
            .collect();
        let skipped: BTreeMap<&str, u64> =
            self.skipped.iter().map(|(r, n)| (r.as_str(), *n)).collect();
        let index = self.index.as_ref().map(|ix| {
            serde_json::json!({
                "path": ix.path,
                "generation": ix.generation,
                "changed_on_resume": ix.change,
            })
        });
        serde_json::json!({
            "index": index,
            "files": self.files,
            "bytes": self.bytes,
            "matched": self.matched,
            "no_match": self.no_match,
            "low_quality": self.low_quality,
            "errors": self.error_count(),
            "errors_by_cause": errors,
            "not_an_image": not_an_image,
            "not_an_image_matched": self.not_an_image_matched,
            "skipped": self.skipped_count(),
            "skipped_by_reason": skipped,
            "skipped_paths": self.skipped_paths,
            "skipped_paths_omitted": self.skipped_paths_omitted(),
            "resumed": self.resumed,
            "resumed_matched": self.resumed_matched,
            "fast_decodes": self.fast_decodes,
            "fast_grid": self.fast_grid,
            "interrupted": self.interrupted,
            "threads": self.threads,
            "elapsed_s": secs(self.elapsed),
            "files_per_s": self.files_per_second(),
            "stage_s": {
                "read": secs(self.stages.read),
                "exact": secs(self.stages.exact),
                "decode": secs(self.stages.decode),
                "pdq": secs(self.stages.pdq),
                "lookup": secs(self.stages.lookup),
            },
            "pdq_plus_lookup_over_decode": self.hash_lookup_over_decode(),
        })
    }
}
