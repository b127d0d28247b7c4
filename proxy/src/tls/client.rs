//! The client side of a cluster's (or the control plane's) `tls`: trust anchors, the
//! client certificate, the accepted identities and ALPN, built into one `ClientConfig`.

use std::sync::Arc;

use meshwork_config::model::{Address, ClientTls, UpstreamProtocol};
use rustls::ClientConfig;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::ServerName;

use super::identity::{IdentityCert, IdentityStore};
use super::server::ServerTlsError;
use super::spiffe::{Trust, UpstreamVerifier};
use super::{ALPN_H2, ALPN_HTTP1, files};

/// What an endpoint connector needs to originate TLS.
#[derive(Clone, Debug)]
pub struct Origination {
    pub config: Arc<ClientConfig>,
    /// The configured `server_name` (else each endpoint's host is used).
    pub server_name: Option<ServerName<'static>>,
}

impl Origination {
    /// The name sent in SNI and (without `identities`) verified for `endpoint`.
    ///
    /// # Errors
    /// When the endpoint's host is neither a DNS name nor an IP address.
    pub fn server_name_for(&self, endpoint: &Address) -> Result<ServerName<'static>, String> {
        if let Some(name) = &self.server_name {
            return Ok(name.clone());
        }
        ServerName::try_from(endpoint.host.clone())
            .map_err(|e| format!("{:?} is not a valid TLS server name: {e}", endpoint.host))
    }
}

/// The ALPN protocols offered to a cluster's endpoints.
pub fn alpn_for(protocol: UpstreamProtocol) -> Vec<Vec<u8>> {
    match protocol {
        UpstreamProtocol::Http1 => vec![ALPN_HTTP1.to_vec()],
        UpstreamProtocol::Http2 => vec![ALPN_H2.to_vec()],
        UpstreamProtocol::Auto => vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()],
    }
}

/// Builds origination settings from the `tls` section at `section` (its field path, for
/// errors: `clusters[0].tls`, `control_plane.tls`), offering `alpn`.
///
/// # Errors
/// A file that cannot be used, or a setting that needs an identity the config lacks.
pub fn origination(
    section: &str,
    tls: &ClientTls,
    alpn: Vec<Vec<u8>>,
    identity: Option<&Arc<IdentityStore>>,
) -> Result<Origination, ServerTlsError> {
    build(section, tls, alpn, identity, None)
}

/// Origination to a server outside the mesh (the OTLP collector): trusts `tls.ca` when
/// set, else the system's trust store (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured),
/// as curl and the OpenTelemetry SDKs do. No mesh identity is presented or trusted.
///
/// # Errors
/// A file that cannot be used, or a system trust store without a usable certificate.
pub fn origination_outside_mesh(
    section: &str,
    tls: &ClientTls,
    alpn: Vec<Vec<u8>>,
) -> Result<Origination, ServerTlsError> {
    let system = match &tls.ca {
        Some(_) => None,
        None => Some(Trust::Fixed(system_roots().map_err(|message| {
            ServerTlsError::Invalid {
                field: format!("{section}.ca"),
                message,
            }
        })?)),
    };
    build(section, tls, alpn, None, system)
}

/// The system's trust anchors; certificates it cannot use are skipped.
fn system_roots() -> Result<Arc<rustls::RootCertStore>, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(format!(
            "no usable CA certificate in the system trust store{why} (set `ca`)"
        ));
    }
    Ok(Arc::new(roots))
}

/// `trust`: where anchors come from when not from `tls.ca` or the identity (`None`:
/// those only).
fn build(
    section: &str,
    tls: &ClientTls,
    alpn: Vec<Vec<u8>>,
    identity: Option<&Arc<IdentityStore>>,
    trust: Option<Trust>,
) -> Result<Origination, ServerTlsError> {
    let at = |field: &str| {
        if field.is_empty() {
            section.to_string()
        } else {
            format!("{section}.{field}")
        }
    };
    let trust = match (&tls.ca, identity, trust) {
        (Some(ca), _, _) => {
            Trust::Fixed(
                files::read_roots(ca).map_err(|source| ServerTlsError::File {
                    field: at("ca"),
                    source,
                })?,
            )
        }
        (None, _, Some(trust)) => trust,
        (None, Some(store), None) => Trust::Identity(store.clone()),
        (None, None, None) => {
            return Err(ServerTlsError::Invalid {
                field: at("ca"),
                message: "no ca and no identity trust bundle".into(),
            });
        }
    };
    let client_cert: Option<Arc<dyn ResolvesClientCert>> = match (&tls.cert, &tls.key, identity) {
        (Some(cert), Some(key), _) => {
            let certified =
                files::certified_key(cert, key).map_err(|source| ServerTlsError::File {
                    field: at("cert"),
                    source,
                })?;
            Some(Arc::new(FixedClientCert(certified)))
        }
        (None, None, Some(store)) => Some(Arc::new(IdentityCert(store.clone()))),
        _ => None,
    };
    let builder = ClientConfig::builder_with_provider(super::provider())
        .with_protocol_versions(super::PROTOCOL_VERSIONS)
        .map_err(|e| ServerTlsError::Invalid {
            field: at(""),
            message: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(UpstreamVerifier::new(
            trust,
            tls.identities.clone(),
        )));
    let mut config = match client_cert {
        Some(resolver) => builder.with_client_cert_resolver(resolver),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn;
    let server_name = match &tls.server_name {
        Some(name) => {
            Some(
                ServerName::try_from(name.clone()).map_err(|e| ServerTlsError::Invalid {
                    field: at("server_name"),
                    message: format!("{name:?} is not a valid TLS server name: {e}"),
                })?,
            )
        }
        None => None,
    };
    Ok(Origination {
        config: Arc::new(config),
        server_name,
    })
}

/// Presents the cluster's own client certificate.
#[derive(Debug)]
struct FixedClientCert(Arc<rustls::sign::CertifiedKey>);

impl ResolvesClientCert for FixedClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
