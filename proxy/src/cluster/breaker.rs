//! Per-endpoint circuit breaker: closed -> open -> half-open -> closed.
//!
//! Closed, it counts outcomes: `consecutive_failures` in a row, or a `failure_rate` over
//! the sliding `window` once `min_requests` were seen, opens it. Open, the endpoint gets
//! no traffic for `open_duration`, doubled on each re-open up to `max_open_duration`.
//! Then half-open: `half_open_requests` trial requests are let through; all succeed ->
//! closed, one fails -> open again. `max_ejected_percent` caps how many endpoints of a
//! cluster may be open at once (at least one may, as in Envoy).
//!
//! Latency-based ejection ([`CircuitBreaker::eject_for_latency`], decided by
//! `cluster::latency` over the whole cluster) opens it the same way, under the same
//! `max_ejected_percent`; its open time doubles with each latency ejection until a
//! later judgement finds the endpoint's latency normal again.
//!
//! Only the endpoint's own failures are recorded. A request that ends without saying
//! anything about the endpoint (its client went away, a local limit turned it back) is
//! [released](CircuitBreaker::release) instead: a half-open trial gives its slot back,
//! so a client cannot keep an endpoint out of service by abandoning trials.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use meshwork_config::model;
use tokio::time::Instant;

/// The state, as shown in `/clusters` and the state gauge (0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// Why an endpoint was ejected (its breaker opened): the `reason` label of
/// `meshwork_circuit_breaker_ejections_total`, shown in `/clusters`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EjectionCause {
    /// `consecutive_failures` in a row.
    ConsecutiveFailures,
    /// The `failure_rate` over its window.
    FailureRate,
    /// A half-open trial failed.
    FailedTrial,
    /// Its latency `percentile` stayed above `factor` x the other endpoints' median.
    Latency {
        latency: std::time::Duration,
        others: std::time::Duration,
    },
}

impl EjectionCause {
    pub fn as_str(self) -> &'static str {
        match self {
            EjectionCause::ConsecutiveFailures => "consecutive_failures",
            EjectionCause::FailureRate => "failure_rate",
            EjectionCause::FailedTrial => "failed_trial",
            EjectionCause::Latency { .. } => "latency",
        }
    }
}

/// How many endpoints of one cluster are open, and how many may be.
#[derive(Debug)]
pub struct EjectionBudget {
    open: AtomicUsize,
    max: usize,
}

impl EjectionBudget {
    pub fn new(endpoints: usize, max_ejected_percent: u8) -> Self {
        let max = (endpoints * usize::from(max_ejected_percent) / 100).max(1);
        Self {
            open: AtomicUsize::new(0),
            max,
        }
    }

