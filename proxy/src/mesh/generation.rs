//! The rustls configs of both sides of a meshed connection for one identity generation
//! (certificate, key, trust bundle, session ticket keys and client ticket cache), and the
//! plan's slot that rebuilds them when the identity rotates.
//!
//! Everything a handshake uses comes from one generation: the certificate presented,
//! the bundle the peer is checked against, the ticket key that seals the session at the
//! end and the cache a client keeps the ticket in. So a session is only ever resumed
//! under the generation that verified it, and a rotation (a new certificate, or a
//! bundle that drops a CA) sends every peer through a full handshake again.

use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use rustls::client::Resumption;
use rustls::client::Tls12Resumption;
use rustls::{ClientConfig, ServerConfig};

use super::ALPN_MESH;
use super::verify::MeshClientVerifier;
use crate::tls::identity::{IdentityMaterial, IdentityStore};

/// Session tickets a server sends after a handshake: one for the next connection and one
/// for the warm spare made alongside it (`spare.rs`). Each resumed connection brings
/// new ones, and a client never offers a ticket twice.
const TICKETS_PER_HANDSHAKE: usize = 2;

/// Why a meshed handshake cannot start.
#[derive(Debug, thiserror::Error)]
pub enum MeshTlsError {
    /// The config has a `mesh` and therefore an `identity` (validation sees to it), so
    /// this is only seen if that ever stops holding.
    #[error("no mesh identity is loaded")]
    NoIdentity,
    #[error("mesh TLS settings: {0}")]
    Config(#[source] rustls::Error),
}

/// Both sides' configs for one identity generation.
#[derive(Debug)]
pub struct MeshTls {
    /// The generation they were built from (compared by pointer: a rotation loads a new
    /// one).
    pub generation: Arc<IdentityMaterial>,
    /// The outbound side: the identity as client certificate, peers verified against the
    /// bundle and required to carry a SPIFFE ID, ALPN [`ALPN_MESH`] only, sessions
    /// resumed from this generation's cache.
    pub client: Arc<ClientConfig>,
    /// The inbound side: the identity certificate, a client certificate required
    /// (bundle, SPIFFE ID), ALPN [`ALPN_MESH`] only, tickets sealed with this
    /// generation's keys.
    pub server: Arc<ServerConfig>,
}

impl MeshTls {
    /// The configs of `generation`.
    ///
    /// # Errors
    /// When rustls refuses the protocol versions (not with the built-in provider).
    pub fn build(generation: Arc<IdentityMaterial>) -> Result<Self, MeshTlsError> {
        let provider = mesh_provider();
        let sessions = &generation.sessions;
        let mut client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(MeshTlsError::Config)?
            .dangerous()
            .with_custom_certificate_verifier(sessions.peer_verifier.clone())
            .with_client_cert_resolver(sessions.certificate.clone());
        client.alpn_protocols = vec![ALPN_MESH.to_vec()];
        client.resumption = Resumption::store(sessions.client_cache.clone())
            .tls12_resumption(Tls12Resumption::Disabled);
        // Early data is replayable by whoever saw it: never (the default, said here).
        client.enable_early_data = false;
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(MeshTlsError::Config)?
            .with_client_cert_verifier(Arc::new(MeshClientVerifier::new(&generation)))
            .with_cert_resolver(sessions.certificate.clone());
        server.alpn_protocols = vec![ALPN_MESH.to_vec()];
        // Stateless tickets, sealed with the generation's keys and checked for age
        // (`tls/resumption.rs`); nothing is stored per session on this side.
        server.ticketer = sessions.ticketer.clone();
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        server.send_tls13_tickets = TICKETS_PER_HANDSHAKE;
        server.max_early_data_size = 0;
        Ok(Self {
            client: Arc::new(client),
            server: Arc::new(server),
            generation,
        })
    }
}

/// The crypto provider of meshed connections: the process's, with
/// `TLS13_AES_128_GCM_SHA256` preferred over the default's `TLS13_AES_256_GCM_SHA384`.
///
/// Both ends are meshwork, so no peer needs the 256-bit suite, and the SHA-384 key
/// schedule is a cost of every handshake, resumed ones included: profiled on both
/// sidecars of a meshed connection per greeting, SHA-512's block function was 6.7% of
/// their samples on a CPU with SHA-256 instructions and none for SHA-512. The other
/// suites stay listed (in the default's order after it), so a peer that lacks it still
/// meets this one.
fn mesh_provider() -> Arc<rustls::crypto::CryptoProvider> {
    static MESH: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    MESH.get_or_init(|| {
        let mut provider = (*crate::tls::provider()).clone();
        let preferred = rustls::CipherSuite::TLS13_AES_128_GCM_SHA256;
        provider
            .cipher_suites
            .sort_by_key(|suite| suite.suite() != preferred);
        Arc::new(provider)
    })
    .clone()
}

/// A plan's configs, rebuilt for the identity in use when it has rotated.
#[derive(Debug)]
pub(super) struct MeshTlsSlot {
    identity: Arc<IdentityStore>,
    built: ArcSwapOption<MeshTls>,
}

impl MeshTlsSlot {
    pub(super) fn new(identity: Arc<IdentityStore>) -> Self {
        Self {
            identity,
            built: ArcSwapOption::empty(),
        }
    }

    /// The configs of the identity in use now (built on first use after a rotation; two
    /// handshakes that race to build them build equal ones).
    ///
    /// # Errors
    /// See [`MeshTlsError`].
    pub(super) fn current(&self) -> Result<Arc<MeshTls>, MeshTlsError> {
        let generation = self.identity.current().ok_or(MeshTlsError::NoIdentity)?;
        let built = self.built.load_full();
        if let Some(built) = built.filter(|b| Arc::ptr_eq(&b.generation, &generation)) {
            return Ok(built);
        }
        let built = Arc::new(MeshTls::build(generation)?);
        self.built.store(Some(built.clone()));
        Ok(built)
    }
}
