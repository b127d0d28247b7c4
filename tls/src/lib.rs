//! TLS pieces the proxy and the control plane share: the crypto provider (rustls with
//! `ring`), the protocol versions allowed, reading PEM files with errors that name the
//! file and the problem, reading SPIFFE IDs out of certificates, and the server side of a
//! handshake, whose refusals reach the client as alerts rather than resets.
#![forbid(unsafe_code)]

pub mod accept;
pub mod files;
pub mod reason;
pub mod spiffe;

use std::sync::{Arc, OnceLock};

use rustls::SupportedProtocolVersion;
use rustls::crypto::CryptoProvider;

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
