//! Client and upstream connection handling: pipelining, `Connection: close`,
//! `Expect: 100-continue`, clients that vanish, and pooled upstream connections.

use std::time::Duration;

use http::StatusCode;
use meshwork_tests::{HttpClient, Proxy, RawConn, Upstream, single_cluster_config, with_limits};

async fn proxy_to(upstream: &Upstream) -> Proxy {
    Proxy::with_config(single_cluster_config(
        &upstream.endpoint(),
        upstream.cluster_protocol(),
    ))
    .start()
    .await
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let app = Upstream::http1()
        .name("app")
        .route("/one", "1")
        .slow("/slow", Duration::from_millis(200))
        .route("/three", "3")
        .start()
        .await;
    let proxy = proxy_to(&app).await;
    let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
    conn.send(
        "GET /one HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /slow HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /three HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .unwrap();
    for expected in ["1", "slow", "3"] {
        let response = conn.read_response(Duration::from_secs(5)).await.unwrap();
        assert_eq!((response.status, response.text().as_str()), (200, expected));
    }
}

#[tokio::test]
async fn a_client_asking_to_close_gets_its_response_then_the_connection_closes() {
    let app = Upstream::http1()
        .name("app")
        .route("/", "bye")
        .start()
        .await;
    let proxy = proxy_to(&app).await;
    let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
    conn.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let response = conn.read_response(Duration::from_secs(5)).await.unwrap();
    assert_eq!((response.status, response.text().as_str()), (200, "bye"));
    assert!(conn.wait_closed(Duration::from_secs(3)).await.is_some());
}

#[tokio::test]
async fn an_http_1_0_client_is_served_and_its_connection_closed() {
    let app = Upstream::http1()
        .name("app")
        .route("/", "old")
        .start()
        .await;
    let proxy = proxy_to(&app).await;
    let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
    conn.send("GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let response = conn.read_response(Duration::from_secs(5)).await.unwrap();
    assert_eq!((response.status, response.text().as_str()), (200, "old"));
    assert!(conn.wait_closed(Duration::from_secs(3)).await.is_some());
}

#[tokio::test]
async fn expect_100_continue_gets_an_interim_response_before_the_body_is_sent() {
    let app = Upstream::http1()
        .name("app")
        .echo_body("/upload")
        .start()
        .await;
    let proxy = proxy_to(&app).await;
    let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
    conn.send(
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let interim = conn
        .read_response(Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("expected 100 Continue before sending the body: {e}"));
    assert_eq!(interim.status, 100, "{interim:?}");
    conn.send("hello").await.unwrap();
    let response = conn.read_response(Duration::from_secs(5)).await.unwrap();
    assert_eq!((response.status, response.text().as_str()), (200, "hello"));
}

#[tokio::test]
async fn clients_vanishing_mid_request_do_not_disturb_others() {
    let app = Upstream::http1()
        .name("app")
        .count_body("/upload")
        .slow("/slow", Duration::from_millis(300))
        .start()
        .await;
    let proxy = proxy_to(&app).await;
    let addr = proxy.listener_addr("edge");
    for _ in 0..5 {
        // Gone in the middle of the request body.
        let mut conn = RawConn::connect(addr).await;
        conn.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
            .await
            .unwrap();
        conn.send(vec![0u8; 10_000]).await.unwrap();
        drop(conn);
        // Gone while waiting for the response.
        let mut conn = RawConn::connect(addr).await;
        conn.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        drop(conn);
    }
    let client = HttpClient::h1_unpooled();
    for _ in 0..5 {
        let reply = client.get(&proxy.url("edge", "/")).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    assert_eq!(proxy.admin_get("/ready").await.status, StatusCode::OK);
}

#[tokio::test]
async fn upstream_connections_are_reused_then_closed_after_the_cluster_idle_timeout() {
    let app = Upstream::http1().name("app").start().await;
    let yaml = single_cluster_config(&app.endpoint(), "http1").replace(
        "    protocol: http1\n",
        "    protocol: http1\n    idle_timeout: 300ms\n",
    );
    assert!(yaml.contains("idle_timeout: 300ms"), "{yaml}");
    let proxy = Proxy::with_config(yaml).start().await;
    let client = HttpClient::h1();
    for _ in 0..3 {
        assert_eq!(
            client.get(&proxy.url("edge", "/")).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        app.connections(),
        1,
        "back-to-back requests reuse one upstream connection"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        client.get(&proxy.url("edge", "/")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.connections(),
        2,
        "the idle upstream connection was not reused"
    );
}

#[tokio::test]
async fn a_slow_request_body_is_not_cut_by_the_header_timeout() {
    let app = Upstream::http1()
        .name("app")
        .echo_body("/upload")
        .start()
        .await;
    let yaml = with_limits(
        &single_cluster_config(&app.endpoint(), "http1"),
        "header_read_timeout: 300ms",
    );
    let proxy = Proxy::with_config(yaml).start().await;
    let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
    conn.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
        .await
        .unwrap();
    // The head is complete; a body trickling over 800ms is not a slowloris.
    for part in ["ab", "cd", "ef", "gh"] {
        tokio::time::sleep(Duration::from_millis(200)).await;
        conn.send(part).await.unwrap();
    }
    let response = conn.read_response(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "abcdefgh")
    );
}
