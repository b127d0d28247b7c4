//! TLS to the control plane (`control_plane.tls`): the discovery stream runs over TLS
//! 1.2/1.3 with ALPN `h2`, the control plane's certificate verified like a cluster
//! endpoint's (against `ca`, then its SPIFFE ID in `identities`, else the server name),
//! and the proxy's client certificate presented for mTLS.
//!
//! The rustls config is built once at startup (`meshwork check` builds it too, so a bad
//! file is reported before the proxy runs); the identity's files, when they stand in for
//! `ca`/`cert`/`key`, are read live through the identity store and so follow rotation.

use std::sync::Arc;

use http::Uri;
use hyper_util::rt::TokioIo;
use meshwork_config::model::ControlPlane;
use rustls::AlertDescription;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::tls::ALPN_H2;
use crate::tls::client::{Origination, origination};
use crate::tls::handshake::{Reason, reason_of, reason_of_io};
use crate::tls::identity::IdentityStore;
use crate::tls::server::ServerTlsError;

/// The field path of the settings, for errors.
const SECTION: &str = "control_plane.tls";

/// How the proxy dials the control plane over TLS.
#[derive(Debug)]
pub struct ControlPlaneTls {
    origination: Origination,
    /// `tls.server_name`, else the host of `control_plane.address`.
    server_name: ServerName<'static>,
}

/// Why dialing the control plane failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("the address has no host")]
    NoHost,
    #[error("TCP connect to {address}: {source}")]
    Tcp {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS handshake with the control plane failed ({reason})")]
    Handshake {
        reason: Reason,
        #[source]
        source: std::io::Error,
    },
}

impl ControlPlaneTls {
    /// The TLS settings of `control_plane`, `None` without `tls` (plaintext h2c).
    ///
    /// # Errors
    /// A certificate, key or CA file that cannot be used (named, with the problem), a
    /// setting that needs the identity the config lacks, or a host that cannot be a TLS
    /// server name.
    pub fn build(
        control_plane: &ControlPlane,
        identity: Option<&Arc<IdentityStore>>,
    ) -> Result<Option<Self>, ServerTlsError> {
        let Some(tls) = &control_plane.tls else {
            return Ok(None);
        };
        let origination = origination(SECTION, tls, vec![ALPN_H2.to_vec()], identity)?;
        let server_name = match &origination.server_name {
            Some(name) => name.clone(),
            None => {
                let host =
                    host_of(&control_plane.address).ok_or_else(|| ServerTlsError::Invalid {
                        field: "control_plane.address".into(),
                        message: format!("{:?} has no host", control_plane.address),
                    })?;
                ServerName::try_from(host.clone()).map_err(|e| ServerTlsError::Invalid {
                    field: "control_plane.address".into(),
                    message: format!(
                        "{host:?} is not a valid TLS server name ({e}); set tls.server_name"
                    ),
                })?
            }
        };
        Ok(Some(Self {
            origination,
            server_name,
        }))
    }

    /// Dials `uri` (the control plane's address) and runs the TLS handshake; the
    /// connector tonic's channel uses.
    ///
    /// # Errors
    /// TCP or handshake failures ([`failure_reason`] finds the handshake's reason).
    pub async fn dial(
        self: Arc<Self>,
        uri: Uri,
    ) -> Result<TokioIo<TlsStream<TcpStream>>, DialError> {
        let host = uri.host().ok_or(DialError::NoHost)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(443);
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|source| DialError::Tcp {
                address: format!("{host}:{port}"),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let stream = tokio_rustls::TlsConnector::from(self.origination.config.clone())
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|source| DialError::Handshake {
                reason: reason_of_io(&source),
                source,
            })?;
        let (_, conn) = stream.get_ref();
        let identity = conn
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(crate::tls::spiffe::spiffe_id);
        tracing::debug!(
            server_name = ?self.server_name,
            identity = identity.as_deref().unwrap_or("-"),
            version = ?conn.protocol_version(),
            "TLS to the control plane established"
        );
        Ok(TokioIo::new(stream))
    }
}

/// The host of an `https://host:port` URL, without IPv6 brackets.
fn host_of(address: &str) -> Option<String> {
    let uri: Uri = address.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| host.to_string())
}

/// The TLS reason of a failed stream, if TLS is why it failed: a handshake refused on
/// either side, or (TLS 1.3, where the server checks the client certificate after the
/// client finished) an alert the control plane sent on the first read.
pub fn failure_reason(error: &(dyn std::error::Error + 'static)) -> Option<Reason> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(reason) = typed_reason(e).or_else(|| alert_in_text(&e.to_string())) {
            return Some(reason);
        }
        current = e.source();
    }
    None
}

fn typed_reason(e: &(dyn std::error::Error + 'static)) -> Option<Reason> {
    if let Some(DialError::Handshake { reason, .. }) = e.downcast_ref::<DialError>() {
        return Some(reason);
    }
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(reason_of(tls));
    }
    e.downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(reason_of)
}

/// An alert received after the handshake reaches the stream through h2, which keeps an
/// I/O error's kind and text but not the error itself: rustls's text names the alert
/// (`received fatal alert: CertificateRequired`).
fn alert_in_text(text: &str) -> Option<Reason> {
    let (_, after) = text.split_once("received fatal alert: ")?;
    let name: String = after
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    (0..=u8::MAX)
        .map(AlertDescription::from)
        .find(|alert| format!("{alert:?}") == name)
        .map(|alert| reason_of(&rustls::Error::AlertReceived(alert)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_the_server_name() {
        assert_eq!(
            host_of("https://control.mesh:18000").as_deref(),
            Some("control.mesh")
        );
        assert_eq!(host_of("https://[::1]:18000").as_deref(), Some("::1"));
        assert_eq!(host_of("https://127.0.0.1").as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn tls_reasons_are_found_down_the_error_chain() {
        let refused = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
        );
        let wrapped = DialError::Tcp {
            address: "a:1".into(),
            source: refused,
        };
        assert_eq!(failure_reason(&wrapped), Some("peer-refused-certificate"));
        let plain = DialError::Tcp {
            address: "a:1".into(),
            source: std::io::ErrorKind::ConnectionRefused.into(),
        };
        assert_eq!(failure_reason(&plain), None);
        // What h2 leaves of an alert read after the handshake: the text only.
        let text_only = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "received fatal alert: UnknownCA",
        );
        assert_eq!(failure_reason(&text_only), Some("peer-refused-unknown-ca"));
    }
}
