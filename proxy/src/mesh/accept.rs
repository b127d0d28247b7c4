//! The inbound side of a meshed connection: given a connection whose ClientHello offered
//! [`ALPN_MESH`], TLS 1.3 with the identity certificate, a client certificate required
//! (trust bundle, SPIFFE ID), then the header, all within one deadline. Refusals are
//! counted by reason and logged through a [`LogLimiter`]: any client can cause one at
//! will, so never one line each.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounterVec;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

use super::generation::MeshTlsError;
use super::header::{HeaderError, MeshHeader};
use super::{ALPN_MESH, MeshPlan};
use crate::observe::log_limit::LogLimiter;
use crate::tls::handshake::{self, Refused};

/// How long a meshed peer has for its ClientHello, handshake and header together (as a
/// TLS listener's default `handshake_timeout`).
pub const MESH_HANDSHAKE_TIMEOUT: Duration = meshwork_config::model::DEFAULT_TLS_HANDSHAKE_TIMEOUT;

/// A meshed connection accepted, header read: what is read next is the payload.
#[derive(Debug)]
pub struct MeshAccepted {
    pub stream: TlsStream<TcpStream>,
    /// The client's SPIFFE ID (verified against the trust bundle).
    pub peer_identity: Arc<str>,
    pub header: MeshHeader,
}

/// Why a meshed connection was refused.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("TLS handshake failed: {}", .0.detail)]
    Handshake(Refused),
    #[error("not a meshwork peer: {why}")]
    NotMeshPeer {
        why: &'static str,
        stream: Box<TlsStream<TcpStream>>,
    },
    #[error("mesh header: {0}")]
    Header(#[source] HeaderError),
    #[error(transparent)]
    Settings(MeshTlsError),
}

impl AcceptError {
    /// A short fixed reason, for a metric label and a log field: one of
    /// [`crate::tls::handshake::REASONS`], [`super::header::HEADER_REASONS`] or
    /// `not-mesh-peer`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Handshake(refused) => refused.reason,
            Self::NotMeshPeer { .. } => "not-mesh-peer",
            Self::Header(e) => e.reason(),
            Self::Settings(_) => "tls-settings",
        }
    }

    /// Closes the connection; a client refused in the handshake gets to read the alert
    /// saying why first (see [`Refused::close`]).
    pub async fn close(self) {
        if let Self::Handshake(refused) = self {
            refused.close().await;
        }
    }
}

/// Runs the inbound side of a meshed connection on `stream` within `timeout` (handshake
/// and header together).
///
/// # Errors
/// See [`AcceptError`]; the caller reports it ([`AcceptFailures`]) and then
/// [`AcceptError::close`]s it.
pub async fn accept(
    stream: TcpStream,
    plan: &MeshPlan,
    timeout: Duration,
) -> Result<MeshAccepted, AcceptError> {
    let deadline = Instant::now() + timeout;
    let tls = plan.tls().map_err(AcceptError::Settings)?;
    let established = handshake::accept(stream, tls.server.clone(), timeout)
        .await
        .map_err(AcceptError::Handshake)?;
    let mut stream = established.stream;
    plan.count_handshake("inbound", stream.get_ref().1.handshake_kind());
    // A client that offered no ALPN at all completes the handshake without one.
    if stream.get_ref().1.alpn_protocol() != Some(ALPN_MESH) {
        return Err(AcceptError::NotMeshPeer {
            why: "the meshwork ALPN was not negotiated",
            stream: Box::new(stream),
        });
    }
    // Always there: the verifier requires it on a full handshake, and a resumed one
    // restores the chain verified by the full handshake it resumes (of this generation).
    let Some(peer_identity) = established.peer_identity else {
        return Err(AcceptError::NotMeshPeer {
            why: "no SPIFFE ID in the client certificate",
            stream: Box::new(stream),
        });
    };
    let remaining = deadline.saturating_duration_since(Instant::now());
    let header = MeshHeader::read(&mut stream, remaining)
        .await
        .map_err(AcceptError::Header)?;
    Ok(MeshAccepted {
        stream,
        peer_identity,
        header,
    })
}

/// Counts and logs one listener's meshed-connection refusals.
#[derive(Debug, Clone)]
pub struct AcceptFailures {
    listener: Arc<str>,
    /// `meshwork_mesh_inbound_refused_total`, by listener and reason.
    refused: IntCounterVec,
    log: Arc<LogLimiter>,
}

impl AcceptFailures {
    pub fn new(listener: Arc<str>, refused: IntCounterVec) -> Self {
        let log = LogLimiter::per_listener(listener.clone(), "refused meshed connections");
        Self {
            listener,
            refused,
            log,
        }
    }

    /// Counts `error` (by reason) and logs it unless too many were logged lately. A
    /// client that went away during the handshake (`eof`: a raced connection its sidecar
    /// gave up on looks like this) or before its header began (a spare it closed unused)
    /// was not refused: it is only logged at debug level.
    pub fn report(&self, client: SocketAddr, error: &AcceptError) {
        let reason = error.reason();
        if reason == "eof" || matches!(error, AcceptError::Header(HeaderError::Unused)) {
            tracing::debug!(listener = %self.listener, %client, %error, "meshed peer went away during the handshake");
            return;
        }
        self.refused
            .with_label_values(&[&*self.listener, reason])
            .inc();
        if self.log.admit(reason) {
            tracing::info!(listener = %self.listener, %client, reason, %error, "meshed connection refused");
        }
    }
}
