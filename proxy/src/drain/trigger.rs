//! What starts the drain and what ends the app's time: SIGTERM/SIGINT and `POST /drain`
//! begin it; `POST /shutdown` begins it too and says the app is already gone.

use tokio_util::sync::CancellationToken;

/// Shared by the signal handler, the admin server and the drain. Asking twice changes
/// nothing: the first ask starts the one deadline.
#[derive(Debug, Default)]
pub struct DrainTrigger {
    begun: CancellationToken,
    app_gone: CancellationToken,
}

impl DrainTrigger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Begins the drain (SIGTERM, SIGINT, `POST /drain`). Returns whether this call began
    /// it (false when it was already under way).
    pub fn drain(&self) -> bool {
        let first = !self.begun.is_cancelled();
        self.begun.cancel();
        first
    }

    /// The app's last step (`POST /shutdown`): begins the drain if needed, and stops
    /// waiting for the app. Returns whether the drain began with this call.
    pub fn shutdown(&self) -> bool {
        let first = self.drain();
        self.app_gone.cancel();
        first
    }

    pub fn is_draining(&self) -> bool {
        self.begun.is_cancelled()
    }

    /// Returns once the drain began.
    pub async fn begun(&self) {
        self.begun.cancelled().await;
    }

    /// Returns once the app said it is gone (`POST /shutdown`).
    pub async fn app_gone(&self) {
        self.app_gone.cancelled().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_ask_begins_the_drain_and_later_ones_change_nothing() {
        let trigger = DrainTrigger::new();
        assert!(!trigger.is_draining());
        assert!(trigger.drain());
        assert!(!trigger.drain());
        assert!(!trigger.shutdown(), "already draining");
        assert!(trigger.is_draining());
        let other = DrainTrigger::new();
        assert!(other.shutdown(), "a shutdown begins the drain too");
    }
}
