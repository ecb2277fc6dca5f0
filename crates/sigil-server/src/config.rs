//! Server configuration: a TOML file, then `SIGIL_*` environment overrides,
//! then validation. Every field has a default except the index path.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::Role;
use sigil_match::MatchPolicy;
pub use sigil_reports::{ReportsBackend, ReportsConfig};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole server configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Prometheus `/metrics` listen address (plain HTTP); 127.0.0.1:9464 when
    /// the key is absent (loopback: expose it deliberately, e.g. 0.0.0.0:9464);
    /// `"off"` serves no metrics (TOML has no null to say so).
    #[serde(deserialize_with = "addr_or_off")]
    pub metrics_listen: Option<SocketAddr>,
    /// Optional plaintext listener serving only `grpc.health.v1` (for
    /// kubelet probes, which cannot speak TLS).
    pub health_listen: Option<SocketAddr>,
    /// The reviewer console's listener (plain HTTP, server-rendered pages;
    /// see `[console]`). Absent: no console.
    pub console_listen: Option<SocketAddr>,
    /// The reviewer console's settings.
    pub console: ConsoleConfig,
    /// The index directory (required).
    pub index: Option<PathBuf>,
    /// The reporting organisation's name, copied into every report stub.
    pub reporting_organisation: String,
    /// The reporting organisation's contact email, copied into every stub.
    pub reporting_email: String,
    /// Where report stubs are kept.
    pub reports: ReportsConfig,
    /// Resource limits.
    pub limits: Limits,
    /// Matching defaults and limits (callers may narrow them per request):
    /// the one matching policy, `sigil_match::MatchPolicy`.
    pub matching: MatchPolicy,
    /// Index hot reload.
    pub reload: Reload,
    /// TLS (and mTLS when `client_ca` is set). Unset: plaintext.
    pub tls: Option<TlsConfig>,
    /// API keys (`[[api_key]]` entries). With none here nor in
    /// `api_keys_file`, the server refuses to start unless insecure loopback
    /// mode was asked for on the command line.
    #[serde(rename = "api_key")]
    pub api_keys: Vec<ApiKeyConfig>,
    /// A separate TOML file of `[[api_key]]` entries (e.g. a mounted
    /// secret), appended to those above.
    pub api_keys_file: Option<PathBuf>,
    /// Not read from the file: set by `--insecure-loopback`. Disables
    /// authentication and forces the listen address onto 127.0.0.1.
    #[serde(skip)]
    pub insecure_loopback: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            health_listen: None,
            console_listen: None,
            console: ConsoleConfig::default(),
            index: None,
            reporting_organisation: String::new(),
            reporting_email: String::new(),
            reports: ReportsConfig::default(),
            limits: Limits::default(),
            matching: MatchPolicy::default(),
            reload: Reload::default(),
            tls: None,
            api_keys: Vec::new(),
            api_keys_file: None,
            insecure_loopback: false,
        }
    }
}

