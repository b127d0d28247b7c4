//! Cluster limits (Envoy's circuit-breaker thresholds): concurrent connections, requests
//! and retries per cluster. Excess fails fast with 503 `overflow`, counted by limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use meshwork_config::model::ClusterLimits;
use prometheus::IntCounter;

use crate::metrics::Metrics;

/// One limited count.
#[derive(Debug)]
pub struct Gate {
    in_use: AtomicUsize,
    max: usize,
    overflows: IntCounter,
}

impl Gate {
    fn new(max: u32, overflows: IntCounter) -> Self {
        Self {
            in_use: AtomicUsize::new(0),
            max: max as usize,
            overflows,
        }
    }

    /// A slot, held until the returned guard drops; `None` (and counted) when full.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Slot> {
        let taken = self
            .in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if !taken {
            self.overflows.inc();
            return None;
        }
        Some(Slot(self.clone()))
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
    }
}

/// The gates of one cluster.
#[derive(Debug)]
pub struct ClusterGates {
    pub connections: Arc<Gate>,
    pub requests: Arc<Gate>,
    pub retries: Arc<Gate>,
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
        }
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
}
