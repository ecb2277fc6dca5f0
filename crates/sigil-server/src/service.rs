//! The gRPC handlers: `sigil.v1.Matcher` and `sigil.v1.Reports`.

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use sigil_core::hash::encode_hex;
use sigil_core::robust::RobustLevel;
use sigil_core::{FileSignatures, HashKind};
use sigil_index::{IndexReader, Match, SharedIndex};
use tonic::{Request, Response, Status, Streaming};

use crate::auth::Caller;
use crate::config::ServerConfig;
use crate::lookup::{LookupError, LookupQueue};
use crate::matching::{resolve_options, Matcher, Outcome, ResolvedOptions, Verdict};
use crate::metrics::Metrics;
use crate::pool::{HashMode, HashPool, PoolError, Signed};
use crate::proto;
use crate::store::{
    NewReport, ReportFilter, ReportRecord, ReportStatus, ReportStore, ReportUpdate, StoreError,
    StoredMatch,
};
use crate::store_calls::StoreCalls;
use crate::timeutil::now_ms;

/// State shared by both services.
pub struct AppState {
    pub config: ServerConfig,
    pub index: Arc<SharedIndex>,
    pub pool: HashPool,
    /// Runs `MatchHashes` lookups, bounded, coalescing concurrent requests.
    pub lookup: LookupQueue,
    /// The report store, called through a bound of its own parallelism.
    pub store: StoreCalls,
    pub metrics: Arc<Metrics>,
    /// When the current generation was loaded (Unix ms).
    pub loaded_at_ms: std::sync::atomic::AtomicI64,
    /// Per-list entry counts of one generation (counting walks every
    /// entry, so it is done once per generation).
    pub list_cache: tokio::sync::Mutex<Option<(u64, Vec<proto::ListInfo>)>>,
}

/// `sigil.v1.Matcher`.
#[derive(Clone)]
pub struct MatcherService {
    pub state: Arc<AppState>,
}

/// `sigil.v1.Reports`.
#[derive(Clone)]
pub struct ReportsService {
    pub state: Arc<AppState>,
}

fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::internal("request reached a handler without authentication"))
}

/// Parses a `grpc-timeout` header value (`<digits><unit>`, unit H M S m u n).
fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (num, unit) = v.split_at(v.len() - 1);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

impl AppState {
    /// The call's deadline: the client's `grpc-timeout` or the server
    /// default, whichever is sooner.
    fn deadline(&self, md: &tonic::metadata::MetadataMap, start: Instant) -> Instant {
        let server = Duration::from_millis(self.config.limits.request_timeout_ms);
        let client = md
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        start + client.map_or(server, |c| c.min(server))
    }

    fn known_lists(reader: &IndexReader) -> BTreeSet<String> {
        reader.stats().lists.into_iter().collect()
    }

    fn resolve(
        &self,
        reader: &IndexReader,
        opts: Option<&proto::MatchOptions>,
        image: bool,
    ) -> Result<ResolvedOptions, Status> {
        let default = proto::MatchOptions::default();
        let o = opts.unwrap_or(&default);
        let robust = match o.robust {
            _ if !image => Some(RobustLevel::Off),
            None => None,
            Some(v) => Some(robust_level(v)?),
        };
        resolve_options(
            &self.config.matching,
            o.radius,
            &o.lists,
            if image { o.dihedral } else { Some(false) },
            robust,
            o.max_matches,
            &Self::known_lists(reader),
        )
        .map_err(|e| Status::invalid_argument(format!("options: {e}")))
    }

    async fn list_counts(&self, reader: &Arc<IndexReader>) -> Result<Vec<proto::ListInfo>, Status> {
        let mut cache = self.list_cache.lock().await;
        if let Some((g, lists)) = cache.as_ref() {
            if *g == reader.generation() {
                return Ok(lists.clone());
            }
        }
        let r = reader.clone();
        let counts = tokio::task::spawn_blocking(move || r.list_counts())
            .await
            .map_err(|e| Status::internal(format!("list count task failed: {e}")))?
            .map_err(|e| Status::internal(format!("cannot count list entries: {e}")))?;
        let mut lists: Vec<proto::ListInfo> = counts
            .into_iter()
            .map(|(name, entries)| proto::ListInfo { name, entries })
            .collect();
        lists.sort_by(|a, b| a.name.cmp(&b.name));
        *cache = Some((reader.generation(), lists.clone()));
        Ok(lists)
    }

