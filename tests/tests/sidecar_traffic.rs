//! The sidecar data path end to end, in network namespaces: pod A's app calls pod B's app
//! by B's address; `meshwork init` redirects the call to A's outbound sidecar, which
//! meshes it (mTLS with A's identity) to B's inbound sidecar, which hands it to B's app at
//! the address A dialled. Real apps of each protocol, real `meshwork` processes as UID
//! 1337, nothing configured per destination.
//!
//! Needs root (CI runs as root); `MESHWORK_SKIP_NETNS=1` skips, nothing else does.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use meshwork_tests::grpc::request_channel;
use meshwork_tests::netns::{probe_connect, skipped};
use meshwork_tests::pods::{
    GreetingServer, MeshedPods, PROXY_UID, Pod, SPIFFE_A, SidecarConfig, TlsHelloServer,
    echo_round_trip, read_greeting,
};
use meshwork_tests::ws::ws_round_trip;
use meshwork_tests::{
    EchoRequest, GrpcClient, GrpcUpstream, HttpClient, Scrape, TcpEchoUpstream, TestCa, TlsClient,
    Upstream, WsUpstream, ws_connect,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

const CONNECTIONS: &str = "meshwork_sidecar_connections_total";

/// How long a server's greeting may take through both sidecars: generous for a loaded CI
/// machine, far below the detection timeouts other proxies wait (linkerd2-proxy: 10 s)
/// and below any timeout of these sidecars (their idle timeout is an hour).
const GREETING_BOUND: Duration = Duration::from_secs(2);

/// `[::]:port`: an app in B listening on every address of the pod, both families.
fn any(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
}

/// The sum of the series of `name` whose labels include every pair of `labels`.
fn sum_matching(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .series(name)
        .iter()
        .filter(|(have, _)| {
            labels
                .iter()
                .all(|(k, v)| have.get(*k).is_some_and(|h| h == v))
        })
        .map(|(_, value)| value)
        .sum()
}

/// Connections a sidecar's `listener` counted to destination `port` as `protocol`
/// (`None`: any).
fn connections(scrape: &Scrape, listener: &str, port: u16, protocol: Option<&str>) -> f64 {
    let port = port.to_string();
    let mut labels = vec![("listener", listener), ("port", port.as_str())];
    if let Some(protocol) = protocol {
        labels.push(("protocol", protocol));
    }
    sum_matching(scrape, CONNECTIONS, &labels)
}

/// Waits until A's outbound listener counted a connection to `port` as `protocol` and B's
/// inbound listener a meshed one to the same port: the traffic went through both sidecars,
/// and between them over the mesh.
async fn assert_meshed_through_both(m: &MeshedPods, family: Family, port: u16, protocol: &str) {
    let (outbound, inbound) = family.listeners();
    m.a_sidecar
        .scrape_when(
            &format!("{outbound} counting a {protocol} connection to port {port}"),
            |s| connections(s, outbound, port, Some(protocol)) >= 1.0,
        )
        .await;
    m.b_sidecar
        .scrape_when(
            &format!("{inbound} counting a meshed connection to port {port}"),
            |s| connections(s, inbound, port, Some("meshed")) >= 1.0,
        )
        .await;
}

#[derive(Clone, Copy, Debug)]
enum Family {
    V4,
    V6,
}

impl Family {
    /// The sidecar listeners (outbound in A, inbound in B) this family goes through.
    fn listeners(self) -> (&'static str, &'static str) {
        match self {
            Family::V4 => ("outbound", "inbound"),
            Family::V6 => ("outbound-v6", "inbound-v6"),
        }
    }

    fn addr(self, pod: &Pod, port: u16) -> SocketAddr {
        match self {
            Family::V4 => pod.addr_v4(port),
            Family::V6 => pod.addr_v6(port),
        }
    }
}

/// A greeting server (see [`GreetingServer`]) in pod B on `[::]:port`.
async fn greeter(m: &MeshedPods, port: u16, tag: &'static str) -> GreetingServer {
    m.pods.b.run(GreetingServer::start(any(port), tag)).await
}

/// An HTTP/1.1 echo upstream named `name` in pod B on `[::]:port`.
async fn http1_app(m: &MeshedPods, name: &str, port: u16) -> Upstream {
    m.pods
        .b
        .run(Upstream::http1().name(name).bind(any(port)).start())
        .await
}

/// The greeting pod A's client reads from `addr` without sending a byte.
///
/// # Panics
/// When none comes within [`GREETING_BOUND`].
async fn greeting(m: &MeshedPods, addr: SocketAddr) -> String {
    m.pods
        .a
        .run(async move { read_greeting(addr, GREETING_BOUND).await.map(|g| g.0) })
        .await
        .unwrap_or_else(|e| panic!("a greeting from {addr}: {e}"))
}

async fn meshed() -> MeshedPods {
    MeshedPods::builder().start().await
}

/// HTTP/1.1 from A to B's app (by B's address), answered by B's app with the request
/// as it arrived.
async fn http1_call(m: &MeshedPods, family: Family, port: u16) -> meshwork_tests::Echo {
    let url = format!("http://{}/hello", family.addr(&m.pods.b, port));
    let reply = m
        .pods
        .a
        .run(async move { HttpClient::h1().get(&url).await })
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.echo()
}

#[tokio::test]
async fn http1_from_pod_a_reaches_pod_b_meshed_with_its_host_unchanged() {
    if skipped("http1_from_pod_a_reaches_pod_b_meshed_with_its_host_unchanged") {
        return;
    }
    let m = meshed().await;
    let _app = http1_app(&m, "b-app", 8080).await;
    let echo = http1_call(&m, Family::V4, 8080).await;
    assert_eq!(echo.upstream, "b-app");
    assert_eq!(echo.version, "HTTP/1.1");
    assert_eq!(echo.authority.as_deref(), Some("10.200.0.2:8080"));
    assert_meshed_through_both(&m, Family::V4, 8080, "http").await;
}

#[tokio::test]
async fn h2c_prior_knowledge_from_pod_a_reaches_pod_b_as_http2() {
    if skipped("h2c_prior_knowledge_from_pod_a_reaches_pod_b_as_http2") {
        return;
    }
    let m = meshed().await;
    let _app = m
        .pods
        .b
        .run(Upstream::h2c().name("b-h2c").bind(any(8081)).start())
        .await;
    let url = format!("http://{}/h2", m.pods.b.addr_v4(8081));
    let reply = m
        .pods
        .a
        .run(async move { HttpClient::h2c().get(&url).await })
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let echo = reply.echo();
    assert_eq!(echo.upstream, "b-h2c");
    assert_eq!(echo.version, "HTTP/2.0");
    assert_meshed_through_both(&m, Family::V4, 8081, "http").await;
}

#[tokio::test]
async fn grpc_unary_and_bidi_streaming_work_between_pods() {
    if skipped("grpc_unary_and_bidi_streaming_work_between_pods") {
        return;
    }
    let m = meshed().await;
    let app = m.pods.b.run(GrpcUpstream::start_on(any(50051))).await;
    let addr = m.pods.b.addr_v4(50051);
    let replies = m
        .pods
        .a
        .run(async move {
            let mut client = GrpcClient::connect(addr).await;
            let unary = client
                .unary(EchoRequest::new("hello"))
                .await
                .expect("the unary call succeeds")
                .into_inner();
            let (tx, requests) = request_channel();
            tx.send(EchoRequest::new("m0")).await.unwrap();
            let mut stream = client
                .bidi(requests)
                .await
                .expect("the bidi call starts")
                .into_inner();
            let mut got = vec![unary.message];
            for index in 0..3u32 {
                let reply = tokio::time::timeout(Duration::from_secs(5), stream.message())
                    .await
                    .expect("a bidi reply within 5s")
                    .expect("no error")
                    .expect("a reply");
                got.push(format!("{}#{}", reply.message, reply.index));
                tx.send(EchoRequest::new(&format!("m{}", index + 1)))
                    .await
                    .unwrap();
            }
            got
        })
        .await;
    assert_eq!(replies, ["hello", "m0#0", "m1#1", "m2#2"]);
    assert_eq!(app.calls(), 2);
    assert_meshed_through_both(&m, Family::V4, 50051, "http").await;
}

#[tokio::test]
async fn websocket_frames_flow_both_ways_between_pods() {
    if skipped("websocket_frames_flow_both_ways_between_pods") {
        return;
    }
    let m = meshed().await;
    let app = m.pods.b.run(WsUpstream::start_on(any(8082))).await;
    let addr = m.pods.b.addr_v4(8082);
    let (texts, binary) = m
        .pods
        .a
        .run(async move {
            let mut ws = ws_connect(addr, "/chat").await;
            let mut texts = Vec::new();
            for text in ["one", "two", "three"] {
                texts.push(ws_round_trip(&mut ws, text).await);
            }
            ws.send(Message::binary(vec![0u8, 1, 2, 255]))
                .await
                .expect("send a binary frame");
            let binary = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .expect("the binary echo within 5s")
                .expect("the socket stays open")
                .expect("a well-formed frame");
            (texts, binary)
        })
        .await;
    assert_eq!(texts, ["one", "two", "three"]);
    assert_eq!(binary, Message::binary(vec![0u8, 1, 2, 255]));
    assert_eq!(app.sessions(), 1);
    assert_meshed_through_both(&m, Family::V4, 8082, "http").await;
}

#[tokio::test]
async fn tls_from_an_app_passes_through_untouched_with_the_apps_own_certificate() {
    if skipped("tls_from_an_app_passes_through_untouched_with_the_apps_own_certificate") {
        return;
    }
    let m = meshed().await;
    // The app's own PKI, unrelated to the mesh's.
    let apps_ca = TestCa::new("apps");
    let app_cert = apps_ca.issue("app-b").dns("app.b.test").write();
    let _app = m
        .pods
        .b
        .run({
            let cert = app_cert.clone();
            async move { TlsHelloServer::start(any(8443), "tls-app", &cert).await }
        })
        .await;
    let client = TlsClient::new(apps_ca.ca_path()).server_name("app.b.test");
    let addr = m.pods.b.addr_v4(8443);
    let (presented, greeting, echo) = m
        .pods
        .a
        .run(async move {
            let tls = client.connect(addr).await.expect("a verified TLS session");
            let presented = tls.get_ref().1.peer_certificates().expect("a certificate")[0].clone();
            let mut tls = tokio::io::BufReader::new(tls);
            let mut greeting = String::new();
            tokio::io::AsyncBufReadExt::read_line(&mut tls, &mut greeting)
                .await
                .expect("the app's first line");
            let echo = echo_round_trip(&mut tls, b"over tls")
                .await
                .expect("an echo");
            (presented, greeting, echo)
        })
        .await;
    assert_eq!(
        presented, app_cert.der,
        "the app's certificate, not a sidecar's"
    );
    assert!(greeting.starts_with("tls-app "), "{greeting}");
    assert_eq!(echo, b"over tls");
    assert_meshed_through_both(&m, Family::V4, 8443, "tls").await;
}

#[tokio::test]
async fn opaque_client_first_bytes_are_relayed_unchanged() {
    if skipped("opaque_client_first_bytes_are_relayed_unchanged") {
        return;
    }
    let m = meshed().await;
    let _app = m.pods.b.run(TcpEchoUpstream::start_on(any(7000))).await;
    let addr = m.pods.b.addr_v4(7000);
    // Not HTTP, not TLS: a binary protocol whose client speaks first.
    let payload: Vec<u8> = (0..=255u8)
        .chain(b"\r\n\r\nGET / HTTP/1.1\r\n".iter().copied())
        .collect();
    // Then a mebibyte, and the client's end of stream: the whole echo comes back, then
    // the app's own end (half-closes cross both sidecars).
    let large: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let echoed = m
        .pods
        .a
        .run({
            let (payload, large) = (payload.clone(), large.clone());
            async move {
                let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
                let first = echo_round_trip(&mut stream, &payload)
                    .await
                    .expect("an echo");
                let (mut read, mut write) = stream.into_split();
                let writer = tokio::spawn(async move {
                    write.write_all(&large).await.expect("send a mebibyte");
                    write.shutdown().await.expect("half-close");
                });
                let mut rest = Vec::new();
                tokio::time::timeout(Duration::from_secs(10), read.read_to_end(&mut rest))
                    .await
                    .expect("the echo and the app's end of stream within 10s")
                    .expect("read the echo");
                writer.await.expect("the writer");
                (first, rest)
            }
        })
        .await;
    assert_eq!(echoed.0, payload);
    assert!(
        echoed.1 == large,
        "the mebibyte came back altered ({} bytes)",
        echoed.1.len()
    );
    assert_meshed_through_both(&m, Family::V4, 7000, "opaque").await;
}

#[tokio::test]
async fn a_server_first_greeting_arrives_at_once_with_no_client_byte_sent() {
    if skipped("a_server_first_greeting_arrives_at_once_with_no_client_byte_sent") {
        return;
    }
    let m = meshed().await;
    // 7001 is in no list: detected by the race. 3306 (MySQL) is opaque by the built-in list.
    let _detected = greeter(&m, 7001, "greeting").await;
    let _mysql = greeter(&m, 3306, "mysql").await;
    for (port, tag) in [(7001, "greeting "), (3306, "mysql ")] {
        let addr = m.pods.b.addr_v4(port);
        let (line, elapsed, echoed) = m
            .pods
            .a
            .run(async move {
                let (line, elapsed, mut conn) = read_greeting(addr, GREETING_BOUND)
                    .await
                    .expect("the greeting, with no client byte sent");
                // The connection goes on as usual once the client speaks.
                let echoed = echo_round_trip(&mut conn, b"QUIT\r\n")
                    .await
                    .expect("an echo");
                (line, elapsed, echoed)
            })
            .await;
        assert!(line.starts_with(tag), "{line}");
        assert!(elapsed < GREETING_BOUND, "{elapsed:?}");
        assert_eq!(echoed, b"QUIT\r\n");
        assert_meshed_through_both(&m, Family::V4, port, "opaque").await;
    }
}

#[tokio::test]
async fn ipv6_http_and_a_server_greeting_work_like_ipv4() {
    if skipped("ipv6_http_and_a_server_greeting_work_like_ipv4") {
        return;
    }
    let m = meshed().await;
    let _app = http1_app(&m, "b-app", 8080).await;
    let _greeter = greeter(&m, 7001, "v6").await;
    let echo = http1_call(&m, Family::V6, 8080).await;
    assert_eq!(echo.upstream, "b-app");
    assert_eq!(echo.authority.as_deref(), Some("[fd00:200::2]:8080"));
    assert_meshed_through_both(&m, Family::V6, 8080, "http").await;

    let addr = m.pods.b.addr_v6(7001);
    let line = greeting(&m, addr).await;
    assert!(line.starts_with("v6 "), "{line}");
    assert_meshed_through_both(&m, Family::V6, 7001, "opaque").await;
}

#[tokio::test]
async fn tproxy_mode_shows_the_app_a_plaintext_clients_own_address() {
    if skipped("tproxy_mode_shows_the_app_a_plaintext_clients_own_address") {
        return;
    }
    // A's sidecar does not mesh: B's inbound sidecar takes a plaintext connection from
    // pod A's address, delivered by TPROXY.
    let m = MeshedPods::builder()
        .a_config(|c| c.mesh_networks(&[]))
        .b_init(&["--mode", "tproxy"])
        .b_config(SidecarConfig::transparent)
        .start()
        .await;
    let _greeter = greeter(&m, 7001, "tproxy").await;
    for (family, client, server) in [
        (Family::V4, "10.200.0.1", "10.200.0.2:7001"),
        (Family::V6, "[fd00:200::1]", "[fd00:200::2]:7001"),
    ] {
        let addr = family.addr(&m.pods.b, 7001);
        let line = greeting(&m, addr).await;
        // The app listens on [::]: IPv4 addresses show as IPv4-mapped.
        let mapped = |a: &str| format!("[::ffff:{}", a.replacen(':', "]:", 1));
        let seen_client = line.contains(&format!("peer={client}:"))
            || line.contains(&format!("peer={}", mapped(&format!("{client}:"))));
        assert!(
            seen_client,
            "B's app sees pod A's address, not its sidecar's: {line}"
        );
        let seen_local = line.contains(&format!("local={server}"))
            || line.contains(&format!("local={}", mapped(server)));
        assert!(seen_local, "{line}");
        let (outbound, inbound) = family.listeners();
        m.a_sidecar
            .scrape_when(&format!("{outbound} relaying port 7001"), |s| {
                connections(s, outbound, 7001, Some("opaque")) >= 1.0
            })
            .await;
        m.b_sidecar
            .scrape_when(&format!("{inbound} relaying port 7001"), |s| {
                connections(s, inbound, 7001, Some("opaque")) >= 1.0
            })
            .await;
    }
}

#[tokio::test]
async fn a_silent_client_is_connected_through_to_the_app_before_it_speaks() {
    if skipped("a_silent_client_is_connected_through_to_the_app_before_it_speaks") {
        return;
    }
    let m = meshed().await;
    let app = m.pods.b.run(TcpEchoUpstream::start_on(any(7003))).await;
    let addr = m.pods.b.addr_v4(7003);
    let (connected_tx, connected_rx) = tokio::sync::oneshot::channel::<()>();
    let client = m.pods.a.run(async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        // Silent until the app has the connection: no sidecar waited for a first byte.
        let _ = connected_rx.await;
        echo_round_trip(&mut stream, b"late first words").await
    });
    let wait_for_app = async {
        meshwork_tests::eventually(
            "B's app to accept the silent connection",
            Duration::from_secs(5),
            || {
                let accepted = app.connections() == 1;
                async move { accepted }
            },
        )
        .await;
        let _ = connected_tx.send(());
    };
    let (echo, ()) = tokio::join!(client, wait_for_app);
    assert_eq!(echo.expect("an echo"), b"late first words");
    assert_meshed_through_both(&m, Family::V4, 7003, "opaque").await;
}

