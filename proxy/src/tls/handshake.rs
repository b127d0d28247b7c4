//! Downstream TLS handshakes: the shared server side (plaintext refused early, a
//! deadline, a short fixed reason for every failure, a refused client's connection closed
//! after its alert), then the negotiated protocol and the peer's verified identity.

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

pub use meshwork_tls::accept::Refused;
pub use meshwork_tls::reason::{REASONS, Reason, reason_of, reason_of_io};

/// A finished handshake.
#[derive(Debug)]
pub struct Established {
    pub stream: TlsStream<TcpStream>,
    /// The client chose HTTP/2 by ALPN.
    pub h2: bool,
    /// The SPIFFE ID of a verified client certificate.
    pub peer_identity: Option<Arc<str>>,
}

/// Runs the server side of a handshake on `stream` within `timeout`.
///
/// # Errors
/// Why it failed; the caller reports it, then [`Refused::close`]s the connection.
pub async fn accept(
    stream: TcpStream,
    config: Arc<ServerConfig>,
    timeout: Duration,
) -> Result<Established, Refused> {
    let stream = meshwork_tls::accept::accept(stream, config, timeout).await?;
    let (_, conn) = stream.get_ref();
    let h2 = conn.alpn_protocol() == Some(super::ALPN_H2);
    let peer_identity = conn
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(super::spiffe::spiffe_id)
        .map(Arc::from);
    Ok(Established {
        stream,
        h2,
        peer_identity,
    })
}
