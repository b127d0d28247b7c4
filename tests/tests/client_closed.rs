//! A client must not be able to hurt an upstream: requests their clients abandon (a
//! closed socket, an HTTP/2 `RST_STREAM CANCEL`, a gRPC deadline, an upload cut short)
//! are the client's doing. They are logged and counted as `client-closed` (status 499,
//! as nginx does) and never count against the endpoint: its circuit breaker stays
//! closed, a half-open trial the client gave up frees its slot, and no upstream error
//! is counted.

use std::time::Duration;

use http::StatusCode;
use meshwork_tests::raw::RawError;
use meshwork_tests::{
    AccessLogFile, EchoRequest, GrpcClient, GrpcUpstream, HttpClient, Proxy, RawConn, Upstream,
    dedent, edge_config, eventually, indent,
};

/// How long the slow upstream takes: far longer than any test waits.
const SLOW: Duration = Duration::from_secs(60);

/// How many requests each test abandons: more than the breaker's failure thresholds.
const ABANDONED: u64 = 10;

/// The breaker of most tests: it would open after 3 failures in a row or a 50% failure
/// rate over 4 requests, and stay open for the rest of the test.
const STRICT_BREAKER: &str = "
    consecutive_failures: 3
    failure_rate: { threshold: 0.5, min_requests: 4, window: 1m }
    open_duration: 1m
";

/// One route `app` to one endpoint, spoken to with `protocol`, with `breaker` (the
/// fields of its `circuit_breaker`).
fn config_with_breaker(endpoint: &str, protocol: &str, breaker: &str) -> String {
    let yaml = edge_config(&format!(
        "
        route_tables:
          edge:
            - name: app
              backends:
                - cluster: app
        clusters:
          - name: app
            endpoints: [{endpoint}]
            protocol: {protocol}
            circuit_breaker:
        "
    ));
    format!("{yaml}{}", indent(&dedent(breaker), 6))
}

fn breaker_config(endpoint: &str, protocol: &str) -> String {
    config_with_breaker(endpoint, protocol, STRICT_BREAKER)
}

/// An upstream whose `/slow` answers after [`SLOW`] (and other paths at once).
async fn slow_upstream() -> Upstream {
    Upstream::http1()
        .name("app")
        .slow("/slow", SLOW)
        .start()
        .await
}

/// Waits until the upstream has received its `n`th request.
async fn until_upstream_has(app: &Upstream, n: u64) {
    eventually(
        &format!("request {n} at the upstream"),
        Duration::from_secs(5),
        || async { app.requests() == n },
    )
    .await;
}

/// Sends `request` on [`ABANDONED`] fresh connections, each closed once its request has
/// reached the upstream.
async fn abandon_raw(proxy: &Proxy, app: &Upstream, request: &str) {
    for i in 1..=ABANDONED {
        let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
        conn.send(request).await.unwrap();
        until_upstream_has(app, i).await;
        drop(conn);
    }
}