    /// Commits stubs before the caller hears of the match.
    async fn create_reports(&self, stubs: Vec<NewReport>) -> Result<Vec<String>, Status> {
        if stubs.is_empty() {
            return Ok(Vec::new());
        }
        let n = stubs.len();
        let ids = self
            .store
            .run(move |store| store.create_many(&stubs))
            .await
            .map_err(|e| Status::internal(format!("report store task failed: {e}")))?
            .map_err(|e| {
                tracing::error!(error = %e, "report stub could not be stored");
                Status::unavailable(format!(
                    "a match was found but its report stub could not be stored ({e}); retry"
                ))
            })?;
        self.metrics.reports_created.inc_by(n as u64);
        Ok(ids)
    }

    fn count_outcome(&self, method: &str, o: &Outcome) {
        self.metrics
            .verdicts
            .with_label_values(&[method, o.verdict.as_str()])
            .inc();
        for m in &o.matches {
            self.metrics
                .matches
                .with_label_values(&[m.list.as_str(), m.kind.as_str()])
                .inc();
        }
    }

    /// Hashes and matches one image; stores a stub when it matched.
    async fn match_one_image(
        self: &Arc<Self>,
        req: proto::MatchImageRequest,
        caller: &Caller,
        deadline: Instant,
        wait_for_pool: bool,
        method: &str,
    ) -> Result<proto::MatchResult, Status> {
        let proto::MatchImageRequest {
            image,
            content_ref,
            submitter_ref,
            options,
            request_id,
            file_name,
        } = req;
        if image.is_empty() {
            return Err(Status::invalid_argument(
                "image is empty: send the file's bytes in `image`",
            ));
        }
        // One generation for the whole request: a reload swaps the shared
        // pointer, this Arc keeps the old generation alive until we finish.
        let reader = self.index.current();
        let opts = self.resolve(&reader, options.as_ref(), true)?;
        if Instant::now() >= deadline {
            return Err(Status::deadline_exceeded(
                "deadline expired before hashing started",
            ));
        }
        let image_len = image.len();
        let mode = HashMode {
            dihedral: opts.dihedral,
            robust: opts.robust,
        };
        // The lookup runs on the hashing worker right after the hash: it
        // blocks (a few thousand reads from the mapped index, more with
        // dihedral or robust variants), so it stays off the async threads
        // and inside the pool's bound. It owns what it needs.
        let lookup = {
            let reader = reader.clone();
            let policy = self.config.matching.clone();
            let opts = opts.clone();
            move |Signed { sigs, robust }: Signed| {
                let outcome = Matcher {
                    reader: &reader,
                    policy: &policy,
                    options: &opts,
                }
                .signatures(&sigs, &robust);
                (sigs, outcome)
            }
        };
        let signed = if wait_for_pool {
            self.pool.sign_waiting(image, mode, deadline, lookup).await
        } else {
            self.pool.try_sign(image, mode, deadline, lookup).await
        };
        let (sigs, outcome) = signed.map_err(|e| match e {
            PoolError::Full(_) | PoolError::FullBytes(_) => {
                self.metrics.pool_rejections.inc();
                Status::resource_exhausted(e.to_string())
            }
            PoolError::DeadlineExpired => Status::deadline_exceeded(e.to_string()),
            PoolError::ShutDown => Status::unavailable(e.to_string()),
            PoolError::WorkerPanic(_) => Status::internal(e.to_string()),
        })?;
        self.count_outcome(method, &outcome);
        let hashes = computed_hashes(&sigs);
        let report_id = if outcome.verdict == Verdict::Match {
            let stub = NewReport {
                detected_at_ms: now_ms(),
                reporting_org: self.config.reporting_organisation.clone(),
                reporting_email: self.config.reporting_email.clone(),
                submitter_ref: submitter_ref.clone(),
                content_ref: content_ref.clone(),
                file_name,
                source: "image".into(),
                md5: hashes.md5.clone(),
                sha1: hashes.sha1.clone(),
                sha256: hashes.sha256.clone(),
                pdq: hashes.pdq.clone(),
                quality: sigs.image.as_ref().ok().map(|i| i.quality),
                matches: outcome.matches.iter().map(stored_match).collect(),
                actor: caller.name().to_string(),
            };
            self.create_reports(vec![stub])
                .await?
                .pop()
                .unwrap_or_default()
        } else {
            String::new()
        };
        // Logged: ids, verdict, sizes and digests of the bytes (which the
        // report stub holds anyway), never the bytes or pixels.
        tracing::info!(
            method,
            caller = caller.name(),
            request_id = %request_id,
            content_ref = %content_ref,
            bytes = image_len,
            verdict = outcome.verdict.as_str(),
            matches = outcome.matches.len(),
            report_id = %report_id,
            generation = reader.generation(),
            "image matched"
        );
        Ok(proto::MatchResult {
            request_id,
            verdict: proto_verdict(outcome.verdict) as i32,
            matches: outcome
                .matches
                .iter()
                .map(|m| proto::Match {
                    query_variant: outcome.query_variant(m).unwrap_or_default().to_string(),
                    ..proto_match(m)
                })
                .collect(),
            hashes: Some(hashes),
            report_id,
            error: outcome.error.unwrap_or_default(),
            index_generation: reader.generation(),
        })
    }

