//! Resume: the output file is the journal.
//!
//! A scan appends one line per finished file and flushes it to the OS at
//! once (fsync every second and at exit). To resume, [`read_journal`] reads
//! the existing output, keeps every complete, parseable line, cuts a torn
//! last line (the process died mid-write, or a power loss left a partial or
//! zero-filled tail), and returns the identities of the files already done
//! (their paths' exact bytes, see [`crate::path`]): those files are skipped
//! before they are even opened, so nothing is re-hashed and no record is
//! written twice, and two names that differ in one byte are two files.
//!
//! A small sidecar, `<output>.scan.json` ([`ScanManifest`]), records the
//! options that decide which files are scanned and how, and the index and
//! generation the records were matched against; a resume with different
//! options is refused, since it would leave gaps or mix results, and so is
//! one against another index generation unless the caller allows it (the
//! change is then recorded in the manifest).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::output::{
    OutputFormat, CSV_HEADER, CSV_HEADER_BEFORE_FLAT_MATCHES, CSV_PATH, CSV_PATH_BYTES, CSV_VERDICT,
};
use crate::path::{from_base64, identity};
use crate::record::Verdict;
use sigil_core::robust::RobustLevel;

/// Why an existing output cannot be resumed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} line {line} is not a {format} scan record but later lines are: \
         the file is not a sigil scan output (or was edited); refusing to resume"
    )]
    Corrupt {
        path: PathBuf,
        line: u64,
        format: &'static str,
    },
    #[error("{path} does not start with the sigil CSV header; refusing to append to it")]
    NotScanCsv { path: PathBuf },
    #[error(
        "{path} was written by an earlier sigil with other CSV columns (no flat match \
         columns); appending would mix two layouts in one file. Start afresh with --overwrite"
    )]
    OlderScanCsv { path: PathBuf },
    #[error("{path}: {message}")]
    Manifest { path: PathBuf, message: String },
}

/// What an earlier, interrupted run already did.
#[derive(Debug, Default, Clone)]
pub struct Journal {
    /// Identities (exact path bytes) of the files already recorded.
    pub done: HashSet<Vec<u8>>,
    /// Verdict counts of those records (so the exit status covers the whole scan).
    pub matched: u64,
    pub no_match: u64,
    pub low_quality: u64,
    pub errors: u64,
    /// Length of the valid prefix; the file is truncated to it.
    pub valid_len: u64,
    /// Bytes dropped from a torn tail.
    pub dropped_bytes: u64,
    /// Whether the valid prefix already holds the CSV header.
    pub has_csv_header: bool,
}

impl Journal {
    pub fn records(&self) -> u64 {
        self.matched + self.no_match + self.low_quality + self.errors
    }
    fn count(&mut self, v: Verdict) {
        match v {
            Verdict::Match => self.matched += 1,
            Verdict::NoMatch => self.no_match += 1,
            Verdict::LowQuality => self.low_quality += 1,
            Verdict::Error => self.errors += 1,
        }
    }
}

#[derive(serde::Deserialize)]
struct JsonlHead {
    path: String,
    #[serde(default, with = "crate::path::base64_opt")]
    path_bytes: Option<Vec<u8>>,
    verdict: Verdict,
}

/// A record line's identity (exact path bytes) and verdict.
fn parse_line(format: OutputFormat, line: &[u8]) -> Option<(Vec<u8>, Verdict)> {
    match format {
        OutputFormat::Jsonl => {
            let h: JsonlHead = serde_json::from_slice(line).ok()?;
            let id = identity(&h.path, h.path_bytes.as_deref()).to_vec();
            Some((id, h.verdict))
        }
        OutputFormat::Csv => {
            let mut r = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(line);
            let rec = r.records().next()?.ok()?;
            if rec.len() != CSV_HEADER.len() {
                return None;
            }
            let verdict: Verdict = serde_json::from_value(serde_json::Value::String(
                rec.get(CSV_VERDICT)?.to_string(),
            ))
            .ok()?;
            let id = match rec.get(CSV_PATH_BYTES)? {
                "" => sigil_index::import::from_spreadsheet_safe(rec.get(CSV_PATH)?)
                    .as_bytes()
                    .to_vec(),
                b64 => from_base64(b64).ok()?,
            };
            Some((id, verdict))
        }
    }
}

