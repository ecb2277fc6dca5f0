//! Assembles and runs the server: listeners, TLS, auth interceptors, health,
//! reflection, metrics endpoint, index reload, graceful shutdown.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sigil_core::decode::DecodeLimits;
use sigil_index::SharedIndex;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Status};

use crate::auth::{KeyRing, Role};
use crate::config::{ConfigError, ServerConfig, TlsConfig};
use crate::exec::connections;
use crate::exec::lookup::{BatchStats, LookupQueue};
use crate::exec::pool::HashPool;
use crate::exec::store_calls::StoreCalls;
use crate::metrics::{serve_metrics, Metrics};
use crate::proto;
use crate::service::{AppState, MatcherService, ReportsService};
use crate::store::StoreError;
use crate::timeutil::now_ms;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open index {path}: {message}")]
    Index { path: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: cannot read {path}: {source}")]
    TlsFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A TLS file that was read but holds no usable certificate or key.
    #[error("TLS: {path}: {message}")]
    TlsInvalid { path: PathBuf, message: String },
    /// The TLS files parse but rustls refuses them together (e.g. a key
    /// that does not belong to the certificate).
    #[error("TLS: cannot use certificate {cert} with key {key}: {message}")]
    TlsSetup {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection service: {0}")]
    Reflection(String),
}

/// Behaviour that only the binary wants (tests run several servers in one
/// process and must not install signal handlers).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Reload the index on SIGHUP.
    pub reload_on_sighup: bool,
}

/// A started server.
pub struct RunningServer {
    /// The bound gRPC address (useful with port 0).
    pub addr: SocketAddr,
    /// The bound metrics address, if enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// The bound plaintext health address, if enabled.
    pub health_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    reload: Arc<Notify>,
    state: Arc<AppState>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// Starts a graceful shutdown: stop accepting, drain in-flight calls.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Asks the reload task to look for a new index generation now.
    pub fn reload(&self) {
        self.reload.notify_one();
    }

    /// Reloads the index now and returns when done (the generation served
    /// afterwards is [`RunningServer::generation`]).
    pub async fn reload_now(&self) {
        reload_index(&self.state, "request").await;
    }

    /// The generation currently served.
    pub fn generation(&self) -> u64 {
        self.state.index.current().generation()
    }

    /// The server's metrics (text exposition format), as a scrape of
    /// `/metrics` would return them.
    pub fn metrics_text(&self) -> String {
        refresh_residency(&self.state);
        self.state.metrics.render()
    }

    /// Waits until the server has stopped.
    pub async fn wait(self) -> Result<(), ServerError> {
        let result = match self.task.await {
            Ok(r) => r,
            Err(e) => Err(ServerError::Reflection(format!("server task failed: {e}"))),
        };
        let state = self.state;
        // Workers finish what they hold, then exit.
        tokio::task::spawn_blocking(move || {
            state.pool.shutdown();
            state.lookup.shutdown();
        })
        .await
        .ok();
        result
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path).map_err(|source| ServerError::TlsFile {
        path: path.to_owned(),
        source,
    })
}

/// Reads a PEM file that must hold at least one certificate; returns the
/// file's bytes and the certificates.
fn read_certificates(path: &Path) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), ServerError> {
    let pem = read(path)?;
    let invalid = |message: String| ServerError::TlsInvalid {
        path: path.to_owned(),
        message,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("not a valid PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in the file".into(),
        ));
    }
    Ok((pem, certs))
}

/// Reads a PEM file that must hold a private key (PKCS#8, PKCS#1 or SEC1).
fn read_private_key(path: &Path) -> Result<Vec<u8>, ServerError> {
    let pem = read(path)?;
    // The parse error is only a kind ("no items found", "malformed"): it
    // never echoes key material.
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| ServerError::TlsInvalid {
        path: path.to_owned(),
        message: format!("no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file: {e}"),
    })?;
    Ok(pem)
}