    async fn timed<T>(
        &self,
        method: &'static str,
        fut: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let start = Instant::now();
        let result = fut.await;
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(s) => {
                tracing::info!(method, code = ?s.code(), message = s.message(), "call failed");
                s.code()
            }
        };
        self.metrics
            .observe_call(method, code, start.elapsed().as_secs_f64());
        result
    }
}

/// `MatchOptions.robust` as sent (an enum, or the bool it used to be).
fn robust_level(v: i32) -> Result<RobustLevel, Status> {
    match proto::RobustLevel::try_from(v) {
        Ok(proto::RobustLevel::Off) => Ok(RobustLevel::Off),
        Ok(proto::RobustLevel::Standard) => Ok(RobustLevel::Standard),
        Ok(proto::RobustLevel::Full) => Ok(RobustLevel::Full),
        Err(_) => Err(Status::invalid_argument(format!(
            "options: robust level {v} is not one of OFF (0), STANDARD (1), FULL (2)"
        ))),
    }
}

fn computed_hashes(sigs: &FileSignatures) -> proto::ComputedHashes {
    let (pdq, quality, width, height) = match &sigs.image {
        Ok(img) => (img.pdq.to_hex(), img.quality, img.width, img.height),
        Err(_) => (String::new(), 0, 0, 0),
    };
    proto::ComputedHashes {
        pdq,
        quality,
        md5: sigs.exact.md5_hex(),
        // Empty (proto3's "unset") if SHA-1 was not computed; the service
        // always computes it.
        sha1: sigs.exact.sha1_hex().unwrap_or_default(),
        sha256: sigs.exact.sha256_hex(),
        width,
        height,
    }
}

fn proto_verdict(v: Verdict) -> proto::Verdict {
    match v {
        Verdict::Match => proto::Verdict::Match,
        Verdict::NoMatch => proto::Verdict::NoMatch,
        Verdict::LowQuality => proto::Verdict::LowQuality,
        Verdict::Error => proto::Verdict::Error,
    }
}

fn proto_kind(k: HashKind) -> proto::HashKind {
    match k {
        HashKind::Pdq => proto::HashKind::Pdq,
        HashKind::Md5 => proto::HashKind::Md5,
        HashKind::Sha1 => proto::HashKind::Sha1,
        HashKind::Sha256 => proto::HashKind::Sha256,
    }
}

fn proto_variant(name: Option<&str>) -> proto::Dihedral {
    use proto::Dihedral as D;
    match name {
        Some("orig") => D::Orig,
        Some("rot90") => D::Rot90,
        Some("rot180") => D::Rot180,
        Some("rot270") => D::Rot270,
        Some("flipx") => D::Flipx,
        Some("flipy") => D::Flipy,
        Some("flipplus1") => D::Flipplus1,
        Some("flipminus1") => D::Flipminus1,
        _ => D::Unspecified,
    }
}

