//! Why a TLS handshake failed, as one of a small fixed set of reasons (a metric label and
//! a log field), from either side of it.

use rustls::{AlertDescription, CertificateError};

/// Why a handshake failed: one of [`REASONS`].
pub type Reason = &'static str;

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

/// Every reason reported (documented in the proxy's metrics.md).
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
