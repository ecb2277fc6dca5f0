//! `sigil index ...`: build, update, inspect and query signature indexes.
//! Argument parsing and wiring only; the work is in `sigil_index`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use sigil_core::{HashKind, PdqHash};
use sigil_index::import::{self, csv_field};
use sigil_index::{
    ImportOptions, IndexReader, IndexWriter, RemoveBy, SearchOptions, SegmentBuilder, Tombstone,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Build a new index from hash lists.
    Build(BuildArgs),
    /// Add entries from hash lists to an index (a new segment).
    Add(AddArgs),
    /// Remove entries by hash or by (list, id) (a tombstone file).
    Remove(RemoveArgs),
    /// Merge all segments into one and drop removed entries.
    Compact(IndexArg),
    /// Print statistics about an index.
    Stats(StatsArgs),
    /// Check every checksum and structural invariant of an index.
    Verify(IndexArg),
    /// Write every live entry as CSV (hash,kind,id,list,category,note).
    Export(ExportArgs),
    /// Search PDQ hashes (one hex per line, files or stdin) and print JSON lines.
    Query(QueryArgs),
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// List name for lines that do not name one.
    #[arg(long, default_value = "default")]
    list: String,
    /// Category label for lines that do not give one (e.g. A1, B2).
    #[arg(long, default_value = "")]
    category: String,
    /// Kind of every hash (pdq, md5, sha1, sha256); default: kind column or hex length
    /// (64 = pdq, 32 = md5, 40 = sha1).
    #[arg(long)]
    kind: Option<HashKind>,
    /// Skip bad lines (and count them) instead of failing.
    #[arg(long)]
    skip_invalid: bool,
    /// Hash lists: plain (`HEX[,id,list,category,note]`) or CSV with a header
    /// (`hash,kind,id,list,category[,note]`); `-` reads stdin.
    #[arg(required_unless_present = "enroll_images")]
    inputs: Vec<PathBuf>,
    /// Enrol the originals in DIR (every file directly in it, not
    /// recursive): each image's PDQ hash is stored with the file name stem as
    /// entry id, in --list with --category. An image that cannot be read or
    /// decoded is an error naming the file and the cause (--skip-invalid
    /// reports, counts and skips it).
    #[arg(long, value_name = "DIR")]
    enroll_images: Option<PathBuf>,
    /// With --enroll-images: also store the hashes of crops (90% and 80% of
    /// each side, on a 3x3 grid of positions) and small rotations (+-3, +-6
    /// degrees) of each original, all under the original's entry id (about
    /// 23 hashes per image). Measured recall and false-positive rate:
    /// docs/robustness.md.
    #[arg(long, requires = "enroll_images")]
    augment: bool,
}

#[derive(clap::Args)]
pub struct BuildArgs {
    /// Index directory to create.
    #[arg(long, short)]
    output: PathBuf,
    #[command(flatten)]
    import: ImportArgs,
}

#[derive(clap::Args)]
pub struct AddArgs {
    /// Index directory.
    index: PathBuf,
    #[command(flatten)]
    import: ImportArgs,
}