#[tokio::test]
async fn a_skipped_port_goes_direct_and_the_outbound_sidecar_never_sees_it() {
    if skipped("a_skipped_port_goes_direct_and_the_outbound_sidecar_never_sees_it") {
        return;
    }
    let m = MeshedPods::builder()
        .a_init(&["--outbound-skip-ports", "7002"])
        .start()
        .await;
    let _skipped = greeter(&m, 7002, "skipped").await;
    let _captured = greeter(&m, 7001, "captured").await;
    for (port, tag) in [(7002, "skipped "), (7001, "captured ")] {
        let addr = m.pods.b.addr_v4(port);
        let line = greeting(&m, addr).await;
        assert!(line.starts_with(tag), "{line}");
    }
    // The captured connection was made after the skipped one ended: once it is counted,
    // the skipped one would have been too, had the sidecar seen it.
    let scrape = m
        .a_sidecar
        .scrape_when("the captured connection counted", |s| {
            connections(s, "outbound", 7001, None) >= 1.0
        })
        .await;
    assert_eq!(connections(&scrape, "outbound", 7002, None), 0.0);
    assert_eq!(
        scrape.get_or_zero(
            "meshwork_downstream_connections_total",
            &[("listener", "outbound")]
        ),
        1.0,
        "only the captured connection reached the outbound sidecar"
    );
}

