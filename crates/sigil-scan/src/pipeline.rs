//! The scan pipeline: walker thread -> bounded channel -> worker threads (a
//! dedicated rayon pool) -> bounded channel -> one writer.
//!
//! - The walker sends paths only; the job channel holds at most
//!   `4 x threads` of them, so a tree of any size costs constant memory.
//!   Paths it does not send (excluded, other shard, symlinks not followed,
//!   special files, files over the limit for reading) go to the writer as
//!   skipped entries with their reason.
//! - Every regular file is read and gets its exact digests; its first bytes
//!   say what it is (`sigil_core::decode::sniff`, never its name): an image
//!   is decoded and hashed, anything else (video, other) is matched by its
//!   exact digests alone and recorded as `not_an_image`.
//! - Each worker owns its `PdqHasher` and its read buffer: at most `threads`
//!   files are in memory at once, each under the decode byte limit.
//! - Workers send finished records (signatures, never bytes) to the calling
//!   thread, which is the only writer: one record per line, flushed to the
//!   OS at once and fsynced every second and at the end (the resume journal).
//! - Each worker hands a file's signatures to a `sigil_match::Matcher`
//!   (one for the whole scan, over one index generation), which decides the
//!   verdict; the pipeline only converts its outcome into a record.
//! - Cancellation (Ctrl-C) stops the walk and the workers, and a read in
//!   progress between two chunks; records already produced are written,
//!   the output is synced and the summary says "interrupted". Files not
//!   recorded are picked up by `--resume`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use sigil_core::decode::fast_jpeg::{self, FastDecode};
use sigil_core::decode::{sniff, MediaKind};
use sigil_core::pdq::{PdqHasher, PdqOutput, Profile};
use sigil_core::robust::{robust_query_hashes, RobustQueryOptions};
use sigil_core::{
    DecodeError, DecodeOptions, DecodedImage, ExactHasher, HashKind, PdqHash, Pixels,
};
use sigil_match::{ImageQuery, Lookup, Matcher, Outcome, ResolvedOptions};

use crate::output::{RecordWriter, SkippedWriter};
use crate::path::{path_bytes, PathName};
use crate::read::{read_file, FileContents, ReadError, ReadLimits};
use crate::record::{
    ErrorCause, ErrorInfo, MatchRecord, Media, Note, ScanRecord, SkippedPath, Verdict,
};
use crate::summary::{StageTimes, Summary};
use crate::walk::{walk_root, Filters, WalkError, WalkEvent, WalkOptions, WalkProblemKind};

/// Everything that decides what is scanned and how.
#[derive(Clone, Debug)]
pub struct ScanConfig {
    pub roots: Vec<PathBuf>,
    pub walk: WalkOptions,
    /// Worker threads (each decodes and hashes one file at a time).
    pub threads: usize,
    /// The matching options (radius, lists, quality threshold, dihedral,
    /// robust level, max matches), resolved by `sigil_match` against the
    /// index generation the scan's lookup answers from. They also decide
    /// what is hashed: the 8 dihedral hashes with `dihedral`, and with a
    /// robust level every query variant of the level (`standard`: the 8
    /// dihedral variants of the image and of its content inside detected
    /// flat or mirrored borders; `full`: also rotation-compensated and
    /// zoomed copies).
    pub matching: ResolvedOptions,
    pub profile: Profile,
    pub decode: DecodeOptions,
    /// Reduced-scale decoding of large JPEGs (see [`sigil_core::decode::fast_jpeg`]).
    pub fast: bool,
    /// Test hook: sleep this long per file (to interrupt a scan mid-run).
    pub per_file_delay: Option<Duration>,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            roots: Vec::new(),
            walk: WalkOptions::default(),
            threads: 1,
            matching: ResolvedOptions::default(),
            profile: Profile::Full,
            decode: DecodeOptions::default(),
            fast: false,
            per_file_delay: None,
        }
    }
}

