//! Idle HTTP/1 keep-alive connections: parked once idle for a moment (no read or write
//! buffers held; `meshwork_downstream_connections_parked` counts them), and still
//! everything a keep-alive connection is: the next request on it is served (with or
//! without a body, chunked, pipelined, over TLS), a head started after the pause is
//! timed, and the idle timeout and the drain close it.

use std::time::Duration;

use meshwork_tests::{
    Proxy, RawConn, TestCa, TlsClient, Upstream, eventually, single_cluster_config, with_limits,
    with_tls,
};

const TIMEOUT: Duration = Duration::from_secs(5);

async fn get_ok(conn: &mut RawConn, path: &str) -> String {
    conn.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"))
        .await
        .unwrap();
    let response = conn.read_response(TIMEOUT).await.unwrap();
    assert_eq!(response.status, 200, "GET {path}");
    response.text()
}

/// Waits until `count` connections of listener `edge` are parked.
async fn parked(proxy: &Proxy, count: usize) {
    let gauge = "meshwork_downstream_connections_parked";
    proxy
        .scrape_when(&format!("{count} parked connections"), |s| {
            s.get(gauge, &[("listener", "edge")]) == Some(count as f64)
        })
        .await;
}

/// An upstream answering `GET /` with `hi`, and a proxy to it with listener `limits`.
async fn proxy_with_limits(limits: &str) -> (Upstream, Proxy) {
    let app = Upstream::http1().name("app").route("/", "hi").start().await;
    let yaml = with_limits(&single_cluster_config(&app.endpoint(), "http1"), limits);
    let proxy = Proxy::with_config(yaml).start().await;
    (app, proxy)
}

/// hyper holds two 8 KiB buffers per connection it serves; a parked connection holds
/// none. 1,500 connections that each did one request, then sit idle, must cost less than
/// 8 KiB each once parked (about 17 KiB each when idle connections stayed with hyper;
/// 19.5 KiB when a connection's task was sized to the sidecar's largest state).
#[tokio::test]
async fn idle_keep_alive_connections_hold_no_buffers() {
    const CONNECTIONS: usize = 1_500;
    const MAX_BYTES_PER_CONNECTION: u64 = 8 * 1024;
    let app = Upstream::http1().name("app").route("/", "hi").start().await;
    let proxy = Proxy::with_config(single_cluster_config(&app.endpoint(), "http1"))
        .start()
        .await;
    let addr = proxy.listener_addr("edge");
    // Warm up: the runtime, the upstream pool and the allocator's first arenas.
    let mut warm = Vec::new();
    for _ in 0..50 {
        let mut conn = RawConn::connect(addr).await;
        get_ok(&mut conn, "/").await;
        warm.push(conn);
    }
    drop(warm);
    let baseline = proxy.rss_bytes();
    let mut idle = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut conn = RawConn::connect(addr).await;
        get_ok(&mut conn, "/").await;
        idle.push(conn);
    }
    parked(&proxy, CONNECTIONS).await;
    let per_connection = || proxy.rss_bytes().saturating_sub(baseline) / CONNECTIONS as u64;
    // What hyper freed goes back to the system within the allocator's decay (1 s).
    eventually(
        "RSS per idle connection under 8 KiB",
        Duration::from_secs(10),
        || std::future::ready(per_connection() < MAX_BYTES_PER_CONNECTION),
    )
    .await;
    eprintln!("{} bytes of RSS per idle connection", per_connection());
    // Every one of them is still a working keep-alive connection.
    for conn in idle.iter_mut().step_by(100) {
        assert_eq!(get_ok(conn, "/").await, "hi");
    }
}

