//! Prometheus metrics, owned by the server (no global registry), and the
//! small HTTP endpoint that serves them at `/metrics`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use tokio::net::TcpListener;

/// Every metric the server exports.
pub struct Metrics {
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
    /// Open client connections on the gRPC listener.
    pub connections_open: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("sigil".into()), None)
            .expect("static registry prefix is valid");
        let requests = IntCounterVec::new(
            Opts::new("grpc_requests_total", "Finished gRPC calls"),
            &["method", "code"],
        )
        .expect("static metric");
        let latency = HistogramVec::new(
            HistogramOpts::new("grpc_request_seconds", "gRPC call latency").buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["method"],
        )
        .expect("static metric");
        let verdicts = IntCounterVec::new(
            Opts::new("verdicts_total", "Matched items by verdict"),
            &["method", "verdict"],
        )
        .expect("static metric");
        let matches = IntCounterVec::new(
            Opts::new("matches_total", "Matches by list and hash kind"),
            &["list", "kind"],
        )
        .expect("static metric");
        let reports_created =
            IntCounter::new("reports_created_total", "Report stubs created").expect("static");
        let pool_rejections = IntCounter::new(
            "hash_pool_rejections_total",
            "Images refused with RESOURCE_EXHAUSTED because the hashing pool was full",
        )
        .expect("static metric");
        let lookup_rejections = IntCounter::new(
            "lookup_queue_rejections_total",
            "MatchHashes calls refused with RESOURCE_EXHAUSTED because the lookup queue was full",
        )
        .expect("static metric");
        let lookup_batch_requests = Histogram::with_opts(
            HistogramOpts::new(
                "lookup_batch_requests",
                "MatchHashes requests whose PDQ hashes were searched together in one index search",
            )
            .buckets(vec![1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0, 64.0]),
        )
        .expect("static metric");
        let lookup_batch_hashes = Histogram::with_opts(
            HistogramOpts::new(
                "lookup_batch_hashes",
                "PDQ hashes per index search of the lookup queue (several MatchHashes requests \
                 coalesced)",
            )
            .buckets(vec![
                1.0, 16.0, 64.0, 256.0, 1000.0, 2000.0, 4000.0, 8192.0, 10000.0,
            ]),
        )
        .expect("static metric");
        let index_generation =
            IntGauge::new("index_generation", "Loaded index generation").expect("static");
        let index_entries =
            IntGauge::new("index_entries", "Live entries in the loaded index").expect("static");
        let index_resident_bytes = IntGauge::new(
            "index_resident_bytes",
            "Bytes of the loaded index's memory mappings resident in memory",
        )
        .expect("static");
        let index_huge_page_bytes = IntGauge::new(
            "index_huge_page_bytes",
            "Bytes of the loaded index resident in 2 MiB pages (fewer TLB misses per lookup)",
        )
        .expect("static");
        let reloads = IntCounterVec::new(
            Opts::new("index_reloads_total", "Index reload attempts by outcome"),
            &["outcome"],
        )
        .expect("static metric");
        let connections_open = IntGauge::new(
            "connections_open",
            "Open client connections on the gRPC listener (at limits.max_connections \
             the server stops accepting until one closes)",
        )
        .expect("static metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(verdicts.clone()),
            Box::new(matches.clone()),
            Box::new(reports_created.clone()),
            Box::new(pool_rejections.clone()),
            Box::new(lookup_rejections.clone()),
            Box::new(lookup_batch_requests.clone()),
            Box::new(lookup_batch_hashes.clone()),
            Box::new(index_generation.clone()),
            Box::new(index_entries.clone()),
            Box::new(index_resident_bytes.clone()),
            Box::new(index_huge_page_bytes.clone()),
            Box::new(reloads.clone()),
            Box::new(connections_open.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics {
            registry,
            requests,
            latency,
            verdicts,
            matches,
            reports_created,
            pool_rejections,
            lookup_rejections,
            lookup_batch_requests,
            lookup_batch_hashes,
            index_generation,
            index_entries,
            index_resident_bytes,
            index_huge_page_bytes,
            reloads,
            connections_open,
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

    /// Records a finished call.
    pub fn observe_call(&self, method: &str, code: tonic::Code, seconds: f64) {
        self.requests
            .with_label_values(&[method, code_name(code)])
            .inc();
        self.latency.with_label_values(&[method]).observe(seconds);
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

/// Serves `GET /metrics` on `listener` until `shutdown` resolves, running
/// `refresh` before each scrape.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    refresh: Refresh,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer): (_, SocketAddr) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener accept failed");
                    continue;
                }
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
                .serve_connection(io, service)
                .await;
        });
    }
}
