//! The end-of-scan summary: counts, errors by cause, throughput and
//! per-stage timings (summed over worker threads), printed on stderr.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::record::{ErrorCause, ScanRecord, Verdict};

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
    /// Walked but not scanned (globs, shard, symlinks not followed, special files).
    pub skipped: u64,
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
        let _ = writeln!(
            s,
            "  matched {}, no match {}, low quality {}, errors {}, skipped {}",
            self.matched,
            self.no_match,
            self.low_quality,
            self.error_count(),
            self.skipped
        );
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
        serde_json::json!({
            "files": self.files,
            "bytes": self.bytes,
            "matched": self.matched,
            "no_match": self.no_match,
            "low_quality": self.low_quality,
            "errors": self.error_count(),
            "errors_by_cause": errors,
            "skipped": self.skipped,
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
