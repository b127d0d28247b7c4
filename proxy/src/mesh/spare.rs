//! Meshed handshakes done ahead of need: one warm spare per recently used peer.
//!
//! A meshed connection's cost is its handshake: TCP, then TLS 1.3 with ECDHE, a
//! signature and a chain plus SPIFFE check on each side, and their round trips — about
//! a millisecond between two sidecars, on the critical path of every connection. The
//! header is what makes a connection specific (the port and protocol), and it is sent
//! after the handshake, so a handshake can be made before anyone needs it: whenever a
//! connection to a peer is made, another handshake to that peer starts in the
//! background and is kept, header unsent, for the next connection to it.
//!
//! Spares and TLS session resumption (`tls/resumption.rs`) work together: a spare
//! takes the handshake off the connection's path in time, round trips included, and
//! resumption takes most of its CPU away (no signature, no certificate check, within
//! one identity generation). Without resumption a spare does not remove the CPU: with
//! connections back to back and no idle time between them, the spare's handshake runs
//! while the connection in flight is relayed and costs it as much (bench/RESULTS.md).
//!
//! Bounds, so a spare costs the peer nothing it would not accept from any meshed client:
//! - one per peer (its inbound address), for at most [`MAX_SPARE_PEERS`] peers;
//! - kept at most [`SPARE_LIFETIME`], well within the [`MESH_HANDSHAKE_TIMEOUT`] the
//!   peer gives a client for its handshake and header together, then closed — the
//!   peer sees a connection closed before its header began, which it does not count as
//!   a refusal;
//! - made with the identity in use: after a rotation a spare is not used (the next
//!   connection presents the new certificate), nor one the peer closed or refused
//!   since;
//! - a spare is a meshed connection like any other to the peer, whatever its
//!   `mesh.inbound` (`strict` and `permissive` both accept meshed peers), and its
//!   authorization is decided when the header says what it is for.
//!
//! The handshake under way is shared too: a connection that finds one waits for it (it
//! started first), and one that gives up waiting (a raced connection whose client
//! turned out to speak HTTP) leaves it to become the spare — which the HTTP path's own
//! connection to the peer then takes.
//!
//! [`MESH_HANDSHAKE_TIMEOUT`]: super::accept::MESH_HANDSHAKE_TIMEOUT

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus::IntCounterVec;
use tokio::sync::oneshot;

use super::MeshPlan;
use super::connect::{ConnectError, Handshaken, handshake};

/// How long a spare is kept unused: far below the peer's deadline for the header
/// ([`super::accept::MESH_HANDSHAKE_TIMEOUT`], 10 s), long enough to catch the next
/// connection of an app that calls a peer more than once in a while.
pub const SPARE_LIFETIME: Duration = Duration::from_secs(5);

/// Peers with a spare (or a handshake under way) at once: bounds the connections and
/// tasks spares take, whatever the app dials.
pub const MAX_SPARE_PEERS: usize = 256;

/// The result a handshake under way hands to the connection that waits for it.
type Delivery = oneshot::Sender<Result<Handshaken, ConnectError>>;

/// A peer's spare, as far as it got.
enum Slot {
    /// The handshake is under way; `taker` gets it when done, if it still waits.
    Filling { id: u64, taker: Option<Delivery> },
    /// Done, header unsent, kept until taken or expired (boxed: a TLS stream is large).
    Ready { id: u64, spare: Box<Handshaken> },
}

/// What a connection to a peer starts from.
#[derive(Debug)]
pub enum Claim {
    /// The peer's spare: its handshake is done.
    Ready(Box<Handshaken>),
    /// A handshake under way, its result (success or failure) delivered here.
    Wait(oneshot::Receiver<Result<Handshaken, ConnectError>>),
    /// Nothing to take and no room to start one in the background (too many peers, or
    /// another connection already waits for the one under way): handshake inline.
    Inline,
}

/// The spares of one mesh plan, keyed by peer (its inbound address).
pub struct Spares {
    slots: Mutex<HashMap<SocketAddr, Slot>>,
    next_id: AtomicU64,
    /// `meshwork_mesh_spares_total`, by outcome.
    outcomes: IntCounterVec,
}

impl std::fmt::Debug for Spares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spares")
            .field("peers", &self.lock().len())
            .finish()
    }
}

impl Spares {
    pub fn new(outcomes: IntCounterVec) -> Self {
        Self {
            slots: Mutex::default(),
            next_id: AtomicU64::new(0),
            outcomes,
        }
    }