/// Waits until `abandoned` requests are counted as `client-closed`, then checks that
/// nothing was counted against the endpoint and, with a `client`, that a normal request
/// (`/fast`) is served.
async fn assert_counted_as_client_closed_only(
    proxy: &Proxy,
    abandoned: u64,
    client: Option<HttpClient>,
) {
    let scrape = proxy
        .scrape_when(&format!("{abandoned} client-closed requests"), |s| {
            s.get_or_zero(
                "meshwork_http_local_responses_total",
                &[("listener", "edge"), ("reason", "client-closed")],
            ) == abandoned as f64
        })
        .await;
    for family in [
        "meshwork_upstream_resets_total",
        "meshwork_upstream_timeouts_total",
        "meshwork_upstream_connect_failures_total",
        "meshwork_circuit_breaker_transitions_total",
    ] {
        assert_eq!(scrape.sum(family), 0.0, "{}", scrape.lines_of(family));
    }
    let abandoned_4xx = scrape.get_or_zero(
        "meshwork_http_requests_total",
        &[
            ("listener", "edge"),
            ("route", "app"),
            ("cluster", "app"),
            ("status_class", "4xx"),
        ],
    );
    assert_eq!(abandoned_4xx, abandoned as f64, "recorded as 499");
    proxy.assert_breakers_closed().await;
    if let Some(client) = client {
        let reply = client.get(&proxy.url("edge", "/fast")).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
}

#[tokio::test]
async fn clients_closing_their_socket_while_waiting_do_not_open_the_breaker() {
    let app = slow_upstream().await;
    let log = AccessLogFile::json();
    let yaml = format!("{}{}", breaker_config(&app.endpoint(), "http1"), log.yaml());
    let proxy = Proxy::with_config(yaml).start().await;
    abandon_raw(
        &proxy,
        &app,
        "GET /slow HTTP/1.1\r\nHost: app.example\r\n\r\n",
    )
    .await;
    assert_counted_as_client_closed_only(&proxy, ABANDONED, Some(HttpClient::h1())).await;

    let lines = log.json_lines(ABANDONED as usize + 1).await;
    let closed: Vec<_> = lines.iter().filter(|l| l["path"] == "/slow").collect();
    assert_eq!(closed.len(), ABANDONED as usize);
    for line in closed {
        assert_eq!(line["status"], 499, "{line}");
        assert_eq!(line["error"], "client-closed", "{line}");
        assert_eq!(line["upstream_cluster"], "app", "{line}");
    }
}

#[tokio::test]
async fn http2_streams_cancelled_by_the_client_do_not_open_the_breaker() {
    let app = slow_upstream().await;
    let proxy = Proxy::with_config(breaker_config(&app.endpoint(), "http1"))
        .start()
        .await;
    let addr = proxy.listener_addr("edge");
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.expect("an h2c handshake");
    tokio::spawn(connection);
    for i in 1..=ABANDONED {
        let mut client = client.clone().ready().await.expect("a ready h2 connection");
        let request = http::Request::get(format!("http://{addr}/slow"))
            .body(())
            .unwrap();
        let (response, mut stream) = client.send_request(request, true).expect("send the head");
        until_upstream_has(&app, i).await;
        stream.send_reset(h2::Reason::CANCEL);
        drop(response);
    }
    assert_counted_as_client_closed_only(&proxy, ABANDONED, Some(HttpClient::h2c())).await;
}

#[tokio::test]
async fn grpc_calls_past_their_deadline_do_not_open_the_breaker() {
    let app = GrpcUpstream::start().await;
    let proxy = Proxy::with_config(breaker_config(&app.endpoint(), "http2"))
        .start()
        .await;
    let mut client = GrpcClient::connect(proxy.listener_addr("edge")).await;
    for i in 1..=ABANDONED {
        let late = EchoRequest {
            interval_ms: SLOW.as_millis() as u32,
            ..EchoRequest::new("late")
        };
        let status = client
            .unary_with_deadline(late, Duration::from_millis(300))
            .await
            .expect_err("past its deadline");
        // tonic reports its own deadline as `Cancelled` ("Timeout expired").
        assert!(
            matches!(
                status.code(),
                tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
            ),
            "call {i}: {status:?}"
        );
    }
    assert_counted_as_client_closed_only(&proxy, ABANDONED, None).await;
    let reply = client.unary(EchoRequest::new("on time")).await.unwrap();
    assert_eq!(reply.into_inner().message, "on time");
}

#[tokio::test]
async fn uploads_cut_short_by_the_client_do_not_open_the_breaker() {
    let app = slow_upstream().await;
    let proxy = Proxy::with_config(breaker_config(&app.endpoint(), "http1"))
        .start()
        .await;
    abandon_raw(
        &proxy,
        &app,
        "POST /slow HTTP/1.1\r\nHost: app.example\r\nContent-Length: 1000\r\n\r\n0123456789",
    )
    .await;
    assert_counted_as_client_closed_only(&proxy, ABANDONED, Some(HttpClient::h1())).await;
}

#[tokio::test]
async fn a_half_open_trial_abandoned_by_its_client_frees_its_slot() {
    let app = Upstream::http1()
        .name("app")
        .fail_first("/", 3, 503, None)
        .slow("/slow", SLOW)
        .start()
        .await;
    let breaker = "consecutive_failures: 3\nopen_duration: 200ms\nhalf_open_requests: 1\n";
    let yaml = config_with_breaker(&app.endpoint(), "http1", breaker);
    let proxy = Proxy::with_config(yaml).start().await;
    let client = HttpClient::h1();
    for _ in 0..3 {
        let reply = client.get(&proxy.url("edge", "/")).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.error_kind(), None, "the upstream's own 503");
    }
    proxy
        .scrape_when("the breaker opened", |s| {
            s.sum("meshwork_circuit_breaker_transitions_total") >= 1.0
        })
        .await;
    // Until the open time is over, requests are refused at once; the first one let
    // through is the half-open trial, which waits on the slow path.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let trial = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no half-open trial was let through"
        );
        let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
        conn.send("GET /slow HTTP/1.1\r\nHost: app.example\r\n\r\n")
            .await
            .unwrap();
        match conn.read_response(Duration::from_millis(200)).await {
            Ok(refused) => {
                assert_eq!(refused.header("x-meshwork-error"), Some("circuit-open"));
            }
            Err(RawError::Timeout { .. }) => break conn,
            Err(e) => panic!("probing for the half-open trial: {e}"),
        }
    };
    eventually(
        "the trial at the upstream",
        Duration::from_secs(5),
        || async { app.requests() == 4 },
    )
    .await;
    drop(trial);
    proxy
        .scrape_when("the abandoned trial counted as client-closed", |s| {
            s.get_or_zero(
                "meshwork_http_local_responses_total",
                &[("listener", "edge"), ("reason", "client-closed")],
            ) == 1.0
        })
        .await;
    // Its slot is free: the next request is the trial, which succeeds and closes.
    let reply = client.get(&proxy.url("edge", "/")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.text(), "recovered");
    proxy.assert_breakers_closed().await;
}

