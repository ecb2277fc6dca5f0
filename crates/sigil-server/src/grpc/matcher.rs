//! `sigil.v1.Matcher`: images or hashes in, a verdict per item out. A
//! match's report stub is committed before the caller hears of the match.
//!
//! The matching rule itself is `sigil_match`'s (the one scan and
//! `index query` use); it is called in three places only, all in this
//! file: [`MatcherService::resolve`] (a request's options, through
//! `MatchPolicy::resolve`), [`MatcherService::sign_and_match`] (an image,
//! `Matcher::file` on its hashing worker) and
//! [`MatcherService::lookup_hashes`] (a batch of hashes,
//! `Matcher::pdq_queries` and `Matcher::hash_outcomes` around the lookup
//! queue's shared search).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures_util::Stream;
use sigil_core::robust::RobustLevel;
use sigil_core::{FileSignatures, HashKind};
use sigil_index::IndexReader;
use sigil_match::{
    HashItem, MatchRequest, Matcher, OptionsError, Outcome, ResolvedOptions, Verdict,
};
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status, Streaming};

use super::convert::{match_result, parse_query, ParsedHash};
use super::{caller, deadline, key_name, timed};
use crate::auth::Caller;
use crate::exec::lookup::LookupError;
use crate::exec::pool::{HashMode, PoolError, Signed};
use crate::proto;
use crate::server::AppState;
use crate::untrusted;
use sigil_reports::time::now_ms;
use sigil_reports::{Filing, NewReport, StoredMatch};

/// `sigil.v1.Matcher`.
#[derive(Clone)]
pub(crate) struct MatcherService {
    pub state: Arc<AppState>,
}

impl MatcherService {
    /// A request's options with the server's defaults and limits applied.
    /// Hash requests match neither dihedral nor robust variants (there is
    /// no image to derive them from).
    fn resolve(
        &self,
        reader: &IndexReader,
        opts: Option<&proto::MatchOptions>,
        image: bool,
    ) -> Result<ResolvedOptions, Status> {
        let mut request = match opts {
            Some(o) => MatchRequest::try_from(o)?,
            None => MatchRequest::default(),
        };
        if !image {
            request.dihedral = Some(false);
            request.robust = Some(RobustLevel::Off);
        }
        self.state
            .config
            .matching
            .resolve(&request, reader)
            .map_err(|e| {
                // The one client string an options error holds is a list
                // name: shown escaped and bounded, like every client string.
                let e = match e {
                    OptionsError::UnknownList { name, known } => OptionsError::UnknownList {
                        name: untrusted::text(&name).to_string(),
                        known,
                    },
                    other => other,
                };
                Status::invalid_argument(format!("options: {e}"))
            })
    }

    /// Hashes `image` on the pool and matches its signatures there, right
    /// after the hash: the lookup blocks (a few thousand reads from the
    /// mapped index, more with dihedral or robust variants), so it stays
    /// off the async threads and inside the pool's bound.
    async fn sign_and_match(
        &self,
        reader: &Arc<IndexReader>,
        opts: &ResolvedOptions,
        image: prost::bytes::Bytes,
        deadline: Instant,
        wait_for_pool: bool,
    ) -> Result<(FileSignatures, Outcome), Status> {
        let st = &self.state;
        let mode = HashMode::of(opts);
        // The follow-up owns what it needs: it runs on a worker thread.
        let lookup = {
            let (reader, opts) = (reader.clone(), opts.clone());
            move |Signed { sigs, robust }: Signed| {
                let outcome = Matcher::new(&*reader, &opts).file(&sigs, &robust);
                (sigs, outcome)
            }
        };
        let signed = if wait_for_pool {
            st.pool.sign_waiting(image, mode, deadline, lookup).await
        } else {
            st.pool.try_sign(image, mode, deadline, lookup).await
        };
        signed.map_err(|e| {
            if matches!(e, PoolError::Full(_) | PoolError::FullBytes(_)) {
                st.metrics.pool_rejections.inc();
            }
            Status::from(e)
        })
    }