    fn try_eject(&self) -> bool {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    fn restore(&self) {
        let _ = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

#[derive(Debug)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { admitted: u32, succeeded: u32 },
}

#[derive(Debug)]
struct State {
    phase: Phase,
    consecutive: u32,
    /// (successes, failures) per second of the failure-rate window, ring-indexed.
    buckets: Vec<(u32, u32)>,
    bucket_second: u64,
    /// Opens since the breaker last closed (doubles the open duration).
    reopens: u32,
    /// Latency ejections since a judgement last found the latency normal (doubles the
    /// open duration of the next one; kept when the breaker closes, since a slow
    /// endpoint usually passes its trials and is slow again once back).
    latency_strikes: u32,
    /// Why it is open or half-open (kept while closed, unused).
    cause: Option<EjectionCause>,
}

#[derive(Debug)]
pub struct CircuitBreaker {
    config: model::CircuitBreaker,
    epoch: Instant,
    state: Mutex<State>,
}

/// A change of state, for logs and metrics.
pub type Transition = (BreakerState, BreakerState);

impl CircuitBreaker {
    pub fn new(config: model::CircuitBreaker) -> Self {
        let seconds = config
            .failure_rate
            .as_ref()
            .map_or(1, |r| r.window.as_secs().max(1) as usize);
        Self {
            config,
            epoch: Instant::now(),
            state: Mutex::new(State {
                phase: Phase::Closed,
                consecutive: 0,
                buckets: vec![(0, 0); seconds],
                bucket_second: 0,
                reopens: 0,
                latency_strikes: 0,
                cause: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self) -> BreakerState {
        match self.lock().phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Why it is ejected: `None` while closed.
    pub fn cause(&self) -> Option<EjectionCause> {
        let s = self.lock();
        match s.phase {
            Phase::Closed => None,
            Phase::Open { .. } | Phase::HalfOpen { .. } => s.cause,
        }
    }

    /// Opens a closed breaker for latency (`cluster::latency` judged the endpoint
    /// slow), for `open_duration` doubled per earlier latency ejection not yet cleared
    /// by [`CircuitBreaker::latency_normal`]. `None` when it is not closed or
    /// `ejection` has no room.
    pub fn eject_for_latency(
        &self,
        cause: EjectionCause,
        ejection: &EjectionBudget,
    ) -> Option<Transition> {
        let mut s = self.lock();
        if !matches!(s.phase, Phase::Closed) || !ejection.try_eject() {
            return None;
        }
        let until = Instant::now() + self.open_duration(s.latency_strikes);
        s.latency_strikes = s.latency_strikes.saturating_add(1);
        s.phase = Phase::Open { until };
        s.cause = Some(cause);
        Some((BreakerState::Closed, BreakerState::Open))
    }

    /// A judgement found the endpoint's latency normal: the next latency ejection is
    /// back to `open_duration`.
    pub fn latency_normal(&self) {
        self.lock().latency_strikes = 0;
    }

    /// Whether [`CircuitBreaker::admit`] would refuse now, without spending anything:
    /// open with time left, or half-open with every trial slot taken.
    pub fn is_refusing(&self) -> bool {
        let s = self.lock();
        match s.phase {
            Phase::Closed => false,
            Phase::Open { until } => Instant::now() < until,
            Phase::HalfOpen { admitted, .. } => admitted >= self.config.half_open_requests.max(1),
        }
    }

    /// Whether a request may go to this endpoint now; an open breaker whose time is up
    /// turns half-open here and admits its trial requests one by one.
    pub fn admit(&self) -> (bool, Option<Transition>) {
        let mut s = self.lock();
        match &mut s.phase {
            Phase::Closed => (true, None),
            Phase::Open { until } if Instant::now() >= *until => {
                s.phase = Phase::HalfOpen {
                    admitted: 1,
                    succeeded: 0,
                };
                (true, Some((BreakerState::Open, BreakerState::HalfOpen)))
            }
            Phase::Open { .. } => (false, None),
            Phase::HalfOpen { admitted, .. }
                if *admitted < self.config.half_open_requests.max(1) =>
            {
                *admitted += 1;
                (true, None)
            }
            Phase::HalfOpen { .. } => (false, None),
        }
    }

    /// A request admitted earlier ended without an outcome that says anything about the
    /// endpoint. Half-open, it frees a trial slot for the next request (if a trial is
    /// in flight: trials are not told apart from requests admitted before the opening,
    /// whose outcomes also count as trials when they land, so at worst one more trial
    /// is let through, and it must succeed like the others).
    pub fn release(&self) {
        let mut s = self.lock();
        if let Phase::HalfOpen {
            admitted,
            succeeded,
        } = &mut s.phase
        {
            if *admitted > *succeeded {
                *admitted -= 1;
            }
        }
    }

    fn open_duration(&self, reopens: u32) -> Duration {
        let factor = 1u32.checked_shl(reopens).unwrap_or(u32::MAX);
        self.config
            .open_duration
            .saturating_mul(factor)
            .min(self.config.max_open_duration)
    }

    /// Records an outcome (failures: 5xx, connect failures, resets, timeouts).
    pub fn record(&self, success: bool, ejection: &EjectionBudget) -> Option<Transition> {
        let now = Instant::now();
        let second = now.duration_since(self.epoch).as_secs();
        let mut s = self.lock();
        match s.phase {
            Phase::Open { .. } => None,
            Phase::HalfOpen {
                admitted,
                succeeded,
            } => {
                if success {
                    if succeeded + 1 >= self.config.half_open_requests.max(1) {
                        s.phase = Phase::Closed;
                        s.consecutive = 0;
                        s.reopens = 0;
                        s.buckets.iter_mut().for_each(|b| *b = (0, 0));
                        ejection.restore();
                        return Some((BreakerState::HalfOpen, BreakerState::Closed));
                    }
                    s.phase = Phase::HalfOpen {
                        admitted,
                        succeeded: succeeded + 1,
                    };
                    None
                } else {
                    s.reopens += 1;
                    let until = now + self.open_duration(s.reopens.max(s.latency_strikes));
                    s.phase = Phase::Open { until };
                    s.cause = Some(EjectionCause::FailedTrial);
                    Some((BreakerState::HalfOpen, BreakerState::Open))
                }
            }
            Phase::Closed => {
                advance(&mut s, second);
                let n = s.buckets.len();
                let bucket = &mut s.buckets[second as usize % n];
                if success {
                    bucket.0 += 1;
                    s.consecutive = 0;
                    return None;
                }
                bucket.1 += 1;
                s.consecutive += 1;
                let by_streak = self
                    .config
                    .consecutive_failures
                    .is_some_and(|n| s.consecutive >= n);
                let by_rate = self.config.failure_rate.as_ref().is_some_and(|r| {
                    let (ok, failed) = s.buckets.iter().fold((0u64, 0u64), |(a, b), (o, f)| {
                        (a + u64::from(*o), b + u64::from(*f))
                    });
                    let total = ok + failed;
                    total >= u64::from(r.min_requests)
                        && total > 0
                        && failed as f64 / total as f64 >= r.threshold
                });
                if !(by_streak || by_rate) || !ejection.try_eject() {
                    return None;
                }
                let until = now + self.open_duration(s.reopens);
                s.phase = Phase::Open { until };
                s.cause = Some(if by_streak {
                    EjectionCause::ConsecutiveFailures
                } else {
                    EjectionCause::FailureRate
                });
                Some((BreakerState::Closed, BreakerState::Open))
            }
        }
    }
}

fn advance(s: &mut State, second: u64) {
    let n = s.buckets.len() as u64;
    if second.saturating_sub(s.bucket_second) >= n {
        s.buckets.iter_mut().for_each(|b| *b = (0, 0));
    } else {
        for t in s.bucket_second + 1..=second {
            s.buckets[(t % n) as usize] = (0, 0);
        }
    }
    s.bucket_second = s.bucket_second.max(second);
}

#[cfg(test)]
mod tests;
