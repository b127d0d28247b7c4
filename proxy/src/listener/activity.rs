//! What a downstream connection is doing, shared between its socket, its requests and
//! its supervising task: in-flight requests, a request head being received, idle time.
//!
//! The timers live here, outside the server connections, so one supervisor enforces
//! them the same way for both protocols: HTTP/1 heads start with the first byte read
//! between requests; on HTTP/2 the socket reader reports header blocks as their frames
//! are read (see `header_blocks`), before the server connection sees them whole.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::header_blocks::BlockEvent;

/// The protocol a connection speaks, which decides what a request head is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnProtocol {
    /// A head is the bytes read between two requests, up to the blank line.
    Http1,
    /// A head is a header block, reported by the socket reader; the connection's first
    /// one is counted from the connection's start, so a connection that opens no stream
    /// is closed by the head timeout too.
    Http2,
}

#[derive(Debug)]
pub struct ConnActivity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` (+1) when the first byte of a request head arrived; 0 = none.
    head_started: AtomicU64,
    /// Milliseconds since `epoch` when the connection last became idle.
    idle_since: AtomicU64,
    protocol: ConnProtocol,
    /// HTTP/2: no header block has ended yet, so the head timer still runs from the
    /// connection's start.
    first_head_pending: AtomicBool,
    /// Wakes the supervisor when an HTTP/2 stream's response ends in its own task.
    changed: Notify,
    /// HTTP/1: the connection has been idle long enough to be parked (set by the
    /// supervisor, cleared when a request starts); the server connection parks itself
    /// the next time it waits for a request head with nothing buffered.
    park_due: AtomicBool,
}

impl ConnActivity {
    /// A connection speaking `protocol` that started at `since` (accepted, or its TLS
    /// handshake done).
    pub fn new(protocol: ConnProtocol, since: Instant) -> Self {
        let http2 = protocol == ConnProtocol::Http2;
        Self {
            epoch: since,
            in_flight: AtomicUsize::new(0),
            // HTTP/2: the first head is being received from the start (0 ms, +1).
            head_started: AtomicU64::new(u64::from(http2)),
            idle_since: AtomicU64::new(0),
            protocol,
            first_head_pending: AtomicBool::new(http2),
            changed: Notify::new(),
            park_due: AtomicBool::new(false),
        }
    }

    pub fn protocol(&self) -> ConnProtocol {
        self.protocol
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// HTTP/1 bytes arrived from the client. Between requests, they begin a request head.
    pub fn on_read(&self) {
        if self.reading_head() && self.head_started.load(Ordering::Relaxed) == 0 {
            self.head_started_now();
        }
    }

    /// (Called while the connection's task polls its server connection: its supervisor
    /// reads the new deadline after that poll, see `supervise`.)
    fn head_started_now(&self) {
        self.head_started
            .store(self.now_ms() + 1, Ordering::Relaxed);
    }

    /// Whether bytes read now belong to a request head (HTTP/1, nothing in flight).
    pub fn reading_head(&self) -> bool {
        self.protocol == ConnProtocol::Http1 && self.in_flight.load(Ordering::Relaxed) == 0
    }

    /// An HTTP/2 header block began or ended (requests in flight do not matter: the
    /// streams are multiplexed, and a block being received blocks all of them).
    pub fn on_header_block(&self, event: BlockEvent) {
        match event {
            BlockEvent::Began if !self.first_head_pending.load(Ordering::Relaxed) => {
                self.head_started_now();
            }
            // The first head keeps counting from the connection's start.
            BlockEvent::Began => {}
            BlockEvent::Ended => {
                self.first_head_pending.store(false, Ordering::Relaxed);
                self.head_started.store(0, Ordering::Relaxed);
            }
        }
    }

    /// A whole request head was parsed: the request is now in flight. (HTTP/2 heads end
    /// with their header block, which may already be followed by the next one.)
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        if self.protocol == ConnProtocol::Http1 {
            self.head_started.store(0, Ordering::Relaxed);
            self.park_due.store(false, Ordering::Relaxed);
        }
    }

    /// The response (body included) is finished or abandoned.
    pub fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.idle_since.store(self.now_ms(), Ordering::Relaxed);
            if self.changes_from_other_tasks() {
                // The supervisor may be sleeping on a later deadline; idle time starts now.
                self.changed.notify_one();
            }
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Whether a request head is being received.
    pub fn receiving_head(&self) -> bool {
        self.head_started.load(Ordering::Relaxed) != 0
    }

    /// When the head being received must be complete, if one is.
    pub fn head_deadline(&self, header_read_timeout: Duration) -> Option<Instant> {
        match self.head_started.load(Ordering::Relaxed) {
            0 => None,
            started => Some(self.at(started - 1) + header_read_timeout),
        }
    }

    /// When the connection counts as idle, if nothing is in flight.
    pub fn idle_deadline(&self, idle_timeout: Duration) -> Option<Instant> {
        if self.in_flight() > 0 || self.head_started.load(Ordering::Relaxed) != 0 {
            return None;
        }
        Some(self.at(self.idle_since.load(Ordering::Relaxed)) + idle_timeout)
    }

    /// HTTP/1: when the connection, idle since its last response, is to be parked (if it
    /// is idle and not already due).
    pub fn park_deadline(&self, park_after: Duration) -> Option<Instant> {
        if self.protocol != ConnProtocol::Http1 || self.park_due() {
            return None;
        }
        self.idle_deadline(park_after)
    }

    /// The connection is to be parked the next time it waits for a request head.
    pub fn set_park_due(&self, due: bool) {
        self.park_due.store(due, Ordering::Relaxed);
    }

    pub fn park_due(&self) -> bool {
        self.park_due.load(Ordering::Relaxed)
    }

    /// Whether this connection's activity changes outside its own task, so that its
    /// supervisor must be woken ([`Self::changed`]): HTTP/2 responses end in their
    /// streams' tasks. An HTTP/1 connection's reads, requests and responses all happen
    /// while its task polls the server connection, after which the supervisor reads the
    /// deadlines anyway.
    pub fn changes_from_other_tasks(&self) -> bool {
        self.protocol == ConnProtocol::Http2
    }

    /// Resolves after a change made outside the connection's task (HTTP/2: a response
    /// ended).
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }
}

/// Marks a request in flight until dropped (when its response body ends or is dropped).
#[derive(Debug)]
pub struct InFlightGuard(pub std::sync::Arc<ConnActivity>);

impl InFlightGuard {
    pub fn new(activity: std::sync::Arc<ConnActivity>) -> Self {
        activity.request_started();
        Self(activity)
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_head_starts_on_the_first_byte_between_requests_only() {
        let a = std::sync::Arc::new(ConnActivity::new(ConnProtocol::Http1, Instant::now()));
        let t = Duration::from_secs(10);
        assert!(a.head_deadline(t).is_none());
        tokio::time::advance(Duration::from_secs(3)).await;
        a.on_read();
        assert_eq!(a.head_deadline(t), Some(a.epoch + Duration::from_secs(13)));
        let guard = InFlightGuard::new(a.clone());
        assert!(
            a.head_deadline(t).is_none(),
            "a parsed head stops the timer"
        );
        a.on_read();
        assert!(
            a.head_deadline(t).is_none(),
            "body bytes are not a new head"
        );
        assert!(a.idle_deadline(t).is_none());
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(guard);
        assert_eq!(a.idle_deadline(t), Some(a.epoch + Duration::from_secs(14)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_http2_connection_must_end_its_first_header_block_within_the_timeout_of_its_start() {
        let t = Duration::from_secs(10);
        let a = std::sync::Arc::new(ConnActivity::new(ConnProtocol::Http2, Instant::now()));
        assert_eq!(a.head_deadline(t), Some(a.epoch + t), "no stream yet");
        assert!(a.idle_deadline(t).is_none());
        a.on_read();
        assert!(!a.reading_head(), "HTTP/2 bytes are not HTTP/1 heads");
        tokio::time::advance(Duration::from_secs(4)).await;
        a.on_header_block(BlockEvent::Began);
        assert_eq!(
            a.head_deadline(t),
            Some(a.epoch + t),
            "a late first HEADERS gains no time"
        );
        a.on_header_block(BlockEvent::Ended);
        assert!(a.head_deadline(t).is_none());
        let guard = InFlightGuard::new(a.clone());
        tokio::time::advance(Duration::from_secs(1)).await;
        a.on_header_block(BlockEvent::Began);
        assert_eq!(
            a.head_deadline(t),
            Some(a.epoch + Duration::from_secs(15)),
            "later blocks count from their first byte, streams in flight or not"
        );
        let second = InFlightGuard::new(a.clone());
        assert!(
            a.head_deadline(t).is_some(),
            "a request starting does not end another block"
        );
        a.on_header_block(BlockEvent::Ended);
        drop((guard, second));
        assert_eq!(a.idle_deadline(t), Some(a.epoch + Duration::from_secs(15)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_http1_connection_is_due_for_parking_once_idle_for_the_delay_until_a_request_starts()
    {
        let after = Duration::from_millis(100);
        let h2 = ConnActivity::new(ConnProtocol::Http2, Instant::now());
        assert!(h2.park_deadline(after).is_none(), "HTTP/2 is never parked");
        let a = std::sync::Arc::new(ConnActivity::new(ConnProtocol::Http1, Instant::now()));
        let guard = InFlightGuard::new(a.clone());
        assert!(a.park_deadline(after).is_none(), "a request in flight");
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(guard);
        assert_eq!(
            a.park_deadline(after),
            Some(a.epoch + Duration::from_millis(1100)),
            "counted from the end of the last response"
        );
        a.set_park_due(true);
        assert!(a.park_deadline(after).is_none(), "already due");
        let _next = InFlightGuard::new(a.clone());
        assert!(!a.park_due(), "a request started: no longer due");
    }
}
