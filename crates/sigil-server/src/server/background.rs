//! The background task: index reload on demand (SIGHUP or
//! [`super::RunningServer::reload`]) and when the index on disk changes
//! (polled), until shutdown.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{watch, Notify};

use super::state::AppState;

/// Fingerprint of what is on disk for the index: the directory the path
/// resolves to (a swapped symlink changes it) and the MANIFEST's size and
/// modification time (a manifest replaced by rename changes them).
fn index_fingerprint(path: &Path) -> Option<(PathBuf, u64, SystemTime)> {
    let dir = std::fs::canonicalize(path).ok()?;
    let meta = std::fs::metadata(dir.join("MANIFEST")).ok()?;
    Some((dir, meta.len(), meta.modified().ok()?))
}

/// Resolves when SIGHUP arrives (never when `enabled` is false or the
/// platform has no SIGHUP).
struct Hangups(#[cfg(unix)] Option<tokio::signal::unix::Signal>);

impl Hangups {
    fn new(enabled: bool) -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Hangups(enabled.then(|| signal(SignalKind::hangup()).ok()).flatten())
        }
        #[cfg(not(unix))]
        {
            let _ = enabled;
            Hangups()
        }
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = self.0.as_mut() {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    }
}

/// Spawns the reload task; `reload` asks it to reload now.
pub(super) fn spawn_reload(
    state: Arc<AppState>,
    reload: Arc<Notify>,
    reload_on_sighup: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    let poll = Duration::from_millis(state.config.reload.poll_interval_ms);
    let path = state.config.index.clone().unwrap_or_default();
    let mut hup = Hangups::new(reload_on_sighup);
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
            tokio::select! {
                // Only `true` is ever sent: any change means shut down.
                _ = shutdown.changed() => return,
                _ = reload.notified() => {
                    seen = index_fingerprint(&path);
                    state.reload_index("request").await;
                }
                _ = hup.recv() => {
                    seen = index_fingerprint(&path);
                    state.reload_index("SIGHUP").await;
                }
                _ = ticker.tick(), if !poll.is_zero() => {
                    let now = index_fingerprint(&path);
                    if now != seen {
                        seen = now;
                        state.reload_index("index changed on disk").await;
                    }
                }
            }
        }
    });
}
