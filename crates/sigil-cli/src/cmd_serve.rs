//! `sigil serve`: run the gRPC matching service.
//!
//! Either from a config file (`--config`), or for a quick local start
//! without one: `sigil serve --index DIR --insecure-loopback`, which binds
//! 127.0.0.1 only and requires no API key.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use sigil_server::{RunOptions, ServerConfig};

#[derive(clap::Args)]
pub struct Args {
    /// TOML config file (see deploy/sigil.example.toml). `SIGIL_*`
    /// environment variables override it (e.g. SIGIL_LISTEN,
    /// SIGIL_LIMITS__REQUEST_TIMEOUT_MS).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Index directory (overrides the config's `index`).
    #[arg(long)]
    index: Option<PathBuf>,
    /// gRPC listen address (overrides the config's `listen`).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Reports database file (overrides `reports.path`; default
    /// ./sigil-reports.db).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Prometheus /metrics address, or `off` for none (overrides
    /// `metrics_listen`).
    #[arg(long, value_name = "ADDR|off", value_parser = parse_listen_or_off)]
    metrics_listen: Option<ListenOrOff>,
    /// Reviewer console address (overrides `console_listen`; the console
    /// is off unless one of them is set). See docs/reporting.md.
    #[arg(long, value_name = "ADDR")]
    console_listen: Option<SocketAddr>,
    /// Serve without authentication, on 127.0.0.1 only (for local use and
    /// trials; never for production). A non-loopback --listen,
    /// --metrics-listen or --console-listen with it is an error.
    #[arg(long)]
    insecure_loopback: bool,
    /// Robust image matching by default (sets `[matching] robust`).
    /// `--robust` (= `standard`): also match padded, rotated (90/180/270)
    /// and mirrored copies; `--robust=full`: also small rotations, crops
    /// and padding of any kind, at ~21 hashes per image instead of ~13. A
    /// request can still choose with `MatchOptions.robust`. Measured recall
    /// and false-positive rate: docs/robustness.md.
    #[arg(
        long,
        value_name = "LEVEL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "standard",
        value_parser = crate::cmd_scan::parse_robust_level
    )]
    robust: Option<sigil_core::robust::RobustLevel>,
    /// Log format: `auto` is human-readable text when stderr is a terminal
    /// and JSON lines otherwise (a log collector); colours only on a
    /// terminal.
    #[arg(long, value_enum, default_value_t = LogFormat::Auto)]
    log_format: LogFormat,
}

/// A listen address, or none (`off`), as the config's `"off"`.
#[derive(Clone, Copy)]
struct ListenOrOff(Option<SocketAddr>);

fn parse_listen_or_off(s: &str) -> Result<ListenOrOff, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(ListenOrOff(None));
    }
    s.trim()
        .parse()
        .map(|a| ListenOrOff(Some(a)))
        .map_err(|e| format!("{s:?} is not a socket address (e.g. 127.0.0.1:9464) or \"off\": {e}"))
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Auto,
    Json,
    Text,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let terminal = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(terminal)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Auto if !terminal => builder.json().flatten_event(true).init(),
        LogFormat::Auto | LogFormat::Text => builder.init(),
    }

    let mut config = ServerConfig::load(args.config.as_deref(), std::env::vars())
        .context("loading the server configuration")?;
    if let Some(i) = args.index {
        config.index = Some(i);
    }
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(d) = args.db {
        config.reports.path = d;
    }
    if let Some(ListenOrOff(m)) = args.metrics_listen {
        config.metrics_listen = m;
    }
    if let Some(c) = args.console_listen {
        config.console_listen = Some(c);
    }
    if let Some(level) = args.robust {
        config.matching.robust = level;
    }
    config.insecure_loopback = args.insecure_loopback;
    if config.insecure_loopback {
        if !config.api_keys.is_empty() {
            anyhow::bail!(
                "--insecure-loopback disables authentication, but the config has API keys; \
                 drop one or the other"
            );
        }
        // Without authentication the service must not be reachable from
        // another host: an address that says otherwise is a mistake to
        // name, not one to fix silently.
        let asked = [
            ("--listen", args.listen),
            ("--metrics-listen", args.metrics_listen.and_then(|m| m.0)),
            ("--console-listen", args.console_listen),
        ];
        for (flag, addr) in asked {
            if let Some(a) = addr.filter(|a| !a.ip().is_loopback()) {
                anyhow::bail!(
                    "{flag} {a} is not a loopback address, and --insecure-loopback serves \
                     without authentication, so it only listens on 127.0.0.1; use \
                     {flag} 127.0.0.1:{port}, or configure API keys and drop \
                     --insecure-loopback",
                    port = a.port()
                );
            }
        }
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sigil-rt")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let server = sigil_server::start(
            config,
            RunOptions {
                reload_on_sighup: true,
            },
        )
        .await
        .context("starting the server")?;
        eprintln!("sigil: serving gRPC on {}", server.addr);
        if let Some(c) = server.console_addr {
            eprintln!("sigil: reviewer console on http://{c}/");
        }
        wait_for_termination().await;
        tracing::info!("shutdown requested; draining in-flight calls");
        server.shutdown();
        server
            .wait()
            .await
            .context("server stopped with an error")?;
        tracing::info!("server stopped");
        Ok(ExitCode::SUCCESS)
    })
}

async fn wait_for_termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
