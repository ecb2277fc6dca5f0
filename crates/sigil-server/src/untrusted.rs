//! Client-supplied strings (request ids, content and submitter
//! references, file names, report ids, page tokens) shown in logs and
//! error messages, through one helper: [`text`]. It escapes every control
//! character (so a `"\n"` in a request id cannot start a forged log line
//! in `--log-format text`) and shows at most [`MAX_CHARS`] characters, then
//! a marker with the length left out (so a 20 MB request id makes a
//! bounded log line and a bounded error, not a 20 MB one).

use std::fmt;

/// Characters of a client string shown before it is cut.
pub const MAX_CHARS: usize = 256;

/// A client string as it may be shown: escaped and bounded (see the
/// module's doc). Formats with `{}`; allocation-free.
#[derive(Clone, Copy)]
pub struct Text<'a>(&'a str);

/// Shows `s`, a string the client chose, escaped and bounded.
pub fn text(s: &str) -> Text<'_> {
    Text(s)
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shown, (at, c)) in self.0.char_indices().enumerate() {
            if shown == MAX_CHARS {
                return write!(
                    f,
                    "...[cut: {} more bytes of {}]",
                    self.0.len() - at,
                    self.0.len()
                );
            }
            if c.is_control() || c == '\\' {
                // `\n`, `\t`, `\u{1b}`...: visible, one line, unambiguous.
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_fmt(format_args!("{c}"))?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Text<'_> {
    /// Quoted, as `{:?}` of a string would be, but bounded.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let s = text("a\nb\r\u{1b}[31mc\\d\"").to_string();
        assert_eq!(s, "a\\nb\\r\\u{1b}[31mc\\\\d\"");
        assert!(!s.chars().any(char::is_control));
        assert_eq!(text("plain é id").to_string(), "plain é id");
    }

    #[test]
    fn long_strings_are_cut_with_a_marker() {
        let long = "x".repeat(20 << 20);
        let s = text(&long).to_string();
        assert!(s.len() < 400, "{}", s.len());
        assert!(s.starts_with(&"x".repeat(MAX_CHARS)));
        assert!(s.ends_with(&format!(
            "...[cut: {} more bytes of {}]",
            long.len() - MAX_CHARS,
            long.len()
        )));
        // Exactly the limit: shown whole, no marker.
        let edge = "é".repeat(MAX_CHARS);
        assert_eq!(text(&edge).to_string(), edge);
        assert_eq!(format!("{:?}", text("a\nb")), "\"a\\nb\"");
    }
}