/// Resource limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted gRPC message, bytes.
    pub max_message_bytes: usize,
    /// Server-side deadline for a call when the client sends a longer one or
    /// none (milliseconds).
    pub request_timeout_ms: u64,
    /// Most hashes accepted in one `MatchHashes` call.
    pub max_batch: usize,
    /// Hashing worker threads (0: one per CPU).
    pub hashing_workers: usize,
    /// Images waiting for a worker beyond those being hashed; when full,
    /// `MatchImage` gets RESOURCE_EXHAUSTED at once.
    pub hashing_queue: usize,
    /// Request bytes of the images in the hashing pool (queued or being
    /// hashed) at most; an image that would exceed it gets
    /// RESOURCE_EXHAUSTED at once like a full queue. This, not the queue's
    /// depth, bounds the pool's request memory, so the queue can be deep
    /// enough for bursts of ordinary photos. At least `max_message_bytes`.
    pub hashing_queue_bytes: u64,
    /// `MatchHashes` requests waiting for the lookup worker beyond the
    /// one(s) being searched; when full, `MatchHashes` gets
    /// RESOURCE_EXHAUSTED at once. Each waiting request holds its parsed
    /// hashes; waiting requests with the same options are searched
    /// together.
    pub lookup_queue: usize,
    /// Images of one `MatchImageStream` in flight at once.
    pub stream_window: usize,
    /// Decoded pixel limit per image.
    pub max_pixels: u64,
    /// Decoded width/height limit per image.
    pub max_dimension: u32,
    /// Memory one decode may hold (bytes): the decoded pixels in the
    /// decoder's native layout (8 bytes a pixel for 16-bit RGBA) plus the
    /// decoder's own working memory, computed from the header and checked
    /// before decoding (`sigil_core::decode::decode_memory`). The hashing
    /// pool's decode memory is at most `hashing_workers` times this.
    pub max_decode_bytes: u64,
    /// Most client connections open at once on the gRPC listener; at the
    /// cap the server stops accepting until one closes (idle connections
    /// would otherwise hold sockets and memory without bound).
    pub max_connections: usize,
    /// Most connections open at once from one peer address (IP) on each
    /// listener; a further connection from that address is closed at once
    /// (counted in `sigil_connections_refused_total`), so one host cannot
    /// take every slot of `max_connections`.
    pub max_connections_per_peer: usize,
    /// Milliseconds a new connection has to finish its handshake: the TLS
    /// handshake (with `[tls]`) and the client's HTTP/2 preface and first
    /// SETTINGS frame (on the metrics listener: the first request bytes).
    /// A connection that has not is closed.
    pub handshake_timeout_ms: u64,
    /// Milliseconds an established connection may stay without an open
    /// call (gRPC listeners; keepalive pings do not count) or without any
    /// traffic (metrics listener) before it is closed.
    pub idle_timeout_ms: u64,
    /// Milliseconds a call's response data (typically `MatchImageStream`
    /// results) may wait for a client that has stopped reading (HTTP/2
    /// flow control exhausted) before the server closes that client's
    /// connection. Stream items already running finish and release what
    /// they hold either way.
    pub stream_stall_timeout_ms: u64,
    /// Request body bytes received but not yet making up a whole gRPC
    /// message, across all connections at most; at the budget, further
    /// bytes wait (HTTP/2 flow control stops their senders) until earlier
    /// messages complete or time out. A message that has not fully arrived
    /// within `request_timeout_ms` of its first byte (the first message:
    /// of the call's start) is refused and its call reset.
    pub max_body_bytes_in_flight: u64,
    /// Seconds between HTTP/2 keepalive pings to each client (0: none); a
    /// peer that does not answer within 20 s is disconnected, so vanished
    /// clients do not hold connection slots.
    pub keepalive_interval_s: u64,
    /// HTTP/2 receive window per call (bytes): how much of one request the
    /// client may send before the server acknowledges it. hyper's default
    /// (1 MiB) makes a client wait for a window update in the middle of
    /// most photos; a window as large as a typical image lets it send the
    /// image in one go.
    pub http2_stream_window_bytes: u32,
    /// HTTP/2 receive window per connection (bytes), shared by its calls.
    pub http2_connection_window_bytes: u32,
    /// Largest HTTP/2 frame the server accepts (bytes, 16 KiB to 16 MiB - 1).
    /// Larger frames mean fewer frames, wake-ups and window updates per
    /// image on both sides (hyper's default is 16 KiB: ~40 frames for a
    /// 600 KB photo).
    pub http2_max_frame_bytes: u32,
}

impl Limits {
    /// The server's deadline for one call (or stream item).
    pub fn request_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.request_timeout_ms)
    }

    /// `handshake_timeout_ms` as a duration.
    pub fn handshake_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.handshake_timeout_ms)
    }

    /// `idle_timeout_ms` as a duration.
    pub fn idle_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.idle_timeout_ms)
    }

    /// `stream_stall_timeout_ms` as a duration.
    pub fn stream_stall_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.stream_stall_timeout_ms)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 32 << 20,
            request_timeout_ms: 30_000,
            max_batch: 10_000,
            hashing_workers: 0,
            hashing_queue: 64,
            hashing_queue_bytes: 256 << 20,
            lookup_queue: 16,
            stream_window: 4,
            max_pixels: 100_000_000,
            max_dimension: 30_000,
            max_decode_bytes: 512 << 20,
            max_connections: 1024,
            max_connections_per_peer: 128,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 300_000,
            stream_stall_timeout_ms: 30_000,
            max_body_bytes_in_flight: 256 << 20,
            keepalive_interval_s: 60,
            http2_stream_window_bytes: 4 << 20,
            http2_connection_window_bytes: 16 << 20,
            http2_max_frame_bytes: 1 << 20,
        }
    }
}

/// The reviewer console (`console_listen`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Where a reviewer opens a stub's content on the platform, with
    /// `{content_ref}` standing for the URL-encoded content reference, e.g.
    /// `https://mod.example/item/{content_ref}`. Only http and https
    /// templates are accepted. Unset: the reference is shown as text. The
    /// console never fetches or shows content itself.
    pub content_url: Option<String>,
    /// How long a console session lasts after sign-in, in seconds.
    pub session_ttl_s: u64,
    /// Most signed-in sessions held at once (each is a few hundred bytes);
    /// at the cap, sign-in is refused until sessions expire or sign out.
    pub max_sessions: usize,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            content_url: None,
            session_ttl_s: 8 * 3600,
            max_sessions: 10_000,
        }
    }
}

