//! In-memory collection of entries and serialisation into one immutable
//! segment file.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use rayon::prelude::*;
use sigil_core::HashKind;

use crate::error::{IndexError, Result};
use crate::format::{section, ContainerWriter, MAGIC_SEGMENT, VERSION};
use crate::mih;
use crate::radix::scatter_by_digit;
use crate::record::{
    kind_code, numeric_id, push_string, read_string, RawRecord, ID_HAS_OVERFLOW, ID_IS_STRING,
    OVERFLOW_LEN, RECORD_LEN,
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
    lists: Names,
    categories: Names,
    /// One bit per record: pushed with [`EntryId::Number`], i.e. an
    /// imported line without an id, whose line number stands in for it.
    line_ids: Vec<u64>,
    /// Entries held per list number and kind code.
    counts: Vec<[u64; 4]>,
    /// Records no longer in any kind's entries ([`SegmentBuilder::drop_duplicates`],
    /// [`SegmentBuilder::drop_where`]).
    dropped: usize,
}

/// Interned names (lists, categories) in order of first use.
#[derive(Default)]
struct Names {
    names: Vec<String>,
    ids: HashMap<String, u16>,
    /// The last name returned: nearly every entry of an import repeats the
    /// previous entry's list and category, and a string compare is much
    /// cheaper than hashing the name.
    last: Option<u16>,
}

/// Metadata of one entry (borrowed while adding).
#[derive(Clone, Copy, Debug)]
pub struct EntryMeta<'a> {
    pub id: &'a str,
    pub list: &'a str,
    pub category: &'a str,
    pub note: Option<&'a str>,
}

/// The id of an entry: a string, or a number known without formatting it
/// (the line number of a list entry that has no id).
#[derive(Clone, Copy, Debug)]
pub enum EntryId<'a> {
    /// An id given with the entry.
    Text(&'a str),
    /// No id was given: the entry's line number stands in for it. Stored as
    /// its decimal text; two such entries count as having the same id when
    /// duplicates are dropped.
    Number(u64),
}

/// An id as [`SegmentBuilder::drop_duplicates`] compares them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum IdKey<'a> {
    /// No id given (a line number stands in).
    Absent,
    Number(u64),
    Text(&'a str),
}

impl Names {
    fn intern(&mut self, s: &str, what: &str) -> Result<u16> {
        if let Some(i) = self.last {
            if self.names[i as usize] == s {
                return Ok(i);
            }
        }
        let i = match self.ids.get(s) {
            Some(&i) => i,
            None => {
                if self.names.len() > u16::MAX as usize {
                    return Err(IndexError::Limit(format!(
                        "more than 65536 {what} in one segment"
                    )));
                }
                let i = self.names.len() as u16;
                self.names.push(s.to_owned());
                self.ids.insert(s.to_owned(), i);
                i
            }
        };
        self.last = Some(i);
        Ok(i)
    }
}

