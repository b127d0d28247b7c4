//! The retry policy's conditions, and the retry loop driven by hand over a stub
//! upstream with tokio's paused clock.

use super::*;
use crate::http::ResponseBody;
use meshwork_config::model::{Backoff, GrpcCode, RetryBudget as BudgetConfig};
use std::sync::Arc;

fn policy(on: Vec<RetryOn>) -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        on,
        per_try_timeout: None,
        backoff: Backoff {
            base: Duration::from_millis(25),
            max: Duration::from_secs(1),
        },
        budget: BudgetConfig {
            ratio: 0.2,
            min_per_second: 10,
        },
        methods: vec!["GET".into()],
        max_body: 1024,
    }
}

fn status(code: u16) -> Result<ProxyResponse, ProxyError> {
    let mut rsp = ProxyResponse::new(ResponseBody::empty());
    *rsp.status_mut() = StatusCode::from_u16(code).unwrap();
    Ok(rsp)
}

#[test]
fn conditions_map_outcomes_to_reasons() {
    let p = policy(vec![RetryOn::GatewayError, RetryOn::ConnectFailure]);
    assert_eq!(retry_reason(&p, &status(503)).as_deref(), Some("503"));
    assert_eq!(retry_reason(&p, &status(500)), None);
    assert_eq!(retry_reason(&p, &status(200)), None);
    assert_eq!(
        retry_reason(&p, &Err(ProxyError::ConnectFailed)).as_deref(),
        Some("connect-failure")
    );
    assert_eq!(retry_reason(&p, &Err(ProxyError::UpstreamReset)), None);
    assert_eq!(
        retry_reason(&p, &Err(ProxyError::UpstreamTimeout)).as_deref(),
        Some("per-try-timeout")
    );
    let p = policy(vec![
        RetryOn::ServerError,
        RetryOn::Retriable4xx,
        RetryOn::Status(429),
    ]);
    assert_eq!(retry_reason(&p, &status(500)).as_deref(), Some("500"));
    assert_eq!(retry_reason(&p, &status(409)).as_deref(), Some("409"));
    assert_eq!(retry_reason(&p, &status(429)).as_deref(), Some("429"));
    assert_eq!(retry_reason(&p, &status(404)), None);
}

#[test]
fn grpc_status_in_a_trailers_only_response_is_a_condition() {
    let p = policy(vec![RetryOn::Grpc(GrpcCode::Unavailable)]);
    let mut rsp = status(200);
    if let Ok(r) = rsp.as_mut() {
        r.headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static("14"));
    }
    assert_eq!(retry_reason(&p, &rsp).as_deref(), Some("grpc-14"));
    let mut other = status(200);
    if let Ok(r) = other.as_mut() {
        r.headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static("5"));
    }
    assert_eq!(retry_reason(&p, &other), None);
}

/// A route to cluster `app` with `retry`.
fn retrying(retry: &str) -> Arc<crate::snapshot::Snapshot> {
    crate::layers::test_request::snapshot(&format!(
        "route_tables:\n  edge:\n    - name: api\n      backends: [{{ cluster: app }}]\n      \
         retry: {retry}\nclusters:\n  - {{ name: app, endpoints: [127.0.0.1:9] }}\n"
    ))
}

/// An inner service answering `status` after `delay`, recording each attempt's
/// `retry` flag.
fn upstream(
    status: u16,
    delay: Duration,
) -> (
    impl Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError, Future: Send>
    + Clone
    + Send
    + 'static,
    Arc<std::sync::Mutex<Vec<bool>>>,
) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let svc = tower::service_fn(move |req: ProxyRequest| {
        log.lock().unwrap().push(req.ctx.retry);
        async move {
            tokio::time::sleep(delay).await;
            self::status(status)
        }
    });
    (svc, seen)
}

#[tokio::test(start_paused = true)]
async fn every_attempt_after_the_first_is_a_retry_until_attempts_run_out() {
    let snapshot = retrying("{ attempts: 3, on: [\"503\"], backoff: { base: 1ms, max: 2ms } }");
    let (svc, seen) = upstream(503, Duration::ZERO);
    let req = crate::layers::test_request::routed(&snapshot, http::Method::GET);
    let rsp = tower::ServiceExt::oneshot(RetryLayer.layer(svc), req).await;
    assert_eq!(rsp.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(*seen.lock().unwrap(), [false, true, true]);
}

#[tokio::test(start_paused = true)]
async fn per_try_timeout_cuts_the_only_attempt_of_a_request_that_is_not_retried() {
    for (retry, method) in [
        ("{ attempts: 3, per_try_timeout: 2s }", http::Method::POST),
        ("{ attempts: 1, per_try_timeout: 2s }", http::Method::GET),
    ] {
        let snapshot = retrying(retry);
        let (svc, seen) = upstream(200, Duration::from_secs(10));
        let req = crate::layers::test_request::routed(&snapshot, method);
        let started = tokio::time::Instant::now();
        let rsp = tower::ServiceExt::oneshot(RetryLayer.layer(svc), req).await;
        assert_eq!(rsp.unwrap_err(), ProxyError::UpstreamTimeout, "{retry}");
        assert_eq!(started.elapsed(), Duration::from_secs(2), "{retry}");
        assert_eq!(*seen.lock().unwrap(), [false], "one attempt: {retry}");
    }
}

#[test]
fn retry_after_is_read_from_503_and_429_only() {
    let mut rsp = status(503).unwrap();
    rsp.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("2"),
    );
    assert_eq!(retry_after(&rsp), Some(Duration::from_secs(2)));
    *rsp.status_mut() = StatusCode::BAD_GATEWAY;
    assert_eq!(retry_after(&rsp), None);
}
