//! A read-only segment: the parser works over any byte buffer
//! (`Segment<D: AsRef<[u8]>>`, as fst's `Fst<D>`), and only
//! [`Segment::open`] maps a file. So the parser can be tested and fuzzed
//! on plain bytes, and nothing in it depends on where the bytes live.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use sigil_core::HashKind;

use crate::error::{IndexError, Result};
use crate::format::{section, Container, MAGIC_SEGMENT};
use crate::mih::{self, Substring, SubstringView, OFFSETS_LEN};
use crate::record::{
    kind_code, parse_names, read_string, RawRecord, ID_HAS_OVERFLOW, ID_IS_STRING, OVERFLOW_LEN,
    RECORD_LEN,
};

#[cfg(target_endian = "big")]
compile_error!("the sigil index format is little-endian and read by casting mapped bytes; big-endian targets are not supported");

#[derive(Clone, Debug)]
struct TableRanges {
    n: usize,
    width: usize,
    keys: Range<usize>,
    records: Range<usize>,
    overflow: Range<usize>,
}

#[derive(Clone, Debug)]
struct MihRanges {
    sub: Substring,
    offsets: Range<usize>,
    lows: Range<usize>,
    rows: Range<usize>,
}

/// One resolved entry of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryRef<'a> {
    pub id: std::borrow::Cow<'a, str>,
    pub list: &'a str,
    pub category: &'a str,
    pub note: Option<&'a str>,
}

/// A validated segment over the bytes `D` (a memory map of the file by
/// default). Parsing reads the header, the section table and the (small)
/// list and category name tables only.
pub struct Segment<D = Mmap> {
    path: PathBuf,
    data: D,
    container: Container,
    lists: Vec<String>,
    categories: Vec<String>,
    strings: Range<usize>,
    tables: [Option<TableRanges>; 4],
    mih: Vec<MihRanges>,
}

const CORRUPT_NAME: &str = "?";

fn range(s: crate::format::SectionEntry) -> Range<usize> {
    s.offset as usize..(s.offset + s.len) as usize
}

