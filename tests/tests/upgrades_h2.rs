//! WebSockets where HTTP/2 is in the way. Between two sidecars whose `auto` cluster
//! negotiated `h2` over mTLS, an upgrade travels on an HTTP/1.1 connection of its own
//! (ALPN `http/1.1` only), counted against the cluster's `max_connections`. An HTTP/2
//! client opens a WebSocket with an RFC 8441 extended CONNECT (`:protocol websocket`),
//! which the proxy carries to an HTTP/1.1 upstream as an `Upgrade` and answers `200`;
//! only the protocols the route's `upgrades` allow, `h2c` never, and a plain `CONNECT`
//! is left as it was. Real processes, real WebSocket clients and servers.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use meshwork_tests::{
    AccessLogFile, CertFiles, HttpClient, Proxy, TestCa, Upstream, WsUpstream, edge_config,
    labels_of, outbound_sidecar_yaml, within, ws_connect,
};

const WEB: &str = "spiffe://cluster.local/ns/prod/sa/web";
const API: &str = "spiffe://cluster.local/ns/prod/sa/api";
const WAIT: Duration = Duration::from_secs(5);
/// What the greeting server sends first, before the client says anything.
const GREETING: &str = "hello from the server";

/// A WebSocket server that speaks first (a greeting on every new session), then echoes
/// text and binary messages, and answers a close with a close.
struct GreetingWsServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl GreetingWsServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    if ws.send(Message::text(GREETING)).await.is_err() {
                        return;
                    }
                    while let Some(Ok(message)) = ws.next().await {
                        if (message.is_text() || message.is_binary())
                            && ws.send(message).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Self { addr, task }
    }
}

impl Drop for GreetingWsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The server sidecar: listener `inbound` requiring client certificates; `/plain` goes to
/// an echo app, everything else to the WebSocket app.
fn inbound_yaml(identity: &CertFiles, ws_app: SocketAddr, echo: &str, log: &str) -> String {
    format!(
        "
version: 1
admin:
  address: 127.0.0.1:0
listeners:
  - name: inbound
    address: 127.0.0.1:0
    route_table: inbound
    tls:
      client_auth: required
route_tables:
  inbound:
    - name: plain
      match: {{ path: {{ prefix: /plain }} }}
      backends: [{{ cluster: echo }}]
    - name: ws
      backends: [{{ cluster: ws }}]
clusters:
  - name: echo
    endpoints: [{echo}]
  - name: ws
    endpoints: [{ws_app}]
{}{log}",
        identity.identity_yaml()
    )
}

/// The client sidecar: plaintext listener `outbound` (HTTP/1.1 and h2c) sending to the
/// server sidecar with `protocol: auto` over mTLS; `limits` are lines of the cluster.
fn outbound_yaml(identity: &CertFiles, server: SocketAddr, limits: &str) -> String {
    let cluster = format!(
        "    protocol: auto\n    connect_timeout: 500ms\n    tls:\n      identities: [{API}]\n{limits}"
    );
    outbound_sidecar_yaml(server, &cluster, &identity.identity_yaml())
}

/// Two sidecars chained over mTLS in front of a greeting WebSocket server and an echo app.
struct Mesh {
    client: Proxy,
    server: Proxy,
    log: AccessLogFile,
    _ws_app: GreetingWsServer,
    _echo: Upstream,
    _ca: TestCa,
}

impl Mesh {
    async fn start(client_limits: &str) -> Self {
        let ca = TestCa::new("mesh");
        let api = ca.issue("api").spiffe_id(API).write();
        let web = ca.issue("web").spiffe_id(WEB).write();
        let ws_app = GreetingWsServer::start().await;
        let echo = Upstream::http1().name("echo").start().await;
        let log = AccessLogFile::json();
        let server = Proxy::with_config(inbound_yaml(
            &api,
            ws_app.addr,
            &echo.endpoint(),
            &log.yaml(),
        ))
        .start()
        .await;
        let client = Proxy::with_config(outbound_yaml(
            &web,
            server.listener_addr("inbound"),
            client_limits,
        ))
        .start()
        .await;
        Self {
            client,
            server,
            log,
            _ws_app: ws_app,
            _echo: echo,
            _ca: ca,
        }
    }

    /// Proves the link between the sidecars is HTTP/2: a plain request crosses it as one
    /// (the server sidecar's access log line number `line`, from 0).
    async fn plain_request_crosses_as_http2(&self, line: usize) {
        let reply = HttpClient::h1()
            .request(http::Method::GET, &self.client.url("outbound", "/plain"))
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let line = &self.log.json_lines(line + 1).await[line];
        assert_eq!(line["protocol"], "HTTP/2.0", "{line}");
    }
}