#[tokio::test]
async fn a_route_table_sends_host_users_to_its_cluster_and_the_rest_to_where_it_was_going() {
    if skipped("a_route_table_sends_host_users_to_its_cluster_and_the_rest_to_where_it_was_going") {
        return;
    }
    // `users` has two live endpoints and a dead one: the route's retries take a request
    // that met the dead one elsewhere, and round robin spreads the rest.
    let m = MeshedPods::builder()
        .a_config(|c| {
            c.outbound("route_table: outbound").extra(
                "route_tables:
  outbound:
    - name: users
      match: { host: [users] }
      backends: [{ cluster: users }]
      retry: { attempts: 3, on: [connect-failure, reset, gateway-error] }
clusters:
  - name: users
    endpoints: [10.200.0.2:8090, 10.200.0.2:8091, 10.200.0.2:8099]
    load_balancer: round_robin
",
            )
        })
        .start()
        .await;
    let _users1 = http1_app(&m, "users-1", 8090).await;
    let _users2 = http1_app(&m, "users-2", 8091).await;
    let _other = http1_app(&m, "other", 8080).await;

    // `users` is called at a service address nothing answers (like a ClusterIP): only the
    // route can answer it.
    let answered_by = m
        .pods
        .a
        .run(async move {
            let client = HttpClient::h1_unpooled();
            let mut names = Vec::new();
            for _ in 0..6 {
                let reply = client
                    .request(http::Method::GET, "http://198.51.100.10/profile")
                    .header("host", "users")
                    .send()
                    .await;
                assert_eq!(reply.status, 200, "{}", reply.text());
                names.push(reply.echo().upstream);
            }
            names
        })
        .await;
    assert!(
        answered_by.iter().any(|n| n == "users-1"),
        "{answered_by:?}"
    );
    assert!(
        answered_by.iter().any(|n| n == "users-2"),
        "{answered_by:?}"
    );

    let echo = http1_call(&m, Family::V4, 8080).await;
    assert_eq!(
        echo.upstream, "other",
        "other hosts go to the original destination"
    );
    assert_eq!(echo.authority.as_deref(), Some("10.200.0.2:8080"));

    m.a_sidecar
        .scrape_when("the users route's retries and requests", |s| {
            sum_matching(s, "meshwork_http_retries_total", &[("route", "users")]) >= 1.0
                && sum_matching(
                    s,
                    "meshwork_http_requests_total",
                    &[("route", "users"), ("status_class", "2xx")],
                ) >= 6.0
        })
        .await;
    assert_meshed_through_both(&m, Family::V4, 8080, "http").await;
}

