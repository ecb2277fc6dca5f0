//! The evaluation run: load and vet the corpus, apply the transform suite,
//! hash everything with every method, score all pairs, pick thresholds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use image::RgbImage;
use rayon::prelude::*;
use sigil_core::pdq::{PdqHasher, Profile};
use sigil_core::{decode::decode, DecodeOptions, ExactDigests, PdqHash};

use sigil_core::robust::{
    borders, enrollment_hashes_rgb, rgb_of, robust_query_hashes_rgb, work_copy, AugmentOptions,
    EnrollHash, QueryHash, RobustQueryOptions, VariantFamily,
};

use crate::gradient::{self, GradientSignature};
use crate::metrics::{OperatingPoint, Scores};
use crate::rng::SplitMix64;
use crate::robust::best_distance;
use crate::transforms::Transform;

/// Precision every method's threshold must keep.
pub const TARGET_PRECISION: f64 = 0.9999;
/// PDQ's conventional match distance.
pub const PDQ_STANDARD_DISTANCE: f32 = 31.0;
/// Quality below which PDQ hashes are unreliable (reference README).
pub const MIN_QUALITY: u32 = 50;
/// Originals closer than this (any dihedral variant) are duplicates.
pub const DUPLICATE_DISTANCE: u32 = 31;

/// Why the evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no usable originals in {0} (every file was excluded; see the exclusions)")]
    NoOriginals(PathBuf),
    #[error("cannot build a thread pool: {0}")]
    Threads(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode plot {path}: {source}")]
    Plot {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    #[error("plotting failed for {path}: {message}")]
    Draw { path: PathBuf, message: String },
}

/// What to run.
#[derive(Clone, Debug)]
pub struct EvalConfig {
    pub originals: PathBuf,
    pub distractors: Option<PathBuf>,
    /// Use every other file of `originals` (sorted by name) as a distractor.
    pub split: bool,
    pub limit: Option<usize>,
    pub threads: Option<usize>,
    pub transforms: Vec<Transform>,
    pub seed: u64,
    pub query: RobustQueryOptions,
    pub augment: AugmentOptions,
    /// Originals and distractors larger than this (longer side) are
    /// downscaled once at load time, before any transform: PDQ works on a
    /// 64x64 reduction anyway, and full-resolution blurs and rotations of
    /// 2-12 MP photos would dominate the run time. None keeps full size.
    pub max_side: Option<u32>,
}

/// An input left out of the evaluation, and why.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Exclusion {
    pub path: String,
    pub role: &'static str,
    pub reason: ExclusionReason,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum ExclusionReason {
    Unreadable,
    DecodeFailed,
    LowQuality,
    DuplicateBytes,
    NearDuplicate,
}

impl ExclusionReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            ExclusionReason::Unreadable => "unreadable",
            ExclusionReason::DecodeFailed => "failed to decode",
            ExclusionReason::LowQuality => "tiny or flat (PDQ quality < 50)",
            ExclusionReason::DuplicateBytes => "duplicate (identical bytes)",
            ExclusionReason::NearDuplicate => {
                "near-duplicate (PDQ distance <= 31, any rotation/flip)"
            }
        }
    }
}

/// The regime a method belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Regime {
    /// Only the PDQ hash of the original is known (shared hash lists).
    SharedList,
    /// The original is at hand at enrollment (a platform's own bank).
    OwnBank,
}

/// How a method scores a (query, original) pair.
#[derive(Clone, Debug)]
pub enum MethodKind {
    /// PDQ Hamming distance, min over the query families and the stored hashes.
    Pdq {
        families: Vec<VariantFamily>,
        augmented: bool,
    },
    /// Gradient signature squared L2, min over the query variants.
    Gradient { variants: bool },
    /// min(d1 / t1, d2 / t2): each component normalised by its own threshold.
    Fusion { a: usize, b: usize },
}

