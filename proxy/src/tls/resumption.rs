//! TLS 1.3 session resumption state of one identity generation: the server's session
//! ticket keys and the client's cache of tickets, created with an [`IdentityMaterial`]
//! and dropped with it.
//!
//! A resumed handshake skips the certificate checks (that is what it saves: no
//! signature, no chain or SPIFFE check, only the key exchange), so what it may resume is
//! bounded by what those checks would decide now:
//! - **one identity generation**: a rotation of the certificate or the trust bundle
//!   loads a new [`IdentityMaterial`] with new ticket keys and an empty client cache, so
//!   no session verified against an earlier bundle is resumed, on either side;
//! - **a bounded lifetime** ([`SESSION_LIFETIME`]), enforced by the server itself (the
//!   issue time travels inside the ticket's authenticated encryption), whatever age the
//!   client claims;
//! - **never 0-RTT**: early data is replayable; the mesh configs leave it off on both
//!   sides, and stateless tickets cannot carry it in rustls anyway.
//!
//! rustls resumes a client's session only under the very verifier and certificate
//! resolver objects that made it, so those live here too and every mesh config of the
//! generation (one per config snapshot) shares them.
//!
//! A ticket alone resumes nothing: the client must also prove it holds the session's
//! resumption secret (the PSK binder), and only the server that issued the ticket can
//! decrypt it. A resumed session carries the peer's certificate chain from the full
//! handshake (rustls restores it), so the peer's SPIFFE ID, and every authorization
//! decided from it, is the same as on a full handshake.
//!
//! [`IdentityMaterial`]: super::identity::IdentityMaterial

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::RootCertStore;
use rustls::client::ClientSessionMemoryCache;
use rustls::client::danger::ServerCertVerifier;
use rustls::server::ProducesTickets;
use rustls::sign::{CertifiedKey, SingleCertAndKey};

use super::spiffe::{Trust, UpstreamVerifier};

/// How long a session may be resumed after its full handshake: far below the validity
/// of a mesh certificate (SPIRE issues them for an hour, Linkerd for a day, and both
/// rotate at half-life), long enough that an app calling a peer now and then resumes.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// Peers whose tickets a client remembers (rustls keeps up to 8 tickets per peer and
/// evicts the oldest peer first): bounds the cache's memory whatever the app dials.
pub const CLIENT_SESSION_PEERS: usize = 256;

/// The resumption state of one identity generation.
#[derive(Debug)]
pub struct SessionState {
    /// The server side: encrypts and decrypts session tickets (keys made here).
    pub ticketer: Arc<dyn ProducesTickets>,
    /// The client side: tickets received from peers, keyed by the name dialed (a
    /// meshed peer's IP address).
    pub client_cache: Arc<ClientSessionMemoryCache>,
    /// The client side's check of a meshed peer: chained to this generation's bundle,
    /// any SPIFFE ID (peers are dialed by IP address; who it is gets recorded).
    pub peer_verifier: Arc<dyn ServerCertVerifier>,
    /// The certificate this generation presents, client side and server side.
    pub certificate: Arc<SingleCertAndKey>,
}

impl SessionState {
    /// Fresh ticket keys and an empty client cache, for the generation presenting
    /// `certified` and trusting `roots`.
    ///
    /// # Errors
    /// When the system's random source fails (the ticket key could not be made).
    pub fn new(
        certified: &Arc<CertifiedKey>,
        roots: &Arc<RootCertStore>,
    ) -> Result<Self, rustls::Error> {
        Ok(Self {
            peer_verifier: Arc::new(UpstreamVerifier::any_identity(Trust::Fixed(roots.clone()))),
            certificate: Arc::new(SingleCertAndKey::from(certified.clone())),
            ticketer: Arc::new(BoundedTicketer::new(
                rustls::crypto::ring::Ticketer::new()?,
                SESSION_LIFETIME,
                unix_now,
            )),
            client_cache: Arc::new(ClientSessionMemoryCache::new(
                CLIENT_SESSION_PEERS.saturating_mul(8),
            )),
        })
    }
}

