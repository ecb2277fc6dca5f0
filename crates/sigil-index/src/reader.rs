//! `IndexReader`: one consistent, mapped generation of an index, and the
//! searches over it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sigil_core::{Dihedral, HashKind, PdqHash};

use crate::error::{IndexError, Result};
use crate::kernels::SearchKernel;
use crate::manifest::{FileRef, IndexIdentity, Manifest};
use crate::mih;
use crate::mih_batch;
use crate::record::RawRecord;
use crate::segment::{EntryRef, Segment};
use crate::tombstone::{self, Tombstone, TombstoneSet};

/// Batches of plain range searches at least this large take the batched
/// MIH search ([`crate::mih_batch`]); smaller ones share too few buckets
/// for the sort to pay.
pub const BATCH_MIN: usize = 16;

/// Largest meaningful radius (all 256 bits).
pub const MAX_RADIUS: u32 = 256;

/// What a PDQ search returns and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchOptions {
    /// Inclusive Hamming radius: matches have `distance <= radius`. Default 31.
    pub radius: u32,
    /// Keep only the `k` nearest matches (ties broken by index order).
    pub k: Option<usize>,
    /// Also search the 8 dihedral variants of the query (bit-domain
    /// approximation, see [`PdqHash::dihedral_transform`]) and report the variant.
    pub dihedral: bool,
    /// Only these lists (None = all).
    pub lists: Option<Vec<String>>,
    /// Per-list radius overriding `radius` (may be smaller or larger).
    pub list_radius: BTreeMap<String, u32>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            radius: 31,
            k: None,
            dihedral: false,
            lists: None,
            list_radius: BTreeMap::new(),
        }
    }
}

/// One matching entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    pub id: String,
    pub list: String,
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub kind: HashKind,
    pub distance: u32,
    /// Which dihedral variant of the query matched (dihedral searches only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<Dihedral>,
}

/// Counts describing a generation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct IndexStats {
    pub generation: u64,
    pub segments: usize,
    pub tombstone_files: usize,
    /// Distinct removals in force.
    pub tombstones: usize,
    /// Stored entries per kind (before tombstones).
    pub entries: BTreeMap<String, u64>,
    /// Distinct keys per kind.
    pub distinct_hashes: BTreeMap<String, u64>,
    /// Segments with multi-index hashing tables.
    pub mih_segments: usize,
    pub bytes: u64,
    pub lists: Vec<String>,
}

/// Which search algorithm a reader uses for PDQ range queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchPlan {
    /// Per segment and query, the cheaper of MIH and flat scan (cost model).
    Auto,
    /// Always the flat scan.
    Flat,
    /// MIH wherever the segment has tables (flat scan otherwise).
    Mih,
}

/// A hit before metadata: segment number, row, distance, variant number.
#[derive(Clone, Copy, Debug)]
struct Hit {
    seg: u32,
    row: u32,
    dist: u32,
    variant: u8,
}

/// The id removals of one list: which removals (by index) name each id,
/// numeric and string ids apart, as records store them.
type IdRemovals<'a> = (HashMap<u64, Vec<usize>>, HashMap<&'a str, Vec<usize>>);

/// Where a record lies: segment number, kind code, row, and its place
/// among the row's records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct RecordAt {
    seg: u32,
    kind: u8,
    row: u32,
    k: u32,
}

impl RecordAt {
    fn kind(self) -> HashKind {
        HashKind::ALL[self.kind as usize]
    }
}

/// One mapped generation. Cheap to share behind an `Arc`; searches take `&self`.
pub struct IndexReader {
    dir: PathBuf,
    /// The directory `dir` resolved to when this generation was opened.
    resolved: PathBuf,
    identity: IndexIdentity,
    generation: u64,
    segments: Vec<(Segment, u64)>,
    tombstones: TombstoneSet,
    tombstone_files: usize,
    kernel: SearchKernel,
    plan: SearchPlan,
}

