//! A route's recent response time at a percentile — the hedging delay of "The Tail at
//! Scale" (Dean and Barroso, 2013): send a second copy of a request once the first has
//! been outstanding longer than, say, the 95th percentile of recent requests.
//!
//! Response times go into a log-bucketed histogram per one-second slot of a ten-second
//! ring (8 buckets per doubling: a bucket is at most 12.5% wide). When a slot closes, the
//! percentile is computed over the closed slots and kept until the next one closes, so a
//! request reads one number. The estimate is the upper edge of the bucket holding the
//! percentile: it errs on hedging later, never earlier. Written here rather than taken
//! from `hdrhistogram`: a sliding window of fixed, tiny histograms is all it takes, and
//! it keeps the estimate a plain read on the request path.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// One slot of the ring.
pub const SLOT: Duration = Duration::from_secs(1);
/// Slots in the ring: the window is `SLOTS - 1` closed slots (the open one is filling).
pub const SLOTS: usize = 10;
/// Values below this many microseconds have a bucket each.
const LINEAR: u64 = 16;
/// Buckets per doubling above `LINEAR`.
const PER_OCTAVE: u64 = 8;
/// Buckets in all: up to 2^30 µs (about 18 minutes); longer times share the last one.
const BUCKETS: usize = (LINEAR + (30 - 4) * PER_OCTAVE) as usize;
/// Samples above the percentile needed before it is trusted: with fewer, one odd
/// response would move it (so `p95` needs 100 responses in the window, `p99` 500).
const TAIL_SAMPLES: f64 = 5.0;

/// The recent response time at one percentile (see the module docs).
#[derive(Debug)]
pub struct LatencyPercentile {
    /// 50 to 99.9.
    percentile: f64,
    epoch: Instant,
    ring: Mutex<Ring>,
}

#[derive(Debug)]
struct Ring {
    counts: Box<[[u32; BUCKETS]; SLOTS]>,
    /// The slot (seconds since `epoch`, by `SLOT`) that `counts[current % SLOTS]` holds.
    current: u64,
    /// The percentile over the closed slots, when they hold enough samples.
    estimate: Option<Duration>,
}

impl LatencyPercentile {
    pub fn new(percentile: f64) -> Self {
        Self {
            percentile,
            epoch: Instant::now(),
            ring: Mutex::new(Ring {
                counts: Box::new([[0; BUCKETS]; SLOTS]),
                current: 0,
                estimate: None,
            }),
        }
    }

    pub fn percentile(&self) -> f64 {
        self.percentile
    }

    /// Counts one response that took `elapsed`.
    pub fn record(&self, elapsed: Duration) {
        let mut ring = self.ring();
        let slot = ring.current as usize % SLOTS;
        let counter = &mut ring.counts[slot][bucket(elapsed)];
        *counter = counter.saturating_add(1);
    }

    /// The percentile of the closed slots of the window; `None` until they hold enough
    /// responses.
    pub fn estimate(&self) -> Option<Duration> {
        self.ring().estimate
    }

    /// The ring, moved on to the current slot (closing the ones that ended).
    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        let now = (self.epoch.elapsed().as_nanos() / SLOT.as_nanos()) as u64;
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if now > ring.current {
            let stale = (now - ring.current).min(SLOTS as u64);
            for s in now - stale + 1..=now {
                ring.counts[s as usize % SLOTS] = [0; BUCKETS];
            }
            ring.current = now;
            ring.estimate = ring.percentile_of_closed(self.percentile);
        }
        ring
    }
}

impl Ring {
    fn percentile_of_closed(&self, percentile: f64) -> Option<Duration> {
        let open = self.current as usize % SLOTS;
        let mut merged = [0u64; BUCKETS];
        for (slot, counts) in self.counts.iter().enumerate() {
            if slot == open {
                continue;
            }
            for (sum, count) in merged.iter_mut().zip(counts) {
                *sum += u64::from(*count);
            }
        }
        let total: u64 = merged.iter().sum();
        let tail = 1.0 - percentile / 100.0;
        if (total as f64) * tail < TAIL_SAMPLES {
            return None;
        }
        // The smallest bucket with at least `percentile`% of the samples at or below it.
        let rank = ((total as f64) * percentile / 100.0).ceil() as u64;
        let mut seen = 0;
        merged.iter().enumerate().find_map(|(index, count)| {
            seen += count;
            (seen >= rank.max(1)).then(|| upper_edge(index))
        })
    }
}

