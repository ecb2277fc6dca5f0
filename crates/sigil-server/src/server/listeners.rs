//! The listeners: the gRPC one (TLS, auth interceptors, health,
//! reflection), and the optional metrics and plaintext health ones, each
//! accepting through `exec::connections` (connection caps, handshake and
//! idle deadlines) and, for gRPC, `exec::calls` (open calls, request body
//! budget and deadline). Bound first, so a bind error is reported before
//! anything runs; then served until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::{Request, Status};

use super::state::AppState;
use super::ServerError;
use crate::auth::{KeyRing, Role};
use crate::config::ServerConfig;
use crate::exec::calls::{BodyBudget, CallMethod, CallsLayer};
use crate::exec::connections::{self, ConnMetrics, ConnPolicy, Protocol};
use crate::grpc::{MatcherService, ReportsService};
use crate::metrics::{serve_metrics, Metrics};
use crate::proto;

/// How long a client has to answer a keepalive ping.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

type MatcherServer = proto::matcher_server::MatcherServer<MatcherService>;
type ReportsServer = proto::reports_server::ReportsServer<ReportsService>;

/// The bound listeners, not yet served.
pub(super) struct Listeners {
    grpc: TcpListener,
    metrics: Option<TcpListener>,
    health: Option<TcpListener>,
    console: Option<TcpListener>,
    /// The bound gRPC address (useful with port 0).
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub health_addr: Option<SocketAddr>,
    pub console_addr: Option<SocketAddr>,
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

async fn bind_optional(addr: Option<SocketAddr>) -> Result<Option<TcpListener>, ServerError> {
    match addr {
        Some(a) => bind(a).await.map(Some),
        None => Ok(None),
    }
}

impl Listeners {
    pub async fn bind(config: &ServerConfig) -> Result<Self, ServerError> {
        let grpc = bind(config.listen).await?;
        let addr = grpc.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let metrics = bind_optional(config.metrics_listen).await?;
        let health = bind_optional(config.health_listen).await?;
        let console = bind_optional(config.console_listen).await?;
        Ok(Listeners {
            console_addr: console.as_ref().and_then(|l| l.local_addr().ok()),
            console,
            addr,
            metrics_addr: metrics.as_ref().and_then(|l| l.local_addr().ok()),
            health_addr: health.as_ref().and_then(|l| l.local_addr().ok()),
            grpc,
            metrics,
            health,
        })
    }

