//! Walking the scanned trees: include/exclude globs, symlinks, shards.
//!
//! The walker only reads directory entries and metadata; it never opens a
//! file and never changes anything in the tree. Every path it reaches is
//! one event: a [`WalkItem`] for a regular file to read, a [`SkippedPath`]
//! with its [`SkipReason`] for a path deliberately not read (excluded, in
//! another shard, a symlink not followed, a FIFO, socket or device, a file
//! over `max_file_bytes`), or a [`WalkProblem`] for a path that could not
//! be walked (permission denied on a directory, a symlink loop, a broken
//! link), so the scan can record them and go on.
//!
//! Files are selected by nothing but the options: every regular file is a
//! candidate, whatever its name (its content decides what it is, see
//! `sigil_core::decode::sniff`). A file named as a root is always read
//! (globs do not apply to it; the shard does).

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::path::PathName;
use crate::record::{SkipReason, SkippedPath};
use crate::shard::Shard;

/// Default of `max_file_bytes`: 4 GiB, above which a file is not read at
/// all (its exact digests would take a read of the whole file: tens of
/// seconds at this size, minutes for the sparse or giant files a tree can
/// hold).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 4 << 30;

/// What to walk and which files to keep.
#[derive(Clone, Debug)]
pub struct WalkOptions {
    /// Globs matched against the path relative to the scan root (`*` crosses
    /// `/`, so `*.jpg` matches at any depth). Empty: every file.
    pub include: Vec<String>,
    /// Globs for files or directories to skip (a matching directory is not
    /// descended into).
    pub exclude: Vec<String>,
    /// Follow symbolic links (loops are detected and reported, not followed).
    pub follow_symlinks: bool,
    pub shard: Shard,
    /// Regular files larger than this are skipped from their metadata,
    /// unread ([`SkipReason::TooLarge`]).
    pub max_file_bytes: u64,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            include: Vec::new(),
            exclude: Vec::new(),
            follow_symlinks: false,
            shard: Shard::ALL,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
        }
    }
}

/// Why the walk options cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("invalid glob {glob:?}: {source}")]
    Glob {
        glob: String,
        #[source]
        source: globset::Error,
    },
}

/// A file to scan.
#[derive(Clone, Debug)]
pub struct WalkItem {
    /// The path as reported (the scan root joined with the relative path).
    pub path: PathBuf,
    /// Size from the directory walk (the worker re-checks it when reading).
    pub size: u64,
}

/// A path the walker could not handle.
#[derive(Clone, Debug)]
pub struct WalkProblem {
    pub path: PathBuf,
    pub kind: WalkProblemKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkProblemKind {
    SymlinkLoop,
    PermissionDenied,
    NotFound,
    Other,
}

/// What the walker produces, in a deterministic order (entries sorted by
/// name, compared as bytes).
#[derive(Clone, Debug)]
pub enum WalkEvent {
    File(WalkItem),
    Problem(WalkProblem),
    /// Reached but not read, with the reason.
    Skipped(SkippedPath),
}

/// Compiled include/exclude filters.
#[derive(Clone, Debug)]
pub struct Filters {
    /// `None`: every file.
    include: Option<GlobSet>,
    exclude: GlobSet,
}

fn build_set(globs: &[String]) -> Result<GlobSet, WalkError> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let glob = GlobBuilder::new(g)
            .build()
            .map_err(|source| WalkError::Glob {
                glob: g.clone(),
                source,
            })?;
        b.add(glob);
    }
    b.build().map_err(|source| WalkError::Glob {
        glob: globs.join(","),
        source,
    })
}

impl Filters {
    pub fn new(opts: &WalkOptions) -> Result<Self, WalkError> {
        let include = if opts.include.is_empty() {
            None
        } else {
            Some(build_set(&opts.include)?)
        };
        Ok(Filters {
            include,
            exclude: build_set(&opts.exclude)?,
        })
    }

    pub fn excluded(&self, relative: &Path) -> bool {
        self.exclude.is_match(relative)
    }

    pub fn included(&self, relative: &Path) -> bool {
        self.include.as_ref().is_none_or(|i| i.is_match(relative)) && !self.excluded(relative)
    }
}

/// What a non-regular, non-directory file type is, for messages.
pub(crate) fn special_kind(ft: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "fifo (named pipe)";
        } else if ft.is_socket() {
            return "socket";
        } else if ft.is_block_device() {
            return "block device";
        } else if ft.is_char_device() {
            return "character device";
        }
    }
    let _ = ft;
    "not a regular file"
}

fn skipped(path: &Path, reason: SkipReason, detail: impl Into<String>) -> WalkEvent {
    WalkEvent::Skipped(SkippedPath::new(PathName::of(path), reason, detail.into()))
}

