//! Downstream TLS handshakes: refusing plaintext early, a deadline, the negotiated
//! protocol and the peer's verified identity, and a short fixed reason for every failure
//! (a metric label and a log field).

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// The first byte of a TLS record carrying a handshake message.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// A finished handshake.
#[derive(Debug)]
pub struct Established {
    pub stream: TlsStream<TcpStream>,
    /// The client chose HTTP/2 by ALPN.
    pub h2: bool,
    /// The SPIFFE ID of a verified client certificate.
    pub peer_identity: Option<Arc<str>>,
}

pub use meshwork_tls::reason::{REASONS, Reason, reason_of, reason_of_io};

/// Runs the server side of a handshake on `stream` within `timeout`.
///
/// # Errors
/// The failure reason; the caller closes the connection.
pub async fn accept(
    stream: TcpStream,
    config: Arc<ServerConfig>,
    timeout: Duration,
) -> Result<Established, (Reason, String)> {
    let attempt = async {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(0) => return Err(("eof", "closed before the handshake".to_string())),
            Ok(_) if first[0] != TLS_HANDSHAKE_RECORD => {
                return Err((
                    "plaintext",
                    format!("not a TLS handshake (first byte {:#04x})", first[0]),
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(("eof", e.to_string())),
        }
        let stream = tokio_rustls::TlsAcceptor::from(config)
            .accept(stream)
            .await
            .map_err(|e| (reason_of_io(&e), e.to_string()))?;
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
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err((
            "timeout",
            format!("handshake not finished within {timeout:?}"),
        )),
    }
}
