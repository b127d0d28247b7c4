//! The drain: from the ask to stop to the moment the process may exit, under one
//! deadline.
//!
//! 1. Inbound listeners (`direction: inbound`, the default) stop accepting; their HTTP
//!    connections shut down gracefully (HTTP/1 `Connection: close`, HTTP/2 GOAWAY) once
//!    what is in flight is answered; TCP connections and upgraded tunnels run until they
//!    end.
//! 2. Outbound listeners (`direction: outbound`: the app's own calls) keep working, new
//!    connections included, until the app is gone: no connection of either direction
//!    open and none started for the quiet period, or `POST /shutdown`. A config without
//!    outbound listeners has no app to wait for and skips this step.
//! 3. Outbound listeners stop as inbound ones did, and what is still open gets until
//!    the deadline.
//!
//! The deadline (`--drain-timeout`) counts from the ask and bounds all three steps: what
//! is open when it passes is counted and closed by the exit.

mod tracker;
mod trigger;

use std::time::Duration;

use meshwork_config::model::Direction;
use tokio::time::Instant;

pub use tracker::ConnectionTracker;
pub use trigger::DrainTrigger;

/// How long the app must make no call, once inbound drained, to count as gone. Long
/// enough for an app's shutdown hooks to go from one call to the next, short next to a
/// pod's grace period. Default of `--app-quiet-period`.
pub const DEFAULT_APP_QUIET_PERIOD: Duration = Duration::from_secs(1);

/// The listeners as the drain sees them.
pub trait DrainListeners: Send + Sync {
    /// Stops the listeners of `direction` accepting; their HTTP connections shut down
    /// gracefully.
    fn stop_accepting(&self, direction: Direction);
    /// Whether any listener carries the app's own calls (`direction: outbound`).
    fn has_outbound(&self) -> bool;
}

/// How long the drain may take, and how long a quiet app takes to count as gone.
#[derive(Debug, Clone, Copy)]
pub struct DrainSettings {
    /// The one deadline, from the ask to stop (`--drain-timeout`).
    pub timeout: Duration,
    /// See [`DEFAULT_APP_QUIET_PERIOD`].
    pub app_quiet_period: Duration,
}

/// How the drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainEnd {
    /// Every connection finished; there was no outbound listener to keep for the app.
    Drained,
    /// The app made no call for the quiet period, and every connection finished.
    AppQuiet,
    /// The app said it was done (`POST /shutdown`), and every connection finished.
    AppShutdown,
    /// The deadline passed with `open` connections or tunnels still open.
    Deadline { open: usize },
}

/// Runs the drain (see the module docs) and says how it ended. `connections` tracks
/// every connection and tunnel; `trigger` tells when the app said it was gone.
pub async fn drain(
    listeners: &dyn DrainListeners,
    connections: &ConnectionTracker,
    trigger: &DrainTrigger,
    settings: DrainSettings,
) -> DrainEnd {
    let deadline = Instant::now() + settings.timeout;
    listeners.stop_accepting(Direction::Inbound);
    connections.close();
    let mut end = DrainEnd::Drained;
    if listeners.has_outbound() {
        tracing::info!(
            quiet_period = ?settings.app_quiet_period,
            "inbound listeners stopped; outbound listeners serve the app until it is gone"
        );
        let app_gone = async {
            tokio::select! {
                () = app_quiet(connections, settings.app_quiet_period) => DrainEnd::AppQuiet,
                () = trigger.app_gone() => DrainEnd::AppShutdown,
            }
        };
        match tokio::time::timeout_at(deadline, app_gone).await {
            Ok(gone) => end = gone,
            Err(_) => {
                listeners.stop_accepting(Direction::Outbound);
                return DrainEnd::Deadline {
                    open: connections.len(),
                };
            }
        }
        tracing::info!(reason = ?end, open = connections.len(), "the app is gone; outbound listeners stopped");
        listeners.stop_accepting(Direction::Outbound);
    }
    match tokio::time::timeout_at(deadline, connections.wait()).await {
        Ok(()) => end,
        Err(_) => DrainEnd::Deadline {
            open: connections.len(),
        },
    }
}

/// Returns once no tracked task has run, nor started, for `quiet`.
async fn app_quiet(connections: &ConnectionTracker, quiet: Duration) {
    loop {
        connections.wait().await;
        let started = connections.started();
        tokio::time::sleep(quiet).await;
        if connections.started() == started && connections.is_empty() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