/// The next message other than a ping or pong (`None` when the stream ended); panics on
/// a broken stream or when nothing arrives within 5s.
async fn next_message<S>(ws: &mut WebSocketStream<S>, what: &str) -> Option<Message>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    within(what, WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(message)) => return Some(message),
                Some(Err(error)) => panic!("{what}: {error}"),
                None => return None,
            }
        }
    })
    .await
}

/// The next text message; panics on anything else.
async fn next_text<S>(ws: &mut WebSocketStream<S>) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match next_message(ws, "a text message").await {
        Some(Message::Text(text)) => text.as_str().to_owned(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// Greeting first (server to client), then messages both ways, then a clean close.
async fn converse<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    assert_eq!(next_text(&mut ws).await, GREETING);
    for i in 0..3 {
        let text = format!("message {i} from the client");
        ws.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(next_text(&mut ws).await, text);
    }
    let blob: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    ws.send(Message::binary(blob.clone())).await.unwrap();
    match next_message(&mut ws, "the binary echo").await {
        Some(Message::Binary(echoed)) => assert_eq!(echoed.as_ref(), &blob[..]),
        other => panic!("expected the binary echo, got {other:?}"),
    }
    close_cleanly(ws).await;
}

/// Closes `ws`: the client's close is answered with a close and the stream ends.
async fn close_cleanly<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.close(None).await.unwrap();
    match next_message(&mut ws, "the server's close").await {
        Some(Message::Close(_)) => {}
        other => panic!("expected the close handshake, got {other:?}"),
    }
    assert!(
        next_message(&mut ws, "the end of the stream")
            .await
            .is_none(),
        "the WebSocket ends after the close handshake"
    );
}

/// An HTTP/2 (prior knowledge) connection to `addr`.
async fn h2c(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("an h2c handshake");
    tokio::spawn(connection);
    sender
}

/// Sends an extended CONNECT for `protocol` to `path` (RFC 8441 §4) and returns the
/// response.
async fn extended_connect(
    sender: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    path: &str,
    protocol: &'static str,
) -> http::Response<Incoming> {
    let mut request = http::Request::connect(format!("http://app.example{path}"))
        .header("sec-websocket-version", "13")
        .body(Empty::new())
        .unwrap();
    request
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static(protocol));
    within("the extended CONNECT's answer", WAIT, async {
        sender.ready().await.expect("a ready connection");
        sender.send_request(request).await
    })
    .await
    .expect("a response to the extended CONNECT")
}

/// Opens a WebSocket over HTTP/2 (RFC 8441) through `addr`; panics unless answered 200.
async fn h2_websocket(addr: SocketAddr, path: &str) -> WebSocketStream<TokioIo<Upgraded>> {
    let mut sender = h2c(addr).await;
    let response = extended_connect(&mut sender, path, "websocket").await;
    assert_eq!(response.status(), 200, "{response:?}");
    assert!(response.headers().get("sec-websocket-accept").is_none());
    let upgraded = within("the tunnel", WAIT, hyper::upgrade::on(response))
        .await
        .expect("the stream becomes the tunnel");
    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await
}

/// Opens a WebSocket through the client sidecar (over HTTP/1.1, or HTTP/2 with extended
/// CONNECT), converses, and returns the server sidecar's access log line for it.
async fn websocket_across_the_mesh(http2_client: bool) -> serde_json::Value {
    let mesh = Mesh::start("").await;
    mesh.plain_request_crosses_as_http2(0).await;
    let outbound = mesh.client.listener_addr("outbound");
    if http2_client {
        converse(h2_websocket(outbound, "/chat").await).await;
    } else {
        converse(ws_connect(outbound, "/chat").await).await;
    }
    let line = mesh.log.json_lines(2).await.swap_remove(1);
    // Its own connection: HTTP/1.1, mutually authenticated like any other.
    assert_eq!(line["status"], 101, "{line}");
    assert_eq!(line["protocol"], "HTTP/1.1", "{line}");
    assert_eq!(line["peer_identity"], WEB, "{line}");
    line
}

#[tokio::test]
async fn a_websocket_crosses_two_sidecars_whose_link_negotiated_http2() {
    let line = websocket_across_the_mesh(false).await;
    assert_eq!(line["method"], "GET", "{line}");
}