fn proto_match(m: &Match) -> proto::Match {
    proto::Match {
        id: m.id.clone(),
        list: m.list.clone(),
        category: m.category.clone(),
        distance: m.distance,
        kind: proto_kind(m.kind) as i32,
        variant: proto_variant(m.variant.map(|v| v.as_str())) as i32,
        note: m.note.clone().unwrap_or_default(),
        query_variant: String::new(),
    }
}

fn stored_match(m: &Match) -> StoredMatch {
    StoredMatch {
        id: m.id.clone(),
        list: m.list.clone(),
        category: m.category.clone(),
        note: m.note.clone(),
        kind: m.kind.as_str().to_string(),
        distance: m.distance,
        variant: m.variant.map(|v| v.as_str().to_string()),
    }
}

fn stored_to_proto_match(m: &StoredMatch) -> proto::Match {
    let kind = m
        .kind
        .parse::<HashKind>()
        .map_or(proto::HashKind::Unspecified, proto_kind);
    proto::Match {
        id: m.id.clone(),
        list: m.list.clone(),
        category: m.category.clone(),
        distance: m.distance,
        kind: kind as i32,
        variant: proto_variant(m.variant.as_deref()) as i32,
        note: m.note.clone().unwrap_or_default(),
        query_variant: String::new(),
    }
}

/// A parsed, validated `HashQuery`.
struct ParsedHash {
    kind: HashKind,
    bytes: Vec<u8>,
}

/// The items of a parsed batch as [`Matcher::hashes`] takes them.
fn hash_items<'a>(
    parsed: &'a [ParsedHash],
    req: &'a proto::MatchHashesRequest,
) -> Vec<(HashKind, &'a [u8], Option<u32>)> {
    parsed
        .iter()
        .zip(&req.hashes)
        .map(|(p, q)| (p.kind, &p.bytes[..], q.quality))
        .collect()
}

fn parse_query(i: usize, q: &proto::HashQuery) -> Result<ParsedHash, Status> {
    let name = || {
        if q.id.is_empty() {
            format!("hashes[{i}]")
        } else {
            format!("hashes[{i}] (id {:?})", q.id)
        }
    };
    let kind = match proto::HashKind::try_from(q.kind) {
        Ok(proto::HashKind::Pdq) => HashKind::Pdq,
        Ok(proto::HashKind::Md5) => HashKind::Md5,
        Ok(proto::HashKind::Sha1) => HashKind::Sha1,
        Ok(proto::HashKind::Sha256) => HashKind::Sha256,
        Ok(proto::HashKind::Unspecified) => {
            return Err(Status::invalid_argument(format!(
                "{}: kind is not set (expected PDQ, MD5, SHA1 or SHA256)",
                name()
            )))
        }
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "{}: unknown hash kind {}",
                name(),
                q.kind
            )))
        }
    };
    let mut bytes = vec![0u8; kind.byte_len()];
    sigil_core::hash::decode_hex_into(q.hex.trim(), &mut bytes).map_err(|e| {
        Status::invalid_argument(format!("{}: not a valid {} hash: {e}", name(), kind))
    })?;
    Ok(ParsedHash { kind, bytes })
}

/// The gRPC status of a lookup the queue did not run.
fn lookup_status(st: &AppState, e: LookupError) -> Status {
    match e {
        LookupError::Full(_) => {
            st.metrics.lookup_rejections.inc();
            Status::resource_exhausted(e.to_string())
        }
        LookupError::DeadlineExpired => {
            Status::deadline_exceeded(format!("deadline exceeded while matching hashes ({e})"))
        }
        LookupError::ShutDown => Status::unavailable(e.to_string()),
        LookupError::WorkerPanic(_) => Status::internal(e.to_string()),
    }
}

fn map_store_err(e: StoreError) -> Status {
    match e {
        StoreError::NotFound(_) => Status::not_found(e.to_string()),
        StoreError::Rejected { .. } => Status::failed_precondition(e.to_string()),
        StoreError::BadPageToken(_) => Status::invalid_argument(e.to_string()),
        StoreError::Open { .. }
        | StoreError::Sql(_)
        | StoreError::Unavailable(_)
        | StoreError::Backend(_) => {
            tracing::error!(error = %e, "report store failed");
            Status::unavailable(e.to_string())
        }
    }
}