/// Reads an existing output file and returns what it holds. Does not modify it.
pub fn read_journal(path: &Path, format: OutputFormat) -> Result<Journal, JournalError> {
    let io_err = |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let total = file.metadata().map_err(io_err)?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut j = Journal::default();
    let mut offset = 0u64;
    let mut line = Vec::new();
    let mut lineno = 0u64;
    // Start of the first bad line, if any; a good line after it means the
    // damage is not a torn tail.
    let mut first_bad: Option<(u64, u64)> = None;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io_err)? as u64;
        if n == 0 {
            break;
        }
        lineno += 1;
        let complete = line.last() == Some(&b'\n');
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        if !complete {
            // Torn last line: whatever it holds, it is dropped.
            first_bad.get_or_insert((offset, lineno));
            break;
        }
        if format == OutputFormat::Csv && lineno == 1 && first_bad.is_none() {
            let header = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(body)
                .records()
                .next()
                .and_then(Result::ok);
            let header_is = |cols: &[&str]| {
                header
                    .as_ref()
                    .is_some_and(|h| h.iter().eq(cols.iter().copied()))
            };
            if header_is(&CSV_HEADER_BEFORE_FLAT_MATCHES) {
                return Err(JournalError::OlderScanCsv {
                    path: path.to_path_buf(),
                });
            }
            if header_is(&CSV_HEADER) {
                j.has_csv_header = true;
                offset += n;
                j.valid_len = offset;
                continue;
            }
            if !body.iter().all(|&b| b == 0) {
                return Err(JournalError::NotScanCsv {
                    path: path.to_path_buf(),
                });
            }
        }
        match parse_line(format, body) {
            Some((id, v)) if first_bad.is_none() => {
                j.done.insert(id);
                j.count(v);
                offset += n;
                j.valid_len = offset;
            }
            Some(_) => {
                let (_, line) = first_bad.unwrap();
                return Err(JournalError::Corrupt {
                    path: path.to_path_buf(),
                    line,
                    format: format.as_str(),
                });
            }
            None => {
                first_bad.get_or_insert((offset, lineno));
                offset += n;
            }
        }
    }
    j.dropped_bytes = total - j.valid_len;
    Ok(j)
}

/// Opens `path` for appending after cutting it to the journal's valid prefix.
pub fn open_for_resume(path: &Path, journal: &Journal) -> io::Result<File> {
    let f = OpenOptions::new().write(true).open(path)?;
    if f.metadata()?.len() != journal.valid_len {
        f.set_len(journal.valid_len)?;
        f.sync_data()?;
    }
    drop(f);
    OpenOptions::new().append(true).open(path)
}

/// The version of [`ScanManifest`] this sigil writes. Version 2: files are
/// selected by content, not by a default list of image extensions, and
/// paths are exact bytes; a version 1 scan would not be continued the way
/// it started, so it is not resumed.
pub const MANIFEST_VERSION: u32 = 2;

/// The options that must not change between a scan and its resume, and
/// the index generation its records were matched against.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScanManifest {
    pub version: u32,
    pub format: OutputFormat,
    /// The roots as given ([`crate::path::escape`]d when not plain).
    pub roots: Vec<String>,
    pub shard: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub follow_symlinks: bool,
    /// `--max-file-bytes`: larger files are skipped unread.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// The index path as given.
    pub index: String,
    /// The generation of `index` that matched the records written since
    /// the last entry of `index_changes` (all of them when there is none).
    /// `None` in manifests of older sigils, which did not record it.
    #[serde(default)]
    pub index_generation: Option<u64>,
    /// Resumes that went on against another generation
    /// (`--allow-index-change`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub index_changes: Vec<IndexChange>,
    pub radius: u32,
    pub dihedral: bool,
    /// `--robust[=LEVEL]` (absent in manifests written before the option
    /// existed: those runs were not robust; `true`/`false` in manifests
    /// written when it was a switch read as `standard`/`off`).
    #[serde(default)]
    pub robust: RobustLevel,
    pub min_quality: u32,
    pub fast: bool,
}

