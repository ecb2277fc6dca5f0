//! Import of hash lists.
//!
//! Accepted inputs (one entry per line; blank lines and lines starting
//! with `#` are skipped; a UTF-8 byte-order mark at the start is skipped):
//! - plain: `HASH[,id[,list[,category[,note]]]]`;
//! - CSV with a header line naming the columns, `hash` required, `kind`,
//!   `id`, `list`, `category`, `note` optional (any order, RFC 4180 quotes).
//!
//! `HASH` is hex, optionally prefixed by its kind: `KIND:HEX` or `KIND HEX`
//! (python-threatexchange's local files are `pdq <hex>` lines). Kinds:
//! `pdq`, `md5`, `sha1`, `sha256`; ThreatExchange signal types sigil does
//! not match (`video_md5`, `vpdq`, `url`, ...) are recognised and refused
//! by name.
//!
//! **The kind is never guessed.** It comes from the line (`kind` column or
//! prefix; both must agree), else from [`ImportOptions::kind`] (a line that
//! names another kind is an error), else from the hex length where it is
//! unambiguous: 32 = MD5, 40 = SHA-1. 64 hex characters are a PDQ hash or
//! a SHA-256 digest, so such a line without a kind is an error (never
//! skipped) that says how to name it.
//!
//! Ids, lists, categories and notes are plain text: a control character
//! (NUL, tab, CR...) refuses the line. An entry without an id gets its
//! 0-based line number in the input file. Missing list/category fields take
//! the defaults given in [`ImportOptions`]. Fields past the format's columns
//! are counted ([`ImportStats::extra_fields`]) and ignored, or refused with
//! [`ImportOptions::strict`]. Repeated entries are found later, over the
//! whole segment, by [`SegmentBuilder::drop_duplicates`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::ops::Range;
use std::path::Path;

use rayon::prelude::*;

use sigil_core::HashKind;

use crate::builder::{EntryId, SegmentBuilder};
use crate::error::{IndexError, Result};
use crate::tombstone::Tombstone;

/// How to read a list.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Kind of every hash. A line that names another kind is an error;
    /// without it, a line must name its kind unless its hex length does
    /// (32 = MD5, 40 = SHA-1).
    pub kind: Option<HashKind>,
    /// List name for lines without one.
    pub list: String,
    /// Category for lines without one.
    pub category: String,
    /// Skip bad lines (counted by reason) instead of failing. Lines whose
    /// kind is unknown or contradicts `kind` are never skipped.
    pub skip_invalid: bool,
    /// Refuse lines with fields past the format's columns (else counted and
    /// ignored). Callers also refuse duplicates with it (see
    /// [`ImportStats::duplicates`]).
    pub strict: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            kind: None,
            list: "default".into(),
            category: String::new(),
            skip_invalid: false,
            strict: false,
        }
    }
}

/// How many lines had some property, and the first of them (1-based).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineTally {
    pub count: u64,
    pub first_line: Option<u64>,
}

impl LineTally {
    /// Counts 1-based line `line`.
    pub fn add(&mut self, line: u64) {
        self.count += 1;
        self.first_line = Some(self.first_line.map_or(line, |f| f.min(line)));
    }

    /// Adds `other`, whose line numbers are `offset` lines further on.
    fn merge(&mut self, other: &LineTally, offset: u64) {
        if let Some(f) = other.first_line {
            self.count += other.count;
            let f = f + offset;
            self.first_line = Some(self.first_line.map_or(f, |s| s.min(f)));
        }
    }
}

/// Lines skipped for one reason (with [`ImportOptions::skip_invalid`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    pub lines: LineTally,
    /// Why the first of them was skipped.
    pub first_cause: String,
}

/// What an import did: every line is an entry, a blank or comment line, the
/// header, or counted here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// Entries read and handed to the builder.
    pub added: u64,
    /// The same, per list and kind (imports into a builder).
    pub per_list: BTreeMap<String, BTreeMap<HashKind, u64>>,
    /// Lines skipped with `skip_invalid`, by reason: `"invalid"`, or
    /// `"kind NAME"` for a ThreatExchange signal type sigil does not import.
    pub skipped: BTreeMap<String, Skipped>,
    /// Lines with fields past the format's columns (the extra fields were ignored).
    pub extra_fields: LineTally,
    /// Entries that repeat an earlier entry of the same import (same kind,
    /// hash, list and id; for entries without an id, same kind, hash and
    /// list) and were not stored twice. Filled in by [`attribute_dropped`].
    pub duplicates: LineTally,
    /// Entries already live in the index they were added to, not stored
    /// again. Filled in by [`attribute_dropped`].
    pub already_indexed: LineTally,
    /// Whether the input began with a UTF-8 byte-order mark (skipped).
    pub byte_order_mark: bool,
    /// The builder record numbers of this input's entries.
    pub records: Range<u64>,
    /// (record number, 0-based line) where the line of the next record is
    /// not one more than the previous one's: maps records back to lines.
    line_breaks: Vec<(u64, u64)>,
    /// For entries given an id: (list number in `id_lists`, fingerprint of
    /// kind and id, fingerprint of the hash); see [`ids_with_several_hashes`].
    id_prints: Vec<(u16, u64, u32)>,
    id_lists: Vec<String>,
}

impl ImportStats {
    /// Lines skipped for any reason.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().map(|s| s.lines.count).sum()
    }

    /// The 1-based line of builder record `record`, if it is this input's.
    pub fn line_of_record(&self, record: u64) -> Option<u64> {
        if !self.records.contains(&record) {
            return None;
        }
        let i = self.line_breaks.partition_point(|&(r, _)| r <= record);
        let (r0, l0) = *self.line_breaks.get(i.checked_sub(1)?)?;
        Some(l0 + (record - r0) + 1)
    }

    fn skip(&mut self, class: String, line: u64, cause: String) {
        let s = self.skipped.entry(class).or_default();
        if s.lines.first_line.is_none_or(|f| line < f) {
            s.first_cause = cause;
        }
        s.lines.add(line);
    }

    /// Adds the parse counts of a piece whose lines are `offset` further on.
    fn merge_parse(&mut self, other: &ImportStats, offset: u64) {
        for (class, s) in &other.skipped {
            let mine = self.skipped.entry(class.clone()).or_default();
            let first = s.lines.first_line.map(|f| f + offset);
            if mine.lines.first_line.is_none() || first < mine.lines.first_line {
                mine.first_cause = s.first_cause.clone();
            }
            mine.lines.merge(&s.lines, offset);
        }
        self.extra_fields.merge(&other.extra_fields, offset);
    }
}

/// Per list, how many ids given in `inputs` (not line numbers standing in
/// for a missing id) carry more than one distinct hash of one kind, across
/// all the inputs. Legitimate (an item's several hashes, augmented
/// variants: all are kept) but worth saying. Ids and hashes are compared
/// by fingerprint, so this is a count to report, not to act on. Frees the
/// fingerprints the imports kept for it.
pub fn ids_with_several_hashes(inputs: &mut [ImportStats]) -> BTreeMap<String, u64> {
    let mut names: Vec<String> = Vec::new();
    let mut prints: Vec<(u16, u64, u32)> = Vec::new();
    for s in inputs.iter_mut() {
        let local: Vec<u16> = s
            .id_lists
            .iter()
            .map(|l| match names.iter().position(|n| n == l) {
                Some(i) => i as u16,
                None => {
                    names.push(l.clone());
                    (names.len() - 1) as u16
                }
            })
            .collect();
        prints.extend(
            std::mem::take(&mut s.id_prints)
                .into_iter()
                .map(|(l, id, key)| (local[l as usize], id, key)),
        );
        s.id_lists.clear();
    }
    prints.par_sort_unstable();
    prints.dedup();
    let mut out = BTreeMap::new();
    // Sorted and distinct: a run of one (list, kind and id) holds its hashes.
    for run in prints.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        if run.len() > 1 {
            *out.entry(names[run[0].0 as usize].clone()).or_insert(0) += 1;
        }
    }
    out
}

