//! The server side of a TLS listener: the certificate picked by SNI, client certificate
//! verification, ALPN and protocol versions, built into one `ServerConfig`.

use std::collections::HashMap;
use std::sync::Arc;

use meshwork_config::model::{ClientAuth, HostMatch, ListenerProtocol, ListenerTls};
use rustls::ServerConfig;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

use super::identity::{IdentityCert, IdentityClientVerifier, IdentityStore};
use super::{ALPN_H2, ALPN_HTTP1, files};

/// Picks the certificate for a handshake by SNI: an exact name first, then the longest
/// matching `*.suffix`, else the first certificate (also for clients sending no SNI).
#[derive(Debug)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `(suffix with its leading dot, cert)`, longest suffix first.
    wildcards: Vec<(String, Arc<CertifiedKey>)>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    /// `certs` in config order, each with its names; the first is the default.
    pub fn new(certs: Vec<(Arc<CertifiedKey>, Vec<HostMatch>)>) -> Option<Self> {
        let default = certs.first()?.0.clone();
        let mut exact = HashMap::new();
        let mut wildcards = Vec::new();
        for (cert, names) in certs {
            for name in names {
                match name {
                    HostMatch::Exact(host) => {
                        exact
                            .entry(host.to_ascii_lowercase())
                            .or_insert_with(|| cert.clone());
                    }
                    HostMatch::Wildcard(suffix) => {
                        wildcards.push((suffix.to_ascii_lowercase(), cert.clone()));
                    }
                }
            }
        }
        // Stable: among equal lengths, the earlier certificate wins.
        wildcards.sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        Some(Self {
            exact,
            wildcards,
            default,
        })
    }

    pub fn pick(&self, server_name: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = server_name else {
            return &self.default;
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(cert) = self.exact.get(&name) {
            return cert;
        }
        self.wildcards
            .iter()
            .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(suffix.as_str()))
            .map_or(&self.default, |(_, cert)| cert)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()).clone())
    }
}

/// Why a listener's TLS settings could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ServerTlsError {
    #[error("{field}: {source}")]
    File {
        field: String,
        source: files::TlsFileError,
    },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

/// Builds the `ServerConfig` of listener number `index`. Certificate files are read
/// now; a listener without certificates (or client CA) uses the mesh identity.
///
/// # Errors
/// A file that cannot be used, or a setting that needs an identity the config lacks.
pub fn server_config(
    index: usize,
    tls: &ListenerTls,
    protocol: &ListenerProtocol,
    identity: Option<&Arc<IdentityStore>>,
) -> Result<Arc<ServerConfig>, ServerTlsError> {
    let at = |field: &str| format!("listeners[{index}].tls.{field}");
    let resolver: Arc<dyn ResolvesServerCert> = if tls.certificates.is_empty() {
        let store = identity.ok_or_else(|| ServerTlsError::Invalid {
            field: at("certificates"),
            message: "no certificates and no identity to serve".into(),
        })?;
        Arc::new(IdentityCert(store.clone()))
    } else {
        let mut certs = Vec::with_capacity(tls.certificates.len());
        for (i, c) in tls.certificates.iter().enumerate() {
            let key =
                files::certified_key(&c.cert, &c.key).map_err(|source| ServerTlsError::File {
                    field: at(&format!("certificates[{i}]")),
                    source,
                })?;
            certs.push((key, c.server_names.clone()));
        }
        Arc::new(SniResolver::new(certs).expect("at least one certificate"))
    };
    let verifier: Arc<dyn ClientCertVerifier> = match (tls.client_auth, &tls.client_ca) {
        (ClientAuth::None, _) => WebPkiClientVerifier::no_client_auth(),
        (auth, Some(ca)) => {
            let roots = files::read_roots(ca).map_err(|source| ServerTlsError::File {
                field: at("client_ca"),
                source,
            })?;
            let builder = WebPkiClientVerifier::builder_with_provider(roots, super::provider());
            let builder = if auth == ClientAuth::Optional {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder.build().map_err(|e| ServerTlsError::Invalid {
                field: at("client_ca"),
                message: format!("cannot verify client certificates with this bundle: {e}"),
            })?
        }
        (auth, None) => {
            let store = identity.ok_or_else(|| ServerTlsError::Invalid {
                field: at("client_ca"),
                message: "no client_ca and no identity trust bundle".into(),
            })?;
            Arc::new(IdentityClientVerifier {
                store: store.clone(),
                mandatory: auth == ClientAuth::Required,
            })
        }
    };
    let mut config = ServerConfig::builder_with_provider(super::provider())
        .with_protocol_versions(super::PROTOCOL_VERSIONS)
        .map_err(|e| ServerTlsError::Invalid {
            field: at(""),
            message: e.to_string(),
        })?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver);
    config.alpn_protocols = match protocol {
        ListenerProtocol::Http { .. } => vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()],
        ListenerProtocol::Tcp { .. } | ListenerProtocol::Auto { .. } => Vec::new(),
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Arc<CertifiedKey> {
        let pair = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.into()])
            .unwrap()
            .self_signed(&pair)
            .unwrap();
        let der = rustls::pki_types::PrivateKeyDer::try_from(pair.serialize_der()).unwrap();
        let signing = crate::tls::provider()
            .key_provider
            .load_private_key(der)
            .unwrap();
        Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing))
    }

    #[test]
    fn sni_prefers_exact_then_longest_wildcard_then_the_first() {
        let (first, api, wild, deep) = (key("f"), key("a"), key("w"), key("d"));
        let resolver = SniResolver::new(vec![
            (first.clone(), vec![HostMatch::Exact("first.test".into())]),
            (
                api.clone(),
                vec![HostMatch::Exact("api.example.com".into())],
            ),
            (
                wild.clone(),
                vec![HostMatch::Wildcard(".example.com".into())],
            ),
            (
                deep.clone(),
                vec![HostMatch::Wildcard(".eu.example.com".into())],
            ),
        ])
        .unwrap();
        assert!(Arc::ptr_eq(resolver.pick(Some("API.example.com")), &api));
        assert!(Arc::ptr_eq(resolver.pick(Some("www.example.com")), &wild));
        assert!(Arc::ptr_eq(resolver.pick(Some("x.eu.example.com")), &deep));
        assert!(Arc::ptr_eq(resolver.pick(Some("example.com")), &first));
        assert!(Arc::ptr_eq(resolver.pick(Some("other.test")), &first));
        assert!(Arc::ptr_eq(resolver.pick(None), &first));
    }
}
