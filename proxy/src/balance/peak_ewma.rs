//! `peak_ewma`: the power of two choices over a peak-sensitive moving average of each
//! endpoint's latency times its load, as in Finagle and linkerd2-proxy.
//!
//! Each endpoint keeps a [`PeakEwma`] of its response times (time to the response
//! head). An observation above the current estimate replaces it at once (the "peak"),
//! so an endpoint turning slow loses traffic right away; below, it is blended in with
//! a weight that grows with the time since the last one, so the estimate decays towards
//! recent values over the cluster's `peak_ewma.decay` ([`DEFAULT_DECAY`] unless set).
//! Between observations the estimate decays towards zero, so an endpoint that got no
//! traffic for a while is tried again. The cost compared is `estimate * (in_flight + 1)`:
//! a fast endpoint that is already busy loses to a slightly slower idle one.
//!
//! The decay's `exp` is the `libm` crate's rather than `f64::exp`, which is glibc's
//! libm: the `meshwork` binary does not load that library (its `float_symbols` module).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The latency assumed for an endpoint not yet observed (linkerd2-proxy's default).
pub const DEFAULT_RTT: Duration = Duration::from_millis(30);
/// The time over which old observations lose their weight (linkerd2-proxy's default).
pub const DEFAULT_DECAY: Duration = meshwork_config::model::DEFAULT_EWMA_DECAY;

/// One endpoint's latency estimate as stored: the value in nanoseconds at its last
/// update, and that update's time (nanoseconds since the cluster's common epoch).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Estimate {
    pub stored_ns: f64,
    pub stamp_ns: u64,
}

/// Whether `b` costs less than `a` now, the cost being `estimate * (in_flight + 1)`.
///
/// Both estimates decay by `exp(-(now - stamp) / decay)`, so the common factor
/// `exp(-now / decay)` cancels out of the comparison: it takes one `exp` of the
/// difference of their stamps and no clock read. Weights only set how often an
/// endpoint is drawn into the comparison (see [`super::least_request::pick`]).
pub fn cheaper(b: (Estimate, usize), a: (Estimate, usize), decay_ns: f64) -> bool {
    let (eb, qb) = b;
    let (ea, qa) = a;
    let age = (eb.stamp_ns as f64 - ea.stamp_ns as f64) / decay_ns;
    let cost_b = eb.stored_ns * (qb as f64 + 1.0) * libm::exp(age);
    let cost_a = ea.stored_ns * (qa as f64 + 1.0);
    cost_b < cost_a
}

/// One endpoint's peak-sensitive EWMA of response times, updated lock-free.
///
/// The estimate (f64 nanoseconds) and the time of its last update are two atomics: an
/// update races another only in which of two near-simultaneous observations decays the
/// other, which moves the estimate by less than either observation.
#[derive(Debug)]
pub struct PeakEwma {
    /// f64 bits of the estimate, in nanoseconds.
    estimate: AtomicU64,
    /// Nanoseconds since `epoch` of the last update.
    stamp: AtomicU64,
    epoch: Instant,
    decay_ns: f64,
}

impl PeakEwma {
    /// Starts at `initial` (as if observed at `epoch`), decaying over `decay`. The
    /// endpoints of one cluster share an `epoch`, so their stamps compare.
    pub fn new(initial: Duration, decay: Duration, epoch: Instant) -> Self {
        Self {
            estimate: AtomicU64::new((initial.as_nanos() as f64).to_bits()),
            stamp: AtomicU64::new(0),
            epoch,
            decay_ns: decay.as_nanos().max(1) as f64,
        }
    }

    /// The estimate as stored, for [`cheaper`].
    pub fn stored(&self) -> Estimate {
        Estimate {
            stored_ns: f64::from_bits(self.estimate.load(Ordering::Relaxed)),
            stamp_ns: self.stamp.load(Ordering::Relaxed),
        }
    }