fn default_max_file_bytes() -> u64 {
    crate::walk::DEFAULT_MAX_FILE_BYTES
}

/// A resume that continued against another index generation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexChange {
    /// The generation of the earlier records (`None`: not recorded).
    pub from: Option<u64>,
    pub to: u64,
    /// Records in the output when the change was made: those were matched
    /// against `from` (or earlier generations), the later ones against `to`.
    pub records_before: u64,
}

impl ScanManifest {
    /// Records that a resume goes on against generation `to` with
    /// `records_before` records already written, and makes `to` current.
    pub fn change_generation(&mut self, to: u64, records_before: u64) {
        self.index_changes.push(IndexChange {
            from: self.index_generation,
            to,
            records_before,
        });
        self.index_generation = Some(to);
    }

    /// The sidecar path for an output file.
    pub fn path_for(output: &Path) -> PathBuf {
        let mut name = output.file_name().unwrap_or_default().to_os_string();
        name.push(".scan.json");
        output.with_file_name(name)
    }

    /// Writes the sidecar atomically (temp file, fsync, rename).
    pub fn write(&self, output: &Path) -> Result<(), JournalError> {
        let path = Self::path_for(output);
        let err = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        let body = serde_json::to_vec_pretty(self).map_err(|e| err(io::Error::other(e)))?;
        {
            let mut f = File::create(&tmp).map_err(err)?;
            f.write_all(&body).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, &path).map_err(err)?;
        Ok(())
    }

