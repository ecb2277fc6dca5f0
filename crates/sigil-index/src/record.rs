//! The 16-byte per-entry record and the string encodings shared by the
//! segment writer and reader.

use sigil_core::HashKind;

/// Record length in bytes.
pub const RECORD_LEN: usize = 16;
/// Overflow entry: u32 row, u32 reserved, record.
pub const OVERFLOW_LEN: usize = 24;
/// `id` word flag: the id is a string (low 32 bits = offset into STRINGS).
pub const ID_IS_STRING: u64 = 1 << 63;
/// `id` word flag (primary records only): the row has overflow records.
pub const ID_HAS_OVERFLOW: u64 = 1 << 62;
/// Largest id stored as a number (ids above are stored as strings).
pub const MAX_NUMERIC_ID: u64 = (1 << 62) - 1;

/// A record as stored: id word, list and category numbers, note reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RawRecord {
    pub id: u64,
    pub list: u16,
    pub category: u16,
    /// 0 = no note, else 1 + offset into STRINGS.
    pub note: u32,
}

impl RawRecord {
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[0..8].copy_from_slice(&self.id.to_le_bytes());
        b[8..10].copy_from_slice(&self.list.to_le_bytes());
        b[10..12].copy_from_slice(&self.category.to_le_bytes());
        b[12..16].copy_from_slice(&self.note.to_le_bytes());
        b
    }

    /// Decodes 16 bytes (shorter input yields zeros: corrupt files must not panic).
    pub fn decode(b: &[u8]) -> RawRecord {
        if b.len() < RECORD_LEN {
            return RawRecord::default();
        }
        RawRecord {
            id: u64::from_le_bytes(b[0..8].try_into().unwrap_or_default()),
            list: u16::from_le_bytes([b[8], b[9]]),
            category: u16::from_le_bytes([b[10], b[11]]),
            note: u32::from_le_bytes(b[12..16].try_into().unwrap_or_default()),
        }
    }
}

/// If `id` is a canonical decimal number small enough, its value (stored
/// without a string; the common case of line-number ids).
pub fn numeric_id(id: &str) -> Option<u64> {
    let b = id.as_bytes();
    if b.is_empty() || b.len() > 18 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if b.len() > 1 && b[0] == b'0' {
        return None;
    }
    id.parse::<u64>().ok().filter(|&v| v <= MAX_NUMERIC_ID)
}

/// Reads the length-prefixed string at `offset` of `pool`; `None` if it
/// lies outside the pool or is not UTF-8.
pub fn read_string(pool: &[u8], offset: usize) -> Option<&str> {
    let head = pool.get(offset..offset.checked_add(4)?)?;
    let len = u32::from_le_bytes(head.try_into().ok()?) as usize;
    let start = offset + 4;
    let bytes = pool.get(start..start.checked_add(len)?)?;
    std::str::from_utf8(bytes).ok()
}

/// Appends a length-prefixed string.
pub fn push_string(pool: &mut Vec<u8>, s: &str) {
    pool.extend_from_slice(&(s.len() as u32).to_le_bytes());
    pool.extend_from_slice(s.as_bytes());
}

/// Parses a names section (LISTS, CATEGORIES): consecutive length-prefixed strings.
pub fn parse_names(bytes: &[u8]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let s = read_string(bytes, at)?;
        at += 4 + s.len();
        out.push(s.to_owned());
        if out.len() > u16::MAX as usize + 1 {
            return None;
        }
    }
    Some(out)
}

/// Section param code of a hash kind.
pub fn kind_code(kind: HashKind) -> u32 {
    match kind {
        HashKind::Pdq => 0,
        HashKind::Md5 => 1,
        HashKind::Sha1 => 2,
        HashKind::Sha256 => 3,
    }
}