#[derive(clap::Args)]
pub struct RemoveArgs {
    /// Index directory.
    index: PathBuf,
    /// What the input lines name: `hash` (any kind) or `id` (of --list).
    #[arg(long, default_value = "hash", value_parser = ["hash", "id"])]
    by: String,
    /// List of the ids (with --by id or --id).
    #[arg(long, default_value = "default")]
    list: String,
    /// Kind of the hashes (default: by hex length).
    #[arg(long)]
    kind: Option<HashKind>,
    /// A hash to remove (repeatable).
    #[arg(long = "hash")]
    hashes: Vec<String>,
    /// An id of --list to remove (repeatable).
    #[arg(long = "id")]
    ids: Vec<String>,
    /// Skip bad lines instead of failing.
    #[arg(long)]
    skip_invalid: bool,
    /// Files of hashes or ids, one per line; `-` reads stdin.
    inputs: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub struct IndexArg {
    /// Index directory.
    index: PathBuf,
}

#[derive(clap::Args)]
pub struct StatsArgs {
    /// Index directory.
    index: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Index directory.
    index: PathBuf,
    /// Output file (default stdout).
    #[arg(long, short)]
    output: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct QueryArgs {
    /// Index directory.
    index: PathBuf,
    /// Inclusive Hamming radius (0..=256).
    #[arg(long, default_value_t = 31)]
    radius: u32,
    /// Keep only the K nearest matches.
    #[arg(long)]
    k: Option<usize>,
    /// Also search the 8 dihedral variants (bit-domain approximation of the
    /// hash; a scan with the image at hand uses the exact ones).
    #[arg(long)]
    dihedral: bool,
    /// Only these lists (repeatable).
    #[arg(long = "list")]
    lists: Vec<String>,
    /// Per-list radius, LIST=R (repeatable).
    #[arg(long = "list-radius", value_parser = parse_list_radius)]
    list_radius: Vec<(String, u32)>,
    /// Output format.
    #[arg(long, default_value = "jsonl", value_parser = ["jsonl"])]
    format: String,
    /// Files of PDQ hashes, one 64-hex per line (default stdin; `-` = stdin).
    inputs: Vec<PathBuf>,
}

fn parse_list_radius(s: &str) -> Result<(String, u32), String> {
    let (l, r) = s.rsplit_once('=').ok_or("expected LIST=RADIUS")?;
    let r: u32 = r.parse().map_err(|e| format!("bad radius {r:?}: {e}"))?;
    Ok((l.to_string(), r))
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Build(a) => build(a),
        Command::Add(a) => add(a),
        Command::Remove(a) => remove(a),
        Command::Compact(a) => {
            let t = Instant::now();
            let mut w = IndexWriter::open(&a.index)?;
            let g = w.compact()?;
            eprintln!(
                "compacted {} into generation {g} in {:.2} s",
                a.index.display(),
                t.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats(a) => stats(a),
        Command::Verify(a) => {
            let r = IndexReader::open(&a.index)?;
            r.verify()?;
            let s = r.stats();
            println!(
                "ok: {} generation {}, {} segment(s), {} tombstone file(s), all checksums valid",
                a.index.display(),
                s.generation,
                s.segments,
                s.tombstone_files
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(a) => export(a),
        Command::Query(a) => query(a),
    }
}

fn open_input(path: &Path) -> anyhow::Result<Box<dyn BufRead>> {
    if path == Path::new("-") {
        Ok(Box::new(BufReader::new(std::io::stdin())))
    } else {
        let f = File::open(path).with_context(|| format!("{}: open", path.display()))?;
        Ok(Box::new(BufReader::with_capacity(1 << 20, f)))
    }
}

fn import_all(a: &ImportArgs) -> anyhow::Result<SegmentBuilder> {
    let opts = ImportOptions {
        kind: a.kind,
        list: a.list.clone(),
        category: a.category.clone(),
        skip_invalid: a.skip_invalid,
    };
    let mut b = SegmentBuilder::new();
    for p in &a.inputs {
        let name = if p == Path::new("-") {
            PathBuf::from("<stdin>")
        } else {
            p.clone()
        };
        let s = import::import_reader(&name, open_input(p)?, &opts, &mut b)?;
        eprintln!(
            "{}: {} entries{}",
            name.display(),
            s.added,
            if s.skipped > 0 {
                format!(", {} invalid lines skipped", s.skipped)
            } else {
                String::new()
            }
        );
    }
    if let Some(dir) = &a.enroll_images {
        enroll_images(dir, a, &mut b)?;
    }
    Ok(b)
}

/// What enrolling one file came to.
struct Enrolled {
    path: PathBuf,
    id: String,
    result: Result<Vec<(PdqHash, Option<String>)>, String>,
    low_quality: Option<u32>,
}

/// Reads, decodes and hashes one original: its own PDQ hash first (as
/// `sigil scan` and `sigil serve` compute it), then, with `augment`, the
/// hashes of its crops and small rotations, each with a note naming the
/// variant.
fn enroll_one(path: &Path, augment: bool, hasher: &mut sigil_core::pdq::PdqHasher) -> Enrolled {
    use sigil_core::pdq::Profile;
    use sigil_core::robust::{enrollment_hashes, AugmentOptions};
    use sigil_core::{DecodeOptions, Pixels};

    let id = path
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let decode_opts = DecodeOptions::default();
    let decoded = std::fs::metadata(path)
        .map_err(|e| format!("cannot read: {e}"))
        .and_then(|m| {
            if m.len() > decode_opts.limits.max_bytes {
                Err(format!(
                    "{} bytes, over the decode limit of {} bytes",
                    m.len(),
                    decode_opts.limits.max_bytes
                ))
            } else {
                std::fs::read(path).map_err(|e| format!("cannot read: {e}"))
            }
        })
        .and_then(|bytes| {
            sigil_core::decode::decode(&bytes, &decode_opts)
                .map_err(|e| format!("cannot decode: {e}"))
        });
    let img = match decoded {
        Ok(img) => img,
        Err(e) => {
            return Enrolled {
                path: path.to_path_buf(),
                id,
                result: Err(e),
                low_quality: None,
            }
        }
    };
    let (w, h) = (img.width, img.height);
    let plain = match &img.pixels {
        Pixels::Rgb8(px) => hasher.hash_rgb8(w, h, px, Profile::Full),
        Pixels::Luma8(px) => hasher.hash_luma8(w, h, px, Profile::Full),
    };
    let mut hashes = vec![(plain.hash, None)];
    if augment {
        for e in enrollment_hashes(hasher, &img, &AugmentOptions::default())
            .into_iter()
            .skip(1)
        {
            if hashes.iter().all(|(h, _)| *h != e.hash) {
                hashes.push((e.hash, Some(format!("augmented: {}", e.variant.name()))));
            }
        }
    }
    Enrolled {
        path: path.to_path_buf(),
        id,
        result: Ok(hashes),
        low_quality: (plain.quality < 50).then_some(plain.quality),
    }
}

/// `--enroll-images DIR [--augment]`: hashes every file directly in DIR (in
/// name order, on all cores) into `b`.
fn enroll_images(dir: &Path, a: &ImportArgs, b: &mut SegmentBuilder) -> anyhow::Result<()> {
    use rayon::prelude::*;

    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)
        .with_context(|| format!("--enroll-images {}: cannot list", dir.display()))?
    {
        let entry = entry.with_context(|| format!("{}: cannot list", dir.display()))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Follows symbolic links to files; directories are not descended.
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    let enrolled: Vec<Enrolled> = files
        .par_iter()
        .map_init(sigil_core::pdq::PdqHasher::new, |hasher, p| {
            enroll_one(p, a.augment, hasher)
        })
        .collect();
    let mut ids: BTreeMap<String, PathBuf> = BTreeMap::new();
    let (mut images, mut entries, mut skipped) = (0u64, 0u64, 0u64);
    for e in enrolled {
        let hashes = match e.result {
            Ok(h) => h,
            Err(cause) if a.skip_invalid => {
                eprintln!("sigil: {}: {cause} (skipped)", e.path.display());
                skipped += 1;
                continue;
            }
            Err(cause) => bail!(
                "{}: {cause} (--skip-invalid skips such files)",
                e.path.display()
            ),
        };
        if let Some(prev) = ids.insert(e.id.clone(), e.path.clone()) {
            bail!(
                "{} and {} both give entry id {:?} (the file name stem); rename one",
                prev.display(),
                e.path.display(),
                e.id
            );
        }
        if let Some(q) = e.low_quality {
            eprintln!(
                "sigil: {}: warning: PDQ quality {q} is under 50 (flat or tiny image); \
                 its hash matches unreliably",
                e.path.display()
            );
        }
        for (hash, note) in &hashes {
            b.push_pdq(
                &hash.0,
                sigil_index::EntryMeta {
                    id: &e.id,
                    list: &a.list,
                    category: &a.category,
                    note: note.as_deref(),
                },
            )?;
        }
        images += 1;
        entries += hashes.len() as u64;
    }
    eprintln!(
        "{}: {images} images enrolled, {entries} PDQ entries{}{}",
        dir.display(),
        if a.augment {
            format!(" ({} augmented)", entries - images)
        } else {
            String::new()
        },
        if skipped > 0 {
            format!(", {skipped} invalid files skipped")
        } else {
            String::new()
        }
    );
    Ok(())
}

fn build(a: BuildArgs) -> anyhow::Result<ExitCode> {
    let t = Instant::now();
    let mut w = IndexWriter::create(&a.output)?;
    let b = import_all(&a.import)?;
    let n = b.len();
    let g = w.add_segment(b)?;
    eprintln!(
        "built {} (generation {g}, {n} entries) in {:.2} s",
        a.output.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn add(a: AddArgs) -> anyhow::Result<ExitCode> {
    let mut w = IndexWriter::open(&a.index)?;
    let b = import_all(&a.import)?;
    let n = b.len();
    let g = w.add_segment(b)?;
    eprintln!(
        "added {n} entries to {} (generation {g})",
        a.index.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn remove(a: RemoveArgs) -> anyhow::Result<ExitCode> {
    let by = if a.by == "id" {
        RemoveBy::Id
    } else {
        RemoveBy::Hash
    };
    let opts = ImportOptions {
        kind: a.kind,
        list: a.list.clone(),
        category: String::new(),
        skip_invalid: a.skip_invalid,
    };
    let mut tombs: Vec<Tombstone> = Vec::new();
    for h in &a.hashes {
        let (t, _) =
            import::read_removals(Path::new("--hash"), h.as_bytes(), RemoveBy::Hash, &opts)?;
        tombs.extend(t);
    }
    for id in &a.ids {
        tombs.push(Tombstone::Id {
            list: a.list.clone(),
            id: id.clone(),
        });
    }
    for p in &a.inputs {
        let (t, s) = import::read_removals(p, open_input(p)?, by, &opts)?;
        if s.skipped > 0 {
            eprintln!("{}: {} invalid lines skipped", p.display(), s.skipped);
        }
        tombs.extend(t);
    }
    if tombs.is_empty() {
        bail!("nothing to remove (give --hash, --id or input files)");
    }
    let mut w = IndexWriter::open(&a.index)?;
    let g = w.add_tombstones(&tombs)?;
    eprintln!(
        "recorded {} removal(s) in {} (generation {g})",
        tombs.len(),
        a.index.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn stats(a: StatsArgs) -> anyhow::Result<ExitCode> {
    let t = Instant::now();
    let r = IndexReader::open(&a.index)?;
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let s = r.stats();
    if a.json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        println!("index:        {}", a.index.display());
        println!("generation:   {}", s.generation);
        println!(
            "segments:     {} ({} with MIH tables)",
            s.segments, s.mih_segments
        );
        println!(
            "tombstones:   {} in {} file(s)",
            s.tombstones, s.tombstone_files
        );
        for (k, n) in &s.entries {
            println!(
                "{k:<13} {n} entries, {} distinct",
                s.distinct_hashes.get(k).copied().unwrap_or(0)
            );
        }
        println!("bytes:        {}", s.bytes);
        println!("lists:        {}", s.lists.join(", "));
        println!("open time:    {open_ms:.2} ms");
        println!("kernel:       {:?}", r.kernel());
    }
    Ok(ExitCode::SUCCESS)
}

fn export(a: ExportArgs) -> anyhow::Result<ExitCode> {
    let r = IndexReader::open(&a.index)?;
    let out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(File::create(p).with_context(|| format!("{}: create", p.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(out);
    writeln!(out, "hash,kind,id,list,category,note")?;
    let mut io_err = None;
    r.for_each_entry(|kind, key, e| {
        if let Err(err) = writeln!(
            out,
            "{},{},{},{},{},{}",
            sigil_core::hash::encode_hex(key),
            kind,
            csv_field(&e.id),
            csv_field(e.list),
            csv_field(e.category),
            e.note.map(csv_field).unwrap_or_default()
        ) {
            io_err = Some(err);
        }
        Ok(())
    })?;
    if let Some(e) = io_err {
        return Err(e).context("write export");
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[derive(serde::Serialize)]
struct QueryLine<'a> {
    query: String,
    matches: &'a [sigil_index::Match],
}

fn query(a: QueryArgs) -> anyhow::Result<ExitCode> {
    if a.radius > sigil_index::reader::MAX_RADIUS {
        bail!("--radius {} is over 256", a.radius);
    }
    let r = IndexReader::open(&a.index)?;
    let opts = SearchOptions {
        radius: a.radius,
        k: a.k,
        dihedral: a.dihedral,
        lists: (!a.lists.is_empty()).then(|| a.lists.clone()),
        list_radius: a.list_radius.iter().cloned().collect::<BTreeMap<_, _>>(),
    };
    let inputs = if a.inputs.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        a.inputs.clone()
    };
    let stdout = std::io::stdout().lock();
    let mut out = BufWriter::new(stdout);
    const CHUNK: usize = 4096;
    let mut batch: Vec<PdqHash> = Vec::with_capacity(CHUNK);
    let flush = |batch: &mut Vec<PdqHash>,
                 out: &mut BufWriter<std::io::StdoutLock<'static>>|
     -> anyhow::Result<()> {
        let results = r.search_pdq_batch(batch, &opts);
        for (q, m) in batch.iter().zip(&results) {
            serde_json::to_writer(
                &mut *out,
                &QueryLine {
                    query: q.to_hex(),
                    matches: m,
                },
            )?;
            out.write_all(b"\n")?;
        }
        batch.clear();
        Ok(())
    };
    for p in &inputs {
        let name = if p == Path::new("-") {
            "<stdin>".into()
        } else {
            p.display().to_string()
        };
        for (no, line) in open_input(p)?.lines().enumerate() {
            let line = line.with_context(|| format!("{name}: read"))?;
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let hex = t.split([',', '\t', ' ']).next().unwrap_or(t);
            let h = PdqHash::from_hex(hex)
                .map_err(|e| anyhow::anyhow!("{name}:{}: bad PDQ hash {hex:?}: {e}", no + 1))?;
            batch.push(h);
            if batch.len() == CHUNK {
                flush(&mut batch, &mut out)?;
            }
        }
    }
    flush(&mut batch, &mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