    /// Serves every listener until `shutdown` turns true; returns the gRPC
    /// server's task (the metrics and health ones end with it).
    pub async fn serve(
        self,
        state: &Arc<AppState>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<JoinHandle<Result<(), tonic::transport::Error>>, ServerError> {
        let wait_shutdown = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<MatcherServer>().await;
        health_reporter.set_serving::<ReportsServer>().await;
        // Reflection under both names: grpc.reflection.v1 for current
        // grpcurl, v1alpha for grpcio-reflection's client, Postman and older
        // grpcurl, which would otherwise get a bare UNIMPLEMENTED.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection()
            .build_v1()
            .map_err(|e| ServerError::Reflection(e.to_string()))?;
        let reflection_v1alpha = reflection()
            .build_v1alpha()
            .map_err(|e| ServerError::Reflection(e.to_string()))?;
        let (matcher, reports) = services(state);
        let config = &state.config;
        let metrics = &state.metrics;
        let calls = CallsLayer {
            budget: BodyBudget::new(
                config.limits.max_body_bytes_in_flight,
                config.limits.request_timeout(),
                metrics.body_bytes_in_flight.clone(),
                metrics.body_budget_waits.clone(),
                metrics.body_timeouts.clone(),
            ),
        };
        let router = http2_server(config)
            .layer(calls.clone())
            .add_service(health_service.clone())
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(matcher)
            .add_service(reports);
        let tls = config.tls.as_ref().map(super::tls::acceptor).transpose()?;
        let policy = conn_policy(config);
        let incoming = connections::incoming(
            self.grpc,
            policy.clone(),
            Protocol::Http2,
            tls,
            conn_metrics(metrics, "grpc", Some(metrics.connections_open.clone())),
        );
        let shutdown_grpc = wait_shutdown(shutdown.clone());
        let grpc_task = tokio::spawn(async move {
            let shutdown = async move {
                shutdown_grpc.await;
                // Tell load balancers first, then stop accepting and drain.
                health_reporter.set_not_serving::<MatcherServer>().await;
            };
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        });
        if let Some(l) = self.metrics {
            let refresh = {
                let state = state.clone();
                Arc::new(move || state.refresh_residency())
            };
            let incoming = connections::incoming(
                l,
                policy.clone(),
                Protocol::Http1,
                None,
                conn_metrics(metrics, "metrics", None),
            );
            let shutdown = wait_shutdown(shutdown.clone());
            tokio::spawn(serve_metrics(
                incoming,
                state.metrics.clone(),
                refresh,
                policy.handshake_timeout,
                shutdown,
            ));
        }
        if let Some(l) = self.console {
            let console = crate::console::Console::new(state.clone());
            tokio::spawn(console.serve(l, wait_shutdown(shutdown.clone())));
        }
        if let Some(l) = self.health {
            // The health port describes itself too, so that
            // `grpcurl -plaintext ADDR grpc.health.v1.Health/Check` works
            // without proto files; it reveals no sigil service.
            let health_reflection = || {
                tonic_reflection::server::Builder::configure()
                    .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            };
            let health = http2_server(config)
                .layer(calls)
                .add_service(health_service)
                .add_service(
                    health_reflection()
                        .build_v1()
                        .map_err(|e| ServerError::Reflection(e.to_string()))?,
                )
                .add_service(
                    health_reflection()
                        .build_v1alpha()
                        .map_err(|e| ServerError::Reflection(e.to_string()))?,
                );
            let incoming = connections::incoming(
                l,
                policy,
                Protocol::Http2,
                None,
                conn_metrics(metrics, "health", None),
            );
            tokio::spawn(health.serve_with_incoming_shutdown(incoming, wait_shutdown(shutdown)));
        }
        Ok(grpc_task)
    }
}

/// Puts the authenticated caller into each request, or refuses it.
#[derive(Clone)]
struct Authorize {
    keys: Arc<KeyRing>,
    role: Role,
    metrics: Arc<Metrics>,
}

impl tonic::service::Interceptor for Authorize {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        match self.keys.authorize(req.metadata(), self.role) {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                Ok(req)
            }
            Err(status) => {
                // Refused before any handler: counted here, or a throttled
                // pipeline or credential stuffing would be invisible.
                let method = req
                    .extensions()
                    .get::<CallMethod>()
                    .map_or("unknown", |m| m.0);
                let key = self.keys.key_label(req.metadata());
                self.metrics.observe_refusal(method, &key, status.code());
                Err(status)
            }
        }
    }
}

/// The two services, with their message size limits and authentication.
fn services(
    state: &Arc<AppState>,
) -> (
    InterceptedService<MatcherServer, Authorize>,
    InterceptedService<ReportsServer, Authorize>,
) {
    let config = &state.config;
    let keys = state.keys.clone();
    let auth = |role| Authorize {
        keys: keys.clone(),
        role,
        metrics: state.metrics.clone(),
    };
    let max = config.limits.max_message_bytes;
    let matcher = MatcherServer::new(MatcherService {
        state: state.clone(),
    })
    .max_decoding_message_size(max)
    .max_encoding_message_size(max);
    let reports = ReportsServer::new(ReportsService {
        state: state.clone(),
    })
    .max_decoding_message_size(max)
    .max_encoding_message_size(max);
    (
        InterceptedService::new(matcher, auth(Role::Matcher)),
        InterceptedService::new(reports, auth(Role::Reviewer)),
    )
}

/// The connection bounds of every listener, from `[limits]`.
fn conn_policy(config: &ServerConfig) -> ConnPolicy {
    let l = &config.limits;
    ConnPolicy {
        max_connections: l.max_connections,
        max_per_peer: l.max_connections_per_peer,
        handshake_timeout: l.handshake_timeout(),
        idle_timeout: l.idle_timeout(),
        stall_timeout: l.stream_stall_timeout(),
    }
}

fn conn_metrics(
    metrics: &Metrics,
    listener: &'static str,
    open: Option<prometheus::IntGauge>,
) -> ConnMetrics {
    ConnMetrics {
        listener,
        open,
        closed: metrics.connections_closed.clone(),
        refused: metrics.connections_refused.clone(),
    }
}

/// The gRPC server builder with the HTTP/2 limits applied. TLS is not
/// configured here: `exec::connections` terminates it.
fn http2_server(config: &ServerConfig) -> Server {
    let limits = &config.limits;
    let keepalive =
        (limits.keepalive_interval_s > 0).then(|| Duration::from_secs(limits.keepalive_interval_s));
    Server::builder()
        .http2_keepalive_interval(keepalive)
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .initial_stream_window_size(limits.http2_stream_window_bytes)
        .initial_connection_window_size(limits.http2_connection_window_bytes)
        .max_frame_size(limits.http2_max_frame_bytes)
}