#[tokio::test]
async fn an_http2_websocket_crosses_two_sidecars_whose_link_negotiated_http2() {
    // The client sidecar turned the extended CONNECT into an HTTP/1.1 upgrade.
    let line = websocket_across_the_mesh(true).await;
    assert_eq!(line["method"], "GET", "{line}");
}

#[tokio::test]
async fn a_tunnel_holds_one_of_the_clusters_connections_while_it_lives() {
    let mesh = Mesh::start("    limits: { max_connections: 1 }").await;
    let api = labels_of(&[
        ("cluster", "api"),
        (
            "endpoint",
            &mesh.server.listener_addr("inbound").to_string(),
        ),
    ]);
    let active = |want: f64| {
        let api = api.clone();
        move |s: &meshwork_tests::Scrape| {
            s.series("meshwork_upstream_connections_active").get(&api) == Some(&want)
        }
    };
    // The tunnel's connection is the cluster's one: while it lives, a plain request has
    // none to take (503 overflow once connect_timeout passed).
    let mut ws = ws_connect(mesh.client.listener_addr("outbound"), "/chat").await;
    assert_eq!(next_text(&mut ws).await, GREETING);
    mesh.client
        .scrape_when("the tunnel's connection", active(1.0))
        .await;
    let reply = HttpClient::h1()
        .request(http::Method::GET, &mesh.client.url("outbound", "/plain"))
        .send()
        .await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.header("x-meshwork-error"), Some("overflow"));
    // Closed, it frees the connection for the pool.
    close_cleanly(ws).await;
    mesh.client
        .scrape_when("the tunnel closed", active(0.0))
        .await;
    // (Lines so far: the WebSocket's 101, and the 503 never reached the server.)
    mesh.plain_request_crosses_as_http2(1).await;
    // Now the pool's HTTP/2 connection holds it, and an upgrade finds none.
    let mut sender = h2c(mesh.client.listener_addr("outbound")).await;
    let response = extended_connect(&mut sender, "/chat", "websocket").await;
    assert_eq!(response.status(), 503, "{response:?}");
    assert_eq!(response.headers()["x-meshwork-error"], "overflow");
}

/// An edge proxy (h2c and HTTP/1.1 on `edge`) in front of a WebSocket echo server:
/// `/open` allows `custom-proto` too, `/chat` the default (WebSocket only), `/none` none,
/// `/retried` retries `CONNECT`s.
async fn edge_to(ws_app: &str) -> Proxy {
    Proxy::with_config(edge_config(&format!(
        "
        route_tables:
          edge:
            - name: open
              match: {{ path: {{ prefix: /open }} }}
              upgrades: [websocket, custom-proto]
              backends: [{{ cluster: ws }}]
            - name: none
              match: {{ path: {{ prefix: /none }} }}
              upgrades: []
              backends: [{{ cluster: ws }}]
            - name: retried
              match: {{ path: {{ prefix: /retried }} }}
              retry: {{ attempts: 3, on: [reset, 502], methods: [CONNECT] }}
              backends: [{{ cluster: ws }}]
            - name: chat
              backends: [{{ cluster: ws }}]
        clusters:
          - name: ws
            endpoints: [{ws_app}]
        "
    )))
    .start()
    .await
}

