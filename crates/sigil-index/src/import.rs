//! Import of hash lists.
//!
//! Accepted inputs (one entry per line; blank lines and lines starting
//! with `#` are skipped):
//! - plain: `HEX[,id[,list[,category[,note]]]]`;
//! - CSV with a header line naming the columns, `hash` required, `kind`,
//!   `id`, `list`, `category`, `note` optional (any order, RFC 4180 quotes).
//!
//! The kind comes from the `kind` column, else `--kind`, else the hex length:
//! 64 = PDQ, 32 = MD5, 40 = SHA-1 (SHA-256 lists, also 64 hex, need
//! `--kind sha256` or a kind column). An entry without an id gets its
//! 0-based line number in the input file. Missing list/category fields take
//! the defaults given in [`ImportOptions`].

use std::borrow::Cow;
use std::io::BufRead;
use std::path::Path;

use rayon::prelude::*;

use sigil_core::HashKind;

use crate::builder::{EntryId, SegmentBuilder};
use crate::error::{IndexError, Result};
use crate::tombstone::Tombstone;

/// How to read a list.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Kind of every hash (else from the kind column or the hex length).
    pub kind: Option<HashKind>,
    /// List name for lines without one.
    pub list: String,
    /// Category for lines without one.
    pub category: String,
    /// Skip bad lines (counted) instead of failing.
    pub skip_invalid: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            kind: None,
            list: "default".into(),
            category: String::new(),
            skip_invalid: false,
        }
    }
}

/// What an import did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportStats {
    pub added: u64,
    pub skipped: u64,
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

#[derive(Clone, Copy, Debug, Default)]
struct Columns {
    hash: usize,
    kind: Option<usize>,
    id: Option<usize>,
    list: Option<usize>,
    category: Option<usize>,
    note: Option<usize>,
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
        }
    }

    fn from_header(fields: &[String]) -> std::result::Result<Self, String> {
        let mut c = Columns::default();
        let mut hash = None;
        for (i, f) in fields.iter().enumerate() {
            match f.trim().to_ascii_lowercase().as_str() {
                "hash" => hash = Some(i),
                "kind" => c.kind = Some(i),
                "id" => c.id = Some(i),
                "list" => c.list = Some(i),
                "category" => c.category = Some(i),
                "note" => c.note = Some(i),
                other => return Err(format!("unknown CSV column {other:?}")),
            }
        }
        c.hash = hash.ok_or("CSV header has no `hash` column")?;
        Ok(c)
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

fn kind_for(hex: &str, explicit: Option<HashKind>) -> std::result::Result<HashKind, String> {
    if let Some(k) = explicit {
        return Ok(k);
    }
    match hex.len() {
        64 => Ok(HashKind::Pdq),
        32 => Ok(HashKind::Md5),
        40 => Ok(HashKind::Sha1),
        n => Err(format!(
            "hash has {n} hex characters; expected 64 (PDQ), 32 (MD5) or 40 (SHA-1), or give --kind"
        )),
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
) -> std::result::Result<Option<LineRef<'a>>, String> {
    // Fast path for the common line, a bare hex hash (optionally with \r)
    // where the hash is the first column: nothing to trim, split or unquote,
    // and the result is exactly what the general path below gives.
    if let Some(c) = cols {
        if c.hash == 0 && c.kind.is_none() {
            let kind = opts.kind.unwrap_or(HashKind::Pdq);
            let hex = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(digest) = decode_hex_fast(hex, kind.byte_len()) {
                return Ok(Some(LineRef {
                    kind,
                    digest,
                    id: None,
                    list: None,
                    category: None,
                    note: None,
                }));
            }
        }
    }
    let line = std::str::from_utf8(line).map_err(|_| "line is not UTF-8".to_string())?;
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
        if first.trim().eq_ignore_ascii_case("hash") {
            let header = many.unwrap_or_else(|| vec![trimmed.to_string()]);
            *cols = Some(Columns::from_header(&header)?);
            return Ok(None);
        }
        *cols = Some(Columns::plain());
    }
    let c = cols.unwrap_or_else(Columns::plain);
    let get = |i: Option<usize>| -> Option<Cow<'a, str>> {
        let i = i?;
        match &many {
            Some(f) => f
                .get(i)
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(|s| Cow::Owned(s.to_string())),
            None if i == 0 => Some(Cow::Borrowed(trimmed.trim())).filter(|s| !s.is_empty()),
            None => None,
        }
    };
    let hex = get(Some(c.hash)).ok_or("empty hash field")?;
    let kind = match get(c.kind) {
        Some(k) => k.parse::<HashKind>()?,
        None => kind_for(&hex, opts.kind)?,
    };
    let digest = parse_digest(&hex, kind)?;
    Ok(Some(LineRef {
        kind,
        digest,
        id: get(c.id),
        list: get(c.list),
        category: get(c.category),
        note: get(c.note),
    }))
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

    /// Parses the next line. An entry comes back with its line number and
    /// counts as added; a bad line counts as skipped with `skip_invalid`,
    /// else it is the error, as (line number, cause).
    fn parse<'a>(
        &mut self,
        line: &'a [u8],
    ) -> std::result::Result<Option<(u64, LineRef<'a>)>, (u64, String)> {
        let no = self.next_no;
        self.next_no += 1;
        match parse_line(line, &mut self.cols, self.opts) {
            Ok(entry) => {
                self.stats.added += u64::from(entry.is_some());
                Ok(entry.map(|e| (no, e)))
            }
            Err(_) if self.opts.skip_invalid => {
                self.stats.skipped += 1;
                Ok(None)
            }
            Err(reason) => Err((no, reason)),
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
    for line in input.split(b'\n') {
        let line = line.map_err(|e| IndexError::io(path, "read", e))?;
        let parsed = lines
            .parse(&line)
            .map_err(|(no, reason)| bad_line(path, no, reason))?;
        if let Some((no, p)) = parsed {
            f(no, p.into_parsed())?;
        }
    }
    Ok(lines.stats)
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
    skipped: u64,
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
        skipped: lines.stats.skipped,
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

/// Adds one parsed line to the builder; an entry without an id gets its
/// 0-based line number.
fn add_entry(
    builder: &mut SegmentBuilder,
    opts: &ImportOptions,
    no: u64,
    p: &LineRef<'_>,
) -> Result<()> {
    let id = match &p.id {
        Some(id) => EntryId::Text(id),
        None => EntryId::Number(no),
    };
    builder.push_with_id(
        p.kind,
        p.digest(),
        id,
        p.list.as_deref().unwrap_or(&opts.list),
        p.category.as_deref().unwrap_or(&opts.category),
        p.note.as_deref(),
    )
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
    // Numbers and counts the lines of the whole input; parses those up to
    // the one that fixes the columns.
    let mut lines = Lines::new(opts, None);
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
                add_entry(builder, opts, no, &p)?;
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
                    add_entry(builder, opts, first + rel, e)?;
                }
                if let Some((rel, reason)) = p.error {
                    return Err(bad_line(path, first + rel, reason));
                }
                lines.next_no += p.lines;
                lines.stats.added += p.entries.len() as u64;
                lines.stats.skipped += p.skipped;
            }
        }
        if let Some(e) = read_err {
            return Err(IndexError::io(path, "read", e));
        }
        if eof {
            return Ok(lines.stats);
        }
        buf.drain(..complete);
    }
}

