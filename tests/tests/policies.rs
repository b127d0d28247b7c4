//! Route policies end to end: local rate limits (429 + Retry-After) and injected faults
//! (delay, HTTP abort, gRPC abort), each visible in metrics.

use std::time::{Duration, Instant};

use http::StatusCode;
use meshwork_tests::{HttpClient, Proxy, Scrape, Upstream, edge_routes, labels_of};

/// The value of series `name{labels}` once it reaches `expected` (requests are counted
/// when their response ends, a moment after the client has it); the harness fails the
/// test with the last scrape if it never does.
async fn metric(proxy: &Proxy, name: &str, labels: &[(&str, &str)], expected: u64) -> u64 {
    let labels = labels_of(labels);
    let value = |s: &Scrape| s.series(name).get(&labels).map_or(0, |v| *v as u64);
    value(&proxy.scrape_when(name, |s| value(s) == expected).await)
}

#[tokio::test]
async fn an_empty_bucket_answers_429_with_retry_after_and_spares_the_upstream() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = Proxy::with_config(edge_routes(
        "
        - name: limited
          backends:
            - cluster: app
          rate_limit:
            requests_per_second: 0.2
            burst: 3
        ",
        &[&app],
    ))
    .start()
    .await;
    let client = HttpClient::h1();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(client.get(&proxy.url("edge", "/x")).await);
    }
    let codes: Vec<u16> = statuses.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(codes, [200, 200, 200, 429, 429]);
    let limited = &statuses[3];
    assert_eq!(limited.error_kind(), Some("rate-limited"));
    // One token every 5s: the client is told to wait at most that long.
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=5).contains(&retry_after), "{retry_after}");
    assert_eq!(app.requests(), 3);
    assert_eq!(
        metric(
            &proxy,
            "meshwork_http_local_responses_total",
            &[("listener", "edge"), ("reason", "rate-limited")],
            2
        )
        .await,
        2
    );
}

#[tokio::test]
async fn a_full_abort_answers_the_configured_status_without_the_upstream() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = Proxy::with_config(edge_routes(
        "
        - name: broken
          backends:
            - cluster: app
          fault:
            abort:
              percent: 100
              status: 418
        ",
        &[&app],
    ))
    .start()
    .await;
    for _ in 0..3 {
        let reply = HttpClient::h1().get(&proxy.url("edge", "/")).await;
        assert_eq!(reply.status, StatusCode::IM_A_TEAPOT);
        assert_eq!(reply.error_kind(), Some("fault-abort"));
    }
    assert_eq!(app.requests(), 0);
    let labels = [("kind", "abort"), ("listener", "edge"), ("route", "broken")];
    assert_eq!(
        metric(&proxy, "meshwork_http_faults_injected_total", &labels, 3).await,
        3
    );
}

#[tokio::test]
async fn a_grpc_abort_is_a_trailers_only_response_with_grpc_status() {
    let app = Upstream::h2c().name("app").start().await;
    let proxy = Proxy::with_config(edge_routes(
        "
        - name: grpc
          backends:
            - cluster: app
          fault:
            abort:
              percent: 100
              grpc_status: 14
        ",
        &[&app],
    ))
    .start()
    .await;
    let reply = HttpClient::h2c()
        .request(http::Method::POST, &proxy.url("edge", "/echo.Echo/Unary"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("grpc-status"), Some("14"));
    assert_eq!(reply.header("content-type"), Some("application/grpc"));
    assert_eq!(app.requests(), 0);
}

#[tokio::test]
async fn a_delay_holds_the_request_then_forwards_it() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = Proxy::with_config(edge_routes(
        "
        - name: slow
          backends:
            - cluster: app
          fault:
            delay:
              percent: 100
              duration: 300ms
        ",
        &[&app],
    ))
    .start()
    .await;
    let started = Instant::now();
    let reply = HttpClient::h1().get(&proxy.url("edge", "/")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(app.requests(), 1);
    let labels = [("kind", "delay"), ("listener", "edge"), ("route", "slow")];
    assert_eq!(
        metric(&proxy, "meshwork_http_faults_injected_total", &labels, 1).await,
        1
    );
}

#[tokio::test]
async fn a_zero_percent_fault_never_fires() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = Proxy::with_config(edge_routes(
        "
        - name: calm
          backends:
            - cluster: app
          fault:
            abort:
              percent: 0
              status: 503
        ",
        &[&app],
    ))
    .start()
    .await;
    for _ in 0..20 {
        assert_eq!(
            HttpClient::h1().get(&proxy.url("edge", "/")).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(app.requests(), 20);
}
