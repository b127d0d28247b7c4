//! Drain metrics: what the drain deadline cut.

use prometheus::IntCounter;

use super::{Metrics, counter};

#[derive(Debug, Clone)]
pub struct DrainMetrics {
    /// Counted once, at the deadline, just before the process exits; the log line
    /// `drain deadline passed` carries the same number for whoever is not scraping then.
    pub deadline_closed_total: IntCounter,
}

impl DrainMetrics {
    pub(super) fn new() -> Self {
        Self {
            deadline_closed_total: counter(
                "drain_deadline_closed_total",
                "Connections and tunnels (TCP, WebSocket, HTTP with a request or stream still open) still open when the drain deadline passed, closed then.",
            ),
        }
    }

    pub(super) fn register(&self, metrics: &Metrics) {
        metrics.register(self.deadline_closed_total.clone());
    }
}