/// Why entries were dropped from a builder (see [`attribute_dropped`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// [`SegmentBuilder::drop_duplicates`].
    Duplicate,
    /// Already live in the index being added to.
    AlreadyIndexed,
}

/// Counts dropped builder records (sorted record numbers) against the
/// inputs they came from, in [`ImportStats::duplicates`] or
/// [`ImportStats::already_indexed`]. Returns how many belong to no input
/// (entries pushed by other means, e.g. enrolled images).
pub fn attribute_dropped(inputs: &mut [ImportStats], dropped: &[u32], why: Dropped) -> u64 {
    let mut unattributed = 0;
    for &r in dropped {
        let r = u64::from(r);
        match inputs.iter_mut().find(|s| s.records.contains(&r)) {
            Some(s) => {
                let line = s.line_of_record(r).unwrap_or(0);
                match why {
                    Dropped::Duplicate => s.duplicates.add(line),
                    Dropped::AlreadyIndexed => s.already_indexed.add(line),
                }
            }
            None => unattributed += 1,
        }
    }
    unattributed
}

/// Splits one CSV line (quotes: `"a,b"`, `""` for a quote).
pub fn split_csv(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && at_start {
            quoted = true;
            at_start = false;
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
            at_start = true;
        } else {
            cur.push(c);
            at_start = false;
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    out.push(cur);
    Ok(out)
}

/// Quotes a CSV field if needed.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// What makes a spreadsheet run a cell as a formula (OWASP, "CSV
/// Injection"): a leading `=`, `+`, `-`, `@`, tab or carriage return.
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A cell a spreadsheet will show as text, never run: one `'` is put before
/// a cell that starts like a formula (after any `'`s it already starts with,
/// so that [`from_spreadsheet_safe`] undoes exactly this). Exports written
/// for people to open (`sigil index export`, `sigil scan --format csv`)
/// pass every text cell through it.
pub fn spreadsheet_safe(cell: &str) -> Cow<'_, str> {
    if cell.trim_start_matches('\'').starts_with(FORMULA_START) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// Undoes [`spreadsheet_safe`]: drops the one `'` it put before a cell that
/// starts like a formula. Every other cell is returned as it is.
pub fn from_spreadsheet_safe(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.trim_start_matches('\'').starts_with(FORMULA_START) => rest,
        _ => cell,
    }
}

/// The column names of a CSV header.
const COLUMN_NAMES: [&str; 6] = ["hash", "kind", "id", "list", "category", "note"];

/// The plain format's columns, in order.
const PLAIN_COLUMNS: &str = "hash,id,list,category,note";

#[derive(Clone, Copy, Debug, Default)]
struct Columns {
    hash: usize,
    kind: Option<usize>,
    id: Option<usize>,
    list: Option<usize>,
    category: Option<usize>,
    note: Option<usize>,
    /// Fields a line has at most; more are extra.
    width: usize,
}

impl Columns {
    fn plain() -> Self {
        Columns {
            hash: 0,
            kind: None,
            id: Some(1),
            list: Some(2),
            category: Some(3),
            note: Some(4),
            width: 5,
        }
    }

    fn from_header(fields: &[String]) -> std::result::Result<Self, String> {
        let mut c = Columns {
            width: fields.len(),
            ..Columns::default()
        };
        let mut hash = None;
        for (i, f) in fields.iter().enumerate() {
            let name = f.trim().to_ascii_lowercase();
            let slot = match name.as_str() {
                "hash" => &mut hash,
                "kind" => &mut c.kind,
                "id" => &mut c.id,
                "list" => &mut c.list,
                "category" => &mut c.category,
                "note" => &mut c.note,
                other => {
                    return Err(format!(
                        "unknown CSV column {other:?} in the header (columns: {})",
                        COLUMN_NAMES.join(", ")
                    ))
                }
            };
            if slot.replace(i).is_some() {
                return Err(format!("CSV header names column {name:?} twice"));
            }
        }
        c.hash = hash.ok_or("CSV header has no `hash` column")?;
        Ok(c)
    }

    fn describe(&self) -> String {
        if self.kind.is_none() && self.hash == 0 && self.width == 5 {
            return PLAIN_COLUMNS.to_string();
        }
        let mut names = vec![""; self.width];
        let mut put = |i: Option<usize>, n| {
            if let Some(slot) = i.and_then(|i| names.get_mut(i)) {
                *slot = n;
            }
        };
        put(Some(self.hash), "hash");
        put(self.kind, "kind");
        put(self.id, "id");
        put(self.list, "list");
        put(self.category, "category");
        put(self.note, "note");
        names.join(",")
    }
}

/// ThreatExchange signal types (python-threatexchange's `SignalType`
/// names) that are not image hashes sigil matches: recognised so that a
/// line of one is refused by name rather than as garbage.
const NOT_IMPORTED: [&str; 8] = [
    "video_md5",
    "vpdq",
    "tmk",
    "pdq_ocr",
    "url",
    "url_md5",
    "raw_text",
    "trend_query",
];

/// Why a line is not an entry.
#[derive(Debug)]
enum Fault {
    /// A bad line: skipped and counted with `skip_invalid`.
    Invalid(String),
    /// A kind sigil knows of but does not import: skipped and counted per
    /// kind with `skip_invalid`.
    NotImported { kind: &'static str, cause: String },
    /// A line that no skipping makes right (its kind cannot be known or
    /// contradicts `--kind`, a bad header, a UTF-16 file): always an error.
    Fatal(String),
}

impl From<String> for Fault {
    fn from(s: String) -> Self {
        Fault::Invalid(s)
    }
}

impl From<&str> for Fault {
    fn from(s: &str) -> Self {
        Fault::Invalid(s.to_string())
    }
}

/// One parsed line.
pub struct ParsedLine {
    pub kind: HashKind,
    pub digest: Vec<u8>,
    pub id: Option<String>,
    pub list: Option<String>,
    pub category: Option<String>,
    pub note: Option<String>,
}

/// One parsed line, borrowing its fields from the line when they needed no
/// unquoting (the common plain-hex line costs no allocation).
struct LineRef<'a> {
    kind: HashKind,
    /// The digest in the first `kind.byte_len()` bytes.
    digest: [u8; 32],
    id: Option<Cow<'a, str>>,
    list: Option<Cow<'a, str>>,
    category: Option<Cow<'a, str>>,
    note: Option<Cow<'a, str>>,
    /// The line had fields past the format's columns (ignored).
    extra: bool,
}

impl LineRef<'_> {
    fn digest(&self) -> &[u8] {
        &self.digest[..self.kind.byte_len()]
    }

    fn into_parsed(self) -> ParsedLine {
        let own = |c: Option<Cow<'_, str>>| c.map(Cow::into_owned);
        ParsedLine {
            kind: self.kind,
            digest: self.digest().to_vec(),
            id: own(self.id),
            list: own(self.list),
            category: own(self.category),
            note: own(self.note),
        }
    }
}