/// Why a scan could not run or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Walk(#[from] WalkError),
    #[error("scan root {path} does not exist or cannot be read: {source}")]
    Root {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write scan output: {0}")]
    Output(#[source] std::io::Error),
    #[error("cannot write the list of skipped paths: {0}")]
    SkippedOutput(#[source] std::io::Error),
    /// The [`MatchSink`] refused a matched record (e.g. the report store
    /// is unreachable): the scan stops before that record is written, so
    /// a resume matches the file again.
    #[error("{path}: {message}")]
    MatchSink { path: String, message: String },
    #[error("cannot start a scan thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("cannot start the scan's worker threads: {0}")]
    Pool(#[source] rayon::ThreadPoolBuildError),
}

/// A live view of the scan for progress display.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// Files found by the walk so far (to scan in this run).
    pub discovered: u64,
    /// Whether the walk has finished (so `discovered` is the total).
    pub walk_done: bool,
    pub done: u64,
    pub matched: u64,
    pub errors: u64,
    pub bytes: u64,
}

struct Job {
    path: PathBuf,
    name: PathName,
}

/// Which `--fast` path, if any, hashed a file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FastUse {
    No,
    /// PDQ's grid straight from the DCT coefficients.
    Grid,
    /// Pixels decoded at reduced scale.
    Reduced,
}

enum Msg {
    Record {
        // Boxed: a record is far larger than the other messages, and the
        // channel's slots are sized by the largest variant.
        rec: Box<ScanRecord>,
        times: StageTimes,
        bytes: u64,
        fast: FastUse,
    },
    Discovered,
    Skipped(Box<SkippedPath>),
    Resumed,
    WalkDone,
}

/// Receives every matched record before it is written to the output:
/// `sigil scan --reports` files a report stub there. Called on the writer
/// thread, in output order; an error stops the scan before the record is
/// written, so the output (a resume journal) never marks a file done whose
/// match was not taken.
pub trait MatchSink {
    /// Takes a record whose verdict is `match`; the error says why not.
    fn matched(&mut self, rec: &ScanRecord) -> Result<(), String>;
}

/// Where a scan's results go.
pub struct Sinks<'a> {
    /// One record per file read (and per path that could not be walked).
    pub records: &'a mut RecordWriter,
    /// Every matched record, before it reaches `records` (`None`: matches
    /// are only recorded).
    pub matches: Option<&'a mut dyn MatchSink>,
    /// Every path reached but not read, with its reason (`--skipped`);
    /// other shards' files are only counted.
    pub skipped: Option<&'a mut SkippedWriter>,
    /// Called from the writer thread after each event (cheap callers only).
    pub progress: &'a mut dyn FnMut(&Progress),
}

