//! The mesh part of a snapshot: which destinations are meshed, what the inbound side does
//! with clients that are not, and the rustls configs of both sides, built per identity
//! generation (`generation.rs`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use meshwork_config::model::{Direction, Mesh, MeshInbound};

use super::connect::ConnectError;
use super::generation::{MeshTls, MeshTlsError, MeshTlsSlot};
use super::spare::Spares;
use crate::snapshot::Snapshot;
use crate::tls::identity::IdentityStore;

/// How this proxy takes part in the mesh.
#[derive(Debug)]
pub struct MeshPlan {
    /// The config's `mesh`: networks, inbound mode, inbound port.
    pub mesh: Mesh,
    /// Both sides' rustls configs, for the identity generation in use.
    tls: MeshTlsSlot,
    /// `meshwork_mesh_handshakes_total`, by side and kind.
    pub(super) handshakes: prometheus::IntCounterVec,
    /// `meshwork_mesh_connect_failures_total`, by reason.
    pub(super) connect_failures: prometheus::IntCounterVec,
    /// The live identity (a spare made with an identity since rotated is not used).
    pub(super) identity: Arc<IdentityStore>,
    /// Handshakes done ahead of need, per peer.
    pub(super) spares: Spares,
}

/// Why the mesh's TLS settings could not be built.
#[derive(Debug, thiserror::Error)]
#[error("mesh: {0}")]
pub struct MeshPlanError(#[source] MeshTlsError);

impl MeshPlan {
    /// The plan of `config.mesh` (`None` without one), for `identity`.
    ///
    /// # Errors
    /// When the TLS settings cannot be built for the identity in use (checked now when
    /// there is one, so a config that cannot work is refused).
    pub fn build(
        mesh: Option<&Mesh>,
        identity: &Arc<IdentityStore>,
        metrics: &crate::metrics::Metrics,
    ) -> Result<Option<Arc<Self>>, MeshPlanError> {
        let Some(mesh) = mesh else {
            return Ok(None);
        };
        if let Some(generation) = identity.current() {
            MeshTls::build(generation).map_err(MeshPlanError)?;
        }
        Ok(Some(Arc::new(Self {
            mesh: mesh.clone(),
            tls: MeshTlsSlot::new(identity.clone()),
            handshakes: metrics.mesh.handshakes_total.clone(),
            connect_failures: metrics.mesh.connect_failures_total.clone(),
            identity: identity.clone(),
            spares: Spares::new(metrics.mesh.spares_total.clone()),
        })))
    }

    /// The plan to reach `destination` with, for a connection of `listener`: the
    /// snapshot's when the listener carries the app's outbound traffic and the
    /// destination runs meshwork (an inbound listener's destination is the pod's own app,
    /// never meshed).
    pub fn outbound<'s>(
        snapshot: &'s Snapshot,
        listener: &str,
        destination: SocketAddr,
    ) -> Option<&'s Arc<Self>> {
        let plan = snapshot.mesh.as_ref()?;
        let outbound = snapshot
            .listener(listener)
            .is_some_and(|l| l.direction == Direction::Outbound);
        (outbound && plan.is_meshed(destination.ip())).then_some(plan)
    }

    /// The rustls configs of the identity in use (rebuilt after a rotation).
    ///
    /// # Errors
    /// See [`MeshTlsError`].
    pub fn tls(&self) -> Result<Arc<MeshTls>, MeshTlsError> {
        self.tls.current()
    }

    /// Counts a meshed handshake done, on `side` (`outbound` or `inbound`), by whether
    /// it resumed a session.
    pub(super) fn count_handshake(&self, side: &str, kind: Option<rustls::HandshakeKind>) {
        let kind = match kind {
            Some(rustls::HandshakeKind::Resumed) => "resumed",
            _ => "full",
        };
        self.handshakes.with_label_values(&[side, kind]).inc();
    }

    /// Whether `ip` runs meshwork (a connection to it becomes a meshed connection).
    pub fn is_meshed(&self, ip: IpAddr) -> bool {
        self.mesh.is_meshed(ip)
    }

    /// Where a meshed connection to `destination` goes: its inbound port.
    pub fn peer_address(&self, destination: SocketAddr) -> SocketAddr {
        SocketAddr::new(destination.ip(), self.mesh.inbound_port)
    }

    /// Counts a meshed connection that could not be set up, by reason.
    pub(super) fn count_failure(&self, error: &ConnectError) {
        self.connect_failures
            .with_label_values(&[error.reason()])
            .inc();
    }

    /// Whether the inbound side refuses clients that are not meshed peers.
    pub fn strict(&self) -> bool {
        self.mesh.inbound == MeshInbound::Strict
    }
}
