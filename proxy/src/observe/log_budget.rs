//! A bound on how often one kind of event is logged: under a flood (a scanner hammering
//! a port, a client retrying a refused connection in a loop) each event costs a counter
//! increment, not a log line, and the next line that is written says how many were left
//! out.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::policy::token_bucket::TokenBucket;

/// Lines per second one budget allows once its burst is spent.
pub const LOG_LINES_PER_SECOND: f64 = 1.0;
/// Lines one budget allows at once.
pub const LOG_BURST: u32 = 10;

#[derive(Debug)]
pub struct LogBudget {
    bucket: TokenBucket,
    /// Events not logged since the last line that was.
    suppressed: AtomicU64,
}

impl Default for LogBudget {
    fn default() -> Self {
        Self::new(LOG_LINES_PER_SECOND, LOG_BURST)
    }
}

impl LogBudget {
    pub fn new(lines_per_second: f64, burst: u32) -> Self {
        Self {
            bucket: TokenBucket::new(lines_per_second, burst),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when this event may be logged, `n` being how many were left out since
    /// the last line (write it in the line); `None` when it is left out (and counted).
    pub fn admit(&self) -> Option<u64> {
        match self.bucket.try_take() {
            Ok(()) => Some(self.suppressed.swap(0, Ordering::Relaxed)),
            Err(_) => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_flood_logs_its_burst_then_one_line_per_period_counting_the_rest() {
        let budget = LogBudget::new(1.0, 3);
        let logged: Vec<_> = (0..100).filter_map(|_| budget.admit()).collect();
        assert_eq!(logged, [0, 0, 0], "the burst, then nothing");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            budget.admit(),
            Some(97),
            "the next line counts what was left out"
        );
        assert_eq!(budget.admit(), None);
    }
}
