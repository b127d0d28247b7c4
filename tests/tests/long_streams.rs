//! Long-lived streams across config changes they do not touch: a WebSocket and a gRPC
//! stream through a control-plane push, and a WebSocket over TLS through a reload that
//! changes its own listener's certificate (new connections get the new one; the open
//! stream keeps the session it has).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use meshwork_tests::{
    ControlPlane, GrpcUpstream, HttpClient, LiveStreams, Proxy, TestCa, TlsClient, WsUpstream,
    dedent, edge_config, eventually, with_tls, within,
};
use tokio_tungstenite::tungstenite::Message;

const BOUND: Duration = Duration::from_secs(10);

/// Routes `grpc` and `ws` (and `extra` first), with their clusters.
fn stream_routes(grpc: &GrpcUpstream, ws: &WsUpstream, extra: &str) -> String {
    dedent(&format!(
        "
        route_tables:
          edge:
            {extra}
            - name: grpc
              match: {{ path: {{ prefix: /meshwork.test.Echo/ }} }}
              backends: [{{ cluster: grpc }}]
            - name: ws
              backends: [{{ cluster: ws }}]
        clusters:
          - name: grpc
            endpoints: [{}]
            protocol: http2
          - name: ws
            endpoints: [{}]
            protocol: http1
        ",
        grpc.endpoint(),
        ws.endpoint()
    ))
}

const NEW_ROUTE: &str = "- { name: new, match: { path: { exact: /new } }, direct_response: { status: 200, body: new } }";

#[tokio::test]
async fn a_websocket_and_a_grpc_stream_outlive_a_control_plane_push() {
    let ws_upstream = WsUpstream::start().await;
    let grpc_upstream = GrpcUpstream::start().await;
    let control = ControlPlane::start().await;
    let listener = "listeners:\n  - { name: edge, address: 127.0.0.1:0, route_table: edge }\n";
    control.write("listeners.yaml", listener);
    control.write(
        "streams.yaml",
        &stream_routes(&grpc_upstream, &ws_upstream, ""),
    );
    eventually(
        "the control plane to serve the fragments",
        BOUND,
        || async { control.status().await["resources"]["listener"] == 1 },
    )
    .await;
    let proxy_yaml = dedent(&format!(
        "
        version: 1
        node: {{ id: a }}
        admin: {{ address: 127.0.0.1:0 }}
        control_plane: {{ address: {} }}
        ",
        control.url()
    ));
    let mut proxy = Proxy::with_config(proxy_yaml).start().await;
    proxy.refresh_listeners().await;
    let address = proxy.listener_addr("edge");

    let mut streams = LiveStreams::open(address).await;

    control.write(
        "streams.yaml",
        &stream_routes(&grpc_upstream, &ws_upstream, NEW_ROUTE),
    );
    let client = HttpClient::h1();
    eventually("the push to reach the proxy", BOUND, || async {
        client.get(&proxy.url("edge", "/new")).await.text() == "new"
    })
    .await;

    streams.echo("after").await;
    streams.close().await;
    assert_eq!(ws_upstream.sessions(), 1, "one session throughout");
}

#[tokio::test]
async fn a_websocket_over_tls_outlives_a_reload_that_changes_its_listener_s_certificate() {
    let ws_upstream = WsUpstream::start().await;
    let grpc_upstream = GrpcUpstream::start().await;
    let ca = TestCa::new("edge");
    let first = ca.issue("first").dns("localhost").write();
    let second = ca.issue("second").dns("localhost").write();
    let config = |cert: &meshwork_tests::CertFiles, extra: &str| {
        let yaml = edge_config(&stream_routes(&grpc_upstream, &ws_upstream, extra));
        with_tls(&yaml, &cert.cert, &cert.key)
    };
    let mut proxy = Proxy::with_config(config(&first, "")).start().await;
    let address = proxy.listener_addr("edge");
    let tls = TlsClient::new(&first.ca);

    let stream = tls.connect(address).await.expect("TLS to the listener");
    let url = format!("wss://localhost:{}/chat", address.port());
    let (mut ws, _) = within(
        "the WebSocket handshake",
        BOUND,
        tokio_tungstenite::client_async(url, stream),
    )
    .await
    .expect("the WebSocket handshake");
    let mut round_trip = async |text: &str| {
        ws.send(Message::text(text)).await.expect("send");
        loop {
            let message = within("a WebSocket reply", BOUND, ws.next())
                .await
                .expect("the WebSocket stays open")
                .expect("a well-formed message");
            if let Message::Text(reply) = message {
                return reply.as_str().to_owned();
            }
        }
    };
    assert_eq!(round_trip("before").await, "before");

    proxy.reload(&config(&second, NEW_ROUTE)).await;
    let fresh = tls
        .get(address, "/new")
        .await
        .expect("a new TLS connection");
    assert_eq!(fresh.reply.text(), "new");
    assert_eq!(
        fresh.server_cert, second.der,
        "new connections get the new certificate"
    );

    assert_eq!(round_trip("after").await, "after");
    ws.close(None).await.expect("a clean WebSocket close");
    assert_eq!(ws_upstream.sessions(), 1, "one session throughout");
}
