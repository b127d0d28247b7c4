//! A retry budget: over a sliding 10-second window, retries may not exceed `ratio` of the
//! requests plus `min_per_second` per second — so a failing upstream gets a bounded
//! amount of extra load instead of a retry storm (Finagle's and Linkerd's idea).

use std::sync::Mutex;

use tokio::time::Instant;

/// Seconds in the sliding window.
pub const WINDOW_SECONDS: usize = 10;

#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    min_per_second: u32,
    epoch: Instant,
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    /// (requests, retries) per second, ring-indexed by second.
    buckets: [(u64, u64); WINDOW_SECONDS],
    /// The second (since `epoch`) that `buckets[now % WINDOW_SECONDS]` holds.
    current: u64,
}

impl Window {
    fn advance(&mut self, now: u64) {
        if now.saturating_sub(self.current) >= WINDOW_SECONDS as u64 {
            self.buckets = Default::default();
        } else {
            for s in self.current + 1..=now {
                self.buckets[s as usize % WINDOW_SECONDS] = (0, 0);
            }
        }
        self.current = self.current.max(now);
    }
}

impl RetryBudget {
    pub fn new(ratio: f64, min_per_second: u32) -> Self {
        Self {
            ratio,
            min_per_second,
            epoch: Instant::now(),
            window: Mutex::new(Window::default()),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_secs()
    }

    /// Counts a request (each original request, not its retries).
    pub fn deposit(&self) {
        let now = self.now();
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.advance(now);
        w.buckets[now as usize % WINDOW_SECONDS].0 += 1;
    }

    /// Takes one retry from the budget; false when it is spent.
    pub fn try_withdraw(&self) -> bool {
        let now = self.now();
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.advance(now);
        let (requests, retries) = w
            .buckets
            .iter()
            .fold((0, 0), |(a, b), (r, t)| (a + r, b + t));
        let allowed =
            self.ratio * requests as f64 + f64::from(self.min_per_second) * WINDOW_SECONDS as f64;
        if (retries + 1) as f64 > allowed {
            return false;
        }
        w.buckets[now as usize % WINDOW_SECONDS].1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn retries_are_bounded_by_ratio_plus_minimum() {
        let budget = RetryBudget::new(0.2, 1);
        for _ in 0..100 {
            budget.deposit();
        }
        // 20% of 100 requests + 1/s over 10s = 30 retries.
        let granted = (0..100).filter(|_| budget.try_withdraw()).count();
        assert_eq!(granted, 30);
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_slides_and_forgets_old_traffic() {
        let budget = RetryBudget::new(0.5, 0);
        for _ in 0..10 {
            budget.deposit();
        }
        assert_eq!((0..10).filter(|_| budget.try_withdraw()).count(), 5);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(
            !budget.try_withdraw(),
            "the old requests still count, and were used"
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(
            !budget.try_withdraw(),
            "no requests in the window: nothing to retry on"
        );
        for _ in 0..4 {
            budget.deposit();
        }
        assert_eq!((0..10).filter(|_| budget.try_withdraw()).count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_minimum_allows_retries_with_little_traffic() {
        let budget = RetryBudget::new(0.0, 2);
        assert_eq!((0..50).filter(|_| budget.try_withdraw()).count(), 20);
    }
}