/// Bytes aligned as [`Segment::from_bytes`] needs (a memory map is
/// page-aligned; a `Vec<u8>` need not be): for tests and fuzzing, a copy
/// of any byte slice.
pub struct AlignedBytes {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBytes {
    pub fn copy_from(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        AlignedBytes {
            words,
            len: bytes.len(),
        }
    }
}

impl AsRef<[u8]> for AlignedBytes {
    fn as_ref(&self) -> &[u8] {
        &bytemuck::cast_slice::<u64, u8>(&self.words)[..self.len]
    }
}

impl Segment<Mmap> {
    /// Maps and validates a segment file.
    pub fn open(path: &Path) -> Result<Segment> {
        let file = File::open(path).map_err(|e| IndexError::io(path, "open", e))?;
        let len = file
            .metadata()
            .map_err(|e| IndexError::io(path, "stat", e))?
            .len();
        if len == 0 {
            return Err(IndexError::corrupt(path, "file is empty (zero length)"));
        }
        // SAFETY: index files are written once to a temporary name, fsynced and
        // renamed into place; sigil never truncates or rewrites a published
        // file, so the mapping stays valid for its lifetime. (A third party
        // truncating the file is outside what any mmap reader can defend against.)
        let map = unsafe { Mmap::map(&file) }.map_err(|e| IndexError::io(path, "mmap", e))?;
        // A search reads thousands of random cache lines spread over the
        // whole file; with 4 KiB pages nearly every one is also a TLB miss.
        // With this hint, Linux reads a cold file into 2 MiB page-cache
        // folios and maps them whole (filesystems with large folios, e.g.
        // ext4 and xfs on 6.x kernels). It is only a hint: where it is
        // unsupported nothing changes, so its result is ignored.
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        Self::from_bytes(path, map)
    }
}

impl<D: AsRef<[u8]>> Segment<D> {
    /// Validates the segment held in `data` (`path` only names it in
    /// errors). Sections are read in place by casting (the MIH tables are
    /// `u32` arrays), so `data` must be 4-byte aligned (a memory map is; see
    /// [`AlignedBytes`]): a misaligned buffer is refused, never misread.
    pub fn from_bytes(path: &Path, data: D) -> Result<Segment<D>> {
        let corrupt = |r: String| IndexError::corrupt(path, r);
        let bytes: &[u8] = data.as_ref();
        if bytes.is_empty() {
            return Err(corrupt("file is empty (zero length)".into()));
        }
        let container = Container::parse(path, bytes, MAGIC_SEGMENT)?;
        let names = |id: u32, what: &str| -> Result<Vec<String>> {
            match container.find(id, 0) {
                None => Ok(Vec::new()),
                Some(s) => {
                    let data = &bytes[range(s)];
                    if xxhash_rust::xxh3::xxh3_64(data) != s.checksum {
                        return Err(corrupt(format!("checksum mismatch in the {what} table")));
                    }
                    parse_names(data).ok_or_else(|| corrupt(format!("malformed {what} table")))
                }
            }
        };
        let lists = names(section::LISTS, "list name")?;
        let categories = names(section::CATEGORIES, "category")?;
        let strings = container
            .find(section::STRINGS, 0)
            .map(range)
            .unwrap_or(0..0);
        let mut tables: [Option<TableRanges>; 4] = Default::default();
        for kind in HashKind::ALL {
            let code = kind_code(kind);
            let Some(keys) = container.find(section::KEYS, code) else {
                continue;
            };
            let width = kind.byte_len();
            if keys.len.checked_rem(width as u64) != Some(0) {
                return Err(corrupt(format!(
                    "{kind} key section length {} is not a multiple of {width}",
                    keys.len
                )));
            }
            let n = (keys.len / width as u64) as usize;
            let records = container
                .find(section::RECORDS, code)
                .ok_or_else(|| corrupt(format!("{kind} keys without a record section")))?;
            if records.len != (n * RECORD_LEN) as u64 {
                return Err(corrupt(format!(
                    "{kind} record section holds {} bytes, expected {} for {n} keys",
                    records.len,
                    n * RECORD_LEN
                )));
            }
            let overflow = container
                .find(section::OVERFLOW, code)
                .map(range)
                .unwrap_or(0..0);
            if overflow.len().checked_rem(OVERFLOW_LEN) != Some(0) {
                return Err(corrupt(format!(
                    "{kind} overflow section has a partial entry"
                )));
            }
            tables[code as usize] = Some(TableRanges {
                n,
                width,
                keys: range(keys),
                records: range(records),
                overflow,
            });
        }
        let mut mih = Vec::new();
        if let Some(layout) = container.find(section::MIH_LAYOUT, 0) {
            let n = tables[0]
                .as_ref()
                .map(|t| t.n)
                .ok_or_else(|| corrupt("MIH tables without PDQ keys".into()))?;
            let d = &bytes[range(layout)];
            if d.len() < 8 {
                return Err(corrupt("MIH layout section too short".into()));
            }
            let m = u32::from_le_bytes(d[0..4].try_into().unwrap_or_default()) as usize;
            if m == 0 || m > mih::MAX_SUBSTRINGS || d.len() != 8 + 8 * m {
                return Err(corrupt(format!(
                    "MIH layout declares {m} substrings in {} bytes",
                    d.len()
                )));
            }
            let subs: Vec<Substring> = (0..m)
                .map(|j| Substring {
                    start: u32::from_le_bytes(
                        d[8 + 8 * j..12 + 8 * j].try_into().unwrap_or_default(),
                    ),
                    len: u32::from_le_bytes(
                        d[12 + 8 * j..16 + 8 * j].try_into().unwrap_or_default(),
                    ),
                })
                .collect();
            if !mih::layout_is_valid(&subs) {
                return Err(corrupt(format!("invalid MIH layout {subs:?}")));
            }
            // Pigeonhole needs disjoint substrings covering bits once at most.
            let mut covered = [false; 256];
            for s in &subs {
                for b in s.start..s.start + s.len {
                    if std::mem::replace(&mut covered[b as usize], true) {
                        return Err(corrupt("MIH substrings overlap".into()));
                    }
                }
            }
            for (j, sub) in subs.into_iter().enumerate() {
                let sect = |id: u32, what: &str| {
                    container.find(id, j as u32).map(range).ok_or_else(|| {
                        corrupt(format!("MIH substring {j} lacks its {what} section"))
                    })
                };
                let offsets = sect(section::MIH_OFFSETS, "offsets")?;
                let rows = sect(section::MIH_ROWS, "rows")?;
                let lows = if sub.low_bits() > 0 {
                    sect(section::MIH_LOWS, "low bits")?
                } else {
                    0..0
                };
                if offsets.len() != OFFSETS_LEN * 4
                    || rows.len() != n * 4
                    || (sub.low_bits() > 0 && lows.len() != n)
                {
                    return Err(corrupt(format!(
                        "MIH substring {j} section sizes do not match {n} keys"
                    )));
                }
                mih.push(MihRanges {
                    sub,
                    offsets,
                    lows,
                    rows,
                });
            }
        }
        let seg = Segment {
            path: path.to_path_buf(),
            data,
            container,
            lists,
            categories,
            strings,
            tables,
            mih,
        };
        // The casts used by searches must succeed (sections are 64-aligned
        // in a page-aligned mapping, so they do unless the file lies).
        if seg.try_pdq_keys().is_none() || seg.mih.iter().any(|m| seg.try_view(m).is_none()) {
            return Err(IndexError::corrupt(path, "misaligned section"));
        }
        Ok(seg)
    }