#[derive(Clone, Debug)]
pub struct Method {
    pub name: String,
    pub regime: Regime,
    pub description: String,
    pub kind: MethodKind,
}

/// The methods measured, in report order.
pub fn methods() -> Vec<Method> {
    use VariantFamily::*;
    let pdq =
        |name: &str, regime, description: &str, families: Vec<VariantFamily>, augmented| Method {
            name: name.into(),
            regime,
            description: description.into(),
            kind: MethodKind::Pdq {
                families,
                augmented,
            },
        };
    let mut v = vec![
        pdq("pdq", Regime::SharedList, "plain PDQ of the query vs the original's PDQ", vec![Original], false),
        pdq("pdq+dihedral", Regime::SharedList, "query's 8 dihedral PDQ variants", vec![Original, Dihedral], false),
        pdq("pdq+trim", Regime::SharedList, "query plus its content inside detected flat/mirrored borders", vec![Original, Trim], false),
        pdq(
            "pdq+dihedral+trim",
            Regime::SharedList,
            "dihedral variants of the query and of its trimmed content (`--robust`)",
            vec![Original, Dihedral, Trim, TrimDihedral],
            false,
        ),
        pdq("pdq+rotation", Regime::SharedList, "query rotated back by -9,-6,-3,+3,+6,+9 degrees", vec![Original, Rotation], false),
        pdq("pdq+zoom", Regime::SharedList, "query centre-cropped to 85% and mirror-padded to 115%", vec![Original, Zoom], false),
        pdq(
            "pdq+query-all",
            Regime::SharedList,
            "all query variants: dihedral, trim, rotation, zoom",
            vec![Original, Dihedral, Trim, TrimDihedral, Rotation, Zoom],
            false,
        ),
        pdq("pdq+augment", Regime::OwnBank, "index stores crops (90%, 80%; 3x3 grid of positions) and rotations (+-3, +-6 deg) of each original", vec![Original], true),
        pdq(
            "pdq+augment+dihedral+trim",
            Regime::OwnBank,
            "augmented index, query with dihedral + trim",
            vec![Original, Dihedral, Trim, TrimDihedral],
            true,
        ),
        pdq(
            "pdq+augment+query-all",
            Regime::OwnBank,
            "augmented index, all query variants",
            vec![Original, Dihedral, Trim, TrimDihedral, Rotation, Zoom],
            true,
        ),
        Method {
            name: "grad".into(),
            regime: Regime::OwnBank,
            description: "gradient-grid signature (GGS-144, ours), squared L2".into(),
            kind: MethodKind::Gradient { variants: false },
        },
        Method {
            name: "grad+dihedral+trim".into(),
            regime: Regime::OwnBank,
            description: "GGS-144 over the query's dihedral and trimmed variants".into(),
            kind: MethodKind::Gradient { variants: true },
        },
    ];
    let a = v
        .iter()
        .position(|m| m.name == "pdq+augment+dihedral+trim")
        .expect("method");
    let b = v
        .iter()
        .position(|m| m.name == "grad+dihedral+trim")
        .expect("method");
    v.push(Method {
        name: "fusion".into(),
        regime: Regime::OwnBank,
        description: "min of pdq+augment+dihedral+trim and grad+dihedral+trim, each divided by its own threshold".into(),
        kind: MethodKind::Fusion { a, b },
    });
    v
}

/// One vetted original (or distractor).
struct Item {
    path: String,
    img: RgbImage,
    pdq: PdqHash,
    dihedral: [PdqHash; 8],
}

/// The hashes of one query (a transformed original or a distractor).
struct Query {
    /// Index of the original it came from (None for distractors).
    source: Option<usize>,
    /// Transform index (None for distractors).
    transform: Option<usize>,
    pdq: Vec<QueryHash>,
    /// Gradient signatures: [0] = the query as is, then dihedral and trimmed.
    grad: Vec<GradientSignature>,
}

