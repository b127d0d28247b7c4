//! `protocol: tcp` listeners enforce what they accept: the authorization policy by the
//! client certificate's SPIFFE ID (a refused connection never reaches the upstream),
//! the listener's `idle_timeout` and `max_connections`, and the cluster's
//! `max_connections` and circuit breaker (connect failures open it; a half-open trial
//! is reported either way).

use std::net::SocketAddr;
use std::time::Duration;

use meshwork_tests::{
    CertFiles, Proxy, TcpEchoUpstream, TestCa, TlsClient, dedent, meshwork_in,
    promtool_check_metrics, within,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const WEB: &str = "spiffe://cluster.local/ns/prod/sa/web";
const BATCH: &str = "spiffe://cluster.local/ns/prod/sa/batch";
/// How long a test waits for the proxy to close a connection it should close.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// Writes `message` and expects it echoed back (through the proxy and the echo upstream).
async fn echoes<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, message: &[u8]) {
    stream.write_all(message).await.expect("write");
    let mut back = vec![0u8; message.len()];
    within("the echo", CLOSE_WITHIN, stream.read_exact(&mut back))
        .await
        .expect("the echo comes back");
    assert_eq!(back, message);
}

/// Reads until the proxy closes the connection (EOF or reset) and returns what arrived.
async fn read_until_closed<S: AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    within("the proxy to close the connection", CLOSE_WITHIN, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    got
}

fn count(proxy_scrape: &meshwork_tests::Scrape, family: &str, labels: &[(&str, &str)]) -> u64 {
    proxy_scrape.get_or_zero(family, labels) as u64
}

struct Mtls {
    ca: TestCa,
    web: CertFiles,
    batch: CertFiles,
    echo: TcpEchoUpstream,
    proxy: Proxy,
}

/// A tcp listener `db` terminating mTLS (`client_auth: required`) in front of an echo
/// upstream, with `policy` (the lines of an `authorization` entry after `listener`).
async fn mtls_listener(policy: &str) -> Mtls {
    let ca = TestCa::new("tcp-authz");
    let server = ca.issue("db").dns("localhost").write();
    let web = ca.issue("web").spiffe_id(WEB).write();
    let batch = ca.issue("batch").spiffe_id(BATCH).write();
    let echo = TcpEchoUpstream::start().await;
    let yaml = format!(
        "version: 1
admin: {{ address: 127.0.0.1:0 }}
listeners:
  - name: db
    address: 127.0.0.1:0
    protocol: tcp
    cluster: echo
    tls:
      certificates: [{{ cert: {cert}, key: {key} }}]
      client_auth: required
      client_ca: {ca}
clusters:
  - {{ name: echo, endpoints: [{echo}] }}
authorization:
  - listener: db
{policy}",
        cert = server.cert.display(),
        key = server.key.display(),
        ca = ca.ca_path().display(),
        echo = echo.endpoint(),
    );
    let proxy = Proxy::with_config(yaml).start().await;
    Mtls {
        ca,
        web,
        batch,
        echo,
        proxy,
    }
}

impl Mtls {
    async fn connect_as(
        &self,
        who: &CertFiles,
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        TlsClient::new(self.ca.ca_path())
            .client_cert(who)
            .alpn(&[])
            .connect(self.proxy.listener_addr("db"))
            .await
            .unwrap_or_else(|e| self.proxy.fail(&format!("mTLS handshake: {e}")))
    }
}