impl SegmentBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries held (added and not dropped).
    pub fn len(&self) -> usize {
        self.records.len() - self.dropped
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries ever added, dropped ones included: the record number the
    /// next entry gets.
    pub fn records_pushed(&self) -> u64 {
        self.records.len() as u64
    }

    fn string_ref(&mut self, s: &str) -> Result<u32> {
        let off = self.strings.len();
        if off + 4 + s.len() > u32::MAX as usize {
            return Err(IndexError::Limit("string table over 4 GiB".into()));
        }
        push_string(&mut self.strings, s);
        Ok(off as u32)
    }

    fn record(
        &mut self,
        id: EntryId<'_>,
        list: &str,
        category: &str,
        note: Option<&str>,
    ) -> Result<u32> {
        if self.records.len() >= u32::MAX as usize {
            return Err(IndexError::Limit(
                "more than 2^32 entries in one segment".into(),
            ));
        }
        let record = self.records.len();
        if record / 64 >= self.line_ids.len() {
            self.line_ids.push(0);
        }
        if matches!(id, EntryId::Number(_)) {
            self.line_ids[record / 64] |= 1 << (record % 64);
        }
        let id = match id {
            // As `numeric_id` of its decimal form: at most 18 digits.
            EntryId::Number(v) if v < 1_000_000_000_000_000_000 => v,
            EntryId::Number(v) => ID_IS_STRING | self.string_ref(&v.to_string())? as u64,
            EntryId::Text(t) => match numeric_id(t) {
                Some(v) => v,
                None => ID_IS_STRING | self.string_ref(t)? as u64,
            },
        };
        let list = self.lists.intern(list, "lists")?;
        let category = self.categories.intern(category, "categories")?;
        let note = match note {
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
        let r = self.record(EntryId::Text(meta.id), meta.list, meta.category, meta.note)?;
        self.pdq.push((*hash, r));
        self.count(HashKind::Pdq, r, 1);
        Ok(())
    }

    /// Adds an entry of any kind; `digest` must have the kind's length.
    pub fn push(&mut self, kind: HashKind, digest: &[u8], meta: EntryMeta<'_>) -> Result<()> {
        self.push_with_id(
            kind,
            digest,
            EntryId::Text(meta.id),
            meta.list,
            meta.category,
            meta.note,
        )
    }

    /// [`push`](Self::push) with the id given as a number or a string
    /// (`EntryId::Number(n)` is stored exactly like `EntryId::Text(&n.to_string())`).
    pub fn push_with_id(
        &mut self,
        kind: HashKind,
        digest: &[u8],
        id: EntryId<'_>,
        list: &str,
        category: &str,
        note: Option<&str>,
    ) -> Result<()> {
        if digest.len() != kind.byte_len() {
            return Err(IndexError::InvalidOption(format!(
                "{kind} digest must be {} bytes, got {}",
                kind.byte_len(),
                digest.len()
            )));
        }
        let r = self.record(id, list, category, note)?;
        match kind {
            HashKind::Pdq => self.pdq.push((digest.try_into().unwrap_or([0; 32]), r)),
            HashKind::Md5 => self.md5.push((digest.try_into().unwrap_or([0; 16]), r)),
            HashKind::Sha1 => self.sha1.push((digest.try_into().unwrap_or([0; 20]), r)),
            HashKind::Sha256 => self.sha256.push((digest.try_into().unwrap_or([0; 32]), r)),
        }
        self.count(kind, r, 1);
        Ok(())
    }

    /// Adds `n` (1 or -1) to the count of record `r`'s list and `kind`.
    fn count(&mut self, kind: HashKind, r: u32, n: i64) {
        let list = self.records[r as usize].list as usize;
        if list >= self.counts.len() {
            self.counts.resize(list + 1, [0; 4]);
        }
        let c = &mut self.counts[list][kind_code(kind) as usize];
        *c = c.saturating_add_signed(n);
    }

    /// How record `r` compares for duplicates: list and id.
    fn id_key(&self, r: u32) -> (u16, IdKey<'_>) {
        let rec = &self.records[r as usize];
        let r = r as usize;
        let id = if self.line_ids[r / 64] & (1 << (r % 64)) != 0 {
            IdKey::Absent
        } else if rec.id & ID_IS_STRING != 0 {
            IdKey::Text(read_string(&self.strings, (rec.id & 0xffff_ffff) as usize).unwrap_or(""))
        } else {
            IdKey::Number(rec.id)
        };
        (rec.list, id)
    }

    /// The id of record `r` as stored (a line number stands in for a missing one).
    fn id_text(&self, r: u32) -> Cow<'_, str> {
        let rec = &self.records[r as usize];
        if rec.id & ID_IS_STRING != 0 {
            Cow::Borrowed(read_string(&self.strings, (rec.id & 0xffff_ffff) as usize).unwrap_or(""))
        } else {
            Cow::Owned(rec.id.to_string())
        }
    }

    /// Drops every entry that repeats an earlier one: same kind, hash, list
    /// and id (entries without an id repeat one another when kind, hash and
    /// list agree). The first keeps its category and note. Returns the
    /// dropped record numbers, sorted. Sorts the entries, which `write`
    /// then need not do again.
    pub fn drop_duplicates(&mut self) -> Vec<u32> {
        let mut pdq = std::mem::take(&mut self.pdq);
        let mut md5 = std::mem::take(&mut self.md5);
        let mut sha1 = std::mem::take(&mut self.sha1);
        let mut sha256 = std::mem::take(&mut self.sha256);
        let mut out = Vec::new();
        for (kind, gone) in [
            (HashKind::Pdq, self.repeats(&mut pdq)),
            (HashKind::Md5, self.repeats(&mut md5)),
            (HashKind::Sha1, self.repeats(&mut sha1)),
            (HashKind::Sha256, self.repeats(&mut sha256)),
        ] {
            for &r in &gone {
                self.count(kind, r, -1);
            }
            out.extend(gone);
        }
        (self.pdq, self.md5, self.sha1, self.sha256) = (pdq, md5, sha1, sha256);
        out.sort_unstable();
        self.dropped += out.len();
        out
    }

    /// Sorts one kind's entries and removes the repeats; returns their records.
    fn repeats<const W: usize>(&self, entries: &mut Vec<([u8; W], u32)>) -> Vec<u32> {
        sort_entries(entries);
        let mut repeats = Vec::new();
        let mut run = Vec::new();
        let mut i = 0;
        while i < entries.len() {
            let mut j = i + 1;
            while j < entries.len() && entries[j].0 == entries[i].0 {
                j += 1;
            }
            if j - i > 1 {
                run.clear();
                run.extend(entries[i..j].iter().map(|e| (self.id_key(e.1), e.1)));
                // By list and id, then record: the first of equals is kept.
                run.sort_unstable();
                repeats.extend(run.windows(2).filter(|w| w[0].0 == w[1].0).map(|w| w[1].1));
            }
            i = j;
        }
        if !repeats.is_empty() {
            let gone: HashSet<u32> = repeats.iter().copied().collect();
            entries.retain(|e| !gone.contains(&e.1));
        }
        repeats
    }

    /// Drops the entries for which `f(kind, hash, list, id)` is true (e.g.
    /// those already in an index); `id()` gives the entry's id as stored
    /// (formatted only if asked for). Returns the dropped record numbers,
    /// sorted.
    pub fn drop_where(
        &mut self,
        mut f: impl FnMut(HashKind, &[u8], &str, &dyn Fn() -> String) -> bool,
    ) -> Vec<u32> {
        let mut gone: Vec<(HashKind, u32)> = Vec::new();
        let mut pdq = std::mem::take(&mut self.pdq);
        let mut md5 = std::mem::take(&mut self.md5);
        let mut sha1 = std::mem::take(&mut self.sha1);
        let mut sha256 = std::mem::take(&mut self.sha256);
        let mut check = |kind: HashKind, key: &[u8], r: u32| {
            let list = self.lists.names[self.records[r as usize].list as usize].as_str();
            let drop = f(kind, key, list, &|| self.id_text(r).into_owned());
            if drop {
                gone.push((kind, r));
            }
            !drop
        };
        pdq.retain(|e| check(HashKind::Pdq, &e.0, e.1));
        md5.retain(|e| check(HashKind::Md5, &e.0, e.1));
        sha1.retain(|e| check(HashKind::Sha1, &e.0, e.1));
        sha256.retain(|e| check(HashKind::Sha256, &e.0, e.1));
        (self.pdq, self.md5, self.sha1, self.sha256) = (pdq, md5, sha1, sha256);
        for &(kind, r) in &gone {
            self.count(kind, r, -1);
        }
        let mut out: Vec<u32> = gone.into_iter().map(|(_, r)| r).collect();
        out.sort_unstable();
        self.dropped += out.len();
        out
    }

    /// Entries held, per list and kind.
    pub fn entry_counts(&self) -> BTreeMap<String, BTreeMap<HashKind, u64>> {
        let mut out = BTreeMap::new();
        for (name, counts) in self.lists.names.iter().zip(&self.counts) {
            let kinds: BTreeMap<HashKind, u64> = HashKind::ALL
                .into_iter()
                .map(|k| (k, counts[kind_code(k) as usize]))
                .filter(|&(_, n)| n > 0)
                .collect();
            if !kinds.is_empty() {
                out.insert(name.clone(), kinds);
            }
        }
        out
    }

    /// Writes the segment to `path` (a new file; the caller renames it into
    /// place) and fsyncs it. Returns (file length, header checksum).
    ///
    /// A writer thread writes and checksums the sections while this thread
    /// builds the next ones (sorting, merging, MIH tables); sections reach
    /// the file in the same order as ever, so the bytes are unchanged.
    pub fn write(self, path: &Path) -> Result<(u64, u64)> {
        let entry_count = self.len() as u64;
        let w = ContainerWriter::create(path, MAGIC_SEGMENT, VERSION, 64)?;
        // A few sections in flight bound the memory held for the writer.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Section>(4);
        let writer = std::thread::spawn(move || -> Result<ContainerWriter> {
            let mut w = w;
            for (id, param, body) in rx {
                w.section(id, param, body.bytes())?;
            }
            Ok(w)
        });
        let produced = self.produce(&tx);
        drop(tx);
        let written = match writer.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        match (produced, written) {
            // The writer's own error explains a send that failed.
            (_, Err(e)) => Err(e),
            (Err(e), Ok(_)) => Err(e),
            (Ok(()), Ok(w)) => w.finish(entry_count),
        }
    }

    /// Builds every section in file order and hands it to the writer.
    fn produce(mut self, tx: &SyncSender<Section>) -> Result<()> {
        let send = |id: u32, param: u32, body: Box<dyn SectionBytes>| {
            // A closed channel means the writer failed; `write` reports its error.
            tx.send((id, param, body))
                .map_err(|_| IndexError::Limit("segment writer stopped".into()))
        };
        send(
            section::STRINGS,
            0,
            Box::new(std::mem::take(&mut self.strings)),
        )?;
        let mut names = Vec::new();
        for l in &self.lists.names {
            push_string(&mut names, l);
        }
        send(section::LISTS, 0, Box::new(names))?;
        let mut names = Vec::new();
        for c in &self.categories.names {
            push_string(&mut names, c);
        }
        send(section::CATEGORIES, 0, Box::new(names))?;

        let records = std::mem::take(&mut self.records);
        let pdq = std::mem::take(&mut self.pdq);
        let pdq_keys = Arc::new(build_table(pdq, &records));
        send_table(&send, HashKind::Pdq, &pdq_keys)?;
        let md5 = build_table(std::mem::take(&mut self.md5), &records);
        send_table(&send, HashKind::Md5, &Arc::new(md5))?;
        let sha1 = build_table(std::mem::take(&mut self.sha1), &records);
        send_table(&send, HashKind::Sha1, &Arc::new(sha1))?;
        let sha256 = build_table(std::mem::take(&mut self.sha256), &records);
        send_table(&send, HashKind::Sha256, &Arc::new(sha256))?;
        drop(records);
        if pdq_keys.keys.len() >= mih::MIH_MIN_ROWS {
            write_mih(&send, &pdq_keys.keys)?;
        }
        Ok(())
    }
}

