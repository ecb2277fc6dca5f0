//! Reading one scanned file: read-only, bounded, and checked for changes.
//!
//! Files are opened read-only (with `O_NOATIME` on Linux where permitted, so
//! the scan does not even touch access times). A file larger than the decode
//! byte limit is never held in memory: its exact digests are computed while
//! streaming it in chunks. A file whose size or modification time changes
//! while it is read is reported as `changed_during_scan` rather than hashed
//! from a torn mix of old and new bytes.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::Path;
use std::time::SystemTime;

use sigil_core::{ExactDigests, ExactHasher};

use crate::record::ErrorCause;

/// The file's contents, or its digests when it is too large to decode.
pub enum FileContents {
    Bytes(Vec<u8>),
    /// Over the byte limit: digested while streaming, not kept.
    Oversized {
        size: u64,
        digests: ExactDigests,
    },
}

/// A file-level failure: cause plus message (the path is added by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFailure {
    pub cause: ErrorCause,
    pub message: String,
    /// Size, when it was known before the failure.
    pub size: Option<u64>,
}

fn io_failure(e: &io::Error, what: &str, size: Option<u64>) -> ReadFailure {
    let cause = match e.kind() {
        io::ErrorKind::NotFound => ErrorCause::Vanished,
        io::ErrorKind::PermissionDenied => ErrorCause::PermissionDenied,
        _ if is_loop_error(e) => ErrorCause::SymlinkLoop,
        _ => ErrorCause::Unreadable,
    };
    ReadFailure {
        cause,
        message: format!("{what}: {e}"),
        size,
    }
}

#[cfg(unix)]
fn is_loop_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

#[cfg(not(unix))]
fn is_loop_error(_e: &io::Error) -> bool {
    false
}

fn open_read_only(path: &Path) -> io::Result<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NOATIME is refused (EPERM) unless we own the file or hold
        // CAP_FOWNER; fall back to a plain read-only open then.
        match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOATIME)
            .open(path)
        {
            Ok(f) => return Ok(f),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
            Err(e) => return Err(e),
        }
    }
    File::open(path)
}

/// Size and modification time: what a change to a file shows in.
type Stamp = (u64, Option<SystemTime>);

fn stamp(m: &Metadata) -> Stamp {
    (m.len(), m.modified().ok())
}

/// Whether a file read `read` bytes between the stamps `before` and `after`
/// was read whole and unchanged; otherwise the `changed_during_scan` failure.
fn unchanged(before: Stamp, read: u64, after: Stamp) -> Result<(), ReadFailure> {
    if after == before && read == before.0 {
        return Ok(());
    }
    Err(ReadFailure {
        cause: ErrorCause::ChangedDuringScan,
        message: format!(
            "file changed while being read ({} bytes at open, {} read, {} now)",
            before.0, read, after.0
        ),
        size: Some(before.0),
    })
}

struct Counting<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

