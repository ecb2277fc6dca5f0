//! In-memory collection of entries and serialisation into one immutable
//! segment file.

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;
use sigil_core::HashKind;

use crate::error::{IndexError, Result};
use crate::format::{section, ContainerWriter, MAGIC_SEGMENT};
use crate::mih;
use crate::record::{
    kind_code, numeric_id, push_string, RawRecord, ID_HAS_OVERFLOW, ID_IS_STRING, OVERFLOW_LEN,
};

/// Accumulates entries for one segment. Memory per entry is the key plus a
/// 16-byte record (ids that are plain numbers take no string space).
#[derive(Default)]
pub struct SegmentBuilder {
    pdq: Vec<([u8; 32], u32)>,
    md5: Vec<([u8; 16], u32)>,
    sha1: Vec<([u8; 20], u32)>,
    sha256: Vec<([u8; 32], u32)>,
    records: Vec<RawRecord>,
    strings: Vec<u8>,
    lists: Vec<String>,
    list_ids: HashMap<String, u16>,
    categories: Vec<String>,
    category_ids: HashMap<String, u16>,
}

/// Metadata of one entry (borrowed while adding).
#[derive(Clone, Copy, Debug)]
pub struct EntryMeta<'a> {
    pub id: &'a str,
    pub list: &'a str,
    pub category: &'a str,
    pub note: Option<&'a str>,
}

fn intern(
    names: &mut Vec<String>,
    ids: &mut HashMap<String, u16>,
    s: &str,
    what: &str,
) -> Result<u16> {
    if let Some(&i) = ids.get(s) {
        return Ok(i);
    }
    if names.len() > u16::MAX as usize {
        return Err(IndexError::Limit(format!(
            "more than 65536 {what} in one segment"
        )));
    }
    let i = names.len() as u16;
    names.push(s.to_owned());
    ids.insert(s.to_owned(), i);
    Ok(i)
}

impl SegmentBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries added.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn string_ref(&mut self, s: &str) -> Result<u32> {
        let off = self.strings.len();
        if off + 4 + s.len() > u32::MAX as usize {
            return Err(IndexError::Limit("string table over 4 GiB".into()));
        }
        push_string(&mut self.strings, s);
        Ok(off as u32)
    }

    fn record(&mut self, meta: EntryMeta<'_>) -> Result<u32> {
        if self.records.len() >= u32::MAX as usize {
            return Err(IndexError::Limit(
                "more than 2^32 entries in one segment".into(),
            ));
        }
        let id = match numeric_id(meta.id) {
            Some(v) => v,
            None => ID_IS_STRING | self.string_ref(meta.id)? as u64,
        };
        let list = intern(&mut self.lists, &mut self.list_ids, meta.list, "lists")?;
        let category = intern(
            &mut self.categories,
            &mut self.category_ids,
            meta.category,
            "categories",
        )?;
        let note = match meta.note {
            Some(n) => self.string_ref(n)? + 1,
            None => 0,
        };
        self.records.push(RawRecord {
            id,
            list,
            category,
            note,
        });
        Ok(self.records.len() as u32 - 1)
    }

    /// Adds a PDQ entry.
    pub fn push_pdq(&mut self, hash: &[u8; 32], meta: EntryMeta<'_>) -> Result<()> {
        let r = self.record(meta)?;
        self.pdq.push((*hash, r));
        Ok(())
    }

    /// Adds an entry of any kind; `digest` must have the kind's length.
    pub fn push(&mut self, kind: HashKind, digest: &[u8], meta: EntryMeta<'_>) -> Result<()> {
        if digest.len() != kind.byte_len() {
            return Err(IndexError::InvalidOption(format!(
                "{kind} digest must be {} bytes, got {}",
                kind.byte_len(),
                digest.len()
            )));
        }
        let r = self.record(meta)?;
        match kind {
            HashKind::Pdq => self.pdq.push((digest.try_into().unwrap_or([0; 32]), r)),
            HashKind::Md5 => self.md5.push((digest.try_into().unwrap_or([0; 16]), r)),
            HashKind::Sha1 => self.sha1.push((digest.try_into().unwrap_or([0; 20]), r)),
            HashKind::Sha256 => self.sha256.push((digest.try_into().unwrap_or([0; 32]), r)),
        }
        Ok(())
    }

    /// Writes the segment to `path` (a new file; the caller renames it into
    /// place) and fsyncs it. Returns (file length, header checksum).
    pub fn write(mut self, path: &Path) -> Result<(u64, u64)> {
        let entry_count = self.records.len() as u64;
        let mut w = ContainerWriter::create(path, MAGIC_SEGMENT, 64)?;
        let res = (|| {
            w.section(section::STRINGS, 0, &self.strings)?;
            let mut names = Vec::new();
            for l in &self.lists {
                push_string(&mut names, l);
            }
            w.section(section::LISTS, 0, &names)?;
            names.clear();
            for c in &self.categories {
                push_string(&mut names, c);
            }
            w.section(section::CATEGORIES, 0, &names)?;

            let records = std::mem::take(&mut self.records);
            let pdq = std::mem::take(&mut self.pdq);
            let pdq_keys = write_table(&mut w, HashKind::Pdq, pdq, &records)?;
            write_table(
                &mut w,
                HashKind::Md5,
                std::mem::take(&mut self.md5),
                &records,
            )?;
            write_table(
                &mut w,
                HashKind::Sha1,
                std::mem::take(&mut self.sha1),
                &records,
            )?;
            write_table(
                &mut w,
                HashKind::Sha256,
                std::mem::take(&mut self.sha256),
                &records,
            )?;
            drop(records);
            if pdq_keys.len() >= mih::MIH_MIN_ROWS {
                write_mih(&mut w, &pdq_keys)?;
            }
            Ok(())
        })();
        match res {
            Ok(()) => w.finish(entry_count),
            Err(e) => Err(e),
        }
    }
}