#[tokio::test]
async fn an_http2_client_opens_a_websocket_with_extended_connect() {
    // (On `/retried` too: an extended CONNECT is never replayed without its :protocol.)
    let ws_app = GreetingWsServer::start().await;
    let proxy = edge_to(&ws_app.addr.to_string()).await;
    let addr = proxy.listener_addr("edge");

    // The server says it takes extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL).
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.expect("an h2c handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("a ready h2 connection");
    let ping = http::Request::get("http://app.example/healthz")
        .body(())
        .unwrap();
    let (response, _) = client.send_request(ping, true).unwrap();
    // Once any answer arrived, the server's SETTINGS have too.
    let _ = within("an answer", WAIT, response).await;
    assert!(client.is_extended_connect_protocol_enabled());

    converse(h2_websocket(addr, "/chat").await).await;
    converse(h2_websocket(addr, "/retried").await).await;
}

#[tokio::test]
async fn an_extended_connect_for_a_protocol_its_route_does_not_allow_opens_no_tunnel() {
    let ws_app = WsUpstream::start().await;
    let proxy = edge_to(&ws_app.endpoint()).await;
    let mut sender = h2c(proxy.listener_addr("edge")).await;
    for (path, protocol, status, reason) in [
        ("/chat", "custom-proto", 403, "upgrade-not-allowed"),
        ("/none", "websocket", 403, "upgrade-not-allowed"),
        ("/open", "h2c", 403, "upgrade-not-allowed"),
        ("/open", "websocket, custom-proto", 400, "malformed-request"),
    ] {
        let response = extended_connect(&mut sender, path, protocol).await;
        assert_eq!(response.status(), status, "{path} {protocol}: {response:?}");
        assert_eq!(
            response.headers()["x-meshwork-error"],
            reason,
            "{path} {protocol}"
        );
        // No tunnel: the stream carries an ordinary answer and ends.
        let body = within("the refusal's body", WAIT, response.into_body().collect())
            .await
            .expect("a complete body");
        assert!(body.to_bytes().len() < 1024);
    }
    // The upstream saw none of them: the one allowed WebSocket is its first session.
    let mut ws = h2_websocket(proxy.listener_addr("edge"), "/open").await;
    ws.send(Message::text("allowed")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "allowed");
    assert_eq!(ws_app.sessions(), 1);
}

#[tokio::test]
async fn a_plain_connect_keeps_its_answer() {
    let ws_app = WsUpstream::start().await;
    let proxy = edge_to(&ws_app.endpoint()).await;
    let mut sender = h2c(proxy.listener_addr("edge")).await;
    let request = http::Request::connect("app.example:443")
        .body(Empty::new())
        .unwrap();
    let response = within("the CONNECT's answer", WAIT, async {
        sender.ready().await.unwrap();
        sender.send_request(request).await
    })
    .await;
    // As before extended CONNECT was offered: forwarded as it is, here to an upstream that
    // hangs up on it (a WebSocket server), so no tunnel.
    let response = response.expect("an answer");
    assert_eq!(response.status(), 502, "{response:?}");
    assert_eq!(response.headers()["x-meshwork-error"], "upstream-reset");
    assert_eq!(ws_app.sessions(), 0);
}

/// What a TLS upstream saw of one connection: the ALPN protocol it chose and the request
/// head; reported once the proxy closed the connection.
#[derive(Debug)]
struct SeenConnection {
    alpn: Option<Vec<u8>>,
    head: String,
}

/// A TLS upstream offering `h2` and `http/1.1` that answers the first request head of one
/// connection with `reply` (whatever protocol was chosen) and reports what it saw once
/// the peer closed.
async fn tls_upstream_replying(
    cert: &CertFiles,
    reply: &'static [u8],
) -> (SocketAddr, tokio::sync::oneshot::Receiver<SeenConnection>) {
    let mut config = cert.server_config();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen, report) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.expect("a TLS handshake");
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        while !received.windows(4).any(|w| w == b"\r\n\r\n") {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tls.write_all(reply).await;
        let _ = tls.flush().await;
        // Until the proxy drops the connection.
        while let Ok(n) = tls.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
        let _ = seen.send(SeenConnection {
            alpn,
            head: String::from_utf8_lossy(&received).to_ascii_lowercase(),
        });
    });
    (addr, report)
}

#[tokio::test]
async fn an_upgrade_to_an_auto_cluster_offers_only_http1_and_refuses_a_switch_it_did_not_ask_for() {
    let ca = TestCa::new("upstream");
    let cert = ca.issue("app").dns("app.test").write();
    let (app, seen) = tls_upstream_replying(
        &cert,
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    )
    .await;
    let proxy = Proxy::with_config(edge_config(&format!(
        "
        route_tables:
          edge:
            - name: all
              backends: [{{ cluster: app }}]
        clusters:
          - name: app
            endpoints: [{app}]
            protocol: auto
            tls: {{ ca: {}, server_name: app.test }}
        ",
        ca.ca_path().display()
    )))
    .start()
    .await;
    let mut conn = meshwork_tests::RawConn::connect(proxy.listener_addr("edge")).await;
    conn.send(
        "GET /chat HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let response = conn.read_response(WAIT).await.expect("an answer");
    assert_eq!(response.status, 502, "{response:?}");
    assert_eq!(
        response.header("x-meshwork-error"),
        Some("unrequested-upgrade")
    );
    // The upstream connection was dropped, and it was HTTP/1.1 by ALPN with the upgrade.
    let seen = within("the upstream connection closed", WAIT, seen)
        .await
        .expect("the upstream's report");
    assert_eq!(seen.alpn.as_deref(), Some(&b"http/1.1"[..]), "{seen:?}");
    assert!(seen.head.starts_with("get /chat http/1.1\r\n"), "{seen:?}");
    assert!(seen.head.contains("\r\nupgrade: websocket\r\n"), "{seen:?}");
}
