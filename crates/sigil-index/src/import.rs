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

use std::io::BufRead;
use std::path::Path;

use sigil_core::HashKind;

use crate::builder::{EntryMeta, SegmentBuilder};
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

fn parse_digest(hex: &str, kind: HashKind) -> std::result::Result<Vec<u8>, String> {
    let mut b = vec![0u8; kind.byte_len()];
    sigil_core::hash::decode_hex_into(hex, &mut b)
        .map_err(|e| format!("bad {kind} hash {hex:?}: {e}"))?;
    Ok(b)
}

/// Streams the lines of a list, calling `f(line_no_0_based, parsed)`.
/// Errors name the file and the 1-based line.
pub fn read_list(
    path: &Path,
    input: impl BufRead,
    opts: &ImportOptions,
    mut f: impl FnMut(u64, ParsedLine) -> Result<()>,
) -> Result<ImportStats> {
    let mut stats = ImportStats::default();
    let mut cols: Option<Columns> = None;
    for (no, line) in input.split(b'\n').enumerate() {
        let no = no as u64;
        let line = line.map_err(|e| IndexError::io(path, "read", e))?;
        let bad = |reason: String| IndexError::BadInput {
            path: path.to_path_buf(),
            line: no + 1,
            reason,
        };
        let parsed = (|| -> std::result::Result<Option<ParsedLine>, String> {
            let line = std::str::from_utf8(&line).map_err(|_| "line is not UTF-8".to_string())?;
            let line = line.strip_suffix('\r').unwrap_or(line);
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                return Ok(None);
            }
            let fields = if trimmed.contains([',', '"']) {
                split_csv(trimmed)?
            } else {
                vec![trimmed.to_string()]
            };
            if cols.is_none() {
                if fields[0].trim().eq_ignore_ascii_case("hash") {
                    cols = Some(Columns::from_header(&fields)?);
                    return Ok(None);
                }
                cols = Some(Columns::plain());
            }
            let c = cols.unwrap_or_else(Columns::plain);
            let get = |i: Option<usize>| {
                i.and_then(|i| fields.get(i))
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
            };
            let hex = get(Some(c.hash)).ok_or("empty hash field")?;
            let kind = match get(c.kind) {
                Some(k) => k.parse::<HashKind>()?,
                None => kind_for(&hex, opts.kind)?,
            };
            let digest = parse_digest(&hex, kind)?;
            Ok(Some(ParsedLine {
                kind,
                digest,
                id: get(c.id),
                list: get(c.list),
                category: get(c.category),
                note: get(c.note),
            }))
        })();
        match parsed {
            Ok(None) => {}
            Ok(Some(p)) => {
                f(no, p)?;
                stats.added += 1;
            }
            Err(_) if opts.skip_invalid => stats.skipped += 1,
            Err(reason) => return Err(bad(reason)),
        }
    }
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

/// Reads a list from any reader (`path` only names it in errors).
pub fn import_reader(
    path: &Path,
    input: impl BufRead,
    opts: &ImportOptions,
    builder: &mut SegmentBuilder,
) -> Result<ImportStats> {
    let mut idbuf = String::new();
    read_list(path, input, opts, |no, p| {
        let id = match &p.id {
            Some(id) => id.as_str(),
            None => {
                idbuf.clear();
                use std::fmt::Write;
                let _ = write!(idbuf, "{no}");
                idbuf.as_str()
            }
        };
        let meta = EntryMeta {
            id,
            list: p.list.as_deref().unwrap_or(&opts.list),
            category: p.category.as_deref().unwrap_or(&opts.category),
            note: p.note.as_deref(),
        };
        builder.push(p.kind, &p.digest, meta)
    })
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