/// Results of one method.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MethodResult {
    pub name: String,
    pub regime: Regime,
    pub description: String,
    /// Operating point at precision >= 99.99% (None: unreachable).
    pub at_target: Option<OperatingPoint>,
    /// Recall per transform at that threshold (same order as `transforms`).
    pub recall_per_transform: Vec<f64>,
    /// PDQ methods: operating point and per-transform recall at distance 31.
    pub at_31: Option<OperatingPoint>,
    pub recall_per_transform_31: Vec<f64>,
    /// Average number of query hashes compared per image.
    pub query_hashes: f64,
    /// Average number of stored hashes per original.
    pub stored_hashes: f64,
    #[serde(skip)]
    pub scores: Scores,
    #[serde(skip)]
    pub roc: Vec<(f64, f64)>,
}

/// Everything a report needs.
#[derive(Debug, serde::Serialize)]
pub struct EvalOutcome {
    pub originals_dir: String,
    pub distractors_dir: Option<String>,
    pub originals_seen: usize,
    pub distractors_seen: usize,
    pub originals_used: usize,
    pub distractors_used: usize,
    pub exclusions: Vec<Exclusion>,
    pub transforms: Vec<String>,
    pub positives: u64,
    pub negatives: u64,
    pub methods: Vec<MethodResult>,
    pub seconds: f64,
}

