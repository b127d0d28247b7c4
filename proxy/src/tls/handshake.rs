//! Downstream TLS handshakes: refusing plaintext early, a deadline, the negotiated
//! protocol and the peer's verified identity, and a short fixed reason for every failure
//! (a metric label and a log field).

use std::sync::Arc;
use std::time::Duration;

use rustls::{AlertDescription, CertificateError, ServerConfig};
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

/// Why a handshake failed: one of a small fixed set (a metric label).
pub type Reason = &'static str;

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

/// The reason for an I/O error out of a rustls handshake.
pub fn reason_of_io(e: &std::io::Error) -> Reason {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(tls) => reason_of(tls),
        None => match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => "eof",
            _ => "io",
        },
    }
}

/// The reason for a rustls error, from either side of a handshake.
pub fn reason_of(e: &rustls::Error) -> Reason {
    match e {
        rustls::Error::NoCertificatesPresented => "no-client-certificate",
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate-expired"
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate-not-yet-valid"
            }
            CertificateError::UnknownIssuer => "unknown-ca",
            CertificateError::ApplicationVerificationFailure => "identity-mismatch",
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "name-mismatch"
            }
            _ => "bad-certificate",
        },
        rustls::Error::AlertReceived(alert) => match alert {
            AlertDescription::UnknownCA => "peer-refused-unknown-ca",
            AlertDescription::CertificateExpired => "peer-refused-expired",
            AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRequired => "peer-refused-certificate",
            AlertDescription::ProtocolVersion
            | AlertDescription::HandshakeFailure
            | AlertDescription::NoApplicationProtocol => "incompatible",
            _ => "alert",
        },
        rustls::Error::PeerIncompatible(_) | rustls::Error::NoApplicationProtocol => "incompatible",
        rustls::Error::InvalidMessage(_)
        | rustls::Error::PeerMisbehaved(_)
        | rustls::Error::InappropriateHandshakeMessage { .. }
        | rustls::Error::InappropriateMessage { .. } => "protocol-error",
        _ => "other",
    }
}

/// Every reason [`accept`] and upstream handshakes report (documented in metrics.md).
pub const REASONS: &[Reason] = &[
    "plaintext",
    "timeout",
    "eof",
    "io",
    "no-client-certificate",
    "certificate-expired",
    "certificate-not-yet-valid",
    "unknown-ca",
    "identity-mismatch",
    "name-mismatch",
    "bad-certificate",
    "peer-refused-unknown-ca",
    "peer-refused-expired",
    "peer-refused-certificate",
    "incompatible",
    "alert",
    "protocol-error",
    "other",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_map_to_known_reasons() {
        let cases = [
            (
                rustls::Error::NoCertificatesPresented,
                "no-client-certificate",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::Expired),
                "certificate-expired",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                "unknown-ca",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure),
                "identity-mismatch",
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::UnknownCA),
                "peer-refused-unknown-ca",
            ),
        ];
        for (error, reason) in cases {
            assert_eq!(reason_of(&error), reason, "{error:?}");
            assert!(REASONS.contains(&reason));
            let io = std::io::Error::new(std::io::ErrorKind::InvalidData, error);
            assert_eq!(reason_of_io(&io), reason);
        }
    }
}