#[tokio::test]
async fn the_inbound_sidecar_authorizes_by_the_meshed_peers_identity() {
    if skipped("the_inbound_sidecar_authorizes_by_the_meshed_peers_identity") {
        return;
    }
    let m = MeshedPods::builder()
        .b_config(|c| {
            c.extra(&format!(
                "authorization:
  - listener: inbound
    default: deny
    allow:
      - from: [{SPIFFE_A}]
        paths: [/allowed/*]
"
            ))
        })
        .start()
        .await;
    let _app = http1_app(&m, "b-app", 8080).await;
    let base = format!("http://{}", m.pods.b.addr_v4(8080));
    let (allowed, denied) = m
        .pods
        .a
        .run(async move {
            let client = HttpClient::h1_unpooled();
            let allowed = client.get(&format!("{base}/allowed/x")).await;
            let denied = client.get(&format!("{base}/other")).await;
            (allowed, denied)
        })
        .await;
    assert_eq!(
        allowed.status,
        200,
        "A's identity is allowed: {}",
        allowed.text()
    );
    assert_eq!(denied.status, 403, "{}", denied.text());
    assert_eq!(denied.error_kind(), Some("unauthorized"));
}

#[tokio::test]
async fn a_strict_inbound_refuses_plaintext_clients_and_serves_meshed_ones() {
    if skipped("a_strict_inbound_refuses_plaintext_clients_and_serves_meshed_ones") {
        return;
    }
    let m = MeshedPods::builder()
        .b_config(|c| c.mesh_inbound("strict"))
        .start()
        .await;
    let _greeter = greeter(&m, 7001, "strict").await;
    let addr = m.pods.b.addr_v4(7001);
    let meshed = greeting(&m, addr).await;
    assert!(meshed.starts_with("strict "), "{meshed}");
    // As the proxy's UID, A's rules leave the connection alone: it reaches B in clear.
    let plaintext = probe_connect(&m.pods.a.ns, &addr.to_string(), Some(PROXY_UID));
    assert!(
        plaintext.is_err(),
        "a plaintext client must be refused: {plaintext:?}"
    );
    m.b_sidecar
        .scrape_when("the refusal counted", |s| {
            s.sum("meshwork_sidecar_connections_refused_total") >= 1.0
        })
        .await;
}

#[tokio::test]
async fn without_mesh_networks_traffic_crosses_both_sidecars_in_clear() {
    if skipped("without_mesh_networks_traffic_crosses_both_sidecars_in_clear") {
        return;
    }
    let m = MeshedPods::builder()
        .a_config(|c| c.mesh_networks(&[]))
        .start()
        .await;
    let _app = http1_app(&m, "b-app", 8080).await;
    let echo = http1_call(&m, Family::V4, 8080).await;
    assert_eq!(echo.upstream, "b-app");
    m.a_sidecar
        .scrape_when("A's passthrough", |s| {
            connections(s, "outbound", 8080, Some("http")) >= 1.0
        })
        .await;
    let scrape = m
        .b_sidecar
        .scrape_when("B's plaintext inbound", |s| {
            connections(s, "inbound", 8080, Some("http")) >= 1.0
        })
        .await;
    assert_eq!(connections(&scrape, "inbound", 8080, Some("meshed")), 0.0);
}

#[tokio::test]
async fn an_app_listening_on_localhost_only_is_not_exposed_through_the_inbound_sidecar() {
    if skipped("an_app_listening_on_localhost_only_is_not_exposed_through_the_inbound_sidecar") {
        return;
    }
    let m = meshed().await;
    let local_only = SocketAddr::from(([127, 0, 0, 1], 7005));
    let _private = m
        .pods
        .b
        .run(GreetingServer::start(local_only, "private"))
        .await;
    let _public = greeter(&m, 7006, "public").await;
    // B's inbound sidecar forwards to the address A dialled (B's own), never to 127.0.0.1.
    let addr = m.pods.b.addr_v4(7005);
    let refused = m
        .pods
        .a
        .run(async move { read_greeting(addr, GREETING_BOUND).await.map(|g| g.0) })
        .await;
    assert!(
        refused.is_err(),
        "a localhost-only app was reached: {refused:?}"
    );
    m.b_sidecar
        .scrape_when("B's inbound refusing the connection", |s| {
            sum_matching(
                s,
                "meshwork_sidecar_connections_refused_total",
                &[("listener", "inbound"), ("reason", "connect-failed")],
            ) >= 1.0
        })
        .await;
    let public = greeting(&m, m.pods.b.addr_v4(7006)).await;
    assert!(public.starts_with("public "), "{public}");
}