    fn since_epoch(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// How much of the stored estimate is left at `now`: `exp(-elapsed / decay)`.
    fn retained(&self, now_ns: u64) -> f64 {
        let elapsed = now_ns.saturating_sub(self.stamp.load(Ordering::Relaxed)) as f64;
        libm::exp(-elapsed / self.decay_ns)
    }

    /// The estimate at `now`, in nanoseconds.
    pub fn estimate_ns(&self, now: Instant) -> f64 {
        let stored = f64::from_bits(self.estimate.load(Ordering::Relaxed));
        stored * self.retained(self.since_epoch(now))
    }

    /// Adds one response time observed at `now`.
    pub fn observe(&self, rtt: Duration, now: Instant) {
        let rtt = rtt.as_nanos() as f64;
        let now_ns = self.since_epoch(now);
        let retained = self.retained(now_ns);
        let _ = self
            .estimate
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let decayed = f64::from_bits(bits) * retained;
                let next = if rtt > decayed {
                    rtt
                } else {
                    decayed + rtt * (1.0 - retained)
                };
                Some(next.to_bits())
            });
        self.stamp.fetch_max(now_ns, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use meshwork_config::model::LoadBalancer;

    use super::*;
    use crate::balance::testing::{FakeEndpoints, assert_shares, seeded};
    use crate::balance::{Balancer, EndpointSpec};

    const MS: f64 = 1e6;

    #[test]
    fn a_slower_response_is_taken_at_once() {
        let t0 = Instant::now();
        let ewma = PeakEwma::new(Duration::from_millis(10), DEFAULT_DECAY, t0);
        ewma.observe(Duration::from_millis(200), t0 + Duration::from_millis(1));
        let now = t0 + Duration::from_millis(1);
        assert!((ewma.estimate_ns(now) - 200.0 * MS).abs() < 1.0);
    }

    #[test]
    fn faster_responses_pull_the_estimate_down_over_the_decay_time() {
        let t0 = Instant::now();
        let decay = Duration::from_secs(10);
        let ewma = PeakEwma::new(Duration::from_millis(100), decay, t0);
        // One fast response right away barely moves it...
        ewma.observe(Duration::from_millis(10), t0 + Duration::from_millis(10));
        let soon = ewma.estimate_ns(t0 + Duration::from_millis(10));
        assert!(soon > 99.0 * MS, "{soon}");
        // ...a decay time of 10 ms responses brings it most of the way.
        let mut t = t0;
        for _ in 0..1000 {
            t += Duration::from_millis(10);
            ewma.observe(Duration::from_millis(10), t);
        }
        let later = ewma.estimate_ns(t);
        assert!(later < 10.0 * MS + 0.4 * 90.0 * MS, "{later}");
        assert!(later >= 10.0 * MS, "{later}");
    }

    #[test]
    fn without_observations_the_estimate_decays_to_zero() {
        let t0 = Instant::now();
        let ewma = PeakEwma::new(DEFAULT_RTT, Duration::from_secs(1), t0);
        let e = ewma.estimate_ns(t0 + Duration::from_secs(1));
        assert!((e - 30.0 * MS / std::f64::consts::E).abs() < 1.0, "{e}");
        assert!(ewma.estimate_ns(t0 + Duration::from_secs(60)) < 1.0);
    }

    #[test]
    fn the_comparison_without_a_clock_agrees_with_decayed_costs() {
        let decay = Duration::from_secs(10);
        let t0 = Instant::now();
        let mut rng = seeded();
        for _ in 0..10_000 {
            use rand::Rng;
            let a = PeakEwma::new(Duration::from_millis(rng.random_range(1..200)), decay, t0);
            let b = PeakEwma::new(Duration::from_millis(rng.random_range(1..200)), decay, t0);
            a.observe(
                Duration::from_millis(rng.random_range(1..200)),
                t0 + Duration::from_millis(rng.random_range(0..30_000)),
            );
            b.observe(
                Duration::from_millis(rng.random_range(1..200)),
                t0 + Duration::from_millis(rng.random_range(0..30_000)),
            );
            let (qa, qb) = (rng.random_range(0..5), rng.random_range(0..5));
            let now = t0 + Duration::from_secs(40);
            let cost_a = a.estimate_ns(now) * (qa as f64 + 1.0);
            let cost_b = b.estimate_ns(now) * (qb as f64 + 1.0);
            if (cost_a - cost_b).abs() > 1e-6 * cost_a.max(cost_b) {
                let decay_ns = decay.as_nanos() as f64;
                assert_eq!(
                    cheaper((b.stored(), qb), (a.stored(), qa), decay_ns),
                    cost_b < cost_a
                );
            }
        }
    }

    #[test]
    fn an_old_high_estimate_has_decayed_below_a_fresh_one() {
        let decay_ns = 1e9;
        let old = Estimate {
            stored_ns: 100.0 * MS,
            stamp_ns: 0,
        };
        let fresh = Estimate {
            stored_ns: 20.0 * MS,
            stamp_ns: 5_000_000_000,
        };
        // 100 ms five decay times ago is 0.67 ms now.
        assert!(cheaper((old, 0), (fresh, 0), decay_ns));
        assert!(!cheaper((fresh, 0), (old, 0), decay_ns));
        // Under enough load the old one loses again: 0.67 ms x 40 > 20 ms.
        assert!(cheaper((fresh, 0), (old, 39), decay_ns));
    }

    fn balancer(n: usize) -> Balancer {
        let keys: Vec<String> = (0..n).map(|i| format!("10.0.0.{i}:80")).collect();
        let specs: Vec<EndpointSpec<'_>> = keys
            .iter()
            .map(|key| EndpointSpec { key, weight: 1 })
            .collect();
        Balancer::new(LoadBalancer::PeakEwma, &specs, &mut seeded())
    }

    #[test]
    fn equal_latencies_share_evenly() {
        let lb = balancer(5);
        let mut eps = FakeEndpoints::new(5);
        eps.latency_ns = vec![5.0 * MS; 5];
        let mut rng = seeded();
        let mut counts = vec![0u64; 5];
        for _ in 0..100_000 {
            counts[lb.pick(&eps, None, None, &mut rng).unwrap()] += 1;
        }
        assert_shares(&counts, &[1; 5]);
    }

    #[test]
    fn a_slow_endpoint_is_not_picked_while_faster_ones_are_idle() {
        let lb = balancer(3);
        let mut eps = FakeEndpoints::new(3);
        eps.latency_ns = vec![5.0 * MS, 100.0 * MS, 5.0 * MS];
        let mut rng = seeded();
        let mut counts = [0u64; 3];
        for _ in 0..100_000 {
            counts[lb.pick(&eps, None, None, &mut rng).unwrap()] += 1;
        }
        assert_eq!(counts[1], 0);
    }

    #[test]
    fn a_fast_but_busy_endpoint_loses_to_an_idle_slower_one() {
        let lb = balancer(2);
        let mut eps = FakeEndpoints::new(2);
        eps.latency_ns = vec![5.0 * MS, 8.0 * MS];
        eps.in_flight = vec![4, 0];
        let mut rng = seeded();
        let mut counts = [0u64; 2];
        for _ in 0..10_000 {
            counts[lb.pick(&eps, None, None, &mut rng).unwrap()] += 1;
        }
        assert!(counts[1] > counts[0] * 2, "{counts:?}");
    }
}
