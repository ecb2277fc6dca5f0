//! The file container shared by segment and tombstone files: a 64-byte
//! header, a section table, and 64-byte aligned sections, each with its own
//! xxh3 checksum. See `docs/index-format.md` for the byte layout.
//!
//! Validation here is constant-time in the number of entries: it reads the
//! header and the section table only. Section *contents* are checked by
//! [`Container::verify_checksums`] (`sigil index verify`).

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::{xxh3_64, Xxh3Default};

use crate::error::{IndexError, Result};

/// Format version of segment files and the MANIFEST, written and read by
/// this build.
pub const VERSION: u32 = 1;
/// Format version of tombstone files written by this build. Version 2 lets a
/// hash removal name its list (`{"by":"hash",...,"list":"ncmec"}`); version
/// 1 files (hash removals apply to every list) are still read.
pub const TOMBSTONE_VERSION: u32 = 2;

/// The versions this build reads for files with `magic`.
fn readable_versions(magic: [u8; 8]) -> std::ops::RangeInclusive<u32> {
    if magic == MAGIC_TOMBSTONES {
        1..=TOMBSTONE_VERSION
    } else {
        VERSION..=VERSION
    }
}
/// Magic of a segment file (entries).
pub const MAGIC_SEGMENT: [u8; 8] = *b"SIGILSEG";
/// Magic of a tombstone file (removals).
pub const MAGIC_TOMBSTONES: [u8; 8] = *b"SIGILTMB";
/// Fixed header length before the section table.
pub const HEADER_LEN: usize = 64;
/// One section table entry.
pub const SECTION_ENTRY_LEN: usize = 32;
/// Every section starts at a multiple of this.
pub const ALIGN: u64 = 64;
/// A sanity bound on the section table (a segment has at most ~60 sections).
pub const MAX_SECTIONS: u32 = 1024;

/// Section identifiers (the `id` field of a section table entry).
pub mod section {
    /// Length-prefixed UTF-8 strings (ids, notes), referenced by offset.
    pub const STRINGS: u32 = 1;
    /// List names: a sequence of length-prefixed strings, index = list number.
    pub const LISTS: u32 = 2;
    /// Category labels, same encoding as LISTS.
    pub const CATEGORIES: u32 = 3;
    /// Sorted distinct keys of one hash kind (param = kind code).
    pub const KEYS: u32 = 10;
    /// One 16-byte record per key (param = kind code).
    pub const RECORDS: u32 = 11;
    /// Extra records of keys with several entries, 24 bytes each, sorted by row.
    pub const OVERFLOW: u32 = 12;
    /// Multi-index hashing layout: u32 m, u32 reserved, m x (u32 start bit, u32 bit length).
    pub const MIH_LAYOUT: u32 = 13;
    /// Substring j bucket offsets: 65537 x u32 (param = j).
    pub const MIH_OFFSETS: u32 = 14;
    /// Substring j low bits of each posting, u8 (param = j).
    pub const MIH_LOWS: u32 = 15;
    /// Substring j rows of each posting, u32 (param = j).
    pub const MIH_ROWS: u32 = 16;
    /// Tombstone list (JSON array), in tombstone files.
    pub const TOMBSTONES: u32 = 20;
}

/// One entry of the section table, as validated at open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionEntry {
    pub id: u32,
    pub param: u32,
    pub offset: u64,
    pub len: u64,
    pub checksum: u64,
}

/// The validated header of a container file.
#[derive(Clone, Debug)]
pub struct Container {
    pub magic: [u8; 8],
    /// The format version of this file (see [`VERSION`], [`TOMBSTONE_VERSION`]).
    pub version: u32,
    pub entry_count: u64,
    pub file_len: u64,
    pub header_checksum: u64,
    pub sections: Vec<SectionEntry>,
}

fn rd_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn rd_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Rounds up to the section alignment.
pub fn align_up(x: u64) -> u64 {
    x.div_ceil(ALIGN) * ALIGN
}

