//! The ejection decision on plain percentiles, then on a real cluster under tokio's
//! paused clock: the window, the judgement period, the open time's backoff, the cap and
//! slow start after the return.

use std::net::SocketAddr;
use std::sync::Arc;

use meshwork_config::model;

use super::*;
use crate::cluster::breaker::EjectionCause;
use crate::cluster::test_cluster::cluster;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn settings() -> LatencyEjection {
    LatencyEjection {
        factor: 3.0,
        min_latency: ms(20),
        min_requests: 10,
        window: Duration::from_secs(10),
        percentile: 50,
    }
}

fn at(value: Duration, samples: u32) -> Option<Percentile> {
    Some(Percentile { value, samples })
}

#[test]
fn equally_slow_endpoints_are_all_normal() {
    let d = LatencyOutliers::new(settings());
    let slow = at(ms(500), 100);
    assert_eq!(d.judge(&[slow, slow, slow]), vec![Judgement::Normal; 3]);
}

#[test]
fn one_endpoint_five_times_slower_is_slow_and_only_it() {
    let d = LatencyOutliers::new(settings());
    let judged = d.judge(&[at(ms(50), 20), at(ms(250), 20), at(ms(55), 20)]);
    assert_eq!(
        judged,
        vec![
            Judgement::Normal,
            Judgement::Slow {
                latency: ms(250),
                others: ms(55)
            },
            Judgement::Normal
        ]
    );
    // Two endpoints: each is compared with the other.
    let judged = d.judge(&[at(ms(50), 20), at(ms(250), 20)]);
    assert!(matches!(judged[1], Judgement::Slow { .. }), "{judged:?}");
    assert_eq!(judged[0], Judgement::Normal);
}

#[test]
fn too_few_latencies_or_nobody_to_compare_with_is_no_judgement() {
    let d = LatencyOutliers::new(settings());
    assert_eq!(
        d.judge(&[at(ms(50), 20), at(ms(250), 9), at(ms(55), 20)])[1],
        Judgement::Unjudged,
        "9 latencies, 10 needed"
    );
    assert_eq!(
        d.judge(&[at(ms(50), 9), at(ms(250), 20), None]),
        vec![Judgement::Unjudged; 3],
        "nobody else has enough to be a reference"
    );
    assert_eq!(d.judge(&[at(ms(250), 20)]), vec![Judgement::Unjudged]);
}

#[test]
fn the_factor_and_the_floor_both_must_be_passed() {
    let d = LatencyOutliers::new(settings());
    assert_eq!(
        d.judge(&[at(ms(50), 20), at(ms(150), 20), at(ms(50), 20)])[1],
        Judgement::Normal,
        "exactly 3x is not above 3x"
    );
    assert_eq!(
        d.judge(&[at(ms(1), 20), at(ms(15), 20), at(ms(1), 20)])[1],
        Judgement::Normal,
        "15x slower, but under min_latency"
    );
}

#[test]
fn a_slow_majority_is_the_norm_and_the_fast_are_not_slow() {
    let d = LatencyOutliers::new(settings());
    let judged = d.judge(&[
        at(ms(500), 20),
        at(ms(500), 20),
        at(ms(500), 20),
        at(ms(50), 20),
        at(ms(50), 20),
    ]);
    assert_eq!(judged, vec![Judgement::Normal; 5]);
}

fn breaker() -> model::CircuitBreaker {
    model::CircuitBreaker {
        consecutive_failures: None,
        failure_rate: None,
        open_duration: Duration::from_secs(10),
        max_open_duration: Duration::from_secs(25),
        half_open_requests: 1,
        max_ejected_percent: 50,
        latency: Some(settings()),
        slow_start: Some(Duration::from_secs(10)),
    }
}

