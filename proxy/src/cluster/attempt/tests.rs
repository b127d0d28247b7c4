//! The attempt's accounting, without a socket: gates before the pick, slots and
//! in-flight counts freed however it ends, the breaker told once.

use std::net::SocketAddr;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode};
use meshwork_config::model::ClusterLimits;

use super::*;
use crate::cluster::breaker::BreakerState;
use crate::cluster::test_cluster::{cluster, one_strike_breaker};

const NOWHERE: &str = "127.0.0.1:9";

fn request() -> Admission {
    Admission::Request {
        queued: true,
        retry: false,
    }
}

fn pick() -> Target<'static> {
    Target::Pick {
        avoid: None,
        key: None,
    }
}

fn addr() -> SocketAddr {
    NOWHERE.parse().unwrap()
}

/// A one-endpoint cluster whose breaker has just turned half-open (one trial).
async fn half_open(limits: ClusterLimits) -> Arc<ClusterRuntime> {
    let c = cluster("c", &[addr()], Some(one_strike_breaker()), limits);
    c.endpoints[0].report(false, &c.ejection);
    tokio::time::advance(Duration::from_secs(10)).await;
    c
}

fn state(c: &ClusterRuntime) -> BreakerState {
    c.endpoints[0].breaker.as_ref().unwrap().state()
}

#[tokio::test(start_paused = true)]
async fn a_refusal_at_a_gate_spends_no_half_open_trial() {
    let limits = ClusterLimits {
        max_requests: 1,
        ..Default::default()
    };
    let c = half_open(limits).await;
    let held = c.gates.requests.try_acquire().unwrap();
    assert_eq!(
        c.begin(request(), pick(), None).unwrap_err(),
        ProxyError::Overflow
    );
    drop(held);
    let trial = c
        .begin(request(), pick(), None)
        .expect("the trial is still there");
    assert_eq!(trial.endpoint().in_flight.load(Ordering::Relaxed), 1);
    assert_eq!(c.gates.requests.in_use(), 1);
    drop(trial);
    assert_eq!(c.endpoints[0].in_flight.load(Ordering::Relaxed), 0);
    assert_eq!(c.gates.requests.in_use(), 0, "every slot is freed on drop");
}

#[tokio::test(start_paused = true)]
async fn an_attempt_abandoned_before_its_deadline_gives_its_trial_back() {
    let c = half_open(Default::default()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    drop(c.begin(request(), pick(), Some(deadline)).unwrap());
    assert_eq!(state(&c), BreakerState::HalfOpen);
    let trial = c
        .begin(request(), pick(), None)
        .expect("the trial slot was freed");
    trial.answered(StatusCode::OK, &HeaderMap::new());
    assert_eq!(state(&c), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_dropped_at_its_deadline_is_a_failure_and_a_timeout() {
    let c = cluster(
        "c",
        &[addr()],
        Some(one_strike_breaker()),
        Default::default(),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let attempt = c.begin(request(), pick(), Some(deadline)).unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    drop(attempt);
    assert_eq!(state(&c), BreakerState::Open);
    assert_eq!(c.endpoints[0].metrics.timeouts.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn shedding_load_is_neither_a_failure_nor_a_success() {
    let mut breaker = one_strike_breaker();
    breaker.consecutive_failures = Some(2);
    let c = cluster("c", &[addr()], Some(breaker), Default::default());
    let mut grpc = HeaderMap::new();
    grpc.insert("grpc-status", HeaderValue::from_static("8"));
    let begin = || c.begin(request(), pick(), None).unwrap();
    begin().answered(StatusCode::BAD_GATEWAY, &HeaderMap::new());
    begin().answered(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new());
    begin().answered(StatusCode::OK, &grpc);
    assert_eq!(state(&c), BreakerState::Closed);
    begin().answered(StatusCode::SERVICE_UNAVAILABLE, &HeaderMap::new());
    assert_eq!(
        state(&c),
        BreakerState::Open,
        "the 429 and RESOURCE_EXHAUSTED did not reset the failure streak"
    );
    // Half-open: a shed trial neither closes nor reopens, and frees its slot.
    tokio::time::advance(Duration::from_secs(10)).await;
    begin().answered(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new());
    assert_eq!(state(&c), BreakerState::HalfOpen);
    begin().answered(StatusCode::OK, &HeaderMap::new());
    assert_eq!(state(&c), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_retry_takes_a_max_retries_slot_of_its_own_cluster() {
    let limits = ClusterLimits {
        max_retries: 1,
        ..Default::default()
    };
    let c = cluster("c", &[addr()], None, limits);
    let retry = Admission::Request {
        queued: true,
        retry: true,
    };
    let first = c.begin(retry, pick(), None).unwrap();
    assert_eq!(c.gates.retries.in_use(), 1);
    assert_eq!(
        c.begin(retry, pick(), None).unwrap_err(),
        ProxyError::Overflow
    );
    assert_eq!(
        c.gates.requests.in_use(),
        1,
        "the refused one freed its slot"
    );
    let plain = c
        .begin(request(), pick(), None)
        .expect("a first attempt needs no retry slot");
    drop((first, plain));
    assert_eq!(c.gates.retries.in_use(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_s_own_failures_count_and_local_ones_do_not() {
    let c = cluster(
        "c",
        &[addr()],
        Some(one_strike_breaker()),
        Default::default(),
    );
    let begin = || c.begin(request(), pick(), None).unwrap();
    let _ = begin().failed(ProxyError::Overflow);
    let _ = begin().failed(ProxyError::ClientClosed);
    assert_eq!(state(&c), BreakerState::Closed);
    let _ = begin().failed(ProxyError::UpstreamReset);
    assert_eq!(state(&c), BreakerState::Open);
    assert_eq!(
        c.begin(request(), pick(), None).unwrap_err(),
        ProxyError::CircuitOpen
    );
}

#[tokio::test(start_paused = true)]
async fn a_connection_attempt_hands_its_connection_slot_over() {
    let limits = ClusterLimits {
        max_connections: 1,
        ..Default::default()
    };
    let c = cluster("c", &[addr()], None, limits);
    let mut attempt = c.begin(Admission::Connection, pick(), None).unwrap();
    let slot = attempt.take_connection_slot().unwrap();
    attempt.connected(true);
    assert_eq!(c.gates.connections.in_use(), 1, "the connection holds it");
    assert_eq!(
        c.begin(Admission::Connection, pick(), None).unwrap_err(),
        ProxyError::Overflow
    );
    drop(slot);
    assert_eq!(c.gates.connections.in_use(), 0);
}
