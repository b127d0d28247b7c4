//! Meshed-connection metrics: refusals on the inbound side and failures on the outbound
//! side, by listener and a fixed reason (never by peer address or identity), and what
//! became of the outbound side's warm spares.

use prometheus::IntCounterVec;

use super::{Metrics, counter_vec};

#[derive(Debug, Clone)]
pub struct MeshMetrics {
    pub inbound_refused_total: IntCounterVec,
    pub connect_failures_total: IntCounterVec,
    pub spares_total: IntCounterVec,
    pub handshakes_total: IntCounterVec,
}

impl MeshMetrics {
    pub(super) fn new() -> Self {
        Self {
            inbound_refused_total: counter_vec(
                "mesh_inbound_refused_total",
                "Connections an inbound listener refused for mesh reasons (a meshed peer's failed handshake or header, or a client that is not a meshed peer under `mesh.inbound: strict`), by listener and reason.",
                &["listener", "reason"],
            ),
            connect_failures_total: counter_vec(
                "mesh_connect_failures_total",
                "Meshed connections the outbound side could not set up (connect, mutual TLS, not a meshwork peer), by reason.",
                &["reason"],
            ),
            spares_total: counter_vec(
                "mesh_spares_total",
                "Meshed handshakes made ahead of need (warm spares), by outcome: used, joined (taken while under way), expired (closed unused), stale (closed: identity rotated, or the peer closed or refused it).",
                &["outcome"],
            ),
            handshakes_total: counter_vec(
                "mesh_handshakes_total",
                "Meshed TLS handshakes completed, by side (outbound: this proxy dialed; inbound: a peer dialed it) and kind (full: certificates exchanged and verified; resumed: a TLS 1.3 session of the same identity generation resumed).",
                &["side", "kind"],
            ),
        }
    }

    pub(super) fn register(&self, metrics: &Metrics) {
        metrics.register(self.inbound_refused_total.clone());
        metrics.register(self.connect_failures_total.clone());
        metrics.register(self.spares_total.clone());
        metrics.register(self.handshakes_total.clone());
    }
}
