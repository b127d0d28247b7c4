//! TLS with rustls and its `ring` provider: certificate files, the server side of
//! listeners (SNI, ALPN, client certificates), the client side of clusters (SPIFFE
//! identity verification), the live mesh identity, and handshake failure reasons.
//!
//! Every rustls config object is built when a snapshot is built (the mesh's: per identity
//! generation), never per connection;
//! the parts that follow the mesh identity read it through [`identity::IdentityStore`],
//! which a file watcher swaps atomically on rotation.

pub mod client;
pub mod handshake;
pub mod identity;
pub mod plan;
pub mod resumption;
pub mod server;
pub mod spiffe;
pub mod watch;

pub use meshwork_tls::{ALPN_H2, ALPN_HTTP1, PROTOCOL_VERSIONS, files, provider};
pub use plan::TlsPlan;