/// What a removal list names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoveBy {
    /// Each line is a hash (optionally with more fields, ignored).
    Hash,
    /// Each line is an id of `list`.
    Id,
}

/// Reads a removal list into tombstones.
pub fn read_removals(
    path: &Path,
    input: impl BufRead,
    by: RemoveBy,
    opts: &ImportOptions,
) -> Result<(Vec<Tombstone>, ImportStats)> {
    let mut out = Vec::new();
    let mut stats = ImportStats::default();
    match by {
        RemoveBy::Hash => {
            stats = read_list(path, input, opts, |_, p| {
                out.push(Tombstone::Hash {
                    kind: p.kind,
                    hash: sigil_core::hash::encode_hex(&p.digest),
                });
                Ok(())
            })?;
        }
        RemoveBy::Id => {
            for line in input.lines() {
                let line = line.map_err(|e| IndexError::io(path, "read", e))?;
                let id = line.trim();
                if id.is_empty() || id.starts_with('#') {
                    continue;
                }
                out.push(Tombstone::Id {
                    list: opts.list.clone(),
                    id: id.to_string(),
                });
                stats.added += 1;
            }
        }
    }
    Ok((out, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn batched_import_equals_line_by_line() {
        let mut plain = String::from("# comment\n\n");
        for i in 0..3000u64 {
            match i % 7 {
                0 => plain.push_str(&format!("{},id{i},l{},c{}\r\n", hex(i % 500), i % 3, i % 2)),
                1 => plain.push_str(&format!("{},,,,note {i}\n", hex(i).to_uppercase())),
                2 => plain.push('\n'),
                3 => plain.push_str(&format!("  {}  \n", hex(i % 700))),
                4 => plain.push_str(&format!("{}\n", &hex(i)[..32])),
                _ => plain.push_str(&format!("{}\n", hex(i))),
            }
        }
        plain.push_str(&hex(1)); // last line without a newline
        let csv = format!(
            "# header after a comment\n\"hash\",id,list\n{}",
            (0..2000u64)
                .map(|i| format!("{},x{i},\"a,{}\"\n", hex(i % 300), i % 4))
                .collect::<String>()
        );
        let bad = format!("{}\nnot hex\n{}\nzz{}\n", hex(1), hex(2), &hex(3)[2..]);
        for (text, skip) in [
            (plain.as_str(), false),
            (csv.as_str(), false),
            (bad.as_str(), true),
            (bad.as_str(), false),
            ("", false),
            ("\n\n", false),
        ] {
            let opts = ImportOptions {
                skip_invalid: skip,
                ..ImportOptions::default()
            };
            let (want, wb) = reference(text.as_bytes(), &opts);
            match &want {
                Ok(s) => assert!(text.len() < 10 || s.added > 1000 || skip, "{s:?}"),
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
                    (Ok(w), Ok(g)) => assert_eq!(w, g, "batch {batch} piece {piece}"),
                    (Err(w), Err(g)) => {
                        assert_eq!(w.to_string(), g.to_string(), "batch {batch} piece {piece}")
                    }
                    _ => panic!("{want:?} vs {got:?} (batch {batch} piece {piece})"),
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
        let bare: String = (0..500u64)
            .map(|i| format!("{}\r\n", hex(i % 400)))
            .collect();
        let comma: String = (0..500u64)
            .map(|i| format!("{},\n", hex(i % 400)))
            .collect();
        let opts = ImportOptions::default();
        let mut a = SegmentBuilder::new();
        let mut b = SegmentBuilder::new();
        import_reader(Path::new("a"), bare.as_bytes(), &opts, &mut a).unwrap();
        import_reader(Path::new("b"), comma.as_bytes(), &opts, &mut b).unwrap();
        assert_eq!(segment_bytes(a), segment_bytes(b));
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
