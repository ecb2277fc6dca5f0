//! Reading one scanned file: read-only, bounded, cancellable, and checked
//! for changes.
//!
//! Files are opened read-only and non-blocking (with `O_NOATIME` on Linux
//! where permitted, so the scan does not even touch access times): a file
//! that became a FIFO since the walk saw it cannot block the open, and its
//! type is checked before a byte is read. A file over the limit for reading
//! is refused from its metadata. A file larger than the decode byte limit
//! is never held in memory: its exact digests are computed while streaming
//! it in chunks, and its first bytes say what it is. Reads go chunk by
//! chunk, checking the scan's cancel flag between chunks, and never past
//! one byte more than the size the file had at open. A file whose size or
//! modification time changes while it is read is reported as
//! `changed_during_scan` rather than hashed from a torn mix of old and new
//! bytes.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use sigil_core::decode::{sniff, MediaKind};
use sigil_core::{ExactDigests, ExactHasher};

use crate::record::ErrorCause;

/// Bytes read between two looks at the cancel flag.
const CHUNK: usize = 1 << 20;

/// Bytes of a streamed file kept to recognise its content (`sniff` reads
/// at most 400).
const HEAD: usize = 1024;

/// The file's contents, or its digests when it is too large to decode.
pub enum FileContents {
    Bytes(Vec<u8>),
    /// Over the in-memory limit: digested while streaming, not kept.
    Streamed {
        size: u64,
        digests: ExactDigests,
        /// What the first bytes say the content is.
        kind: MediaKind,
    },
}

/// How much of a file may be read, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    /// Larger files are streamed through the exact digests, not held (the
    /// decode byte limit: nothing larger would be decoded).
    pub max_in_memory: u64,
    /// Larger files are not read at all (`--max-file-bytes`).
    pub max_file_bytes: u64,
}

/// A file-level failure: cause plus message (the path is added by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFailure {
    pub cause: ErrorCause,
    pub message: String,
    /// Size, when it was known before the failure.
    pub size: Option<u64>,
}

/// Why [`read_file`] returned no contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The scan was cancelled while the file was read: no outcome (the
    /// file is not recorded, so a resumed scan reads it again).
    Cancelled,
    Failed(ReadFailure),
}

impl From<ReadFailure> for ReadError {
    fn from(f: ReadFailure) -> Self {
        ReadError::Failed(f)
    }
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

/// Whether `e` is "too many levels of symbolic links".
#[cfg(unix)]
pub(crate) fn is_loop_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

#[cfg(not(unix))]
pub(crate) fn is_loop_error(_e: &io::Error) -> bool {
    false
}

fn open_read_only(path: &Path) -> io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
        // writer forever; on a regular file it changes nothing.
        let open = |flags| {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(flags)
                .open(path)
        };
        #[cfg(target_os = "linux")]
        {
            // O_NOATIME is refused (EPERM) unless we own the file or hold
            // CAP_FOWNER; fall back to a plain read-only open then.
            match open(libc::O_NONBLOCK | libc::O_NOATIME) {
                Ok(f) => return Ok(f),
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
                Err(e) => return Err(e),
            }
        }
        open(libc::O_NONBLOCK)
    }
    #[cfg(not(unix))]
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

/// Reads `file` (of `size` bytes at open) to its end or to one byte past
/// `size`, whichever comes first, handing each chunk to `each`; returns the
/// bytes read. Checks `cancel` before every chunk.
fn read_chunks(
    mut file: &File,
    size: u64,
    buf: &mut [u8],
    cancel: &AtomicBool,
    mut each: impl FnMut(&[u8]),
) -> Result<u64, ReadError> {
    let limit = size + 1;
    let mut total = 0u64;
    while total < limit {
        if cancel.load(Ordering::Relaxed) {
            return Err(ReadError::Cancelled);
        }
        let want = (limit - total).min(buf.len() as u64) as usize;
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_failure(&e, "read failed", Some(size)).into()),
        };
        each(&buf[..n]);
        total += n as u64;
    }
    Ok(total)
}