#[tokio::test]
async fn a_peer_the_policy_refuses_is_closed_before_any_byte_reaches_the_upstream() {
    let m = mtls_listener(&format!(
        "    default: deny\n    allow:\n      - from: [{WEB}]\n"
    ))
    .await;
    let mut allowed = m.connect_as(&m.web).await;
    echoes(&mut allowed, b"hello from web").await;
    assert_eq!(m.echo.connections(), 1);

    // The refused peer completes its handshake (its certificate is valid) and sends
    // at once: the proxy closes without a reply and without dialling the upstream.
    let mut refused = m.connect_as(&m.batch).await;
    let _ = refused.write_all(b"SELECT secrets").await;
    let got = read_until_closed(&mut refused).await;
    assert!(got.is_empty(), "nothing comes back: {got:?}");
    let scrape = m
        .proxy
        .scrape_when("the refusal counted", |s| {
            count(
                s,
                "meshwork_tcp_connections_refused_total",
                &[("listener", "db"), ("reason", "unauthorized")],
            ) == 1
        })
        .await;
    assert_eq!(
        count(
            &scrape,
            "meshwork_authorization_denied_total",
            &[("listener", "db")]
        ),
        1,
        "denials of connections are counted with those of requests"
    );
    // The refusal is counted after the decision: no upstream connection can follow it.
    assert_eq!(m.echo.connections(), 1, "the refused peer never reached it");
    let log = m.proxy.stderr_so_far();
    assert!(
        log.contains("tcp connection refused") && log.contains(BATCH),
        "the refusal is logged with the peer's identity:\n{log}"
    );
    // The allowed connection is untouched by the other's refusal.
    echoes(&mut allowed, b"still here").await;

    // The tcp families pass promtool and are documented.
    promtool_check_metrics(&scrape.text).unwrap_or_else(|p| m.proxy.fail(&p));
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md"))
        .unwrap();
    for family in [
        "meshwork_tcp_connections_refused_total",
        "meshwork_tcp_idle_timeouts_total",
    ] {
        assert!(
            docs.contains(&format!("`{family}`")),
            "{family} is documented"
        );
    }
}

#[tokio::test]
async fn a_flood_of_refused_connections_is_counted_whole_and_logged_at_a_bounded_rate() {
    let m = mtls_listener(&format!(
        "    default: deny\n    allow:\n      - from: [{WEB}]\n"
    ))
    .await;
    const FLOOD: u64 = 40;
    let started = std::time::Instant::now();
    for _ in 0..FLOOD {
        let mut refused = m.connect_as(&m.batch).await;
        read_until_closed(&mut refused).await;
    }
    m.proxy
        .scrape_when("every refusal counted", |s| {
            count(
                s,
                "meshwork_tcp_connections_refused_total",
                &[("listener", "db"), ("reason", "unauthorized")],
            ) == FLOOD
        })
        .await;
    let lines = m
        .proxy
        .stderr_so_far()
        .lines()
        .filter(|l| l.contains("tcp connection refused"))
        .count() as u64;
    // 10 lines per 5 s interval (the rest in summary lines), however long the flood took.
    let intervals = started.elapsed().as_secs() / 5 + 1;
    assert!(
        lines >= 1 && lines <= 10 * intervals && lines < FLOOD,
        "{lines} refusal lines for {FLOOD} refusals over {intervals} interval(s)"
    );
    assert_eq!(m.echo.connections(), 0);
}

#[tokio::test]
async fn check_refuses_methods_and_paths_and_policies_on_tcp_listeners_without_client_certificates()
{
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tcp.yaml"),
        dedent(
            r#"
            version: 1
            listeners:
              - name: db
                address: 127.0.0.1:5432
                protocol: tcp
                cluster: pg
                tls:
                  certificates: [{ cert: db.pem, key: db-key.pem }]
                  client_auth: required
                  client_ca: ca.pem
              - { name: cache, address: 127.0.0.1:6379, protocol: tcp, cluster: pg }
            clusters:
              - { name: pg, endpoints: [127.0.0.1:15432] }
            authorization:
              - listener: db
                allow:
                  - from: [spiffe://cluster.local/ns/prod/sa/api]
                  - from: ["*"]
                    paths: ["/admin/*"]
              - listener: cache
                allow: [{ from: ["*"] }]
            "#,
        ),
    )
    .unwrap();
    let output = meshwork_in(Some(dir.path()), ["check", "tcp.yaml"]).await;
    assert!(!output.success(), "{}", output.describe());
    assert!(
        output.stderr.contains(
            "tcp.yaml:19:16: authorization[0].allow[1].paths: a connection to tcp listener \"db\" has no HTTP path"
        ),
        "{}",
        output.describe()
    );
    assert!(
        output.stderr.contains(
            "tcp.yaml:20:15: authorization[1].listener: \"cache\" is a tcp listener without client certificates"
        ),
        "{}",
        output.describe()
    );
}