/// The other side of the line: attempts the proxy itself cuts for being slow (the
/// route's `timeout`, a retry's `per_try_timeout`) are the endpoint's failures.
#[tokio::test]
async fn attempts_cut_by_a_timeout_still_count_against_the_endpoint() {
    let app = Upstream::http1()
        .name("app")
        .slow("/slow*", SLOW)
        .start()
        .await;
    let yaml = edge_config(&format!(
        "
        route_tables:
          edge:
            - name: per-try
              match: {{ path: {{ prefix: /slow/retried }} }}
              backends: [{{ cluster: app }}]
              retry:
                attempts: 2
                on: [gateway-error]
                per_try_timeout: 100ms
                backoff: {{ base: 1ms, max: 1ms }}
            - name: app
              timeout: 100ms
              backends: [{{ cluster: app }}]
        clusters:
          - name: app
            endpoints: [{}]
            circuit_breaker:
              consecutive_failures: 3
              open_duration: 1m
        ",
        app.endpoint()
    ));
    let proxy = Proxy::with_config(yaml).start().await;
    let client = HttpClient::h1();
    // Two attempts, both cut by the per-try timeout; then one cut by the route timeout.
    let reply = client.get(&proxy.url("edge", "/slow/retried")).await;
    assert_eq!(reply.error_kind(), Some("upstream-timeout"), "{reply:?}");
    let reply = client.get(&proxy.url("edge", "/slow")).await;
    assert_eq!(reply.error_kind(), Some("upstream-timeout"), "{reply:?}");
    assert_eq!(app.requests(), 3);
    let reply = client.get(&proxy.url("edge", "/slow")).await;
    assert_eq!(reply.error_kind(), Some("circuit-open"), "{reply:?}");
    assert_eq!(app.requests(), 3, "the open breaker kept the request away");
}
