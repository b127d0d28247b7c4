//! Meshed connections: when both ends of a connection run meshwork, the outbound side
//! originates mutual TLS to the peer's inbound port, offering only meshwork's own ALPN
//! ([`ALPN_MESH`]), and writes a small header ([`header::MeshHeader`]) naming the
//! original destination port and the protocol, so the inbound side never sniffs and
//! every hop is authenticated both ways with SPIFFE identities.
//!
//! The pieces, one job each:
//! - [`plan::MeshPlan`]: the snapshot's part (built from `mesh` and the identity): which
//!   destinations are meshed, the inbound mode, and the client and server rustls configs
//!   of the identity generation in use ([`generation::MeshTls`]), whose TLS 1.3 sessions
//!   are resumed between peers within that generation only;
//! - [`client_hello::peek_client_hello`]: SNI and ALPN of a ClientHello, peeked, so the
//!   auto listener can tell a meshed peer (or a TLS client to pass through) from the rest;
//! - [`connect::connect`]: the outbound side (TCP, mTLS, header);
//! - [`spare::Spares`]: the outbound side's handshakes done ahead of need, one warm
//!   spare per recently used peer, so a connection's handshake is off its critical path;
//! - [`accept::accept`]: the inbound side (mTLS with a client certificate required,
//!   header), and [`accept::AcceptFailures`] to count and log its refusals;
//! - [`verify::MeshClientVerifier`]: the inbound side's check that a client certificate
//!   carries a SPIFFE identity.
//!
//! Both sides present the live mesh identity and verify against its trust bundle, taken
//! per handshake: a rotation applies to the next connection, and ends every session
//! that could otherwise be resumed.

pub mod accept;
pub mod client_hello;
pub mod connect;
pub mod generation;
pub mod header;
pub mod plan;
pub mod spare;
pub mod verify;

pub use header::{MeshHeader, MeshProtocol};
pub use plan::MeshPlan;

/// meshwork's ALPN protocol id for a meshed connection (version 1 of the header). A
/// ClientHello offering it comes from a meshwork peer; a server that does not select it
/// is not one.
pub const ALPN_MESH: &[u8] = b"meshwork/1";

#[cfg(test)]
pub(crate) mod tests;
