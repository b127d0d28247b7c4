//! The errors the proxy itself produces: status plus an `x-meshwork-error` reason.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use meshwork_tests::{
    HttpClient, Proxy, RawConn, Reply, Upstream, dead_endpoint, edge_routes, single_cluster_config,
    with_limits,
};

fn assert_proxy_error(reply: &Reply, status: StatusCode, kind: &str) {
    assert_eq!(
        (reply.status, reply.error_kind()),
        (status, Some(kind)),
        "headers {:?}, body {:?}",
        reply.headers,
        reply.text()
    );
}

#[tokio::test]
async fn an_unmatched_request_gets_404_no_route() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = Proxy::with_config(edge_routes(
        "
        - name: api
          match:
            path:
              prefix: /api/
          backends:
            - cluster: app
        ",
        &[&app],
    ))
    .start()
    .await;
    let reply = HttpClient::h1().get(&proxy.url("edge", "/elsewhere")).await;
    assert_proxy_error(&reply, StatusCode::NOT_FOUND, "no-route");
    let reply = HttpClient::h2c()
        .get(&proxy.url("edge", "/elsewhere"))
        .await;
    assert_proxy_error(&reply, StatusCode::NOT_FOUND, "no-route");
    assert_eq!(app.requests(), 0);
}

#[tokio::test]
async fn a_dead_upstream_gets_502_connect_failed() {
    let proxy = Proxy::with_config(single_cluster_config(&dead_endpoint(), "http1"))
        .start()
        .await;
    let started = Instant::now();
    let reply = HttpClient::h1().get(&proxy.url("edge", "/")).await;
    assert_proxy_error(&reply, StatusCode::BAD_GATEWAY, "connect-failed");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // The listener keeps serving after the failure.
    let reply = HttpClient::h1().get(&proxy.url("edge", "/again")).await;
    assert_proxy_error(&reply, StatusCode::BAD_GATEWAY, "connect-failed");
}

