//! Where report stubs are kept: the `[reports]` section of the server's
//! configuration, read here too by `sigil reports` and `sigil scan
//! --reports`, so every front end opens the store the same way.

use std::path::PathBuf;

use serde::Deserialize;

use crate::LEGAL_RETENTION_DAYS;

/// Which report store backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportsBackend {
    Sqlite,
    Postgres,
}

/// The report store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportsConfig {
    pub backend: ReportsBackend,
    /// SQLite database file.
    pub path: PathBuf,
    /// PostgreSQL connection URL (backend = "postgres").
    pub postgres_url: Option<String>,
    /// Preservation period from detection, days (at least 365, the legal
    /// minimum): each stub's preservation deadline.
    pub retention_days: u32,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            backend: ReportsBackend::Sqlite,
            path: PathBuf::from("sigil-reports.db"),
            postgres_url: None,
            retention_days: LEGAL_RETENTION_DAYS,
        }
    }
}

impl ReportsConfig {
    /// Checks what the store cannot work without, each error starting with
    /// the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.retention_days < LEGAL_RETENTION_DAYS {
            return Err(format!(
                "reports.retention_days = {} is below the {LEGAL_RETENTION_DAYS}-day legal \
                 preservation minimum",
                self.retention_days
            ));
        }
        if self.backend == ReportsBackend::Postgres
            && self
                .postgres_url
                .as_deref()
                .is_none_or(|u| u.trim().is_empty())
        {
            return Err(
                "reports.backend = \"postgres\" needs reports.postgres_url \
                 (or SIGIL_REPORTS__POSTGRES_URL), e.g. postgres://sigil:PASSWORD@HOST:5432/sigil"
                    .into(),
            );
        }
        Ok(())
    }
}
