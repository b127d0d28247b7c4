//! TLS on the discovery port (`--tls-cert`, `--tls-key`, `--client-ca`): proxies connect
//! with TLS 1.2/1.3 and ALPN `h2`; with `--client-ca` each must present a certificate
//! chaining to it (mTLS), or the handshake is refused.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use meshwork_tls::files::{self, TlsFileError};
use meshwork_tls::reason::{Reason, reason_of_io};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::SingleCertAndKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// The first byte of a TLS record carrying a handshake message.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// How long a refused proxy has to read the alert before the connection is dropped.
const LINGER: Duration = Duration::from_secs(1);

/// How long a proxy may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS files of the discovery port.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Require client certificates chaining to this bundle (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// Why the TLS settings cannot be used: the flag, the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("{flag}: {error}")]
    File {
        flag: &'static str,
        error: TlsFileError,
    },
    #[error("{flag}: {message}")]
    Invalid { flag: &'static str, message: String },
}

/// Reads the files and builds the server config.
///
/// # Errors
/// A file that cannot be read or used, a key that does not match the certificate.
pub fn server_config(tls: &TlsFiles) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let certified = files::certified_key(&tls.cert, &tls.key).map_err(|error| {
        let flag = if error.path == tls.key {
            "--tls-key"
        } else {
            "--tls-cert"
        };
        TlsSetupError::File { flag, error }
    })?;
    let verifier = match &tls.client_ca {
        None => WebPkiClientVerifier::no_client_auth(),
        Some(ca) => {
            let roots = files::read_roots(ca).map_err(|error| TlsSetupError::File {
                flag: "--client-ca",
                error,
            })?;
            WebPkiClientVerifier::builder_with_provider(roots, meshwork_tls::provider())
                .build()
                .map_err(|e| TlsSetupError::Invalid {
                    flag: "--client-ca",
                    message: format!("cannot verify client certificates with this bundle: {e}"),
                })?
        }
    };
    let mut config = ServerConfig::builder_with_provider(meshwork_tls::provider())
        .with_protocol_versions(meshwork_tls::PROTOCOL_VERSIONS)
        .map_err(|e| TlsSetupError::Invalid {
            flag: "--tls-cert",
            message: e.to_string(),
        })?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![meshwork_tls::ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// A proxy's connection after its handshake, and who it proved to be.
#[derive(Debug)]
pub struct Accepted {
    pub stream: TlsStream<TcpStream>,
    /// The SPIFFE ID of its verified client certificate.
    pub identity: Option<String>,
}

/// Runs the server side of the handshake.
///
/// # Errors
/// Why the handshake failed (a reason, and the detail), e.g. `no-client-certificate`.
pub async fn accept(
    stream: TcpStream,
    config: Arc<ServerConfig>,
    peer: SocketAddr,
) -> Result<Accepted, (Reason, String)> {
    let handshake = async {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(0) => return Err(("eof", "closed before the handshake".to_string())),
            Ok(_) if first[0] != TLS_HANDSHAKE_RECORD => {
                return Err((
                    "plaintext",
                    "not a TLS handshake: is the proxy's control_plane.address http:// \
                     instead of https://?"
                        .to_string(),
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(("io", e.to_string())),
        }
        match tokio_rustls::TlsAcceptor::from(config)
            .accept(stream)
            .into_fallible()
            .await
        {
            Ok(stream) => Ok(stream),
            Err((e, tcp)) => {
                close_after_alert(tcp).await;
                Err((reason_of_io(&e), e.to_string()))
            }
        }
    };
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(failed)) => return Err(failed),
        Err(_) => {
            return Err((
                "timeout",
                format!("{peer}: handshake not finished within {HANDSHAKE_TIMEOUT:?}"),
            ));
        }
    };
    let identity = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(meshwork_tls::spiffe::spiffe_id);
    Ok(Accepted { stream, identity })
}

/// Closes a connection whose handshake failed so the proxy reads the alert saying why.
///
/// With TLS 1.3 the proxy's certificate is checked after the proxy finished its side, and
/// its first HTTP/2 bytes are already on the way: closing a socket with unread bytes
/// sends a reset, which can discard the alert before the proxy reads it. Shutting down
/// the write side first (the alert, then FIN) and reading what is left, briefly, avoids
/// that.
async fn close_after_alert(mut tcp: TcpStream) {
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &std::path::Path) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["control.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (dir.join("c.pem"), dir.join("k.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    #[test]
    fn a_usable_pair_builds_and_each_bad_file_is_named_with_its_flag() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path());
        let ok = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: Some(cert.clone()),
        };
        let config = server_config(&ok).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);

        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello\n").unwrap();
        let bad_key = TlsFiles {
            key: junk.clone(),
            ..ok.clone()
        };
        let e = server_config(&bad_key).unwrap_err().to_string();
        assert!(
            e.starts_with("--tls-key: ") && e.contains("junk.pem: no private key found"),
            "{e}"
        );
        let bad_ca = TlsFiles {
            client_ca: Some(dir.path().join("missing.pem")),
            ..ok
        };
        let e = server_config(&bad_ca).unwrap_err().to_string();
        assert!(
            e.starts_with("--client-ca: ") && e.contains("missing.pem: cannot read"),
            "{e}"
        );
    }
}