impl ConsoleConfig {
    /// The placeholder `content_url` must hold.
    pub const CONTENT_REF: &'static str = "{content_ref}";

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(t) = &self.content_url {
            let lower = t.trim_start().to_ascii_lowercase();
            if !(lower.starts_with("https://") || lower.starts_with("http://")) {
                return Err(ConfigError::Invalid(format!(
                    "console.content_url {t:?} must be an http:// or https:// URL template"
                )));
            }
            if !t.contains(Self::CONTENT_REF) {
                return Err(ConfigError::Invalid(format!(
                    "console.content_url {t:?} must contain {}",
                    Self::CONTENT_REF
                )));
            }
        }
        if self.session_ttl_s == 0 || self.max_sessions == 0 {
            return Err(ConfigError::Invalid(
                "console.session_ttl_s and console.max_sessions must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Index hot reload.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reload {
    /// How often to look at the index for a new generation (ms); 0 disables
    /// polling (SIGHUP still works).
    pub poll_interval_ms: u64,
}

impl Default for Reload {
    fn default() -> Self {
        Reload {
            poll_interval_ms: 5_000,
        }
    }
}

/// TLS certificate and key (PEM); `client_ca` turns on mTLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// One API key: its SHA-256 (hex), never the key itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Name used in logs, metrics and audit trails.
    pub name: String,
    /// Lowercase or uppercase hex SHA-256 of the bearer token.
    pub sha256: String,
    /// What the key may call.
    pub role: Role,
    /// Sustained requests per second (stream items count one each).
    #[serde(default = "default_rate")]
    pub rate_limit_per_s: f64,
    /// Burst size of the token bucket (default: twice the rate, at least 1).
    #[serde(default)]
    pub burst: Option<u32>,
}

impl ApiKeyConfig {
    /// The token bucket size.
    pub fn burst(&self) -> u32 {
        self.burst
            .unwrap_or_else(|| (self.rate_limit_per_s * 2.0).ceil().clamp(1.0, 1e9) as u32)
    }
}

fn default_rate() -> f64 {
    100.0
}

/// The layout of `api_keys_file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeysFile {
    #[serde(rename = "api_key", default)]
    api_keys: Vec<ApiKeyConfig>,
}

/// A socket address, or `"off"` for none.
fn addr_or_off<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    s.trim().parse().map(Some).map_err(|e| {
        serde::de::Error::custom(format!(
            "{s:?} is not a socket address (e.g. 127.0.0.1:9464) or \"off\": {e}"
        ))
    })
}

/// Sections of the config whose keys may be overridden from the environment.
const SECTIONS: [&str; 6] = ["reports", "limits", "matching", "reload", "tls", "console"];
/// Top-level keys that may be overridden from the environment.
const TOP_KEYS: [&str; 8] = [
    "listen",
    "metrics_listen",
    "health_listen",
    "console_listen",
    "index",
    "reporting_organisation",
    "reporting_email",
    "api_keys_file",
];