/// A plaintext tcp listener `db` in front of cluster `echo` at `endpoint`, with
/// `listener_limits` and `cluster_settings` (YAML flow mappings' inner text).
async fn plain_listener(endpoint: &str, listener_limits: &str, cluster_settings: &str) -> Proxy {
    Proxy::with_config(format!(
        "version: 1
admin: {{ address: 127.0.0.1:0 }}
listeners:
  - {{ name: db, address: 127.0.0.1:0, protocol: tcp, cluster: echo, limits: {{ {listener_limits} }} }}
clusters:
  - {{ name: echo, endpoints: [{endpoint}], {cluster_settings} }}
"
    ))
    .start()
    .await
}

async fn dial(proxy: &Proxy) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(proxy.listener_addr("db"))
        .await
        .expect("connect to the listener")
}

/// Opens a connection that is relayed (and returns it), then a second one, which the
/// proxy must close without a reply.
async fn one_admitted_then_one_closed(proxy: &Proxy) -> tokio::net::TcpStream {
    let mut first = dial(proxy).await;
    echoes(&mut first, b"one").await;
    let mut second = dial(proxy).await;
    let _ = second.write_all(b"two").await;
    assert!(read_until_closed(&mut second).await.is_empty());
    first
}

#[tokio::test]
async fn a_tcp_connection_silent_both_ways_for_the_idle_timeout_is_closed() {
    let echo = TcpEchoUpstream::start().await;
    let proxy = plain_listener(&echo.endpoint(), "idle_timeout: 1s", "connect_timeout: 1s").await;
    let mut conn = dial(&proxy).await;
    // Traffic every 250 ms (pacing the client, not waiting for the proxy; a wide margin
    // under the 1 s idle timeout for a loaded machine) keeps it open well past it.
    let started = tokio::time::Instant::now();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        echoes(&mut conn, b"ping").await;
    }
    let last_byte = tokio::time::Instant::now();
    assert!(started.elapsed() >= Duration::from_secs(2));
    let got = read_until_closed(&mut conn).await;
    assert!(got.is_empty());
    let silent_for = last_byte.elapsed();
    // The proxy's last byte was a moment before the client's (the echo on its way back).
    assert!(
        silent_for >= Duration::from_millis(900),
        "closed {silent_for:?} after the last byte, before the 1s idle timeout"
    );
    proxy
        .scrape_when("the idle close counted", |s| {
            count(s, "meshwork_tcp_idle_timeouts_total", &[("listener", "db")]) == 1
        })
        .await;
}

#[tokio::test]
async fn a_tcp_listener_closes_connections_beyond_its_max_connections() {
    let echo = TcpEchoUpstream::start().await;
    let proxy = plain_listener(
        &echo.endpoint(),
        "max_connections: 1",
        "connect_timeout: 1s",
    )
    .await;
    let mut first = one_admitted_then_one_closed(&proxy).await;
    proxy
        .scrape_when("the rejection counted", |s| {
            count(
                s,
                "meshwork_downstream_connections_rejected_total",
                &[("listener", "db"), ("reason", "max_connections")],
            ) == 1
        })
        .await;
    assert_eq!(echo.connections(), 1);
    echoes(&mut first, b"still one").await;
}

#[tokio::test]
async fn a_cluster_at_max_connections_refuses_more_tcp_connections_without_dialling() {
    let echo = TcpEchoUpstream::start().await;
    let proxy = plain_listener(
        &echo.endpoint(),
        "idle_timeout: 1m",
        "limits: { max_connections: 1 }",
    )
    .await;
    let first = one_admitted_then_one_closed(&proxy).await;
    let scrape = proxy
        .scrape_when("the overflow counted", |s| {
            count(
                s,
                "meshwork_tcp_connections_refused_total",
                &[("listener", "db"), ("reason", "overflow")],
            ) == 1
        })
        .await;
    assert_eq!(
        count(
            &scrape,
            "meshwork_upstream_overflows_total",
            &[("cluster", "echo"), ("limit", "max_connections")]
        ),
        1
    );
    assert_eq!(echo.connections(), 1, "the second was never dialled");
    // Once the first closes, its slot is free again.
    drop(first);
    let mut third = None;
    for _ in 0..100 {
        let mut conn = dial(&proxy).await;
        if conn.write_all(b"three").await.is_ok() {
            let mut back = [0u8; 5];
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_secs(2), conn.read_exact(&mut back)).await
            {
                third = Some(conn);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        third.is_some(),
        "a connection is admitted once the first closed"
    );
}

/// An address that refuses connections until [`Reserved::listen`]: bound, not listening.
struct Reserved {
    socket: tokio::net::TcpSocket,
    addr: SocketAddr,
}

impl Reserved {
    fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        Self { socket, addr }
    }

    /// Starts accepting and echoing on the reserved address.
    fn listen(self) -> tokio::task::JoinHandle<()> {
        let listener = self.socket.listen(64).unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        })
    }
}

