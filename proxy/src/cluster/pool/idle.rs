//! One endpoint's idle HTTP/1 connections: taken newest first (the warmest socket, and
//! the oldest ones are left to expire), closed after the cluster's `idle_timeout` by a
//! reaper task that runs only while something is idle.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::cluster::http1_client::Http1Connection;

/// An idle connection and when it became idle.
#[derive(Debug)]
struct Entry {
    conn: Box<Http1Connection>,
    since: Instant,
}

/// The idle list and whether its reaper runs, under one lock.
#[derive(Debug, Default)]
struct State {
    /// Oldest first: returned connections are pushed, taken from the end.
    entries: Vec<Entry>,
    reaper_running: bool,
}

/// Idle connections of one endpoint.
#[derive(Debug)]
pub(super) struct IdleConnections {
    state: Mutex<State>,
    /// Default is the cluster's `idle_timeout`.
    timeout: Duration,
    /// Wakes one request waiting at `max_connections` when a connection comes back.
    returned: Notify,
}

impl IdleConnections {
    pub(super) fn new(timeout: Duration) -> Self {
        Self {
            state: Mutex::default(),
            timeout,
            returned: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest idle connection still open. Expired ones and those their peer closed
    /// (or wrote to, unasked) are dropped on the way, which closes them.
    pub(super) fn take_open(&self) -> Option<Box<Http1Connection>> {
        let now = Instant::now();
        let mut state = self.lock();
        while let Some(mut entry) = state.entries.pop() {
            if now.duration_since(entry.since) < self.timeout && entry.conn.is_open() {
                return Some(entry.conn);
            }
        }
        None
    }

    /// Keeps `conn` for the next request; starts the reaper when none runs.
    pub(super) fn put(self: &Arc<Self>, conn: Box<Http1Connection>) {
        let mut state = self.lock();
        state.entries.push(Entry {
            conn,
            since: Instant::now(),
        });
        if !state.reaper_running {
            state.reaper_running = true;
            tokio::spawn(reap(Arc::downgrade(self)));
        }
        drop(state);
        self.returned.notify_one();
    }

    /// Completes after the next [`IdleConnections::put`] (or at once if one happened
    /// since the last wake-up); enable it before looking at the list.
    pub(super) fn returned(&self) -> tokio::sync::futures::Notified<'_> {
        self.returned.notified()
    }

    /// How many connections are idle now (closed ones not yet noticed included).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    #[cfg(test)]
    pub(super) fn newest_is_closed(&self) -> bool {
        self.lock()
            .entries
            .last_mut()
            .is_some_and(|e| !e.conn.is_open())
    }

    /// Drops the expired connections; the time the oldest remaining one expires, or
    /// `None` (and the reaper stops) when none remains.
    fn evict_expired(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut state = self.lock();
        let expired = state
            .entries
            .iter()
            .take_while(|e| now.duration_since(e.since) >= self.timeout)
            .count();
        state.entries.drain(..expired);
        match state.entries.first() {
            Some(oldest) => Some(oldest.since + self.timeout),
            None => {
                state.reaper_running = false;
                None
            }
        }
    }
}

/// Closes idle connections as they expire, until none is left (or the pool is gone:
/// its connections went with it).
async fn reap(idle: Weak<IdleConnections>) {
    loop {
        let next = match idle.upgrade() {
            Some(idle) => idle.evict_expired(),
            None => None,
        };
        let Some(next) = next else { return };
        tokio::time::sleep_until(next).await;
    }
}
