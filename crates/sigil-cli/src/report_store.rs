//! Which report store a command uses: the one a server config names
//! (`--config`), a SQLite file or a PostgreSQL URL (`--db`). Shared by
//! `sigil reports` and `sigil scan --reports`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use sigil_reports::{ReportStore, ReportsBackend, ReportsConfig};
use sigil_server::ServerConfig;

/// Where the report store is.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StoreArgs {
    /// The server's TOML config: its `[reports]` section names the store
    /// (SQLite or PostgreSQL), `SIGIL_*` environment overrides included
    /// (e.g. SIGIL_REPORTS__POSTGRES_URL, which keeps a password off the
    /// command line).
    #[arg(long, value_name = "FILE", global = true, conflicts_with = "db")]
    pub config: Option<PathBuf>,
    /// A SQLite report database file, or a PostgreSQL URL
    /// (postgres://USER@HOST/DB; a password in it is visible to other
    /// local users in the process list: prefer --config with
    /// SIGIL_REPORTS__POSTGRES_URL).
    #[arg(long, value_name = "FILE|URL", global = true)]
    pub db: Option<String>,
}

/// An open store and what the messages call it.
pub struct OpenStore {
    pub store: Arc<dyn ReportStore>,
    /// "SQLite database PATH" or "PostgreSQL database URL" (no password).
    pub name: String,
    /// From the server config, for the stubs a scan writes.
    pub reporting_org: String,
    pub reporting_email: String,
}

impl StoreArgs {
    pub fn given(&self) -> bool {
        self.config.is_some() || self.db.is_some()
    }

    /// The store configuration these arguments name.
    fn resolve(&self) -> anyhow::Result<(ReportsConfig, String, String)> {
        if let Some(path) = &self.config {
            let config = ServerConfig::parse(Some(path), std::env::vars())
                .with_context(|| format!("reading the report store from {}", path.display()))?;
            config
                .reports
                .validate()
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            return Ok((
                config.reports,
                config.reporting_organisation,
                config.reporting_email,
            ));
        }
        let Some(db) = &self.db else {
            bail!("no report store given: pass --db FILE (SQLite), --db postgres://... or --config FILE (a server config)");
        };
        let reports = if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            ReportsConfig {
                backend: ReportsBackend::Postgres,
                postgres_url: Some(db.clone()),
                ..ReportsConfig::default()
            }
        } else {
            ReportsConfig {
                backend: ReportsBackend::Sqlite,
                path: PathBuf::from(db),
                ..ReportsConfig::default()
            }
        };
        Ok((reports, String::new(), String::new()))
    }

    /// Opens the store. `create`: a SQLite file that does not exist yet is
    /// created (a scan writing its first stubs); otherwise it is an error
    /// naming the path (a mistyped path must not show an empty queue).
    pub fn open(&self, create: bool) -> anyhow::Result<OpenStore> {
        let (config, reporting_org, reporting_email) = self.resolve()?;
        let name = match config.backend {
            ReportsBackend::Sqlite => format!("SQLite database {}", config.path.display()),
            ReportsBackend::Postgres => format!(
                "PostgreSQL database {}",
                sigil_reports::redact_url(config.postgres_url.as_deref().unwrap_or_default())
            ),
        };
        if config.backend == ReportsBackend::Sqlite && !create && !config.path.exists() {
            bail!(
                "report database {} does not exist (give the file `sigil serve` writes: its \
                 --db or reports.path)",
                config.path.display()
            );
        }
        let store = sigil_reports::open(&config).with_context(|| format!("opening the {name}"))?;
        Ok(OpenStore {
            store,
            name,
            reporting_org,
            reporting_email,
        })
    }
}
