//! The outbound side of a meshed connection: TCP to the destination pod's inbound port,
//! TLS 1.3 presenting this proxy's identity and offering only [`ALPN_MESH`], the peer
//! verified against the trust bundle and required to carry a SPIFFE ID, then the header.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::header::MeshHeader;
use super::{ALPN_MESH, MeshPlan};
use crate::tls::spiffe::spiffe_id;

/// A meshed connection, header sent: what is written next is the payload.
#[derive(Debug)]
pub struct MeshedStream {
    pub stream: TlsStream<TcpStream>,
    /// The peer's SPIFFE ID (verified against the trust bundle).
    pub peer_identity: Arc<str>,
    /// Where the connection went (the peer's inbound port).
    pub peer_address: SocketAddr,
}

/// Why a meshed connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connecting to {address}: {source}")]
    Connect {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("connecting to {0}: no connection within the connect timeout")]
    ConnectTimeout(SocketAddr),
    #[error("TLS with {address} failed ({reason}): {source}")]
    Tls {
        address: SocketAddr,
        /// One of [`crate::tls::handshake::REASONS`].
        reason: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS with {0}: no handshake within the connect timeout")]
    TlsTimeout(SocketAddr),
    #[error("{address} is not a meshwork peer: {why}")]
    NotMeshPeer {
        address: SocketAddr,
        why: &'static str,
    },
    #[error("sending the mesh header to {address}: {source}")]
    Header {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl ConnectError {
    /// A short fixed reason, for a metric label and a log field.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "connect",
            Self::ConnectTimeout(_) => "connect-timeout",
            Self::Tls { reason, .. } => reason,
            Self::TlsTimeout(_) => "timeout",
            Self::NotMeshPeer { .. } => "not-mesh-peer",
            Self::Header { .. } => "header",
        }
    }

    /// Whether the peer could not be reached at all (as opposed to reached and refused,
    /// or not a meshwork peer).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Connect { .. } | Self::ConnectTimeout(_))
    }
}

/// A meshed connection to open: where to, and what the header says.
#[derive(Clone, Debug)]
pub struct MeshDial {
    pub plan: Arc<MeshPlan>,
    /// The original destination (the app's address and port: the header names its port).
    pub destination: SocketAddr,
    pub protocol: super::MeshProtocol,
    /// Opened while the client's protocol is still being detected (see
    /// [`MeshHeader::raced`]).
    pub raced: bool,
}

impl MeshDial {
    pub fn new(
        plan: Arc<MeshPlan>,
        destination: SocketAddr,
        protocol: super::MeshProtocol,
    ) -> Self {
        Self {
            plan,
            destination,
            protocol,
            raced: false,
        }
    }

    /// Opens one meshed connection (see [`connect`]).
    ///
    /// # Errors
    /// See [`ConnectError`].
    pub async fn open(&self, connect_timeout: Duration) -> Result<MeshedStream, ConnectError> {
        connect(self, connect_timeout).await
    }
}

/// Opens a meshed connection to `dial.destination` (the original destination: the
/// pod's IP and the app's port) through the peer's inbound port, and sends the header.
/// `connect_timeout` bounds the TCP connect and, again, the TLS handshake. A failure is
/// counted by reason (`meshwork_mesh_connect_failures_total`).
///
/// With TLS 1.3 a peer that refuses this proxy's certificate does so after the client's
/// side of the handshake is done: that refusal shows as the connection failing on its
/// first read, not here.
///
/// # Errors
/// See [`ConnectError`].
pub async fn connect(
    dial: &MeshDial,
    connect_timeout: Duration,
) -> Result<MeshedStream, ConnectError> {
    let result = connect_uncounted(dial, connect_timeout).await;
    if let Err(error) = &result {
        dial.plan
            .connect_failures
            .with_label_values(&[error.reason()])
            .inc();
    }
    result
}

async fn connect_uncounted(
    dial: &MeshDial,
    connect_timeout: Duration,
) -> Result<MeshedStream, ConnectError> {
    let MeshDial {
        plan,
        destination,
        protocol,
        raced,
    } = dial;
    let address = plan.peer_address(*destination);
    let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect(address))
        .await
        .map_err(|_| ConnectError::ConnectTimeout(address))?
        .map_err(|source| ConnectError::Connect { address, source })?;
    let _ = tcp.set_nodelay(true);
    // Addressed by IP: no SNI is sent, and the verifier checks the identity, not a name.
    let name = ServerName::IpAddress(address.ip().into());
    let handshake = tokio_rustls::TlsConnector::from(plan.client.clone()).connect(name, tcp);
    let mut stream = tokio::time::timeout(connect_timeout, handshake)
        .await
        .map_err(|_| ConnectError::TlsTimeout(address))?
        .map_err(|source| ConnectError::Tls {
            address,
            reason: crate::tls::handshake::reason_of_io(&source),
            source,
        })?;
    let (_, session) = stream.get_ref();
    // A server without ALPN support completes the handshake without selecting one.
    if session.alpn_protocol() != Some(ALPN_MESH) {
        return Err(ConnectError::NotMeshPeer {
            address,
            why: "it did not select the meshwork ALPN",
        });
    }
    let peer_identity = session
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(spiffe_id)
        .map(Arc::from)
        .ok_or(ConnectError::NotMeshPeer {
            address,
            why: "its certificate has no SPIFFE ID",
        })?;
    let header = MeshHeader {
        port: destination.port(),
        protocol: *protocol,
        raced: *raced,
    };
    header
        .write(&mut stream)
        .await
        .map_err(|source| ConnectError::Header { address, source })?;
    Ok(MeshedStream {
        stream,
        peer_identity,
        peer_address: address,
    })
}
