//! The breaker's state machine under tokio's paused clock.

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
