//! `sigil hash`: PDQ, quality and exact digests of files and directory trees.
//!
//! Output is streamed in input order (arguments in the order given,
//! directory contents sorted by name, recursively) however many threads
//! hash in parallel: workers may run ahead of the writer by a bounded
//! window only, so memory stays flat on trees of any size.
//!
//! A file that cannot be read gets one line on stderr and no row. A file
//! that is read but does not decode as an image gets one line on stderr
//! *and* a row with its exact digests and empty PDQ fields, because exact
//! hash lists match any file, image or not. Either makes the exit status 1.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use sigil_core::decode::{DecodeError, DecodeOptions};
use sigil_core::pdq::{DihedralMethod, Profile};
use sigil_core::{Dihedral, ExactDigests, FileSignatures, SignOptions, Signer};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Csv,
    Jsonl,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Pre-processing profile: `full` (HMA/ThreatExchange, default) or
    /// `cli512` (Meta's C++ command-line hasher).
    #[arg(long, default_value = "full")]
    pub profile: Profile,
    /// Also print the 8 dihedral hashes (dih_orig ... dih_flipminus1).
    #[arg(long)]
    pub dihedral: bool,
    /// Worker threads (default: the number of CPUs).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: OutputFormat,
    /// Rotate/flip by the EXIF orientation tag before hashing (off by
    /// default: ThreatExchange hashes ignore the tag).
    #[arg(long)]
    pub exif_orientation: bool,
    /// Files or directories (searched recursively).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// One unit of work: a file to hash, or a path that already failed while
/// walking (reported in its place in the output order).
enum Job {
    File(PathBuf),
    WalkError(PathBuf, String),
}

/// What a worker hands to the writer.
enum Outcome {
    Signed(PathBuf, Box<FileSignatures>),
    Failed(PathBuf, String),
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let threads = match args.threads {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let options = SignOptions {
        profile: args.profile,
        dihedral: args.dihedral,
        // The reference's `dih_*` columns, bit-exact with Meta's hasher
        // (matching uses the pixel-domain ones instead).
        dihedral_method: DihedralMethod::Derived,
        decode: DecodeOptions {
            apply_exif_orientation: args.exif_orientation,
            ..DecodeOptions::default()
        },
    };

    let mut jobs = Vec::new();
    for p in &args.paths {
        collect(p, &mut jobs);
    }

    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if args.format == OutputFormat::Csv {
        write_csv_header(&mut out, args.dihedral).context("writing output")?;
    }
    let any_failed = hash_all(&jobs, options, threads, |outcome| {
        emit(&mut out, args.format, args.dihedral, outcome)
    })?;
    match out.flush() {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        r => r.context("writing output")?,
    }
    Ok(if any_failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Expands `path` into jobs: a file is one job, a directory its files in
/// name order, recursively. Symbolic links to directories are not
/// followed (no cycles); links to files are.
fn collect(path: &Path, jobs: &mut Vec<Job>) {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            jobs.push(Job::WalkError(path.to_path_buf(), e.to_string()));
            return;
        }
    };
    if !meta.is_dir() {
        jobs.push(Job::File(path.to_path_buf()));
        return;
    }
    let entries = match std::fs::read_dir(path) {
        Ok(rd) => rd.collect::<Result<Vec<_>, _>>(),
        Err(e) => Err(e),
    };
    let mut entries = match entries {
        Ok(v) => v,
        Err(e) => {
            jobs.push(Job::WalkError(
                path.to_path_buf(),
                format!("cannot list directory: {e}"),
            ));
            return;
        }
    };
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let p = entry.path();
        let is_dir_link = entry.file_type().is_ok_and(|t| t.is_symlink()) && p.is_dir();
        if !is_dir_link {
            collect(&p, jobs);
        }
    }
}

/// Hashes `jobs` on `threads` workers, each with its own [`Signer`], and
/// calls `sink` with each outcome in job order. Returns whether any job
/// failed.
///
/// Jobs go to rayon a window at a time and come back in order, so the
/// output is streamed in input order and memory holds one window of
/// results (digests), whatever the size of the tree.
fn hash_all(
    jobs: &[Job],
    options: SignOptions,
    threads: usize,
    mut sink: impl FnMut(&Outcome) -> io::Result<()>,
) -> anyhow::Result<bool> {
    use rayon::prelude::*;

    // Wide enough that one slow file holds up the others only briefly.
    let window = threads * 16;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("sigil-hash-{i}"))
        .build()
        .context("starting worker threads")?;
    let mut any_failed = false;
    for chunk in jobs.chunks(window) {
        let outcomes: Vec<Outcome> = pool.install(|| {
            chunk
                .par_iter()
                .map_init(
                    || Signer::new(options),
                    |signer, job| run_job(job, signer, &options),
                )
                .collect()
        });
        for outcome in &outcomes {
            any_failed |= failed(outcome);
            match sink(outcome) {
                Ok(()) => {}
                // The reader went away (e.g. `| head`): not an error of ours.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(any_failed),
                Err(e) => return Err(e).context("writing output"),
            }
        }
    }
    Ok(any_failed)
}

fn failed(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Signed(_, sig) => sig.image.is_err(),
        Outcome::Failed(..) => true,
    }
}

