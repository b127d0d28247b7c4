//! Malformed chunked request bodies are the client's fault: 400 `malformed-request` and
//! the connection closed, the upstream request aborted (the upstream sees the body cut
//! short and its connection closed, never a complete body), and nothing blamed on the
//! upstream: its circuit breaker stays closed and no upstream error is counted.

use std::time::Duration;

use meshwork_tests::raw_upstream::CLOSE_TIMEOUT;
use meshwork_tests::{Proxy, RawConn, RawScript, RawUpstream, edge_config};

/// A route to one endpoint whose breaker opens after 3 failures in a row and stays open
/// for the rest of the test.
fn breaker_config(endpoint: &str) -> String {
    edge_config(&format!(
        "
        route_tables:
          edge:
            - name: upload
              backends:
                - cluster: app
        clusters:
          - name: app
            endpoints: [{endpoint}]
            circuit_breaker:
              consecutive_failures: 3
              open_duration: 1m
        "
    ))
}

const HEAD: &str =
    "POST /upload HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n";

/// The body after a valid first chunk (`hello`), so the upstream has started receiving
/// the body when it breaks.
fn malformed_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let mut long_extension = b"5\r\nhello\r\n5;".to_vec();
    long_extension.extend(std::iter::repeat_n(b'a', 70 * 1024));
    long_extension.extend_from_slice(b"\r\nworld\r\n0\r\n\r\n");
    vec![
        (
            "bad hex",
            b"5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "overflowing size",
            b"5\r\nhello\r\n10000000000000005\r\nworld\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "overrun data",
            b"5\r\nhello\r\n5\r\nworld!!\r\n0\r\n\r\n".to_vec(),
        ),
        ("bare LF", b"5\r\nhello\r\n5\nworld\r\n0\r\n\r\n".to_vec()),
        ("bare CR", b"5\r\nhello\r\n5\rworld\r\n0\r\n\r\n".to_vec()),
        (
            "0_5",
            b"5\r\nhello\r\n0_5\r\n\r\nworld\r\n0\r\n\r\n".to_vec(),
        ),
        ("a 70 KiB chunk extension", long_extension),
    ]
}

/// The body bytes after the head, if the head is all there.
fn body_of(received: &[u8]) -> Option<&[u8]> {
    let end = received.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some(&received[end + 4..])
}

#[tokio::test]
async fn malformed_chunked_bodies_get_400_and_abort_the_upstream_request() {
    let app = RawUpstream::start(RawScript::Listen).await;
    let proxy = Proxy::with_config(breaker_config(&app.endpoint()))
        .start()
        .await;
    let mut failures = Vec::new();
    for (what, body) in malformed_bodies() {
        let upstream_before = app.connections();
        let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
        let mut request = HEAD.as_bytes().to_vec();
        request.extend_from_slice(&body);
        // The proxy may close as soon as it has read the broken part.
        let _ = conn.send(&request).await;
        match conn.read_response(Duration::from_secs(5)).await {
            Ok(r)
                if r.status == 400 && r.header("x-meshwork-error") == Some("malformed-request") => {
            }
            other => failures.push(format!(
                "{what}: expected 400 malformed-request, got {other:?}"
            )),
        }
        if conn.wait_closed(Duration::from_secs(3)).await.is_none() {
            failures.push(format!(
                "{what}: the client connection stayed open after the 400"
            ));
        }
        // Whatever reached the upstream was cut short, and its connection closed.
        for index in upstream_before..app.connections() {
            let received = app.closed(index, CLOSE_TIMEOUT).await;
            let body = body_of(&received).unwrap_or_default();
            if body.ends_with(b"0\r\n\r\n") {
                failures.push(format!(
                    "{what}: the upstream got a complete chunked body: {:?}",
                    String::from_utf8_lossy(&received)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let cases = malformed_bodies().len() as f64;
    let scrape = proxy
        .scrape_when("every malformed body counted as malformed-request", |s| {
            s.get_or_zero(
                "meshwork_http_local_responses_total",
                &[("listener", "edge"), ("reason", "malformed-request")],
            ) == cases
        })
        .await;
    assert_eq!(
        scrape.sum("meshwork_upstream_resets_total"),
        0.0,
        "{}",
        scrape.lines_of("meshwork_upstream_resets_total")
    );
    assert_eq!(
        scrape.get_or_zero(
            "meshwork_http_local_responses_total",
            &[("listener", "edge"), ("reason", "upstream-reset")],
        ),
        0.0
    );
    assert_eq!(
        scrape.sum("meshwork_circuit_breaker_transitions_total"),
        0.0,
        "{}",
        scrape.lines_of("meshwork_circuit_breaker_transitions_total")
    );
    proxy.assert_breakers_closed().await;
}

#[tokio::test]
async fn a_body_breaking_after_the_response_head_just_closes_the_connection() {
    // The upstream answers as soon as it has the head, with a response it never ends.
    let app = RawUpstream::start(RawScript::ReplyThenEcho(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nack\r\n".to_vec(),
    ))
    .await;
    let proxy = Proxy::with_config(breaker_config(&app.endpoint()))
        .start()
        .await;
    let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
    conn.send(format!("{HEAD}5\r\nhello\r\n")).await.unwrap();
    let head = conn.read_head(Duration::from_secs(5)).await.unwrap();
    assert_eq!(head.status, 200);
    let _ = conn.send("zz\r\nworld\r\n0\r\n\r\n").await;
    assert!(
        conn.wait_closed(Duration::from_secs(3)).await.is_some(),
        "the client connection stayed open"
    );
    let received = app.closed(0, CLOSE_TIMEOUT).await;
    assert!(
        !body_of(&received)
            .unwrap_or_default()
            .ends_with(b"0\r\n\r\n"),
        "the upstream got a complete body: {:?}",
        String::from_utf8_lossy(&received)
    );
    proxy.assert_breakers_closed().await;
}