/// The kind named by `word` (a `kind` column or a `KIND:` prefix).
fn kind_word(word: &str) -> std::result::Result<HashKind, Fault> {
    if let Ok(k) = word.parse::<HashKind>() {
        return Ok(k);
    }
    let lower = word.to_ascii_lowercase();
    if let Some(&kind) = NOT_IMPORTED.iter().find(|&&n| n == lower) {
        return Err(Fault::NotImported {
            kind,
            cause: format!(
                "kind {kind} is a ThreatExchange signal type that sigil does not import \
                 (it imports pdq, md5, sha1 and sha256)"
            ),
        });
    }
    Err(Fault::Invalid(format!(
        "unknown hash kind {word:?} (expected pdq, md5, sha1 or sha256)"
    )))
}

/// Splits a `KIND:HEX` or `KIND HEX` hash field into its kind and hex.
fn split_kind_prefix(field: &str) -> std::result::Result<(Option<HashKind>, &str), Fault> {
    let (word, hex) = if let Some((w, h)) = field.split_once(':') {
        (w.trim(), h.trim())
    } else if let Some(i) = field.find(char::is_whitespace) {
        (&field[..i], field[i..].trim())
    } else {
        return Ok((None, field));
    };
    if !word.is_empty() && word.bytes().all(|b| b.is_ascii_hexdigit()) {
        // `HEX name`, as md5sum and sha256sum print.
        return Err(Fault::Invalid(format!(
            "unexpected text {hex:?} after the hash (one hash per line, \
             optionally labelled `KIND:HEX` or `KIND HEX`)"
        )));
    }
    Ok((Some(kind_word(word)?), hex))
}

/// The kind of a line's hash: named by the line, else `given`, else by an
/// unambiguous hex length. Never a guess.
fn resolve_kind(
    from_line: Option<HashKind>,
    given: Option<HashKind>,
    hex: &str,
) -> std::result::Result<HashKind, Fault> {
    match (from_line, given) {
        (Some(l), Some(g)) if l != g => Err(Fault::Fatal(format!(
            "the line says its hash is {l} but --kind {g} was given"
        ))),
        (Some(k), _) | (None, Some(k)) => Ok(k),
        (None, None) => match hex.len() {
            32 => Ok(HashKind::Md5),
            40 => Ok(HashKind::Sha1),
            64 => Err(Fault::Fatal(
                "64 hex characters are a PDQ hash or a SHA-256 digest, and nothing \
                 says which; sigil does not guess: give --kind pdq or --kind sha256, \
                 a `kind` column in a CSV header, or label the line (`pdq:HEX`, \
                 `sha256 HEX`)"
                    .into(),
            )),
            n => Err(Fault::Invalid(format!(
                "hash has {n} hex characters; expected 32 (MD5), 40 (SHA-1) or 64 \
                 (PDQ or SHA-256, with its kind named)"
            ))),
        },
    }
}

/// Refuses text with control characters (NUL, tab, newline...): ids,
/// lists, categories and notes are printed in reports and exports.
fn check_text(what: &str, s: &str) -> std::result::Result<(), Fault> {
    match s.chars().find(|c| c.is_control()) {
        Some(c) => Err(Fault::Invalid(format!(
            "{what} {s:?} contains the control character U+{:04X}; {what}s must be plain text",
            c as u32
        ))),
        None => Ok(()),
    }
}

/// Exactly `2 * len` hex bytes as a digest; `None` on any other input.
fn decode_hex_fast(h: &[u8], len: usize) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    (len <= out.len() && sigil_core::hash::decode_hex_bytes(h, &mut out[..len])).then_some(out)
}

fn parse_digest(hex: &str, kind: HashKind) -> std::result::Result<[u8; 32], String> {
    if let Some(d) = decode_hex_fast(hex.as_bytes(), kind.byte_len()) {
        return Ok(d);
    }
    // Bad input: the core decoder's message names the problem.
    let mut out = [0u8; 32];
    sigil_core::hash::decode_hex_into(hex, &mut out[..kind.byte_len()])
        .map_err(|e| format!("bad {kind} hash {hex:?}: {e}"))?;
    Ok(out)
}

/// Parses one line (without its `\n`). `cols` is set by the first line that
/// is neither blank nor a comment (a CSV header, or else plain columns).
fn parse_line<'a>(
    line: &'a [u8],
    cols: &mut Option<Columns>,
    opts: &ImportOptions,
) -> std::result::Result<Option<LineRef<'a>>, Fault> {
    // Fast path for the common line, a bare hex hash (optionally with \r)
    // where the hash is the first column and its kind is known without
    // reading the line: nothing to trim, split or unquote, and the result
    // is exactly what the general path below gives.
    if let Some(c) = cols {
        if c.hash == 0 && c.kind.is_none() {
            let hex = line.strip_suffix(b"\r").unwrap_or(line);
            let kind = opts.kind.or(match hex.len() {
                32 => Some(HashKind::Md5),
                40 => Some(HashKind::Sha1),
                _ => None,
            });
            if let Some(kind) = kind {
                if let Some(digest) = decode_hex_fast(hex, kind.byte_len()) {
                    return Ok(Some(LineRef {
                        kind,
                        digest,
                        id: None,
                        list: None,
                        category: None,
                        note: None,
                        extra: false,
                    }));
                }
            }
        }
    }
    let line = std::str::from_utf8(line).map_err(|_| "line is not UTF-8")?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    // Without a comma or quote the line is its one field: borrowed, not split.
    let many = if trimmed.contains([',', '"']) {
        Some(split_csv(trimmed)?)
    } else {
        None
    };
    if cols.is_none() {
        let first = match &many {
            Some(f) => f[0].as_str(),
            None => trimmed,
        };
        if COLUMN_NAMES.contains(&first.trim().to_ascii_lowercase().as_str()) {
            let header = many.unwrap_or_else(|| vec![trimmed.to_string()]);
            *cols = Some(Columns::from_header(&header).map_err(Fault::Fatal)?);
            return Ok(None);
        }
        *cols = Some(Columns::plain());
    }
    let c = cols.unwrap_or_else(Columns::plain);
    let fields = many.as_ref().map_or(1, Vec::len);
    let extra = fields > c.width;
    if extra && opts.strict {
        return Err(Fault::Invalid(format!(
            "{fields} fields where the format has {} ({}); --strict refuses extra fields",
            c.width,
            c.describe()
        )));
    }
    let get = |i: Option<usize>| -> Option<Cow<'a, str>> {
        let i = i?;
        match &many {
            // Cells of sigil's own exports may carry a spreadsheet guard.
            Some(f) => f
                .get(i)
                .map(|s| from_spreadsheet_safe(s.trim()))
                .filter(|s| !s.is_empty())
                .map(|s| Cow::Owned(s.to_string())),
            None if i == 0 => Some(Cow::Borrowed(trimmed.trim())).filter(|s| !s.is_empty()),
            None => None,
        }
    };
    let field = get(Some(c.hash)).ok_or("empty hash field")?;
    let (prefixed, hex) = split_kind_prefix(&field)?;
    let column = get(c.kind).map(|k| kind_word(&k)).transpose()?;
    let from_line = match (column, prefixed) {
        (Some(a), Some(b)) if a != b => {
            return Err(Fault::Invalid(format!(
                "the kind column says {a} but the hash is labelled {b}"
            )))
        }
        (a, b) => a.or(b),
    };
    let kind = resolve_kind(from_line, opts.kind, hex)?;
    let digest = parse_digest(hex, kind)?;
    let entry = LineRef {
        kind,
        digest,
        id: get(c.id),
        list: get(c.list),
        category: get(c.category),
        note: get(c.note),
        extra,
    };
    for (what, v) in [
        ("id", &entry.id),
        ("list", &entry.list),
        ("category", &entry.category),
        ("note", &entry.note),
    ] {
        if let Some(v) = v {
            check_text(what, v)?;
        }
    }
    Ok(Some(entry))
}