/// Runs a scan, writing one record per file to `sinks.records`.
///
/// `done` holds the identities (exact path bytes, [`ScanRecord::identity`])
/// already recorded by an interrupted run (resume); those files are not
/// read again.
pub fn run_scan(
    cfg: &ScanConfig,
    lookup: &dyn Lookup,
    done: &HashSet<Vec<u8>>,
    cancel: &AtomicBool,
    sinks: Sinks<'_>,
) -> Result<Summary, ScanError> {
    let Sinks {
        records: writer,
        matches,
        mut skipped,
        progress,
    } = sinks;
    let filters = Filters::new(&cfg.walk)?;
    for root in &cfg.roots {
        std::fs::metadata(root).map_err(|source| ScanError::Root {
            path: root.clone(),
            source,
        })?;
    }
    let threads = cfg.threads.max(1);
    let start = Instant::now();
    let (job_tx, job_rx) = bounded::<Job>(threads * 4);
    let (msg_tx, msg_rx) = bounded::<Msg>(threads * 4 + 16);
    let mut summary = Summary {
        threads,
        ..Default::default()
    };

    // The workers run on a rayon pool of their own (not the global one, which
    // index searches may use) with one long-lived task per thread pulling
    // from the bounded job channel: rayon's own queues are unbounded, so
    // handing it one task per file would let a large tree fill memory.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("sigil-scan-{i}"))
        .build()
        .map_err(ScanError::Pool)?;
    let work = Work::new(cfg, lookup);
    let work = &work;

    let result = std::thread::scope(|s| -> Result<(), ScanError> {
        {
            let msg_tx = msg_tx.clone();
            let filters = &filters;
            std::thread::Builder::new()
                .name("sigil-walk".into())
                .spawn_scoped(s, move || {
                    walker(cfg, filters, done, cancel, job_tx, msg_tx)
                })
                .map_err(ScanError::Thread)?;
        }
        // The writer loop runs on this thread while the pool works; the
        // scope returns once every worker has finished.
        pool.in_place_scope(|ps| {
            for _ in 0..threads {
                let job_rx = job_rx.clone();
                let msg_tx = msg_tx.clone();
                ps.spawn(move |_| worker(work, cancel, job_rx, msg_tx));
            }
            drop(job_rx);
            drop(msg_tx);
            let r = write_loop(
                writer,
                matches,
                skipped.as_deref_mut(),
                &msg_rx,
                &mut summary,
                progress,
            );
            if r.is_err() {
                // Stop everyone; dropping the receiver unblocks senders.
                cancel.store(true, Ordering::SeqCst);
            }
            drop(msg_rx);
            r
        })
    });
    summary.elapsed = start.elapsed();
    summary.interrupted = cancel.load(Ordering::SeqCst);
    let synced = writer.sync().map_err(ScanError::Output);
    let listed = skipped
        .map_or(Ok(()), |w| w.flush())
        .map_err(ScanError::SkippedOutput);
    result?;
    synced?;
    listed?;
    Ok(summary)
}

fn write_loop<'s>(
    writer: &mut RecordWriter,
    mut matches: Option<&mut (dyn MatchSink + 's)>,
    mut skipped: Option<&mut SkippedWriter>,
    rx: &Receiver<Msg>,
    summary: &mut Summary,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(), ScanError> {
    let mut p = Progress::default();
    let mut last_sync = Instant::now();
    let mut dirty = false;
    loop {
        // Wake up now and then to fsync even when files are slow.
        let msg = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(m) => Some(m),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        match msg {
            Some(Msg::Record {
                rec,
                times,
                bytes,
                fast,
            }) => {
                if let Some(sink) = matches.as_deref_mut() {
                    if rec.verdict == Verdict::Match {
                        sink.matched(&rec).map_err(|message| ScanError::MatchSink {
                            path: rec.path.clone(),
                            message,
                        })?;
                    }
                }
                writer.write(&rec).map_err(ScanError::Output)?;
                dirty = true;
                summary.count(&rec);
                summary.bytes += bytes;
                summary.stages.add(&times);
                summary.fast_decodes += u64::from(fast != FastUse::No);
                summary.fast_grid += u64::from(fast == FastUse::Grid);
                p.done += 1;
                p.bytes += bytes;
                p.matched = summary.matched;
                p.errors = summary.error_count();
            }
            Some(Msg::Discovered) => p.discovered += 1,
            Some(Msg::Skipped(entry)) => {
                if let (Some(w), true) = (skipped.as_deref_mut(), entry.reason.listed()) {
                    w.write(&entry).map_err(ScanError::SkippedOutput)?;
                }
                summary.skip(*entry);
            }
            Some(Msg::Resumed) => summary.resumed += 1,
            Some(Msg::WalkDone) => p.walk_done = true,
            None => {}
        }
        if dirty && last_sync.elapsed() >= Duration::from_secs(1) {
            writer.sync().map_err(ScanError::Output)?;
            last_sync = Instant::now();
            dirty = false;
        }
        // On cancel, keep draining: records already computed are still
        // written.
        progress(&p);
    }
    Ok(())
}

fn walker(
    cfg: &ScanConfig,
    filters: &Filters,
    done: &HashSet<Vec<u8>>,
    cancel: &AtomicBool,
    job_tx: Sender<Job>,
    msg_tx: Sender<Msg>,
) {
    'roots: for root in &cfg.roots {
        let mut go_on = true;
        walk_root(root, &cfg.walk, filters, |ev| {
            if cancel.load(Ordering::Relaxed) {
                go_on = false;
                return false;
            }
            let ok = match ev {
                WalkEvent::File(item) => {
                    if done.contains(path_bytes(&item.path).as_ref()) {
                        msg_tx.send(Msg::Resumed).is_ok()
                    } else {
                        let name = PathName::of(&item.path);
                        msg_tx.send(Msg::Discovered).is_ok()
                            && job_tx
                                .send(Job {
                                    path: item.path,
                                    name,
                                })
                                .is_ok()
                    }
                }
                WalkEvent::Problem(prob) => {
                    let name = PathName::of(&prob.path);
                    if done.contains(name.identity()) {
                        msg_tx.send(Msg::Resumed).is_ok()
                    } else {
                        let cause = match prob.kind {
                            WalkProblemKind::SymlinkLoop => ErrorCause::SymlinkLoop,
                            WalkProblemKind::PermissionDenied => ErrorCause::PermissionDenied,
                            WalkProblemKind::NotFound => ErrorCause::Vanished,
                            WalkProblemKind::Other => ErrorCause::Unreadable,
                        };
                        let rec = ScanRecord::failed(name, None, cause, prob.message);
                        msg_tx
                            .send(Msg::Record {
                                rec: Box::new(rec),
                                times: StageTimes::default(),
                                bytes: 0,
                                fast: FastUse::No,
                            })
                            .is_ok()
                    }
                }
                WalkEvent::Skipped(entry) => msg_tx.send(Msg::Skipped(Box::new(entry))).is_ok(),
            };
            go_on = ok;
            ok
        });
        if !go_on {
            break 'roots;
        }
    }
    let _ = msg_tx.send(Msg::WalkDone);
}