/// A section for the writer thread: (id, param, contents).
type Section = (u32, u32, Box<dyn SectionBytes>);

/// Owned section contents viewed as bytes.
trait SectionBytes: Send {
    fn bytes(&self) -> &[u8];
}

impl<T: bytemuck::Pod + Send> SectionBytes for Vec<T> {
    fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(self)
    }
}

/// One section of a kind's table. The writer thread holds the table
/// through an `Arc` rather than a copy: the PDQ table, hundreds of MB, is
/// read by the MIH build at the same time.
struct SharedPart<const W: usize>(Arc<Table<W>>, u32);

impl<const W: usize> SectionBytes for SharedPart<W> {
    fn bytes(&self) -> &[u8] {
        match self.1 {
            section::KEYS => bytemuck::cast_slice(&self.0.keys),
            section::RECORDS => bytemuck::cast_slice(&self.0.primary),
            _ => &self.0.overflow,
        }
    }
}

/// One kind's merged table: distinct sorted keys, the primary record of
/// each (encoded), and the OVERFLOW entries.
struct Table<const W: usize> {
    keys: Vec<[u8; W]>,
    primary: Vec<[u8; RECORD_LEN]>,
    overflow: Vec<u8>,
}

/// Sends a kind's KEYS, RECORDS and (if any) OVERFLOW sections; nothing
/// for a kind without entries.
fn send_table<const W: usize>(
    send: &impl Fn(u32, u32, Box<dyn SectionBytes>) -> Result<()>,
    kind: HashKind,
    t: &Arc<Table<W>>,
) -> Result<()> {
    if t.keys.is_empty() {
        return Ok(());
    }
    let code = kind_code(kind);
    for id in [section::KEYS, section::RECORDS, section::OVERFLOW] {
        if id != section::OVERFLOW || !t.overflow.is_empty() {
            send(id, code, Box::new(SharedPart(Arc::clone(t), id)))?;
        }
    }
    Ok(())
}

