//! `protocol: tcp` listener metrics: connections the proxy refused before relaying a
//! byte, by reason, and connections it closed for being idle.

use prometheus::{IntCounter, IntCounterVec};

use super::{Metrics, counter_vec};

#[derive(Debug, Clone)]
pub struct TcpMetrics {
    pub refused_total: IntCounterVec,
    pub idle_timeouts_total: IntCounterVec,
}

impl TcpMetrics {
    pub(super) fn new() -> Self {
        Self {
            refused_total: counter_vec(
                "tcp_connections_refused_total",
                "TCP-listener connections closed before any byte was relayed, by listener and reason.",
                &["listener", "reason"],
            ),
            idle_timeouts_total: counter_vec(
                "tcp_idle_timeouts_total",
                "TCP-listener connections closed after idle_timeout without a byte either way, by listener.",
                &["listener"],
            ),
        }
    }

    pub(super) fn register(&self, metrics: &Metrics) {
        metrics.register(self.refused_total.clone());
        metrics.register(self.idle_timeouts_total.clone());
    }

    /// A handle for `listener`'s refusals for `reason`.
    pub fn refused(&self, listener: &str, reason: &str) -> IntCounter {
        self.refused_total.with_label_values(&[listener, reason])
    }
}