#[tokio::test]
async fn tcp_connect_failures_open_the_breaker_and_half_open_trials_are_reported_either_way() {
    let endpoint = Reserved::new();
    let proxy = plain_listener(
        &endpoint.addr.to_string(),
        "idle_timeout: 1m",
        "connect_timeout: 1s, circuit_breaker: { consecutive_failures: 2, open_duration: 500ms, \
         half_open_requests: 1 }",
    )
    .await;
    let breaker = [
        ("cluster", "echo"),
        ("endpoint", &*endpoint.addr.to_string()),
    ];
    let refused = |reason: &'static str| {
        move |s: &meshwork_tests::Scrape| -> u64 {
            count(
                s,
                "meshwork_tcp_connections_refused_total",
                &[("listener", "db"), ("reason", reason)],
            )
        }
    };
    let transitions = |to: &'static str| {
        move |s: &meshwork_tests::Scrape| -> u64 {
            let mut labels = breaker.to_vec();
            labels.push(("to", to));
            count(s, "meshwork_circuit_breaker_transitions_total", &labels)
        }
    };
    for _ in 0..2 {
        let mut conn = dial(&proxy).await;
        assert!(read_until_closed(&mut conn).await.is_empty());
    }
    let scrape = proxy
        .scrape_when("two connect failures", |s| {
            refused("connect-failed")(s) == 2
        })
        .await;
    assert_eq!(
        transitions("open")(&scrape),
        1,
        "two failures open the breaker"
    );
    assert_eq!(
        scrape.get_or_zero("meshwork_circuit_breaker_state", &breaker),
        1.0
    );
    // Open: refused at once, without a connect attempt.
    let mut conn = dial(&proxy).await;
    assert!(read_until_closed(&mut conn).await.is_empty());
    let scrape = proxy
        .scrape_when("a circuit-open refusal", |s| {
            refused("circuit-open")(s) >= 1
        })
        .await;
    assert_eq!(
        scrape.get_or_zero(
            "meshwork_upstream_connect_failures_total",
            &[breaker[0], breaker[1]]
        ),
        2.0,
        "no connect was tried while open"
    );

    // After open_duration, the next connection is the half-open trial; it fails (still
    // refusing), which is reported: the breaker opens again.
    let mut attempts = 0;
    loop {
        let scrape = proxy.scrape().await;
        if transitions("open")(&scrape) == 2 {
            assert_eq!(transitions("half_open")(&scrape), 1);
            assert_eq!(
                refused("connect-failed")(&scrape),
                3,
                "the trial was a connect"
            );
            break;
        }
        attempts += 1;
        assert!(attempts < 100, "no failed trial reopened the breaker");
        let mut conn = dial(&proxy).await;
        read_until_closed(&mut conn).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The endpoint comes up: the next trial succeeds, which closes the breaker.
    let _server = endpoint.listen();
    let mut attempts = 0;
    let mut conn = loop {
        attempts += 1;
        assert!(
            attempts < 100,
            "no trial got through after the endpoint came up"
        );
        let mut conn = dial(&proxy).await;
        let _ = conn.write_all(b"trial").await;
        let mut back = [0u8; 5];
        match tokio::time::timeout(Duration::from_secs(2), conn.read_exact(&mut back)).await {
            Ok(Ok(_)) => break conn,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let scrape = proxy
        .scrape_when("the breaker closed", |s| transitions("closed")(s) == 1)
        .await;
    assert_eq!(
        scrape.get_or_zero("meshwork_circuit_breaker_state", &breaker),
        0.0
    );
    echoes(&mut conn, b"closed again").await;
}
