//! Output writers: JSON Lines and CSV, one record per file, streamed.
//!
//! Every record is written with a single `write` call and handed to the OS
//! at once, so a killed process (kill -9) loses at most the record being
//! written; [`RecordWriter::sync`] adds an `fsync` for power loss. The output
//! file doubles as the resume journal (see [`crate::journal`]).

use std::fs::File;
use std::io::{self, Write};
use std::str::FromStr;

use sigil_index::import::spreadsheet_safe;

use crate::path::to_base64;
use crate::record::{ScanRecord, SkippedPath};

/// Output format of the records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// One JSON object per line (the default).
    #[default]
    Jsonl,
    /// A header row, then one row per file: the best match in flat columns,
    /// every match as a JSON array in the last cell.
    Csv,
}

impl OutputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Jsonl => "jsonl",
            OutputFormat::Csv => "csv",
        }
    }
}

impl FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "json" | "ndjson" => Ok(OutputFormat::Jsonl),
            "csv" => Ok(OutputFormat::Csv),
            _ => Err(format!(
                "unknown output format {s:?} (expected jsonl or csv)"
            )),
        }
    }
}

/// The CSV header row: the record's scalar fields, the best (nearest)
/// match in flat columns for spreadsheets and `cut`, and last every match as
/// a JSON array for tools that want them all.
pub const CSV_HEADER: [&str; 19] = [
    "path",
    "size",
    "sha256",
    "md5",
    "pdq",
    "quality",
    "verdict",
    "match_count",
    "best_list",
    "best_id",
    "best_category",
    "best_distance",
    "error_cause",
    "error_message",
    "media",
    "format",
    "note",
    "path_bytes",
    "matches",
];

/// The header of sigil's CSV records before the flat match columns: an
/// output that starts with it is refused for resume by name, not as a
/// foreign file.
pub const CSV_HEADER_BEFORE_FLAT_MATCHES: [&str; 14] = [
    "path",
    "size",
    "sha256",
    "md5",
    "pdq",
    "quality",
    "verdict",
    "matches",
    "error_cause",
    "error_message",
    "media",
    "format",
    "note",
    "path_bytes",
];

/// Column of `path` in [`CSV_HEADER`].
pub const CSV_PATH: usize = 0;
/// Column of `verdict` in [`CSV_HEADER`].
pub const CSV_VERDICT: usize = 6;
/// Column of `path_bytes` in [`CSV_HEADER`].
pub const CSV_PATH_BYTES: usize = 17;

/// Serialises one record, including its trailing newline.
pub fn encode_record(format: OutputFormat, rec: &ScanRecord) -> io::Result<Vec<u8>> {
    match format {
        OutputFormat::Jsonl => {
            let mut line = serde_json::to_vec(rec).map_err(io::Error::other)?;
            line.push(b'\n');
            Ok(line)
        }
        OutputFormat::Csv => {
            let matches = if rec.matches.is_empty() {
                String::new()
            } else {
                serde_json::to_string(&rec.matches).map_err(io::Error::other)?
            };
            let opt = |v: Option<String>| v.unwrap_or_default();
            // Matches are nearest first: the first is the best.
            let best = rec.matches.first();
            let row = [
                rec.path.clone(),
                opt(rec.size.map(|s| s.to_string())),
                opt(rec.sha256.clone()),
                opt(rec.md5.clone()),
                opt(rec.pdq.map(|p| p.to_hex())),
                opt(rec.quality.map(|q| q.to_string())),
                rec.verdict.as_str().to_string(),
                rec.matches.len().to_string(),
                opt(best.map(|m| m.list.clone())),
                opt(best.map(|m| m.id.clone())),
                opt(best.map(|m| m.category.clone())),
                opt(best.map(|m| m.distance.to_string())),
                opt(rec.error.as_ref().map(|e| e.cause.as_str().to_string())),
                opt(rec.error.as_ref().map(|e| e.message.clone())),
                opt(rec.media.map(|m| m.as_str().to_string())),
                opt(rec.format.clone()),
                opt(rec.note.map(|n| n.as_str().to_string())),
                opt(rec.path_bytes.as_deref().map(to_base64)),
                matches,
            ];
            // One physical line per record, so the file stays a line
            // journal that resume can cut at the last complete line. The
            // path is one line already (escaped, its bytes in path_bytes);
            // this only touches messages. Then no cell may run as a
            // spreadsheet formula: file names, ids and messages come from
            // outside (the journal undoes the guard on the path).
            let row = row.map(|cell| spreadsheet_safe(&one_line(&cell)).into_owned());
            encode_csv_row(&row)
        }
    }
}

