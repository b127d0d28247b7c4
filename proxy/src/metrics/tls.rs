//! TLS and authorization metrics: handshakes and their failures by reason, identity
//! rotations, authorization denials.

use prometheus::{IntCounter, IntCounterVec, IntGauge};

use super::{Metrics, counter_vec, opts};

#[derive(Debug, Clone)]
pub struct TlsMetrics {
    pub handshakes_total: IntCounterVec,
    pub handshake_failures_total: IntCounterVec,
    pub upstream_handshake_failures_total: IntCounterVec,
    pub identity_reloads_total: IntCounterVec,
    pub identity_expiry: IntGauge,
    pub authorization_denied_total: IntCounterVec,
}

impl TlsMetrics {
    pub(super) fn new() -> Self {
        Self {
            handshakes_total: counter_vec(
                "tls_handshakes_total",
                "Downstream TLS handshakes completed, by listener.",
                &["listener"],
            ),
            handshake_failures_total: counter_vec(
                "tls_handshake_failures_total",
                "Downstream TLS handshakes failed (connection closed), by listener and reason.",
                &["listener", "reason"],
            ),
            upstream_handshake_failures_total: counter_vec(
                "upstream_tls_handshake_failures_total",
                "Upstream TLS handshakes failed, by cluster and reason.",
                &["cluster", "reason"],
            ),
            identity_reloads_total: counter_vec(
                "identity_reloads_total",
                "Mesh identity file changes, by result (applied or rejected).",
                &["result"],
            ),
            identity_expiry: IntGauge::with_opts(opts(
                "identity_certificate_expiry_timestamp_seconds",
                "When the mesh identity certificate in use expires (Unix seconds).",
            ))
            .expect("metric definitions are static and valid"),
            authorization_denied_total: counter_vec(
                "authorization_denied_total",
                "Requests refused by an authorization policy (403), by listener.",
                &["listener"],
            ),
        }
    }

    pub(super) fn register(&self, metrics: &Metrics) {
        metrics.register(self.handshakes_total.clone());
        metrics.register(self.handshake_failures_total.clone());
        metrics.register(self.upstream_handshake_failures_total.clone());
        metrics.register(self.identity_reloads_total.clone());
        metrics.register(self.identity_expiry.clone());
        metrics.register(self.authorization_denied_total.clone());
    }

    pub fn identity_reloads(&self, result: &str) {
        self.identity_reloads_total
            .with_label_values(&[result])
            .inc();
    }

    /// A handle for a listener's completed handshakes.
    pub fn handshakes(&self, listener: &str) -> IntCounter {
        self.handshakes_total.with_label_values(&[listener])
    }
}