/// Sorts entries by key, merges duplicates (first record primary, the rest
/// in OVERFLOW). The sorted entries are cut into ranges at key boundaries,
/// merged in parallel into their place in the output.
fn build_table<const W: usize>(
    mut entries: Vec<([u8; W], u32)>,
    records: &[RawRecord],
) -> Table<W> {
    if entries.is_empty() {
        return Table {
            keys: Vec::new(),
            primary: Vec::new(),
            overflow: Vec::new(),
        };
    }
    sort_entries(&mut entries);
    let n = entries.len();
    let parts = (n / (1 << 16)).clamp(1, 256);
    let mut cuts = vec![0usize];
    for p in 1..parts {
        let mut c = (n * p / parts).max(*cuts.last().unwrap_or(&0));
        // Never split a run of equal keys.
        while c > 0 && c < n && entries[c].0 == entries[c - 1].0 {
            c += 1;
        }
        cuts.push(c);
    }
    cuts.push(n);
    cuts.dedup();
    let ranges: Vec<&[([u8; W], u32)]> = cuts.windows(2).map(|c| &entries[c[0]..c[1]]).collect();
    let distinct: Vec<usize> = ranges
        .par_iter()
        .map(|r| 1 + r.windows(2).filter(|w| w[0].0 != w[1].0).count())
        .collect();
    let total: usize = distinct.iter().sum();
    let mut keys = vec![[0u8; W]; total];
    let mut primary = vec![[0u8; RECORD_LEN]; total];
    let mut jobs = Vec::with_capacity(ranges.len());
    let (mut ks, mut ps): (&mut [[u8; W]], &mut [[u8; RECORD_LEN]]) = (&mut keys, &mut primary);
    let mut base = 0usize;
    for (r, &d) in ranges.iter().zip(&distinct) {
        let (k, krest) = ks.split_at_mut(d);
        let (p, prest) = ps.split_at_mut(d);
        jobs.push((*r, k, p, base));
        ks = krest;
        ps = prest;
        base += d;
    }
    let overflows: Vec<Vec<u8>> = jobs
        .into_par_iter()
        .map(|(entries, keys, primary, base)| {
            let mut overflow = Vec::new();
            let mut i = 0;
            let mut row = 0;
            while i < entries.len() {
                // Records are gathered at random (entries are in key
                // order): load them a few entries ahead.
                if let Some(e) = entries.get(i + 16) {
                    if let Some(r) = records.get(e.1 as usize) {
                        mih::prefetch(r);
                    }
                }
                let key = entries[i].0;
                let mut j = i + 1;
                while j < entries.len() && entries[j].0 == key {
                    j += 1;
                }
                let mut rec = records[entries[i].1 as usize];
                if j - i > 1 {
                    rec.id |= ID_HAS_OVERFLOW;
                    let global = (base + row) as u32;
                    for e in &entries[i + 1..j] {
                        let mut b = [0u8; OVERFLOW_LEN];
                        b[0..4].copy_from_slice(&global.to_le_bytes());
                        b[8..24].copy_from_slice(&records[e.1 as usize].encode());
                        overflow.extend_from_slice(&b);
                    }
                }
                keys[row] = key;
                primary[row] = rec.encode();
                row += 1;
                i = j;
            }
            overflow
        })
        .collect();
    drop(entries);
    Table {
        keys,
        primary,
        overflow: overflows.concat(),
    }
}