fn list_files(dir: &Path) -> Result<Vec<PathBuf>, EvalError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|source| EvalError::ReadDir {
            path: d.clone(),
            source,
        })?;
        for e in rd {
            let e = e.map_err(|source| EvalError::ReadDir {
                path: d.clone(),
                source,
            })?;
            let p = e.path();
            let name = e.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let ft = e.file_type().map_err(|source| EvalError::ReadDir {
                path: p.clone(),
                source,
            })?;
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Decodes and hashes one file; Err is the exclusion.
fn load(
    path: &Path,
    role: &'static str,
    max_side: Option<u32>,
    hasher: &mut PdqHasher,
) -> Result<(Item, [u8; 32]), Exclusion> {
    let shown = path.display().to_string();
    let ex = |reason, detail: String| Exclusion {
        path: shown.clone(),
        role,
        reason,
        detail,
    };
    let bytes = std::fs::read(path).map_err(|e| ex(ExclusionReason::Unreadable, e.to_string()))?;
    let sha = ExactDigests::of(&bytes).sha256;
    let dec = decode(&bytes, &DecodeOptions::default())
        .map_err(|e| ex(ExclusionReason::DecodeFailed, e.to_string()))?;
    let mut img = rgb_of(&dec);
    if let Some(m) = max_side {
        img = work_copy(&img, m);
    }
    let d = hasher.dihedral_rgb8(img.width(), img.height(), img.as_raw(), Profile::Full);
    if d.quality < MIN_QUALITY {
        return Err(ex(
            ExclusionReason::LowQuality,
            format!("quality {} ({}x{})", d.quality, img.width(), img.height()),
        ));
    }
    Ok((
        Item {
            path: shown.clone(),
            img,
            pdq: d.hashes[0],
            dihedral: d.hashes,
        },
        sha,
    ))
}

fn load_all(
    paths: &[PathBuf],
    role: &'static str,
    max_side: Option<u32>,
) -> Vec<Result<(Item, [u8; 32]), Exclusion>> {
    paths
        .par_iter()
        .map_init(PdqHasher::new, |h, p| load(p, role, max_side, h))
        .collect()
}

/// Removes byte-identical and near-duplicate items (against `kept` and
/// against each other), recording exclusions.
fn dedupe(
    loaded: Vec<Result<(Item, [u8; 32]), Exclusion>>,
    role: &'static str,
    kept: &mut Vec<Item>,
    shas: &mut HashMap<[u8; 32], String>,
    exclusions: &mut Vec<Exclusion>,
) -> usize {
    let mut added = 0;
    for r in loaded {
        match r {
            Err(e) => exclusions.push(e),
            Ok((item, sha)) => {
                if let Some(first) = shas.get(&sha) {
                    exclusions.push(Exclusion {
                        path: item.path.clone(),
                        role,
                        reason: ExclusionReason::DuplicateBytes,
                        detail: format!("same bytes as {first}"),
                    });
                    continue;
                }
                let near = kept.iter().find_map(|k| {
                    let d = item
                        .dihedral
                        .iter()
                        .map(|h| h.hamming(&k.pdq))
                        .min()
                        .unwrap_or(256);
                    (d <= DUPLICATE_DISTANCE).then(|| (k.path.clone(), d))
                });
                if let Some((other, d)) = near {
                    exclusions.push(Exclusion {
                        path: item.path.clone(),
                        role,
                        reason: ExclusionReason::NearDuplicate,
                        detail: format!("PDQ distance {d} to {other}"),
                    });
                    continue;
                }
                shas.insert(sha, item.path.clone());
                kept.push(item);
                added += 1;
            }
        }
    }
    added
}

fn gradient_variants(img: &RgbImage, variants: bool) -> Vec<GradientSignature> {
    if !variants {
        return vec![gradient::signature(img)];
    }
    let mut v: Vec<GradientSignature> = gradient::dihedral_signatures(img).into();
    let work = work_copy(img, 512);
    for r in borders::detect_content(&work) {
        let c = image::imageops::crop_imm(&work, r.x0, r.y0, r.width(), r.height()).to_image();
        v.extend(gradient::dihedral_signatures(&c));
    }
    v
}

/// Runs the whole evaluation. `progress` receives human-readable lines.
pub fn run(cfg: &EvalConfig, progress: &(dyn Fn(&str) + Sync)) -> Result<EvalOutcome, EvalError> {
    let start = std::time::Instant::now();
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = cfg.threads {
        builder = builder.num_threads(n.max(1));
    }
    let pool = builder
        .build()
        .map_err(|e| EvalError::Threads(e.to_string()))?;
    pool.install(|| run_inner(cfg, progress, start))
}

fn run_inner(
    cfg: &EvalConfig,
    progress: &(dyn Fn(&str) + Sync),
    start: std::time::Instant,
) -> Result<EvalOutcome, EvalError> {
    let all = list_files(&cfg.originals)?;
    let (mut orig_paths, mut distr_paths): (Vec<PathBuf>, Vec<PathBuf>) = if cfg.split {
        let (o, d): (Vec<_>, Vec<_>) = all.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
        (
            o.into_iter().map(|x| x.1).collect(),
            d.into_iter().map(|x| x.1).collect(),
        )
    } else {
        (all, Vec::new())
    };
    if let Some(dir) = &cfg.distractors {
        distr_paths.extend(list_files(dir)?);
    }
    if let Some(n) = cfg.limit {
        orig_paths.truncate(n);
        distr_paths.truncate(n);
    }
    progress(&format!(
        "loading {} originals, {} distractors",
        orig_paths.len(),
        distr_paths.len()
    ));
    let mut exclusions = Vec::new();
    let mut shas = HashMap::new();
    let mut originals = Vec::new();
    dedupe(
        load_all(&orig_paths, "original", cfg.max_side),
        "original",
        &mut originals,
        &mut shas,
        &mut exclusions,
    );
    let n_orig = originals.len();
    if n_orig == 0 {
        return Err(EvalError::NoOriginals(cfg.originals.clone()));
    }
    // Distractors are deduplicated against the originals too: a distractor
    // that is the same picture as an original is not a distinct image.
    let mut pool_items = originals;
    dedupe(
        load_all(&distr_paths, "distractor", cfg.max_side),
        "distractor",
        &mut pool_items,
        &mut shas,
        &mut exclusions,
    );
    let distractors: Vec<Item> = pool_items.split_off(n_orig);
    let originals = pool_items;
    progress(&format!(
        "using {} originals, {} distractors ({} excluded)",
        originals.len(),
        distractors.len(),
        exclusions.len()
    ));

    // Index side: stored PDQ hashes (plain and augmented) and gradient signatures.
    let enrolled: Vec<(Vec<EnrollHash>, GradientSignature)> = originals
        .par_iter()
        .map_init(PdqHasher::new, |h, it| {
            (
                enrollment_hashes_rgb(h, &it.img, &cfg.augment),
                gradient::signature(&it.img),
            )
        })
        .collect();
    progress(&format!("enrolled {} originals", originals.len()));

    // Query side: every transform of every original, then the distractors.
    let jobs: Vec<(Option<usize>, Option<usize>)> = (0..originals.len())
        .flat_map(|i| (0..cfg.transforms.len()).map(move |t| (Some(i), Some(t))))
        .chain((0..distractors.len()).map(|d| (None, Some(usize::MAX - d))))
        .collect();
    let queries: Vec<Query> = jobs
        .par_iter()
        .map_init(PdqHasher::new, |h, &(src, t)| {
            let (img, transform) = match (src, t) {
                (Some(i), Some(t)) => {
                    let mut rng = SplitMix64::seeded(&[cfg.seed, i as u64, t as u64]);
                    // A transform that cannot run (tiny image) leaves the
                    // image as is; the vetting above makes this rare.
                    let img = cfg.transforms[t]
                        .apply(&originals[i].img, &mut rng)
                        .unwrap_or_else(|_| originals[i].img.clone());
                    (img, Some(t))
                }
                (_, Some(d)) => (distractors[usize::MAX - d].img.clone(), None),
                _ => unreachable!("every job has a transform or a distractor"),
            };
            let pdq = robust_query_hashes_rgb(h, &img, &cfg.query);
            let grad = gradient_variants(&img, true);
            Query {
                source: src,
                transform,
                pdq,
                grad,
            }
        })
        .collect();
    progress(&format!("hashed {} queries", queries.len()));

    let ms = methods();
    let n = originals.len();
    let mut results: Vec<MethodResult> = Vec::with_capacity(ms.len());
    // Distance matrices (query x original) per method, for fusion.
    let mut matrices: Vec<Vec<f32>> = Vec::with_capacity(ms.len());
    for m in &ms {
        let matrix: Vec<f32> = match &m.kind {
            MethodKind::Pdq {
                families,
                augmented,
            } => queries
                .par_iter()
                .flat_map_iter(|q| {
                    let qs: Vec<QueryHash> = q
                        .pdq
                        .iter()
                        .filter(|v| families.contains(&v.variant.family()))
                        .copied()
                        .collect();
                    enrolled.iter().map(move |(stored, _)| {
                        let stored: &[EnrollHash] = if *augmented { stored } else { &stored[..1] };
                        best_distance(&qs, stored).map_or(256, |(d, _, _)| d) as f32
                    })
                })
                .collect(),
            MethodKind::Gradient { variants } => queries
                .par_iter()
                .flat_map_iter(|q| {
                    let qs = if *variants { &q.grad[..] } else { &q.grad[..1] };
                    enrolled.iter().map(move |(_, g)| {
                        if g.is_flat() {
                            return 4.0;
                        }
                        qs.iter()
                            .map(|s| s.distance(g))
                            .fold(f32::INFINITY, f32::min)
                    })
                })
                .collect(),
            MethodKind::Fusion { a, b } => {
                let ta = results[*a]
                    .at_target
                    .map(|o| o.threshold)
                    .unwrap_or(1.0)
                    .max(0.5);
                let tb = results[*b]
                    .at_target
                    .map(|o| o.threshold)
                    .unwrap_or(1.0)
                    .max(1e-4);
                matrices[*a]
                    .iter()
                    .zip(&matrices[*b])
                    .map(|(x, y)| (x / ta).min(y / tb))
                    .collect()
            }
        };
        let (query_hashes, stored_hashes) = match &m.kind {
            MethodKind::Pdq {
                families,
                augmented,
            } => (
                queries
                    .iter()
                    .map(|q| {
                        q.pdq
                            .iter()
                            .filter(|v| families.contains(&v.variant.family()))
                            .count()
                    })
                    .sum::<usize>() as f64
                    / queries.len().max(1) as f64,
                if *augmented {
                    enrolled.iter().map(|e| e.0.len()).sum::<usize>() as f64 / n as f64
                } else {
                    1.0
                },
            ),
            MethodKind::Gradient { variants } => (
                if *variants {
                    queries.iter().map(|q| q.grad.len()).sum::<usize>() as f64
                        / queries.len().max(1) as f64
                } else {
                    1.0
                },
                1.0,
            ),
            MethodKind::Fusion { a, b } => (
                results[*a].query_hashes + results[*b].query_hashes,
                results[*a].stored_hashes + results[*b].stored_hashes,
            ),
        };
        let r = score(
            m,
            &matrix,
            &queries,
            n,
            cfg.transforms.len(),
            query_hashes,
            stored_hashes,
        );
        progress(&format!(
            "{:<28} recall {:6.2}% at t={}",
            m.name,
            r.at_target.map(|o| o.recall() * 100.0).unwrap_or(0.0),
            r.at_target
                .map(|o| o.threshold.to_string())
                .unwrap_or("-".into())
        ));
        results.push(r);
        matrices.push(matrix);
    }
    let positives = results
        .first()
        .map(|r| r.scores.pos.len() as u64)
        .unwrap_or(0);
    let negatives = results
        .first()
        .map(|r| r.scores.neg.len() as u64)
        .unwrap_or(0);
    Ok(EvalOutcome {
        originals_dir: cfg.originals.display().to_string(),
        distractors_dir: cfg.distractors.as_ref().map(|d| d.display().to_string()),
        originals_seen: orig_paths.len(),
        distractors_seen: distr_paths.len(),
        originals_used: originals.len(),
        distractors_used: distractors.len(),
        exclusions,
        transforms: cfg.transforms.iter().map(|t| t.name.clone()).collect(),
        positives,
        negatives,
        methods: results,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn score(
    m: &Method,
    matrix: &[f32],
    queries: &[Query],
    n: usize,
    n_transforms: usize,
    query_hashes: f64,
    stored_hashes: f64,
) -> MethodResult {
    let mut pos = Vec::new();
    let mut pos_by_t: Vec<Vec<f32>> = vec![Vec::new(); n_transforms];
    let mut neg = Vec::with_capacity(matrix.len());
    for (qi, q) in queries.iter().enumerate() {
        let row = &matrix[qi * n..(qi + 1) * n];
        for (j, &d) in row.iter().enumerate() {
            if q.source == Some(j) {
                pos.push(d);
                if let Some(t) = q.transform {
                    pos_by_t[t].push(d);
                }
            } else {
                neg.push(d);
            }
        }
    }
    let scores = Scores::new(pos, neg);
    let at_target = scores.threshold_at_precision(TARGET_PRECISION);
    let recall_at = |t: Option<f32>| -> Vec<f64> {
        pos_by_t
            .iter()
            .map(|v| match t {
                Some(t) if !v.is_empty() => {
                    v.iter().filter(|&&d| d <= t).count() as f64 / v.len() as f64
                }
                _ => 0.0,
            })
            .collect()
    };
    let is_pdq = matches!(m.kind, MethodKind::Pdq { .. });
    let at_31 = is_pdq.then(|| scores.at(PDQ_STANDARD_DISTANCE));
    MethodResult {
        name: m.name.clone(),
        regime: m.regime,
        description: m.description.clone(),
        recall_per_transform: recall_at(at_target.map(|o| o.threshold)),
        recall_per_transform_31: if is_pdq {
            recall_at(Some(PDQ_STANDARD_DISTANCE))
        } else {
            Vec::new()
        },
        at_target,
        at_31,
        query_hashes,
        stored_hashes,
        roc: scores.roc(300),
        scores,
    }
}