/// Replaces line breaks by spaces (CSV cells of messages; JSON escapes
/// them, and paths are escaped before they get here).
pub fn one_line(s: &str) -> String {
    if s.contains(['\n', '\r']) {
        s.replace(['\n', '\r'], " ")
    } else {
        s.to_string()
    }
}

fn encode_csv_row<S: AsRef<[u8]>>(row: &[S]) -> io::Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(row).map_err(io::Error::other)?;
    w.into_inner().map_err(|e| io::Error::other(e.to_string()))
}

/// Where records go: standard output, or a file that can be fsynced.
pub enum OutputTarget {
    Stdout,
    File(File),
    /// Any writer (tests, in-memory).
    Writer(Box<dyn Write + Send>),
}

/// Streams records to an [`OutputTarget`].
pub struct RecordWriter {
    format: OutputFormat,
    target: OutputTarget,
    records: u64,
    only_matches: bool,
}

impl RecordWriter {
    /// `write_header`: whether to start with the CSV header (false when
    /// appending to a resumed file that already has one).
    pub fn new(format: OutputFormat, target: OutputTarget, write_header: bool) -> io::Result<Self> {
        let mut w = RecordWriter {
            format,
            target,
            records: 0,
            only_matches: false,
        };
        if write_header && format == OutputFormat::Csv {
            let header = encode_csv_row(&CSV_HEADER)?;
            w.write_bytes(&header)?;
        }
        Ok(w)
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.target {
            OutputTarget::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()
            }
            OutputTarget::File(f) => f.write_all(bytes),
            OutputTarget::Writer(w) => {
                w.write_all(bytes)?;
                w.flush()
            }
        }
    }

    /// Writes only records whose verdict is `match` (the others are still
    /// counted in the summary). Such an output is no resume journal.
    pub fn only_matches(mut self) -> Self {
        self.only_matches = true;
        self
    }

    /// Writes one record (one `write` call for a file target).
    pub fn write(&mut self, rec: &ScanRecord) -> io::Result<()> {
        if self.only_matches && rec.verdict != crate::record::Verdict::Match {
            return Ok(());
        }
        let bytes = encode_record(self.format, rec)?;
        self.write_bytes(&bytes)?;
        self.records += 1;
        Ok(())
    }

    /// Makes everything written so far durable (fsync for a file target).
    pub fn sync(&mut self) -> io::Result<()> {
        match &mut self.target {
            OutputTarget::Stdout => io::stdout().lock().flush(),
            OutputTarget::File(f) => f.sync_data(),
            OutputTarget::Writer(w) => w.flush(),
        }
    }

    pub fn records_written(&self) -> u64 {
        self.records
    }
}

/// Streams [`SkippedPath`]s as JSON Lines (`--skipped FILE`).
pub struct SkippedWriter {
    out: io::BufWriter<Box<dyn Write + Send>>,
    written: u64,
}