    fn count(&self, outcome: &str) {
        self.outcomes.with_label_values(&[outcome]).inc();
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SocketAddr, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `peer`'s spare if it is still usable, else the handshake under way for it,
    /// else starts one (within `connect_timeout` per step) and waits for that.
    pub fn claim(plan: &Arc<MeshPlan>, peer: SocketAddr, connect_timeout: Duration) -> Claim {
        let spares = &plan.spares;
        let ready = {
            let mut slots = spares.lock();
            match slots.remove(&peer) {
                Some(Slot::Ready { spare, .. }) => Some(spare),
                Some(Slot::Filling { id, taker }) => {
                    // One taker per handshake: a waiter that gave up no longer counts.
                    if taker.as_ref().is_some_and(|t| !t.is_closed()) {
                        slots.insert(peer, Slot::Filling { id, taker });
                        return Claim::Inline;
                    }
                    let (deliver, delivered) = oneshot::channel();
                    slots.insert(
                        peer,
                        Slot::Filling {
                            id,
                            taker: Some(deliver),
                        },
                    );
                    drop(slots);
                    spares.count("joined");
                    return Claim::Wait(delivered);
                }
                None => None,
            }
        };
        if let Some(mut spare) = ready {
            if spare.usable(&plan.identity) {
                spares.count("used");
                return Claim::Ready(spare);
            }
            spares.count("stale");
            tracing::debug!(%peer, "meshed spare closed, refused or made with a rotated identity; not used");
        }
        let (deliver, delivered) = oneshot::channel();
        if Self::start(plan, peer, connect_timeout, Some(deliver)) {
            Claim::Wait(delivered)
        } else {
            Claim::Inline
        }
    }

    /// Starts a spare for `peer` unless it has one, or one under way.
    pub fn fill(plan: &Arc<MeshPlan>, peer: SocketAddr, connect_timeout: Duration) {
        Self::start(plan, peer, connect_timeout, None);
    }

    /// Starts a handshake to `peer` for `taker` (or to keep), unless the peer has a
    /// slot already or there is no room for another. Returns whether it started.
    fn start(
        plan: &Arc<MeshPlan>,
        peer: SocketAddr,
        connect_timeout: Duration,
        taker: Option<Delivery>,
    ) -> bool {
        let id = plan.spares.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut slots = plan.spares.lock();
            if slots.contains_key(&peer) || slots.len() >= MAX_SPARE_PEERS {
                return false;
            }
            slots.insert(peer, Slot::Filling { id, taker });
        }
        tokio::spawn(fill(plan.clone(), peer, id, connect_timeout));
        true
    }

    /// Whether `peer` has a spare ready (for tests to wait on).
    #[cfg(test)]
    pub(crate) fn has_ready(&self, peer: SocketAddr) -> bool {
        matches!(self.lock().get(&peer), Some(Slot::Ready { .. }))
    }

    /// How many spares ended with `outcome` (for tests).
    #[cfg(test)]
    pub(crate) fn outcomes(&self, outcome: &str) -> u64 {
        self.outcomes.with_label_values(&[outcome]).get()
    }

    /// Removes `peer`'s slot if it is still the one numbered `id`.
    fn remove_own(&self, peer: SocketAddr, id: u64) -> Option<Slot> {
        let mut slots = self.lock();
        let own = match slots.get(&peer) {
            Some(Slot::Filling { id: slot, .. } | Slot::Ready { id: slot, .. }) => *slot == id,
            None => false,
        };
        if own { slots.remove(&peer) } else { None }
    }
}

/// The handshake of slot `id`: handed to its taker, or kept as the peer's spare for
/// [`SPARE_LIFETIME`] and then closed.
async fn fill(plan: Arc<MeshPlan>, peer: SocketAddr, id: u64, connect_timeout: Duration) {
    let result = handshake(&plan, peer, connect_timeout).await;
    let taker = match plan.spares.remove_own(peer, id) {
        Some(Slot::Filling { taker, .. }) => taker,
        _ => None,
    };
    let result = match taker {
        Some(taker) => match taker.send(result) {
            Ok(()) => return,
            // The taker gave up waiting: the handshake is kept for the next connection.
            Err(unclaimed) => unclaimed,
        },
        None => result,
    };
    // A failure was counted by `handshake`; there is nothing to keep.
    let Ok(spare) = result else { return };
    {
        let mut slots = plan.spares.lock();
        if slots.contains_key(&peer) {
            // A newer handshake took the peer's place meanwhile.
            return;
        }
        slots.insert(
            peer,
            Slot::Ready {
                id,
                spare: Box::new(spare),
            },
        );
    }
    tokio::time::sleep(SPARE_LIFETIME).await;
    // Closed unused: the peer sees it end before its header began.
    if let Some(Slot::Ready { mut spare, .. }) = plan.spares.remove_own(peer, id) {
        spare.read_pending();
        plan.spares.count("expired");
    }
}
