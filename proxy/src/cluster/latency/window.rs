//! One endpoint's recent latencies: a sliding window of log-bucketed histograms, from
//! which a percentile is read.
//!
//! The window is cut into [`SLOTS`] slots; each slot holds a histogram of the latencies
//! recorded during it, and a slot is cleared when time comes back round to it, so a
//! read sees the last `window` (give or take one slot) without storing samples. Buckets
//! are a quarter of a power of two wide (4 linear steps per octave, as HdrHistogram does
//! with 2 sub-bucket bits): a percentile is known to within 12.5% of its value, which is
//! plenty to tell a 3x slower endpoint, from [`FLOOR`] to about 36 minutes, in a fixed
//! 4 KiB per endpoint. Hand-written rather than an HdrHistogram per slot: that crate's
//! histograms are sized per precision (tens of KiB each at useful ranges), and all this
//! needs is one fixed array and a cumulative walk.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How many slots the window is cut into (the window slides a slot at a time).
pub const SLOTS: usize = 10;
/// Linear sub-buckets per power of two (2 bits).
const SUB_BITS: u32 = 2;
/// The octave of the first bucket: latencies under 2^17 ns (131 µs) all fall in it.
const FIRST_OCTAVE: u32 = 17;
/// Octaves covered: up to 2^41 ns (about 36 minutes); longer latencies fall in the last.
const OCTAVES: u32 = 24;
const BUCKETS: usize = (OCTAVES << SUB_BITS) as usize;
/// Latencies below this are not told apart (they fall in the first bucket).
pub const FLOOR: Duration = Duration::from_nanos(1 << FIRST_OCTAVE);

/// A percentile of an endpoint's recent latencies, and how many latencies it is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentile {
    pub value: Duration,
    pub samples: u32,
}

#[derive(Debug)]
struct Slot {
    /// Which slot of time (counted from the window's epoch) the counts belong to.
    number: u64,
    counts: [u32; BUCKETS],
    total: u32,
}

/// An endpoint's sliding window of latencies (see the module docs).
#[derive(Debug)]
pub struct LatencyWindow {
    epoch: Instant,
    slot_length: Duration,
    slots: Mutex<Vec<Slot>>,
}

impl LatencyWindow {
    /// A window of `window` (at least [`SLOTS`] ns).
    pub fn new(window: Duration) -> Self {
        let slot_length = (window / SLOTS as u32).max(Duration::from_nanos(1));
        let slots = (0..SLOTS)
            .map(|_| Slot {
                number: u64::MAX,
                counts: [0; BUCKETS],
                total: 0,
            })
            .collect();
        Self {
            epoch: Instant::now(),
            slot_length,
            slots: Mutex::new(slots),
        }
    }

    /// How often the window moves on: a tenth of its length.
    pub fn slot_length(&self) -> Duration {
        self.slot_length
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slot_number(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.epoch).as_nanos();
        (elapsed / self.slot_length.as_nanos()) as u64
    }

    /// Records one finished attempt's latency, at `now`.
    pub fn record(&self, latency: Duration, now: Instant) {
        let number = self.slot_number(now);
        let mut slots = self.lock();
        let slot = &mut slots[(number % SLOTS as u64) as usize];
        if slot.number != number {
            slot.number = number;
            slot.counts = [0; BUCKETS];
            slot.total = 0;
        }
        let bucket = bucket_of(latency);
        slot.counts[bucket] = slot.counts[bucket].saturating_add(1);
        slot.total = slot.total.saturating_add(1);
    }

    /// The `percentile` (1 to 99) of the latencies recorded over the window before
    /// `now`; `None` when there are none.
    pub fn percentile(&self, percentile: u8, now: Instant) -> Option<Percentile> {
        let current = self.slot_number(now);
        let oldest = current.saturating_sub(SLOTS as u64 - 1);
        let mut counts = [0u64; BUCKETS];
        let mut total = 0u64;
        for slot in self.lock().iter() {
            if slot.number != u64::MAX && (oldest..=current).contains(&slot.number) {
                for (sum, count) in counts.iter_mut().zip(&slot.counts) {
                    *sum += u64::from(*count);
                }
                total += u64::from(slot.total);
            }
        }
        if total == 0 {
            return None;
        }
        let rank = (total * u64::from(percentile)).div_ceil(100).max(1);
        let mut seen = 0;
        let bucket = counts
            .iter()
            .position(|count| {
                seen += count;
                seen >= rank
            })
            .unwrap_or(BUCKETS - 1);
        Some(Percentile {
            value: middle_of(bucket),
            samples: u32::try_from(total).unwrap_or(u32::MAX),
        })
    }