#[tokio::test]
async fn a_connection_serves_every_kind_of_request_after_each_pause() {
    let app = Upstream::http1()
        .name("app")
        .route("/", "hi")
        .echo_body("/echo")
        .start()
        .await;
    let proxy = Proxy::with_config(single_cluster_config(&app.endpoint(), "http1"))
        .start()
        .await;
    let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
    assert_eq!(get_ok(&mut conn, "/").await, "hi");
    parked(&proxy, 1).await;
    conn.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let response = conn.read_response(TIMEOUT).await.unwrap();
    assert_eq!((response.status, response.text().as_str()), (200, "hello"));
    parked(&proxy, 1).await;
    // After a chunked body the connection stays with hyper (its end is not counted).
    conn.send(
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    let response = conn.read_response(TIMEOUT).await.unwrap();
    assert_eq!((response.status, response.text().as_str()), (200, "abc"));
    // A head split across two writes, then two pipelined requests in one.
    conn.send("GET / HTTP/1.1\r\nHo").await.unwrap();
    conn.send("st: x\r\n\r\n").await.unwrap();
    let response = conn.read_response(TIMEOUT).await.unwrap();
    assert_eq!((response.status, response.text().as_str()), (200, "hi"));
    parked(&proxy, 1).await;
    conn.send(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nokGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .unwrap();
    for expected in ["ok", "hi"] {
        let response = conn.read_response(TIMEOUT).await.unwrap();
        assert_eq!((response.status, response.text().as_str()), (200, expected));
    }
    // After pipelined requests, hyper may hold bytes the connection cannot account for:
    // it stays with hyper until the next request, and parks after that one.
    assert_eq!(get_ok(&mut conn, "/").await, "hi");
    parked(&proxy, 1).await;
    assert_eq!(get_ok(&mut conn, "/").await, "hi");
}

#[tokio::test]
async fn a_head_started_after_a_pause_is_timed_and_answered_408() {
    let (_app, proxy) = proxy_with_limits("header_read_timeout: 300ms").await;
    let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
    assert_eq!(get_ok(&mut conn, "/").await, "hi");
    parked(&proxy, 1).await;
    conn.send("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let response = conn.read_response(TIMEOUT).await.unwrap();
    assert_eq!(response.status, 408);
    assert!(conn.wait_closed(TIMEOUT).await.is_some());
}

#[tokio::test]
async fn an_idle_connection_is_closed_at_its_idle_timeout() {
    let (_app, proxy) = proxy_with_limits("idle_timeout: 300ms").await;
    let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
    assert_eq!(get_ok(&mut conn, "/").await, "hi");
    let idle_since = std::time::Instant::now();
    // Parked at 100 ms, closed at 300 ms.
    parked(&proxy, 1).await;
    conn.wait_closed(TIMEOUT).await.expect("closed when idle");
    let waited = idle_since.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "closed after {waited:?}, before its idle timeout"
    );
    parked(&proxy, 0).await;
}

#[tokio::test]
async fn a_tls_connection_serves_requests_after_each_pause() {
    let ca = TestCa::new("idle");
    let cert = ca.issue("server").dns("localhost").write();
    let app = Upstream::http1().name("app").route("/", "hi").start().await;
    let yaml = with_tls(
        &single_cluster_config(&app.endpoint(), "http1"),
        &cert.cert,
        &cert.key,
    );
    let proxy = Proxy::with_config(yaml).start().await;
    let tls = TlsClient::new(ca.ca_path())
        .connect(proxy.listener_addr("edge"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut conn = RawConn::over(tls);
    for _ in 0..3 {
        assert_eq!(get_ok(&mut conn, "/").await, "hi");
        parked(&proxy, 1).await;
    }
}

#[tokio::test]
async fn a_parked_connection_is_closed_at_once_by_the_drain() {
    let app = Upstream::http1().name("app").route("/", "hi").start().await;
    let mut proxy = Proxy::with_config(single_cluster_config(&app.endpoint(), "http1"))
        .drain_timeout("10s")
        .start()
        .await;
    let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
    assert_eq!(get_ok(&mut conn, "/").await, "hi");
    parked(&proxy, 1).await;
    let signalled = std::time::Instant::now();
    proxy.sigterm();
    let status = proxy.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "a parked connection kept the proxy up for {:?} (drain timeout 10s)",
        signalled.elapsed()
    );
    assert!(conn.wait_closed(Duration::from_secs(1)).await.is_some());
}