impl Container {
    /// Parses and validates the header of `bytes` (the whole mapped file):
    /// length, magic, version, section table bounds, header checksum, and
    /// that every section lies inside the file, aligned, without overlap.
    pub fn parse(path: &Path, bytes: &[u8], expect_magic: [u8; 8]) -> Result<Container> {
        let corrupt = |r: String| IndexError::corrupt(path, r);
        if bytes.is_empty() {
            return Err(corrupt("file is empty (zero length)".into()));
        }
        if bytes.len() < HEADER_LEN {
            return Err(corrupt(format!(
                "file is {} bytes, shorter than the {HEADER_LEN}-byte header (truncated?)",
                bytes.len()
            )));
        }
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&bytes[0..8]);
        if magic != expect_magic {
            return Err(corrupt(format!(
                "bad magic {:?} (expected {:?})",
                String::from_utf8_lossy(&magic),
                String::from_utf8_lossy(&expect_magic)
            )));
        }
        let version = rd_u32(bytes, 8);
        let readable = readable_versions(expect_magic);
        if !readable.contains(&version) {
            return Err(IndexError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version,
                supported: *readable.end(),
            });
        }
        let count = rd_u32(bytes, 12);
        if count > MAX_SECTIONS {
            return Err(corrupt(format!("section count {count} is implausible")));
        }
        let file_len = rd_u64(bytes, 16);
        if file_len != bytes.len() as u64 {
            return Err(corrupt(format!(
                "header says {file_len} bytes but the file has {} (truncated or extended)",
                bytes.len()
            )));
        }
        let table_end = HEADER_LEN + count as usize * SECTION_ENTRY_LEN;
        if table_end > bytes.len() {
            return Err(corrupt(format!(
                "section table ({count} entries) runs past the end of the file"
            )));
        }
        let stored = rd_u64(bytes, 56);
        let computed = header_checksum(&bytes[..table_end]);
        if stored != computed {
            return Err(corrupt(format!(
                "header checksum mismatch (stored {stored:016x}, computed {computed:016x})"
            )));
        }
        let mut sections = Vec::with_capacity(count as usize);
        for i in 0..count as usize {
            let at = HEADER_LEN + i * SECTION_ENTRY_LEN;
            let s = SectionEntry {
                id: rd_u32(bytes, at),
                param: rd_u32(bytes, at + 4),
                offset: rd_u64(bytes, at + 8),
                len: rd_u64(bytes, at + 16),
                checksum: rd_u64(bytes, at + 24),
            };
            let end = s
                .offset
                .checked_add(s.len)
                .ok_or_else(|| corrupt(format!("section {i} offset+length overflows")))?;
            if s.offset.checked_rem(ALIGN) != Some(0)
                || s.offset < table_end as u64
                || end > file_len
            {
                return Err(corrupt(format!(
                    "section {i} (id {}, bytes {}..{end}) lies outside the file ({file_len} bytes) or is misaligned",
                    s.id, s.offset
                )));
            }
            if sections
                .iter()
                .any(|o: &SectionEntry| o.id == s.id && o.param == s.param)
            {
                return Err(corrupt(format!(
                    "duplicate section id {} param {}",
                    s.id, s.param
                )));
            }
            sections.push(s);
        }
        let mut by_offset: Vec<&SectionEntry> = sections.iter().collect();
        by_offset.sort_by_key(|s| s.offset);
        for w in by_offset.windows(2) {
            if w[0].offset + w[0].len > w[1].offset {
                return Err(corrupt("sections overlap".into()));
            }
        }
        Ok(Container {
            magic,
            version,
            entry_count: rd_u64(bytes, 24),
            file_len,
            header_checksum: stored,
            sections,
        })
    }

    /// The section with this id and param, if present.
    pub fn find(&self, id: u32, param: u32) -> Option<SectionEntry> {
        self.sections
            .iter()
            .copied()
            .find(|s| s.id == id && s.param == param)
    }

    /// Checks the checksum of every section and that every byte outside the
    /// header, the section table and the sections (the alignment padding
    /// and the reserved table space) is zero, so that a flipped byte
    /// anywhere in the file is reported (reads the whole file).
    pub fn verify_checksums(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let mut covered: Vec<(u64, u64)> = self
            .sections
            .iter()
            .map(|s| (s.offset, s.offset + s.len))
            .collect();
        let table_end = (HEADER_LEN + self.sections.len() * SECTION_ENTRY_LEN) as u64;
        covered.push((0, table_end));
        covered.sort_unstable();
        let mut pos = 0u64;
        for (start, end) in covered.into_iter().chain([(self.file_len, self.file_len)]) {
            if start > pos {
                let gap = &bytes[pos as usize..start as usize];
                if let Some(i) = gap.iter().position(|&b| b != 0) {
                    return Err(IndexError::corrupt(
                        path,
                        format!(
                            "checksum mismatch: byte {} lies in padding between sections and is {:#04x}, not zero",
                            pos as usize + i,
                            gap[i]
                        ),
                    ));
                }
            }
            pos = pos.max(end);
        }
        for s in &self.sections {
            let data = &bytes[s.offset as usize..(s.offset + s.len) as usize];
            let c = xxh3_64(data);
            if c != s.checksum {
                return Err(IndexError::corrupt(
                    path,
                    format!(
                        "checksum mismatch in section id {} param {} (stored {:016x}, computed {c:016x})",
                        s.id, s.param, s.checksum
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// xxh3 of the header (with the checksum field taken as zero) and the section table.
fn header_checksum(head: &[u8]) -> u64 {
    let mut h = Xxh3Default::new();
    h.update(&head[..56]);
    h.update(&[0u8; 8]);
    h.update(&head[HEADER_LEN..]);
    h.digest()
}

/// Streams sections into a new file; the header is written last.
///
/// The caller writes to a temporary path and renames (see `fsio`); this type
/// never touches an existing file.
pub struct ContainerWriter {
    path: PathBuf,
    out: BufWriter<File>,
    magic: [u8; 8],
    version: u32,
    sections: Vec<SectionEntry>,
    capacity: usize,
    pos: u64,
    current: Option<(u32, u32, u64, Xxh3Default)>,
}

impl ContainerWriter {
    /// Creates `path` (which must not exist) with room for `max_sections`
    /// table entries, as a file of format `version`.
    pub fn create(path: &Path, magic: [u8; 8], version: u32, max_sections: usize) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| IndexError::io(path, "create", e))?;
        let table_end = (HEADER_LEN + max_sections * SECTION_ENTRY_LEN) as u64;
        let start = align_up(table_end);
        let mut out = BufWriter::with_capacity(1 << 20, file);
        // Reserve the header and table; filled in by `finish`.
        write_zeros(&mut out, start).map_err(|e| IndexError::io(path, "write", e))?;
        Ok(ContainerWriter {
            path: path.to_path_buf(),
            out,
            magic,
            version,
            sections: Vec::new(),
            capacity: max_sections,
            pos: start,
            current: None,
        })
    }

    /// Starts a section (the previous one, if any, is closed).
    pub fn begin(&mut self, id: u32, param: u32) -> Result<()> {
        self.end()?;
        if self.sections.len() >= self.capacity {
            return Err(IndexError::Limit(format!(
                "more than {} sections in one file",
                self.capacity
            )));
        }
        let pad = align_up(self.pos) - self.pos;
        write_zeros(&mut self.out, pad).map_err(|e| IndexError::io(&self.path, "write", e))?;
        self.pos += pad;
        self.current = Some((id, param, self.pos, Xxh3Default::new()));
        Ok(())
    }

    /// Appends bytes to the current section.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        let cur = self
            .current
            .as_mut()
            .expect("ContainerWriter::write outside a section (programming error)");
        cur.3.update(data);
        self.out
            .write_all(data)
            .map_err(|e| IndexError::io(&self.path, "write", e))?;
        self.pos += data.len() as u64;
        Ok(())
    }

    /// Writes a whole section.
    pub fn section(&mut self, id: u32, param: u32, data: &[u8]) -> Result<()> {
        self.begin(id, param)?;
        self.write(data)?;
        self.end()
    }

    fn end(&mut self) -> Result<()> {
        if let Some((id, param, offset, h)) = self.current.take() {
            self.sections.push(SectionEntry {
                id,
                param,
                offset,
                len: self.pos - offset,
                checksum: h.digest(),
            });
        }
        Ok(())
    }

    /// Writes the header and table, flushes and fsyncs. Returns the file
    /// length and header checksum.
    pub fn finish(mut self, entry_count: u64) -> Result<(u64, u64)> {
        self.end()?;
        let io = |e| IndexError::io(&self.path, "write", e);
        // Pad the file end to the alignment too (keeps appended files tidy).
        let pad = align_up(self.pos) - self.pos;
        write_zeros(&mut self.out, pad).map_err(io)?;
        self.pos += pad;
        let mut head = vec![0u8; HEADER_LEN + self.sections.len() * SECTION_ENTRY_LEN];
        head[0..8].copy_from_slice(&self.magic);
        head[8..12].copy_from_slice(&self.version.to_le_bytes());
        head[12..16].copy_from_slice(&(self.sections.len() as u32).to_le_bytes());
        head[16..24].copy_from_slice(&self.pos.to_le_bytes());
        head[24..32].copy_from_slice(&entry_count.to_le_bytes());
        for (i, s) in self.sections.iter().enumerate() {
            let at = HEADER_LEN + i * SECTION_ENTRY_LEN;
            head[at..at + 4].copy_from_slice(&s.id.to_le_bytes());
            head[at + 4..at + 8].copy_from_slice(&s.param.to_le_bytes());
            head[at + 8..at + 16].copy_from_slice(&s.offset.to_le_bytes());
            head[at + 16..at + 24].copy_from_slice(&s.len.to_le_bytes());
            head[at + 24..at + 32].copy_from_slice(&s.checksum.to_le_bytes());
        }
        let c = header_checksum(&head);
        head[56..64].copy_from_slice(&c.to_le_bytes());
        self.out.flush().map_err(io)?;
        let mut file = self
            .out
            .into_inner()
            .map_err(|e| IndexError::io(&self.path, "write", e.into_error()))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| IndexError::io(&self.path, "seek", e))?;
        file.write_all(&head)
            .map_err(|e| IndexError::io(&self.path, "write", e))?;
        file.sync_all()
            .map_err(|e| IndexError::io(&self.path, "fsync", e))?;
        Ok((self.pos, c))
    }
}

fn write_zeros(out: &mut impl Write, mut n: u64) -> std::io::Result<()> {
    const Z: [u8; 4096] = [0; 4096];
    while n > 0 {
        let k = n.min(Z.len() as u64) as usize;
        out.write_all(&Z[..k])?;
        n -= k as u64;
    }
    Ok(())
}