    fn bytes(&self) -> &[u8] {
        self.data.as_ref()
    }

    /// The file this segment was mapped from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Address and length of the mapping (for [`crate::residency`]).
    pub(crate) fn mapped_range(&self) -> (usize, usize) {
        (self.bytes().as_ptr() as usize, self.bytes().len())
    }

    /// File length in bytes.
    pub fn file_len(&self) -> u64 {
        self.container.file_len
    }

    /// Header checksum (the manifest records it to detect a swapped file).
    pub fn header_checksum(&self) -> u64 {
        self.container.header_checksum
    }

    /// Entries (records) in the segment, duplicates included.
    pub fn entry_count(&self) -> u64 {
        self.container.entry_count
    }

    /// Distinct keys of a kind.
    pub fn key_count(&self, kind: HashKind) -> usize {
        self.tables[kind_code(kind) as usize]
            .as_ref()
            .map_or(0, |t| t.n)
    }

    /// Records (entries) of a kind, duplicates of a key included.
    pub fn record_count(&self, kind: HashKind) -> u64 {
        self.tables[kind_code(kind) as usize]
            .as_ref()
            .map_or(0, |t| (t.n + t.overflow.len() / OVERFLOW_LEN) as u64)
    }

    /// Whether the PDQ keys have MIH tables.
    pub fn has_mih(&self) -> bool {
        !self.mih.is_empty()
    }

    /// List names used in this segment.
    pub fn lists(&self) -> &[String] {
        &self.lists
    }

    fn try_pdq_keys(&self) -> Option<&[[u8; 32]]> {
        match &self.tables[0] {
            None => Some(&[]),
            Some(t) => bytemuck::try_cast_slice(&self.bytes()[t.keys.clone()]).ok(),
        }
    }

    /// The sorted distinct PDQ keys.
    pub fn pdq_keys(&self) -> &[[u8; 32]] {
        self.try_pdq_keys().unwrap_or(&[])
    }

    fn try_view(&self, m: &MihRanges) -> Option<SubstringView<'_>> {
        Some(SubstringView {
            sub: m.sub,
            offsets: bytemuck::try_cast_slice(&self.bytes()[m.offsets.clone()]).ok()?,
            lows: &self.bytes()[m.lows.clone()],
            rows: bytemuck::try_cast_slice(&self.bytes()[m.rows.clone()]).ok()?,
        })
    }