fn three_endpoints() -> Arc<ClusterRuntime> {
    let addrs: Vec<SocketAddr> = ["127.0.0.1:9", "127.0.0.1:10", "127.0.0.1:11"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    cluster("c", &addrs, Some(breaker()), Default::default())
}

/// `count` finished attempts at each endpoint, taking `latencies[i]` at endpoint `i`.
fn traffic(c: &ClusterRuntime, latencies: &[u64], count: usize) {
    for _ in 0..count {
        for (ep, &latency) in c.endpoints.iter().zip(latencies) {
            ep.observe_latency_at(ms(latency), Instant::now());
        }
    }
}

fn state(c: &ClusterRuntime, i: usize) -> BreakerState {
    c.endpoints[i].breaker.as_ref().unwrap().state()
}

#[tokio::test(start_paused = true)]
async fn a_slow_endpoint_is_ejected_at_the_next_judgement_with_its_cause() {
    let c = three_endpoints();
    traffic(&c, &[40, 200, 40], 10);
    judge_if_due(&c, Instant::now());
    assert_eq!(state(&c, 1), BreakerState::Open);
    assert_eq!(
        (state(&c, 0), state(&c, 2)),
        (BreakerState::Closed, BreakerState::Closed)
    );
    let Some(EjectionCause::Latency { latency, others }) =
        c.endpoints[1].breaker.as_ref().unwrap().cause()
    else {
        panic!("ejected for latency");
    };
    assert!(latency > others.mul_f64(3.0), "{latency:?} vs {others:?}");
    assert_eq!(
        c.endpoints[1]
            .latency_window
            .as_ref()
            .unwrap()
            .percentile(50, Instant::now()),
        None,
        "its window starts afresh"
    );
}

#[tokio::test(start_paused = true)]
async fn the_cluster_is_judged_once_per_tenth_of_the_window() {
    let c = three_endpoints();
    traffic(&c, &[40, 40, 40], 10);
    judge_if_due(&c, Instant::now());
    // Now one turns slow: nothing happens until a tenth of the window (1s) has passed.
    traffic(&c, &[40, 400, 40], 30);
    judge_if_due(&c, Instant::now());
    assert_eq!(state(&c, 1), BreakerState::Closed, "judged already");
    tokio::time::advance(ms(999)).await;
    judge_if_due(&c, Instant::now());
    assert_eq!(state(&c, 1), BreakerState::Closed);
    tokio::time::advance(ms(1)).await;
    judge_if_due(&c, Instant::now());
    assert_eq!(state(&c, 1), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn too_few_latencies_in_the_window_eject_nobody() {
    let c = three_endpoints();
    traffic(&c, &[40, 400, 40], 9);
    judge_if_due(&c, Instant::now());
    assert_eq!(state(&c, 1), BreakerState::Closed, "9 of 10 latencies");
    // Old latencies leave the window: 9 then 9 more 10s later is never 10 at once.
    tokio::time::advance(Duration::from_secs(10)).await;
    traffic(&c, &[40, 400, 40], 9);
    judge_if_due(&c, Instant::now());
    assert_eq!(state(&c, 1), BreakerState::Closed);
    traffic(&c, &[40, 400, 40], 1);
    tokio::time::advance(Duration::from_secs(1)).await;
    judge_if_due(&c, Instant::now());
    assert_eq!(state(&c, 1), BreakerState::Open, "10 within the window");
}

/// Lets endpoint 1 pass its half-open trial once its open time is up.
fn return_after_trial(c: &ClusterRuntime) {
    assert!(c.endpoints[1].admit(), "half-open trial");
    c.endpoints[1].report(true, &c.ejection);
    assert_eq!(state(c, 1), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn repeated_latency_ejections_double_the_open_time_until_judged_normal() {
    let c = three_endpoints();
    // open_duration 10s, doubled, capped at max_open_duration 25s.
    for expected in [10u64, 20, 25] {
        traffic(&c, &[40, 400, 40], 10);
        tokio::time::advance(Duration::from_secs(1)).await;
        judge_if_due(&c, Instant::now());
        assert_eq!(state(&c, 1), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(expected) - ms(1)).await;
        assert!(!c.endpoints[1].admit(), "still open before {expected}s");
        tokio::time::advance(ms(1)).await;
        return_after_trial(&c);
    }
    // Judged normal once back: the next ejection is back to 10s.
    traffic(&c, &[40, 40, 40], 10);
    tokio::time::advance(Duration::from_secs(1)).await;
    judge_if_due(&c, Instant::now());
    assert_eq!(state(&c, 1), BreakerState::Closed);
    tokio::time::advance(Duration::from_secs(10)).await;
    traffic(&c, &[40, 400, 40], 10);
    judge_if_due(&c, Instant::now());
    assert_eq!(state(&c, 1), BreakerState::Open);
    tokio::time::advance(Duration::from_secs(10)).await;
    return_after_trial(&c);
}

#[tokio::test(start_paused = true)]
async fn max_ejected_percent_caps_latency_ejections() {
    let addrs: Vec<SocketAddr> = (20..24)
        .map(|p| format!("127.0.0.1:{p}").parse().unwrap())
        .collect();
    let mut b = breaker();
    b.max_ejected_percent = 25;
    let c = cluster("c", &addrs, Some(b), Default::default());
    traffic(&c, &[40, 400, 40, 40], 10);
    judge_if_due(&c, Instant::now());
    assert_eq!(state(&c, 1), BreakerState::Open);
    // A second slow endpoint finds the budget (1 of 4) spent.
    tokio::time::advance(Duration::from_secs(1)).await;
    traffic(&c, &[40, 0, 400, 40], 10);
    judge_if_due(&c, Instant::now());
    assert_eq!(
        state(&c, 2),
        BreakerState::Closed,
        "max_ejected_percent: 25"
    );
}

#[tokio::test(start_paused = true)]
async fn a_returning_endpoint_ramps_its_share_over_slow_start() {
    let c = three_endpoints();
    traffic(&c, &[40, 400, 40], 10);
    judge_if_due(&c, Instant::now());
    assert_eq!(c.endpoints[1].share(), 1.0, "no ramp while ejected");
    tokio::time::advance(Duration::from_secs(10)).await;
    return_after_trial(&c);
    let share = |c: &ClusterRuntime| c.endpoints[1].share();
    assert!((share(&c) - 0.1).abs() < 1e-9, "a tenth at first");
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!((share(&c) - 0.55).abs() < 1e-9);
    // Its picks follow: with round robin over 3, it gets about share / 3 of them.
    let mut picked = 0;
    for _ in 0..3000 {
        let ep = c.pick(None, None).unwrap();
        picked += usize::from(Arc::ptr_eq(ep, &c.endpoints[1]));
    }
    // 1000 turns taken with p = 0.55: mean 550, sd about 16; 8 sd either side.
    assert!((424..=676).contains(&picked), "{picked} of 3000 picks");
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(share(&c), 1.0, "fully back after slow_start");
}

#[tokio::test(start_paused = true)]
async fn answered_and_timed_out_attempts_are_latencies_abandoned_ones_are_not() {
    use crate::cluster::attempt::{Admission, Target};
    let c = three_endpoints();
    let begin = |deadline: Option<Instant>| {
        let request = Admission::Request {
            queued: false,
            retry: false,
        };
        let target = Target::Endpoint(c.endpoints[0].clone());
        c.begin(request, target, deadline).unwrap()
    };
    let samples = || {
        c.endpoints[0]
            .latency_window
            .as_ref()
            .unwrap()
            .percentile(50, Instant::now())
            .map_or(0, |p| p.samples)
    };
    let answered = begin(None);
    tokio::time::advance(ms(30)).await;
    answered.answered(http::StatusCode::OK, &http::HeaderMap::new());
    assert_eq!(samples(), 1);
    let abandoned = begin(Some(Instant::now() + ms(100)));
    tokio::time::advance(ms(50)).await;
    drop(abandoned);
    assert_eq!(samples(), 1, "cancelled before its deadline: no latency");
    let cut = begin(Some(Instant::now() + ms(100)));
    tokio::time::advance(ms(100)).await;
    drop(cut);
    assert_eq!(
        samples(),
        2,
        "cut at its deadline: it took at least that long"
    );
    let shedding = begin(None);
    shedding.answered(http::StatusCode::TOO_MANY_REQUESTS, &http::HeaderMap::new());
    assert_eq!(samples(), 2, "a quick refusal says nothing of its latency");
}
