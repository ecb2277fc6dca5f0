//! Prometheus metrics, owned by the server (no global registry), and the
//! small HTTP endpoint that serves them at `/metrics`.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Every metric the server exports.
pub struct Metrics {
    /// Calls per API key name and status code.
    pub requests_by_key: IntCounterVec,
    registry: Registry,
    /// Finished calls by method and gRPC status code name.
    pub requests: IntCounterVec,
    /// Call latency by method, seconds.
    pub latency: HistogramVec,
    /// Items (images or hashes) by method and verdict.
    pub verdicts: IntCounterVec,
    /// Matches by list and hash kind.
    pub matches: IntCounterVec,
    /// Report stubs created.
    pub reports_created: IntCounter,
    /// Sightings filed, by what the store did with them (`opened` a stub,
    /// `sighted` on an open one, `already_recorded`).
    pub report_filings: IntCounterVec,
    /// Images refused because the hashing pool was full.
    pub pool_rejections: IntCounter,
    /// `MatchHashes` calls refused because the lookup queue was full.
    pub lookup_rejections: IntCounter,
    /// `MatchHashes` requests searched together per index search.
    pub lookup_batch_requests: Histogram,
    /// PDQ hashes per (coalesced) index search.
    pub lookup_batch_hashes: Histogram,
    /// Loaded index generation.
    pub index_generation: IntGauge,
    /// Live entries in the loaded index.
    pub index_entries: IntGauge,
    /// Bytes of the loaded index's mappings resident in memory.
    pub index_resident_bytes: IntGauge,
    /// Of those, bytes mapped with 2 MiB pages (lookups are ~1.5x slower
    /// when most of a large index is in 4 KiB pages; see
    /// `sigil_index::residency`).
    pub index_huge_page_bytes: IntGauge,
    /// Index reloads by outcome ("ok", "unchanged", "error").
    pub reloads: IntCounterVec,
    /// Candidate generations refused at reload, by cause
    /// (`sigil_index::IndexError::reason`: "corrupt", "io", ...).
    pub reload_failures: IntCounterVec,
    /// Seconds the last reload took to open and fully verify its candidate.
    pub reload_verify_seconds: prometheus::Gauge,
    /// Lists named in `[matching] list_radius` that the loaded generation
    /// does not hold (their caps do nothing until one does).
    pub list_radius_not_held: IntGauge,
    /// Open client connections on the gRPC listener.
    pub connections_open: IntGauge,
    /// Connections the server closed, by listener and reason
    /// (`exec::connections::CloseReason`).
    pub connections_closed: IntCounterVec,
    /// Connections refused at accept, by listener and reason.
    pub connections_refused: IntCounterVec,
    /// Request body bytes of messages begun but not yet whole.
    pub body_bytes_in_flight: IntGauge,
    /// Request body frames that waited for the in-flight budget.
    pub body_budget_waits: IntCounter,
    /// Calls reset because a request message did not arrive in time.
    pub body_timeouts: IntCounter,
}

