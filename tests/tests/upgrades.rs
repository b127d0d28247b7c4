//! Protocol upgrades: `Upgrade: h2c` (and `HTTP2-Settings`) is never relayed, whatever
//! the case or the other tokens; only the protocols a route allows (`upgrades`,
//! WebSocket by default) are tunnelled; an upgrade the proxy did not ask for is a 502
//! and the upstream connection is dropped. Sent as exact bytes on raw sockets.

use std::time::Duration;

use meshwork_tests::raw_upstream::CLOSE_TIMEOUT;
use meshwork_tests::{
    Echo, Proxy, RawConn, RawResponse, RawScript, RawUpstream, Upstream, UpstreamBuilder,
    edge_config, single_cluster_config,
};

/// A proxy with one route (upgrades at their default) to an echoing upstream `app`.
async fn proxy_to(upstream: UpstreamBuilder) -> (Upstream, Proxy) {
    let app = upstream.name("app").start().await;
    let proxy = Proxy::with_config(single_cluster_config(
        &app.endpoint(),
        app.cluster_protocol(),
    ))
    .start()
    .await;
    (app, proxy)
}

async fn send(proxy: &Proxy, request: &str) -> (RawConn, RawResponse) {
    let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
    conn.send(request).await.unwrap();
    let response = conn
        .read_response(Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{request:?}: {e}"));
    (conn, response)
}

/// The upstream's echo of a request that must have arrived as a plain request.
fn plain_echo(request: &str, response: &RawResponse) -> Echo {
    assert_eq!(response.status, 200, "{request:?}: {response:?}");
    let echo: Echo = serde_json::from_slice(&response.body).expect("the upstream's echo");
    for header in ["upgrade", "http2-settings", "connection"] {
        assert!(
            !echo.has_header(header),
            "{request:?}: {header} reached the upstream: {echo:?}"
        );
    }
    echo
}

#[tokio::test]
async fn an_h2c_upgrade_is_stripped_and_forwarded_as_a_plain_request() {
    let (_app, proxy) = proxy_to(Upstream::http1()).await;
    for (connection, upgrade) in [
        ("Upgrade, HTTP2-Settings", "h2c"),
        ("upgrade, http2-settings", "H2C"),
        ("Upgrade", "h2c"),
        ("HTTP2-Settings, Upgrade", "h2c/1"),
        ("keep-alive, UPGRADE", "H2c"),
    ] {
        let request = format!(
            "GET /x HTTP/1.1\r\nHost: app.example\r\nConnection: {connection}\r\n\
             Upgrade: {upgrade}\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        );
        let (_, response) = send(&proxy, &request).await;
        plain_echo(&request, &response);
    }
    // HTTP2-Settings alone, not named in Connection, goes nowhere either.
    let request = "GET /x HTTP/1.1\r\nHost: app.example\r\nHTTP2-Settings: AAMAAABk\r\n\r\n";
    let (_, response) = send(&proxy, request).await;
    plain_echo(request, &response);
}

#[tokio::test]
async fn h2c_among_several_upgrade_tokens_is_dropped_and_the_allowed_one_kept() {
    let (_app, proxy) = proxy_to(Upstream::http1()).await;
    let request = "GET /x HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade, HTTP2-Settings\r\n\
                   Upgrade: h2c, WebSocket\r\nHTTP2-Settings: AAMAAABk\r\n\r\n";
    let (_, response) = send(&proxy, request).await;
    assert_eq!(response.status, 200, "{response:?}");
    let echo: Echo = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(
        echo.header("upgrade").as_deref(),
        Some("WebSocket"),
        "{echo:?}"
    );
    assert!(!echo.has_header("http2-settings"), "{echo:?}");
}

#[tokio::test]
async fn upgrade_headers_without_each_other_are_plain_requests() {
    let (_app, proxy) = proxy_to(Upstream::http1()).await;
    for request in [
        "GET /x HTTP/1.1\r\nHost: app.example\r\nConnection: upgrade\r\n\r\n",
        "GET /x HTTP/1.1\r\nHost: app.example\r\nUpgrade: websocket\r\n\r\n",
        "GET /x HTTP/1.0\r\nHost: app.example\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    ] {
        let (_, response) = send(&proxy, request).await;
        plain_echo(request, &response);
    }
}

const SWITCH_TO_H2C: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";

#[tokio::test]
async fn a_101_the_proxy_did_not_ask_for_is_a_502_and_the_upstream_connection_is_dropped() {
    for request in [
        "GET /x HTTP/1.1\r\nHost: app.example\r\n\r\n",
        "GET /x HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade, HTTP2-Settings\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n\r\n",
        "GET /x HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ] {
        let app = RawUpstream::start(RawScript::ReplyThenEcho(SWITCH_TO_H2C.to_vec())).await;
        let proxy = Proxy::with_config(single_cluster_config(&app.endpoint(), "http1"))
            .start()
            .await;
        let (_, response) = send(&proxy, request).await;
        assert_eq!(response.status, 502, "{request:?}: {response:?}");
        assert_eq!(
            response.header("x-meshwork-error"),
            Some("unrequested-upgrade"),
            "{request:?}"
        );
        let received = app.closed(0, CLOSE_TIMEOUT).await;
        let head = String::from_utf8_lossy(&received).to_ascii_lowercase();
        assert!(!head.contains("h2c"), "h2c reached the upstream: {head}");
    }
}

/// Routes `/open` (which allows `custom-proto`), `/closed` (the default: WebSocket only)
/// and `/none` (no upgrades at all).
fn upgrade_routes(tunnel: &str, echo: &str) -> String {
    edge_config(&format!(
        "
        route_tables:
          edge:
            - name: open
              match: {{ path: {{ prefix: /open }} }}
              upgrades: [websocket, custom-proto]
              backends: [{{ cluster: tunnel }}]
            - name: closed
              match: {{ path: {{ prefix: /closed }} }}
              backends: [{{ cluster: echo }}]
            - name: none
              match: {{ path: {{ prefix: /none }} }}
              upgrades: []
              backends: [{{ cluster: echo }}]
        clusters:
          - name: tunnel
            endpoints: [{tunnel}]
          - name: echo
            endpoints: [{echo}]
        "
    ))
}

#[tokio::test]
async fn a_protocol_a_route_allows_is_tunnelled_and_others_are_not() {
    let tunnel = RawUpstream::start(RawScript::ReplyThenEcho(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: Custom-Proto\r\n\r\n"
            .to_vec(),
    ))
    .await;
    let echo = Upstream::http1().name("echo").start().await;
    let proxy = Proxy::with_config(upgrade_routes(&tunnel.endpoint(), &echo.endpoint()))
        .start()
        .await;

    let request = "GET /open HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: custom-proto\r\n\r\n";
    let (mut conn, response) = send(&proxy, request).await;
    assert_eq!(response.status, 101, "{response:?}");
    assert_eq!(
        response
            .header("upgrade")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("custom-proto")
    );
    conn.send("ping through the tunnel").await.unwrap();
    tunnel.head(0, CLOSE_TIMEOUT).await;
    meshwork_tests::eventually(
        "the tunnelled bytes at the upstream",
        CLOSE_TIMEOUT,
        || async {
            String::from_utf8_lossy(&tunnel.received(0)).ends_with("ping through the tunnel")
        },
    )
    .await;

    for request in [
        "GET /closed HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: custom-proto\r\n\r\n",
        "GET /none HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    ] {
        let (_, response) = send(&proxy, request).await;
        plain_echo(request, &response);
    }
}

#[tokio::test]
async fn a_101_for_another_protocol_than_requested_is_a_502() {
    let tunnel = RawUpstream::start(RawScript::ReplyThenEcho(SWITCH_TO_H2C.to_vec())).await;
    let echo = Upstream::http1().name("echo").start().await;
    let proxy = Proxy::with_config(upgrade_routes(&tunnel.endpoint(), &echo.endpoint()))
        .start()
        .await;
    let request = "GET /open HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: custom-proto\r\n\r\n";
    let (_, response) = send(&proxy, request).await;
    assert_eq!(response.status, 502, "{response:?}");
    assert_eq!(
        response.header("x-meshwork-error"),
        Some("unrequested-upgrade")
    );
    tunnel.closed(0, CLOSE_TIMEOUT).await;
}

#[tokio::test]
async fn an_upgrade_to_an_http2_cluster_goes_as_a_plain_request() {
    let (_app, proxy) = proxy_to(Upstream::h2c()).await;
    let request = "GET /x HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let (_, response) = send(&proxy, request).await;
    let echo = plain_echo(request, &response);
    assert_eq!(echo.version, "HTTP/2.0");
}
