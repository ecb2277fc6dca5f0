//! Walking the scanned trees: include/exclude globs, symlinks, shards.
//!
//! The walker only reads directory entries and metadata; it never opens a
//! file for writing and never changes anything in the tree. It yields one
//! [`WalkItem`] per candidate file, or a [`WalkProblem`] for paths that could
//! not be walked (permission denied on a directory, a symlink loop, a broken
//! link), so the scan can record them and go on.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::shard::Shard;

/// Extensions scanned when no `--include` is given (matched case-insensitively).
pub const DEFAULT_IMAGE_GLOBS: &[&str] = &[
    "*.jpg", "*.jpeg", "*.jpe", "*.jfif", "*.png", "*.gif", "*.webp", "*.bmp", "*.tif", "*.tiff",
];

/// What to walk and which files to keep.
#[derive(Clone, Debug, Default)]
pub struct WalkOptions {
    /// Globs matched against the path relative to the scan root (`*` crosses
    /// `/`, so `*.jpg` matches at any depth). Empty means
    /// [`DEFAULT_IMAGE_GLOBS`]; `*` scans every file.
    pub include: Vec<String>,
    /// Globs for files or directories to skip (a matching directory is not
    /// descended into).
    pub exclude: Vec<String>,
    /// Follow symbolic links (loops are detected and reported, not followed).
    pub follow_symlinks: bool,
    pub shard: Shard,
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

/// What the walker produces, in a deterministic order (entries sorted by name).
#[derive(Clone, Debug)]
pub enum WalkEvent {
    File(WalkItem),
    Problem(WalkProblem),
    /// Counted but not scanned: filtered out by glob, shard, or a symlink not followed.
    Skipped,
}

/// Compiled include/exclude filters.
#[derive(Clone, Debug)]
pub struct Filters {
    include: GlobSet,
    exclude: GlobSet,
}

fn build_set(globs: &[String], case_insensitive: bool) -> Result<GlobSet, WalkError> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let glob = GlobBuilder::new(g)
            .case_insensitive(case_insensitive)
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
            let defaults: Vec<String> = DEFAULT_IMAGE_GLOBS.iter().map(|s| s.to_string()).collect();
            build_set(&defaults, true)?
        } else {
            build_set(&opts.include, false)?
        };
        Ok(Filters {
            include,
            exclude: build_set(&opts.exclude, false)?,
        })
    }

    pub fn excluded(&self, relative: &Path) -> bool {
        self.exclude.is_match(relative)
    }

    pub fn included(&self, relative: &Path) -> bool {
        self.include.is_match(relative) && !self.exclude.is_match(relative)
    }
}

/// Walks `root` and calls `sink` for every event, in sorted order, until
/// `sink` returns `false` (the scan was cancelled or the consumer is gone).
///
/// A root that is itself a file is yielded as a single item (relative path =
/// its file name, so shards and globs still apply).
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
    let root_is_file = root.is_file();
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
        let relative: &Path = if root_is_file {
            Path::new(entry.file_name())
        } else {
            entry.path().strip_prefix(root).unwrap_or(entry.path())
        };
        let ft = entry.file_type();
        if ft.is_dir() {
            if entry.depth() > 0 && filters.excluded(relative) {
                it.skip_current_dir();
            }
            continue;
        }
        if ft.is_symlink() {
            // Only reached when links are not followed (walkdir resolves them
            // otherwise); a broken link under --follow-symlinks arrives as an
            // error above.
            if !sink(WalkEvent::Skipped) {
                return;
            }
            continue;
        }
        if !ft.is_file() {
            // Sockets, FIFOs, devices: reading them could block or never end.
            if !sink(WalkEvent::Skipped) {
                return;
            }
            continue;
        }
        let keep = filters.included(relative) && opts.shard.contains(relative);
        let event = if keep {
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            WalkEvent::File(WalkItem {
                path: entry.path().to_path_buf(),
                size,
            })
        } else {
            WalkEvent::Skipped
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

    fn collect(root: &Path, opts: &WalkOptions) -> (Vec<String>, Vec<WalkProblem>) {
        let filters = Filters::new(opts).unwrap();
        let mut files = Vec::new();
        let mut problems = Vec::new();
        walk_root(root, opts, &filters, |ev| {
            match ev {
                WalkEvent::File(f) => files.push(
                    f.path
                        .strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                ),
                WalkEvent::Problem(p) => problems.push(p),
                WalkEvent::Skipped => {}
            }
            true
        });
        (files, problems)
    }

    #[test]
    fn default_globs_include_and_exclude() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("a/skip")).unwrap();
        for f in ["x.JPG", "a/y.png", "a/notes.txt", "a/skip/z.jpg", "b.webp"] {
            fs::write(r.join(f), b"x").unwrap();
        }
        let (files, _) = collect(r, &WalkOptions::default());
        assert_eq!(files, vec!["a/skip/z.jpg", "a/y.png", "b.webp", "x.JPG"]);

        let opts = WalkOptions {
            exclude: vec!["a/skip".into()],
            ..Default::default()
        };
        let (files, _) = collect(r, &opts);
        assert_eq!(files, vec!["a/y.png", "b.webp", "x.JPG"]);

        let opts = WalkOptions {
            include: vec!["*.txt".into()],
            ..Default::default()
        };
        let (files, _) = collect(r, &opts);
        assert_eq!(files, vec!["a/notes.txt"]);
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

        let (files, problems) = collect(r, &WalkOptions::default());
        assert_eq!(files, vec!["real/a.png"]);
        assert!(problems.is_empty());

        let opts = WalkOptions {
            follow_symlinks: true,
            ..Default::default()
        };
        let (files, problems) = collect(r, &opts);
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
            all.extend(collect(r, &opts).0);
        }
        all.sort();
        let before = all.len();
        all.dedup();
        assert_eq!(before, all.len());
        assert_eq!(all.len(), 60);
    }
}