/// Seconds since the Unix epoch now (0 before it: a clock that far off resumes nothing
/// anyway, since every ticket then looks issued in the future).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Size of the issue time written before the session inside a ticket.
const ISSUED_LEN: usize = 8;

/// Session tickets whose age the server checks: the issue time is sealed in the ticket
/// with the session (rustls's own ticketer encrypts and authenticates both; it rotates
/// its key every 6 hours and would otherwise accept a ticket up to 12 hours old).
pub struct BoundedTicketer {
    inner: Arc<dyn ProducesTickets>,
    lifetime_secs: u32,
    now: fn() -> u64,
}

impl std::fmt::Debug for BoundedTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedTicketer")
            .field("lifetime_secs", &self.lifetime_secs)
            .finish_non_exhaustive()
    }
}

impl BoundedTicketer {
    /// Tickets of `inner` accepted for `lifetime` after issue, by the clock `now` (Unix
    /// seconds).
    pub fn new(inner: Arc<dyn ProducesTickets>, lifetime: Duration, now: fn() -> u64) -> Self {
        Self {
            inner,
            lifetime_secs: u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX),
            now,
        }
    }
}

impl ProducesTickets for BoundedTicketer {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    /// The lifetime told to the client, which drops the ticket after it.
    fn lifetime(&self) -> u32 {
        self.lifetime_secs
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut sealed = Vec::with_capacity(ISSUED_LEN + plain.len());
        sealed.extend_from_slice(&(self.now)().to_be_bytes());
        sealed.extend_from_slice(plain);
        self.inner.encrypt(&sealed)
    }

    /// The session, unless the ticket is not ours, was tampered with, is older than the
    /// lifetime, or claims to be issued in the future.
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let mut sealed = self.inner.decrypt(cipher)?;
        let issued = u64::from_be_bytes(sealed.get(..ISSUED_LEN)?.try_into().ok()?);
        let age = (self.now)().checked_sub(issued)?;
        if age > u64::from(self.lifetime_secs) {
            return None;
        }
        sealed.drain(..ISSUED_LEN);
        Some(sealed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// The test clock (one per test binary; each test below sets it before use and
    /// the tests that read it run in one function, so they never race).
    static NOW: AtomicU64 = AtomicU64::new(0);

    fn test_now() -> u64 {
        NOW.load(Ordering::SeqCst)
    }

    fn ticketer() -> BoundedTicketer {
        BoundedTicketer::new(
            rustls::crypto::ring::Ticketer::new().unwrap(),
            Duration::from_secs(600),
            test_now,
        )
    }

    #[test]
    fn a_ticket_is_accepted_within_its_lifetime_and_refused_after_or_before_issue() {
        let tickets = ticketer();
        assert_eq!(tickets.lifetime(), 600);
        NOW.store(1_000_000, Ordering::SeqCst);
        let ticket = tickets.encrypt(b"session").unwrap();
        assert!(!ticket.windows(7).any(|w| w == b"session"), "sealed");
        NOW.store(1_000_600, Ordering::SeqCst);
        assert_eq!(tickets.decrypt(&ticket).as_deref(), Some(&b"session"[..]));
        NOW.store(1_000_601, Ordering::SeqCst);
        assert_eq!(tickets.decrypt(&ticket), None, "expired");
        NOW.store(999_999, Ordering::SeqCst);
        assert_eq!(tickets.decrypt(&ticket), None, "issued in the future");
    }

    #[test]
    fn another_generations_or_a_tampered_ticket_is_refused() {
        let (ours, theirs) = (
            BoundedTicketer::new(
                rustls::crypto::ring::Ticketer::new().unwrap(),
                SESSION_LIFETIME,
                unix_now,
            ),
            BoundedTicketer::new(
                rustls::crypto::ring::Ticketer::new().unwrap(),
                SESSION_LIFETIME,
                unix_now,
            ),
        );
        let ticket = ours.encrypt(b"session").unwrap();
        assert_eq!(ours.decrypt(&ticket).as_deref(), Some(&b"session"[..]));
        assert_eq!(theirs.decrypt(&ticket), None, "other keys");
        let mut tampered = ticket.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(ours.decrypt(&tampered), None, "tampered");
    }
}