    /// The MIH substring tables (empty if the segment has none).
    pub fn mih_views(&self) -> Vec<SubstringView<'_>> {
        self.mih.iter().filter_map(|m| self.try_view(m)).collect()
    }

    /// The MIH layout.
    pub fn mih_layout(&self) -> Vec<Substring> {
        self.mih.iter().map(|m| m.sub).collect()
    }

    /// Row of an exact key, by binary search.
    pub fn find_row(&self, kind: HashKind, digest: &[u8]) -> Option<usize> {
        let t = self.tables[kind_code(kind) as usize].as_ref()?;
        if digest.len() != t.width {
            return None;
        }
        let keys = &self.bytes()[t.keys.clone()];
        let (mut lo, mut hi) = (0usize, t.n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let k = &keys[mid * t.width..(mid + 1) * t.width];
            match k.cmp(digest) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// The key bytes of a row.
    pub fn key(&self, kind: HashKind, row: usize) -> Option<&[u8]> {
        let t = self.tables[kind_code(kind) as usize].as_ref()?;
        if row >= t.n {
            return None;
        }
        let k = &self.bytes()[t.keys.clone()];
        Some(&k[row * t.width..(row + 1) * t.width])
    }

    /// All records of a row: the primary one, then its overflow records.
    pub fn records(&self, kind: HashKind, row: usize, out: &mut Vec<RawRecord>) {
        out.clear();
        let Some(t) = self.tables[kind_code(kind) as usize].as_ref() else {
            return;
        };
        if row >= t.n {
            return;
        }
        let recs = &self.bytes()[t.records.clone()];
        let mut primary = RawRecord::decode(&recs[row * RECORD_LEN..(row + 1) * RECORD_LEN]);
        let has_overflow = primary.id & ID_HAS_OVERFLOW != 0;
        primary.id &= !ID_HAS_OVERFLOW;
        out.push(primary);
        if has_overflow {
            let ov: &[[u8; OVERFLOW_LEN]] =
                bytemuck::try_cast_slice(&self.bytes()[t.overflow.clone()]).unwrap_or(&[]);
            let row32 = row as u32;
            let row_of = |e: &[u8; OVERFLOW_LEN]| u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
            let start = ov.partition_point(|e| row_of(e) < row32);
            for e in ov[start..].iter().take_while(|e| row_of(e) == row32) {
                let mut r = RawRecord::decode(&e[8..]);
                r.id &= !ID_HAS_OVERFLOW;
                out.push(r);
            }
        }
    }

    /// A record's id (see [`Segment::resolve`]).
    pub fn record_id(&self, r: &RawRecord) -> std::borrow::Cow<'_, str> {
        let pool = &self.bytes()[self.strings.clone()];
        if r.id & ID_IS_STRING != 0 {
            std::borrow::Cow::Borrowed(
                read_string(pool, (r.id & 0xffff_ffff) as usize).unwrap_or(CORRUPT_NAME),
            )
        } else {
            std::borrow::Cow::Owned(r.id.to_string())
        }
    }

    /// Resolves a record's strings. Corrupt references resolve to "?" (a
    /// search never fails on them; `verify` reports them).
    pub fn resolve(&self, r: &RawRecord) -> EntryRef<'_> {
        let pool = &self.bytes()[self.strings.clone()];
        let id = self.record_id(r);
        let note = if r.note == 0 {
            None
        } else {
            Some(read_string(pool, r.note as usize - 1).unwrap_or(CORRUPT_NAME))
        };
        EntryRef {
            id,
            list: self
                .lists
                .get(r.list as usize)
                .map_or(CORRUPT_NAME, |s| s.as_str()),
            category: self
                .categories
                .get(r.category as usize)
                .map_or(CORRUPT_NAME, |s| s.as_str()),
            note,
        }
    }

    /// List name of a record without resolving the rest (for filters).
    pub fn list_name(&self, r: &RawRecord) -> &str {
        self.lists
            .get(r.list as usize)
            .map_or(CORRUPT_NAME, |s| s.as_str())
    }

    /// Checks every section checksum and the structure a checksum cannot
    /// vouch for (sorted keys, references in range, MIH tables consistent).
    pub fn verify(&self) -> Result<()> {
        let path = &self.path;
        self.container.verify_checksums(path, self.bytes())?;
        let corrupt = |r: String| Err(IndexError::corrupt(path, r));
        let pool = &self.bytes()[self.strings.clone()];
        let mut recs = Vec::new();
        for kind in HashKind::ALL {
            let Some(t) = self.tables[kind_code(kind) as usize].as_ref() else {
                continue;
            };
            let keys = &self.bytes()[t.keys.clone()];
            for row in 1..t.n {
                if keys[(row - 1) * t.width..row * t.width]
                    >= keys[row * t.width..(row + 1) * t.width]
                {
                    return corrupt(format!("{kind} keys not strictly sorted at row {row}"));
                }
            }
            let ov: &[[u8; OVERFLOW_LEN]] =
                bytemuck::try_cast_slice(&self.bytes()[t.overflow.clone()])
                    .map_err(|_| IndexError::corrupt(path, "misaligned overflow section"))?;
            let mut prev = 0u32;
            for e in ov {
                let row = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
                if row < prev || row as usize >= t.n {
                    return corrupt(format!("{kind} overflow row {row} out of order or range"));
                }
                prev = row;
            }
            for row in 0..t.n {
                self.records(kind, row, &mut recs);
                for r in &recs {
                    if r.id & ID_IS_STRING != 0
                        && read_string(pool, (r.id & 0xffff_ffff) as usize).is_none()
                    {
                        return corrupt(format!(
                            "{kind} row {row}: id string reference out of range"
                        ));
                    }
                    if r.note != 0 && read_string(pool, r.note as usize - 1).is_none() {
                        return corrupt(format!("{kind} row {row}: note reference out of range"));
                    }
                    if r.list as usize >= self.lists.len()
                        || r.category as usize >= self.categories.len()
                    {
                        return corrupt(format!(
                            "{kind} row {row}: list or category number out of range"
                        ));
                    }
                }
            }
        }
        let n = self.key_count(HashKind::Pdq);
        for (j, v) in self.mih_views().iter().enumerate() {
            if v.offsets.first() != Some(&0) || v.offsets.last().map(|&x| x as usize) != Some(n) {
                return corrupt(format!("MIH substring {j}: offsets do not span the keys"));
            }
            if v.offsets.windows(2).any(|w| w[0] > w[1]) {
                return corrupt(format!("MIH substring {j}: offsets not ascending"));
            }
            let mut seen = vec![false; n];
            for &r in v.rows {
                match seen.get_mut(r as usize) {
                    Some(s) if !*s => *s = true,
                    _ => {
                        return corrupt(format!(
                            "MIH substring {j}: row {r} out of range or repeated"
                        ))
                    }
                }
            }
            let keys = self.pdq_keys();
            let lb = v.sub.low_bits();
            for h in 0..OFFSETS_LEN - 1 {
                let (a, b) = (v.offsets[h] as usize, v.offsets[h + 1] as usize);
                for p in a..b {
                    let val = mih::extract(
                        &mih::to_words(&keys[v.rows[p] as usize]),
                        v.sub.start,
                        v.sub.len,
                    );
                    let low_ok = lb == 0 || v.lows[p] as u32 == val & ((1 << lb) - 1);
                    if val >> lb != h as u32
                        || !low_ok
                        || (lb > 0 && p > a && v.lows[p - 1] > v.lows[p])
                    {
                        return corrupt(format!(
                            "MIH substring {j}: posting {p} does not match its key"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{EntryMeta, SegmentBuilder};

    /// The parser gives the same segment over a map and over plain bytes,
    /// and refuses bytes it cannot cast rather than misreading them.
    #[test]
    fn plain_bytes_parse_as_the_mapped_file_does() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("seg");
        let mut b = SegmentBuilder::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        // Enough keys for MIH tables (u32 sections).
        for i in 0..crate::mih::MIH_MIN_ROWS as u64 + 10 {
            let key: [u8; 32] = std::array::from_fn(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            });
            let id = i.to_string();
            let meta = EntryMeta {
                id: &id,
                list: ["a", "b"][i as usize % 2],
                category: "",
                note: None,
            };
            b.push_pdq(&key, meta).unwrap();
        }
        b.write(&p).unwrap();
        let mapped = Segment::open(&p).unwrap();
        assert!(mapped.has_mih());
        let file = std::fs::read(&p).unwrap();
        let plain = Segment::from_bytes(&p, AlignedBytes::copy_from(&file)).unwrap();
        plain.verify().unwrap();
        assert_eq!(plain.pdq_keys(), mapped.pdq_keys());
        assert_eq!(plain.lists(), mapped.lists());
        let (mut r1, mut r2) = (Vec::new(), Vec::new());
        for row in [0, 17, plain.key_count(HashKind::Pdq) - 1] {
            plain.records(HashKind::Pdq, row, &mut r1);
            mapped.records(HashKind::Pdq, row, &mut r2);
            assert_eq!(r1, r2);
            assert_eq!(plain.resolve(&r1[0]), mapped.resolve(&r2[0]));
        }
        // One byte off the alignment: refused with a reason, not misread.
        let mut shifted = vec![0u8; file.len() + 1];
        shifted[1..].copy_from_slice(&file);
        let words = AlignedBytes::copy_from(&shifted);
        let e = Segment::from_bytes(&p, &words.as_ref()[1..]).err().unwrap();
        assert!(e.to_string().contains("misaligned"), "{e}");
        assert!(Segment::from_bytes(&p, &[][..]).is_err());
    }
}
