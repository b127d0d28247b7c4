//! The host a request is routed on is the host the upstream is sent: an HTTP/2 `Host`
//! that names another entity than `:authority` is refused with 400 (RFC 9113 §8.3.1),
//! an absolute-form HTTP/1.1 target overrides `Host` (RFC 9112 §3.2.2), and an
//! authority carrying userinfo is refused (RFC 9110 §4.2.4). Proved with upstreams that
//! echo what they received.

use std::net::SocketAddr;
use std::time::Duration;

use meshwork_tests::{Echo, Proxy, RawConn, Upstream, edge_routes};

/// Routes `good.example` to upstream `good` and `evil.example` to upstream `evil`.
async fn two_hosts() -> (Upstream, Upstream, Proxy) {
    let good = Upstream::http1().name("good").start().await;
    let evil = Upstream::http1().name("evil").start().await;
    let routes = "
        - name: good
          match: { host: [good.example] }
          backends: [{ cluster: good }]
        - name: evil
          match: { host: [evil.example] }
          backends: [{ cluster: evil }]
    ";
    let proxy = Proxy::with_config(edge_routes(routes, &[&good, &evil]))
        .start()
        .await;
    (good, evil, proxy)
}

/// What an HTTP/2 request got back: the status, the proxy's error reason, the echo.
#[derive(Debug)]
struct H2Answer {
    status: u16,
    error: Option<String>,
    echo: Option<Echo>,
}

/// Sends one HTTP/2 GET with `:authority` `authority` and, when given, a `Host` header,
/// with the h2 crate directly (well-behaved clients send no such pair).
async fn h2_get(addr: SocketAddr, authority: &str, host: Option<&str>) -> H2Answer {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.expect("an h2c handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("a ready h2 connection");
    let mut request = http::Request::get(format!("http://{authority}/x"));
    if let Some(host) = host {
        request = request.header("host", host);
    }
    let (response, _) = client
        .send_request(request.body(()).unwrap(), true)
        .expect("send the head");
    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("an answer within 5s")
        .expect("a response");
    let status = response.status().as_u16();
    let error = response
        .headers()
        .get("x-meshwork-error")
        .map(|v| v.to_str().unwrap().to_owned());
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("a body chunk");
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    H2Answer {
        status,
        error,
        echo: serde_json::from_slice(&bytes).ok(),
    }
}

#[tokio::test]
async fn an_http2_host_naming_another_entity_than_authority_is_refused_with_400() {
    let (good, evil, proxy) = two_hosts().await;
    let addr = proxy.listener_addr("edge");
    for (authority, host) in [
        ("good.example", "evil.example"),
        ("good.example", "good.example:8080"),
        ("good.example:8080", "good.example:9090"),
        ("good.example", "good.example.evil.example"),
        ("good.example", ""),
    ] {
        let answer = h2_get(addr, authority, Some(host)).await;
        assert_eq!(
            (answer.status, answer.error.as_deref()),
            (400, Some("malformed-request")),
            ":authority {authority:?} with Host {host:?}: {answer:?}"
        );
    }
    assert_eq!(
        good.requests() + evil.requests(),
        0,
        "nothing reached an upstream"
    );
}

#[tokio::test]
async fn an_http2_host_naming_the_same_entity_is_forwarded_as_the_authority() {
    let (good, evil, proxy) = two_hosts().await;
    let addr = proxy.listener_addr("edge");
    for (authority, host) in [
        ("good.example", None),
        ("good.example", Some("good.example")),
        ("good.example", Some("GOOD.Example")),
        ("good.example", Some("good.example.")),
        ("good.example", Some("good.example:80")),
        ("good.example:80", Some("good.example")),
    ] {
        let answer = h2_get(addr, authority, host).await;
        assert_eq!(
            answer.status, 200,
            "{authority:?} with {host:?}: {answer:?}"
        );
        let echo = answer.echo.expect("the upstream's echo");
        assert_eq!(echo.upstream, "good");
        assert_eq!(
            echo.header("host").as_deref(),
            Some(authority),
            "the upstream is sent the authority routed on ({host:?} sent): {echo:?}"
        );
    }
    assert_eq!(evil.requests(), 0);
    assert_eq!(good.requests(), 6);
}

/// Sends raw HTTP/1.1 bytes and returns the status and the echo, if any.
async fn h1_raw(addr: SocketAddr, request: &str) -> (u16, Option<Echo>) {
    let mut conn = RawConn::connect(addr).await;
    conn.send(request).await.unwrap();
    let response = conn
        .read_response(Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{request:?}: {e}"));
    (response.status, serde_json::from_slice(&response.body).ok())
}

#[tokio::test]
async fn an_absolute_form_target_overrides_host_for_routing_and_upstream_alike() {
    let (good, evil, proxy) = two_hosts().await;
    let addr = proxy.listener_addr("edge");
    let (status, echo) = h1_raw(
        addr,
        "GET http://good.example/x HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    let echo = echo.expect("the upstream's echo");
    assert_eq!(echo.upstream, "good");
    assert_eq!(
        echo.header("host").as_deref(),
        Some("good.example"),
        "the Host routed on: {echo:?}"
    );
    assert_eq!(evil.requests(), 0);
    assert_eq!(good.requests(), 1);
}

#[tokio::test]
async fn an_authority_with_userinfo_is_refused_with_400() {
    let (good, evil, proxy) = two_hosts().await;
    let addr = proxy.listener_addr("edge");
    for request in [
        "GET /x HTTP/1.1\r\nHost: evil.example@good.example\r\n\r\n",
        "GET http://evil.example@good.example/x HTTP/1.1\r\nHost: good.example\r\n\r\n",
    ] {
        let (status, _) = h1_raw(addr, request).await;
        assert_eq!(status, 400, "{request:?}");
    }
    let answer = h2_get(addr, "evil.example@good.example", None).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(
        good.requests() + evil.requests(),
        0,
        "nothing reached an upstream"
    );
}