/// Reads `path` (at most `limits.max_in_memory` bytes into memory, nothing
/// of a file over `limits.max_file_bytes`), giving up between chunks once
/// `cancel` is set.
pub fn read_file(
    path: &Path,
    limits: ReadLimits,
    exact: &ExactHasher,
    cancel: &AtomicBool,
) -> Result<FileContents, ReadError> {
    let file = open_read_only(path).map_err(|e| io_failure(&e, "cannot open", None))?;
    let before = file
        .metadata()
        .map_err(|e| io_failure(&e, "cannot stat", None))?;
    read_opened(&file, &before, limits, exact, cancel)
}

/// [`read_file`] of an open file, whose metadata at open is `before`.
fn read_opened(
    file: &File,
    before: &Metadata,
    limits: ReadLimits,
    exact: &ExactHasher,
    cancel: &AtomicBool,
) -> Result<FileContents, ReadError> {
    if !before.is_file() {
        return Err(ReadFailure {
            cause: ErrorCause::Unreadable,
            message: format!(
                "not a regular file ({}): not read",
                crate::walk::special_kind(before.file_type())
            ),
            size: None,
        }
        .into());
    }
    let size = before.len();
    if size == 0 {
        return Err(ReadFailure {
            cause: ErrorCause::EmptyFile,
            message: "file is empty (0 bytes)".into(),
            size: Some(0),
        }
        .into());
    }
    if size > limits.max_file_bytes {
        // It grew past the limit since the walk saw it.
        return Err(ReadFailure {
            cause: ErrorCause::FileTooLarge,
            message: format!(
                "{size} bytes, over --max-file-bytes {} (not read)",
                limits.max_file_bytes
            ),
            size: Some(size),
        }
        .into());
    }
    // Reads stop one byte over the size at open: that byte tells a growing
    // file apart, and the bound ends the read of a file that never stops
    // growing.
    let check = |read: u64| -> Result<(), ReadError> {
        let after = file
            .metadata()
            .map_err(|e| io_failure(&e, "cannot stat", Some(size)))?;
        unchanged(stamp(before), read, stamp(&after))?;
        Ok(())
    };
    if size > limits.max_in_memory {
        let mut hasher = exact.clone();
        let mut head = Vec::with_capacity(HEAD);
        let mut buf = vec![0u8; CHUNK];
        let read = read_chunks(file, size, &mut buf, cancel, |chunk| {
            if head.len() < HEAD {
                let take = (HEAD - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            hasher.update(chunk);
        })?;
        check(read)?;
        return Ok(FileContents::Streamed {
            size,
            digests: hasher.finish(),
            kind: sniff(&head),
        });
    }
    let mut bytes = vec![0u8; size as usize + 1];
    let mut at = 0usize;
    let mut reader = file;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(ReadError::Cancelled);
        }
        let end = (at + CHUNK).min(bytes.len());
        if at == end {
            break;
        }
        match reader.read(&mut bytes[at..end]) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_failure(&e, "read failed", Some(size)).into()),
        }
    }
    bytes.truncate(at);
    check(at as u64)?;
    Ok(FileContents::Bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ReadLimits = ReadLimits {
        max_in_memory: 4096,
        max_file_bytes: 8 << 20,
    };

    fn read(p: &Path, limits: ReadLimits, exact: &ExactHasher) -> Result<FileContents, ReadError> {
        read_file(p, limits, exact, &AtomicBool::new(false))
    }

    fn cause(r: Result<FileContents, ReadError>) -> ErrorCause {
        match r {
            Err(ReadError::Failed(f)) => f.cause,
            Err(ReadError::Cancelled) => panic!("cancelled"),
            Ok(_) => panic!("read"),
        }
    }

    #[test]
    fn reads_small_and_streams_oversized() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.bin");
        std::fs::write(&p, vec![7u8; 1000]).unwrap();
        let all = ExactHasher::new();
        match read(&p, LIMITS, &all).unwrap() {
            FileContents::Bytes(b) => assert_eq!(b, vec![7u8; 1000]),
            _ => panic!("expected bytes"),
        }
        let small = ReadLimits {
            max_in_memory: 100,
            ..LIMITS
        };
        match read(&p, small, &all).unwrap() {
            FileContents::Streamed {
                size,
                digests,
                kind,
            } => {
                assert_eq!(size, 1000);
                assert_eq!(digests, ExactDigests::of(&[7u8; 1000]));
                assert_eq!(kind, MediaKind::Other);
            }
            _ => panic!("expected streamed"),
        }
        // The hasher given decides which digests a streamed file gets.
        match read(&p, small, &ExactHasher::without_sha1()).unwrap() {
            FileContents::Streamed { digests, .. } => {
                let full = ExactDigests::of(&[7u8; 1000]);
                assert_eq!(digests.sha1, None);
                assert_eq!((digests.md5, digests.sha256), (full.md5, full.sha256));
            }
            _ => panic!("expected streamed"),
        }
        // A streamed file's first bytes say what it is.
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.resize(3 * CHUNK + 5, 1);
        std::fs::write(&p, &png).unwrap();
        match read(&p, small, &all).unwrap() {
            FileContents::Streamed { kind, digests, .. } => {
                assert_eq!(kind, MediaKind::Image(sigil_core::decode::Format::Png));
                assert_eq!(digests, ExactDigests::of(&png));
            }
            _ => panic!("expected streamed"),
        }
    }

    #[test]
    fn over_the_limit_is_refused_unread_and_cancel_stops_a_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sparse");
        std::fs::File::create(&p).unwrap().set_len(1 << 40).unwrap();
        // 1 TiB (sparse): refused from its size alone.
        assert_eq!(
            cause(read(&p, LIMITS, &ExactHasher::new())),
            ErrorCause::FileTooLarge
        );
        // Allowed, a read in progress stops at the cancel flag.
        let open = ReadLimits {
            max_in_memory: 4096,
            max_file_bytes: u64::MAX,
        };
        let cancel = AtomicBool::new(true);
        let r = read_file(&p, open, &ExactHasher::new(), &cancel);
        assert!(matches!(r, Err(ReadError::Cancelled)));
        let small = d.path().join("small");
        std::fs::write(&small, b"abc").unwrap();
        let r = read_file(&small, open, &ExactHasher::new(), &cancel);
        assert!(matches!(r, Err(ReadError::Cancelled)));
    }

    /// A file appended to after it was opened: in memory or streamed, the
    /// read stops one byte past the size at open and says the file changed.
    #[test]
    fn a_file_growing_while_read_is_changed_during_scan() {
        use std::io::Write;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("growing");
        for limits in [
            LIMITS,
            ReadLimits {
                max_in_memory: 10,
                ..LIMITS
            },
        ] {
            std::fs::write(&p, vec![1u8; 100]).unwrap();
            let file = open_read_only(&p).unwrap();
            let before = file.metadata().unwrap();
            std::fs::OpenOptions::new()
                .append(true)
                .open(&p)
                .unwrap()
                .write_all(&[2u8; 5000])
                .unwrap();
            let r = read_opened(
                &file,
                &before,
                limits,
                &ExactHasher::new(),
                &AtomicBool::new(false),
            );
            match r {
                Err(ReadError::Failed(f)) => {
                    assert_eq!(f.cause, ErrorCause::ChangedDuringScan);
                    assert!(
                        f.message.contains("100 bytes at open, 101 read"),
                        "{}",
                        f.message
                    );
                }
                _ => panic!("a growing file was read as whole"),
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_never_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pipe");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        // Without a writer, a blocking open would wait forever.
        let r = read(&p, LIMITS, &ExactHasher::new());
        match r {
            Err(ReadError::Failed(f)) => {
                assert_eq!(f.cause, ErrorCause::Unreadable);
                assert!(f.message.contains("fifo"), "{}", f.message);
            }
            _ => panic!("a fifo was read"),
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
            cause(read(&p, LIMITS, &ExactHasher::new())),
            ErrorCause::EmptyFile
        );
        let gone = d.path().join("gone.jpg");
        assert_eq!(
            cause(read(&gone, LIMITS, &ExactHasher::new())),
            ErrorCause::Vanished
        );
    }
}
