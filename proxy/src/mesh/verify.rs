//! The inbound side's check of a meshed peer's client certificate: chained to the trust
//! bundle of one identity generation (mandatory) and carrying a SPIFFE ID, so a refused
//! peer is told in the handshake (an alert), not by a closed connection.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use crate::tls::identity::IdentityMaterial;
use crate::tls::spiffe::spiffe_id;

/// Requires a client certificate from one generation's trust bundle with a SPIFFE ID.
#[derive(Debug)]
pub struct MeshClientVerifier(Arc<dyn ClientCertVerifier>);

impl MeshClientVerifier {
    /// Checks against `generation`'s bundle (the mesh configs are built per generation,
    /// so a handshake, and the session ticket it ends with, belong to one bundle).
    pub fn new(generation: &IdentityMaterial) -> Self {
        Self(generation.client_verifier(true))
    }
}

impl ClientCertVerifier for MeshClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    /// No CA names are sent (allowed by TLS, as for every identity listener).
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self.0.verify_client_cert(end_entity, intermediates, now)?;
        if spiffe_id(end_entity).is_none() {
            return Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
