//! `sigil index ...`: build, update, inspect and query signature indexes.
//! Argument parsing and wiring only; the work is in `sigil_index`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use sigil_core::HashKind;
use sigil_index::import::{self, csv_field, spreadsheet_safe, Dropped};
use sigil_index::{
    ImportOptions, ImportStats, IndexReader, IndexWriter, RemoveBy, SegmentBuilder, Tombstone,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Build a new index from hash lists.
    Build(BuildArgs),
    /// Add entries from hash lists to an index (a new segment).
    Add(AddArgs),
    /// Remove entries of one list (--list) or of every list (--all-lists), by
    /// hash or by id (a tombstone file). Exit 1 if something asked for was
    /// not there (--missing-ok: 0).
    Remove(RemoveArgs),
    /// Merge all segments into one and drop removed entries.
    Compact(IndexArg),
    /// Print statistics about an index, with its live entries per list and
    /// kind (reads every record).
    Stats(StatsArgs),
    /// Check every checksum and structural invariant of an index.
    Verify(IndexArg),
    /// Write every live entry as CSV (hash,kind,id,list,category,note).
    Export(ExportArgs),
    /// Match hashes (one per line, files or stdin) and print JSON lines.
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
    /// Kind of every hash (pdq, md5, sha1, sha256); a line naming another
    /// kind is an error. Without it a line names its kind (a `kind` column,
    /// or `KIND:HEX` / `KIND HEX`) unless its length does (32 hex = md5,
    /// 40 = sha1): 64 hex may be PDQ or SHA-256, and sigil does not guess.
    #[arg(long)]
    kind: Option<HashKind>,
    /// Skip bad lines (and count them by reason) instead of failing.
    #[arg(long)]
    skip_invalid: bool,
    /// Refuse duplicate entries, entries already in the index and lines
    /// with extra fields (else they are counted, reported and not stored
    /// twice, or their extra fields ignored).
    #[arg(long)]
    strict: bool,
    /// Hash lists: plain (`[KIND:]HEX[,id,list,category,note]`) or CSV with a
    /// header (`hash,kind,id,list,category[,note]`); `-` reads stdin.
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
    /// What the input files' lines name: `hash` (with its kind, as in an
    /// import) or `id` (of --list).
    #[arg(long, default_value = "hash", value_parser = ["hash", "id"])]
    by: String,
    /// Remove only this list's entries (the same hash or id in another
    /// list stays).
    #[arg(long, conflicts_with = "all_lists")]
    list: Option<String>,
    /// Remove the hashes from every list (removals by hash only).
    #[arg(long)]
    all_lists: bool,
    /// Kind of the hashes (pdq, md5, sha1, sha256), as for an import.
    #[arg(long)]
    kind: Option<HashKind>,
    /// A hash to remove (repeatable), `HEX` or `KIND:HEX`.
    #[arg(long = "hash")]
    hashes: Vec<String>,
    /// An id of --list to remove (repeatable).
    #[arg(long = "id")]
    ids: Vec<String>,
    /// Exit 0 even if a hash or id asked for is not in the index (it is
    /// still reported).
    #[arg(long)]
    missing_ok: bool,
    /// Skip bad lines (counted) instead of failing.
    #[arg(long)]
    skip_invalid: bool,
    /// Refuse hash lines with other fields (id, list, ...), which a removal
    /// by hash does not read (else counted and reported).
    #[arg(long)]
    strict: bool,
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
    #[arg(long, default_value_t = sigil_match::DEFAULT_RADIUS)]
    radius: u32,
    /// Keep only the K nearest matches (the others are counted in `omitted`).
    #[arg(long)]
    k: Option<usize>,
    /// Also search the 8 dihedral variants (bit-domain approximation of the
    /// hash; a scan with the image at hand uses the exact ones).
    #[arg(long)]
    dihedral: bool,
    /// Only these lists (repeatable). A list the index does not hold is an
    /// error naming the lists it does.
    #[arg(long = "list")]
    lists: Vec<String>,
    /// Per-list radius cap, LIST=R (repeatable): that list's matches are
    /// within R and within --radius, as the server's `[matching]
    /// list_radius`. A list the index does not hold is an error naming the
    /// lists it does.
    #[arg(long = "list-radius", value_parser = parse_list_radius)]
    list_radius: Vec<(String, u32)>,
    /// Read each PDQ hash's quality (0-100) from the field after it, as
    /// Meta's pdq-photo-hasher writes `hash,quality,file`: a hash under
    /// --min-quality is not searched (verdict low_quality).
    #[arg(long)]
    with_quality: bool,
    /// With --with-quality: PDQ hashes under this quality are not matched.
    #[arg(long, default_value_t = sigil_match::DEFAULT_QUALITY_THRESHOLD, value_parser = clap::value_parser!(u32).range(0..=100))]
    min_quality: u32,
    /// Output format.
    #[arg(long, default_value = "jsonl", value_parser = ["jsonl"])]
    format: String,
    /// Files of hashes, one per line (default stdin; `-` = stdin): 64 hex
    /// is a PDQ hash; other kinds say theirs, `md5:HEX`, `sha1:HEX`,
    /// `sha256:HEX` (`pdq:HEX` too). Fields after the hash (`,`, tab or
    /// space) are ignored, but for --with-quality.
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
                "ok: {} generation {} (identity {}), {} segment(s), {} tombstone file(s), all checksums valid",
                a.index.display(),
                s.generation,
                r.identity(),
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

/// The name of an input in messages (`-` is stdin).
fn input_name(p: &Path) -> PathBuf {
    if p == Path::new("-") {
        PathBuf::from("<stdin>")
    } else {
        p.to_path_buf()
    }
}

/// Entries per list and kind, as `ncmec: pdq 598, md5 399; iwf: pdq 2`.
fn per_list(counts: &BTreeMap<String, BTreeMap<HashKind, u64>>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(list, kinds)| {
            let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            format!("{list}: {}", kinds.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `(first at line N)`, or nothing.
fn first_at(first: Option<u64>) -> String {
    first.map_or(String::new(), |l| format!(" (first at line {l})"))
}

/// Everything an import read: the entries, and what each input came to.
struct Imported {
    builder: SegmentBuilder,
    /// The inputs' names, and what each came to (same order).
    names: Vec<PathBuf>,
    stats: Vec<ImportStats>,
}

fn import_all(a: &ImportArgs) -> anyhow::Result<Imported> {
    let opts = ImportOptions {
        kind: a.kind,
        list: a.list.clone(),
        category: a.category.clone(),
        skip_invalid: a.skip_invalid,
        strict: a.strict,
    };
    let mut b = SegmentBuilder::new();
    let (mut names, mut stats) = (Vec::new(), Vec::new());
    for p in &a.inputs {
        let name = input_name(p);
        stats.push(import::import_reader(&name, open_input(p)?, &opts, &mut b)?);
        names.push(name);
    }
    if let Some(dir) = &a.enroll_images {
        enroll_images(dir, a, &mut b)?;
    }
    Ok(Imported {
        builder: b,
        names,
        stats,
    })
}

/// Drops repeated entries, and with `index` those it already holds;
/// reports what each input came to; refuses duplicates with --strict.
fn settle(
    imported: &mut Imported,
    index: Option<&IndexReader>,
    strict: bool,
) -> anyhow::Result<()> {
    let b = &mut imported.builder;
    let stats = &mut imported.stats;
    let repeats = b.drop_duplicates();
    let other_repeats = import::attribute_dropped(stats, &repeats, Dropped::Duplicate);
    let mut other_present = 0;
    if let Some(r) = index {
        let present = b.drop_where(|kind, key, list, id| r.has_live_entry(kind, key, list, id));
        other_present = import::attribute_dropped(stats, &present, Dropped::AlreadyIndexed);
    }
    for (name, s) in imported.names.iter().zip(stats.iter()) {
        let n = name.display();
        eprintln!(
            "{n}: {} entries read ({}){}",
            s.added,
            per_list(&s.per_list),
            if s.byte_order_mark {
                "; UTF-8 byte-order mark skipped"
            } else {
                ""
            }
        );
        if s.skipped_total() > 0 {
            let why: Vec<String> = s
                .skipped
                .iter()
                .map(|(class, k)| {
                    format!(
                        "{class} {}, first at line {}: {}",
                        k.lines.count,
                        k.lines.first_line.unwrap_or(0),
                        k.first_cause
                    )
                })
                .collect();
            eprintln!(
                "{n}: {} invalid lines skipped ({})",
                s.skipped_total(),
                why.join("; ")
            );
        }
        if s.extra_fields.count > 0 {
            eprintln!(
                "{n}: {} lines with fields past the format's columns, ignored{}",
                s.extra_fields.count,
                first_at(s.extra_fields.first_line)
            );
        }
        if s.duplicates.count > 0 {
            eprintln!(
                "{n}: {} duplicate entries (same kind, hash, list and id as an earlier one), stored once{}",
                s.duplicates.count,
                first_at(s.duplicates.first_line)
            );
        }
        if s.already_indexed.count > 0 {
            eprintln!(
                "{n}: {} entries already in the index, not added again{}",
                s.already_indexed.count,
                first_at(s.already_indexed.first_line)
            );
        }
        if strict {
            if let Some(line) = s.duplicates.first_line {
                bail!("{n}:{line}: duplicate entry (same kind, hash, list and id as an earlier one); --strict refuses duplicates, nothing was written");
            }
            if let Some(line) = s.already_indexed.first_line {
                bail!("{n}:{line}: entry already in the index; --strict refuses duplicates, nothing was written");
            }
        }
    }
    if other_repeats + other_present > 0 {
        eprintln!(
            "enrolled images: {other_repeats} duplicate and {other_present} already indexed entries, not stored again"
        );
    }
    for (list, ids) in import::ids_with_several_hashes(stats) {
        eprintln!(
            "{list}: {ids} ids carry more than one hash of one kind (all kept: an item may have \
             several, e.g. augmented variants)"
        );
    }
    Ok(())
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
    let enrolled: Vec<_> = files
        .par_iter()
        .map_init(sigil_core::pdq::PdqHasher::new, |hasher, p| {
            sigil_core::robust::enroll_file(p, a.augment, hasher)
        })
        .collect();
    let mut ids: BTreeMap<String, PathBuf> = BTreeMap::new();
    let (mut images, mut entries, mut skipped) = (0u64, 0u64, 0u64);
    for (path, result) in files.iter().zip(enrolled) {
        let e = match result {
            Ok(e) => e,
            Err(cause) if a.skip_invalid => {
                eprintln!("sigil: {}: {cause} (skipped)", path.display());
                skipped += 1;
                continue;
            }
            Err(cause) => bail!(
                "{}: {cause} (--skip-invalid skips such files)",
                path.display()
            ),
        };
        // The entry id is the file name's stem.
        let id = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if let Some(prev) = ids.insert(id.clone(), path.clone()) {
            bail!(
                "{} and {} both give entry id {id:?} (the file name stem); rename one",
                prev.display(),
                path.display(),
            );
        }
        if e.quality < sigil_match::DEFAULT_QUALITY_THRESHOLD {
            eprintln!(
                "sigil: {}: warning: PDQ quality {} is under {} (flat or tiny image); \
                 its hash matches unreliably",
                path.display(),
                e.quality,
                sigil_match::DEFAULT_QUALITY_THRESHOLD
            );
        }
        let hashes = e.hashes;
        for (hash, note) in &hashes {
            b.push_pdq(
                &hash.0,
                sigil_index::EntryMeta {
                    id: &id,
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
    let mut imported = import_all(&a.import)?;
    settle(&mut imported, None, a.import.strict)?;
    let counts = imported.builder.entry_counts();
    let n = imported.builder.len();
    let g = w.add_segment(imported.builder)?;
    eprintln!(
        "built {} (generation {g}) in {:.2} s: {n} entries ({})",
        a.output.display(),
        t.elapsed().as_secs_f64(),
        per_list(&counts)
    );
    Ok(ExitCode::SUCCESS)
}

fn add(a: AddArgs) -> anyhow::Result<ExitCode> {
    let mut w = IndexWriter::open(&a.index)?;
    let mut imported = import_all(&a.import)?;
    let current = IndexReader::open(&a.index)?;
    settle(&mut imported, Some(&current), a.import.strict)?;
    drop(current);
    let counts = imported.builder.entry_counts();
    let n = imported.builder.len();
    let before = w.generation();
    let g = w.add_segment(imported.builder)?;
    if g == before {
        eprintln!(
            "added nothing to {}: no new entries (generation {g} unchanged)",
            a.index.display()
        );
    } else {
        eprintln!(
            "added {n} entries to {} (generation {g}): {}",
            a.index.display(),
            per_list(&counts)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A removal asked for, and where it was asked.
struct Asked {
    from: String,
    removal: Tombstone,
}

fn describe_removal(t: &Tombstone) -> String {
    match t {
        Tombstone::Hash { kind, hash, list } => match list {
            Some(l) => format!("{kind} {hash} in list {l}"),
            None => format!("{kind} {hash} in any list"),
        },
        Tombstone::Id { list, id } => format!("id {id:?} in list {list}"),
    }
}

fn remove(a: RemoveArgs) -> anyhow::Result<ExitCode> {
    let by = if a.by == "id" {
        RemoveBy::Id
    } else {
        RemoveBy::Hash
    };
    let by_hash = !a.hashes.is_empty() || (by == RemoveBy::Hash && !a.inputs.is_empty());
    let by_id = !a.ids.is_empty() || (by == RemoveBy::Id && !a.inputs.is_empty());
    if !by_hash && !by_id {
        bail!("nothing to remove (give --hash, --id or input files)");
    }
    if by_id && a.list.is_none() {
        bail!("a removal by id needs --list NAME: ids belong to a list");
    }
    if by_hash && a.list.is_none() && !a.all_lists {
        bail!(
            "say which list to remove the hashes from: --list NAME removes them from that list \
             only, --all-lists from every list"
        );
    }
    let opts = ImportOptions {
        kind: a.kind,
        list: a.list.clone().unwrap_or_default(),
        category: String::new(),
        skip_invalid: a.skip_invalid,
        strict: a.strict,
    };
    let scope = a.list.as_deref();
    let mut asked: Vec<Asked> = Vec::new();
    for h in &a.hashes {
        let (t, _) = import::read_removals(
            Path::new("--hash"),
            h.as_bytes(),
            RemoveBy::Hash,
            &opts,
            scope,
        )?;
        if t.len() != 1 {
            bail!("--hash {h:?}: expected one hash, HEX or KIND:HEX");
        }
        asked.extend(t.into_iter().map(|(_, removal)| Asked {
            from: format!("--hash {h}"),
            removal,
        }));
    }
    for id in &a.ids {
        let (t, _) =
            import::read_removals(Path::new("--id"), id.as_bytes(), RemoveBy::Id, &opts, scope)?;
        if t.len() != 1 {
            bail!("--id {id:?}: expected one id");
        }
        asked.extend(t.into_iter().map(|(_, removal)| Asked {
            from: format!("--id {id}"),
            removal,
        }));
    }
    for p in &a.inputs {
        let name = input_name(p);
        let (t, s) = import::read_removals(&name, open_input(p)?, by, &opts, scope)?;
        let n = name.display();
        eprintln!("{n}: {} removals read", t.len());
        if s.skipped_total() > 0 {
            let first = s.skipped.values().next();
            eprintln!(
                "{n}: {} invalid lines skipped{}",
                s.skipped_total(),
                first.map_or(String::new(), |k| format!(
                    " (first at line {}: {})",
                    k.lines.first_line.unwrap_or(0),
                    k.first_cause
                ))
            );
        }
        if s.extra_fields.count > 0 {
            eprintln!(
                "{n}: {} lines with fields a removal by hash does not read (id, list, ...), ignored{}",
                s.extra_fields.count,
                first_at(s.extra_fields.first_line)
            );
        }
        asked.extend(t.into_iter().map(|(line, removal)| Asked {
            from: format!("{n}:{line}"),
            removal,
        }));
    }
    let removals: Vec<Tombstone> = asked.iter().map(|a| a.removal.clone()).collect();
    let mut w = IndexWriter::open(&a.index)?;
    let done = w.remove(&removals)?;
    let missing: Vec<&Asked> = asked
        .iter()
        .zip(&done.per_removal)
        .filter(|(_, &n)| n == 0)
        .map(|(a, _)| a)
        .collect();
    const SHOWN: usize = 20;
    for m in missing.iter().take(SHOWN) {
        eprintln!("{}: not found: {}", m.from, describe_removal(&m.removal));
    }
    if missing.len() > SHOWN {
        eprintln!("... and {} more not found", missing.len() - SHOWN);
    }
    eprintln!(
        "removed {} entries from {} (generation {}): {} asked, {} found, not found {}",
        done.entries,
        a.index.display(),
        done.generation,
        asked.len(),
        asked.len() - missing.len(),
        missing.len()
    );
    if !missing.is_empty() && !a.missing_ok {
        eprintln!(
            "sigil: {} of the {} removals asked found nothing to remove (exit status 1; \
             --missing-ok accepts that)",
            missing.len(),
            asked.len()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn stats(a: StatsArgs) -> anyhow::Result<ExitCode> {
    let t = Instant::now();
    let r = IndexReader::open(&a.index)?;
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let s = r.stats();
    let live = r.live_counts()?;
    if a.json {
        let mut v = serde_json::to_value(&s)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("live".into(), serde_json::to_value(&live)?);
            o.insert("identity".into(), r.identity().to_string().into());
        }
        println!("{v}");
    } else {
        println!("index:        {}", a.index.display());
        println!("generation:   {}", s.generation);
        println!("identity:     {}", r.identity());
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
                "{k:<13} {n} stored, {} distinct (before removals)",
                s.distinct_hashes.get(k).copied().unwrap_or(0)
            );
        }
        let total: u64 = live.values().flat_map(|k| k.values()).sum();
        println!("live:         {total} entries");
        for (list, kinds) in &live {
            let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            println!("  {list:<11} {}", kinds.join(", "));
        }
        println!("bytes:        {}", s.bytes);
        println!("lists:        {}", s.lists.join(", "));
        println!("open time:    {open_ms:.2} ms");
        println!("kernel:       {}", r.kernel());
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
            csv_field(&spreadsheet_safe(&e.id)),
            csv_field(&spreadsheet_safe(e.list)),
            csv_field(&spreadsheet_safe(e.category)),
            e.note
                .map(|n| csv_field(&spreadsheet_safe(n)))
                .unwrap_or_default()
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
    /// The hash, in lowercase hex.
    query: String,
    kind: HashKind,
    /// `match`, `no_match`, or `low_quality` (a PDQ hash under
    /// --min-quality, with --with-quality).
    verdict: sigil_match::Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    quality: Option<u32>,
    matches: &'a [sigil_match::MatchedEntry],
    /// Matches past `--k`, left out.
    #[serde(skip_serializing_if = "is_zero")]
    omitted: usize,
    index_generation: u64,
    /// The generation's identity (manifest checksum, 16 hex digits).
    index_identity: sigil_index::IndexIdentity,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One hash of `index query`'s input.
struct QueryItem {
    kind: HashKind,
    digest: Vec<u8>,
    quality: Option<u32>,
}

/// A line of `index query`'s input: `[KIND:]HEX` (no label: PDQ), with
/// `with_quality` a PDQ hash's quality in the next field.
fn parse_query_line(line: &str, with_quality: bool) -> Result<QueryItem, String> {
    let mut fields = line.split([',', '\t', ' ']).filter(|f| !f.is_empty());
    let first = fields.next().unwrap_or_default();
    let (kind, hex) = match first.split_once(':') {
        Some((label, hex)) => (label.parse::<HashKind>()?, hex),
        None => (HashKind::Pdq, first),
    };
    let mut digest = vec![0u8; kind.byte_len()];
    sigil_core::hash::decode_hex_into(hex, &mut digest)
        .map_err(|e| format!("bad {kind} hash {hex:?}: {e}"))?;
    let quality = match (with_quality, kind) {
        (true, HashKind::Pdq) => {
            let q = fields
                .next()
                .ok_or("no quality after the PDQ hash (--with-quality)")?;
            match q.parse::<u32>() {
                Ok(q) if q <= 100 => Some(q),
                _ => return Err(format!("quality {q:?} is not a number from 0 to 100")),
            }
        }
        _ => None,
    };
    Ok(QueryItem {
        kind,
        digest,
        quality,
    })
}

/// Matches every hash through `sigil_match` (the rule `scan` and `serve`
/// apply), the PDQ searches of each chunk run as one batch on all cores.
fn query(a: QueryArgs) -> anyhow::Result<ExitCode> {
    use sigil_match::{HashItem, MatchPolicy, MatchRequest, Matcher, OptionsError, Verdict};

    let r = IndexReader::open(&a.index)?;
    let policy = MatchPolicy {
        radius: a.radius,
        dihedral: a.dihedral,
        quality_threshold: a.min_quality,
        list_radius: a.list_radius.iter().cloned().collect(),
        ..MatchPolicy::unrestricted()
    };
    policy.validate()?;
    let request = MatchRequest {
        lists: a.lists.clone(),
        max_matches: a.k,
        ..MatchRequest::default()
    };
    let what = || {
        format!(
            "cannot query index {} (generation {})",
            a.index.display(),
            r.generation()
        )
    };
    let options = policy.resolve(&request, &r).with_context(what)?;
    // A cap on a list the index does not hold would do nothing: a typo
    // must not pass for a policy.
    if let Some(name) = policy.list_radius_not_held(&r).into_iter().next() {
        let flag = format!("--list-radius {name}={}", policy.list_radius[&name]);
        let known = r.stats().lists;
        return Err(
            anyhow::Error::new(OptionsError::UnknownList { name, known })
                .context(flag)
                .context(what()),
        );
    }
    let matcher = Matcher::new(&r, &options);
    let inputs = if a.inputs.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        a.inputs.clone()
    };
    let stdout = std::io::stdout().lock();
    let mut out = BufWriter::new(stdout);
    const CHUNK: usize = 4096;
    let mut batch: Vec<QueryItem> = Vec::with_capacity(CHUNK);
    let flush = |batch: &mut Vec<QueryItem>,
                 out: &mut BufWriter<std::io::StdoutLock<'static>>|
     -> anyhow::Result<()> {
        let items: Vec<HashItem<'_>> = batch
            .iter()
            .map(|q| HashItem {
                kind: q.kind,
                digest: &q.digest,
                quality: q.quality,
            })
            .collect();
        let queries = matcher.pdq_queries(&items);
        let found = r.search_pdq_batch(&queries.hashes, matcher.search_options());
        let outcomes = matcher.hash_outcomes(&items, &queries, found);
        for (q, o) in batch.iter().zip(&outcomes) {
            let hex = sigil_core::hash::encode_hex(&q.digest);
            if o.verdict == Verdict::Error {
                bail!(
                    "{}:{hex}: {}",
                    q.kind,
                    o.error.as_deref().unwrap_or("could not be matched")
                );
            }
            serde_json::to_writer(
                &mut *out,
                &QueryLine {
                    query: hex,
                    kind: q.kind,
                    verdict: o.verdict,
                    quality: q.quality,
                    matches: &o.matches,
                    omitted: o.omitted,
                    index_generation: o.generation,
                    index_identity: o.identity,
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
            let item = parse_query_line(t, a.with_quality)
                .map_err(|e| anyhow::anyhow!("{name}:{}: {e}", no + 1))?;
            batch.push(item);
            if batch.len() == CHUNK {
                flush(&mut batch, &mut out)?;
            }
        }
    }
    flush(&mut batch, &mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
