//! Crash-safe file replacement: write a temporary file, fsync it, rename it
//! over the target, fsync the directory. A crash at any point leaves either
//! the old file or the new one, never a mixture.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{IndexError, Result};

/// Prefix of every temporary file; `compact` removes leftovers of crashed writers.
pub const TEMP_PREFIX: &str = ".tmp-";

/// A fresh temporary path in `dir` for a file that will become `final_name`.
pub fn temp_path(dir: &Path, final_name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    dir.join(format!(
        "{TEMP_PREFIX}{final_name}-{}-{nanos}",
        std::process::id()
    ))
}

/// Makes a completed rename durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(|e| IndexError::io(dir, "open directory", e))?;
    d.sync_all()
        .map_err(|e| IndexError::io(dir, "fsync directory", e))
}

/// Renames a fully written and fsynced temporary file into place, then fsyncs the directory.
pub fn publish(tmp: &Path, dest: &Path) -> Result<()> {
    std::fs::rename(tmp, dest).map_err(|e| IndexError::io(dest, "rename", e))?;
    fsync_dir(dest.parent().unwrap_or(Path::new(".")))
}

/// Writes `bytes` to `dest` atomically.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = temp_path(dir, &name);
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| IndexError::io(&tmp, "create", e))?;
        f.write_all(bytes)
            .map_err(|e| IndexError::io(&tmp, "write", e))?;
        f.sync_all().map_err(|e| IndexError::io(&tmp, "fsync", e))?;
        publish(&tmp, dest)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}