    /// Forgets every latency (an ejected endpoint starts afresh when it returns).
    pub fn clear(&self) {
        for slot in self.lock().iter_mut() {
            slot.number = u64::MAX;
            slot.total = 0;
        }
    }
}

/// The bucket a latency falls in: its octave, then which quarter of it.
fn bucket_of(latency: Duration) -> usize {
    let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
    let octave = 63 - ns.max(1).leading_zeros();
    if octave < FIRST_OCTAVE {
        return 0;
    }
    let sub = (ns >> (octave - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    let index = (((octave - FIRST_OCTAVE) << SUB_BITS) as u64 + sub) as usize;
    index.min(BUCKETS - 1)
}

/// The middle of a bucket's range, the value a percentile falling in it is read as.
fn middle_of(bucket: usize) -> Duration {
    let octave = FIRST_OCTAVE + (bucket as u32 >> SUB_BITS);
    let sub = (bucket as u64) & ((1 << SUB_BITS) - 1);
    let step = 1u64 << (octave - SUB_BITS);
    let low = ((1 << SUB_BITS) + sub) * step;
    Duration::from_nanos(low + step / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_percentile_is_read_to_within_an_eighth_of_its_value() {
        for latency in [ms(1), ms(7), ms(50), ms(333), Duration::from_secs(9)] {
            let read = middle_of(bucket_of(latency));
            let error = (read.as_secs_f64() - latency.as_secs_f64()).abs();
            assert!(
                error <= latency.as_secs_f64() / 8.0,
                "{latency:?} read as {read:?}"
            );
        }
        assert_eq!(bucket_of(Duration::ZERO), 0);
        assert_eq!(bucket_of(Duration::from_secs(100_000)), BUCKETS - 1);
        assert!(
            bucket_of(ms(10)) < bucket_of(ms(13)),
            "buckets are finer than 30%"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn percentiles_walk_the_recorded_latencies() {
        let w = LatencyWindow::new(Duration::from_secs(10));
        assert_eq!(w.percentile(50, Instant::now()), None);
        for i in 1..=100 {
            w.record(ms(i), Instant::now());
        }
        let p50 = w.percentile(50, Instant::now()).unwrap();
        assert_eq!(p50.samples, 100);
        assert_eq!(middle_of(bucket_of(ms(50))), p50.value);
        let p90 = w.percentile(90, Instant::now()).unwrap();
        assert_eq!(middle_of(bucket_of(ms(90))), p90.value);
    }

    #[tokio::test(start_paused = true)]
    async fn latencies_leave_the_window_a_slot_at_a_time() {
        let w = LatencyWindow::new(Duration::from_secs(10));
        w.record(ms(500), Instant::now());
        tokio::time::advance(Duration::from_secs(5)).await;
        w.record(ms(10), Instant::now());
        w.record(ms(10), Instant::now());
        let both = w.percentile(99, Instant::now()).unwrap();
        assert_eq!(
            (both.samples, both.value),
            (3, middle_of(bucket_of(ms(500))))
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        let recent = w.percentile(99, Instant::now()).unwrap();
        assert_eq!(recent.samples, 2, "the 500ms latency is 10s old: gone");
        assert_eq!(recent.value, middle_of(bucket_of(ms(10))));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(w.percentile(50, Instant::now()), None, "all gone");
        // A slot reused a window later starts empty.
        w.record(ms(20), Instant::now());
        assert_eq!(w.percentile(50, Instant::now()).unwrap().samples, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn clearing_forgets_everything() {
        let w = LatencyWindow::new(Duration::from_secs(1));
        w.record(ms(300), Instant::now());
        w.clear();
        assert_eq!(w.percentile(50, Instant::now()), None);
        w.record(ms(5), Instant::now());
        assert_eq!(w.percentile(50, Instant::now()).unwrap().samples, 1);
    }
}