/// Registers `metric` (a static definition, so it cannot fail) and
/// returns it.
fn register<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.expect("static metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new_custom(Some("sigil".into()), None)
            .expect("static registry prefix is valid");
        let counter = |name: &str, help: &str| register(&r, IntCounter::new(name, help));
        let gauge = |name: &str, help: &str| register(&r, IntGauge::new(name, help));
        let counters = |name: &str, help: &str, labels: &[&str]| {
            register(&r, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            register(
                &r,
                Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)),
            )
        };
        Metrics {
            requests: counters(
                "grpc_requests_total",
                "Finished gRPC calls, refused ones (no or unknown key, wrong role, rate limit) included",
                &["method", "code"],
            ),
            requests_by_key: counters(
                "requests_by_key_total",
                "gRPC calls per API key name (never the key; (none) without a key, (unknown) for a key not configured)",
                &["key", "code"],
            ),
            latency: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new("grpc_request_seconds", "gRPC call latency").buckets(vec![
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0, 10.0,
                    ]),
                    &["method"],
                ),
            ),
            verdicts: counters(
                "verdicts_total",
                "Matched items by verdict",
                &["method", "verdict"],
            ),
            matches: counters(
                "matches_total",
                "Matches by list and hash kind",
                &["list", "kind"],
            ),
            reports_created: counter("reports_created_total", "Report stubs created"),
            report_filings: counters(
                "report_filings_total",
                "Matched sightings filed in the report store, by filing",
                &["filing"],
            ),
            pool_rejections: counter(
                "hash_pool_rejections_total",
                "Images refused with RESOURCE_EXHAUSTED because the hashing pool was full",
            ),
            lookup_rejections: counter(
                "lookup_queue_rejections_total",
                "MatchHashes calls refused with RESOURCE_EXHAUSTED because the lookup queue was full",
            ),
            lookup_batch_requests: histogram(
                "lookup_batch_requests",
                "MatchHashes requests whose PDQ hashes were searched together in one index search",
                vec![1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0, 64.0],
            ),
            lookup_batch_hashes: histogram(
                "lookup_batch_hashes",
                "PDQ hashes per index search of the lookup queue (several MatchHashes requests \
                 coalesced)",
                vec![1.0, 16.0, 64.0, 256.0, 1000.0, 2000.0, 4000.0, 8192.0, 10000.0],
            ),
            index_generation: gauge("index_generation", "Loaded index generation"),
            index_entries: gauge("index_entries", "Live entries in the loaded index"),
            index_resident_bytes: gauge(
                "index_resident_bytes",
                "Bytes of the loaded index's memory mappings resident in memory",
            ),
            index_huge_page_bytes: gauge(
                "index_huge_page_bytes",
                "Bytes of the loaded index resident in 2 MiB pages (fewer TLB misses per lookup)",
            ),
            list_radius_not_held: gauge(
                "list_radius_lists_not_held",
                "Lists named in [matching] list_radius that the loaded index generation does not hold",
            ),
            reloads: counters(
                "index_reloads_total",
                "Index reload attempts by outcome",
                &["outcome"],
            ),
            reload_failures: counters(
                "index_reload_failures_total",
                "Candidate index generations refused at reload (the previous one kept serving), \
                 by cause",
                &["reason"],
            ),
            reload_verify_seconds: register(
                &r,
                prometheus::Gauge::new(
                    "index_reload_verify_seconds",
                    "Seconds the last index reload took to open and fully verify its candidate",
                ),
            ),
            connections_open: gauge(
                "connections_open",
                "Open client connections on the gRPC listener (at limits.max_connections \
                 the server stops accepting until one closes)",
            ),
            connections_closed: counters(
                "connections_closed_total",
                "Connections closed by the server: handshake_timeout (no TLS handshake or HTTP/2 \
                 preface in time), tls_failed, idle, stream_stalled",
                &["listener", "reason"],
            ),
            connections_refused: counters(
                "connections_refused_total",
                "Connections closed at accept: per_peer_cap (limits.max_connections_per_peer)",
                &["listener", "reason"],
            ),
            body_bytes_in_flight: gauge(
                "request_body_bytes_in_flight",
                "Request body bytes of gRPC messages begun but not yet whole \
                 (at most limits.max_body_bytes_in_flight)",
            ),
            body_budget_waits: counter(
                "request_body_budget_waits_total",
                "Request body frames that waited for room in limits.max_body_bytes_in_flight",
            ),
            body_timeouts: counter(
                "request_body_timeouts_total",
                "Calls reset because a request message did not fully arrive within \
                 limits.request_timeout_ms",
            ),
            registry: r,
        }
    }

    /// Sets the index residency gauges (both 0 when it cannot be read).
    pub fn set_residency(&self, r: Option<sigil_index::Residency>) {
        let r = r.unwrap_or_default();
        self.index_resident_bytes.set(r.resident as i64);
        self.index_huge_page_bytes.set(r.huge as i64);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Records a finished call by `key` (the API key's configured name).
    pub fn observe_call(&self, method: &str, key: &str, code: tonic::Code, seconds: f64) {
        self.observe_refusal(method, key, code);
        self.latency.with_label_values(&[method]).observe(seconds);
    }

    /// Records a call refused before it reached a handler (authentication,
    /// role, rate limit): counted as calls are, without a latency.
    pub fn observe_refusal(&self, method: &str, key: &str, code: tonic::Code) {
        let code = code_name(code);
        self.requests.with_label_values(&[method, code]).inc();
        self.requests_by_key.with_label_values(&[key, code]).inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Gauges read at scrape time rather than kept current (they cost a walk
/// of the process's page tables); run off the async threads.
pub type Refresh = Arc<dyn Fn() + Send + Sync>;

/// Serves `GET /metrics` on the connections of `incoming` (bounded by
/// `exec::connections`) until `shutdown` resolves, running `refresh`
/// before each scrape. hyper bounds the time to read a request's headers
/// by `header_timeout`.
pub async fn serve_metrics<C>(
    incoming: impl futures_util::Stream<Item = std::io::Result<C>>,
    metrics: Arc<Metrics>,
    refresh: Refresh,
    header_timeout: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use futures_util::StreamExt;
    tokio::pin!(shutdown);
    tokio::pin!(incoming);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = incoming.next() => match accepted {
                Some(Ok(a)) => a,
                Some(Err(_)) => continue,
                None => return,
            },
        };
        let metrics = metrics.clone();
        let refresh = refresh.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                let refresh = refresh.clone();
                async move {
                    let resp = if req.uri().path() == "/metrics" {
                        let _ = tokio::task::spawn_blocking(move || refresh()).await;
                        Response::builder()
                            .header("content-type", "text/plain; version=0.0.4")
                            .body(Full::new(Bytes::from(metrics.render())))
                    } else {
                        Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(Full::new(Bytes::from_static(b"not found\n")))
                    };
                    Ok::<_, Infallible>(resp.unwrap_or_default())
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(io, service)
                .await;
        });
    }
}