type ResultStream = Pin<Box<dyn Stream<Item = Result<proto::MatchResult, Status>> + Send>>;

#[tonic::async_trait]
impl proto::matcher_server::Matcher for MatcherService {
    async fn match_image(
        &self,
        request: Request<proto::MatchImageRequest>,
    ) -> Result<Response<proto::MatchResult>, Status> {
        let st = &self.state;
        st.timed("MatchImage", async {
            let caller = caller(&request)?;
            let deadline = st.deadline(request.metadata(), Instant::now());
            let msg = request.into_inner();
            let work = st.match_one_image(msg, &caller, deadline, false, "MatchImage");
            match tokio::time::timeout_at(deadline.into(), work).await {
                Ok(r) => r.map(Response::new),
                Err(_) => Err(Status::deadline_exceeded(
                    "deadline exceeded while matching",
                )),
            }
        })
        .await
    }

    type MatchImageStreamStream = ResultStream;

    async fn match_image_stream(
        &self,
        request: Request<Streaming<proto::MatchImageRequest>>,
    ) -> Result<Response<Self::MatchImageStreamStream>, Status> {
        let caller = caller(&request)?;
        let state = self.state.clone();
        let window = state.config.limits.stream_window;
        let per_item = Duration::from_millis(state.config.limits.request_timeout_ms);
        let inbound = request.into_inner();
        let mut first = true;
        // `buffered` runs up to `window` items at once and yields results in
        // request order.
        let out = inbound
            .map(move |item| {
                let state = state.clone();
                let caller = caller.clone();
                // The stream open was charged by the interceptor.
                let charge = if std::mem::take(&mut first) {
                    Ok(())
                } else {
                    caller.charge(1)
                };
                async move {
                    let start = Instant::now();
                    let msg = item?;
                    let request_id = msg.request_id.clone();
                    let result = match charge {
                        Err(s) => Err(s),
                        Ok(()) => {
                            let deadline = start + per_item;
                            let work = state.match_one_image(
                                msg,
                                &caller,
                                deadline,
                                true,
                                "MatchImageStream",
                            );
                            match tokio::time::timeout_at(deadline.into(), work).await {
                                Ok(r) => r,
                                Err(_) => Err(Status::deadline_exceeded(
                                    "deadline exceeded while matching",
                                )),
                            }
                        }
                    };
                    let code = result
                        .as_ref()
                        .map_or_else(|s| s.code(), |_| tonic::Code::Ok);
                    state.metrics.observe_call(
                        "MatchImageStream",
                        code,
                        start.elapsed().as_secs_f64(),
                    );
                    // A bad item does not end the stream: it becomes an
                    // ERROR result carrying its request id.
                    Ok(result.unwrap_or_else(|s| proto::MatchResult {
                        request_id,
                        verdict: proto::Verdict::Error as i32,
                        error: format!("{:?}: {}", s.code(), s.message()),
                        ..Default::default()
                    }))
                }
            })
            .buffered(window);
        Ok(Response::new(Box::pin(out)))
    }