/// The causes of an error, outermost first, joined for one log line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// How long a client may take to complete the TLS handshake. Without a
/// limit, a connection that never sends its ClientHello holds a socket and a
/// task for as long as the peer keeps it open.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `MatchHashes` lookup threads. One: each index search already runs on
/// every core (rayon), and more workers would split waiting requests into
/// smaller, costlier-per-hash batches.
const LOOKUP_WORKERS: usize = 1;

/// How long a client has to answer a keepalive ping.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Applies `[tls]` to the server builder. Every failure names the file(s)
/// at fault: tonic's own error says only "transport error".
fn apply_tls(builder: Server, tls: &TlsConfig) -> Result<Server, ServerError> {
    let (cert_pem, _) = read_certificates(&tls.cert)?;
    let identity = Identity::from_pem(cert_pem, read_private_key(&tls.key)?);
    let mut t = ServerTlsConfig::new()
        .identity(identity)
        .timeout(TLS_HANDSHAKE_TIMEOUT);
    if let Some(ca) = &tls.client_ca {
        let (pem, certs) = read_certificates(ca)?;
        // tonic skips certificates it cannot use as trust anchors; refuse
        // them instead, so a wrong file is not silently half-used.
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs {
            roots.add(cert).map_err(|e| ServerError::TlsInvalid {
                path: ca.clone(),
                message: format!("not usable as a client CA certificate: {e}"),
            })?;
        }
        t = t.client_ca_root(Certificate::from_pem(pem));
    }
    builder.tls_config(t).map_err(|e| ServerError::TlsSetup {
        cert: tls.cert.clone(),
        key: tls.key.clone(),
        message: error_chain(&e),
    })
}

/// Fingerprint of what is on disk for the index: the directory the path
/// resolves to (a swapped symlink changes it) and the MANIFEST's size and
/// modification time (a manifest replaced by rename changes them).
fn index_fingerprint(path: &Path) -> Option<(PathBuf, u64, SystemTime)> {
    let dir = std::fs::canonicalize(path).ok()?;
    let meta = std::fs::metadata(dir.join("MANIFEST")).ok()?;
    Some((dir, meta.len(), meta.modified().ok()?))
}

async fn reload_index(state: &AppState, why: &str) {
    let index = state.index.clone();
    let before = index.current().generation();
    match tokio::task::spawn_blocking(move || index.reload()).await {
        Ok(Ok(generation)) => {
            let outcome = if generation == before {
                "unchanged"
            } else {
                "ok"
            };
            state.metrics.reloads.with_label_values(&[outcome]).inc();
            if generation != before {
                state.loaded_at_ms.store(now_ms(), Ordering::Relaxed);
            }
            update_index_gauges(state);
            tracing::info!(why, generation, previous = before, "index reloaded");
        }
        Ok(Err(e)) => {
            state.metrics.reloads.with_label_values(&["error"]).inc();
            tracing::error!(why, error = %e, generation = before, "index reload refused; still serving the previous generation");
        }
        Err(e) => {
            state.metrics.reloads.with_label_values(&["error"]).inc();
            tracing::error!(why, error = %e, "index reload task failed");
        }
    }
}

/// The index residency gauges, read from this process's mappings now.
fn refresh_residency(state: &AppState) {
    state
        .metrics
        .set_residency(state.index.current().residency());
}

fn update_index_gauges(state: &AppState) {
    let reader = state.index.current();
    state
        .metrics
        .index_generation
        .set(reader.generation() as i64);
    state
        .metrics
        .index_entries
        .set(reader.stats().entries.values().sum::<u64>() as i64);
}

