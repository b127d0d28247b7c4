//! Per-endpoint circuit breaker: closed -> open -> half-open -> closed.
//!
//! Closed, it counts outcomes: `consecutive_failures` in a row, or a `failure_rate` over
//! the sliding `window` once `min_requests` were seen, opens it. Open, the endpoint gets
//! no traffic for `open_duration`, doubled on each re-open up to `max_open_duration`.
//! Then half-open: `half_open_requests` trial requests are let through; all succeed ->
//! closed, one fails -> open again. `max_ejected_percent` caps how many endpoints of a
//! cluster may be open at once (at least one may, as in Envoy).
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
                    let until = now + self.open_duration(s.reopens);
                    s.phase = Phase::Open { until };
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
mod tests {
    use super::*;

    fn config(consecutive: Option<u32>, rate: Option<(f64, u32)>) -> model::CircuitBreaker {
        model::CircuitBreaker {
            consecutive_failures: consecutive,
            failure_rate: rate.map(|(threshold, min_requests)| model::FailureRate {
                threshold,
                min_requests,
                window: Duration::from_secs(10),
            }),
            open_duration: Duration::from_secs(10),
            max_open_duration: Duration::from_secs(35),
            half_open_requests: 2,
            max_ejected_percent: 100,
            latency: None,
            slow_start: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_open_then_half_open_then_close() {
        let b = CircuitBreaker::new(config(Some(3), None));
        let e = EjectionBudget::new(1, 100);
        assert_eq!(b.record(false, &e), None);
        assert_eq!(b.record(true, &e), None, "a success resets the streak");
        assert_eq!(b.record(false, &e), None);
        assert_eq!(b.record(false, &e), None);
        assert_eq!(
            b.record(false, &e),
            Some((BreakerState::Closed, BreakerState::Open))
        );
        assert_eq!(b.admit(), (false, None));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            b.admit(),
            (true, Some((BreakerState::Open, BreakerState::HalfOpen)))
        );
        assert_eq!(b.admit(), (true, None), "second trial");
        assert_eq!(b.admit(), (false, None), "only half_open_requests trials");
        assert_eq!(b.record(true, &e), None);
        assert_eq!(
            b.record(true, &e),
            Some((BreakerState::HalfOpen, BreakerState::Closed))
        );
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit(), (true, None));
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_trial_frees_its_slot_and_leaves_the_state_alone() {
        let b = CircuitBreaker::new(config(Some(3), None));
        let e = EjectionBudget::new(1, 100);
        b.release();
        for _ in 0..2 {
            b.record(false, &e);
            b.release();
        }
        assert_eq!(b.state(), BreakerState::Closed, "releases are not failures");
        b.record(false, &e);
        assert_eq!(b.state(), BreakerState::Open);
        b.release();
        assert_eq!(b.state(), BreakerState::Open, "open stays open");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(b.admit().0, "first trial");
        assert!(b.admit().0, "second trial");
        assert!(!b.admit().0, "both slots taken");
        b.release();
        assert!(b.admit().0, "a released trial's slot is free again");
        assert!(!b.admit().0);
        assert_eq!(b.record(true, &e), None);
        b.release();
        b.release();
        b.release();
        assert!(b.admit().0, "one slot freed; a success is never taken back");
        assert!(!b.admit().0);
        assert_eq!(
            b.record(true, &e),
            Some((BreakerState::HalfOpen, BreakerState::Closed))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_reopens_for_twice_as_long_up_to_the_max() {
        let b = CircuitBreaker::new(config(Some(1), None));
        let e = EjectionBudget::new(1, 100);
        b.record(false, &e);
        for expected in [20, 35, 35] {
            tokio::time::advance(Duration::from_secs(35)).await;
            assert!(b.admit().0);
            assert_eq!(
                b.record(false, &e),
                Some((BreakerState::HalfOpen, BreakerState::Open))
            );
            tokio::time::advance(Duration::from_secs(expected) - Duration::from_millis(1)).await;
            assert!(!b.admit().0, "still open just before {expected}s");
            tokio::time::advance(Duration::from_millis(1)).await;
            assert!(b.admit().0, "half-open at {expected}s");
            assert_eq!(
                b.record(false, &e),
                Some((BreakerState::HalfOpen, BreakerState::Open))
            );
            tokio::time::advance(Duration::ZERO).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failure_rate_needs_min_requests_in_the_window() {
        let b = CircuitBreaker::new(config(None, Some((0.5, 10))));
        let e = EjectionBudget::new(1, 100);
        for _ in 0..4 {
            assert_eq!(b.record(true, &e), None);
            assert_eq!(b.record(false, &e), None);
        }
        assert_eq!(b.record(true, &e), None);
        // 10 requests, 5 failures: 50% >= threshold.
        assert_eq!(
            b.record(false, &e),
            Some((BreakerState::Closed, BreakerState::Open))
        );
        // Old outcomes leave the window.
        let b = CircuitBreaker::new(config(None, Some((0.5, 4))));
        b.record(false, &e);
        b.record(false, &e);
        tokio::time::advance(Duration::from_secs(11)).await;
        b.record(true, &e);
        assert_eq!(b.record(false, &e), None, "only 2 outcomes in the window");
    }

    #[tokio::test(start_paused = true)]
    async fn max_ejected_percent_keeps_endpoints_closed() {
        let e = EjectionBudget::new(4, 50);
        let breakers: Vec<_> = (0..4)
            .map(|_| CircuitBreaker::new(config(Some(1), None)))
            .collect();
        let opened = breakers
            .iter()
            .filter(|b| b.record(false, &e).is_some())
            .count();
        assert_eq!(opened, 2);
        assert_eq!(
            breakers
                .iter()
                .filter(|b| b.state() == BreakerState::Open)
                .count(),
            2
        );
        // A single endpoint may always be ejected (as in Envoy).
        assert_eq!(EjectionBudget::new(1, 10).max, 1);
    }
}