impl ServerConfig {
    /// Reads `path` (if any), applies `SIGIL_*` overrides from `env`, and
    /// validates. `env` is passed in (rather than read here) so tests and
    /// callers control it.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<ServerConfig, ConfigError> {
        let mut config = Self::parse(path, env)?;
        if let Some(keys_path) = &config.api_keys_file {
            let text = std::fs::read_to_string(keys_path).map_err(|source| ConfigError::Read {
                path: keys_path.clone(),
                source,
            })?;
            let file: ApiKeysFile = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: keys_path.clone(),
                message: e.to_string(),
            })?;
            config.api_keys.extend(file.api_keys);
        }
        Ok(config)
    }

    /// Reads `path` (if any) and applies `SIGIL_*` overrides from `env`,
    /// without reading `api_keys_file` and without validating: for tools
    /// that need one section, such as `sigil reports --config` (its
    /// `[reports]`), which have no business reading the keys.
    pub fn parse(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<ServerConfig, ConfigError> {
        let mut table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_owned(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Parse {
                        path: p.to_owned(),
                        message: e.to_string(),
                    })?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut table, env)?;
        let config: ServerConfig =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: path.map(Path::to_owned).unwrap_or_default(),
                    message: e.to_string(),
                })?;
        Ok(config)
    }

    /// Checks cross-field rules; called by the server before starting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.index.is_none() {
            return Err(ConfigError::Invalid(
                "no index configured (set `index` or SIGIL_INDEX)".into(),
            ));
        }
        if self.api_keys.is_empty() && !self.insecure_loopback {
            return Err(ConfigError::Invalid(
                "no API keys configured: refusing to serve without authentication \
                 (add [[api_key]] entries or api_keys_file, or run with --insecure-loopback, which binds 127.0.0.1 only)"
                    .into(),
            ));
        }
        if self.limits.max_message_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "limits.max_message_bytes must be at least 1024".into(),
            ));
        }
        self.reports.validate().map_err(ConfigError::Invalid)?;
        self.console.validate()?;
        self.validate_limits()?;
        // Every policy error starts with the key at fault, so `matching.`
        // makes it the config key (`matching.radius is 300, over 256`).
        self.matching
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("matching.{e}")))?;
        self.validate_api_keys()
    }

    /// `[limits]`: sizes that must be positive or within HTTP/2's ranges.
    fn validate_limits(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        if l.max_connections == 0 || l.max_connections_per_peer == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_connections and limits.max_connections_per_peer must be at least 1"
                    .into(),
            ));
        }
        // Zero would close every connection (or stream) at once; the
        // protections have no "off" value on purpose.
        for (name, value) in [
            ("handshake_timeout_ms", l.handshake_timeout_ms),
            ("idle_timeout_ms", l.idle_timeout_ms),
            ("stream_stall_timeout_ms", l.stream_stall_timeout_ms),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!(
                    "limits.{name} must be at least 1 (milliseconds)"
                )));
            }
        }
        let one_message = (l.max_message_bytes as u64 + 5).max(l.http2_max_frame_bytes as u64);
        if l.max_body_bytes_in_flight < one_message {
            return Err(ConfigError::Invalid(format!(
                "limits.max_body_bytes_in_flight ({}) must be at least {one_message}, the larger \
                 of limits.max_message_bytes + 5 and limits.http2_max_frame_bytes, so that the \
                 largest accepted message can arrive",
                l.max_body_bytes_in_flight
            )));
        }
        // RFC 9113: windows up to 2^31 - 1, frames 2^14 ..= 2^24 - 1.
        for (name, value, min, max) in [
            (
                "http2_stream_window_bytes",
                l.http2_stream_window_bytes,
                65_535,
                i32::MAX as u32,
            ),
            (
                "http2_connection_window_bytes",
                l.http2_connection_window_bytes,
                65_535,
                i32::MAX as u32,
            ),
            (
                "http2_max_frame_bytes",
                l.http2_max_frame_bytes,
                1 << 14,
                (1 << 24) - 1,
            ),
        ] {
            if !(min..=max).contains(&value) {
                return Err(ConfigError::Invalid(format!(
                    "limits.{name} = {value} must be between {min} and {max}"
                )));
            }
        }
        if l.hashing_queue_bytes < l.max_message_bytes as u64 {
            return Err(ConfigError::Invalid(format!(
                "limits.hashing_queue_bytes ({}) must be at least limits.max_message_bytes ({}), \
                 so that the largest accepted image fits in the hashing pool's byte budget",
                l.hashing_queue_bytes, l.max_message_bytes
            )));
        }
        if l.max_batch == 0 || l.stream_window == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_batch and limits.stream_window must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// `[[api_key]]`: unique names, SHA-256 digests, positive rates.
    fn validate_api_keys(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::BTreeSet::new();
        for key in &self.api_keys {
            if !names.insert(key.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "api key name {:?} is used twice",
                    key.name
                )));
            }
            let mut digest = [0u8; 32];
            sigil_core::hash::decode_hex_into(&key.sha256, &mut digest).map_err(|e| {
                ConfigError::Invalid(format!(
                    "api key {:?}: sha256 is not a SHA-256 hex digest: {e}",
                    key.name
                ))
            })?;
            if key.rate_limit_per_s.is_nan() || key.rate_limit_per_s <= 0.0 || key.burst == Some(0)
            {
                return Err(ConfigError::Invalid(format!(
                    "api key {:?}: rate_limit_per_s and burst must be positive",
                    key.name
                )));
            }
        }
        Ok(())
    }

    /// The hashing worker count, resolving 0 to the number of CPUs.
    pub fn hashing_workers(&self) -> usize {
        match self.limits.hashing_workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }
}

/// Applies `SIGIL_<KEY>` (top-level) and `SIGIL_<SECTION>__<KEY>` overrides.
/// Values are parsed as TOML scalars (numbers, booleans) and otherwise taken
/// as strings. Other `SIGIL_*` variables (used by other tools) are ignored.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix("SIGIL_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let value = parse_scalar(&raw);
        if let Some((section, key)) = rest.split_once("__") {
            if !SECTIONS.contains(&section) {
                continue;
            }
            if key.is_empty() {
                return Err(ConfigError::Env {
                    var,
                    message: "missing key after section".into(),
                });
            }
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => {
                    t.insert(key.to_string(), value);
                }
                _ => {
                    return Err(ConfigError::Env {
                        var,
                        message: format!("config key {section} is not a section"),
                    })
                }
            }
        } else if TOP_KEYS.contains(&rest.as_str()) {
            // Addresses and paths are strings even when they look numeric.
            table.insert(rest, toml::Value::String(raw));
        }
    }
    Ok(())
}

fn parse_scalar(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(f) = raw.parse::<f64>() {
        return toml::Value::Float(f);
    }
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests;