/// Parses an input's lines in order, numbering and counting them: the one
/// place that says what a blank line, comment, header, entry or bad line
/// does, whichever way the lines are read (streamed, or in parallel pieces).
struct Lines<'o> {
    opts: &'o ImportOptions,
    /// Set by the first line that is neither blank nor a comment.
    cols: Option<Columns>,
    /// The 0-based number of the next line.
    next_no: u64,
    /// Parse counts (skipped, extra fields, byte-order mark), lines
    /// numbered from this parser's first.
    stats: ImportStats,
}

impl<'o> Lines<'o> {
    fn new(opts: &'o ImportOptions, cols: Option<Columns>) -> Self {
        Lines {
            opts,
            cols,
            next_no: 0,
            stats: ImportStats::default(),
        }
    }

    /// Parses the next line. An entry comes back with its line number; a
    /// bad line counts as skipped with `skip_invalid`, else it is the
    /// error, as (line number, cause).
    fn parse<'a>(
        &mut self,
        mut line: &'a [u8],
    ) -> std::result::Result<Option<(u64, LineRef<'a>)>, (u64, String)> {
        let no = self.next_no;
        self.next_no += 1;
        // Only the input's own first line (pieces are parsed with columns set).
        if no == 0 && self.cols.is_none() {
            if let Some(rest) = line.strip_prefix(b"\xEF\xBB\xBF") {
                self.stats.byte_order_mark = true;
                line = rest;
            } else if line.starts_with(b"\xFF\xFE") || line.starts_with(b"\xFE\xFF") {
                return Err((
                    no,
                    "the file is UTF-16 (it starts with a UTF-16 byte-order mark); \
                     hash lists are read as UTF-8: convert it, e.g. \
                     `iconv -f UTF-16 -t UTF-8`"
                        .into(),
                ));
            }
        }
        match parse_line(line, &mut self.cols, self.opts) {
            Ok(entry) => {
                if entry.as_ref().is_some_and(|e| e.extra) {
                    self.stats.extra_fields.add(no + 1);
                }
                Ok(entry.map(|e| (no, e)))
            }
            Err(Fault::Fatal(cause)) => Err((no, cause)),
            Err(Fault::Invalid(cause)) if self.opts.skip_invalid => {
                self.stats.skip("invalid".into(), no + 1, cause);
                Ok(None)
            }
            Err(Fault::NotImported { kind, cause }) if self.opts.skip_invalid => {
                self.stats.skip(format!("kind {kind}"), no + 1, cause);
                Ok(None)
            }
            Err(Fault::Invalid(cause) | Fault::NotImported { cause, .. }) => Err((no, cause)),
        }
    }
}

/// The error for bad line `no` (0-based) of `path`.
fn bad_line(path: &Path, no: u64, reason: String) -> IndexError {
    IndexError::BadInput {
        path: path.to_path_buf(),
        line: no + 1,
        reason,
    }
}

/// Streams the lines of a list, calling `f(line_no_0_based, parsed)`.
/// Errors name the file and the 1-based line.
pub fn read_list(
    path: &Path,
    input: impl BufRead,
    opts: &ImportOptions,
    mut f: impl FnMut(u64, ParsedLine) -> Result<()>,
) -> Result<ImportStats> {
    let mut lines = Lines::new(opts, None);
    let mut added = 0;
    for line in input.split(b'\n') {
        let line = line.map_err(|e| IndexError::io(path, "read", e))?;
        let parsed = lines
            .parse(&line)
            .map_err(|(no, reason)| bad_line(path, no, reason))?;
        if let Some((no, p)) = parsed {
            added += 1;
            f(no, p.into_parsed())?;
        }
    }
    let mut stats = lines.stats;
    stats.added = added;
    Ok(stats)
}

/// Reads a list file into a segment builder.
pub fn import_file(
    path: &Path,
    opts: &ImportOptions,
    builder: &mut SegmentBuilder,
) -> Result<ImportStats> {
    let file = std::fs::File::open(path).map_err(|e| IndexError::io(path, "open", e))?;
    let input = std::io::BufReader::with_capacity(1 << 20, file);
    import_reader(path, input, opts, builder)
}

/// Bytes read per batch; each batch is parsed in parallel pieces.
const BATCH_BYTES: usize = 8 << 20;
/// Target size of one piece parsed by one task.
const PIECE_BYTES: usize = 256 << 10;

/// The parsed lines of one piece of a batch.
struct Piece<'a> {
    /// (line number within the piece, parsed line).
    entries: Vec<(u64, LineRef<'a>)>,
    /// Lines in the piece.
    lines: u64,
    /// Parse counts, lines numbered within the piece.
    stats: ImportStats,
    /// The first bad line (within the piece) when not skipping; parsing stops there.
    error: Option<(u64, String)>,
}

fn parse_piece<'a>(text: &'a [u8], cols: Columns, opts: &ImportOptions) -> Piece<'a> {
    // A bare PDQ line is 65 bytes: reserve once rather than grow by copying.
    let mut entries = Vec::with_capacity(text.len() / 64 + 1);
    let mut error = None;
    let mut lines = Lines::new(opts, Some(cols));
    for line in text.split(|&b| b == b'\n') {
        match lines.parse(line) {
            Ok(entry) => entries.extend(entry),
            Err(bad) => {
                error = Some(bad);
                break;
            }
        }
    }
    Piece {
        entries,
        lines: lines.next_no,
        stats: lines.stats,
        error,
    }
}

/// Splits `text` (complete lines, each ending in `\n`) into pieces of about
/// `piece_bytes` at line boundaries, without their final `\n`.
fn split_pieces(text: &[u8], piece_bytes: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let cut = if rest.len() <= piece_bytes {
            rest.len()
        } else {
            match rest[piece_bytes..].iter().position(|&b| b == b'\n') {
                Some(i) => piece_bytes + i + 1,
                None => rest.len(),
            }
        };
        let (piece, tail) = rest.split_at(cut);
        out.push(piece.strip_suffix(b"\n").unwrap_or(piece));
        rest = tail;
    }
    out
}

/// Adds parsed lines to a builder in input order, counting them per list
/// and kind and keeping the record-to-line map.
struct Adder<'s> {
    stats: &'s mut ImportStats,
    /// The (kind, list) of the last entries and how many in a row: counts
    /// are flushed into `per_list` when it changes, so the common list of
    /// one kind and list costs no map lookup per entry.
    run: Option<(HashKind, String, u64)>,
    last_line: Option<u64>,
    /// The list of the last entry given an id, in `stats.id_lists`.
    id_list: usize,
}

impl<'s> Adder<'s> {
    fn new(stats: &'s mut ImportStats, first_record: u64) -> Self {
        stats.records = first_record..first_record;
        Adder {
            stats,
            run: None,
            last_line: None,
            id_list: 0,
        }
    }

