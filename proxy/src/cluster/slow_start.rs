//! Slow start: an endpoint returning from ejection gets a share of its picks that ramps
//! up linearly from [`FIRST_SHARE`] to all of them over the breaker's `slow_start`.
//!
//! An endpoint that was ejected (failing, or slow) and has just passed its half-open
//! trials is not trusted with its full load at once: it may still be warming caches, or
//! be slow again under load. The balancer asks [`SlowStart::share`] of the endpoint it
//! is about to pick and, with the remaining probability, passes the pick on to its next
//! choice (see `balance::select`), so the endpoint's share of the cluster's traffic is
//! scaled by the ramp whatever the balancing algorithm. Envoy's slow start does the same
//! for new endpoints (as a weight factor, with `min_weight_percent` as the first share).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The share of its picks a returning endpoint keeps at the start of the ramp.
pub const FIRST_SHARE: f64 = 0.1;

/// One endpoint's ramp (see the module docs).
#[derive(Debug)]
pub struct SlowStart {
    duration: Duration,
    epoch: Instant,
    /// When the ramp began, in ns since `epoch`, plus one; 0 when not ramping (the
    /// common case, read without a lock on every pick of the endpoint).
    began: AtomicU64,
}

impl SlowStart {
    pub fn new(duration: Duration) -> Self {
        Self {
            duration,
            epoch: Instant::now(),
            began: AtomicU64::new(0),
        }
    }

    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The endpoint is back in rotation at `now`: its ramp starts.
    pub fn begin(&self, now: Instant) {
        self.began
            .store(self.nanos(now).saturating_add(1), Ordering::Relaxed);
    }

    /// The share of its picks the endpoint takes at `now`: 1 when not ramping.
    pub fn share(&self, now: Instant) -> f64 {
        let began = self.began.load(Ordering::Relaxed);
        if began == 0 {
            return 1.0;
        }
        let elapsed = self.nanos(now).saturating_sub(began - 1);
        let length = self.duration.as_nanos().max(1) as f64;
        let progress = elapsed as f64 / length;
        if progress >= 1.0 {
            // Done: later picks skip the arithmetic (a concurrent `begin` wins).
            let _ = self
                .began
                .compare_exchange(began, 0, Ordering::Relaxed, Ordering::Relaxed);
            return 1.0;
        }
        FIRST_SHARE + (1.0 - FIRST_SHARE) * progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_share_ramps_from_a_tenth_to_all_over_the_duration() {
        let ramp = SlowStart::new(Duration::from_secs(10));
        assert_eq!(
            ramp.share(Instant::now()),
            1.0,
            "not ramping before a return"
        );
        ramp.begin(Instant::now());
        assert!((ramp.share(Instant::now()) - FIRST_SHARE).abs() < 1e-9);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!((ramp.share(Instant::now()) - 0.55).abs() < 1e-9, "halfway");
        tokio::time::advance(Duration::from_millis(4999)).await;
        assert!(ramp.share(Instant::now()) < 1.0);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(ramp.share(Instant::now()), 1.0);
        assert_eq!(ramp.began.load(Ordering::Relaxed), 0, "the ramp is over");
        // A later return ramps again.
        ramp.begin(Instant::now());
        assert!(ramp.share(Instant::now()) < 0.2);
    }
}
