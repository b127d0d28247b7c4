//! Retries end to end: exact attempt counts seen by upstreams, conditions, methods,
//! Retry-After, the budget, and a different endpoint on each retry.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use meshwork_tests::{HttpClient, Proxy, Upstream, dead_endpoint, edge_routes};

fn retry_route(on: &str, extra: &str) -> String {
    format!(
        "
        - name: api
          backends:
            - cluster: app
          timeout: 10s
          retry:
            attempts: 3
            on: [{on}]
            backoff: {{ base: 10ms, max: 100ms }}
            {extra}
        "
    )
}

#[tokio::test]
async fn a_503_twice_then_200_takes_exactly_three_attempts() {
    let app = Upstream::http1()
        .name("app")
        .fail_first("/flaky", 2, 503, None)
        .start()
        .await;
    let proxy = Proxy::with_config(edge_routes(&retry_route("503", ""), &[&app]))
        .start()
        .await;
    let reply = HttpClient::h1().get(&proxy.url("edge", "/flaky")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "recovered");
    assert_eq!(app.requests(), 3);
}

#[tokio::test]
async fn attempts_are_capped_and_the_last_failure_is_returned() {
    let app = Upstream::http1()
        .name("app")
        .fail_first("/down", 100, 503, None)
        .start()
        .await;
    let proxy = Proxy::with_config(edge_routes(&retry_route("gateway-error", ""), &[&app]))
        .start()
        .await;
    let reply = HttpClient::h1().get(&proxy.url("edge", "/down")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.requests(), 3);
}

#[tokio::test]
async fn statuses_not_named_are_not_retried() {
    let app = Upstream::http1()
        .name("app")
        .fail_first("/bad", 100, 500, None)
        .start()
        .await;
    let proxy = Proxy::with_config(edge_routes(&retry_route("gateway-error", ""), &[&app]))
        .start()
        .await;
    let reply = HttpClient::h1().get(&proxy.url("edge", "/bad")).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(app.requests(), 1);
}

#[tokio::test]
async fn a_post_is_never_replayed_by_default() {
    let app = Upstream::http1()
        .name("app")
        .fail_first("/order", 100, 503, None)
        .start()
        .await;
    let proxy = Proxy::with_config(edge_routes(&retry_route("503", ""), &[&app]))
        .start()
        .await;
    let reply = HttpClient::h1()
        .request(Method::POST, &proxy.url("edge", "/order"))
        .body("buy one")
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.requests(), 1);
}

#[tokio::test]
async fn a_put_body_is_replayed_whole_on_each_attempt() {
    let app = Upstream::http1()
        .name("app")
        .fail_first("/doc", 1, 503, None)
        .start()
        .await;
    let proxy = Proxy::with_config(edge_routes(&retry_route("503", ""), &[&app]))
        .start()
        .await;
    // The first attempt fails; the second must carry the same body: echo it back.
    let reply = HttpClient::h1()
        .request(Method::PUT, &proxy.url("edge", "/doc"))
        .body("the document")
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "recovered:the document");
    assert_eq!(app.requests(), 2);
}

#[tokio::test]
async fn retry_after_within_max_is_honored() {
    let app = Upstream::http1()
        .name("app")
        .fail_first("/busy", 1, 503, Some(1))
        .start()
        .await;
    let proxy = Proxy::with_config(edge_routes(
        &retry_route("503", "").replace("max: 100ms", "max: 2s"),
        &[&app],
    ))
    .start()
    .await;
    let started = Instant::now();
    let reply = HttpClient::h1().get(&proxy.url("edge", "/busy")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(app.requests(), 2);
}

#[tokio::test]
async fn a_connect_failure_is_retried_on_another_endpoint() {
    let good = Upstream::http1().name("good").start().await;
    let config = format!(
        "
        route_tables:
          edge:
            - name: api
              backends:
                - cluster: app
              retry:
                attempts: 2
                on: [connect-failure]
                backoff: {{ base: 5ms, max: 10ms }}
        clusters:
          - name: app
            endpoints: [{dead}, {good}]
        ",
        dead = dead_endpoint(),
        good = good.endpoint(),
    );
    let proxy = Proxy::with_config(meshwork_tests::edge_config(&config))
        .start()
        .await;
    for _ in 0..10 {
        let reply = HttpClient::h1().get(&proxy.url("edge", "/")).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    assert_eq!(good.requests(), 10);
}

#[tokio::test]
async fn the_budget_bounds_extra_load_on_a_failing_upstream() {
    let app = Upstream::http1()
        .name("app")
        .fail_first("/", u64::MAX, 503, None)
        .start()
        .await;
    let proxy = Proxy::with_config(edge_routes(
        &retry_route("503", "budget: { ratio: 0.1, min_per_second: 1 }"),
        &[&app],
    ))
    .start()
    .await;
    let client = HttpClient::h1();
    let n: u64 = 100;
    for _ in 0..n {
        assert_eq!(
            client.get(&proxy.url("edge", "/")).await.status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    // At most 10% of 100 requests + 1/s over the 10s window = 20 retries.
    let extra = app.requests() - n;
    assert!(extra <= 20, "{extra} retries");
    assert!(extra >= 10, "the budget allows some retries: {extra}");
}

#[tokio::test]
async fn a_reset_before_the_response_is_retried_when_reset_is_named() {
    let app = Upstream::http1()
        .name("app")
        .reset_before_headers("/reset")
        .start()
        .await;
    let proxy = Proxy::with_config(edge_routes(&retry_route("reset", ""), &[&app]))
        .start()
        .await;
    let reply = HttpClient::h1().get(&proxy.url("edge", "/reset")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.error_kind(), Some("upstream-reset"));
    assert_eq!(app.requests(), 3);
}

#[tokio::test]
async fn a_stalled_attempt_is_cut_by_the_per_try_timeout_and_retried() {
    let app = Upstream::http1()
        .name("app")
        .slow("/stall", Duration::from_secs(5))
        .start()
        .await;
    let proxy = Proxy::with_config(edge_routes(
        &retry_route("gateway-error", "per_try_timeout: 200ms"),
        &[&app],
    ))
    .start()
    .await;
    let started = Instant::now();
    let reply = HttpClient::h1().get(&proxy.url("edge", "/stall")).await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.error_kind(), Some("upstream-timeout"));
    assert_eq!(app.requests(), 3);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