/// The directory an index path resolves to now (symlinks followed), or
/// the path itself where it cannot be resolved (the open that follows
/// reports why).
pub(crate) fn resolve_dir(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn check_ref(path: &Path, r: &FileRef, len: u64, header: u64) -> Result<()> {
    if r.len != len || r.header_xxh3 != format!("{header:016x}") {
        return Err(IndexError::corrupt(
            path,
            "file does not match the manifest (length or header checksum differs)",
        ));
    }
    Ok(())
}

impl IndexReader {
    /// Opens the current generation of the index directory `path`: reads
    /// the manifest, maps and validates every segment (header-only, constant
    /// time in the number of entries) and loads the tombstones.
    pub fn open(path: impl AsRef<Path>) -> Result<IndexReader> {
        let dir = path.as_ref();
        // The manifest and the files it names are read from the directory
        // the path resolves to once, here: a symlink swapped to another
        // build meanwhile cannot mix two builds' files.
        let resolved = resolve_dir(dir);
        // A compaction may delete files between our reading the manifest and
        // opening them; re-read the manifest and try again.
        let mut last = None;
        for _ in 0..3 {
            let (manifest, identity) = Manifest::load_with_identity(&resolved)?;
            match Self::open_manifest(dir, &resolved, &manifest, identity) {
                Err(IndexError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    last = Some(source);
                    continue;
                }
                other => return other,
            }
        }
        Err(IndexError::io(
            dir,
            "open segment",
            last.unwrap_or_else(|| std::io::Error::other("segment vanished")),
        ))
    }

    fn open_manifest(
        dir: &Path,
        resolved: &Path,
        manifest: &Manifest,
        identity: IndexIdentity,
    ) -> Result<IndexReader> {
        let mut segments = Vec::with_capacity(manifest.segments.len());
        for r in &manifest.segments {
            let p = resolved.join(&r.file);
            let seg = Segment::open(&p)?;
            check_ref(&p, r, seg.file_len(), seg.header_checksum())?;
            segments.push((seg, r.generation));
        }
        let mut tombstones = TombstoneSet::default();
        for r in &manifest.tombstones {
            let p = resolved.join(&r.file);
            let (list, len, header) = tombstone::read_file(&p)?;
            check_ref(&p, r, len, header)?;
            for t in &list {
                tombstones.insert(t, r.generation);
            }
        }
        Ok(IndexReader {
            dir: dir.to_path_buf(),
            resolved: resolved.to_path_buf(),
            identity,
            generation: manifest.generation,
            segments,
            tombstones,
            tombstone_files: manifest.tombstones.len(),
            kernel: SearchKernel::detect(),
            plan: SearchPlan::Auto,
        })
    }

    /// Uses a given search kernel (tests and benchmarks compare them).
    /// Any [`SearchKernel`] is one this CPU runs: its constructors check.
    pub fn with_kernel(mut self, kernel: SearchKernel) -> Self {
        self.kernel = kernel;
        self
    }

    /// Uses a given search plan (tests and benchmarks compare them).
    pub fn with_plan(mut self, plan: SearchPlan) -> Self {
        self.plan = plan;
        self
    }

    /// The plan in use.
    pub fn plan(&self) -> SearchPlan {
        self.plan
    }

    /// The kernel in use.
    pub fn kernel(&self) -> SearchKernel {
        self.kernel
    }

    /// The generation number of the manifest this reader opened.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The index directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The identity of the manifest this reader opened: which generation
    /// this is, where the number alone cannot tell two builds apart.
    pub fn identity(&self) -> IndexIdentity {
        self.identity
    }

    /// Where this generation lives: the directory the index path resolved
    /// to when it was opened, and its manifest's identity.
    pub fn on_disk(&self) -> crate::shared::OnDisk {
        crate::shared::OnDisk {
            dir: self.resolved.clone(),
            identity: self.identity,
        }
    }

    /// The mapped segments with their generations.
    pub fn segments(&self) -> impl Iterator<Item = (&Segment, u64)> {
        self.segments.iter().map(|(s, g)| (s, *g))
    }

    /// Checks every checksum and structural invariant of every file: the
    /// segments here (reads every byte of them), the tombstone files fully
    /// at [`IndexReader::open`] already. `sigil index verify` and every
    /// generation a server puts in service pass through this.
    pub fn verify(&self) -> Result<()> {
        for (s, _) in &self.segments {
            s.verify()?;
        }
        Ok(())
    }

    /// How much of this generation's segments is in memory and in 2 MiB
    /// pages, as this process maps them now (see [`crate::residency`]);
    /// `None` where `/proc/self/smaps` cannot be read. Walks the process's
    /// page tables: a few milliseconds for a 1 GB index, so for metrics
    /// scrapes, not for every request.
    pub fn residency(&self) -> Option<crate::Residency> {
        let ranges: Vec<(usize, usize)> = self
            .segments
            .iter()
            .map(|(s, _)| s.mapped_range())
            .collect();
        crate::residency::of_ranges(&ranges)
    }

    /// Statistics of this generation.
    pub fn stats(&self) -> IndexStats {
        let mut entries = BTreeMap::new();
        let mut distinct = BTreeMap::new();
        let mut lists: Vec<String> = Vec::new();
        let mut bytes = 0;
        for (s, _) in &self.segments {
            bytes += s.file_len();
            for kind in HashKind::ALL {
                let n = s.key_count(kind) as u64;
                if n > 0 {
                    *distinct.entry(kind.as_str().to_string()).or_insert(0) += n;
                    *entries.entry(kind.as_str().to_string()).or_insert(0) += s.record_count(kind);
                }
            }
            for l in s.lists() {
                if !lists.contains(l) {
                    lists.push(l.clone());
                }
            }
        }
        lists.sort();
        IndexStats {
            generation: self.generation,
            segments: self.segments.len(),
            tombstone_files: self.tombstone_files,
            tombstones: self.tombstones.len(),
            entries,
            distinct_hashes: distinct,
            mih_segments: self.segments.iter().filter(|(s, _)| s.has_mih()).count(),
            bytes,
            lists,
        }
    }

    /// Whether a search of `radius` in `seg` takes its MIH tables.
    fn use_mih(&self, seg: &Segment, views: &[mih::SubstringView<'_>], radius: u32) -> bool {
        !views.is_empty()
            && match self.plan {
                SearchPlan::Auto => {
                    mih::mih_is_cheaper(seg.pdq_keys().len(), &seg.mih_layout(), radius)
                }
                SearchPlan::Flat => false,
                SearchPlan::Mih => true,
            }
    }

    /// Raw range search of one query hash over every segment.
    fn raw_pdq(
        &self,
        q: &[u8; 32],
        radius: u32,
        variant: u8,
        scratch: &mut mih::MihScratch,
        hits: &mut Vec<Hit>,
    ) {
        let mut out = Vec::new();
        for (si, (seg, _)) in self.segments.iter().enumerate() {
            let keys = seg.pdq_keys();
            if keys.is_empty() {
                continue;
            }
            out.clear();
            let views = seg.mih_views();
            if self.use_mih(seg, &views, radius) {
                self.kernel
                    .mih_search(keys, &views, q, radius, scratch, &mut out);
            } else {
                self.kernel.flat_scan(keys, q, radius, &mut out);
            }
            hits.extend(out.iter().map(|&(row, dist)| Hit {
                seg: si as u32,
                row,
                dist,
                variant,
            }));
        }
    }

    /// Every PDQ entry within the radius of `query` (see [`SearchOptions`]).
    pub fn search_pdq(&self, query: &PdqHash, opts: &SearchOptions) -> Vec<Match> {
        if opts.dihedral {
            let variants: [PdqHash; 8] =
                std::array::from_fn(|i| query.dihedral_transform(Dihedral::ALL[i]));
            self.search_pdq_dihedral(&variants, opts)
        } else {
            self.search_variants(&[*query], false, opts)
        }
    }

    /// Searches the 8 dihedral variants of an image, in `Dihedral::ALL`
    /// order (e.g. the exact DCT-derived ones from `PdqHasher::dihedral_*`);
    /// each entry is reported once, with its smallest distance and the variant.
    pub fn search_pdq_dihedral(&self, variants: &[PdqHash; 8], opts: &SearchOptions) -> Vec<Match> {
        self.search_variants(variants, true, opts)
    }

    /// Many queries; the result `i` answers `queries[i]`, exactly as
    /// [`IndexReader::search_pdq`] would. Runs on the rayon pool. A plain
    /// range search of [`BATCH_MIN`] queries or more is split by MIH
    /// substring ([`mih_batch::split_substrings`]), not by query: every
    /// thread walks its share of the tables once for the whole batch, so
    /// the batch keeps the size that makes it cheap per query (at 10M
    /// entries, 0.59 of a lone search at 1,000 per batch and 0.32 at
    /// 4,000, on one thread). Other searches take an equal share of the
    /// queries per thread.
    pub fn search_pdq_batch(&self, queries: &[PdqHash], opts: &SearchOptions) -> Vec<Vec<Match>> {
        let threads = rayon::current_num_threads().max(1);
        if threads == 1 || opts.dihedral || opts.k.is_some() || queries.len() < BATCH_MIN {
            let share = queries.len().div_ceil(threads).max(BATCH_MIN);
            return queries
                .par_chunks(share)
                .flat_map_iter(|c| self.search_pdq_many(c, opts))
                .collect();
        }
        let radius = self.max_radius(opts);
        let hits = self.batch_hits(queries, radius, threads);
        hits.into_par_iter()
            .map(|h| self.matches_from_hits(h, false, opts, radius))
            .collect()
    }

    /// Many queries on the calling thread; the result `i` answers
    /// `queries[i]`, exactly as [`IndexReader::search_pdq`] would. Plain
    /// range searches of [`BATCH_MIN`] queries or more go through the
    /// batched MIH search ([`crate::mih_batch`]), which reads each MIH
    /// table once in address order for the whole batch instead of once at
    /// random per query.
    pub fn search_pdq_many(&self, queries: &[PdqHash], opts: &SearchOptions) -> Vec<Vec<Match>> {
        if opts.dihedral || opts.k.is_some() || queries.len() < BATCH_MIN {
            return queries.iter().map(|q| self.search_pdq(q, opts)).collect();
        }
        let radius = self.max_radius(opts);
        self.batch_hits(queries, radius, 1)
            .into_iter()
            .map(|h| self.matches_from_hits(h, false, opts, radius))
            .collect()
    }

    /// The raw hits of every query of a batch within `radius`, searched
    /// by `threads` tasks on the rayon pool (1: on this thread). A MIH
    /// segment is split by substring sets, and by query chunks only when
    /// there are more threads than substrings; a flat segment by query.
    fn batch_hits(&self, queries: &[PdqHash], radius: u32, threads: usize) -> Vec<Vec<Hit>> {
        let qs: Vec<[u8; 32]> = queries.iter().map(|q| q.0).collect();
        let mut hits: Vec<Vec<Hit>> = vec![Vec::new(); qs.len()];
        for (si, (seg, _)) in self.segments.iter().enumerate() {
            let keys = seg.pdq_keys();
            if keys.is_empty() {
                continue;
            }
            let views = seg.mih_views();
            let hit = |row, dist| Hit {
                seg: si as u32,
                row,
                dist,
                variant: 0,
            };
            if self.use_mih(seg, &views, radius) {
                let walks = mih_batch::split_substrings(&views, radius, threads);
                let chunk = qs
                    .len()
                    .div_ceil(threads.div_ceil(walks.len().max(1)))
                    .max(1);
                let tasks: Vec<(&[usize], usize)> = walks
                    .iter()
                    .flat_map(|w| (0..qs.len()).step_by(chunk).map(move |c| (&w[..], c)))
                    .collect();
                let search = |&(walk, c0): &(&[usize], usize)| {
                    let mut scratch = mih_batch::BatchScratch::default();
                    let mut found = Vec::new();
                    let part = &qs[c0..(c0 + chunk).min(qs.len())];
                    self.kernel.mih_search_batch(
                        keys,
                        &views,
                        walk,
                        part,
                        radius,
                        &mut scratch,
                        &mut found,
                    );
                    (c0, found)
                };
                let parts: Vec<_> = if tasks.len() > 1 {
                    tasks.par_iter().map(search).collect()
                } else {
                    tasks.iter().map(search).collect()
                };
                for (c0, found) in parts {
                    for (qi, row, dist) in found {
                        hits[c0 + qi as usize].push(hit(row, dist));
                    }
                }
            } else {
                let scan = |(q, h): (&[u8; 32], &mut Vec<Hit>)| {
                    let mut flat = Vec::new();
                    self.kernel.flat_scan(keys, q, radius, &mut flat);
                    h.extend(flat.iter().map(|&(row, dist)| hit(row, dist)));
                };
                if threads > 1 {
                    qs.par_iter().zip(hits.par_iter_mut()).for_each(scan);
                } else {
                    qs.iter().zip(hits.iter_mut()).for_each(scan);
                }
            }
        }
        hits
    }

    fn max_radius(&self, opts: &SearchOptions) -> u32 {
        let mut r = opts.radius;
        for (l, &lr) in &opts.list_radius {
            if opts.lists.as_ref().is_none_or(|ls| ls.contains(l)) {
                r = r.max(lr);
            }
        }
        r.min(MAX_RADIUS)
    }

    fn search_variants(
        &self,
        variants: &[PdqHash],
        dihedral: bool,
        opts: &SearchOptions,
    ) -> Vec<Match> {
        let rmax = self.max_radius(opts);
        match opts.k {
            None => self.collect(variants, dihedral, opts, rmax),
            Some(k) => {
                // Grow the radius in steps matching the MIH per-substring
                // radius (11 substrings): all matches within r are found at
                // radius r, so once k are found the k nearest are among them.
                let mut r = 10.min(rmax);
                loop {
                    let mut m = self.collect(variants, dihedral, opts, r);
                    if m.len() >= k || r >= rmax {
                        m.truncate(k);
                        return m;
                    }
                    r = (r + 11).min(rmax);
                }
            }
        }
    }

    fn collect(
        &self,
        variants: &[PdqHash],
        dihedral: bool,
        opts: &SearchOptions,
        radius: u32,
    ) -> Vec<Match> {
        let mut hits = Vec::new();
        let mut scratch = mih::MihScratch::default();
        for (vi, q) in variants.iter().enumerate() {
            self.raw_pdq(&q.0, radius, vi as u8, &mut scratch, &mut hits);
        }
        self.matches_from_hits(hits, dihedral, opts, radius)
    }

    /// The matches of one query's raw hits (any order, a row possibly once
    /// per variant), nearest first.
    fn matches_from_hits(
        &self,
        mut hits: Vec<Hit>,
        dihedral: bool,
        opts: &SearchOptions,
        radius: u32,
    ) -> Vec<Match> {
        // Best variant per row, then index order.
        hits.sort_unstable_by_key(|h| (h.seg, h.row, h.dist, h.variant));
        hits.dedup_by_key(|h| (h.seg, h.row));
        hits.sort_unstable_by_key(|h| (h.dist, h.seg, h.row));
        let mut out = Vec::new();
        let mut recs = Vec::new();
        for h in hits {
            let variant = dihedral.then(|| Dihedral::ALL[h.variant as usize]);
            self.expand(
                HashKind::Pdq,
                h.seg as usize,
                h.row as usize,
                h.dist,
                variant,
                opts,
                radius,
                &mut recs,
                &mut out,
            );
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn expand(
        &self,
        kind: HashKind,
        si: usize,
        row: usize,
        dist: u32,
        variant: Option<Dihedral>,
        opts: &SearchOptions,
        radius: u32,
        recs: &mut Vec<RawRecord>,
        out: &mut Vec<Match>,
    ) {
        let (seg, gen) = (&self.segments[si].0, self.segments[si].1);
        let key = seg.key(kind, row).unwrap_or(&[]);
        if self.tombstones.hash_removed(kind, key, gen) {
            return;
        }
        seg.records(kind, row, recs);
        for r in recs.iter() {
            let list = seg.list_name(r);
            if let Some(ls) = &opts.lists {
                if !ls.iter().any(|l| l == list) {
                    continue;
                }
            }
            let limit = opts
                .list_radius
                .get(list)
                .copied()
                .unwrap_or(opts.radius)
                .min(radius);
            if dist > limit {
                continue;
            }
            if self.tombstones.has_record_removals()
                && self
                    .tombstones
                    .record_removed(kind, key, list, || seg.record_id(r), gen)
            {
                continue;
            }
            let e: EntryRef<'_> = seg.resolve(r);
            out.push(Match {
                id: e.id.into_owned(),
                list: e.list.to_string(),
                category: e.category.to_string(),
                note: e.note.map(str::to_string),
                kind,
                distance: dist,
                variant,
            });
        }
    }

    /// Entries whose hash equals `digest` exactly (any kind, PDQ included).
    pub fn lookup_exact(&self, kind: HashKind, digest: &[u8]) -> Vec<Match> {
        let mut out = Vec::new();
        let mut recs = Vec::new();
        let opts = SearchOptions::default();
        for si in 0..self.segments.len() {
            if let Some(row) = self.segments[si].0.find_row(kind, digest) {
                self.expand(kind, si, row, 0, None, &opts, 0, &mut recs, &mut out);
            }
        }
        out
    }

    /// Visits every live record: (where, segment, hash bytes, record).
    /// Tombstones are applied; strings are not resolved.
    fn for_each_live_record(
        &self,
        mut f: impl FnMut(RecordAt, &Segment, &[u8], &RawRecord) -> Result<()>,
    ) -> Result<()> {
        let mut recs = Vec::new();
        for (si, (seg, gen)) in self.segments.iter().enumerate() {
            for kind in HashKind::ALL {
                for row in 0..seg.key_count(kind) {
                    let Some(key) = seg.key(kind, row) else {
                        continue;
                    };
                    if self.tombstones.hash_removed(kind, key, *gen) {
                        continue;
                    }
                    seg.records(kind, row, &mut recs);
                    for (k, r) in recs.iter().enumerate() {
                        if self.tombstones.has_record_removals()
                            && self.tombstones.record_removed(
                                kind,
                                key,
                                seg.list_name(r),
                                || seg.record_id(r),
                                *gen,
                            )
                        {
                            continue;
                        }
                        let at = RecordAt {
                            seg: si as u32,
                            kind: crate::record::kind_code(kind) as u8,
                            row: row as u32,
                            k: k as u32,
                        };
                        f(at, seg, key, r)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Visits every live entry: (kind, hash bytes, entry). Used by export and compact.
    pub fn for_each_entry(
        &self,
        mut f: impl FnMut(HashKind, &[u8], &EntryRef<'_>) -> Result<()>,
    ) -> Result<()> {
        self.for_each_live_record(|at, seg, key, r| f(at.kind(), key, &seg.resolve(r)))
    }

    /// Lists with their live entry counts (walks every entry).
    pub fn list_counts(&self) -> Result<HashMap<String, u64>> {
        let mut m = HashMap::new();
        for (list, kinds) in self.live_counts()? {
            m.insert(list, kinds.values().sum());
        }
        Ok(m)
    }

    /// Live entries per list and kind (walks every record, resolving no
    /// strings unless id removals are in force).
    pub fn live_counts(&self) -> Result<BTreeMap<String, BTreeMap<HashKind, u64>>> {
        // Counted by (segment, list number) first: no string compare per record.
        let mut per_seg: Vec<Vec<[u64; 4]>> = self
            .segments
            .iter()
            .map(|(s, _)| vec![[0u64; 4]; s.lists().len() + 1])
            .collect();
        self.for_each_live_record(|at, seg, _, r| {
            let lists = &mut per_seg[at.seg as usize];
            let l = (r.list as usize).min(seg.lists().len());
            lists[l][at.kind as usize] += 1;
            Ok(())
        })?;
        let mut out: BTreeMap<String, BTreeMap<HashKind, u64>> = BTreeMap::new();
        for ((seg, _), lists) in self.segments.iter().zip(per_seg) {
            for (l, counts) in lists.iter().enumerate() {
                let name = seg.lists().get(l).map_or("?", String::as_str);
                for kind in HashKind::ALL {
                    let n = counts[crate::record::kind_code(kind) as usize];
                    if n > 0 {
                        *out.entry(name.to_string())
                            .or_default()
                            .entry(kind)
                            .or_insert(0) += n;
                    }
                }
            }
        }
        Ok(out)
    }

    /// The list names used by this generation's segments, sorted (a list
    /// whose entries were all removed is still named).
    pub fn lists(&self) -> Vec<String> {
        let mut lists: Vec<String> = self
            .segments
            .iter()
            .flat_map(|(s, _)| s.lists().iter().cloned())
            .collect();
        lists.sort();
        lists.dedup();
        lists
    }

    /// Whether a live entry has exactly this kind, hash, list and id
    /// (`id()` is called only if some segment holds the hash).
    pub fn has_live_entry(
        &self,
        kind: HashKind,
        key: &[u8],
        list: &str,
        id: &dyn Fn() -> String,
    ) -> bool {
        let mut recs = Vec::new();
        let mut wanted: Option<String> = None;
        for (seg, gen) in &self.segments {
            let Some(row) = seg.find_row(kind, key) else {
                continue;
            };
            let id = wanted.get_or_insert_with(id).as_str();
            if self.tombstones.hash_removed(kind, key, *gen) {
                continue;
            }
            seg.records(kind, row, &mut recs);
            for r in &recs {
                if seg.list_name(r) == list
                    && seg.record_id(r) == id
                    && !self
                        .tombstones
                        .record_removed(kind, key, list, || seg.record_id(r), *gen)
                {
                    return true;
                }
            }
        }
        false
    }

    /// For each removal, how many live entries it covers now; and how many
    /// distinct live entries they cover together (two removals may name the
    /// same entry). Removals by id walk every record once; by hash, a
    /// binary search per segment.
    pub fn count_removals(&self, removals: &[Tombstone]) -> Result<(Vec<u64>, u64)> {
        let mut counts = vec![0u64; removals.len()];
        // (segment, kind code, row, record index in the row) of every entry covered.
        let mut covered: HashSet<RecordAt> = HashSet::new();
        let mut recs = Vec::new();
        // Id removals by list, then id: numbers and strings apart, as stored.
        let mut by_id: HashMap<&str, IdRemovals<'_>> = HashMap::new();
        for (i, t) in removals.iter().enumerate() {
            match t {
                Tombstone::Hash { kind, hash, list } => {
                    let mut key = vec![0u8; kind.byte_len()];
                    if sigil_core::hash::decode_hex_into(hash, &mut key).is_err() {
                        continue;
                    }
                    for (si, (seg, gen)) in self.segments.iter().enumerate() {
                        let Some(row) = seg.find_row(*kind, &key) else {
                            continue;
                        };
                        if self.tombstones.hash_removed(*kind, &key, *gen) {
                            continue;
                        }
                        seg.records(*kind, row, &mut recs);
                        for (k, r) in recs.iter().enumerate() {
                            let l = seg.list_name(r);
                            if list.as_deref().is_some_and(|want| want != l)
                                || self.tombstones.record_removed(
                                    *kind,
                                    &key,
                                    l,
                                    || seg.record_id(r),
                                    *gen,
                                )
                            {
                                continue;
                            }
                            counts[i] += 1;
                            covered.insert(RecordAt {
                                seg: si as u32,
                                kind: crate::record::kind_code(*kind) as u8,
                                row: row as u32,
                                k: k as u32,
                            });
                        }
                    }
                }
                Tombstone::Id { list, id } => {
                    let (nums, strs) = by_id.entry(list.as_str()).or_default();
                    match crate::record::numeric_id(id) {
                        Some(v) => nums.entry(v).or_default().push(i),
                        None => strs.entry(id.as_str()).or_default().push(i),
                    }
                }
            }
        }
        if !by_id.is_empty() {
            self.for_each_live_record(|at, seg, _, r| {
                let Some((nums, strs)) = by_id.get(seg.list_name(r)) else {
                    return Ok(());
                };
                let hit = if r.id & crate::record::ID_IS_STRING != 0 {
                    strs.get(seg.record_id(r).as_ref())
                } else {
                    nums.get(&r.id)
                };
                for &i in hit.into_iter().flatten() {
                    counts[i] += 1;
                    covered.insert(at);
                }
                Ok(())
            })?;
        }
        Ok((counts, covered.len() as u64))
    }
}