    async fn match_hashes(
        &self,
        request: Request<proto::MatchHashesRequest>,
    ) -> Result<Response<proto::MatchHashesResponse>, Status> {
        let st = self.state.clone();
        self.state
            .timed("MatchHashes", async move {
                let caller = caller(&request)?;
                let deadline = st.deadline(request.metadata(), Instant::now());
                let req = request.into_inner();
                if req.hashes.is_empty() {
                    return Err(Status::invalid_argument(
                        "no hashes in request: fill `hashes`",
                    ));
                }
                let max = st.config.limits.max_batch;
                if req.hashes.len() > max {
                    return Err(Status::invalid_argument(format!(
                        "batch of {} hashes is over this server's limit of {max}; split it",
                        req.hashes.len()
                    )));
                }
                let parsed = req
                    .hashes
                    .iter()
                    .enumerate()
                    .map(|(i, q)| parse_query(i, q))
                    .collect::<Result<Vec<_>, _>>()?;
                let reader = st.index.current();
                let opts = st.resolve(&reader, req.options.as_ref(), false)?;
                let generation = reader.generation();
                let (queries, search_opts) = {
                    let m = Matcher {
                        reader: &reader,
                        policy: &st.config.matching,
                        options: &opts,
                    };
                    (
                        m.pdq_queries(&hash_items(&parsed, &req)),
                        m.search_options(),
                    )
                };
                // The PDQ search runs in the lookup queue, possibly together
                // with other calls' hashes; the finishing step (exact-digest
                // lookups, filters, outcomes) runs on the lookup worker
                // right after it, off the async threads as the whole lookup
                // used to, and inside the queue's bound. It owns what it
                // needs rather than the AppState, which owns the queue.
                let policy = st.config.matching.clone();
                let search_reader = reader.clone();
                let pending = st
                    .lookup
                    .try_search(
                        search_reader,
                        search_opts,
                        queries.hashes.clone(),
                        deadline,
                        move |found| {
                            let m = Matcher {
                                reader: &reader,
                                policy: &policy,
                                options: &opts,
                            };
                            let outcomes: Vec<Outcome> =
                                m.hash_outcomes(&hash_items(&parsed, &req), &queries, found);
                            (outcomes, parsed, req)
                        },
                    )
                    .map_err(|e| lookup_status(&st, e))?;
                let (outcomes, parsed, req) =
                    match tokio::time::timeout_at(deadline.into(), pending.wait()).await {
                        Ok(r) => r.map_err(|e| lookup_status(&st, e))?,
                        Err(_) => {
                            return Err(Status::deadline_exceeded(
                                "deadline exceeded while matching hashes",
                            ))
                        }
                    };
                let now = now_ms();
                let mut stubs = Vec::new();
                for ((o, p), q) in outcomes.iter().zip(&parsed).zip(&req.hashes) {
                    st.count_outcome("MatchHashes", o);
                    if o.verdict != Verdict::Match {
                        continue;
                    }
                    let hex = encode_hex(&p.bytes);
                    let mut stub = NewReport {
                        detected_at_ms: now,
                        reporting_org: st.config.reporting_organisation.clone(),
                        reporting_email: st.config.reporting_email.clone(),
                        submitter_ref: req.submitter_ref.clone(),
                        content_ref: q.content_ref.clone(),
                        source: "hashes".into(),
                        quality: q.quality,
                        matches: o.matches.iter().map(stored_match).collect(),
                        actor: caller.name().to_string(),
                        ..Default::default()
                    };
                    match p.kind {
                        HashKind::Pdq => stub.pdq = hex,
                        HashKind::Md5 => stub.md5 = hex,
                        HashKind::Sha1 => stub.sha1 = hex,
                        HashKind::Sha256 => stub.sha256 = hex,
                    }
                    stubs.push(stub);
                }
                let mut ids = st.create_reports(stubs).await?.into_iter();
                let results: Vec<proto::HashResult> = outcomes
                    .iter()
                    .zip(&parsed)
                    .zip(&req.hashes)
                    .map(|((o, p), q)| proto::HashResult {
                        id: q.id.clone(),
                        kind: proto_kind(p.kind) as i32,
                        hex: encode_hex(&p.bytes),
                        verdict: proto_verdict(o.verdict) as i32,
                        matches: o.matches.iter().map(proto_match).collect(),
                        report_id: if o.verdict == Verdict::Match {
                            ids.next().unwrap_or_default()
                        } else {
                            String::new()
                        },
                    })
                    .collect();
                tracing::info!(
                    caller = caller.name(),
                    hashes = results.len(),
                    matched = results.iter().filter(|r| !r.report_id.is_empty()).count(),
                    generation,
                    "hashes matched"
                );
                Ok(Response::new(proto::MatchHashesResponse {
                    results,
                    index_generation: generation,
                }))
            })
            .await
    }

    async fn index_info(
        &self,
        request: Request<proto::IndexInfoRequest>,
    ) -> Result<Response<proto::IndexInfoResponse>, Status> {
        let st = &self.state;
        st.timed("IndexInfo", async {
            caller(&request)?;
            let reader = st.index.current();
            let stats = reader.stats();
            let lists = st.list_counts(&reader).await?;
            let pdq_entries = stats.entries.get("pdq").copied().unwrap_or(0);
            let entries: u64 = stats.entries.values().sum();
            Ok(Response::new(proto::IndexInfoResponse {
                generation: reader.generation(),
                entries,
                pdq_entries,
                exact_entries: entries - pdq_entries,
                lists,
                loaded_at_unix_ms: st.loaded_at_ms.load(std::sync::atomic::Ordering::Relaxed),
                default_radius: st.config.matching.radius,
                quality_threshold: st.config.matching.quality_threshold,
            }))
        })
        .await
    }
}

