//! The harness checked on its own, without the proxy: upstreams, clients and helpers
//! talk to each other directly, so a failing end-to-end test points at the proxy.

use std::time::Duration;

use futures_util::StreamExt;
use http::{Method, StatusCode};
use meshwork_tests::body::{GeneratedBody, verify_pattern};
use meshwork_tests::grpc::request_channel;
use meshwork_tests::ws::ws_round_trip;
use meshwork_tests::{
    EchoRequest, GrpcClient, GrpcUpstream, HttpClient, RawConn, TcpEchoUpstream, Upstream,
    WsUpstream, ws_connect,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn an_http1_upstream_echoes_the_request_it_saw() {
    let upstream = Upstream::http1().name("v1").start().await;
    let url = format!("http://{}/some/path?x=1", upstream.addr());
    let reply = HttpClient::h1()
        .request(Method::POST, &url)
        .header("x-custom", "a")
        .header("x-custom", "b")
        .body("ignored")
        .send()
        .await;
    assert_eq!(reply.upstream(), Some("v1"));
    let echo = reply.echo();
    assert_eq!(echo.method, "POST");
    assert_eq!(echo.path, "/some/path");
    assert_eq!(echo.query.as_deref(), Some("x=1"));
    assert_eq!(echo.version, "HTTP/1.1");
    assert_eq!(echo.header("x-custom").as_deref(), Some("a, b"));
    assert_eq!(upstream.requests(), 1);
}

#[tokio::test]
async fn an_h2c_upstream_answers_prior_knowledge_and_sends_trailers() {
    let upstream = Upstream::h2c().name("h2").trailers("/t").start().await;
    let client = HttpClient::h2c();
    let echo = client
        .get(&format!("http://{}/e", upstream.addr()))
        .await
        .echo();
    assert_eq!(echo.version, "HTTP/2.0");
    let reply = client.get(&format!("http://{}/t", upstream.addr())).await;
    assert_eq!(reply.text(), "with-trailers");
    let trailers = reply.trailers.expect("trailers");
    assert_eq!(trailers["x-checksum"], "5d41402a");
}

#[tokio::test]
async fn an_http1_upstream_refuses_http2() {
    let upstream = Upstream::http1().start().await;
    let result = HttpClient::h2c()
        .request(Method::GET, &format!("http://{}/", upstream.addr()))
        .timeout(Duration::from_secs(5))
        .try_send()
        .await;
    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn generated_bodies_stream_up_and_down_intact() {
    let upstream = Upstream::http1()
        .large("/down", 3_000_000)
        .count_body("/up")
        .start()
        .await;
    let client = HttpClient::h1();
    let down = client
        .send_head(
            client
                .request(Method::GET, &format!("http://{}/down", upstream.addr()))
                .build(),
        )
        .await
        .unwrap();
    let check = verify_pattern(down.into_body()).await.unwrap();
    assert_eq!((check.bytes, check.first_mismatch), (3_000_000, None));
    let up = client
        .request(Method::POST, &format!("http://{}/up", upstream.addr()))
        .body_stream(GeneratedBody::chunked(2_500_000).boxed())
        .send()
        .await
        .json();
    assert_eq!(up["bytes"], 2_500_000);
    assert!(up["first_mismatch"].is_null(), "{up}");
}

#[tokio::test]
async fn a_reset_mid_body_is_seen_by_the_client_as_a_body_error() {
    let upstream = Upstream::http1().reset_mid_body("/r").start().await;
    let result = HttpClient::h1()
        .request(Method::GET, &format!("http://{}/r", upstream.addr()))
        .try_send()
        .await;
    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn the_raw_client_reads_responses_and_notices_closes() {
    let upstream = Upstream::http1().route("/hello", "hi").start().await;
    let mut conn = RawConn::connect(upstream.addr()).await;
    conn.send(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let response = conn.read_response(Duration::from_secs(5)).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "hi");
    assert!(conn.is_open_after(Duration::from_millis(100)).await);
    conn.send(b"GET /hello HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let response = conn.read_response(Duration::from_secs(5)).await.unwrap();
    assert_eq!(response.status, 200);
    assert!(conn.wait_closed(Duration::from_secs(5)).await.is_some());
}

#[tokio::test]
async fn the_raw_client_sees_hypers_own_400_for_a_broken_head() {
    let upstream = Upstream::http1().start().await;
    let mut conn = RawConn::connect(upstream.addr()).await;
    conn.send(b"GET / HTTP/1.1\r\nbad header: x\r\n\r\n")
        .await
        .unwrap();
    let response = conn.read_response(Duration::from_secs(5)).await.unwrap();
    assert_eq!(response.status, 400);
    assert_eq!(upstream.requests(), 0);
}

#[tokio::test]
async fn the_grpc_upstream_serves_unary_server_streaming_and_bidi() {
    let upstream = GrpcUpstream::start().await;
    let mut client = GrpcClient::connect(upstream.addr()).await;
    let reply = client.unary(EchoRequest::new("hi")).await.unwrap();
    assert_eq!(reply.into_inner().message, "hi");

    let request = EchoRequest {
        message: "s".into(),
        count: 3,
        fail_with: 10,
        interval_ms: 0,
    };
    let mut stream = client.server_stream(request).await.unwrap().into_inner();
    for index in 0..3 {
        assert_eq!(stream.message().await.unwrap().unwrap().index, index);
    }
    let status = stream.message().await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Aborted);

    let (tx, requests) = request_channel();
    let mut replies = client.bidi(requests).await.unwrap().into_inner();
    for word in ["a", "b"] {
        tx.send(EchoRequest::new(word)).await.unwrap();
        assert_eq!(replies.message().await.unwrap().unwrap().message, word);
    }
    drop(tx);
    assert!(replies.message().await.unwrap().is_none());
    assert_eq!(upstream.calls(), 3);
}

#[tokio::test]
async fn the_websocket_upstream_echoes_messages() {
    let upstream = WsUpstream::start().await;
    let mut ws = ws_connect(upstream.addr(), "/ws").await;
    assert_eq!(ws_round_trip(&mut ws, "ping 1").await, "ping 1");
    assert_eq!(ws_round_trip(&mut ws, "ping 2").await, "ping 2");
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    assert_eq!(upstream.sessions(), 1);
}

#[tokio::test]
async fn the_tcp_echo_upstream_writes_back_what_it_reads() {
    let upstream = TcpEchoUpstream::start().await;
    let mut stream = tokio::net::TcpStream::connect(upstream.addr())
        .await
        .unwrap();
    stream.write_all(b"hello tcp").await.unwrap();
    let mut buf = [0u8; 9];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello tcp");
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn a_slow_handler_answers_after_its_delay() {
    let upstream = Upstream::http1()
        .slow("/slow", Duration::from_millis(200))
        .status("/teapot", 418)
        .start()
        .await;
    let client = HttpClient::h1();
    let started = std::time::Instant::now();
    let reply = client
        .get(&format!("http://{}/slow", upstream.addr()))
        .await;
    assert_eq!(reply.text(), "slow");
    assert!(started.elapsed() >= Duration::from_millis(200));
    let reply = client
        .get(&format!("http://{}/teapot", upstream.addr()))
        .await;
    assert_eq!(reply.status, StatusCode::IM_A_TEAPOT);
}
