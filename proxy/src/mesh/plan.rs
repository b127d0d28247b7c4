//! The mesh part of a snapshot: which destinations are meshed, what the inbound side does
//! with clients that are not, and the rustls configs of both sides, built once per config
//! from `mesh` and the identity (whose certificate and bundle they read per handshake).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use meshwork_config::model::{Direction, Mesh, MeshInbound};
use rustls::{ClientConfig, ServerConfig};

use super::ALPN_MESH;
use super::connect::ConnectError;
use super::spare::Spares;
use super::verify::MeshClientVerifier;
use crate::snapshot::Snapshot;
use crate::tls::identity::{IdentityCert, IdentityStore};
use crate::tls::spiffe::{Trust, UpstreamVerifier};

/// How this proxy takes part in the mesh.
#[derive(Debug)]
pub struct MeshPlan {
    /// The config's `mesh`: networks, inbound mode, inbound port.
    pub mesh: Mesh,
    /// The outbound side: the identity as client certificate, peers verified against the
    /// trust bundle and required to carry a SPIFFE ID, ALPN [`ALPN_MESH`] only.
    pub(super) client: Arc<ClientConfig>,
    /// The inbound side: the identity certificate, a client certificate required (trust
    /// bundle, SPIFFE ID), ALPN [`ALPN_MESH`] only.
    pub(super) server: Arc<ServerConfig>,
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
pub struct MeshPlanError(#[source] rustls::Error);

impl MeshPlan {
    /// The plan of `config.mesh` (`None` without one), for `identity`.
    ///
    /// # Errors
    /// When rustls refuses the protocol versions (not with the built-in provider).
    pub fn build(
        mesh: Option<&Mesh>,
        identity: &Arc<IdentityStore>,
        metrics: &crate::metrics::Metrics,
    ) -> Result<Option<Arc<Self>>, MeshPlanError> {
        let Some(mesh) = mesh else {
            return Ok(None);
        };
        let provider = crate::tls::provider();
        let mut client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(MeshPlanError)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(UpstreamVerifier::any_identity(
                Trust::Identity(identity.clone()),
            )))
            .with_client_cert_resolver(Arc::new(IdentityCert(identity.clone())));
        client.alpn_protocols = vec![ALPN_MESH.to_vec()];
        // No session resumption, either side: every meshed connection is verified
        // against the trust bundle of the moment, so a rotation that drops a CA takes
        // effect on the next connection, and each side always knows the other's identity
        // from a certificate it has just checked.
        client.resumption = rustls::client::Resumption::disabled();
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(MeshPlanError)?
            .with_client_cert_verifier(Arc::new(MeshClientVerifier::new(identity.clone())))
            .with_cert_resolver(Arc::new(IdentityCert(identity.clone())));
        server.alpn_protocols = vec![ALPN_MESH.to_vec()];
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
        Ok(Some(Arc::new(Self {
            mesh: mesh.clone(),
            client: Arc::new(client),
            server: Arc::new(server),
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
