//! Assembles and runs the server: `state` (the index, the report store
//! and the bounded executors), `listeners` (gRPC with `tls` and auth,
//! metrics, plaintext health) and `background` (index reload); then
//! graceful shutdown.

mod background;
mod listeners;
mod state;
mod tls;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::config::{ConfigError, ServerConfig};
use listeners::Listeners;
use sigil_reports::StoreError;
pub(crate) use state::AppState;

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
    /// A start-up or server task that failed (panicked or was cancelled).
    #[error("{0}")]
    Task(String),
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
    /// The bound reviewer console address, if enabled.
    pub console_addr: Option<SocketAddr>,
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
        self.state.reload_index("request").await;
    }

    /// The generation currently served.
    pub fn generation(&self) -> u64 {
        self.state.index.current().generation()
    }

    /// The identity of the generation currently served.
    pub fn identity(&self) -> sigil_index::IndexIdentity {
        self.state.index.current().identity()
    }

    /// The server's metrics (text exposition format), as a scrape of
    /// `/metrics` would return them.
    pub fn metrics_text(&self) -> String {
        self.state.refresh_residency();
        self.state.metrics.render()
    }

    /// Waits until the server has stopped.
    pub async fn wait(self) -> Result<(), ServerError> {
        let result = match self.task.await {
            Ok(r) => r,
            Err(e) => Err(ServerError::Task(format!("server task failed: {e}"))),
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

/// Validates the config, opens the index and the report store, binds the
/// listeners and starts serving. Returns once the server accepts calls.
pub async fn start(
    mut config: ServerConfig,
    opts: RunOptions,
) -> Result<RunningServer, ServerError> {
    config.validate()?;
    if config.insecure_loopback {
        // No authentication: never reachable from another host.
        // The CLI refuses a non-loopback address it was given; one from
        // the config file is moved to loopback, and the log says so.
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for (key, a) in [
            ("listen", Some(&mut config.listen)),
            ("metrics_listen", config.metrics_listen.as_mut()),
            ("health_listen", config.health_listen.as_mut()),
            ("console_listen", config.console_listen.as_mut()),
        ] {
            if let Some(a) = a.filter(|a| !a.ip().is_loopback()) {
                tracing::warn!(
                    key,
                    configured = %a,
                    "insecure loopback mode: serving on 127.0.0.1 instead of the configured address"
                );
                a.set_ip(loopback);
            }
        }
    } else if config.tls.is_none()
        && !config.api_keys.is_empty()
        && !config.listen.ip().is_loopback()
    {
        tracing::warn!(
            listen = %config.listen,
            "API keys are sent in plaintext: the gRPC listener is not on loopback and has no TLS; \
             configure [tls] or put a TLS-terminating proxy in front"
        );
    }
    let state = Arc::new(AppState::open(config).await?);
    let listeners = Listeners::bind(&state.config).await?;
    let (addr, metrics_addr, health_addr, console_addr) = (
        listeners.addr,
        listeners.metrics_addr,
        listeners.health_addr,
        listeners.console_addr,
    );
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let grpc_task = listeners.serve(&state, shutdown_rx.clone()).await?;
    let reload = Arc::new(Notify::new());
    background::spawn_reload(
        state.clone(),
        reload.clone(),
        opts.reload_on_sighup,
        shutdown_rx,
    );

    let config = &state.config;
    tracing::info!(
        %addr,
        metrics = %display_or_off(metrics_addr),
        health = %display_or_off(health_addr),
        console = %display_or_off(console_addr),
        tls = config.tls.is_some(),
        mtls = config.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
        api_keys = config.api_keys.len(),
        insecure_loopback = config.insecure_loopback,
        generation = state.index.current().generation(),
        identity = %state.index.current().identity(),
        hashing_workers = config.hashing_workers(),
        lookup_queue = config.limits.lookup_queue,
        "sigil server listening"
    );
    let task = tokio::spawn(async move {
        grpc_task
            .await
            .map_err(|e| ServerError::Task(format!("gRPC task failed: {e}")))??;
        Ok(())
    });
    Ok(RunningServer {
        addr,
        metrics_addr,
        health_addr,
        console_addr,
        shutdown: shutdown_tx,
        reload,
        state,
        task,
    })
}

/// An optional listener address for the logs: the address, or `off`.
fn display_or_off(addr: Option<std::net::SocketAddr>) -> String {
    addr.map_or_else(|| "off".to_string(), |a| a.to_string())
}
