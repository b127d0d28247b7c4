//! TLS with rustls and its `ring` provider: certificate files, the server side of
//! listeners (SNI, ALPN, client certificates), the client side of clusters (SPIFFE
//! identity verification), the live mesh identity, and handshake failure reasons.
//!
//! Every rustls config object is built when a snapshot is built, never per connection;
//! the parts that follow the mesh identity read it through [`identity::IdentityStore`],
//! which a file watcher swaps atomically on rotation.

pub mod client;
pub mod files;
pub mod handshake;
pub mod identity;
pub mod plan;
pub mod server;
pub mod spiffe;
pub mod watch;

use std::sync::{Arc, OnceLock};

use rustls::SupportedProtocolVersion;
use rustls::crypto::CryptoProvider;

pub use plan::TlsPlan;

/// TLS 1.3 and 1.2 only: older versions are refused in the handshake.
pub static PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// ALPN protocol ids.
pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The process's crypto provider (ring), built once.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}