/// The bucket of a response time.
fn bucket(elapsed: Duration) -> usize {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    if micros < LINEAR {
        return micros as usize;
    }
    let octave = u64::from(63 - micros.leading_zeros()); // >= 4
    let sub = (micros >> (octave - 3)) & (PER_OCTAVE - 1);
    let index = LINEAR + (octave - 4) * PER_OCTAVE + sub;
    (index as usize).min(BUCKETS - 1)
}

/// The smallest time above every value of bucket `index`.
fn upper_edge(index: usize) -> Duration {
    let index = index as u64;
    if index < LINEAR {
        return Duration::from_micros(index + 1);
    }
    let octave = (index - LINEAR) / PER_OCTAVE + 4;
    let sub = (index - LINEAR) % PER_OCTAVE;
    Duration::from_micros((PER_OCTAVE + sub + 1) << (octave - 3))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Duration = Duration::from_millis(2);
    const SLOW: Duration = Duration::from_millis(200);

    /// 19 fast responses for each slow one, `n` times.
    fn bimodal(estimator: &LatencyPercentile, n: usize) {
        for _ in 0..n {
            for _ in 0..19 {
                estimator.record(FAST);
            }
            estimator.record(SLOW);
        }
    }

    #[test]
    fn buckets_cover_every_time_and_their_edges_bound_it_within_an_eighth() {
        for micros in [
            0, 1, 15, 16, 17, 100, 2_000, 2_047, 2_048, 200_000, 10_000_000,
        ] {
            let d = Duration::from_micros(micros);
            let edge = upper_edge(bucket(d));
            assert!(edge > d, "{d:?} is below its bucket's edge {edge:?}");
            assert!(
                edge.as_secs_f64() <= d.as_secs_f64() * 1.125 + 1e-6,
                "{d:?}: edge {edge:?}"
            );
        }
        assert_eq!(bucket(Duration::from_secs(1 << 40)), BUCKETS - 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_percentile_comes_from_closed_slots_once_they_hold_enough_samples() {
        let p90 = LatencyPercentile::new(90.0);
        let p99 = LatencyPercentile::new(99.0);
        bimodal(&p90, 10);
        bimodal(&p99, 10);
        assert_eq!(p90.estimate(), None, "the slot is still open");
        tokio::time::advance(SLOT).await;
        let fast = p90.estimate().expect("200 samples: 20 above p90");
        assert!(fast > FAST && fast <= FAST * 9 / 8, "{fast:?}");
        assert_eq!(p99.estimate(), None, "200 samples: only 2 above p99");
        bimodal(&p99, 20);
        tokio::time::advance(SLOT).await;
        let slow = p99.estimate().expect("600 samples: 6 above p99");
        assert!(slow > SLOW && slow <= SLOW * 9 / 8, "{slow:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_slides_and_forgets_old_responses() {
        let p95 = LatencyPercentile::new(95.0);
        for _ in 0..100 {
            p95.record(SLOW);
        }
        tokio::time::advance(SLOT).await;
        assert!(p95.estimate().is_some_and(|d| d > SLOW));
        // The slow second stays in the window while faster ones arrive...
        for _ in 0..4 {
            for _ in 0..100 {
                p95.record(FAST);
            }
            tokio::time::advance(SLOT).await;
        }
        assert!(
            p95.estimate().is_some_and(|d| d > SLOW),
            "100 of 500 are slow"
        );
        // ...and leaves it after the window has passed.
        tokio::time::advance(SLOT * (SLOTS as u32 - 4)).await;
        for _ in 0..100 {
            p95.record(FAST);
        }
        tokio::time::advance(SLOT).await;
        let now = p95.estimate().expect("100 fast samples");
        assert!(now <= FAST * 9 / 8, "{now:?}");
        tokio::time::advance(SLOT * SLOTS as u32).await;
        assert_eq!(p95.estimate(), None, "nothing left in the window");
    }
}
