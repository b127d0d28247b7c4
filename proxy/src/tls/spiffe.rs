//! SPIFFE identities: reading them from a certificate's URI SAN, and the verifier of
//! upstream certificates that checks the chain and then the identity (or the name).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};

use super::identity::IdentityStore;

pub use meshwork_tls::spiffe::{spiffe_id, spiffe_ids};

/// Where trust anchors come from: a fixed CA file, or the live mesh identity's bundle.
#[derive(Clone, Debug)]
pub enum Trust {
    Fixed(Arc<RootCertStore>),
    Identity(Arc<IdentityStore>),
}

impl Trust {
    /// The anchors to verify against now (the identity's may rotate).
    pub fn roots(&self) -> Result<Arc<RootCertStore>, Error> {
        match self {
            Trust::Fixed(roots) => Ok(roots.clone()),
            Trust::Identity(store) => store
                .current()
                .map(|m| m.roots.clone())
                .ok_or_else(|| Error::General("no mesh identity is loaded".into())),
        }
    }
}

/// Verifies an upstream's certificate: it must chain to the trust anchors, and then
/// either carry one of `identities` in its URI SAN (the peer's identity is what counts,
/// as in Linkerd and Istio; the DNS name is not checked) or, without `identities`, be
/// valid for the server name dialed.
#[derive(Debug)]
pub struct UpstreamVerifier {
    trust: Trust,
    expected: Expected,
    provider: Arc<CryptoProvider>,
}

/// What an upstream's certificate must name, besides chaining to the anchors.
#[derive(Debug)]
enum Expected {
    /// The server name dialed.
    ServerName,
    /// One of these SPIFFE IDs.
    Identities(Vec<String>),
    /// Any SPIFFE ID (a meshed peer, addressed by IP: who it is gets recorded).
    AnyIdentity,
}

impl UpstreamVerifier {
    pub fn new(trust: Trust, identities: Vec<String>) -> Self {
        let expected = if identities.is_empty() {
            Expected::ServerName
        } else {
            Expected::Identities(identities)
        };
        Self {
            trust,
            expected,
            provider: super::provider(),
        }
    }

    /// Accepts a certificate chaining to `trust` that carries any SPIFFE ID, whatever
    /// the name dialed (meshed peers are dialed by IP address).
    pub fn any_identity(trust: Trust) -> Self {
        Self {
            trust,
            expected: Expected::AnyIdentity,
            provider: super::provider(),
        }
    }
}

impl ServerCertVerifier for UpstreamVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        let roots = self.trust.roots()?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let accepted = match &self.expected {
            Expected::ServerName => {
                rustls::client::verify_server_name(&parsed, server_name)?;
                true
            }
            Expected::Identities(identities) => {
                let presented = spiffe_ids(end_entity);
                let found = presented.iter().any(|id| identities.contains(id));
                if !found {
                    tracing::debug!(
                        ?presented,
                        expected = ?identities,
                        "upstream certificate does not carry an accepted identity"
                    );
                }
                found
            }
            Expected::AnyIdentity => spiffe_id(end_entity).is_some(),
        };
        if !accepted {
            return Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spiffe_id_is_read_from_the_uri_san() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["web.internal".into()]).unwrap();
        params.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://cluster.local/ns/prod/sa/web".try_into().unwrap(),
        ));
        params.subject_alt_names.push(rcgen::SanType::URI(
            "https://example.com/".try_into().unwrap(),
        ));
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            spiffe_ids(cert.der()),
            vec!["spiffe://cluster.local/ns/prod/sa/web".to_string()]
        );
        let plain = rcgen::CertificateParams::new(vec!["a".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(spiffe_id(plain.der()), None);
    }
}