/// Sorts by (key, record number), a total order (record numbers are
/// unique), so the result does not depend on the method. Keys are
/// distributed by their first byte (256 output streams stay in cache),
/// then each of those 256 buckets is sorted in parallel the same way by the
/// second byte and the small sub-buckets sorted.
fn sort_entries<const W: usize>(entries: &mut Vec<([u8; W], u32)>) {
    // Already sorted by `drop_duplicates`: nothing to do.
    if entries.is_sorted() {
        return;
    }
    if entries.len() < 1 << 16 {
        entries.sort_unstable();
        return;
    }
    let mut out = vec![([0u8; W], 0u32); entries.len()];
    let counts = scatter_by_digit(entries, &mut out, |e| e.0[0] as usize);
    let mut rest: &mut [([u8; W], u32)] = &mut out;
    let mut buckets = Vec::with_capacity(256);
    for c in counts {
        let (head, tail) = rest.split_at_mut(c);
        buckets.push(head);
        rest = tail;
    }
    buckets.into_par_iter().for_each(|b| {
        if b.len() < 1 << 10 {
            b.sort_unstable();
            return;
        }
        let mut tmp = b.to_vec();
        let counts = scatter_by_digit(&tmp, b, |e| e.0[1] as usize);
        tmp.clear();
        let mut rest: &mut [([u8; W], u32)] = b;
        for c in counts {
            let (head, tail) = rest.split_at_mut(c);
            head.sort_unstable();
            rest = tail;
        }
    });
    *entries = out;
}

