//! The background task: index reload on demand (SIGHUP or
//! [`super::RunningServer::reload`]) and when the index on disk changes
//! (polled), until shutdown.
//!
//! A change is any change of where the index path leads
//! ([`sigil_index::OnDisk`]: the directory a symlink resolves to, the
//! manifest's identity), never the generation number alone. A candidate
//! that was refused is not tried again by polling until the path leads
//! elsewhere (an explicit reload tries it again).

use std::sync::Arc;
use std::time::Duration;

use sigil_index::OnDisk;
use tokio::sync::{watch, Notify};

use super::state::{AppState, Refused};

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
        // Where the path led when a candidate was last refused.
        let mut refused: Option<Refused> = None;
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
                    refused = state.reload_index("request").await;
                }
                _ = hup.recv() => {
                    refused = state.reload_index("SIGHUP").await;
                }
                _ = ticker.tick(), if !poll.is_zero() => {
                    let now = OnDisk::probe(&path).ok();
                    let serving = state.index.current().on_disk();
                    if now.as_ref() != Some(&serving) && refused.as_ref() != Some(&now) {
                        refused = state.reload_index("index changed on disk").await;
                    }
                }
            }
        }
    });
}