    /// Reads the sidecar of `output`, if there is one.
    pub fn read(output: &Path) -> Result<Option<ScanManifest>, JournalError> {
        let path = Self::path_for(output);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| JournalError::Manifest {
                        path,
                        message: format!("not a sigil scan manifest: {e}"),
                    })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(JournalError::Io { path, source }),
        }
    }

    /// Names of the option fields that differ from `other` (the index
    /// generation is not an option: see [`ScanManifest::change_generation`]).
    pub fn differences(&self, other: &ScanManifest) -> Vec<&'static str> {
        let mut d = Vec::new();
        macro_rules! cmp {
            ($($f:ident),*) => { $( if self.$f != other.$f { d.push(stringify!($f)); } )* };
        }
        cmp!(
            version,
            format,
            roots,
            shard,
            include,
            exclude,
            follow_symlinks,
            max_file_bytes,
            index,
            radius,
            dihedral,
            robust,
            min_quality,
            fast
        );
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{encode_record, OutputTarget, RecordWriter};
    use crate::record::{ErrorCause, ScanRecord};

    fn rec(path: &str, v: Verdict) -> ScanRecord {
        rec_bytes(path.as_bytes(), v)
    }

    fn rec_bytes(path: &[u8], v: Verdict) -> ScanRecord {
        let name = crate::path::PathName::from_bytes(path);
        let mut r = ScanRecord::failed(name, Some(1), ErrorCause::CorruptImage, "x".into());
        r.verdict = v;
        r
    }

    fn write_file(
        format: OutputFormat,
        recs: &[ScanRecord],
        tail: &[u8],
    ) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        {
            let mut w =
                RecordWriter::new(format, OutputTarget::File(f.reopen().unwrap()), true).unwrap();
            for r in recs {
                w.write(r).unwrap();
            }
        }
        let mut h = OpenOptions::new().append(true).open(f.path()).unwrap();
        h.write_all(tail).unwrap();
        f
    }

    #[test]
    fn torn_tail_is_cut_and_paths_collected() {
        for format in [OutputFormat::Jsonl, OutputFormat::Csv] {
            let recs = [
                rec("a,\"1\".png", Verdict::Match),
                rec("b.png", Verdict::NoMatch),
            ];
            let torn = encode_record(format, &rec("c.png", Verdict::Error)).unwrap();
            let f = write_file(format, &recs, &torn[..torn.len() / 2]);
            let j = read_journal(f.path(), format).unwrap();
            assert_eq!(j.records(), 2, "{format:?}");
            assert_eq!(j.matched, 1);
            assert!(j.done.contains(&b"a,\"1\".png"[..]) && j.done.contains(&b"b.png"[..]));
            assert_eq!(j.dropped_bytes as usize, torn.len() / 2);
            let h = open_for_resume(f.path(), &j).unwrap();
            drop(h);
            assert_eq!(std::fs::metadata(f.path()).unwrap().len(), j.valid_len);
            // A second read of the cut file gives the same journal.
            let j2 = read_journal(f.path(), format).unwrap();
            assert_eq!(j2.done, j.done);
            assert_eq!(j2.dropped_bytes, 0);
        }
    }

    #[test]
    fn zero_filled_tail_after_power_loss_is_dropped() {
        let f = write_file(
            OutputFormat::Jsonl,
            &[rec("a.png", Verdict::NoMatch)],
            &[0u8; 4096],
        );
        let j = read_journal(f.path(), OutputFormat::Jsonl).unwrap();
        assert_eq!(j.records(), 1);
        assert_eq!(j.dropped_bytes, 4096);
    }

    #[test]
    fn garbage_in_the_middle_is_refused() {
        let f = write_file(
            OutputFormat::Jsonl,
            &[rec("a.png", Verdict::NoMatch)],
            b"garbage\n",
        );
        let mut h = OpenOptions::new().append(true).open(f.path()).unwrap();
        h.write_all(&encode_record(OutputFormat::Jsonl, &rec("b.png", Verdict::NoMatch)).unwrap())
            .unwrap();
        let e = read_journal(f.path(), OutputFormat::Jsonl).unwrap_err();
        assert!(matches!(e, JournalError::Corrupt { line: 2, .. }), "{e}");
    }

    #[test]
    fn csv_without_header_is_refused() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), b"some,other,csv\n").unwrap();
        assert!(matches!(
            read_journal(f.path(), OutputFormat::Csv),
            Err(JournalError::NotScanCsv { .. })
        ));
        let older = CSV_HEADER_BEFORE_FLAT_MATCHES.join(",") + "\n";
        std::fs::write(f.path(), older).unwrap();
        let err = read_journal(f.path(), OutputFormat::Csv).unwrap_err();
        assert!(matches!(err, JournalError::OlderScanCsv { .. }), "{err}");
        assert!(err.to_string().contains("--overwrite"));
    }

    #[test]
    fn manifest_round_trip_and_differences() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out.jsonl");
        let m = ScanManifest {
            version: MANIFEST_VERSION,
            format: OutputFormat::Jsonl,
            roots: vec!["/data".into()],
            shard: "0/1".into(),
            include: vec![],
            exclude: vec![],
            follow_symlinks: false,
            max_file_bytes: 1000,
            index: "idx".into(),
            index_generation: Some(3),
            index_changes: vec![],
            radius: 31,
            dihedral: false,
            robust: RobustLevel::Off,
            min_quality: 50,
            fast: false,
        };
        assert!(ScanManifest::read(&out).unwrap().is_none());
        m.write(&out).unwrap();
        let back = ScanManifest::read(&out).unwrap().unwrap();
        assert_eq!(back, m);
        let mut other = m.clone();
        other.shard = "1/2".into();
        other.radius = 10;
        assert_eq!(m.differences(&other), vec!["shard", "radius"]);
        let mut robust = m.clone();
        robust.robust = RobustLevel::Standard;
        assert_eq!(m.differences(&robust), vec!["robust"]);
        let mut full = robust.clone();
        full.robust = RobustLevel::Full;
        assert_eq!(robust.differences(&full), vec!["robust"]);
        full.write(&out).unwrap();
        let text = std::fs::read_to_string(ScanManifest::path_for(&out)).unwrap();
        assert!(text.contains(r#""robust": "full""#), "{text}");
        assert_eq!(ScanManifest::read(&out).unwrap().unwrap(), full);

        // A generation change is no option difference; it is recorded.
        let mut changed = m.clone();
        changed.change_generation(5, 40);
        assert!(m.differences(&changed).is_empty());
        assert_eq!(changed.index_generation, Some(5));
        assert_eq!(
            changed.index_changes,
            vec![IndexChange {
                from: Some(3),
                to: 5,
                records_before: 40
            }]
        );
        changed.write(&out).unwrap();
        assert_eq!(ScanManifest::read(&out).unwrap().unwrap(), changed);
        let mut limit = m.clone();
        limit.max_file_bytes = 2000;
        assert_eq!(m.differences(&limit), vec!["max_file_bytes"]);
    }

    /// Names that differ only in bytes that are not UTF-8, or in a line
    /// break against a space, are different files to resume, in both
    /// formats.
    #[test]
    fn resume_identities_are_exact_path_bytes() {
        for format in [OutputFormat::Jsonl, OutputFormat::Csv] {
            let names: [&[u8]; 4] = [b"t/x\xfe.png", b"t/a\nb.png", b"t/a\rb.png", b"t/q,\"\xff"];
            let recs: Vec<ScanRecord> = names
                .iter()
                .map(|n| rec_bytes(n, Verdict::NoMatch))
                .collect();
            let f = write_file(format, &recs, b"");
            let j = read_journal(f.path(), format).unwrap();
            let want: HashSet<Vec<u8>> = names.iter().map(|n| n.to_vec()).collect();
            assert_eq!(j.done, want, "{format:?}");
            for other in [&b"t/x\xff.png"[..], b"t/a b.png", b"t/x\\xfe.png"] {
                assert!(!j.done.contains(other), "{format:?}: {other:?}");
            }
        }
    }

    #[test]
    fn manifest_without_robust_field_reads_as_not_robust() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out.jsonl");
        let old = r#"{"version":1,"format":"jsonl","roots":["/data"],"shard":"0/1",
            "include":[],"exclude":[],"follow_symlinks":false,"index":"idx",
            "radius":31,"dihedral":false,"min_quality":50,"fast":false}"#;
        std::fs::write(ScanManifest::path_for(&out), old).unwrap();
        let m = ScanManifest::read(&out).unwrap().unwrap();
        assert_eq!(m.robust, RobustLevel::Off);
    }

    /// Manifests written when `--robust` was a switch still resume.
    #[test]
    fn manifest_with_robust_switch_reads_as_level() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out.jsonl");
        for (switch, level) in [("true", RobustLevel::Standard), ("false", RobustLevel::Off)] {
            let old = format!(
                r#"{{"version":1,"format":"jsonl","roots":["/data"],"shard":"0/1",
                "include":[],"exclude":[],"follow_symlinks":false,"index":"idx",
                "radius":31,"dihedral":false,"robust":{switch},"min_quality":50,"fast":false}}"#
            );
            std::fs::write(ScanManifest::path_for(&out), old).unwrap();
            assert_eq!(ScanManifest::read(&out).unwrap().unwrap().robust, level);
        }
        std::fs::write(
            ScanManifest::path_for(&out),
            r#"{"version":1,"format":"jsonl","roots":[],"shard":"0/1","include":[],
            "exclude":[],"follow_symlinks":false,"index":"idx","radius":31,
            "dihedral":false,"robust":"sideways","min_quality":50,"fast":false}"#,
        )
        .unwrap();
        let err = ScanManifest::read(&out).unwrap_err().to_string();
        assert!(err.contains("sideways"), "{err}");
    }
}