    /// Adds one parsed line; an entry without an id gets its 0-based line number.
    fn add(
        &mut self,
        builder: &mut SegmentBuilder,
        opts: &ImportOptions,
        no: u64,
        p: &LineRef<'_>,
    ) -> Result<()> {
        let id = match &p.id {
            Some(id) => EntryId::Text(id),
            None => EntryId::Number(no),
        };
        let list = p.list.as_deref().unwrap_or(&opts.list);
        let record = builder.records_pushed();
        builder.push_with_id(
            p.kind,
            p.digest(),
            id,
            list,
            p.category.as_deref().unwrap_or(&opts.category),
            p.note.as_deref(),
        )?;
        if self.last_line.is_none_or(|l| l + 1 != no) {
            self.stats.line_breaks.push((record, no));
        }
        self.last_line = Some(no);
        self.stats.records.end = record + 1;
        if let Some(id) = &p.id {
            self.print_id(p.kind, id, list, p.digest());
        }
        self.stats.added += 1;
        match &mut self.run {
            Some((k, l, n)) if *k == p.kind && l == list => *n += 1,
            _ => {
                self.flush_run();
                self.run = Some((p.kind, list.to_string(), 1));
            }
        }
        Ok(())
    }

    /// Keeps the fingerprints of an entry given an id (see [`ids_with_several_hashes`]).
    fn print_id(&mut self, kind: HashKind, id: &str, list: &str, digest: &[u8]) {
        use xxhash_rust::xxh3::xxh3_64_with_seed;
        let lists = &mut self.stats.id_lists;
        let l = match lists.get(self.id_list) {
            Some(last) if last == list => self.id_list,
            _ => match lists.iter().position(|n| n == list) {
                Some(i) => i,
                None => {
                    lists.push(list.to_string());
                    lists.len() - 1
                }
            },
        };
        self.id_list = l;
        // At most one list per entry and 65536 lists per segment: fits.
        let l = l.min(u16::MAX as usize) as u16;
        let id = xxh3_64_with_seed(id.as_bytes(), u64::from(crate::record::kind_code(kind)));
        let key = xxh3_64_with_seed(digest, 0) as u32;
        self.stats.id_prints.push((l, id, key));
    }

    fn flush_run(&mut self) {
        if let Some((kind, list, n)) = self.run.take() {
            *self
                .stats
                .per_list
                .entry(list)
                .or_default()
                .entry(kind)
                .or_insert(0) += n;
        }
    }
}

impl Drop for Adder<'_> {
    fn drop(&mut self) {
        self.flush_run();
    }
}

/// Reads a list from any reader (`path` only names it in errors).
///
/// The input is read in batches of whole lines; each batch is cut into
/// pieces parsed in parallel, then the pieces are added to the builder in
/// input order, so the result (string pool, list and category numbering,
/// which duplicate is primary, the first error reported) is exactly that
/// of reading line by line.
pub fn import_reader(
    path: &Path,
    input: impl BufRead,
    opts: &ImportOptions,
    builder: &mut SegmentBuilder,
) -> Result<ImportStats> {
    import_batched(path, input, opts, builder, BATCH_BYTES, PIECE_BYTES)
}

/// [`import_reader`] with the batch and piece sizes as parameters (tests use
/// tiny ones to cross every boundary case).
fn import_batched(
    path: &Path,
    mut input: impl BufRead,
    opts: &ImportOptions,
    builder: &mut SegmentBuilder,
    batch_bytes: usize,
    piece_bytes: usize,
) -> Result<ImportStats> {
    // Numbers the lines of the whole input and keeps its parse counts;
    // parses those up to the one that fixes the columns.
    let mut lines = Lines::new(opts, None);
    let mut stats = ImportStats::default();
    let mut adder = Adder::new(&mut stats, builder.records_pushed());
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // Fill the batch; `read_err` ends the input after its complete lines
        // (the line being read when reading failed is lost, as before).
        let mut eof = false;
        let mut read_err = None;
        let want = buf.len() + batch_bytes;
        while buf.len() < want {
            let at = buf.len();
            buf.resize(want, 0);
            match input.read(&mut buf[at..]) {
                Ok(0) => {
                    buf.truncate(at);
                    eof = true;
                    break;
                }
                Ok(k) => buf.truncate(at + k),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => buf.truncate(at),
                Err(e) => {
                    buf.truncate(at);
                    read_err = Some(e);
                    break;
                }
            }
        }
        // Complete lines: up to the last `\n` (at the end of input, a final
        // line without `\n` counts too).
        let complete = match buf.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None => 0,
        };
        let complete = if eof && read_err.is_none() {
            buf.len()
        } else if complete == 0 && read_err.is_none() {
            // One line longer than the batch: read on.
            continue;
        } else {
            complete
        };
        let mut text = &buf[..complete];
        // Lines up to the one that fixes the columns are parsed one by one:
        // whether a header comes first decides how every later line reads.
        while lines.cols.is_none() && !text.is_empty() {
            let (line, rest) = match text.iter().position(|&b| b == b'\n') {
                Some(i) => (&text[..i], &text[i + 1..]),
                None => (text, &text[text.len()..]),
            };
            let parsed = lines
                .parse(line)
                .map_err(|(no, reason)| bad_line(path, no, reason))?;
            if let Some((no, p)) = parsed {
                adder.add(builder, opts, no, &p)?;
            }
            text = rest;
        }
        if let Some(c) = lines.cols {
            let pieces: Vec<Piece<'_>> = split_pieces(text, piece_bytes)
                .into_par_iter()
                .map(|t| parse_piece(t, c, opts))
                .collect();
            for p in pieces {
                let first = lines.next_no;
                for (rel, e) in &p.entries {
                    adder.add(builder, opts, first + rel, e)?;
                }
                if let Some((rel, reason)) = p.error {
                    return Err(bad_line(path, first + rel, reason));
                }
                lines.next_no += p.lines;
                lines.stats.merge_parse(&p.stats, first);
            }
        }
        if let Some(e) = read_err {
            return Err(IndexError::io(path, "read", e));
        }
        if eof {
            drop(adder);
            stats.merge_parse(&lines.stats, 0);
            stats.byte_order_mark = lines.stats.byte_order_mark;
            return Ok(stats);
        }
        buf.drain(..complete);
    }
}

/// What a removal list names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoveBy {
    /// Each line is a hash, with its kind named as in an import (`KIND:HEX`,
    /// a `kind` column, or the options' kind), or by an unambiguous length.
    /// Other fields (id, list, category, note) are not read: they are
    /// counted in [`ImportStats::extra_fields`] (refused with `strict`).
    Hash,
    /// Each line is an id.
    Id,
}