    /// Hashes and matches one image; stores a stub when it matched.
    async fn match_one_image(
        &self,
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
        let reader = self.state.index.current();
        let opts = self.resolve(&reader, options.as_ref(), true)?;
        if Instant::now() >= deadline {
            return Err(Status::deadline_exceeded(
                "deadline expired before hashing started",
            ));
        }
        let image_len = image.len();
        let (sigs, outcome) = self
            .sign_and_match(&reader, &opts, image, deadline, wait_for_pool)
            .await?;
        self.count_outcome(method, &outcome);
        let hashes = proto::ComputedHashes::from(&sigs);
        let check_only = options.as_ref().and_then(|o| o.check_only) == Some(true);
        let report_id = if outcome.verdict == Verdict::Match && !check_only {
            let stub = NewReport {
                content_ref: content_ref.clone(),
                file_name,
                source: "image".into(),
                md5: hashes.md5.clone(),
                sha1: hashes.sha1.clone(),
                sha256: hashes.sha256.clone(),
                pdq: hashes.pdq.clone(),
                quality: sigs.image.as_ref().ok().map(|i| i.quality),
                ..self.report_stub(caller, &submitter_ref, &outcome, now_ms())
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
            request_id = %untrusted::text(&request_id),
            content_ref = %untrusted::text(&content_ref),
            bytes = image_len,
            verdict = outcome.verdict.as_str(),
            matches = outcome.matches.len(),
            report_id = %report_id,
            generation = reader.generation(),
            identity = %reader.identity(),
            "image matched"
        );
        Ok(match_result(request_id, outcome, hashes, report_id))
    }

    /// Parses a `MatchHashes` batch, refusing an empty or oversized one
    /// and naming the first malformed item.
    fn parse_batch(&self, req: &proto::MatchHashesRequest) -> Result<Vec<ParsedHash>, Status> {
        if req.hashes.is_empty() {
            return Err(Status::invalid_argument(
                "no hashes in request: fill `hashes`",
            ));
        }
        let max = self.state.config.limits.max_batch;
        if req.hashes.len() > max {
            return Err(Status::invalid_argument(format!(
                "batch of {} hashes is over this server's limit of {max}; split it",
                req.hashes.len()
            )));
        }
        req.hashes
            .iter()
            .enumerate()
            .map(|(i, q)| parse_query(i, q))
            .collect()
    }

    /// Matches a parsed batch through the lookup queue: its PDQ search
    /// runs there, possibly together with other calls' hashes; the
    /// finishing step (exact-digest lookups, filters, outcomes) runs on the
    /// lookup worker right after it, off the async threads and inside the
    /// queue's bound. One outcome per item, in order.
    async fn lookup_hashes(
        &self,
        reader: Arc<IndexReader>,
        opts: ResolvedOptions,
        parsed: Vec<ParsedHash>,
        deadline: Instant,
    ) -> Result<(Vec<Outcome>, Vec<ParsedHash>), Status> {
        let st = &self.state;
        let (queries, search_opts) = {
            let m = Matcher::new(&*reader, &opts);
            (
                m.pdq_queries(&hash_items(&parsed)),
                m.search_options().clone(),
            )
        };
        // The finishing step owns what it needs rather than the AppState,
        // which owns the queue.
        let lookup_status = |e: LookupError| {
            if matches!(e, LookupError::Full(_)) {
                st.metrics.lookup_rejections.inc();
            }
            Status::from(e)
        };
        let pending = st
            .lookup
            .try_search(
                reader.clone(),
                search_opts,
                queries.hashes.clone(),
                deadline,
                move |found| {
                    let m = Matcher::new(&*reader, &opts);
                    (
                        m.hash_outcomes(&hash_items(&parsed), &queries, found),
                        parsed,
                    )
                },
            )
            .map_err(lookup_status)?;
        match tokio::time::timeout_at(deadline.into(), pending.wait()).await {
            Ok(r) => r.map_err(lookup_status),
            Err(_) => Err(Status::deadline_exceeded(
                "deadline exceeded while matching hashes",
            )),
        }
    }

    /// Stores a stub for each matched item of a `MatchHashes` batch and
    /// returns the items' report ids (empty for the unmatched ones).
    async fn store_hash_stubs(
        &self,
        caller: &Caller,
        req: &proto::MatchHashesRequest,
        outcomes: &[Outcome],
        parsed: &[ParsedHash],
    ) -> Result<Vec<String>, Status> {
        if req.options.as_ref().and_then(|o| o.check_only) == Some(true) {
            return Ok(vec![String::new(); outcomes.len()]);
        }
        let now = now_ms();
        let mut stubs = Vec::new();
        for ((o, p), q) in outcomes.iter().zip(parsed).zip(&req.hashes) {
            if o.verdict != Verdict::Match {
                continue;
            }
            let mut stub = NewReport {
                content_ref: q.content_ref.clone(),
                source: "hashes".into(),
                quality: p.quality,
                ..self.report_stub(caller, &req.submitter_ref, o, now)
            };
            *digest_field(&mut stub, p.kind) = p.hex();
            stubs.push(stub);
        }
        let mut ids = self.create_reports(stubs).await?.into_iter();
        Ok(outcomes
            .iter()
            .map(|o| match o.verdict {
                Verdict::Match => ids.next().unwrap_or_default(),
                _ => String::new(),
            })
            .collect())
    }

    /// What every stub of a matched item records besides the item's own
    /// hashes: who detected it, when, for whom, and the matches.
    fn report_stub(
        &self,
        caller: &Caller,
        submitter_ref: &str,
        outcome: &Outcome,
        detected_at_ms: i64,
    ) -> NewReport {
        let config = &self.state.config;
        NewReport {
            detected_at_ms,
            reporting_org: config.reporting_organisation.clone(),
            reporting_email: config.reporting_email.clone(),
            submitter_ref: submitter_ref.to_string(),
            matches: outcome.matches.iter().map(StoredMatch::from).collect(),
            actor: caller.name().to_string(),
            index_identity: outcome.identity.to_string(),
            ..NewReport::default()
        }
    }

    /// Commits stubs (or their sightings, on open stubs of the same
    /// content and entries) before the caller hears of the match.
    async fn create_reports(&self, stubs: Vec<NewReport>) -> Result<Vec<String>, Status> {
        if stubs.is_empty() {
            return Ok(Vec::new());
        }
        let filed = self
            .state
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
        let metrics = &self.state.metrics;
        for f in &filed {
            if f.filing == Filing::Opened {
                metrics.reports_created.inc();
            }
            metrics
                .report_filings
                .with_label_values(&[f.filing.as_str()])
                .inc();
        }
        Ok(filed.into_iter().map(|f| f.id).collect())
    }

    fn count_outcome(&self, method: &str, o: &Outcome) {
        let metrics = &self.state.metrics;
        metrics
            .verdicts
            .with_label_values(&[method, o.verdict.as_str()])
            .inc();
        for m in &o.matches {
            metrics
                .matches
                .with_label_values(&[m.list.as_str(), m.kind.as_str()])
                .inc();
        }
    }

    /// Per-list entry counts of `reader`'s generation, counted once per
    /// generation (counting walks every entry).
    async fn list_counts(&self, reader: &Arc<IndexReader>) -> Result<Vec<proto::ListInfo>, Status> {
        let mut cache = self.state.list_cache.lock().await;
        let counts = match cache.as_ref() {
            Some((id, counts)) if *id == reader.identity() => counts.clone(),
            _ => {
                let r = reader.clone();
                let mut counts: Vec<(String, u64)> =
                    tokio::task::spawn_blocking(move || r.list_counts())
                        .await
                        .map_err(|e| Status::internal(format!("list count task failed: {e}")))?
                        .map_err(|e| Status::internal(format!("cannot count list entries: {e}")))?
                        .into_iter()
                        .collect();
                counts.sort();
                *cache = Some((reader.identity(), counts.clone()));
                counts
            }
        };
        Ok(counts
            .into_iter()
            .map(|(name, entries)| proto::ListInfo { name, entries })
            .collect())
    }
}

/// The items of a parsed batch as the matcher takes them.
fn hash_items(parsed: &[ParsedHash]) -> Vec<HashItem<'_>> {
    parsed
        .iter()
        .map(|p| HashItem {
            kind: p.kind,
            digest: &p.bytes,
            quality: p.quality,
        })
        .collect()
}

