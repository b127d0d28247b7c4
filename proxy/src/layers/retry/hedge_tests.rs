//! Hedging driven by hand with `tower-test`'s mock upstream and tokio's paused clock:
//! each attempt begins a real `Attempt` at a real two-endpoint cluster (as the endpoint
//! layer does), then waits for the test to answer it, so a cancelled loser shows what
//! its endpoint was told.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_test::mock;

use super::RetryLayer;
use super::hedge::HedgeEvent;
use crate::cluster::ClusterRuntime;
use crate::cluster::attempt::{Admission, Target};
use crate::cluster::breaker::BreakerState;
use crate::cluster::test_cluster::{cluster, one_strike_breaker};
use crate::http::{ProxyError, ResponseBody};
use crate::layers::test_request::{routed, snapshot};
use crate::layers::{ProxyRequest, ProxyResponse};
use crate::snapshot::Snapshot;

const HEDGE_DELAY: Duration = Duration::from_millis(10);

/// What the mock upstream sees of an attempt: whether it is the hedge, and the endpoint
/// it went to.
type Seen = (bool, String);
type Handle = mock::Handle<Seen, ProxyResponse>;

/// A route `api` to cluster `app` with `policies` (YAML flow mappings).
fn route_with(policies: &str) -> Arc<Snapshot> {
    snapshot(&format!(
        "route_tables:\n  edge:\n    - name: api\n      backends: [{{ cluster: app }}]\n{policies}\
         clusters:\n  - {{ name: app, endpoints: [127.0.0.1:9] }}\n"
    ))
}

/// The stack below the retry layer: an attempt at `app` (two endpoints, breakers that
/// open at the first failure), answered through the mock.
fn upstream(
    app: Arc<ClusterRuntime>,
) -> (
    impl tower::Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError, Future: Send>
    + Clone
    + Send
    + 'static,
    Handle,
) {
    let (mock, handle) = mock::pair::<Seen, ProxyResponse>();
    let svc = tower::service_fn(move |req: ProxyRequest| {
        let (app, mock) = (app.clone(), mock.clone());
        async move {
            let ctx = req.ctx;
            let avoid = ctx.retry.then(|| ctx.record.last_endpoint()).flatten();
            let admission = Admission::Request {
                queued: false,
                retry: ctx.retry,
            };
            let target = Target::Pick {
                avoid: avoid.as_ref(),
                key: None,
            };
            let attempt = app.begin(admission, target, ctx.deadline)?;
            let endpoint = attempt.endpoint().clone();
            ctx.record.attempted(&app, Some(&endpoint), ctx.hedge);
            let seen = (ctx.hedge, endpoint.address_text.to_string());
            match mock.oneshot(seen).await {
                Ok(rsp) => {
                    attempt.answered(rsp.status(), rsp.headers());
                    Ok(rsp)
                }
                Err(_) => {
                    attempt.failed(ProxyError::UpstreamReset);
                    Err(ProxyError::UpstreamReset)
                }
            }
        }
    });
    (svc, handle)
}

fn app() -> Arc<ClusterRuntime> {
    app_with(Some(one_strike_breaker()))
}

fn app_with(breaker: Option<meshwork_config::model::CircuitBreaker>) -> Arc<ClusterRuntime> {
    let endpoints = [
        "127.0.0.1:9001".parse().unwrap(),
        "127.0.0.1:9002".parse().unwrap(),
    ];
    cluster("app", &endpoints, breaker, Default::default())
}

/// A GET through the retry layer over `svc`, under way.
fn get<S>(
    snapshot: &Arc<Snapshot>,
    svc: S,
) -> tokio::task::JoinHandle<Result<ProxyResponse, ProxyError>>
where
    S: tower::Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError, Future: Send>
        + Clone
        + Send
        + 'static,
{
    tokio::spawn(
        RetryLayer
            .layer(svc)
            .oneshot(routed(snapshot, http::Method::GET)),
    )
}

