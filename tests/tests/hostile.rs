//! Hostile clients: request smuggling attempts and malformed heads (400 and close),
//! slowloris, connection floods, and idle connections.

use std::time::{Duration, Instant};

use http::StatusCode;
use meshwork_tests::raw::RawError;
use meshwork_tests::{
    HttpClient, Proxy, RawConn, Upstream, eventually, single_cluster_config, with_limits,
};

async fn proxy_with_limits(upstream: &Upstream, limits: &str) -> Proxy {
    let yaml = single_cluster_config(&upstream.endpoint(), "http1");
    let yaml = if limits.is_empty() {
        yaml
    } else {
        with_limits(&yaml, limits)
    };
    Proxy::with_config(yaml).start().await
}

/// Sends `request` on a fresh connection and expects 400 then the connection closed
/// (the proxy cannot know where the next request would start). Nothing may reach the
/// upstream.
async fn assert_rejected(proxy: &Proxy, upstream: &Upstream, what: &str, request: &str) {
    if let Err(failure) = check_rejected(proxy, upstream, what, request, Close::Required).await {
        panic!("{failure}");
    }
}

/// Whether the connection must be closed after the 400.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Close {
    /// The framing of what follows is unknowable: the connection must end.
    Required,
    /// The request was whole and well framed; keeping the connection is fine.
    Optional,
}

/// [`assert_rejected`] without panicking, to check several cases and report them all.
async fn check_rejected(
    proxy: &Proxy,
    upstream: &Upstream,
    what: &str,
    request: &str,
    close: Close,
) -> Result<(), String> {
    let before = upstream.requests();
    let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
    conn.send(request.as_bytes())
        .await
        .map_err(|e| format!("{what}: send: {e}"))?;
    match conn.read_response(Duration::from_secs(5)).await {
        Ok(response) if response.status == 400 => {
            if let Some(kind) = response.header("x-meshwork-error") {
                if kind != "malformed-request" {
                    return Err(format!("{what}: 400 with x-meshwork-error {kind:?}"));
                }
            }
        }
        Ok(response) => return Err(format!("{what}: expected 400, got {response:?}")),
        Err(e) => return Err(format!("{what}: expected 400, got {e}")),
    }
    if close == Close::Required && conn.wait_closed(Duration::from_secs(3)).await.is_none() {
        return Err(format!("{what}: the connection stayed open after the 400"));
    }
    if upstream.requests() != before {
        return Err(format!("{what}: a request reached the upstream"));
    }
    Ok(())
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_rejected_with_400_and_close() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_with_limits(&app, "").await;
    assert_rejected(
        &proxy,
        &app,
        "CL then TE",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n\
         0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_rejected(
        &proxy,
        &app,
        "TE then CL",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n\
         0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn differing_content_lengths_are_rejected_with_400_and_close() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_with_limits(&app, "").await;
    assert_rejected(
        &proxy,
        &app,
        "two Content-Length headers",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    )
    .await;
    assert_rejected(
        &proxy,
        &app,
        "a Content-Length list",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!",
    )
    .await;
}

#[tokio::test]
async fn an_invalid_content_length_is_rejected_with_400_and_close() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_with_limits(&app, "").await;
    for value in ["abc", "+5", "-1", "1.5", "0x10", "99999999999999999999999"] {
        assert_rejected(
            &proxy,
            &app,
            &format!("Content-Length: {value}"),
            &format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n\r\nhello"),
        )
        .await;
    }
}

#[tokio::test]
async fn a_transfer_encoding_not_ending_in_chunked_is_rejected_with_400_and_close() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_with_limits(&app, "").await;
    for value in ["chunked, identity", "xchunked", "gzip"] {
        assert_rejected(
            &proxy,
            &app,
            &format!("Transfer-Encoding: {value}"),
            &format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {value}\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        )
        .await;
    }
}

#[tokio::test]
async fn an_invalid_header_name_is_rejected_with_400_and_close() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_with_limits(&app, "").await;
    for line in ["Bad Header: x", "x(y): 1", ": no-name", "x\"y: 1"] {
        assert_rejected(
            &proxy,
            &app,
            line,
            &format!("GET / HTTP/1.1\r\nHost: x\r\n{line}\r\n\r\n"),
        )
        .await;
    }
}