/// The stub's field for a digest of `kind`.
fn digest_field(stub: &mut NewReport, kind: HashKind) -> &mut String {
    match kind {
        HashKind::Pdq => &mut stub.pdq,
        HashKind::Md5 => &mut stub.md5,
        HashKind::Sha1 => &mut stub.sha1,
        HashKind::Sha256 => &mut stub.sha256,
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
        timed(&st.metrics, "MatchImage", key_name(&request), async {
            let caller = caller(&request)?;
            let deadline = deadline(
                request.metadata(),
                Instant::now(),
                st.config.limits.request_timeout(),
            );
            let msg = request.into_inner();
            let work = self.match_one_image(msg, &caller, deadline, false, "MatchImage");
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
        let window = self.state.config.limits.stream_window;
        // Each slot holds one item's answer to come, in request order: at
        // most `window` items are running or answered-but-unsent, so a
        // client that stops reading stops the intake, never the work.
        // (Its connection is closed once a response waits unread for
        // `stream_stall_timeout_ms`: `exec::connections`.)
        let (slots, answers) = mpsc::channel(window);
        tokio::spawn(
            self.clone()
                .stream_intake(request.into_inner(), caller, slots),
        );
        let out = futures_util::stream::unfold(answers, |mut answers| async move {
            let answer: oneshot::Receiver<Result<proto::MatchResult, Status>> =
                answers.recv().await?;
            let result = answer
                .await
                .unwrap_or_else(|_| Err(Status::internal("stream item task ended early")));
            Some((result, answers))
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn match_hashes(
        &self,
        request: Request<proto::MatchHashesRequest>,
    ) -> Result<Response<proto::MatchHashesResponse>, Status> {
        let st = &self.state;
        timed(&st.metrics, "MatchHashes", key_name(&request), async {
            let caller = caller(&request)?;
            let deadline = deadline(
                request.metadata(),
                Instant::now(),
                st.config.limits.request_timeout(),
            );
            let req = request.into_inner();
            let parsed = self.parse_batch(&req)?;
            let reader = st.index.current();
            let opts = self.resolve(&reader, req.options.as_ref(), false)?;
            let generation = reader.generation();
            let identity = reader.identity();
            let (outcomes, parsed) = self.lookup_hashes(reader, opts, parsed, deadline).await?;
            for o in &outcomes {
                self.count_outcome("MatchHashes", o);
            }
            let report_ids = self
                .store_hash_stubs(&caller, &req, &outcomes, &parsed)
                .await?;
            let results: Vec<proto::HashResult> = outcomes
                .iter()
                .zip(&parsed)
                .zip(req.hashes.into_iter().zip(report_ids))
                .map(|((o, p), (q, report_id))| proto::HashResult {
                    id: q.id,
                    kind: proto::HashKind::from(p.kind) as i32,
                    hex: p.hex(),
                    verdict: proto::Verdict::from(o.verdict) as i32,
                    matches: o.matches.iter().map(proto::Match::from).collect(),
                    report_id,
                })
                .collect();
            tracing::info!(
                caller = caller.name(),
                hashes = results.len(),
                matched = results.iter().filter(|r| !r.report_id.is_empty()).count(),
                generation,
                %identity,
                "hashes matched"
            );
            Ok(Response::new(proto::MatchHashesResponse {
                results,
                index_generation: generation,
                index_identity: identity.to_string(),
            }))
        })
        .await
    }

    async fn index_info(
        &self,
        request: Request<proto::IndexInfoRequest>,
    ) -> Result<Response<proto::IndexInfoResponse>, Status> {
        let st = &self.state;
        timed(&st.metrics, "IndexInfo", key_name(&request), async {
            caller(&request)?;
            let reader = st.index.current();
            let stats = reader.stats();
            let lists = self.list_counts(&reader).await?;
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
                list_radius_not_held: st.config.matching.list_radius_not_held(&*reader),
                identity: reader.identity().to_string(),
            }))
        })
        .await
    }
}

impl MatcherService {
    /// Reads a `MatchImageStream`'s items and runs each as its own task,
    /// once a slot of the stream's window is free. The task hashes,
    /// matches and stores (taking and releasing the hashing pool's and the
    /// report store's permits itself) whether or not the client ever reads
    /// the answer: nothing shared waits on the client. An inbound error
    /// (a malformed message, a body deadline) ends the stream with it,
    /// after the answers before it.
    async fn stream_intake(
        self,
        mut inbound: Streaming<proto::MatchImageRequest>,
        caller: Caller,
        slots: mpsc::Sender<oneshot::Receiver<Result<proto::MatchResult, Status>>>,
    ) {
        let per_item = self.state.config.limits.request_timeout();
        for index in 0u64.. {
            // Wait for room first: the next item is not read while
            // `window` answers are pending.
            let Ok(slot) = slots.reserve().await else {
                return; // the response is gone (client cancelled)
            };
            let item = match inbound.message().await {
                Ok(Some(item)) => item,
                Ok(None) => return,
                Err(status) => {
                    let (tx, rx) = oneshot::channel();
                    slot.send(rx);
                    let _ = tx.send(Err(status));
                    return;
                }
            };
            let (tx, rx) = oneshot::channel();
            slot.send(rx);
            // The stream open was charged by the interceptor.
            let charge = if index == 0 { Ok(()) } else { caller.charge(1) };
            let service = self.clone();
            let caller = caller.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                let request_id = item.request_id.clone();
                let result = match charge {
                    Err(s) => Err(s),
                    Ok(()) => service.stream_item(item, &caller, start + per_item).await,
                };
                let metrics = &service.state.metrics;
                let code = result
                    .as_ref()
                    .map_or_else(|s| s.code(), |_| tonic::Code::Ok);
                metrics.observe_call(
                    "MatchImageStream",
                    caller.name(),
                    code,
                    start.elapsed().as_secs_f64(),
                );
                // A bad item does not end the stream: it becomes an ERROR
                // result carrying its request id.
                let result = result.unwrap_or_else(|s| proto::MatchResult {
                    request_id,
                    verdict: proto::Verdict::Error as i32,
                    error: format!("{:?}: {}", s.code(), s.message()),
                    ..Default::default()
                });
                // Err: the response is gone (client cancelled); the work
                // is done and its permits released either way.
                let _ = tx.send(Ok(result));
            });
        }
    }

    /// One item of `MatchImageStream`, within its own deadline (the stream
    /// waits for room in the hashing pool rather than being refused).
    async fn stream_item(
        &self,
        msg: proto::MatchImageRequest,
        caller: &Caller,
        deadline: Instant,
    ) -> Result<proto::MatchResult, Status> {
        let work = self.match_one_image(msg, caller, deadline, true, "MatchImageStream");
        match tokio::time::timeout_at(deadline.into(), work).await {
            Ok(r) => r,
            Err(_) => Err(Status::deadline_exceeded(
                "deadline exceeded while matching",
            )),
        }
    }
}
