//! TLS on the discovery port (`--tls-cert`, `--tls-key`, `--client-ca`): proxies connect
//! with TLS 1.2/1.3 and ALPN `h2`; with `--client-ca` each must present a certificate
//! chaining to it (mTLS), or the handshake is refused.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use meshwork_tls::accept::Refused;
use meshwork_tls::files::{self, TlsFileError};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::SingleCertAndKey;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

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
/// Why the handshake failed (a reason, e.g. `no-client-certificate`, and the detail); the
/// caller reports it, then [`Refused::close`]s the connection so the proxy reads the
/// alert saying why.
pub async fn accept(stream: TcpStream, config: Arc<ServerConfig>) -> Result<Accepted, Refused> {
    let stream = meshwork_tls::accept::accept(stream, config, HANDSHAKE_TIMEOUT)
        .await
        .map_err(|mut refused| {
            if refused.reason == "plaintext" {
                refused.detail.push_str(
                    ": is the proxy's control_plane.address http:// instead of https://?",
                );
            }
            refused
        })?;
    let identity = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(meshwork_tls::spiffe::spiffe_id);
    Ok(Accepted { stream, identity })
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
