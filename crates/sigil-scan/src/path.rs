//! A scanned path as an identity: its exact bytes, and a readable form.
//!
//! File names are bytes, not text: two names may differ only in bytes that
//! are not valid UTF-8 (`x\xff.png` and `x\xfe.png`), or hold line breaks
//! and other control characters (`a\nb.png` beside `a b.png`). A record, a
//! skipped entry and the resume journal name a file by its [`PathName`]:
//!
//! - `path`, readable text on one line: the path itself when it is valid
//!   UTF-8 without control characters (a *plain* name, nearly every name),
//!   otherwise an escaped form ([`escape`]);
//! - `path_bytes`, the exact bytes in standard base64, present exactly when
//!   `path` is escaped.
//!
//! The identity of a path is its exact bytes: `path_bytes` when present,
//! else the UTF-8 bytes of `path`. Resume compares identities, and shards
//! hash the same bytes ([`crate::shard`]), so no two files ever share one.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;

/// A path's readable text and, when that text is escaped, its exact bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PathName {
    /// One line, readable: the path, or its escaped form.
    pub text: String,
    /// The exact bytes, when `text` is escaped (`None` for plain names).
    pub bytes: Option<Vec<u8>>,
}

impl PathName {
    /// The name of `path` (its bytes as the OS gave them).
    pub fn of(path: &Path) -> Self {
        Self::from_bytes(path_bytes(path).as_ref())
    }

    /// The name of a path given as bytes.
    pub fn from_bytes(raw: &[u8]) -> Self {
        match escape(raw) {
            Cow::Borrowed(text) => PathName {
                text: text.to_string(),
                bytes: None,
            },
            Cow::Owned(text) => PathName {
                text,
                bytes: Some(raw.to_vec()),
            },
        }
    }

    /// The identity: the exact bytes.
    pub fn identity(&self) -> &[u8] {
        identity(&self.text, self.bytes.as_deref())
    }
}

/// The identity of a record's `path` and `path_bytes`: the exact bytes.
pub fn identity<'a>(text: &'a str, bytes: Option<&'a [u8]>) -> &'a [u8] {
    bytes.unwrap_or(text.as_bytes())
}

/// The bytes of a path as the OS holds them: the raw bytes on Unix (where
/// names are arbitrary bytes), the OS string's encoded bytes elsewhere.
pub fn path_bytes(path: &Path) -> Cow<'_, [u8]> {
    Cow::Borrowed(path.as_os_str().as_encoded_bytes())
}

/// Whether `c` is written escaped: control characters (C0, DEL, C1), the
/// line and paragraph separators, and the bidirectional formatting
/// characters that can make a name display as another.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// The readable, one-line form of a path's bytes: valid UTF-8 stays as it
/// is; a byte that is not part of valid UTF-8 is written `\xNN` (two
/// lowercase hex digits); `\n`, `\r` and `\t` are written so; any other
/// character of [`needs_escape`] is written `\u{N}` (hex code point).
/// Borrowed when nothing needed escaping (a plain name). A backslash is not
/// escaped, so the form alone is not always reversible: `path_bytes` is
/// what holds the bytes.
pub fn escape(raw: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(raw) {
        if !s.chars().any(needs_escape) {
            return Cow::Borrowed(s);
        }
    }
    let mut out = String::with_capacity(raw.len() + 8);
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if needs_escape(c) => {
                    let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    Cow::Owned(out)
}

/// Encodes bytes as standard base64 (with padding).
pub fn to_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64.
pub fn from_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::STANDARD.decode(text)
}

/// Serde for an optional byte string as base64 (`path_bytes`).
pub(crate) mod base64_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&super::to_base64(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(t) => super::from_base64(&t)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_themselves() {
        for name in ["a.jpg", "dir/ü ñ 写真.png", "back\\slash", "", "a b.png"] {
            let n = PathName::from_bytes(name.as_bytes());
            assert_eq!((n.text.as_str(), n.bytes.as_deref()), (name, None));
            assert_eq!(n.identity(), name.as_bytes());
        }
    }

    #[test]
    fn other_names_are_escaped_and_keep_their_bytes() {
        let cases: [(&[u8], &str); 6] = [
            (b"x\xff.png", "x\\xff.png"),
            (b"x\xfe.png", "x\\xfe.png"),
            (b"a\nb.png", "a\\nb.png"),
            (b"a\r\tb\x1b\x7f", "a\\r\\tb\\u{1b}\\u{7f}"),
            ("evil\u{202e}gpj.exe".as_bytes(), "evil\\u{202e}gpj.exe"),
            (b"\xc3(\xe2\x82", "\\xc3(\\xe2\\x82"),
        ];
        for (raw, text) in cases {
            let n = PathName::from_bytes(raw);
            assert_eq!(n.text, text);
            assert!(!n.text.contains(['\n', '\r']));
            assert_eq!(n.bytes.as_deref(), Some(raw));
            assert_eq!(n.identity(), raw);
            assert_eq!(from_base64(&to_base64(raw)).unwrap(), raw);
        }
        // Distinct bytes, distinct identities, even where the text of one
        // name is the escaped text of the other.
        let literal = PathName::from_bytes(b"x\\xff.png");
        let raw = PathName::from_bytes(b"x\xff.png");
        assert_eq!(literal.text, raw.text);
        assert_ne!(literal.identity(), raw.identity());
    }

    #[cfg(unix)]
    #[test]
    fn paths_give_their_raw_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let p = Path::new(std::ffi::OsStr::from_bytes(b"/t/x\xff.png"));
        assert_eq!(PathName::of(p).identity(), b"/t/x\xff.png");
    }
}