impl SkippedWriter {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        SkippedWriter {
            out: io::BufWriter::new(out),
            written: 0,
        }
    }

    pub fn write(&mut self, entry: &SkippedPath) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, entry).map_err(io::Error::other)?;
        self.out.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }

    /// Flushes what is buffered to the OS.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn entries_written(&self) -> u64 {
        self.written
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::PathName;
    use crate::record::{ErrorCause, ErrorInfo, MatchRecord, Media, Note, SkipReason, Verdict};
    use sigil_core::{HashKind, PdqHash};

    fn sample() -> ScanRecord {
        ScanRecord {
            path: "dir/a \"b\",c.jpg".into(),
            path_bytes: None,
            size: Some(12),
            sha256: Some("ab".repeat(32)),
            md5: Some("cd".repeat(16)),
            media: Some(Media::Image),
            format: Some("jpeg".into()),
            pdq: Some(PdqHash([0x5a; 32])),
            quality: Some(100),
            verdict: Verdict::Match,
            matches: vec![MatchRecord {
                id: "e1".into(),
                list: "demo".into(),
                category: "test".into(),
                kind: HashKind::Pdq,
                distance: 3,
                variant: None,
                query_variant: None,
            }],
            error: Some(ErrorInfo {
                cause: ErrorCause::CorruptImage,
                message: "line\nbreak".into(),
            }),
            note: None,
        }
    }

    #[test]
    fn jsonl_round_trips() {
        let rec = sample();
        let line = encode_record(OutputFormat::Jsonl, &rec).unwrap();
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(*line.last().unwrap(), b'\n');
        let back: ScanRecord = serde_json::from_slice(&line).unwrap();
        assert_eq!(back, rec);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["verdict"], "match");
        assert_eq!(v["matches"][0]["kind"], "pdq");
        assert_eq!(v["error"]["cause"], "corrupt_image");
    }

    #[test]
    fn csv_quotes_and_parses_back() {
        let rec = sample();
        let mut buf = encode_csv_row(&CSV_HEADER).unwrap();
        buf.extend(encode_record(OutputFormat::Csv, &rec).unwrap());
        let mut r = csv::Reader::from_reader(&buf[..]);
        let rows: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(&rows[0][0], rec.path);
        assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 2);
        let col = |name: &str| CSV_HEADER.iter().position(|c| *c == name).unwrap();
        assert_eq!(&rows[0][CSV_VERDICT], "match");
        assert_eq!(&rows[0][col("error_cause")], "corrupt_image");
        assert_eq!(&rows[0][col("error_message")], "line break");
        let m: Vec<MatchRecord> = serde_json::from_str(&rows[0][CSV_HEADER.len() - 1]).unwrap();
        assert_eq!(m, rec.matches);
        let best = &rec.matches[0];
        assert_eq!(
            [
                col("match_count"),
                col("best_list"),
                col("best_id"),
                col("best_category"),
                col("best_distance")
            ]
            .map(|i| rows[0][i].to_string()),
            [
                rec.matches.len().to_string(),
                best.list.clone(),
                best.id.clone(),
                best.category.clone(),
                best.distance.to_string()
            ]
        );
        assert_eq!(
            (
                &rows[0][col("media")],
                &rows[0][col("format")],
                &rows[0][col("note")]
            ),
            ("image", "jpeg", "")
        );
        assert_eq!(&rows[0][CSV_PATH_BYTES], "");
    }

    /// File names and ids come from outside: no cell may start like a
    /// spreadsheet formula, and resume still knows the file by its name.
    #[test]
    fn csv_cells_never_run_as_formulas() {
        let mut rec = sample();
        rec.path = "=HYPERLINK(\"http://x.invalid\").jpg".into();
        rec.matches[0].id = "+cmd".into();
        let row = encode_record(OutputFormat::Csv, &rec).unwrap();
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(&row[..]);
        let row = r.records().next().unwrap().unwrap();
        for cell in row.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?}"
            );
        }
        assert_eq!(&row[CSV_PATH], "'=HYPERLINK(\"http://x.invalid\").jpg");
        assert_eq!(
            &row[CSV_HEADER.iter().position(|c| *c == "best_id").unwrap()],
            "'+cmd"
        );
    }

    /// A name that is not plain is one line in either format, with its
    /// exact bytes beside it.
    #[test]
    fn escaped_names_carry_their_bytes() {
        let mut rec = ScanRecord::new(PathName::from_bytes(b"d/a\nb\xff.bin"));
        rec.media = Some(Media::Other);
        rec.note = Some(Note::NotAnImage);
        let line = encode_record(OutputFormat::Jsonl, &rec).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["path"], "d/a\\nb\\xff.bin");
        assert_eq!(v["path_bytes"], to_base64(b"d/a\nb\xff.bin"));
        assert_eq!(
            (v["media"].as_str(), v["note"].as_str()),
            (Some("other"), Some("not_an_image"))
        );
        let back: ScanRecord = serde_json::from_slice(&line).unwrap();
        assert_eq!(back.identity(), b"d/a\nb\xff.bin");
        // Plain names have no path_bytes at all.
        let plain = encode_record(
            OutputFormat::Jsonl,
            &ScanRecord::new(PathName::from_bytes(b"a b")),
        )
        .unwrap();
        assert!(!String::from_utf8(plain).unwrap().contains("path_bytes"));

        let row = encode_record(OutputFormat::Csv, &rec).unwrap();
        assert_eq!(row.iter().filter(|&&b| b == b'\n').count(), 1);
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(&row[..]);
        let row = r.records().next().unwrap().unwrap();
        assert_eq!(&row[0], "d/a\\nb\\xff.bin");
        assert_eq!(
            crate::path::from_base64(&row[CSV_PATH_BYTES]).unwrap(),
            b"d/a\nb\xff.bin"
        );
    }

    #[test]
    fn skipped_entries_are_json_lines() {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = SkippedWriter::new(Box::new(Shared(buf.clone())));
        let e = SkippedPath::new(
            PathName::from_bytes(b"p\xfe"),
            SkipReason::SpecialFile,
            "fifo".into(),
        );
        w.write(&e).unwrap();
        w.flush().unwrap();
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1);
        let back: SkippedPath = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(back, e);
        assert!(text.contains(r#""reason":"special_file""#), "{text}");
    }
}