/// Reads `path` (at most `max_bytes` into memory).
pub fn read_file(
    path: &Path,
    max_bytes: u64,
    exact: &ExactHasher,
) -> Result<FileContents, ReadFailure> {
    let file = open_read_only(path).map_err(|e| io_failure(&e, "cannot open", None))?;
    let before = file
        .metadata()
        .map_err(|e| io_failure(&e, "cannot stat", None))?;
    if !before.is_file() {
        return Err(ReadFailure {
            cause: ErrorCause::Unreadable,
            message: "not a regular file".into(),
            size: None,
        });
    }
    let size = before.len();
    if size == 0 {
        return Err(ReadFailure {
            cause: ErrorCause::EmptyFile,
            message: "file is empty (0 bytes)".into(),
            size: Some(0),
        });
    }
    let changed = |read: u64, after: &Metadata| unchanged(stamp(&before), read, stamp(after)).err();
    if size > max_bytes {
        let mut reader = Counting { inner: &file, n: 0 };
        let digests = exact
            .clone()
            .digest_reader(&mut reader)
            .map_err(|e| io_failure(&e, "read failed", Some(size)))?;
        let after = file
            .metadata()
            .map_err(|e| io_failure(&e, "cannot stat", Some(size)))?;
        if let Some(f) = changed(reader.n, &after) {
            return Err(f);
        }
        return Ok(FileContents::Oversized { size, digests });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // One byte over the expected size tells a growing file apart.
    (&file)
        .take(size + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_failure(&e, "read failed", Some(size)))?;
    let after = file
        .metadata()
        .map_err(|e| io_failure(&e, "cannot stat", Some(size)))?;
    if let Some(f) = changed(bytes.len() as u64, &after) {
        return Err(f);
    }
    Ok(FileContents::Bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_small_and_streams_oversized() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.bin");
        std::fs::write(&p, vec![7u8; 1000]).unwrap();
        let all = ExactHasher::new();
        match read_file(&p, 4096, &all).unwrap() {
            FileContents::Bytes(b) => assert_eq!(b, vec![7u8; 1000]),
            _ => panic!("expected bytes"),
        }
        match read_file(&p, 100, &all).unwrap() {
            FileContents::Oversized { size, digests } => {
                assert_eq!(size, 1000);
                assert_eq!(digests, ExactDigests::of(&[7u8; 1000]));
            }
            _ => panic!("expected oversized"),
        }
        // The hasher given decides which digests an oversized file gets.
        match read_file(&p, 100, &ExactHasher::without_sha1()).unwrap() {
            FileContents::Oversized { digests, .. } => {
                let full = ExactDigests::of(&[7u8; 1000]);
                assert_eq!(digests.sha1, None);
                assert_eq!((digests.md5, digests.sha256), (full.md5, full.sha256));
            }
            _ => panic!("expected oversized"),
        }
    }

    #[test]
    fn a_file_that_grows_shrinks_or_is_rewritten_while_read_is_changed() {
        let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let t1 = t0 + std::time::Duration::from_millis(1);
        assert_eq!(unchanged((100, Some(t0)), 100, (100, Some(t0))), Ok(()));
        for (read, after) in [
            (101, (101, Some(t0))), // grew while read: one byte over the size
            (60, (60, Some(t0))),   // truncated while read
            (100, (100, Some(t1))), // rewritten in place, same size
            (100, (120, Some(t1))), // appended to after the read
        ] {
            let f = unchanged((100, Some(t0)), read, after).unwrap_err();
            assert_eq!(f.cause, ErrorCause::ChangedDuringScan, "{read} {after:?}");
            assert_eq!(f.size, Some(100));
        }
    }

    #[test]
    fn io_errors_map_to_their_causes() {
        let cause = |k: io::ErrorKind| io_failure(&io::Error::from(k), "cannot open", None).cause;
        assert_eq!(
            cause(io::ErrorKind::PermissionDenied),
            ErrorCause::PermissionDenied
        );
        assert_eq!(cause(io::ErrorKind::NotFound), ErrorCause::Vanished);
        assert_eq!(cause(io::ErrorKind::Other), ErrorCause::Unreadable);
        #[cfg(unix)]
        assert_eq!(
            io_failure(&io::Error::from_raw_os_error(libc::ELOOP), "open", None).cause,
            ErrorCause::SymlinkLoop
        );
    }

    #[test]
    fn empty_and_missing_files_are_typed_failures() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("empty.jpg");
        std::fs::write(&p, b"").unwrap();
        assert_eq!(
            read_file(&p, 10, &ExactHasher::new()).err().unwrap().cause,
            ErrorCause::EmptyFile
        );
        let gone = d.path().join("gone.jpg");
        assert_eq!(
            read_file(&gone, 10, &ExactHasher::new())
                .err()
                .unwrap()
                .cause,
            ErrorCause::Vanished
        );
    }
}
