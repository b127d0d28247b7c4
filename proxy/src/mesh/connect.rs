//! The outbound side of a meshed connection: TCP to the destination pod's inbound port,
//! TLS 1.3 presenting this proxy's identity and offering only [`ALPN_MESH`], the peer
//! verified against the trust bundle and required to carry a SPIFFE ID ([`handshake`]),
//! then the header. The handshake is usually done ahead of need: a connection takes the
//! peer's warm spare, or the handshake under way for it (`spare.rs`).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::generation::MeshTlsError;
use super::header::MeshHeader;
use super::spare::{Claim, Spares};
use super::{ALPN_MESH, MeshPlan};
use crate::tls::identity::{IdentityMaterial, IdentityStore};
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
    #[error("connecting to {0}: the handshake's task ended without a result")]
    HandshakeLost(SocketAddr),
    #[error("connecting to {address}: {source}")]
    Settings {
        address: SocketAddr,
        #[source]
        source: MeshTlsError,
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
            Self::HandshakeLost(_) => "connect",
            Self::Settings { .. } => "tls-settings",
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

/// A meshed connection through its handshake, the peer verified; the header is not
/// sent yet, so it can still carry any port and protocol (the peer waits for it).
#[derive(Debug)]
pub struct Handshaken {
    stream: TlsStream<TcpStream>,
    peer_identity: Arc<str>,
    peer_address: SocketAddr,
    /// The identity this proxy presented (a rotation makes the connection stale).
    identity: Arc<IdentityMaterial>,
}

impl Handshaken {
    /// Whether it can still carry a connection: made with the identity in use now, and
    /// neither closed nor refused by the peer since. (A TLS 1.3 server refuses a client
    /// certificate after the client's side of the handshake is done: its alert would be
    /// waiting here.)
    pub(super) fn usable(&mut self, identity: &IdentityStore) -> bool {
        // Read first, whatever the identity: a spare not used is dropped, and one
        // dropped with the peer's session tickets unread is reset, not closed.
        let open = self.read_pending();
        open && identity
            .current()
            .is_some_and(|now| Arc::ptr_eq(&self.identity, &now))
    }

    /// Reads what the peer sent since the handshake, without waiting: its session
    /// tickets (taken into the client's cache, for resumption), or its alert or close.
    /// Returns whether the connection is still open. A spare closed unused is read
    /// this way first, so the peer sees it closed before its header began (a FIN)
    /// rather than reset by unread bytes.
    pub(super) fn read_pending(&mut self) -> bool {
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(&mut self.stream)
            .poll_read(&mut cx, &mut buf)
            .is_pending()
    }

    /// Sends `header`: what is written next is the payload.
    pub(super) async fn send_header(
        mut self,
        header: MeshHeader,
    ) -> Result<MeshedStream, ConnectError> {
        let address = self.peer_address;
        header
            .write(&mut self.stream)
            .await
            .map_err(|source| ConnectError::Header { address, source })?;
        Ok(MeshedStream {
            stream: self.stream,
            peer_identity: self.peer_identity,
            peer_address: address,
        })
    }
}

/// Opens a meshed connection to `dial.destination` (the original destination: the
/// pod's IP and the app's port) through the peer's inbound port, and sends the header.
/// The handshake is the peer's warm spare when it has one, else the one under way for
/// it, else a new one; either way the peer gets a spare for its next connection
/// ([`Spares`]). A failure is counted by reason (`meshwork_mesh_connect_failures_total`).
///
/// When this future is dropped while it waits for a handshake (a raced connection whose
/// client turned out to speak HTTP), the handshake becomes the peer's spare: the HTTP
/// path's own connection takes it.
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
    let address = dial.plan.peer_address(dial.destination);
    let handshaken = match Spares::claim(&dial.plan, address, connect_timeout) {
        Claim::Ready(spare) => *spare,
        Claim::Wait(under_way) => under_way
            .await
            .unwrap_or(Err(ConnectError::HandshakeLost(address)))?,
        Claim::Inline => handshake(&dial.plan, address, connect_timeout).await?,
    };
    Spares::fill(&dial.plan, address, connect_timeout);
    let header = MeshHeader {
        port: dial.destination.port(),
        protocol: dial.protocol,
        raced: dial.raced,
    };
    let result = handshaken.send_header(header).await;
    if let Err(error) = &result {
        dial.plan.count_failure(error);
    }
    result
}

/// TCP to `address` (a peer's inbound port) and the TLS handshake, each within
/// `connect_timeout`, the peer checked. A failure is counted by reason.
///
/// # Errors
/// See [`ConnectError`].
pub(super) async fn handshake(
    plan: &MeshPlan,
    address: SocketAddr,
    connect_timeout: Duration,
) -> Result<Handshaken, ConnectError> {
    let result = handshake_uncounted(plan, address, connect_timeout).await;
    if let Err(error) = &result {
        plan.count_failure(error);
    }
    result
}

async fn handshake_uncounted(
    plan: &MeshPlan,
    address: SocketAddr,
    connect_timeout: Duration,
) -> Result<Handshaken, ConnectError> {
    let tls = plan
        .tls()
        .map_err(|source| ConnectError::Settings { address, source })?;
    let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect(address))
        .await
        .map_err(|_| ConnectError::ConnectTimeout(address))?
        .map_err(|source| ConnectError::Connect { address, source })?;
    let _ = tcp.set_nodelay(true);
    // Addressed by IP: no SNI is sent, and the verifier checks the identity, not a name.
    let name = ServerName::IpAddress(address.ip().into());
    let handshake = tokio_rustls::TlsConnector::from(tls.client.clone()).connect(name, tcp);
    let stream = tokio::time::timeout(connect_timeout, handshake)
        .await
        .map_err(|_| ConnectError::TlsTimeout(address))?
        .map_err(|source| ConnectError::Tls {
            address,
            reason: crate::tls::handshake::reason_of_io(&source),
            source,
        })?;
    let (_, session) = stream.get_ref();
    plan.count_handshake("outbound", session.handshake_kind());
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
    Ok(Handshaken {
        stream,
        peer_identity,
        peer_address: address,
        identity: tls.generation.clone(),
    })
}