/// Sorts entries by key, merges duplicates (first record primary, the rest
/// in OVERFLOW), writes KEYS/RECORDS/OVERFLOW. Returns the distinct keys.
fn write_table<const W: usize>(
    w: &mut ContainerWriter,
    kind: HashKind,
    mut entries: Vec<([u8; W], u32)>,
    records: &[RawRecord],
) -> Result<Vec<[u8; W]>> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    sort_entries(&mut entries);
    let code = kind_code(kind);
    let mut keys: Vec<[u8; W]> = Vec::with_capacity(entries.len());
    let mut primary: Vec<RawRecord> = Vec::with_capacity(entries.len());
    let mut overflow: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let key = entries[i].0;
        let mut j = i + 1;
        while j < entries.len() && entries[j].0 == key {
            j += 1;
        }
        let row = keys.len() as u32;
        let mut rec = records[entries[i].1 as usize];
        if j - i > 1 {
            rec.id |= ID_HAS_OVERFLOW;
            for e in &entries[i + 1..j] {
                let mut b = [0u8; OVERFLOW_LEN];
                b[0..4].copy_from_slice(&row.to_le_bytes());
                b[8..24].copy_from_slice(&records[e.1 as usize].encode());
                overflow.extend_from_slice(&b);
            }
        }
        keys.push(key);
        primary.push(rec);
        i = j;
    }
    drop(entries);
    w.begin(section::KEYS, code)?;
    for chunk in keys.chunks(1 << 16) {
        w.write(bytemuck::cast_slice(chunk))?;
    }
    w.begin(section::RECORDS, code)?;
    let mut buf = Vec::with_capacity(16 << 16);
    for chunk in primary.chunks(1 << 16) {
        buf.clear();
        for r in chunk {
            buf.extend_from_slice(&r.encode());
        }
        w.write(&buf)?;
    }
    if !overflow.is_empty() {
        w.section(section::OVERFLOW, code, &overflow)?;
    }
    Ok(keys)
}

/// Sorts by (key, record number). Keys are bucketed by their first two
/// bytes first (hashes are uniform), then each bucket sorted in parallel.
fn sort_entries<const W: usize>(entries: &mut Vec<([u8; W], u32)>) {
    if entries.len() < 1 << 16 {
        entries.sort_unstable();
        return;
    }
    let mut counts = vec![0usize; 65537];
    for e in entries.iter() {
        counts[u16::from_be_bytes([e.0[0], e.0[1]]) as usize + 1] += 1;
    }
    for i in 1..counts.len() {
        counts[i] += counts[i - 1];
    }
    let mut fill = counts.clone();
    let mut out = vec![([0u8; W], 0u32); entries.len()];
    for e in entries.iter() {
        let b = u16::from_be_bytes([e.0[0], e.0[1]]) as usize;
        out[fill[b]] = *e;
        fill[b] += 1;
    }
    // Split `out` into the 65536 buckets and sort each.
    let mut rest: &mut [([u8; W], u32)] = &mut out;
    let mut buckets = Vec::with_capacity(65536);
    for b in 0..65536 {
        let (head, tail) = rest.split_at_mut(counts[b + 1] - counts[b]);
        buckets.push(head);
        rest = tail;
    }
    buckets.par_iter_mut().for_each(|b| b.sort_unstable());
    *entries = out;
}

fn write_mih(w: &mut ContainerWriter, keys: &[[u8; 32]]) -> Result<()> {
    let layout = mih::default_layout();
    let mut desc = Vec::with_capacity(8 + 8 * layout.len());
    desc.extend_from_slice(&(layout.len() as u32).to_le_bytes());
    desc.extend_from_slice(&0u32.to_le_bytes());
    for s in &layout {
        desc.extend_from_slice(&s.start.to_le_bytes());
        desc.extend_from_slice(&s.len.to_le_bytes());
    }
    w.section(section::MIH_LAYOUT, 0, &desc)?;
    // Two substrings at a time in parallel: bounded memory, both cores busy.
    for (pair_no, pair) in layout.chunks(2).enumerate() {
        let tables: Vec<mih::SubstringTable> = pair
            .par_iter()
            .map(|&s| mih::build_substring(keys, s))
            .collect();
        for (k, t) in tables.iter().enumerate() {
            let j = (pair_no * 2 + k) as u32;
            w.section(section::MIH_OFFSETS, j, bytemuck::cast_slice(&t.offsets))?;
            if !t.lows.is_empty() {
                w.section(section::MIH_LOWS, j, &t.lows)?;
            }
            w.begin(section::MIH_ROWS, j)?;
            for chunk in t.rows.chunks(1 << 16) {
                w.write(bytemuck::cast_slice(chunk))?;
            }
        }
    }
    Ok(())
}
