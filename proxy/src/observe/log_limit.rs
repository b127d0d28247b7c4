//! A bound on how many lines one kind of event may log: the first few of each interval
//! are logged one by one, the rest only counted, by reason, and reported in one summary
//! line when the interval ends.
//!
//! What a client can cause at will (a TLS handshake failure, a refused connection)
//! must not become a log line each: a flood of them would fill disks and drown every
//! other line. The metrics still count every event; the log keeps a sample and the
//! totals.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Lines logged one by one per interval by the limiters of client-caused events (TLS
/// handshake failures, refused tcp connections, collector handshake failures).
pub const DEFAULT_LOG_BURST: u32 = 10;
/// The interval of [`DEFAULT_LOG_BURST`].
pub const DEFAULT_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// What was not logged during one interval, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Suppressed {
    pub total: u64,
    /// Each reason with its count, in the order first seen. Reasons are a small fixed
    /// set (metric label values), so a linear search beats a map.
    pub reasons: Vec<(&'static str, u64)>,
}

impl Suppressed {
    fn add(&mut self, reason: &'static str) {
        self.total += 1;
        match self.reasons.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.reasons.push((reason, 1)),
        }
    }
}

/// `reason=count, ...`, for a log field.
impl std::fmt::Display for Suppressed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (reason, n)) in self.reasons.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{reason}={n}")?;
        }
        Ok(())
    }
}

/// Writes the summary line of an interval's suppressed events.
pub type Summarize = Box<dyn Fn(&Suppressed) + Send + Sync>;

/// The current interval.
#[derive(Debug)]
struct Window {
    start: Instant,
    logged: u32,
    suppressed: Suppressed,
}

/// Lets `burst` events per `interval` be logged; counts the others and has the summary
/// written when their interval ends (by a timer task, so that the last interval of a
/// flood is reported too, not only when the next event comes).
pub struct LogLimiter {
    burst: u32,
    interval: Duration,
    window: Mutex<Option<Window>>,
    summarize: Summarize,
}

impl std::fmt::Debug for LogLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogLimiter")
            .field("burst", &self.burst)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl LogLimiter {
    /// Intervals start at the first event after the previous one ended.
    /// A listener's bound on lines about `what` (`"refused tcp connections"`): the
    /// default burst and interval, and a summary line `{what} not logged one by one`
    /// naming the listener, the count and the reasons.
    pub fn per_listener(listener: Arc<str>, what: &'static str) -> Arc<Self> {
        Self::new(
            DEFAULT_LOG_BURST,
            DEFAULT_LOG_INTERVAL,
            Box::new(move |suppressed| {
                tracing::info!(listener = %listener, suppressed = suppressed.total, reasons = %suppressed, "{what} not logged one by one");
            }),
        )
    }

    pub fn new(burst: u32, interval: Duration, summarize: Summarize) -> Arc<Self> {
        Arc::new(Self {
            burst,
            interval,
            window: Mutex::new(None),
            summarize,
        })
    }

    /// Whether an event of `reason` may be logged now. When it may not, it is counted,
    /// and the first one suppressed in an interval schedules the interval's summary.
    ///
    /// # Panics
    /// Called outside a tokio runtime when an event is suppressed.
    pub fn admit(self: &Arc<Self>, reason: &'static str) -> bool {
        let now = Instant::now();
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let w = match &mut *window {
            Some(w) if now < w.start + self.interval => w,
            slot => {
                // A new interval. What the last one suppressed, if its summary has not
                // been written yet, stays counted and is written with this one's.
                let suppressed = slot.take().map(|w| w.suppressed).unwrap_or_default();
                slot.insert(Window {
                    start: now,
                    logged: 0,
                    suppressed,
                })
            }
        };
        if w.logged < self.burst {
            w.logged += 1;
            return true;
        }
        let first = w.suppressed.total == 0;
        w.suppressed.add(reason);
        if first {
            let (limiter, at) = (Arc::clone(self), w.start + self.interval);
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                limiter.write_summary();
            });
        }
        false
    }

    fn write_summary(&self) {
        let suppressed = {
            let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
            match &mut *window {
                Some(w) => std::mem::take(&mut w.suppressed),
                None => return,
            }
        };
        if suppressed.total > 0 {
            (self.summarize)(&suppressed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// A limiter of 3 per second whose summaries are collected.
    fn limiter() -> (Arc<LogLimiter>, Arc<Mutex<Vec<Suppressed>>>) {
        let summaries = Arc::new(Mutex::new(Vec::new()));
        let sink = summaries.clone();
        let limiter = LogLimiter::new(
            3,
            SECOND,
            Box::new(move |s| sink.lock().unwrap().push(s.clone())),
        );
        (limiter, summaries)
    }

    /// Lets the summary task that is due run.
    async fn let_timers_run() {
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_burst_of_an_interval_is_logged_and_the_rest_counted_by_reason() {
        let (limiter, summaries) = limiter();
        let admitted: Vec<bool> = ["a", "a", "b", "a", "b", "b", "c"]
            .into_iter()
            .map(|r| limiter.admit(r))
            .collect();
        assert_eq!(admitted, [true, true, true, false, false, false, false]);
        let_timers_run().await;
        assert!(summaries.lock().unwrap().is_empty(), "not before the end");
        tokio::time::advance(SECOND).await;
        let_timers_run().await;
        let summaries = summaries.lock().unwrap();
        assert_eq!(
            *summaries,
            [Suppressed {
                total: 4,
                reasons: vec![("a", 1), ("b", 2), ("c", 1)]
            }]
        );
        assert_eq!(summaries[0].to_string(), "a=1, b=2, c=1");
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_interval_logs_a_new_burst_and_a_quiet_one_writes_no_summary() {
        let (limiter, summaries) = limiter();
        for _ in 0..3 {
            assert!(limiter.admit("a"));
        }
        tokio::time::advance(SECOND).await;
        let_timers_run().await;
        assert!(summaries.lock().unwrap().is_empty(), "nothing suppressed");
        for _ in 0..3 {
            assert!(limiter.admit("a"), "a new interval");
        }
        assert!(!limiter.admit("a"));
        tokio::time::advance(SECOND / 2).await;
        assert!(!limiter.admit("a"), "the same interval");
        tokio::time::advance(SECOND / 2).await;
        let_timers_run().await;
        assert_eq!(summaries.lock().unwrap().len(), 1);
        assert_eq!(summaries.lock().unwrap()[0].total, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn every_suppressed_event_is_in_exactly_one_summary() {
        let (limiter, summaries) = limiter();
        let mut suppressed = 0;
        // 10 events every 100ms for 5 seconds: 3 logged per second.
        for _ in 0..50 {
            for _ in 0..10 {
                if !limiter.admit("flood") {
                    suppressed += 1;
                }
            }
            tokio::time::advance(SECOND / 10).await;
            let_timers_run().await;
        }
        tokio::time::advance(SECOND).await;
        let_timers_run().await;
        assert_eq!(suppressed, 500 - 5 * 3);
        let summaries = summaries.lock().unwrap();
        assert_eq!(summaries.len(), 5, "one per interval: {summaries:?}");
        assert_eq!(summaries.iter().map(|s| s.total).sum::<u64>(), suppressed);
    }
}