/// Writes the MIH sections; the tables of two substrings are built in
/// parallel (bounded memory, both cores busy) while the writer thread
/// writes the previous two.
fn write_mih(
    send: &impl Fn(u32, u32, Box<dyn SectionBytes>) -> Result<()>,
    keys: &[[u8; 32]],
) -> Result<()> {
    let layout = mih::default_layout();
    let mut desc = Vec::with_capacity(8 + 8 * layout.len());
    desc.extend_from_slice(&(layout.len() as u32).to_le_bytes());
    desc.extend_from_slice(&0u32.to_le_bytes());
    for s in &layout {
        desc.extend_from_slice(&s.start.to_le_bytes());
        desc.extend_from_slice(&s.len.to_le_bytes());
    }
    send(section::MIH_LAYOUT, 0, Box::new(desc))?;
    for (pair_no, pair) in layout.chunks(2).enumerate() {
        let tables: Vec<mih::SubstringTable> = pair
            .par_iter()
            .map(|&s| mih::build_substring(keys, s))
            .collect();
        for (k, t) in tables.into_iter().enumerate() {
            let j = (pair_no * 2 + k) as u32;
            send(section::MIH_OFFSETS, j, Box::new(t.offsets))?;
            if !t.lows.is_empty() {
                send(section::MIH_LOWS, j, Box::new(t.lows))?;
            }
            send(section::MIH_ROWS, j, Box::new(t.rows))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parallel sort and merge equal a plain sort and sequential merge,
    /// with many duplicate keys spread over the range cuts.
    #[test]
    fn build_table_equals_sequential_merge() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let n = 200_000u32;
        let records: Vec<RawRecord> = (0..n)
            .map(|i| RawRecord {
                id: i as u64,
                list: (i % 3) as u16,
                category: 0,
                note: i % 5,
            })
            .collect();
        let entries: Vec<([u8; 20], u32)> = (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let mut k = [0u8; 20];
                // 40k distinct keys: about five entries per key.
                k[..8].copy_from_slice(
                    &(x % 40_000)
                        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                        .to_be_bytes(),
                );
                (k, i)
            })
            .collect();
        let t = build_table(entries.clone(), &records);
        let mut sorted = entries;
        sorted.sort_unstable();
        let (mut keys, mut primary, mut overflow) = (Vec::new(), Vec::new(), Vec::new());
        let mut i = 0;
        while i < sorted.len() {
            let mut j = i + 1;
            while j < sorted.len() && sorted[j].0 == sorted[i].0 {
                j += 1;
            }
            let row = keys.len() as u32;
            let mut rec = records[sorted[i].1 as usize];
            if j - i > 1 {
                rec.id |= ID_HAS_OVERFLOW;
            }
            for e in &sorted[i + 1..j] {
                overflow.extend_from_slice(&row.to_le_bytes());
                overflow.extend_from_slice(&[0; 4]);
                overflow.extend_from_slice(&records[e.1 as usize].encode());
            }
            keys.push(sorted[i].0);
            primary.push(rec.encode());
            i = j;
        }
        assert!(overflow.len() > 100_000);
        assert_eq!(t.keys, keys);
        assert_eq!(t.primary, primary);
        assert_eq!(t.overflow, overflow);
    }

    /// Repeats (same kind, hash, list and id, or no id on both) are dropped,
    /// the first kept; the same hash in another list, under another id or
    /// of another kind stays.
    #[test]
    fn drop_duplicates_keeps_the_first_of_each_entry() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let mut s = SegmentBuilder::new();
        let push = |s: &mut SegmentBuilder, kind, key: &[u8; 32], id: EntryId<'_>, list| {
            s.push_with_id(kind, key, id, list, "", None).unwrap()
        };
        push(&mut s, HashKind::Pdq, &a, EntryId::Text("x"), "l"); // 0
        push(&mut s, HashKind::Pdq, &a, EntryId::Text("x"), "l"); // 1: repeat of 0
        push(&mut s, HashKind::Pdq, &a, EntryId::Text("x"), "m"); // 2: other list
        push(&mut s, HashKind::Sha256, &a, EntryId::Text("x"), "l"); // 3: other kind
        push(&mut s, HashKind::Pdq, &a, EntryId::Text("y"), "l"); // 4: other id
        push(&mut s, HashKind::Pdq, &b, EntryId::Number(7), "l"); // 5: no id
        push(&mut s, HashKind::Pdq, &b, EntryId::Number(9), "l"); // 6: no id: repeat of 5
        push(&mut s, HashKind::Pdq, &b, EntryId::Text("7"), "l"); // 7: id "7" given
        push(&mut s, HashKind::Pdq, &a, EntryId::Text("x"), "l"); // 8: repeat of 0
        assert_eq!(s.drop_duplicates(), [1, 6, 8]);
        assert_eq!(s.len(), 6);
        assert_eq!(s.records_pushed(), 9);
        assert!(s.drop_duplicates().is_empty());
        let counts = s.entry_counts();
        assert_eq!(counts["l"][&HashKind::Pdq], 4);
        assert_eq!(counts["l"][&HashKind::Sha256], 1);
        assert_eq!(counts["m"][&HashKind::Pdq], 1);
        push(&mut s, HashKind::Pdq, &b, EntryId::Text("x"), "l");
        assert_eq!(s.entry_counts()["l"][&HashKind::Pdq], 5);
        // Drop what an index already holds.
        let gone = s.drop_where(|kind, key, list, id| {
            kind == HashKind::Pdq && key == a && list == "l" && id() == "y"
        });
        assert_eq!(gone, [4]);
        assert_eq!(s.len(), 6);
        assert_eq!(s.entry_counts()["l"][&HashKind::Pdq], 4);
        // The written segment holds exactly what is left.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("seg");
        s.write(&p).unwrap();
        let seg = crate::segment::Segment::open(&p).unwrap();
        seg.verify().unwrap();
        assert_eq!(seg.entry_count(), 6);
        assert_eq!(seg.record_count(HashKind::Pdq), 5);
    }
}