/// What every worker shares, made once per scan (nothing here is built
/// per file).
struct Work<'a> {
    cfg: &'a ScanConfig,
    matcher: Matcher<'a, dyn Lookup + 'a>,
    /// With a robust level: the query variants to compute (down to the
    /// matching's quality threshold), in the scan's profile.
    robust: Option<RobustQueryOptions>,
}

impl<'a> Work<'a> {
    fn new(cfg: &'a ScanConfig, lookup: &'a (dyn Lookup + 'a)) -> Self {
        let robust = cfg.matching.robust().is_on().then(|| RobustQueryOptions {
            profile: cfg.profile,
            ..cfg.matching.robust_query_options()
        });
        Work {
            cfg,
            matcher: Matcher::new(lookup, &cfg.matching),
            robust,
        }
    }
}

fn worker(work: &Work<'_>, cancel: &AtomicBool, jobs: Receiver<Job>, out: Sender<Msg>) {
    let cfg = work.cfg;
    let mut hasher = PdqHasher::new();
    let exact = if work.matcher.lookup().has_entries(HashKind::Sha1) {
        ExactHasher::new()
    } else {
        ExactHasher::without_sha1()
    };
    for job in jobs.iter() {
        if cancel.load(Ordering::Relaxed) {
            break;
        }
        if let Some(d) = cfg.per_file_delay {
            std::thread::sleep(d);
        }
        let mut times = StageTimes::default();
        // Cancelled mid-read: no record, a resume reads the file again.
        let Some((rec, bytes, fast)) =
            scan_file(work, &mut hasher, &exact, job, cancel, &mut times)
        else {
            break;
        };
        if out
            .send(Msg::Record {
                rec: Box::new(rec),
                times,
                bytes,
                fast,
            })
            .is_err()
        {
            break;
        }
    }
}

fn decode_cause(e: &DecodeError) -> ErrorCause {
    match e {
        DecodeError::EmptyInput => ErrorCause::EmptyFile,
        DecodeError::TooManyBytes { .. } => ErrorCause::FileTooLarge,
        // Only sniffed images are decoded, so the decoder cannot find an
        // unknown format; were it to, the image is not one it supports.
        DecodeError::UnknownFormat | DecodeError::Unsupported { .. } => {
            ErrorCause::UnsupportedImage
        }
        DecodeError::TooLarge { .. }
        | DecodeError::TooMuchMemory { .. }
        | DecodeError::LimitExceeded { .. } => ErrorCause::ImageTooLarge,
        DecodeError::DecoderPanic { .. } => ErrorCause::DecoderPanic,
        _ => ErrorCause::CorruptImage,
    }
}

fn timed<T>(slot: &mut Duration, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    *slot += t.elapsed();
    r
}

/// What the decode stage produced.
enum Decoded {
    Image(DecodedImage),
    /// PDQ's 64x64 grid computed from JPEG coefficients (`--fast`).
    Grid(fast_jpeg::LumaGrid),
}

/// The PDQ hash, quality and (with dihedral matching) the 8 variants: the
/// hashes of the image rotated and mirrored, so a rotated copy matches as
/// its pixels rotated back would.
fn pdq_of(
    hasher: &mut PdqHasher,
    decoded: &Decoded,
    cfg: &ScanConfig,
) -> (PdqHash, u32, Option<[PdqHash; 8]>) {
    let one = |o: PdqOutput| (o.hash, o.quality, None);
    let eight = |o: [PdqOutput; 8]| (o[0].hash, o[0].quality, Some(o.map(|v| v.hash)));
    let dihedral = cfg.matching.dihedral();
    let img = match decoded {
        // Only without dihedral matching (see `scan_file`): the grid has
        // no pixels to rotate.
        Decoded::Grid(g) => return one(hasher.hash_grid(&g.grid)),
        Decoded::Image(img) => img,
    };
    let (w, h) = (img.width, img.height);
    match (&img.pixels, dihedral) {
        (Pixels::Rgb8(px), false) => one(hasher.hash_rgb8(w, h, px, cfg.profile)),
        (Pixels::Luma8(px), false) => one(hasher.hash_luma8(w, h, px, cfg.profile)),
        (Pixels::Rgb8(px), true) => eight(hasher.dihedral_pixels_rgb8(w, h, px, cfg.profile)),
        (Pixels::Luma8(px), true) => eight(hasher.dihedral_pixels_luma8(w, h, px, cfg.profile)),
    }
}

/// The record's matches and verdict from the matcher's outcome.
fn judged(rec: &mut ScanRecord, outcome: Outcome) {
    rec.verdict = outcome.verdict;
    rec.matches = outcome.matches.into_iter().map(MatchRecord::from).collect();
}

/// Reads, hashes and matches one file; `None` when the scan was cancelled
/// while the file was read. Never panics on file content: the decoders
/// catch their own panics and every failure becomes an error record.
fn scan_file(
    work: &Work<'_>,
    hasher: &mut PdqHasher,
    exact: &ExactHasher,
    job: Job,
    cancel: &AtomicBool,
    times: &mut StageTimes,
) -> Option<(ScanRecord, u64, FastUse)> {
    let (cfg, matcher) = (work.cfg, work.matcher);
    let limits = ReadLimits {
        max_in_memory: cfg.decode.limits.max_bytes,
        max_file_bytes: cfg.walk.max_file_bytes,
    };
    let contents = match timed(&mut times.read, || {
        read_file(&job.path, limits, exact, cancel)
    }) {
        Ok(c) => c,
        Err(ReadError::Cancelled) => return None,
        Err(ReadError::Failed(f)) => {
            let rec = ScanRecord::failed(job.name, f.size, f.cause, f.message);
            return Some((rec, 0, FastUse::No));
        }
    };
    let mut rec = ScanRecord::new(job.name);
    let (bytes, kind) = match contents {
        FileContents::Streamed {
            size,
            digests,
            kind,
        } => {
            rec.size = Some(size);
            rec.sha256 = Some(digests.sha256_hex());
            rec.md5 = Some(digests.md5_hex());
            rec.set_media(kind);
            let image = rec.media == Some(Media::Image);
            let outcome = timed(&mut times.lookup, || {
                if image {
                    matcher.image(&digests, ImageQuery::Undecoded)
                } else {
                    matcher.not_an_image(&digests)
                }
            });
            if image {
                rec.error = Some(ErrorInfo {
                    cause: ErrorCause::FileTooLarge,
                    message: format!(
                        "{size} bytes, over the decode limit of {} bytes (exact digests computed)",
                        cfg.decode.limits.max_bytes
                    ),
                });
            } else {
                rec.note = Some(Note::NotAnImage);
            }
            judged(&mut rec, outcome);
            return Some((rec, size, FastUse::No));
        }
        FileContents::Bytes(b) => {
            let kind = sniff(&b);
            (b, kind)
        }
    };
    let size = bytes.len() as u64;
    let digests = timed(&mut times.exact, || {
        let mut h = exact.clone();
        h.update(&bytes);
        h.finish()
    });
    rec.size = Some(size);
    rec.sha256 = Some(digests.sha256_hex());
    rec.md5 = Some(digests.md5_hex());
    rec.set_media(kind);
    if !matches!(kind, MediaKind::Image(_)) {
        drop(bytes);
        rec.note = Some(Note::NotAnImage);
        let outcome = timed(&mut times.lookup, || matcher.not_an_image(&digests));
        judged(&mut rec, outcome);
        return Some((rec, size, FastUse::No));
    }

    let mut fast_used = FastUse::No;
    let decoded: Result<Decoded, DecodeError> = timed(&mut times.decode, || {
        if cfg.fast && !cfg.decode.apply_exif_orientation {
            // The grid is the full-resolution image's; the cli512 profile,
            // the robust variants and the dihedral ones (hashes of the
            // rotated pixels) need pixels.
            let grid =
                cfg.profile == Profile::Full && work.robust.is_none() && !cfg.matching.dihedral();
            let limits = &cfg.decode.limits;
            if let Some(fast) =
                fast_jpeg::decode_fast(&bytes, limits, fast_jpeg::FAST_MIN_SIDE, grid)
            {
                return Ok(match fast {
                    FastDecode::Grid(g) => {
                        fast_used = FastUse::Grid;
                        Decoded::Grid(g)
                    }
                    FastDecode::Image(img, _reduction) => {
                        fast_used = FastUse::Reduced;
                        Decoded::Image(img)
                    }
                });
            }
        }
        sigil_core::decode::decode(&bytes, &cfg.decode).map(Decoded::Image)
    });
    // The encoded bytes are not needed past this point.
    drop(bytes);

    let outcome = match (decoded, &work.robust) {
        (Err(e), _) => {
            rec.error = Some(ErrorInfo {
                cause: decode_cause(&e),
                message: e.to_string(),
            });
            timed(&mut times.lookup, || {
                matcher.image(&digests, ImageQuery::Undecoded)
            })
        }
        (Ok(Decoded::Image(img)), Some(opts)) => {
            let variants = timed(&mut times.pdq, || robust_query_hashes(hasher, &img, opts));
            drop(img);
            // The first variant is always the image as given.
            if let Some(first) = variants.first() {
                rec.pdq = Some(first.hash);
                rec.quality = Some(first.quality);
            }
            timed(&mut times.lookup, || {
                matcher.image(&digests, ImageQuery::Robust(&variants))
            })
        }
        (Ok(decoded), _) => {
            let (hash, quality, variants) = timed(&mut times.pdq, || pdq_of(hasher, &decoded, cfg));
            drop(decoded);
            rec.pdq = Some(hash);
            rec.quality = Some(quality);
            let image = ImageQuery::Pdq {
                hash,
                quality,
                dihedral: variants.as_ref(),
            };
            timed(&mut times.lookup, || matcher.image(&digests, image))
        }
    };
    judged(&mut rec, outcome);
    Some((rec, size, fast_used))
}
