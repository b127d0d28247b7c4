//! Protocols through the proxy: HTTP/1.1 <-> HTTP/2 translation, streaming bodies with
//! bounded memory, trailers, gRPC, WebSocket upgrades and opaque TCP.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use meshwork_tests::body::{
    GeneratedBody, PatternCheck, channel_body, continue_verifying, verify_pattern,
};
use meshwork_tests::grpc::request_channel;
use meshwork_tests::proxy::rss_bytes_of;
use meshwork_tests::ws::ws_round_trip;
use meshwork_tests::{
    EchoRequest, GrpcClient, GrpcUpstream, HttpClient, Proxy, TcpEchoUpstream, Upstream,
    WsUpstream, dedent, single_cluster_config, within, ws_connect,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const MIB: u64 = 1024 * 1024;

/// Size of the large-body transfers.
const LARGE_BODY_BYTES: u64 = 256 * MIB;

/// How much the proxy's resident memory may grow while streaming a large body.
const MAX_RSS_GROWTH_BYTES: u64 = 64 * MIB;

async fn proxy_to(upstream: &Upstream) -> Proxy {
    Proxy::with_config(single_cluster_config(
        &upstream.endpoint(),
        upstream.cluster_protocol(),
    ))
    .start()
    .await
}

/// Samples a process's RSS every 50ms until dropped; keeps the peak.
struct RssSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(rss_bytes_of(pid).unwrap_or(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let (peak_w, stop_r) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop_r.load(Ordering::SeqCst) {
                if let Some(rss) = rss_bytes_of(pid) {
                    peak_w.fetch_max(rss, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Self { peak, stop }
    }

    fn peak(&self) -> u64 {
        self.peak.load(Ordering::SeqCst)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn an_http1_client_reaches_an_http2_cluster() {
    let app = Upstream::h2c().name("h2").start().await;
    let proxy = proxy_to(&app).await;
    let reply = HttpClient::h1()
        .request(Method::POST, &proxy.url("edge", "/items/7?full=1"))
        .header("host", "api.example.com")
        .header("x-custom", "v")
        .body("payload")
        .send()
        .await;
    assert_eq!(reply.version, http::Version::HTTP_11);
    let echo = reply.echo();
    assert_eq!(echo.version, "HTTP/2.0");
    assert_eq!(echo.method, "POST");
    assert_eq!(echo.path, "/items/7");
    assert_eq!(echo.query.as_deref(), Some("full=1"));
    assert_eq!(echo.host().as_deref(), Some("api.example.com"));
    assert_eq!(echo.header("x-custom").as_deref(), Some("v"));
}

#[tokio::test]
async fn an_h2c_client_reaches_an_http1_cluster() {
    let app = Upstream::http1().name("h1").start().await;
    let proxy = proxy_to(&app).await;
    let reply = HttpClient::h2c()
        .request(Method::PUT, &proxy.url("edge", "/items/7?full=1"))
        .header("x-custom", "v")
        .body("payload")
        .send()
        .await;
    assert_eq!(reply.version, http::Version::HTTP_2);
    let echo = reply.echo();
    assert_eq!(echo.version, "HTTP/1.1");
    assert_eq!(echo.method, "PUT");
    assert_eq!(echo.path, "/items/7");
    assert_eq!(echo.query.as_deref(), Some("full=1"));
    let authority = proxy.listener_addr("edge").to_string();
    assert_eq!(
        echo.headers.get("host"),
        Some(&vec![authority]),
        "the :authority becomes exactly one Host header"
    );
    assert_eq!(echo.header("x-custom").as_deref(), Some("v"));
}

#[tokio::test]
async fn an_h2c_client_reaches_an_h2c_cluster_and_trailers_come_back() {
    let app = Upstream::h2c()
        .name("h2")
        .trailers("/trailers")
        .start()
        .await;
    let proxy = proxy_to(&app).await;
    let reply = HttpClient::h2c().get(&proxy.url("edge", "/trailers")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "with-trailers");
    let trailers = reply.trailers.expect("trailers reached the client");
    assert_eq!(
        trailers.get("x-checksum").map(|v| v.as_bytes()),
        Some(&b"5d41402a"[..])
    );
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );
}

/// Sends chunks one at a time and expects each echoed back before sending the next: the
/// proxy must stream both bodies rather than wait for the request body to end.
async fn ping_pong(client: HttpClient, upstream: Upstream) {
    let proxy = proxy_to(&upstream).await;
    let (tx, body) = channel_body();
    let request = client
        .request(Method::POST, &proxy.url("edge", "/echo-body"))
        .body_stream(body)
        .build();
    tx.send(Bytes::from_static(b"ping-0;")).await.unwrap();
    let response = within(
        "the response head",
        Duration::from_secs(5),
        client.send_head(request),
    )
    .await
    .expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    for round in 0..5 {
        let expected = format!("ping-{round};");
        let mut received = Vec::new();
        while received.len() < expected.len() {
            let frame = within(
                &format!("echo of {expected} before the request body ends"),
                Duration::from_secs(5),
                body.frame(),
            )
            .await
            .expect("the body continues")
            .expect("no body error");
            if let Some(data) = frame.data_ref() {
                received.extend_from_slice(data);
            }
        }
        assert_eq!(String::from_utf8_lossy(&received), expected);
        tx.send(Bytes::from(format!("ping-{};", round + 1)))
            .await
            .unwrap();
    }
    drop(tx);
    let rest = within(
        "the end of the body",
        Duration::from_secs(5),
        body.collect(),
    )
    .await
    .expect("a clean end");
    assert_eq!(rest.to_bytes(), Bytes::from_static(b"ping-5;"));
}

#[tokio::test]
async fn request_and_response_bodies_stream_together_over_h2c() {
    let upstream = Upstream::h2c()
        .name("h2")
        .echo_body("/echo-body")
        .start()
        .await;
    ping_pong(HttpClient::h2c(), upstream).await;
}

#[tokio::test]
async fn request_and_response_bodies_stream_together_over_http1() {
    let upstream = Upstream::http1()
        .name("h1")
        .echo_body("/echo-body")
        .start()
        .await;
    ping_pong(HttpClient::h1(), upstream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_256_mib_download_streams_with_bounded_proxy_memory() {
    let app = Upstream::http1()
        .name("app")
        .large("/big", LARGE_BODY_BYTES)
        .start()
        .await;
    let proxy = proxy_to(&app).await;
    let client = HttpClient::h1();
    client.get(&proxy.url("edge", "/warm-up")).await;
    let baseline = proxy.rss_bytes();
    let sampler = RssSampler::start(proxy.pid());

    let response = client
        .send_head(
            client
                .request(Method::GET, &proxy.url("edge", "/big"))
                .build(),
        )
        .await
        .expect("a response head");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    // Read a little, then stall: a streaming proxy stops reading from the upstream
    // instead of buffering what the client does not take.
    let mut check = PatternCheck::default();
    while check.bytes < MIB {
        let frame = within("the first MiB", Duration::from_secs(10), body.frame())
            .await
            .expect("more body")
            .expect("no body error");
        if let Some(data) = frame.data_ref() {
            check.feed(data);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stalled_rss = proxy.rss_bytes();
    let check = within(
        "the 256 MiB download",
        Duration::from_secs(180),
        continue_verifying(check, body),
    )
    .await
    .expect("the body arrives whole");
    assert_eq!(
        (check.bytes, check.first_mismatch),
        (LARGE_BODY_BYTES, None)
    );
    let growth = sampler.peak().saturating_sub(baseline);
    eprintln!(
        "download: baseline {baseline} B, stalled {stalled_rss} B, peak {} B",
        sampler.peak()
    );
    assert!(
        growth < MAX_RSS_GROWTH_BYTES,
        "proxy RSS grew by {} MiB (baseline {} MiB, peak {} MiB, while stalled {} MiB)",
        growth / MIB,
        baseline / MIB,
        sampler.peak() / MIB,
        stalled_rss / MIB
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_256_mib_upload_streams_with_bounded_proxy_memory() {
    let app = Upstream::http1()
        .name("app")
        .count_body("/upload")
        .start()
        .await;
    let proxy = proxy_to(&app).await;
    let client = HttpClient::h1();
    client.get(&proxy.url("edge", "/warm-up")).await;
    let baseline = proxy.rss_bytes();
    let sampler = RssSampler::start(proxy.pid());

    let reply = client
        .request(Method::POST, &proxy.url("edge", "/upload"))
        .body_stream(GeneratedBody::chunked(LARGE_BODY_BYTES).boxed())
        .timeout(Duration::from_secs(180))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let counted = reply.json();
    assert_eq!(counted["bytes"], LARGE_BODY_BYTES, "{counted}");
    assert!(counted["first_mismatch"].is_null(), "{counted}");
    let growth = sampler.peak().saturating_sub(baseline);
    eprintln!("upload: baseline {baseline} B, peak {} B", sampler.peak());
    assert!(
        growth < MAX_RSS_GROWTH_BYTES,
        "proxy RSS grew by {} MiB (baseline {} MiB, peak {} MiB)",
        growth / MIB,
        baseline / MIB,
        sampler.peak() / MIB
    );
}

#[tokio::test]
async fn a_large_body_crosses_from_http1_to_http2_intact() {
    const SIZE: u64 = 8 * MIB;
    let app = Upstream::h2c()
        .name("h2")
        .count_body("/upload")
        .large("/download", SIZE)
        .start()
        .await;
    let proxy = proxy_to(&app).await;
    let client = HttpClient::h1();
    let reply = client
        .request(Method::POST, &proxy.url("edge", "/upload"))
        .body_stream(GeneratedBody::with_length(SIZE).boxed())
        .send()
        .await;
    assert_eq!(reply.json()["bytes"], SIZE);
    let response = client
        .send_head(
            client
                .request(Method::GET, &proxy.url("edge", "/download"))
                .build(),
        )
        .await
        .expect("a response head");
    let check = within(
        "the download",
        Duration::from_secs(60),
        verify_pattern(response.into_body()),
    )
    .await
    .expect("a whole body");
    assert_eq!((check.bytes, check.first_mismatch), (SIZE, None));
}

/// The client's DATA keeps coming after the request went upstream (8 MiB: many
/// windows' worth), and the HTTP/1 upstream reads it in the client connection's task:
/// each DATA frame must get the stream polled again.
#[tokio::test]
async fn a_large_body_crosses_from_http2_to_http1_intact() {
    const SIZE: u64 = 8 * MIB;
    let app = Upstream::http1()
        .name("h1")
        .count_body("/upload")
        .start()
        .await;
    let proxy = proxy_to(&app).await;
    let reply = HttpClient::h2c()
        .request(Method::POST, &proxy.url("edge", "/upload"))
        .body_stream(GeneratedBody::with_length(SIZE).boxed())
        .send()
        .await;
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(reply.json()["bytes"], SIZE);
}

fn grpc_config(upstream: &GrpcUpstream) -> String {
    single_cluster_config(&upstream.endpoint(), "http2")
}

#[tokio::test]
async fn a_grpc_unary_call_goes_through() {
    let upstream = GrpcUpstream::start().await;
    let proxy = Proxy::with_config(grpc_config(&upstream)).start().await;
    let mut client = GrpcClient::connect(proxy.listener_addr("edge")).await;
    let reply = client
        .unary(EchoRequest::new("hello grpc"))
        .await
        .expect("an OK call");
    assert_eq!(reply.into_inner().message, "hello grpc");
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test]
async fn a_grpc_error_status_reaches_the_client() {
    let upstream = GrpcUpstream::start().await;
    let proxy = Proxy::with_config(grpc_config(&upstream)).start().await;
    let mut client = GrpcClient::connect(proxy.listener_addr("edge")).await;
    let request = EchoRequest {
        fail_with: tonic::Code::NotFound as u32,
        ..EchoRequest::new("x")
    };
    let status = client.unary(request).await.expect_err("a failed call");
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert_eq!(status.message(), "failure requested by the test");
}

#[tokio::test]
async fn a_grpc_server_stream_delivers_every_message_then_the_trailing_status() {
    let upstream = GrpcUpstream::start().await;
    let proxy = Proxy::with_config(grpc_config(&upstream)).start().await;
    let mut client = GrpcClient::connect(proxy.listener_addr("edge")).await;

    let request = EchoRequest {
        count: 20,
        interval_ms: 5,
        ..EchoRequest::new("tick")
    };
    let mut stream = client
        .server_stream(request)
        .await
        .expect("the call starts")
        .into_inner();
    for index in 0..20 {
        let reply = within("the next message", Duration::from_secs(5), stream.message())
            .await
            .expect("no error mid-stream")
            .expect("more messages");
        assert_eq!((reply.message.as_str(), reply.index), ("tick", index));
    }
    let end = within(
        "the end of the stream",
        Duration::from_secs(5),
        stream.message(),
    )
    .await;
    assert!(
        matches!(end, Ok(None)),
        "expected a clean end with grpc-status 0, got {end:?}"
    );

    // A status after messages travels in the trailers.
    let request = EchoRequest {
        count: 2,
        fail_with: tonic::Code::ResourceExhausted as u32,
        ..EchoRequest::new("tick")
    };
    let mut stream = client
        .server_stream(request)
        .await
        .expect("the call starts")
        .into_inner();
    for _ in 0..2 {
        assert!(stream.message().await.expect("a message").is_some());
    }
    let status = stream.message().await.expect_err("the trailing status");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
}

#[tokio::test]
async fn a_grpc_bidi_stream_echoes_each_message_in_turn() {
    let upstream = GrpcUpstream::start().await;
    let proxy = Proxy::with_config(grpc_config(&upstream)).start().await;
    let mut client = GrpcClient::connect(proxy.listener_addr("edge")).await;
    let (tx, requests) = request_channel();
    tx.send(EchoRequest::new("m0")).await.unwrap();
    let mut replies = within(
        "the bidi call to start",
        Duration::from_secs(5),
        client.bidi(requests),
    )
    .await
    .expect("the call starts")
    .into_inner();
    for index in 0..10u32 {
        let reply = within(
            "the echo of the last message",
            Duration::from_secs(5),
            replies.message(),
        )
        .await
        .expect("no error")
        .expect("a reply");
        assert_eq!((reply.message, reply.index), (format!("m{index}"), index));
        tx.send(EchoRequest::new(&format!("m{}", index + 1)))
            .await
            .unwrap();
    }
    drop(tx);
    let last = replies
        .message()
        .await
        .expect("no error")
        .expect("the last echo");
    assert_eq!(last.message, "m10");
    let end = within(
        "the end of the call",
        Duration::from_secs(5),
        replies.message(),
    )
    .await;
    assert!(
        matches!(end, Ok(None)),
        "expected grpc-status 0 in trailers, got {end:?}"
    );
}

#[tokio::test]
async fn a_websocket_upgrade_is_tunneled_to_the_upstream() {
    let upstream = WsUpstream::start().await;
    let proxy = Proxy::with_config(single_cluster_config(&upstream.endpoint(), "http1"))
        .start()
        .await;
    let mut ws = ws_connect(proxy.listener_addr("edge"), "/chat").await;
    for i in 0..5 {
        let text = format!("message {i}");
        assert_eq!(ws_round_trip(&mut ws, &text).await, text);
    }
    let blob: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    ws.send(Message::binary(blob.clone())).await.unwrap();
    let echoed = within("the binary echo", Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(data))) => return data,
                Some(Ok(_)) => continue,
                other => panic!("WebSocket ended: {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(echoed.as_ref(), &blob[..]);
    ws.close(None).await.unwrap();
    assert_eq!(upstream.sessions(), 1);
}

#[tokio::test]
async fn a_tcp_listener_proxies_bytes_both_ways() {
    let upstream = TcpEchoUpstream::start().await;
    let yaml = dedent(&format!(
        "
        version: 1
        admin:
          address: 127.0.0.1:0
        listeners:
          - name: db
            address: 127.0.0.1:0
            protocol: tcp
            cluster: echo
        clusters:
          - name: echo
            endpoints:
              - {}
        ",
        upstream.endpoint()
    ));
    let proxy = Proxy::with_config(yaml).start().await;
    assert_eq!(proxy.listeners()[0].protocol, "tcp");

    let stream = tokio::net::TcpStream::connect(proxy.listener_addr("db"))
        .await
        .unwrap();
    let (mut read, mut write) = stream.into_split();
    const SIZE: usize = 4 * 1024 * 1024;
    let sent: Vec<u8> = (0..SIZE).map(|i| (i % 253) as u8).collect();
    let expected = sent.clone();
    let writer = tokio::spawn(async move {
        for chunk in sent.chunks(64 * 1024) {
            write.write_all(chunk).await.unwrap();
        }
        // Half-close: the echo upstream finishes and closes, and so must the proxy.
        write.shutdown().await.unwrap();
    });
    let mut received = Vec::with_capacity(SIZE);
    within(
        "the echoed bytes and EOF",
        Duration::from_secs(30),
        read.read_to_end(&mut received),
    )
    .await
    .expect("read the echo");
    writer.await.unwrap();
    assert_eq!(received.len(), SIZE);
    assert!(received == expected, "the echoed bytes differ");
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn a_large_grpc_message_goes_through_in_both_directions() {
    let upstream = GrpcUpstream::start().await;
    let proxy = Proxy::with_config(grpc_config(&upstream)).start().await;
    let mut client = GrpcClient::connect(proxy.listener_addr("edge")).await;
    // Well past every default HTTP/2 flow-control window (64 KiB), under tonic's 4 MiB cap.
    let message: String = "0123456789abcdef".repeat(3 * 1024 * 1024 / 16);
    let reply = within(
        "a 3 MiB unary call",
        Duration::from_secs(30),
        client.unary(EchoRequest::new(&message)),
    )
    .await
    .expect("an OK call");
    assert!(reply.into_inner().message == message, "the echo differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_grpc_calls_on_one_connection_all_complete() {
    const CALLS: usize = 100;
    let upstream = GrpcUpstream::start().await;
    let proxy = Proxy::with_config(grpc_config(&upstream)).start().await;
    let client = GrpcClient::connect(proxy.listener_addr("edge")).await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..CALLS {
        let mut client = client.clone();
        calls.spawn(async move {
            let request = EchoRequest {
                count: 3,
                ..EchoRequest::new(&format!("call {i}"))
            };
            let mut stream = client.server_stream(request).await?.into_inner();
            let mut replies = Vec::new();
            while let Some(reply) = stream.message().await? {
                replies.push(reply.message);
            }
            Ok::<_, tonic::Status>((i, replies))
        });
    }
    let all = within("every concurrent call", Duration::from_secs(30), async {
        let mut done = Vec::new();
        while let Some(result) = calls.join_next().await {
            done.push(result.expect("a call task"));
        }
        done
    })
    .await;
    assert_eq!(all.len(), CALLS);
    for result in all {
        let (i, replies) = result.expect("an OK call");
        assert_eq!(replies, vec![format!("call {i}"); 3]);
    }
    assert_eq!(upstream.calls(), CALLS as u64);
}
