//! Active health checks end to end: an endpoint failing its probe leaves rotation and
//! comes back when it passes again; with none healthy the proxy answers 503 at once.

use std::time::{Duration, Instant};

use http::StatusCode;
use meshwork_tests::{HttpClient, Proxy, Upstream, dead_endpoint, edge_config};

fn checked(endpoints: &[String], check: &str) -> String {
    edge_config(&format!(
        "
        route_tables:
          edge:
            - name: api
              backends:
                - cluster: app
        clusters:
          - name: app
            endpoints: [{}]
            health_check:
              {check}
              interval: 100ms
              timeout: 100ms
              unhealthy_threshold: 2
              healthy_threshold: 2
        ",
        endpoints.join(", ")
    ))
}

/// Polls `/clusters` (bounded) until `count` endpoints are `health`.
async fn wait_for_health(proxy: &Proxy, health: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = HttpClient::h1()
            .get(&format!("http://{}/clusters", proxy.admin_addr()))
            .await
            .text();
        if text.matches(&format!("\"health\": \"{health}\"")).count() == count {
            return;
        }
        assert!(Instant::now() < deadline, "never {count} {health}: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_endpoint_failing_its_http_check_gets_no_traffic() {
    let good = Upstream::http1()
        .name("good")
        .route("/healthz", "ok")
        .start()
        .await;
    let bad = Upstream::http1()
        .name("bad")
        .status("/healthz", 500)
        .start()
        .await;
    let proxy = Proxy::with_config(checked(
        &[good.endpoint(), bad.endpoint()],
        "http: { path: /healthz, expected_status: [200] }",
    ))
    .start()
    .await;
    wait_for_health(&proxy, "unhealthy", 1).await;
    let before = bad.requests();
    for _ in 0..20 {
        let reply = HttpClient::h1().get(&proxy.url("edge", "/work")).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("x-upstream"), Some("good"));
    }
    let probes_only = bad
        .paths()
        .iter()
        .skip(before as usize)
        .all(|p| p == "/healthz");
    assert!(probes_only, "the unhealthy endpoint saw only probes");
}

#[tokio::test]
async fn with_no_healthy_endpoint_the_proxy_answers_503_at_once() {
    let proxy = Proxy::with_config(checked(&[dead_endpoint(), dead_endpoint()], "tcp: {}"))
        .start()
        .await;
    wait_for_health(&proxy, "unhealthy", 2).await;
    let reply = HttpClient::h1().get(&proxy.url("edge", "/")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.error_kind(), Some("no-healthy-endpoint"));
}

#[tokio::test]
async fn a_passing_tcp_check_keeps_the_live_endpoint_in_rotation() {
    let live = Upstream::http1().name("live").start().await;
    let proxy = Proxy::with_config(checked(&[live.endpoint(), dead_endpoint()], "tcp: {}"))
        .start()
        .await;
    wait_for_health(&proxy, "unhealthy", 1).await;
    wait_for_health(&proxy, "healthy", 1).await;
    for _ in 0..10 {
        assert_eq!(
            HttpClient::h1().get(&proxy.url("edge", "/")).await.status,
            StatusCode::OK
        );
    }
    assert!(live.requests() >= 10);
}
