//! Latency-based outlier ejection (`circuit_breaker.latency`): an endpoint whose recent
//! latency stays well above the rest of its cluster's is ejected like a failing one.
//!
//! Each endpoint keeps a [`LatencyWindow`] fed by its finished attempts (a response
//! head, or a cut at the attempt's deadline; an attempt abandoned by its client or
//! cancelled is no sample). Every tenth of the window, the first attempt to finish
//! judges the whole cluster ([`judge_if_due`]): each closed endpoint with at least
//! `min_requests` latencies in the window is compared with the median of the other such
//! endpoints (the upper median, so a cluster of two compares each with the other); one
//! above `factor` x that median and above `min_latency` is slow, and its breaker opens
//! for latency ([`CircuitBreaker::eject_for_latency`](super::breaker::CircuitBreaker::eject_for_latency)):
//! same `max_ejected_percent`, open time doubling per repeated latency ejection,
//! half-open trials, then slow start. When most endpoints are equally slow, their median
//! is slow too and none is ejected: the detector finds outliers, not a slow cluster.

pub mod window;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use meshwork_config::model::LatencyEjection;
use tokio::time::Instant;

use self::window::{LatencyWindow, Percentile};
use super::ClusterRuntime;
use super::breaker::{BreakerState, EjectionCause};

/// What a judgement says of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// Too few latencies in its window, or no other endpoint to compare with (or it is
    /// ejected already).
    Unjudged,
    /// Within `factor` of the others (or under `min_latency`).
    Normal,
    /// Above `factor` x the others' median and above `min_latency`.
    Slow { latency: Duration, others: Duration },
}

/// A cluster's latency detector: its settings and when it next judges.
#[derive(Debug)]
pub struct LatencyOutliers {
    config: LatencyEjection,
    epoch: Instant,
    /// When the cluster is next judged, in ns since `epoch`.
    next_judgement: AtomicU64,
    period: Duration,
}

impl LatencyOutliers {
    pub fn new(config: LatencyEjection) -> Self {
        Self {
            period: LatencyWindow::new(config.window).slot_length(),
            config,
            epoch: Instant::now(),
            next_judgement: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &LatencyEjection {
        &self.config
    }

    /// An empty window for one endpoint of the cluster.
    pub fn window(&self) -> LatencyWindow {
        LatencyWindow::new(self.config.window)
    }

    /// Whether the cluster is to be judged at `now`: true for one caller per period.
    fn due(&self, now: Instant) -> bool {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let now_ns = nanos(now.saturating_duration_since(self.epoch));
        let next = self.next_judgement.load(Ordering::Relaxed);
        now_ns >= next
            && self
                .next_judgement
                .compare_exchange(
                    next,
                    now_ns.saturating_add(nanos(self.period)),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Judges each endpoint from its latency percentile (`None`: not to be judged, e.g.
    /// ejected already). See the module docs.
    pub fn judge(&self, latencies: &[Option<Percentile>]) -> Vec<Judgement> {
        let enough = |p: &Option<Percentile>| {
            p.filter(|p| p.samples >= self.config.min_requests)
                .map(|p| p.value)
        };
        let mut sorted: Vec<Duration> = latencies.iter().filter_map(enough).collect();
        sorted.sort_unstable();
        latencies
            .iter()
            .map(|p| {
                let Some(latency) = enough(p) else {
                    return Judgement::Unjudged;
                };
                let Some(others) = median_without(&sorted, latency) else {
                    return Judgement::Unjudged;
                };
                if latency > others.mul_f64(self.config.factor) && latency > self.config.min_latency
                {
                    Judgement::Slow { latency, others }
                } else {
                    Judgement::Normal
                }
            })
            .collect()
    }
}

/// The upper median of `sorted` once one value equal to `own` is left out; `None` when
/// nothing is left.
fn median_without(sorted: &[Duration], own: Duration) -> Option<Duration> {
    let others = sorted.len().checked_sub(1).filter(|&n| n > 0)?;
    let own_at = sorted.partition_point(|&v| v < own);
    let k = others / 2;
    Some(if k < own_at { sorted[k] } else { sorted[k + 1] })
}

/// Judges `cluster`'s endpoints if a tenth of the window has passed since the last
/// judgement, ejecting the slow ones (logged and counted by the endpoint).
pub fn judge_if_due(cluster: &ClusterRuntime, now: Instant) {
    let Some(detector) = &cluster.latency_outliers else {
        return;
    };
    if !detector.due(now) {
        return;
    }
    let percentile = detector.config.percentile;
    let latencies: Vec<Option<Percentile>> = cluster
        .endpoints
        .iter()
        .map(|ep| {
            let closed = ep
                .breaker
                .as_ref()
                .is_some_and(|b| b.state() == BreakerState::Closed);
            let window = ep.latency_window.as_ref().filter(|_| closed)?;
            window.percentile(percentile, now)
        })
        .collect();
    for (ep, judgement) in cluster.endpoints.iter().zip(detector.judge(&latencies)) {
        let Some(breaker) = &ep.breaker else { continue };
        match judgement {
            Judgement::Unjudged => {}
            Judgement::Normal => breaker.latency_normal(),
            Judgement::Slow { latency, others } => {
                let cause = EjectionCause::Latency { latency, others };
                if let Some(t) = breaker.eject_for_latency(cause, &cluster.ejection) {
                    if let Some(window) = &ep.latency_window {
                        window.clear();
                    }
                    ep.on_transition(t);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