fn ok() -> ProxyResponse {
    ProxyResponse::new(ResponseBody::empty())
}

fn counted(snapshot: &Snapshot, event: HedgeEvent) -> u64 {
    snapshot
        .http_listener("edge")
        .unwrap()
        .hedges_counted("api", event)
}

/// Every endpoint's breaker is closed and nothing is in flight or timed out: no
/// endpoint was blamed for anything.
fn nobody_blamed(app: &ClusterRuntime) {
    for e in &app.endpoints {
        assert_eq!(e.breaker.as_ref().unwrap().state(), BreakerState::Closed);
        assert_eq!(e.in_flight.load(std::sync::atomic::Ordering::Relaxed), 0);
        assert_eq!(e.metrics.timeouts.get(), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn a_hedge_that_answers_first_wins_and_the_first_attempt_is_cancelled_unblamed() {
    let snapshot = route_with("      hedge: { delay: 10ms }\n");
    let app = app();
    let (svc, mut handle) = upstream(app.clone());
    let req = routed(&snapshot, http::Method::GET);
    let record = req.ctx.record.clone();
    let started = Instant::now();
    let call = tokio::spawn(RetryLayer.layer(svc).oneshot(req));

    let ((hedge, first_endpoint), _first) = handle.next_request().await.unwrap();
    assert!(!hedge);
    let ((hedge, hedge_endpoint), answer) = handle.next_request().await.unwrap();
    assert!(hedge, "the second attempt is the hedge");
    assert_eq!(
        started.elapsed(),
        HEDGE_DELAY,
        "sent when the delay ran out"
    );
    assert_ne!(hedge_endpoint, first_endpoint, "to the other endpoint");
    answer.send_response(ok());

    let rsp = call.await.unwrap().unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
    nobody_blamed(&app);
    let last = record.last_attempt().unwrap();
    assert_eq!(*last.endpoint.unwrap().address_text, *hedge_endpoint);
    assert_eq!(record.hedges(), (1, true));
    assert_eq!(record.attempts_sent(), 2);
    assert_eq!(counted(&snapshot, HedgeEvent::Sent), 1);
    assert_eq!(counted(&snapshot, HedgeEvent::Won), 1);
    assert_eq!(counted(&snapshot, HedgeEvent::Wasted), 1);
}

#[tokio::test(start_paused = true)]
async fn a_first_attempt_that_answers_before_the_hedge_wins_and_the_hedge_is_wasted() {
    let snapshot = route_with("      hedge: { delay: 10ms }\n");
    let app = app();
    let (svc, mut handle) = upstream(app.clone());
    let req = routed(&snapshot, http::Method::GET);
    let record = req.ctx.record.clone();
    let call = tokio::spawn(RetryLayer.layer(svc).oneshot(req));

    let ((_, first_endpoint), first) = handle.next_request().await.unwrap();
    let ((hedge, _), _hedge_answer) = handle.next_request().await.unwrap();
    assert!(hedge);
    first.send_response(ok());

    assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);
    nobody_blamed(&app);
    let last = record.last_attempt().unwrap();
    assert_eq!(*last.endpoint.unwrap().address_text, *first_endpoint);
    assert_eq!(record.hedges(), (1, false));
    assert_eq!(counted(&snapshot, HedgeEvent::Won), 0);
    assert_eq!(counted(&snapshot, HedgeEvent::Wasted), 1);
}

#[tokio::test(start_paused = true)]
async fn a_quick_answer_sends_no_hedge() {
    let snapshot = route_with("      hedge: { delay: 10ms }\n");
    let (svc, mut handle) = upstream(app());
    let call = get(&snapshot, svc);
    let (_, first) = handle.next_request().await.unwrap();
    tokio::time::advance(HEDGE_DELAY / 2).await;
    first.send_response(ok());
    assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);
    tokio::time::advance(HEDGE_DELAY * 10).await;
    assert!(
        handle.next_request().await.is_none(),
        "the mock is closed with the only attempt"
    );
    assert_eq!(counted(&snapshot, HedgeEvent::Sent), 0);
}

#[tokio::test(start_paused = true)]
async fn a_spent_budget_sends_no_hedge() {
    // No floor and no share of requests: nothing extra may be sent.
    let snapshot = route_with(
        "      retry: { attempts: 1, budget: { ratio: 0, min_per_second: 0 } }\n      \
         hedge: { delay: 10ms }\n",
    );
    let (svc, mut handle) = upstream(app());
    let started = Instant::now();
    let call = get(&snapshot, svc);
    let ((hedge, _), first) = handle.next_request().await.unwrap();
    assert!(!hedge);
    // Answer well after the hedge was due; nothing else may have been sent meanwhile.
    tokio::time::sleep(HEDGE_DELAY * 5).await;
    first.send_response(ok());
    assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(started.elapsed(), HEDGE_DELAY * 5);
    assert!(handle.next_request().await.is_none(), "no second attempt");
    assert_eq!(counted(&snapshot, HedgeEvent::BudgetExhausted), 1);
    assert_eq!(counted(&snapshot, HedgeEvent::Sent), 0);
}

#[tokio::test(start_paused = true)]
async fn a_failed_attempt_waits_for_the_other_one_out() {
    let snapshot = route_with("      hedge: { delay: 10ms }\n");
    let (svc, mut handle) = upstream(app());
    let call = get(&snapshot, svc);
    let (_, first) = handle.next_request().await.unwrap();
    let (_, hedge) = handle.next_request().await.unwrap();
    // An error is not an answer: the hedge still out may give one.
    first.send_error("connection reset");
    hedge.send_response(ok());
    assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(counted(&snapshot, HedgeEvent::Won), 1);
    assert_eq!(counted(&snapshot, HedgeEvent::Wasted), 0);
}

#[tokio::test(start_paused = true)]
async fn hedges_and_retries_draw_from_one_budget() {
    // No share of requests, a floor of 1/s over the 10 s window: 10 extra attempts.
    let snapshot = route_with(
        "      retry: { attempts: 2, on: [reset], backoff: { base: 1ms, max: 1ms }, \
         budget: { ratio: 0, min_per_second: 1 } }\n      hedge: { delay: 10ms }\n",
    );
    // No breakers: the failures this test makes would open them.
    let (svc, mut handle) = upstream(app_with(None));
    let layer = RetryLayer.layer(svc);
    let get = || layer.clone().oneshot(routed(&snapshot, http::Method::GET));
    // Five requests retried once each...
    for _ in 0..5 {
        let call = tokio::spawn(get());
        let ((hedge, _), first) = handle.next_request().await.unwrap();
        assert!(!hedge);
        first.send_error("reset");
        let ((hedge, _), retry) = handle.next_request().await.unwrap();
        assert!(!hedge, "a retry");
        retry.send_response(ok());
        assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    // ...and five hedged...
    for _ in 0..5 {
        let call = tokio::spawn(get());
        let (_, _first) = handle.next_request().await.unwrap();
        let ((hedge, _), answer) = handle.next_request().await.unwrap();
        assert!(hedge);
        answer.send_response(ok());
        assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    assert_eq!(counted(&snapshot, HedgeEvent::Sent), 5);
    // ...spend the budget: the next hedge is not sent...
    let call = tokio::spawn(get());
    let (_, first) = handle.next_request().await.unwrap();
    let hedge = tokio::time::timeout(HEDGE_DELAY * 5, handle.next_request()).await;
    assert!(hedge.is_err(), "no hedge: the clock went past its delay");
    assert_eq!(counted(&snapshot, HedgeEvent::BudgetExhausted), 1);
    first.send_response(ok());
    assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);
    // ...nor the next retry.
    let call = tokio::spawn(get());
    let (_, first) = handle.next_request().await.unwrap();
    first.send_error("reset");
    assert_eq!(call.await.unwrap().unwrap_err(), ProxyError::UpstreamReset);
}
