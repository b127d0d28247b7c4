//! Cluster limits (Envoy's circuit-breaker thresholds): concurrent connections, pending
//! requests, requests and retries per cluster. Excess fails fast with 503 `overflow`,
//! counted by limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use meshwork_config::model::ClusterLimits;
use prometheus::IntCounter;
use tokio::sync::Notify;

use crate::metrics::Metrics;

/// One limited count.
#[derive(Debug)]
pub struct Gate {
    in_use: AtomicUsize,
    max: usize,
    overflows: IntCounter,
    /// Wakes one waiter of [`Gate::acquire_within`] per freed slot.
    freed: Notify,
}

impl Gate {
    fn new(max: u32, overflows: IntCounter) -> Self {
        Self {
            in_use: AtomicUsize::new(0),
            max: max as usize,
            overflows,
            freed: Notify::new(),
        }
    }

    /// A slot, held until the returned guard drops; `None` (and counted) when full.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Slot> {
        let slot = self.take();
        if slot.is_none() {
            self.count_overflow();
        }
        slot
    }

    /// A slot as soon as one is free, waiting at most `timeout`; `None` (not counted:
    /// the caller knows whether anyone was turned away) when none freed up in time.
    pub async fn acquire_within(self: &Arc<Self>, timeout: Duration) -> Option<Slot> {
        self.acquire_until(tokio::time::Instant::now() + timeout)
            .await
    }

    /// [`Gate::acquire_within`] with a deadline.
    pub async fn acquire_until(self: &Arc<Self>, deadline: tokio::time::Instant) -> Option<Slot> {
        let wait = async {
            loop {
                // Registered before the check, so a slot freed in between is not missed.
                let freed = self.freed.notified();
                if let Some(slot) = self.take() {
                    return slot;
                }
                freed.await;
            }
        };
        tokio::time::timeout_at(deadline, wait).await.ok()
    }

    pub fn count_overflow(&self) {
        self.overflows.inc();
    }

    /// A slot if one is free now; `None` (not counted) when full.
    pub fn take(self: &Arc<Self>) -> Option<Slot> {
        self.in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }

    pub fn is_full(&self) -> bool {
        self.in_use() >= self.max
    }

    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }
}

/// A held slot of a [`Gate`].
#[derive(Debug)]
pub struct Slot(Arc<Gate>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_use.fetch_sub(1, Ordering::AcqRel);
        self.0.freed.notify_one();
    }
}

/// The gates of one cluster.
#[derive(Debug)]
pub struct ClusterGates {
    pub connections: Arc<Gate>,
    pub requests: Arc<Gate>,
    pub retries: Arc<Gate>,
    max_pending: usize,
    pending_overflows: IntCounter,
}

impl ClusterGates {
    pub fn new(cluster: &str, limits: &ClusterLimits, metrics: &Metrics) -> Self {
        let overflow = |limit: &str| {
            metrics
                .upstream
                .overflows_total
                .with_label_values(&[cluster, limit])
        };
        Self {
            connections: Arc::new(Gate::new(
                limits.max_connections,
                overflow("max_connections"),
            )),
            requests: Arc::new(Gate::new(limits.max_requests, overflow("max_requests"))),
            retries: Arc::new(Gate::new(limits.max_retries, overflow("max_retries"))),
            max_pending: limits.max_pending as usize,
            pending_overflows: overflow("max_pending"),
        }
    }

    /// Whether one more HTTP/1 request may wait for a connection (counted when not).
    ///
    /// Call with the request's own `requests` slot held. An HTTP/1 connection carries
    /// one request at a time, so once `max_connections` are open, every request in
    /// flight beyond the number of open connections is queued for one: those are the
    /// pending requests `max_pending` bounds (Envoy's pending-request overflow).
    pub fn admit_pending(&self) -> bool {
        if !self.connections.is_full() {
            return true;
        }
        let waiting = self
            .requests
            .in_use()
            .saturating_sub(self.connections.in_use());
        if waiting > self.max_pending {
            self.pending_overflows.inc();
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_admits_up_to_its_max_and_frees_slots_on_drop() {
        let counter = IntCounter::new("t", "t").unwrap();
        let gate = Arc::new(Gate::new(2, counter.clone()));
        let a = gate.try_acquire().unwrap();
        let _b = gate.try_acquire().unwrap();
        assert!(gate.try_acquire().is_none());
        assert_eq!(counter.get(), 1);
        drop(a);
        assert!(gate.try_acquire().is_some());
        assert_eq!(gate.in_use(), 1, "the temporary slot was dropped at once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gets_the_next_freed_slot_and_gives_up_after_its_timeout() {
        let counter = IntCounter::new("t", "t").unwrap();
        let gate = Arc::new(Gate::new(1, counter.clone()));
        let held = gate.try_acquire().unwrap();
        assert!(
            gate.acquire_within(Duration::from_millis(50))
                .await
                .is_none(),
            "nothing was freed within the timeout"
        );
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.acquire_within(Duration::from_secs(5)).await.is_some() }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(held);
        assert!(waiter.await.unwrap(), "the freed slot went to the waiter");
        assert_eq!(counter.get(), 0, "waiting is not an overflow");
    }

    fn gates(max_connections: u32, max_pending: u32) -> ClusterGates {
        let limits = ClusterLimits {
            max_connections,
            max_pending,
            max_requests: 100,
            max_retries: 3,
        };
        ClusterGates::new("c", &limits, &Metrics::new())
    }

    #[test]
    fn pending_requests_are_those_in_flight_beyond_a_full_set_of_connections() {
        let g = gates(2, 1);
        let _c1 = g.connections.try_acquire().unwrap();
        let r1 = g.requests.try_acquire().unwrap();
        assert!(g.admit_pending(), "connections are not all open yet");
        let _c2 = g.connections.try_acquire().unwrap();
        let _r2 = g.requests.try_acquire().unwrap();
        assert!(
            g.admit_pending(),
            "two requests on two connections: none waits"
        );
        let _r3 = g.requests.try_acquire().unwrap();
        assert!(g.admit_pending(), "one waits: within max_pending 1");
        let r4 = g.requests.try_acquire().unwrap();
        assert!(!g.admit_pending(), "a second one waiting is one too many");
        drop((r1, r4));
        assert!(g.admit_pending());
    }
}