#[tokio::test]
async fn an_obs_folded_header_is_rejected_with_400_and_close() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_with_limits(&app, "").await;
    assert_rejected(
        &proxy,
        &app,
        "obs-fold",
        "GET / HTTP/1.1\r\nHost: x\r\nX-Folded: first\r\n second\r\n\r\n",
    )
    .await;
    assert_rejected(
        &proxy,
        &app,
        "obs-fold of Transfer-Encoding",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\nhello",
    )
    .await;
}

#[tokio::test]
async fn whitespace_before_the_colon_is_rejected_with_400_and_close() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_with_limits(&app, "").await;
    assert_rejected(
        &proxy,
        &app,
        "space before colon",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello",
    )
    .await;
    assert_rejected(
        &proxy,
        &app,
        "tab before colon",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn control_characters_in_a_header_value_are_rejected_with_400_and_close() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_with_limits(&app, "").await;
    assert_rejected(
        &proxy,
        &app,
        "NUL in a value",
        "GET / HTTP/1.1\r\nHost: x\r\nX-Evil: a\0b\r\n\r\n",
    )
    .await;
    assert_rejected(
        &proxy,
        &app,
        "bare CR in a value",
        "GET / HTTP/1.1\r\nHost: x\r\nX-Evil: a\rb\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn a_missing_duplicated_or_invalid_host_is_rejected_with_400() {
    // RFC 9112 section 3.2: a server MUST answer 400 to these, or routing by host is
    // ambiguous between the proxy and whatever sits behind it.
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_with_limits(&app, "").await;
    let mut failures = Vec::new();
    for (what, request) in [
        ("no Host", "GET / HTTP/1.1\r\n\r\n"),
        (
            "two Host headers",
            "GET / HTTP/1.1\r\nHost: a.example.com\r\nHost: b.example.com\r\n\r\n",
        ),
        (
            "a Host with a space",
            "GET / HTTP/1.1\r\nHost: a b.example.com\r\n\r\n",
        ),
        (
            "a Host with a path",
            "GET / HTTP/1.1\r\nHost: a.example.com/x\r\n\r\n",
        ),
    ] {
        if let Err(failure) = check_rejected(&proxy, &app, what, request, Close::Optional).await {
            failures.push(failure);
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn a_transfer_encoding_repeated_or_in_http_1_0_is_rejected_with_400_and_close() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_with_limits(&app, "").await;
    assert_rejected(
        &proxy,
        &app,
        "chunked, then another coding in a second header",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert_rejected(
        &proxy,
        &app,
        "Transfer-Encoding in HTTP/1.0",
        "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert_rejected(
        &proxy,
        &app,
        "an empty Content-Length",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n",
    )
    .await;
}

/// Every head the proxy refuses before routing is counted, by reason, as the
/// listener's local responses: the smuggling attempts an operator wants to see.
#[tokio::test]
async fn refused_heads_are_counted_as_local_responses() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_with_limits(&app, "max_request_header_size: 4KiB").await;
    assert_rejected(
        &proxy,
        &app,
        "CL+TE",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
    let many: String = (0..101).map(|i| format!("x-{i}: a\r\n")).collect();
    let _ = conn
        .send(format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes())
        .await;
    let response = conn.read_response(Duration::from_secs(5)).await.unwrap();
    assert_eq!(response.status, 431, "101 fields: {response:?}");
    proxy
        .scrape_when("one malformed-request and one header-too-large", |s| {
            let count = |reason| {
                s.get_or_zero(
                    "meshwork_http_local_responses_total",
                    &[("listener", "edge"), ("reason", reason)],
                )
            };
            count("malformed-request") == 1.0 && count("header-too-large") == 1.0
        })
        .await;
    assert_eq!(app.requests(), 0);
}

/// Bytes after a request's body are the next request, routed and checked on their own;
/// a body's length cannot be stretched or cut to hide one.
#[tokio::test]
async fn a_request_after_a_body_on_the_same_write_is_served_as_its_own() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_with_limits(&app, "").await;
    let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
    conn.send(
        b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /second HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .unwrap();
    for _ in 0..2 {
        let response = conn.read_response(Duration::from_secs(5)).await.unwrap();
        assert_eq!(response.status, 200, "{response:?}");
    }
    assert_eq!(app.requests(), 2);
    conn.send(b"POST /third HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /fourth HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..2 {
        let response = conn.read_response(Duration::from_secs(5)).await.unwrap();
        assert_eq!(response.status, 200, "{response:?}");
    }
    assert_eq!(app.requests(), 4);
}

#[tokio::test]
async fn a_valid_request_after_the_hostile_ones_is_still_served() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_with_limits(&app, "").await;
    assert_rejected(
        &proxy,
        &app,
        "CL+TE",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
    conn.send(b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let response = conn.read_response(Duration::from_secs(5)).await.unwrap();
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(app.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_clients_are_cut_at_the_header_timeout_while_others_are_served() {
    const SLOW_CLIENTS: usize = 10;
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_with_limits(&app, "header_read_timeout: 300ms").await;
    let addr = proxy.listener_addr("edge");

    let mut slow = tokio::task::JoinSet::new();
    for i in 0..SLOW_CLIENTS {
        slow.spawn(async move {
            let mut conn = RawConn::connect(addr).await;
            let started = Instant::now();
            conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
            // One header line every 100ms: each read makes progress, the head never ends.
            loop {
                if conn.send(format!("x-trickle-{i}: x\r\n")).await.is_err() {
                    return started.elapsed();
                }
                if conn.wait_closed(Duration::from_millis(100)).await.is_some() {
                    return started.elapsed();
                }
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "slowloris client {i} still connected after 5s"
                );
            }
        });
    }

    // Meanwhile, ordinary clients on new connections are served promptly.
    let client = HttpClient::h1_unpooled();
    for _ in 0..10 {
        let started = Instant::now();
        let reply = client.get(&proxy.url("edge", "/")).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "an ordinary request took {:?} during the slowloris",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }

    while let Some(cut_after) = slow.join_next().await {
        let cut_after = cut_after.expect("a slowloris client");
        assert!(
            cut_after < Duration::from_millis(2500),
            "a slowloris connection lived {cut_after:?} with header_read_timeout 300ms"
        );
    }
    assert_eq!(
        app.requests(),
        10,
        "only the ordinary requests reached the upstream"
    );
}

#[tokio::test]
async fn a_request_head_arriving_in_pieces_is_served_with_the_body_that_came_with_it() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_with_limits(&app, "header_read_timeout: 5s").await;
    let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
    // The first piece alone, until the proxy has taken the connection: its head is then
    // read ahead of hyper, which serves it and the body bytes that came with the rest.
    conn.send("POST /ok HT").await.unwrap();
    proxy
        .scrape_when("the connection accepted", |s| {
            s.get(
                "meshwork_downstream_connections_active",
                &[("listener", "edge")],
            ) == Some(1.0)
        })
        .await;
    for piece in [
        "TP/1.1\r\nHost: x\r\n",
        "Content-Length: 5\r\n",
        "\r\nhello",
    ] {
        conn.send(piece).await.unwrap();
    }
    let response = conn.read_response(Duration::from_secs(5)).await.unwrap();
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(app.requests(), 1);
}

#[tokio::test]
async fn bytes_that_start_no_request_are_answered_400_without_waiting_for_a_line_end() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_with_limits(&app, "header_read_timeout: 30s").await;
    let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
    // The start of a TLS ClientHello on the plaintext port: no line end will come.
    conn.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        .await
        .unwrap();
    let response = conn.read_response(Duration::from_secs(5)).await.unwrap();
    assert_eq!(response.status, 400, "{response:?}");
    assert_eq!(app.requests(), 0);
}

#[tokio::test]
async fn max_connections_is_enforced() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_with_limits(&app, "max_connections: 2").await;
    let addr = proxy.listener_addr("edge");
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    let mut first = RawConn::connect(addr).await;
    let mut second = RawConn::connect(addr).await;
    for conn in [&mut first, &mut second] {
        conn.send(request).await.unwrap();
        let response = conn.read_response(Duration::from_secs(5)).await.unwrap();
        assert_eq!(response.status, 200);
    }

    // A third connection is either not accepted (it waits in the kernel's backlog),
    // refused, or closed; it is never served while two are open.
    if let Ok(mut third) = RawConn::try_connect(addr).await {
        let served = match third.send(request).await {
            Err(_) => None,
            Ok(()) => match third.read_response(Duration::from_millis(700)).await {
                Ok(response) => Some(response),
                Err(RawError::Closed { .. } | RawError::Timeout { .. } | RawError::Io(_)) => None,
                Err(e) => panic!("third connection: {e}"),
            },
        };
        if let Some(response) = served {
            assert_ne!(
                response.status, 200,
                "a third connection was served: {response:?}"
            );
        }
    }

    // The two admitted connections keep working.
    second.send(request).await.unwrap();
    assert_eq!(
        second
            .read_response(Duration::from_secs(5))
            .await
            .unwrap()
            .status,
        200
    );

    // Closing one admits another.
    drop(first);
    eventually(
        "a new connection to be served after one closed",
        Duration::from_secs(5),
        || async {
            let Ok(mut conn) = RawConn::try_connect(addr).await else {
                return false;
            };
            if conn.send(request).await.is_err() {
                return false;
            }
            matches!(conn.read_response(Duration::from_millis(500)).await, Ok(r) if r.status == 200)
        },
    )
    .await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_with_limits(&app, "idle_timeout: 500ms").await;
    let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
    conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let response = conn.read_response(Duration::from_secs(5)).await.unwrap();
    assert_eq!(response.status, 200);
    let idle_since = Instant::now();
    assert!(
        conn.is_open_after(Duration::from_millis(100)).await,
        "closed right after the response, not after being idle"
    );
    let closed = conn.wait_closed(Duration::from_secs(3)).await;
    assert!(
        closed.is_some(),
        "the idle connection was still open {:?} after its last response",
        idle_since.elapsed()
    );
}

#[tokio::test]
async fn a_busy_keep_alive_connection_outlives_the_idle_timeout() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_with_limits(&app, "idle_timeout: 500ms").await;
    let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
    let started = Instant::now();
    for i in 0..8 {
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap_or_else(|e| panic!("request {i} after {:?}: {e}", started.elapsed()));
        let response = conn
            .read_response(Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("request {i} after {:?}: {e}", started.elapsed()));
        assert_eq!(response.status, 200);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(started.elapsed() > Duration::from_millis(1000));
}

/// Sends one HTTP/2 request whose DATA disagrees with its `content-length`, with the h2
/// crate directly (well-behaved clients cannot). Returns what the client saw.
async fn send_h2_with_lying_length(
    addr: std::net::SocketAddr,
    declared: &str,
    body: &'static [u8],
) -> String {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.expect("an h2c handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("a ready h2 connection");
    let request = http::Request::post(format!("http://{addr}/count"))
        .header("content-length", declared)
        .body(())
        .unwrap();
    let (response, mut stream) = client.send_request(request, false).expect("send the head");
    let _ = stream.send_data(bytes::Bytes::from_static(body), true);
    match tokio::time::timeout(Duration::from_secs(5), response).await {
        Err(_) => "no answer in 5s".to_owned(),
        Ok(Err(e)) => format!("stream error: {e}"),
        Ok(Ok(response)) => format!("status {}", response.status()),
    }
}

#[tokio::test]
async fn an_h2_body_longer_than_its_content_length_smuggles_nothing_to_an_http1_upstream() {
    let app = Upstream::http1()
        .name("app")
        .count_body("/count")
        .start()
        .await;
    let proxy = proxy_with_limits(&app, "").await;
    // If the proxy forwarded the DATA under `content-length: 3`, the HTTP/1 upstream would
    // read the rest as a second request on the same connection.
    let seen = send_h2_with_lying_length(
        proxy.listener_addr("edge"),
        "3",
        b"abcGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(
        !seen.starts_with("status 2"),
        "the request was accepted: {seen}"
    );
    // A request after it, answered: an HTTP/1 upstream reads its connection in order, so
    // a smuggled request on the pooled connection would have been read before this one.
    let reply = HttpClient::h2c().get(&proxy.url("edge", "/after")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        !app.paths().iter().any(|p| p == "/smuggled"),
        "a smuggled request reached the upstream: {:?}",
        app.paths()
    );
}

#[tokio::test]
async fn an_h2_body_shorter_than_its_content_length_is_not_passed_off_as_complete() {
    let app = Upstream::http1()
        .name("app")
        .count_body("/count")
        .start()
        .await;
    let proxy = proxy_with_limits(&app, "").await;
    let seen = send_h2_with_lying_length(proxy.listener_addr("edge"), "100", b"abc").await;
    assert!(
        !seen.starts_with("status 2"),
        "the request was accepted: {seen}"
    );
    let reply = HttpClient::h2c().get(&proxy.url("edge", "/after")).await;
    assert_eq!(reply.status, StatusCode::OK);
}