fn status_from_proto(v: i32) -> Result<Option<ReportStatus>, Status> {
    match proto::ReportStatus::try_from(v) {
        Ok(proto::ReportStatus::Unspecified) => Ok(None),
        Ok(proto::ReportStatus::Pending) => Ok(Some(ReportStatus::Pending)),
        Ok(proto::ReportStatus::Confirmed) => Ok(Some(ReportStatus::Confirmed)),
        Ok(proto::ReportStatus::Dismissed) => Ok(Some(ReportStatus::Dismissed)),
        Ok(proto::ReportStatus::Reported) => Ok(Some(ReportStatus::Reported)),
        Err(_) => Err(Status::invalid_argument(format!(
            "unknown report status {v}"
        ))),
    }
}

fn status_to_proto(s: ReportStatus) -> proto::ReportStatus {
    match s {
        ReportStatus::Pending => proto::ReportStatus::Pending,
        ReportStatus::Confirmed => proto::ReportStatus::Confirmed,
        ReportStatus::Dismissed => proto::ReportStatus::Dismissed,
        ReportStatus::Reported => proto::ReportStatus::Reported,
    }
}

fn classification_from_proto(v: i32) -> Result<Option<String>, Status> {
    use proto::Classification as C;
    Ok(match C::try_from(v) {
        Ok(C::Unspecified) => None,
        Ok(C::A1) => Some("A1".into()),
        Ok(C::A2) => Some("A2".into()),
        Ok(C::B1) => Some("B1".into()),
        Ok(C::B2) => Some("B2".into()),
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "unknown classification {v}"
            )))
        }
    })
}

fn classification_to_proto(s: Option<&str>) -> proto::Classification {
    use proto::Classification as C;
    match s {
        Some("A1") => C::A1,
        Some("A2") => C::A2,
        Some("B1") => C::B1,
        Some("B2") => C::B2,
        _ => C::Unspecified,
    }
}

fn report_to_proto(r: ReportRecord) -> proto::Report {
    proto::Report {
        id: r.id,
        status: status_to_proto(r.status) as i32,
        incident_type: r.incident_type,
        detected_at_unix_ms: r.detected_at_ms,
        preservation_deadline_unix_ms: r.preservation_deadline_ms,
        reporting_org: r.reporting_org,
        reporting_email: r.reporting_email,
        submitter_ref: r.submitter_ref,
        content_ref: r.content_ref,
        file_name: r.file_name,
        md5: r.md5,
        sha1: r.sha1,
        sha256: r.sha256,
        pdq: r.pdq,
        quality: r.quality,
        matches: r.matches.iter().map(stored_to_proto_match).collect(),
        viewed: r.viewed,
        classification: classification_to_proto(r.classification.as_deref()) as i32,
        annotations: r.annotations,
        reviewer: r.reviewer.unwrap_or_default(),
        updated_at_unix_ms: r.updated_at_ms,
        audit: r
            .audit
            .into_iter()
            .map(|a| proto::AuditEntry {
                at_unix_ms: a.at_ms,
                actor: a.actor,
                action: a.action,
                details_json: a.details_json,
            })
            .collect(),
        source: r.source,
    }
}

fn require_id(id: &str) -> Result<(), Status> {
    if id.is_empty() {
        Err(Status::invalid_argument("report id is empty"))
    } else {
        Ok(())
    }
}

impl ReportsService {
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn ReportStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Status> {
        self.state
            .store
            .run(f)
            .await
            .map_err(|e| Status::internal(format!("report store task failed: {e}")))?
            .map_err(map_store_err)
    }
}

#[tonic::async_trait]
impl proto::reports_server::Reports for ReportsService {
    async fn get_report(
        &self,
        request: Request<proto::GetReportRequest>,
    ) -> Result<Response<proto::Report>, Status> {
        self.state
            .timed("GetReport", async {
                caller(&request)?;
                let id = request.into_inner().id;
                require_id(&id)?;
                let r = self.blocking(move |s| s.get(&id)).await?;
                Ok(Response::new(report_to_proto(r)))
            })
            .await
    }