/// Walks `root` and calls `sink` for every event, in sorted order, until
/// `sink` returns `false` (the scan was cancelled or the consumer is gone).
///
/// A root that is not a directory is yielded as a single item, whatever
/// the globs (its relative path, for the shard, is its file name).
pub fn walk_root(
    root: &Path,
    opts: &WalkOptions,
    filters: &Filters,
    mut sink: impl FnMut(WalkEvent) -> bool,
) {
    let walker = walkdir::WalkDir::new(root)
        .follow_links(opts.follow_symlinks)
        .follow_root_links(true)
        .sort_by_file_name();
    let mut it = walker.into_iter();
    loop {
        let entry = match it.next() {
            None => break,
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                let path = e
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.to_path_buf());
                let kind = if e.loop_ancestor().is_some() {
                    WalkProblemKind::SymlinkLoop
                } else {
                    match e.io_error().map(|io| io.kind()) {
                        Some(std::io::ErrorKind::PermissionDenied) => {
                            WalkProblemKind::PermissionDenied
                        }
                        Some(std::io::ErrorKind::NotFound) => WalkProblemKind::NotFound,
                        _ if e.io_error().is_some_and(crate::read::is_loop_error) => {
                            WalkProblemKind::SymlinkLoop
                        }
                        _ => WalkProblemKind::Other,
                    }
                };
                let message = match e.loop_ancestor() {
                    Some(a) => format!("symbolic link loop back to {}", a.display()),
                    None => e.to_string(),
                };
                if !sink(WalkEvent::Problem(WalkProblem {
                    path,
                    kind,
                    message,
                })) {
                    return;
                }
                continue;
            }
        };
        // A root that is not a directory was named by the caller: no glob
        // applies to it.
        let named = entry.depth() == 0;
        let relative: &Path = if named {
            Path::new(entry.file_name())
        } else {
            entry.path().strip_prefix(root).unwrap_or(entry.path())
        };
        let ft = entry.file_type();
        if ft.is_dir() {
            if !named && filters.excluded(relative) {
                it.skip_current_dir();
                let ev = skipped(
                    entry.path(),
                    SkipReason::Excluded,
                    "directory excluded by --exclude (not descended into)",
                );
                if !sink(ev) {
                    return;
                }
            }
            continue;
        }
        let event = if ft.is_symlink() {
            // Only reached when links are not followed (walkdir resolves them
            // otherwise); a broken link under --follow-symlinks arrives as an
            // error above.
            skipped(
                entry.path(),
                SkipReason::SymlinkNotFollowed,
                "symbolic link (not followed without --follow-symlinks)",
            )
        } else if !ft.is_file() {
            // Never opened: a FIFO would block the read forever, a device
            // may never end.
            skipped(entry.path(), SkipReason::SpecialFile, special_kind(ft))
        } else if !named && !filters.included(relative) {
            let why = if filters.excluded(relative) {
                "matches --exclude"
            } else {
                "matches no --include"
            };
            skipped(entry.path(), SkipReason::Excluded, why)
        } else if !opts.shard.contains(relative) {
            skipped(
                entry.path(),
                SkipReason::OtherShard,
                format!("in another shard than {}", opts.shard),
            )
        } else {
            // On a metadata failure (the file vanished) the read reports it.
            let size = entry.metadata().map(|m| m.len()).ok();
            match size {
                Some(size) if size > opts.max_file_bytes => skipped(
                    entry.path(),
                    SkipReason::TooLarge,
                    format!(
                        "{size} bytes, over --max-file-bytes {} (not read)",
                        opts.max_file_bytes
                    ),
                ),
                size => WalkEvent::File(WalkItem {
                    path: entry.path().to_path_buf(),
                    size: size.unwrap_or(0),
                }),
            }
        };
        if !sink(event) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Files walked (relative), problems, and skipped entries (relative
    /// path, reason).
    type Walked = (Vec<String>, Vec<WalkProblem>, Vec<(String, SkipReason)>);

    fn collect(root: &Path, opts: &WalkOptions) -> Walked {
        let filters = Filters::new(opts).unwrap();
        let (mut files, mut problems, mut skips) = (Vec::new(), Vec::new(), Vec::new());
        let rel = |p: &Path| {
            p.strip_prefix(root)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned()
        };
        walk_root(root, opts, &filters, |ev| {
            match ev {
                WalkEvent::File(f) => files.push(rel(&f.path)),
                WalkEvent::Problem(p) => problems.push(p),
                WalkEvent::Skipped(s) => {
                    let p = PathBuf::from(s.path);
                    skips.push((rel(&p), s.reason));
                }
            }
            true
        });
        (files, problems, skips)
    }

    /// Every file is a candidate, whatever its name; globs narrow the walk
    /// and say so for each path they leave out.
    #[test]
    fn every_file_by_default_and_globs_narrow() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("a/skip")).unwrap();
        for f in [
            "x.JPG",
            "a/y.png",
            "a/notes.txt",
            "a/skip/z.jpg",
            "b.webp",
            "upload-17",
        ] {
            fs::write(r.join(f), b"x").unwrap();
        }
        let (files, _, skips) = collect(r, &WalkOptions::default());
        assert_eq!(
            files,
            vec![
                "a/notes.txt",
                "a/skip/z.jpg",
                "a/y.png",
                "b.webp",
                "upload-17",
                "x.JPG"
            ]
        );
        assert!(skips.is_empty());

        let opts = WalkOptions {
            exclude: vec!["a/skip".into()],
            ..Default::default()
        };
        let (files, _, skips) = collect(r, &opts);
        assert_eq!(
            files,
            vec!["a/notes.txt", "a/y.png", "b.webp", "upload-17", "x.JPG"]
        );
        assert_eq!(skips, vec![("a/skip".to_string(), SkipReason::Excluded)]);

        let opts = WalkOptions {
            include: vec!["*.txt".into()],
            ..Default::default()
        };
        let (files, _, skips) = collect(r, &opts);
        assert_eq!(files, vec!["a/notes.txt"]);
        assert_eq!(skips.len(), 5);
        assert!(skips.iter().all(|(_, why)| *why == SkipReason::Excluded));

        // A file named as the root is read whatever the globs.
        let (files, _, skips) = collect(&r.join("upload-17"), &opts);
        assert_eq!((files.len(), skips.len()), (1, 0));
    }

    #[test]
    fn files_over_the_limit_are_skipped_from_metadata() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::write(r.join("small"), vec![0u8; 10]).unwrap();
        // Sparse: 1 TiB of nothing on disk.
        let big = fs::File::create(r.join("sparse")).unwrap();
        big.set_len(1 << 40).unwrap();
        let opts = WalkOptions {
            max_file_bytes: 10,
            ..Default::default()
        };
        let (files, _, skips) = collect(r, &opts);
        assert_eq!(files, vec!["small"]);
        assert_eq!(skips, vec![("sparse".to_string(), SkipReason::TooLarge)]);
    }

    #[cfg(unix)]
    #[test]
    fn fifos_and_devices_are_skipped_unopened() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let fifo = std::ffi::CString::new(r.join("pipe").to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        std::os::unix::fs::symlink("/dev/null", r.join("null")).unwrap();
        let opts = WalkOptions {
            follow_symlinks: true,
            ..Default::default()
        };
        let (files, problems, skips) = collect(r, &opts);
        assert!(files.is_empty() && problems.is_empty());
        assert_eq!(
            skips,
            vec![
                ("null".to_string(), SkipReason::SpecialFile),
                ("pipe".to_string(), SkipReason::SpecialFile)
            ]
        );
        // Not followed, the link is a skipped symlink.
        let (_, _, skips) = collect(r, &WalkOptions::default());
        assert_eq!(
            skips[0],
            ("null".to_string(), SkipReason::SymlinkNotFollowed)
        );
        // Named as a root, a device is still a special file.
        let (files, _, skips) = collect(Path::new("/dev/null"), &WalkOptions::default());
        assert!(files.is_empty());
        assert_eq!(skips[0].1, SkipReason::SpecialFile);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_skipped_or_followed_with_loop_detection() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("real")).unwrap();
        fs::write(r.join("real/a.png"), b"x").unwrap();
        std::os::unix::fs::symlink(r.join("real"), r.join("link")).unwrap();
        std::os::unix::fs::symlink(r, r.join("real/loop")).unwrap();

        let (files, problems, skips) = collect(r, &WalkOptions::default());
        assert_eq!(files, vec!["real/a.png"]);
        assert!(problems.is_empty());
        assert_eq!(
            skips,
            vec![
                ("link".to_string(), SkipReason::SymlinkNotFollowed),
                ("real/loop".to_string(), SkipReason::SymlinkNotFollowed)
            ]
        );

        let opts = WalkOptions {
            follow_symlinks: true,
            ..Default::default()
        };
        let (files, problems, _) = collect(r, &opts);
        assert_eq!(files, vec!["link/a.png", "real/a.png"]);
        assert!(
            problems
                .iter()
                .any(|p| p.kind == WalkProblemKind::SymlinkLoop),
            "{problems:?}"
        );
    }

    #[test]
    fn shards_cover_tree_once() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for i in 0..60 {
            fs::create_dir_all(r.join(format!("d{}", i % 4))).unwrap();
            fs::write(r.join(format!("d{}/{i}.png", i % 4)), b"x").unwrap();
        }
        let mut all = Vec::new();
        for i in 0..3 {
            let opts = WalkOptions {
                shard: Shard { index: i, count: 3 },
                ..Default::default()
            };
            let (files, _, skips) = collect(r, &opts);
            assert_eq!(files.len() + skips.len(), 60);
            assert!(skips.iter().all(|(_, why)| *why == SkipReason::OtherShard));
            all.extend(files);
        }
        all.sort();
        let before = all.len();
        all.dedup();
        assert_eq!(before, all.len());
        assert_eq!(all.len(), 60);
    }
}
