//! `protocol: auto` listener metrics: intercepted connections by destination port and
//! what they turned out to be, and the ones refused. Labels stay bounded whatever the
//! traffic: a destination's port, never its IP, and past [`MAX_PORTS`] distinct ports per
//! listener the rest share the port label `other` (a port scan of the pod cannot grow the
//! series without bound).

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus::{IntCounter, IntCounterVec};

use super::{Metrics, counter_vec};

/// Distinct port labels per listener.
pub const MAX_PORTS: usize = 64;

#[derive(Debug, Clone)]
pub struct SidecarMetrics {
    pub connections_total: IntCounterVec,
    pub refused_total: IntCounterVec,
}

impl SidecarMetrics {
    pub(super) fn new() -> Self {
        Self {
            connections_total: counter_vec(
                "sidecar_connections_total",
                "Intercepted connections of auto listeners, by listener, direction, destination port (or `other`) and protocol: http, tls (passed through), opaque, meshed.",
                &["listener", "direction", "port", "protocol"],
            ),
            refused_total: counter_vec(
                "sidecar_connections_refused_total",
                "Intercepted connections closed unforwarded, by listener and reason.",
                &["listener", "reason"],
            ),
        }
    }

    pub(super) fn register(&self, metrics: &Metrics) {
        metrics.register(self.connections_total.clone());
        metrics.register(self.refused_total.clone());
    }

    pub fn refused(&self, listener: &str, reason: &str) -> IntCounter {
        self.refused_total.with_label_values(&[listener, reason])
    }
}

/// The port labels one listener has handed out.
#[derive(Debug, Default)]
pub struct PortLabels {
    seen: Mutex<HashSet<u16>>,
}

impl PortLabels {
    /// `port` as a label, or `other` once [`MAX_PORTS`] others have labels.
    pub fn label(&self, port: u16) -> String {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(&port) || (seen.len() < MAX_PORTS && seen.insert(port)) {
            port.to_string()
        } else {
            "other".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_past_the_bound_share_one_label() {
        let labels = PortLabels::default();
        for port in 1..=MAX_PORTS as u16 {
            assert_eq!(labels.label(port), port.to_string());
        }
        assert_eq!(labels.label(9999), "other");
        assert_eq!(labels.label(1), "1", "a port that has its label keeps it");
    }
}