    async fn list_reports(
        &self,
        request: Request<proto::ListReportsRequest>,
    ) -> Result<Response<proto::ListReportsResponse>, Status> {
        self.state
            .timed("ListReports", async {
                caller(&request)?;
                let q = request.into_inner();
                let filter = ReportFilter {
                    status: status_from_proto(q.status)?,
                    detected_after_ms: (q.detected_after_unix_ms != 0)
                        .then_some(q.detected_after_unix_ms),
                    detected_before_ms: (q.detected_before_unix_ms != 0)
                        .then_some(q.detected_before_unix_ms),
                    list: (!q.list.is_empty()).then_some(q.list),
                    page_size: if q.page_size == 0 {
                        50
                    } else {
                        q.page_size.min(1000) as usize
                    },
                    page_token: (!q.page_token.is_empty()).then_some(q.page_token),
                };
                let page = self.blocking(move |s| s.list(&filter)).await?;
                Ok(Response::new(proto::ListReportsResponse {
                    reports: page.reports.into_iter().map(report_to_proto).collect(),
                    next_page_token: page.next_page_token.unwrap_or_default(),
                }))
            })
            .await
    }

    async fn update_report(
        &self,
        request: Request<proto::UpdateReportRequest>,
    ) -> Result<Response<proto::Report>, Status> {
        self.state
            .timed("UpdateReport", async {
                let who = caller(&request)?;
                let q = request.into_inner();
                require_id(&q.id)?;
                let update = ReportUpdate {
                    status: status_from_proto(q.status)?,
                    viewed: q.viewed,
                    classification: classification_from_proto(q.classification)?,
                    add_annotations: q.add_annotations,
                };
                if update.status.is_none()
                    && update.viewed.is_none()
                    && update.classification.is_none()
                    && update.add_annotations.is_empty()
                {
                    return Err(Status::invalid_argument(
                        "update changes nothing: set status, viewed, classification or add_annotations",
                    ));
                }
                let actor = who.name().to_string();
                let id = q.id;
                let r = self
                    .blocking(move |s| s.update(&id, &update, &actor, now_ms()))
                    .await?;
                tracing::info!(report_id = %r.id, reviewer = who.name(), status = r.status.as_str(), "report updated");
                Ok(Response::new(report_to_proto(r)))
            })
            .await
    }

    async fn export_report(
        &self,
        request: Request<proto::ExportReportRequest>,
    ) -> Result<Response<proto::ExportReportResponse>, Status> {
        self.state
            .timed("ExportReport", async {
                caller(&request)?;
                let id = request.into_inner().id;
                require_id(&id)?;
                let r = self.blocking(move |s| s.get(&id)).await?;
                let json = serde_json::to_string_pretty(&crate::export::cybertipline_json(&r))
                    .map_err(|e| Status::internal(format!("export failed: {e}")))?;
                Ok(Response::new(proto::ExportReportResponse { json }))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("1n"), Some(Duration::from_nanos(1)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(parse_grpc_timeout("10q"), None);
    }

    #[test]
    fn malformed_hashes_are_named() {
        let q = |kind: proto::HashKind, hex: &str| proto::HashQuery {
            id: "q1".into(),
            kind: kind as i32,
            hex: hex.into(),
            ..Default::default()
        };
        let e = parse_query(3, &q(proto::HashKind::Sha1, &"a".repeat(32)))
            .err()
            .unwrap();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(
            e.message().contains("hashes[3]") && e.message().contains("40"),
            "{}",
            e.message()
        );
        let e = parse_query(0, &q(proto::HashKind::Md5, &"z".repeat(32)))
            .err()
            .unwrap();
        assert!(e.message().contains("invalid hex"), "{}", e.message());
        let e = parse_query(0, &q(proto::HashKind::Unspecified, "00"))
            .err()
            .unwrap();
        assert!(e.message().contains("kind is not set"));
        let upper = parse_query(0, &q(proto::HashKind::Md5, &"AB".repeat(16)))
            .ok()
            .unwrap();
        assert_eq!(encode_hex(&upper.bytes), "ab".repeat(16));
    }
}