#[tokio::test]
async fn an_upstream_slower_than_the_route_timeout_gets_504_upstream_timeout() {
    let app = Upstream::http1()
        .name("app")
        .slow("/slow", Duration::from_secs(5))
        .start()
        .await;
    let proxy = Proxy::with_config(edge_routes(
        "
        - name: bounded
          timeout: 300ms
          backends:
            - cluster: app
        ",
        &[&app],
    ))
    .start()
    .await;
    let client = HttpClient::h1();
    let started = Instant::now();
    let reply = client.get(&proxy.url("edge", "/slow")).await;
    let took = started.elapsed();
    assert_proxy_error(&reply, StatusCode::GATEWAY_TIMEOUT, "upstream-timeout");
    assert!(
        took >= Duration::from_millis(250),
        "answered before the timeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "answered long after the timeout: {took:?}"
    );
    // A fast request on the same route is not affected.
    assert_eq!(
        client.get(&proxy.url("edge", "/fast")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_http1_upstream_closing_before_answering_gets_502_upstream_reset() {
    let app = Upstream::http1()
        .name("app")
        .reset_before_headers("/reset")
        .start()
        .await;
    let proxy = Proxy::with_config(single_cluster_config(&app.endpoint(), "http1"))
        .start()
        .await;
    let reply = HttpClient::h1().get(&proxy.url("edge", "/reset")).await;
    assert_proxy_error(&reply, StatusCode::BAD_GATEWAY, "upstream-reset");
    assert_eq!(
        HttpClient::h1().get(&proxy.url("edge", "/ok")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_http2_upstream_resetting_the_stream_gets_502_upstream_reset() {
    let app = Upstream::h2c()
        .name("app")
        .reset_before_headers("/reset")
        .start()
        .await;
    let proxy = Proxy::with_config(single_cluster_config(&app.endpoint(), "http2"))
        .start()
        .await;
    let reply = HttpClient::h1().get(&proxy.url("edge", "/reset")).await;
    assert_proxy_error(&reply, StatusCode::BAD_GATEWAY, "upstream-reset");
    assert_eq!(
        HttpClient::h1().get(&proxy.url("edge", "/ok")).await.status,
        StatusCode::OK
    );
}

/// The head is already on its way when the upstream fails, so the client cannot get a 502:
/// it must see the body fail rather than a short body presented as complete.
async fn assert_reset_mid_body_reaches_the_client(client: HttpClient, upstream: Upstream) {
    let proxy = Proxy::with_config(single_cluster_config(
        &upstream.endpoint(),
        upstream.cluster_protocol(),
    ))
    .start()
    .await;
    let result = client
        .request(Method::GET, &proxy.url("edge", "/reset-mid-body"))
        .try_send()
        .await;
    match result {
        Err(error) => assert!(!error.contains("timed out"), "{error}"),
        Ok(reply) => panic!(
            "the client got a complete response: {} with {} body bytes",
            reply.status,
            reply.body.len()
        ),
    }
    assert_eq!(
        client.get(&proxy.url("edge", "/ok")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_http1_upstream_failing_mid_body_aborts_the_client_response() {
    let upstream = Upstream::http1()
        .name("app")
        .reset_mid_body("/reset-mid-body")
        .start()
        .await;
    assert_reset_mid_body_reaches_the_client(HttpClient::h1(), upstream).await;
}

#[tokio::test]
async fn an_http2_upstream_failing_mid_body_resets_the_h2c_client_stream() {
    let upstream = Upstream::h2c()
        .name("app")
        .reset_mid_body("/reset-mid-body")
        .start()
        .await;
    assert_reset_mid_body_reaches_the_client(HttpClient::h2c(), upstream).await;
}

/// Sends `head` on a fresh connection and expects 431 then the connection closed. The
/// reason header may be absent: the head is refused while it is being parsed.
async fn assert_head_too_large(proxy: &Proxy, what: &str, head: &str) {
    let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
    // The proxy may answer and close before reading all of it; that is fine.
    let _ = conn.send(head.as_bytes()).await;
    let response = conn
        .read_response(Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{what}: expected 431: {e}"));
    assert_eq!(response.status, 431, "{what}: {response:?}");
    if let Some(kind) = response.header("x-meshwork-error") {
        assert_eq!(kind, "header-too-large", "{what}");
    }
    assert!(
        conn.wait_closed(Duration::from_secs(3)).await.is_some(),
        "{what}: the connection stayed open after the 431"
    );
}

#[tokio::test]
async fn an_oversized_request_head_gets_431_header_too_large() {
    let app = Upstream::http1().name("app").start().await;
    let yaml = with_limits(
        &single_cluster_config(&app.endpoint(), "http1"),
        "max_request_header_size: 4KiB",
    );
    let proxy = Proxy::with_config(yaml).start().await;

    let reply = HttpClient::h1()
        .request(Method::GET, &proxy.url("edge", "/"))
        .header("x-small", &"a".repeat(1024))
        .send()
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "a head under the limit passes"
    );

    let big = "a".repeat(8 * 1024);
    assert_head_too_large(
        &proxy,
        "one 8 KiB header",
        &format!("GET / HTTP/1.1\r\nHost: x\r\nx-big: {big}\r\n\r\n"),
    )
    .await;
    let part = "b".repeat(1500);
    assert_head_too_large(
        &proxy,
        "three 1.5 KiB headers",
        &format!("GET / HTTP/1.1\r\nHost: x\r\nx-1: {part}\r\nx-2: {part}\r\nx-3: {part}\r\n\r\n"),
    )
    .await;
    assert_head_too_large(
        &proxy,
        "an 8 KiB request target",
        &format!("GET /{big} HTTP/1.1\r\nHost: x\r\n\r\n"),
    )
    .await;
    assert_eq!(app.requests(), 1);
}

#[tokio::test]
async fn a_request_head_not_finished_in_time_gets_408_header_timeout() {
    let app = Upstream::http1().name("app").start().await;
    let yaml = with_limits(
        &single_cluster_config(&app.endpoint(), "http1"),
        "header_read_timeout: 300ms",
    );
    let proxy = Proxy::with_config(yaml).start().await;
    let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
    conn.send(b"GET / HTTP/1.1\r\nHost: example.com\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let response = conn
        .read_response(Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("expected a 408 response: {e}"));
    assert_eq!(response.status, 408, "{response:?}");
    assert_eq!(response.header("x-meshwork-error"), Some("header-timeout"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        conn.wait_closed(Duration::from_secs(3)).await.is_some(),
        "the connection is closed after the 408"
    );
    assert_eq!(app.requests(), 0);
}