/// Reads a removal list into tombstones, each with its 1-based line: hash
/// removals limited to `list` (`None`: from every list), id removals of
/// `list` (which they need).
pub fn read_removals(
    path: &Path,
    input: impl BufRead,
    by: RemoveBy,
    opts: &ImportOptions,
    list: Option<&str>,
) -> Result<(Vec<(u64, Tombstone)>, ImportStats)> {
    let mut out = Vec::new();
    match by {
        RemoveBy::Hash => {
            let mut other_fields = LineTally::default();
            let mut stats = read_list(path, input, opts, |no, p| {
                if p.id.is_some() || p.list.is_some() || p.category.is_some() || p.note.is_some() {
                    if opts.strict {
                        return Err(bad_line(
                            path,
                            no,
                            "a removal by hash reads only the hash and its kind; \
                             --strict refuses lines with other fields (id, list, category, note)"
                                .into(),
                        ));
                    }
                    other_fields.add(no + 1);
                }
                out.push((
                    no + 1,
                    Tombstone::Hash {
                        kind: p.kind,
                        hash: sigil_core::hash::encode_hex(&p.digest),
                        list: list.map(str::to_string),
                    },
                ));
                Ok(())
            })?;
            stats.extra_fields.merge(&other_fields, 0);
            Ok((out, stats))
        }
        RemoveBy::Id => {
            let Some(list) = list else {
                return Err(IndexError::InvalidOption(
                    "a removal by id needs the list the ids belong to".into(),
                ));
            };
            let mut stats = ImportStats::default();
            for (no, line) in input.split(b'\n').enumerate() {
                let no = no as u64;
                let line = line.map_err(|e| IndexError::io(path, "read", e))?;
                let mut line = line.as_slice();
                if no == 0 {
                    if let Some(rest) = line.strip_prefix(b"\xEF\xBB\xBF") {
                        stats.byte_order_mark = true;
                        line = rest;
                    }
                }
                let parsed = std::str::from_utf8(line)
                    .map_err(|_| Fault::Invalid("line is not UTF-8".into()))
                    .and_then(|l| {
                        let id = l.trim();
                        check_text("id", id)?;
                        Ok(id)
                    });
                match parsed {
                    Ok(id) if id.is_empty() || id.starts_with('#') => {}
                    Ok(id) => {
                        stats.added += 1;
                        out.push((
                            no + 1,
                            Tombstone::Id {
                                list: list.to_string(),
                                id: id.to_string(),
                            },
                        ));
                    }
                    Err(Fault::Invalid(cause)) if opts.skip_invalid => {
                        stats.skip("invalid".into(), no + 1, cause)
                    }
                    Err(Fault::Invalid(cause) | Fault::NotImported { cause, .. })
                    | Err(Fault::Fatal(cause)) => return Err(bad_line(path, no, cause)),
                }
            }
            Ok((out, stats))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";
    const M: &str = "d41d8cd98f00b204e9800998ecf8427e";
    const S1: &str = "da39a3ee5e6b4b0d3255bfef95601890afd80709";

    fn pdq_opts() -> ImportOptions {
        ImportOptions {
            kind: Some(HashKind::Pdq),
            ..ImportOptions::default()
        }
    }

    fn import(text: &str, opts: &ImportOptions) -> Result<(ImportStats, SegmentBuilder)> {
        let mut b = SegmentBuilder::new();
        let s = import_reader(Path::new("in.txt"), text.as_bytes(), opts, &mut b)?;
        Ok((s, b))
    }

    fn err(text: &str, opts: &ImportOptions) -> String {
        match import(text, opts) {
            Ok((s, _)) => panic!("imported {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn kinds(s: &ImportStats, list: &str) -> Vec<(HashKind, u64)> {
        s.per_list[list].iter().map(|(k, n)| (*k, *n)).collect()
    }

    /// The line-by-line reference: `read_list` into `push`, as imports
    /// worked before batches were parsed in parallel.
    fn reference(text: &[u8], opts: &ImportOptions) -> (Result<ImportStats>, SegmentBuilder) {
        let mut b = SegmentBuilder::new();
        let r = read_list(Path::new("in.txt"), text, opts, |no, p| {
            let id = p.id.clone().unwrap_or_else(|| no.to_string());
            b.push(
                p.kind,
                &p.digest,
                crate::builder::EntryMeta {
                    id: &id,
                    list: p.list.as_deref().unwrap_or(&opts.list),
                    category: p.category.as_deref().unwrap_or(&opts.category),
                    note: p.note.as_deref(),
                },
            )
        });
        (r, b)
    }

    fn segment_bytes(b: SegmentBuilder) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("seg");
        b.write(&p).unwrap();
        std::fs::read(p).unwrap()
    }

    fn hex(i: u64) -> String {
        let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut s = String::new();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.push_str(&format!("{x:016x}"));
        }
        s
    }

    /// What the streaming reference and the batched import both report.
    fn parse_counts(s: &ImportStats) -> impl PartialEq + std::fmt::Debug {
        (
            s.added,
            s.skipped.clone(),
            s.extra_fields,
            s.byte_order_mark,
        )
    }

    #[test]
    fn batched_import_equals_line_by_line() {
        // Unlabelled 64-hex lines take --kind pdq; 32-hex ones are MD5 by
        // length unless --kind says otherwise, so this text has both runs.
        let mut plain = String::from("\u{feff}# comment\n\n");
        for i in 0..3000u64 {
            match i % 8 {
                0 => plain.push_str(&format!("{},id{i},l{},c{}\r\n", hex(i % 500), i % 3, i % 2)),
                1 => plain.push_str(&format!("{},,,,note {i}\n", hex(i).to_uppercase())),
                2 => plain.push('\n'),
                3 => plain.push_str(&format!("  {}  \n", hex(i % 700))),
                4 => plain.push_str(&format!("pdq:{}\n", hex(i))),
                5 => plain.push_str(&format!("PDQ {},x,,,n,extra\n", hex(i))),
                _ => plain.push_str(&format!("{}\n", hex(i))),
            }
        }
        plain.push_str(&hex(1)); // last line without a newline
        let csv = format!(
            "# header after a comment\n\"hash\",id,list,kind\n{}",
            (0..2000u64)
                .map(|i| format!(
                    "{},x{i},\"a,{}\",{}\n",
                    hex(i % 300),
                    i % 4,
                    ["pdq", "sha256"][i as usize % 2]
                ))
                .collect::<String>()
        );
        let bad = format!(
            "{}\nnot hex\n{}\nzz{}\nvideo_md5 {M}\n",
            hex(1),
            hex(2),
            &hex(3)[2..]
        );
        let mixed: String = (0..1500u64)
            .map(|i| match i % 4 {
                0 => format!("pdq:{}\n", hex(i)),
                1 => format!("{}\n", &hex(i)[..40]),
                2 => format!("sha256 {},x{i}\n", hex(i)),
                _ => format!("{}\n", &hex(i)[..32]),
            })
            .collect();
        for (text, opts) in [
            (plain.as_str(), pdq_opts()),
            (csv.as_str(), ImportOptions::default()),
            (mixed.as_str(), ImportOptions::default()),
            (
                bad.as_str(),
                ImportOptions {
                    skip_invalid: true,
                    ..pdq_opts()
                },
            ),
            (bad.as_str(), pdq_opts()),
            ("", ImportOptions::default()),
            ("\n\n", ImportOptions::default()),
        ] {
            let (want, wb) = reference(text.as_bytes(), &opts);
            match &want {
                Ok(s) => assert!(
                    text.len() < 10 || s.added > 1000 || opts.skip_invalid,
                    "{s:?}"
                ),
                Err(e) => assert!(e.to_string().starts_with("in.txt:2: "), "{e}"),
            }
            for (batch, piece) in [(1, 1), (7, 3), (100, 64), (4096, 200), (1 << 20, 1 << 16)] {
                let mut b = SegmentBuilder::new();
                let got = import_batched(
                    Path::new("in.txt"),
                    text.as_bytes(),
                    &opts,
                    &mut b,
                    batch,
                    piece,
                );
                match (&want, &got) {
                    (Ok(w), Ok(g)) => assert_eq!(
                        parse_counts(w),
                        parse_counts(g),
                        "batch {batch} piece {piece}"
                    ),
                    (Err(w), Err(g)) => {
                        assert_eq!(w.to_string(), g.to_string(), "batch {batch} piece {piece}")
                    }
                    _ => panic!("{want:?} vs {got:?} (batch {batch} piece {piece})"),
                }
                if let Ok(g) = &got {
                    let total: u64 = g.per_list.values().flat_map(|k| k.values()).sum();
                    assert_eq!(total, g.added);
                    assert_eq!(g.records, 0..g.added);
                }
                if want.is_ok() && !wb.is_empty() {
                    let (_, wb) = reference(text.as_bytes(), &opts);
                    assert_eq!(
                        segment_bytes(wb),
                        segment_bytes(b),
                        "batch {batch} piece {piece}"
                    );
                }
            }
        }
    }

    /// The bare-hex fast path gives what the general path gives for the
    /// same entry written with an empty trailing field (which it declines).
    #[test]
    fn fast_path_equals_general_path() {
        for (opts, width) in [
            (pdq_opts(), 64),
            (ImportOptions::default(), 32),
            (ImportOptions::default(), 40),
        ] {
            let bare: String = (0..500u64)
                .map(|i| format!("{}\r\n", &hex(i % 400)[..width]))
                .collect();
            let comma: String = (0..500u64)
                .map(|i| format!("{},\n", &hex(i % 400)[..width]))
                .collect();
            let mut a = SegmentBuilder::new();
            let mut b = SegmentBuilder::new();
            import_reader(Path::new("a"), bare.as_bytes(), &opts, &mut a).unwrap();
            import_reader(Path::new("b"), comma.as_bytes(), &opts, &mut b).unwrap();
            assert_eq!(segment_bytes(a), segment_bytes(b));
        }
    }

    #[test]
    fn a_64_hex_list_without_a_kind_is_refused_with_the_fix() {
        for opts in [
            ImportOptions::default(),
            ImportOptions {
                skip_invalid: true,
                ..ImportOptions::default()
            },
        ] {
            let e = err(&format!("# list\n{H}\n"), &opts);
            assert!(e.starts_with("in.txt:2: 64 hex characters"), "{e}");
            for fix in ["--kind pdq", "--kind sha256", "`kind` column", "pdq:HEX"] {
                assert!(e.contains(fix), "{e}");
            }
            // A CSV header without a kind column says no more.
            let e = err(&format!("hash,id\n{M},a\n{H},b\n"), &opts);
            assert!(e.starts_with("in.txt:3: 64 hex"), "{e}");
        }
        // 32 and 40 hex characters are unambiguous.
        let (s, _) = import(&format!("{M}\n{S1},x\n"), &ImportOptions::default()).unwrap();
        assert_eq!(
            kinds(&s, "default"),
            [(HashKind::Md5, 1), (HashKind::Sha1, 1)]
        );
        // --kind decides, for a list of SHA-256 digests as well as of PDQ hashes.
        for kind in [HashKind::Pdq, HashKind::Sha256] {
            let opts = ImportOptions {
                kind: Some(kind),
                ..ImportOptions::default()
            };
            let (s, _) = import(&format!("{H}\n"), &opts).unwrap();
            assert_eq!(kinds(&s, "default"), [(kind, 1)]);
        }
    }

    #[test]
    fn lines_name_their_kinds_and_may_mix_them() {
        let text = format!(
            "pdq {H}\nsha256:{H},s\nPDQ:{}\nmd5 {M},,iwf\n{M},,iwf\nsha1\t{S1}\n",
            &hex(9)
        );
        let (s, b) = import(&text, &ImportOptions::default()).unwrap();
        assert_eq!(s.added, 6);
        assert_eq!(
            kinds(&s, "default"),
            [
                (HashKind::Pdq, 2),
                (HashKind::Sha1, 1),
                (HashKind::Sha256, 1)
            ]
        );
        assert_eq!(kinds(&s, "iwf"), [(HashKind::Md5, 2)]);
        assert_eq!(b.len(), 6);
        // A kind column, in any position.
        let csv = format!("kind,hash,list\npdq,{H},a\nsha256,{H},a\nmd5,{M},b\n");
        let (s, _) = import(&csv, &ImportOptions::default()).unwrap();
        assert_eq!(kinds(&s, "a"), [(HashKind::Pdq, 1), (HashKind::Sha256, 1)]);
        // Column and label must agree.
        let e = err(
            &format!("kind,hash\nmd5,pdq:{H}\n"),
            &ImportOptions::default(),
        );
        assert!(e.starts_with("in.txt:2: the kind column says md5"), "{e}");
        // md5sum output is not a list of labelled hashes.
        let e = err(&format!("{M}  photo.jpg\n"), &ImportOptions::default());
        assert!(e.contains("unexpected text \"photo.jpg\""), "{e}");
        let e = err(&format!("blake3:{H}\n"), &ImportOptions::default());
        assert!(e.contains("unknown hash kind \"blake3\""), "{e}");
    }

    #[test]
    fn a_line_contradicting_the_given_kind_is_an_error_naming_it() {
        let text = format!("{H}\npdq:{H}\nmd5:{M}\n");
        for skip_invalid in [false, true] {
            let opts = ImportOptions {
                skip_invalid,
                ..pdq_opts()
            };
            let e = err(&text, &opts);
            assert_eq!(
                e,
                "in.txt:3: the line says its hash is md5 but --kind pdq was given"
            );
        }
        // A bare 32-hex line under --kind pdq is a bad PDQ hash, not an MD5.
        let e = err(&format!("{M}\n"), &pdq_opts());
        assert!(e.starts_with("in.txt:1: bad pdq hash"), "{e}");
    }

    #[test]
    fn threatexchange_kinds_sigil_does_not_import_are_named_and_counted() {
        let text = format!("pdq {H}\nvideo_md5 {M}\nurl_md5 {M}\nvideo_md5 {M}\n");
        let e = err(&text, &ImportOptions::default());
        assert!(
            e.starts_with("in.txt:2: kind video_md5 is a ThreatExchange signal type"),
            "{e}"
        );
        let opts = ImportOptions {
            skip_invalid: true,
            ..ImportOptions::default()
        };
        let (s, _) = import(&text, &opts).unwrap();
        assert_eq!(s.added, 1);
        assert_eq!(s.skipped_total(), 3);
        assert_eq!(
            s.skipped["kind video_md5"].lines,
            LineTally {
                count: 2,
                first_line: Some(2)
            }
        );
        assert_eq!(s.skipped["kind url_md5"].lines.count, 1);
    }

    #[test]
    fn control_characters_in_text_fields_are_refused() {
        for (line, what) in [
            (format!("{M},ab\0c"), "id"),
            (format!("{M},a,li\tst"), "list"),
            (format!("{M},a,l,cat\u{7f}"), "category"),
            (format!("{M},a,l,c,\"no\u{1b}te\""), "note"),
        ] {
            let text = format!("{M},ok\n{line}\n");
            let e = err(&text, &ImportOptions::default());
            assert!(
                e.starts_with(&format!("in.txt:2: {what} ")) && e.contains("control character U+"),
                "{e}"
            );
            let opts = ImportOptions {
                skip_invalid: true,
                ..ImportOptions::default()
            };
            let (s, _) = import(&text, &opts).unwrap();
            assert_eq!(
                (s.added, s.skipped["invalid"].lines.first_line),
                (1, Some(2))
            );
        }
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_utf16_is_named() {
        let (s, _) = import(
            &format!("\u{feff}hash,kind,id\n{H},pdq,a\n"),
            &ImportOptions::default(),
        )
        .unwrap();
        assert!(s.byte_order_mark);
        assert_eq!(kinds(&s, "default"), [(HashKind::Pdq, 1)]);
        let (s, _) = import(&format!("\u{feff}{M}\n"), &ImportOptions::default()).unwrap();
        assert_eq!((s.added, s.byte_order_mark), (1, true));
        let mut utf16 = vec![0xff, 0xfe];
        utf16.extend(M.bytes().flat_map(|b| [b, 0]));
        let e = import_reader(
            Path::new("in.txt"),
            &utf16[..],
            &ImportOptions::default(),
            &mut SegmentBuilder::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("in.txt:1: the file is UTF-16"), "{e}");
    }

    #[test]
    fn extra_fields_are_counted_or_refused() {
        let text = format!("{M},a,l,c,n\n{M},b,l,c,n,x\n# c\n{M},c,l,c,n,x,y\n");
        let (s, _) = import(&text, &ImportOptions::default()).unwrap();
        assert_eq!(
            s.extra_fields,
            LineTally {
                count: 2,
                first_line: Some(2)
            }
        );
        let strict = ImportOptions {
            strict: true,
            ..ImportOptions::default()
        };
        let e = err(&text, &strict);
        assert!(
            e.starts_with("in.txt:2: 6 fields where the format has 5 (hash,id,list,category,note)"),
            "{e}"
        );
        let e = err(&format!("hash,id\n{M},a,b\n"), &strict);
        assert!(
            e.starts_with("in.txt:2: 3 fields where the format has 2 (hash,id)"),
            "{e}"
        );
        // Headers are checked whole.
        let e = err(
            &format!("hash,id,id\n{M},a,b\n"),
            &ImportOptions {
                skip_invalid: true,
                ..ImportOptions::default()
            },
        );
        assert!(
            e.starts_with("in.txt:1: CSV header names column \"id\" twice"),
            "{e}"
        );
    }

    #[test]
    fn records_map_back_to_their_lines() {
        let text = format!("# head\n{M}\n{M}\n\n{M}\n# c\n# c\n{M}\n");
        let mut b = SegmentBuilder::new();
        b.push(
            HashKind::Md5,
            &[0; 16],
            crate::EntryMeta {
                id: "x",
                list: "l",
                category: "",
                note: None,
            },
        )
        .unwrap();
        let s = import_reader(
            Path::new("in"),
            text.as_bytes(),
            &ImportOptions::default(),
            &mut b,
        )
        .unwrap();
        assert_eq!(s.records, 1..5);
        let lines: Vec<Option<u64>> = (0..6).map(|r| s.line_of_record(r)).collect();
        assert_eq!(lines, [None, Some(2), Some(3), Some(5), Some(8), None]);
        let mut inputs = [s];
        assert_eq!(
            attribute_dropped(&mut inputs, &[0, 3, 4], Dropped::Duplicate),
            1
        );
        assert_eq!(
            inputs[0].duplicates,
            LineTally {
                count: 2,
                first_line: Some(5)
            }
        );
    }

    #[test]
    fn removal_lists_scope_hashes_and_refuse_bad_ids() {
        let text = format!("pdq:{H}\n{M},some-id\n");
        let (t, s) = read_removals(
            Path::new("rm"),
            text.as_bytes(),
            RemoveBy::Hash,
            &ImportOptions::default(),
            Some("ncmec"),
        )
        .unwrap();
        assert_eq!(
            t,
            [
                (
                    1,
                    Tombstone::Hash {
                        kind: HashKind::Pdq,
                        hash: H.into(),
                        list: Some("ncmec".into())
                    }
                ),
                (
                    2,
                    Tombstone::Hash {
                        kind: HashKind::Md5,
                        hash: M.into(),
                        list: Some("ncmec".into())
                    }
                ),
            ]
        );
        assert_eq!(
            s.extra_fields,
            LineTally {
                count: 1,
                first_line: Some(2)
            }
        );
        let strict = ImportOptions {
            strict: true,
            ..ImportOptions::default()
        };
        let e = read_removals(
            Path::new("rm"),
            text.as_bytes(),
            RemoveBy::Hash,
            &strict,
            None,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("rm:2: a removal by hash reads only"),
            "{e}"
        );
        let e = read_removals(
            Path::new("rm"),
            format!("{H}\n").as_bytes(),
            RemoveBy::Hash,
            &ImportOptions::default(),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("rm:1: 64 hex"), "{e}");

        let (t, _) = read_removals(
            Path::new("ids"),
            "\u{feff}a\n# c\n\n b \n".as_bytes(),
            RemoveBy::Id,
            &ImportOptions::default(),
            Some("iwf"),
        )
        .unwrap();
        assert_eq!(
            t,
            [
                (
                    1,
                    Tombstone::Id {
                        list: "iwf".into(),
                        id: "a".into()
                    }
                ),
                (
                    4,
                    Tombstone::Id {
                        list: "iwf".into(),
                        id: "b".into()
                    }
                ),
            ]
        );
        let e = read_removals(
            Path::new("ids"),
            "a\nb\0\n".as_bytes(),
            RemoveBy::Id,
            &ImportOptions::default(),
            Some("iwf"),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("ids:2: id \"b\\0\" contains the control character U+0000"),
            "{e}"
        );
        assert!(read_removals(
            Path::new("ids"),
            "a\n".as_bytes(),
            RemoveBy::Id,
            &ImportOptions::default(),
            None
        )
        .is_err());
    }

    /// An id with two hashes of one kind is counted once per list, across
    /// inputs; its MD5 and PDQ, a repeated entry, or a line number standing
    /// in for an id are not counted.
    #[test]
    fn ids_with_several_hashes_are_counted_per_list() {
        let a = format!("hash,kind,id,list\n{H},pdq,x,l\n{M},md5,x,l\n{H},pdq,x,l\n{H},pdq,y,m\n");
        let b = format!("{M},x,l\n{},y,m\n{S1}\n{}\n", &hex(1)[..32], &hex(2)[..40]);
        let c = format!("pdq:{},y,m\n", hex(3));
        let mut inputs: Vec<ImportStats> = [a, b, c]
            .iter()
            .map(|t| import(t, &ImportOptions::default()).unwrap().0)
            .collect();
        // l: x has one PDQ and one MD5 (twice): none. m: y has PDQ H and
        // another PDQ (input c), and an MD5: one.
        assert_eq!(
            ids_with_several_hashes(&mut inputs),
            [("m".to_string(), 1)].into()
        );
        assert!(inputs.iter().all(|s| s.id_prints.is_empty()));
    }

    #[test]
    fn spreadsheet_guard_round_trips_and_neutralises_formulas() {
        for cell in [
            "=HYPERLINK(\"http://x\")",
            "+1",
            "-5",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "'=already",
            "''+x",
            "plain",
            "'quoted",
            "",
        ] {
            let safe = spreadsheet_safe(cell);
            assert!(
                !safe.starts_with(FORMULA_START),
                "{cell:?} exported as {safe:?}"
            );
            assert_eq!(from_spreadsheet_safe(&safe), cell, "{cell:?} -> {safe:?}");
        }
        assert_eq!(spreadsheet_safe("plain"), "plain");
        assert_eq!(spreadsheet_safe("=1+1"), "'=1+1");
        assert_eq!(spreadsheet_safe("'quoted"), "'quoted");
    }

    #[test]
    fn csv_split_and_quote_round_trip() {
        assert_eq!(split_csv("a,b,,c").unwrap(), vec!["a", "b", "", "c"]);
        assert_eq!(
            split_csv("\"x,y\",\"say \"\"hi\"\"\"").unwrap(),
            vec!["x,y", "say \"hi\""]
        );
        assert!(split_csv("\"open").is_err());
        for s in ["plain", "with,comma", "with \"quote\"", " lead"] {
            assert_eq!(split_csv(&csv_field(s)).unwrap(), vec![s.to_string()]);
        }
    }
}