fn run_job(job: &Job, signer: &mut Signer, options: &SignOptions) -> Outcome {
    let path = match job {
        Job::File(p) => p,
        Job::WalkError(p, msg) => return Outcome::Failed(p.clone(), msg.clone()),
    };
    let max = options.decode.limits.max_bytes;
    // Over-limit files are not read whole: their exact digests are still
    // useful and can be streamed.
    match std::fs::metadata(path) {
        Ok(m) if m.len() > max => {
            let exact = std::fs::File::open(path).and_then(ExactDigests::of_reader);
            return match exact {
                Ok(exact) => Outcome::Signed(
                    path.clone(),
                    Box::new(FileSignatures {
                        exact,
                        image: Err(DecodeError::TooManyBytes { len: m.len(), max }),
                    }),
                ),
                Err(e) => Outcome::Failed(path.clone(), format!("cannot read: {e}")),
            };
        }
        _ => {}
    }
    match std::fs::read(path) {
        Ok(bytes) => Outcome::Signed(path.clone(), Box::new(signer.sign(&bytes))),
        Err(e) => Outcome::Failed(path.clone(), format!("cannot read: {e}")),
    }
}

const DIH_COLUMNS: [&str; 8] = [
    "dih_orig",
    "dih_rot90",
    "dih_rot180",
    "dih_rot270",
    "dih_flipx",
    "dih_flipy",
    "dih_flipplus1",
    "dih_flipminus1",
];

fn write_csv_header(out: &mut impl Write, dihedral: bool) -> io::Result<()> {
    let mut row = vec![
        "file", "width", "height", "pdq", "quality", "md5", "sha1", "sha256",
    ];
    if dihedral {
        row.extend(DIH_COLUMNS);
    }
    write_csv_record(out, &row)
}

/// One CSV record (RFC 4180 quoting where a cell needs it: paths may hold
/// commas, quotes or line breaks).
fn write_csv_record<S: AsRef<[u8]>>(out: &mut impl Write, row: &[S]) -> io::Result<()> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out);
    w.write_record(row).map_err(io::Error::other)?;
    w.flush()
}

fn emit(
    out: &mut impl Write,
    format: OutputFormat,
    dihedral: bool,
    outcome: &Outcome,
) -> io::Result<()> {
    let (path, sig) = match outcome {
        Outcome::Failed(path, msg) => {
            eprintln!("sigil: {}: {msg}", path.display());
            return Ok(());
        }
        Outcome::Signed(path, sig) => (path, sig),
    };
    if let Err(e) = &sig.image {
        eprintln!("sigil: {}: {e}", path.display());
    }
    let name = path.to_string_lossy();
    match format {
        OutputFormat::Csv => write_csv_row(out, &name, sig, dihedral),
        OutputFormat::Jsonl => write_json_row(out, &name, sig, dihedral),
    }
}

fn write_csv_row(
    out: &mut impl Write,
    name: &str,
    sig: &FileSignatures,
    dihedral: bool,
) -> io::Result<()> {
    let mut row = vec![name.to_string()];
    match &sig.image {
        Ok(img) => row.extend([
            img.width.to_string(),
            img.height.to_string(),
            img.pdq.to_string(),
            img.quality.to_string(),
        ]),
        Err(_) => row.extend(std::iter::repeat_n(String::new(), 4)),
    }
    row.extend([
        sig.exact.md5_hex(),
        sig.exact.sha1_hex().unwrap_or_default(),
        sig.exact.sha256_hex(),
    ]);
    if dihedral {
        match sig.image.as_ref().ok().and_then(|i| i.dihedral.as_ref()) {
            Some(hashes) => row.extend(hashes.iter().map(|h| h.to_string())),
            None => row.extend(std::iter::repeat_n(String::new(), DIH_COLUMNS.len())),
        }
    }
    write_csv_record(out, &row)
}

fn write_json_row(
    out: &mut impl Write,
    name: &str,
    sig: &FileSignatures,
    dihedral: bool,
) -> io::Result<()> {
    let mut obj = serde_json::Map::new();
    obj.insert("file".into(), name.into());
    match &sig.image {
        Ok(img) => {
            obj.insert("width".into(), img.width.into());
            obj.insert("height".into(), img.height.into());
            obj.insert("pdq".into(), img.pdq.to_hex().into());
            obj.insert("quality".into(), img.quality.into());
        }
        Err(e) => {
            for k in ["width", "height", "pdq", "quality"] {
                obj.insert(k.into(), serde_json::Value::Null);
            }
            obj.insert("error".into(), e.to_string().into());
        }
    }
    obj.insert("md5".into(), sig.exact.md5_hex().into());
    obj.insert("sha1".into(), sig.exact.sha1_hex().into());
    obj.insert("sha256".into(), sig.exact.sha256_hex().into());
    if dihedral {
        let hashes = sig.image.as_ref().ok().and_then(|i| i.dihedral.as_ref());
        for (k, v) in Dihedral::ALL.iter().enumerate() {
            let value = match hashes {
                Some(h) => h[k].to_hex().into(),
                None => serde_json::Value::Null,
            };
            obj.insert(format!("dih_{}", v.as_str()), value);
        }
    }
    serde_json::to_writer(&mut *out, &serde_json::Value::Object(obj))?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting() {
        let row = |cells: &[&str]| {
            let mut out = Vec::new();
            write_csv_record(&mut out, cells).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(row(&["a/b.jpg", "1"]), "a/b.jpg,1\n");
        assert_eq!(row(&["a,b.jpg"]), "\"a,b.jpg\"\n");
        assert_eq!(row(&["say \"hi\".png"]), "\"say \"\"hi\"\".png\"\n");
    }

    #[test]
    fn dihedral_columns_follow_dihedral_all() {
        for (c, d) in DIH_COLUMNS.iter().zip(Dihedral::ALL) {
            assert_eq!(*c, format!("dih_{}", d.as_str()));
        }
    }
}