/// Validates the config, opens the index and the report store, binds the
/// listeners and starts serving. Returns once the server accepts calls.
pub async fn start(
    mut config: ServerConfig,
    opts: RunOptions,
) -> Result<RunningServer, ServerError> {
    config.validate()?;
    if config.insecure_loopback {
        // No authentication: never reachable from another host.
        config.listen.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        if let Some(m) = config.metrics_listen.as_mut() {
            m.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        if let Some(h) = config.health_listen.as_mut() {
            h.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
    }
    let index_path = config.index.clone().unwrap_or_default();
    let index = {
        let p = index_path.clone();
        tokio::task::spawn_blocking(move || SharedIndex::open(&p))
            .await
            .map_err(|e| ServerError::Index {
                path: index_path.clone(),
                message: e.to_string(),
            })?
            .map_err(|e| ServerError::Index {
                path: index_path.clone(),
                message: e.to_string(),
            })?
    };
    let store = {
        let reports = config.reports.clone();
        // An unreachable database stops start-up here with the
        // (password-free) URL and the cause.
        tokio::task::spawn_blocking(move || crate::store::open(&reports))
            .await
            .map_err(|e| ServerError::Reflection(e.to_string()))??
    };
    let keys = if config.api_keys.is_empty() {
        KeyRing::insecure_open()
    } else {
        KeyRing::from_config(&config.api_keys)
    };
    let keys = Arc::new(keys);
    let limits = DecodeLimits {
        max_bytes: config.limits.max_message_bytes as u64,
        max_pixels: config.limits.max_pixels,
        max_dimension: config.limits.max_dimension,
    };
    let pool = HashPool::new(
        config.hashing_workers(),
        config.limits.hashing_queue,
        config.limits.hashing_queue_bytes,
        limits,
    );
    let metrics = Arc::new(Metrics::new());
    let lookup = {
        let metrics = metrics.clone();
        LookupQueue::new(
            LOOKUP_WORKERS,
            config.limits.lookup_queue,
            move |b: BatchStats| {
                metrics.lookup_batch_requests.observe(b.requests as f64);
                metrics.lookup_batch_hashes.observe(b.hashes as f64);
            },
        )
    };
    let state = Arc::new(AppState {
        config: config.clone(),
        index: Arc::new(index),
        pool,
        lookup,
        store: StoreCalls::new(store),
        metrics: metrics.clone(),
        loaded_at_ms: AtomicI64::new(now_ms()),
        list_cache: tokio::sync::Mutex::new(None),
    });
    update_index_gauges(&state);

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let wait_shutdown = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    // Listeners first, so a bind error is reported before anything runs.
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;
    let metrics_listener = match config.metrics_listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .map_err(|source| ServerError::Bind { addr: a, source })?,
        ),
        None => None,
    };
    let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
    let health_listener = match config.health_listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .map_err(|source| ServerError::Bind { addr: a, source })?,
        ),
        None => None,
    };
    let health_addr = health_listener.as_ref().and_then(|l| l.local_addr().ok());

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<proto::matcher_server::MatcherServer<MatcherService>>()
        .await;
    health_reporter
        .set_serving::<proto::reports_server::ReportsServer<ReportsService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServerError::Reflection(e.to_string()))?;

    let max = config.limits.max_message_bytes;
    let matcher = proto::matcher_server::MatcherServer::new(MatcherService {
        state: state.clone(),
    })
    .max_decoding_message_size(max)
    .max_encoding_message_size(max);
    let reports = proto::reports_server::ReportsServer::new(ReportsService {
        state: state.clone(),
    })
    .max_decoding_message_size(max)
    .max_encoding_message_size(max);
    let auth = |role: Role| {
        let keys = keys.clone();
        move |mut req: Request<()>| -> Result<Request<()>, Status> {
            let caller = keys.authorize(req.metadata(), role)?;
            req.extensions_mut().insert(caller);
            Ok(req)
        }
    };

    let keepalive = (config.limits.keepalive_interval_s > 0)
        .then(|| Duration::from_secs(config.limits.keepalive_interval_s));
    let mut builder = Server::builder()
        .http2_keepalive_interval(keepalive)
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .initial_stream_window_size(config.limits.http2_stream_window_bytes)
        .initial_connection_window_size(config.limits.http2_connection_window_bytes)
        .max_frame_size(config.limits.http2_max_frame_bytes);
    if let Some(tls) = &config.tls {
        builder = apply_tls(builder, tls)?;
    }
    let router = builder
        .add_service(health_service.clone())
        .add_service(reflection)
        .add_service(InterceptedService::new(matcher, auth(Role::Matcher)))
        .add_service(InterceptedService::new(reports, auth(Role::Reviewer)));

    let incoming = connections::limited(
        listener,
        config.limits.max_connections,
        metrics.connections_open.clone(),
    );
    let grpc_task = {
        let shutdown = wait_shutdown(shutdown_rx.clone());
        let reporter = health_reporter.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                shutdown.await;
                // Tell load balancers first, then stop accepting and drain.
                reporter
                    .set_not_serving::<proto::matcher_server::MatcherServer<MatcherService>>()
                    .await;
            };
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        })
    };
    if let Some(l) = metrics_listener {
        let state = state.clone();
        tokio::spawn(serve_metrics(
            l,
            metrics.clone(),
            Arc::new(move || refresh_residency(&state)),
            wait_shutdown(shutdown_rx.clone()),
        ));
    }
    if let Some(l) = health_listener {
        let shutdown = wait_shutdown(shutdown_rx.clone());
        tokio::spawn(
            Server::builder()
                .add_service(health_service)
                .serve_with_incoming_shutdown(TcpListenerStream::new(l), shutdown),
        );
    }

    // Reload: on demand (SIGHUP or RunningServer::reload) and when the
    // index on disk changes (polled).
    let reload = Arc::new(Notify::new());
    {
        let state = state.clone();
        let reload = reload.clone();
        let mut shutdown = shutdown_rx.clone();
        let poll = Duration::from_millis(config.reload.poll_interval_ms);
        let path = index_path.clone();
        let mut hup = if opts.reload_on_sighup {
            #[cfg(unix)]
            {
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
            }
            #[cfg(not(unix))]
            {
                None
            }
        } else {
            None
        };
        tokio::spawn(async move {
            let mut seen = index_fingerprint(&path);
            let mut ticker = tokio::time::interval(if poll.is_zero() {
                Duration::from_secs(3600)
            } else {
                poll
            });
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                #[cfg(unix)]
                let hup_recv = async {
                    match hup.as_mut() {
                        Some(s) => {
                            s.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                #[cfg(not(unix))]
                let hup_recv = std::future::pending::<()>();
                tokio::select! {
                    // Only `true` is ever sent: any change means shut down.
                    _ = shutdown.changed() => return,
                    _ = reload.notified() => {
                        seen = index_fingerprint(&path);
                        reload_index(&state, "request").await;
                    }
                    _ = hup_recv => {
                        seen = index_fingerprint(&path);
                        reload_index(&state, "SIGHUP").await;
                    }
                    _ = ticker.tick(), if !poll.is_zero() => {
                        let now = index_fingerprint(&path);
                        if now != seen {
                            seen = now;
                            reload_index(&state, "index changed on disk").await;
                        }
                    }
                }
            }
        });
    }

    tracing::info!(
        %addr,
        metrics = ?metrics_addr,
        health = ?health_addr,
        tls = config.tls.is_some(),
        mtls = config.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
        api_keys = config.api_keys.len(),
        insecure_loopback = config.insecure_loopback,
        generation = state.index.current().generation(),
        hashing_workers = config.hashing_workers(),
        lookup_queue = config.limits.lookup_queue,
        "sigil server listening"
    );

    let task = tokio::spawn(async move {
        grpc_task
            .await
            .map_err(|e| ServerError::Reflection(format!("gRPC task failed: {e}")))??;
        Ok(())
    });
    Ok(RunningServer {
        addr,
        metrics_addr,
        health_addr,
        shutdown: shutdown_tx,
        reload,
        state,
        task,
    })
}
