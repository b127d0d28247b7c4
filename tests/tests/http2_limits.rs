//! `header_read_timeout` on HTTP/2, plaintext and over TLS, with exact frames on raw
//! sockets: a connection that opens no stream, and a header block that never ends
//! (HEADERS without END_HEADERS, no CONTINUATION), get a GOAWAY and are closed; a flood
//! of preface-only connections leaves no connection open; a connection idle between
//! requests is not cut by it.
//!
//! The flood test opens 200 connections; `MESHWORK_H2_FLOOD_CONNECTIONS=2000` runs the
//! bigger manual case (mind `ulimit -n`).

use std::time::Duration;

use meshwork_tests::h2_raw::{
    self, ACK, CONTINUATION, DATA, END_HEADERS, END_STREAM, HEADERS, PING, UntilClosed, frame,
    frames_until_closed, get_header_block, preface_and_settings,
};
use meshwork_tests::{
    Proxy, TestCa, TlsClient, Upstream, single_cluster_config, with_limits, with_tls,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The limits every test here runs with: a short head timeout, and an idle timeout long
/// enough that only the head timeout can close a connection while a test looks.
const LIMITS: &str = "header_read_timeout: 300ms\nidle_timeout: 5m";

/// How long any connection here may take to be closed: the head timeout, the GOAWAY's
/// grace, and slack for a loaded machine.
const CLOSED_WITHIN: Duration = Duration::from_secs(6);

async fn plaintext_proxy(app: &Upstream) -> Proxy {
    let yaml = with_limits(&single_cluster_config(&app.endpoint(), "http1"), LIMITS);
    Proxy::with_config(yaml).start().await
}

/// A plaintext proxy in front of `app`, and a connection to it that has sent the preface
/// and SETTINGS.
async fn h2c_after_preface(app: &Upstream) -> (Proxy, TcpStream) {
    let proxy = plaintext_proxy(app).await;
    let mut tcp = TcpStream::connect(proxy.listener_addr("edge"))
        .await
        .unwrap();
    tcp.write_all(&preface_and_settings()).await.unwrap();
    (proxy, tcp)
}

/// A proxy whose `edge` listener terminates TLS (ALPN `h2`), and the CA its certificate
/// is from.
async fn tls_proxy(app: &Upstream) -> (Proxy, TestCa) {
    let ca = TestCa::new("h2-limits");
    let cert = ca.issue("edge").dns("localhost").write();
    let yaml = with_limits(&single_cluster_config(&app.endpoint(), "http1"), LIMITS);
    let yaml = with_tls(&yaml, &cert.cert, &cert.key);
    (Proxy::with_config(yaml).start().await, ca)
}

async fn tls_h2(proxy: &Proxy, ca: &TestCa) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tls = TlsClient::new(ca.ca_path())
        .alpn(&["h2"])
        .connect(proxy.listener_addr("edge"))
        .await
        .expect("a TLS connection");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls
}

/// Checks that the connection was closed within [`CLOSED_WITHIN`], not before the head
/// timeout, after a GOAWAY.
fn assert_closed_by_the_head_timeout(proxy: &Proxy, what: &str, got: &UntilClosed) {
    let Some(after) = got.closed_after else {
        proxy.fail(&format!(
            "{what}: still open {CLOSED_WITHIN:?} later (header_read_timeout 300ms); frames: {:?}",
            got.frames
        ));
    };
    assert!(
        after >= Duration::from_millis(200),
        "{what}: closed after {after:?}, before the head timeout"
    );
    assert!(
        !got.goaways().is_empty(),
        "{what}: closed without a GOAWAY; frames: {:?}",
        got.frames
    );
}

/// How a client answers the PING that comes with a graceful GOAWAY.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Client {
    /// Acknowledges it, as an HTTP/2 library does: the final GOAWAY follows.
    AcksPing,
    /// Reads nothing and answers nothing: closed anyway after the GOAWAY's grace.
    Silent,
}

/// Sends the preface and SETTINGS, then nothing: the connection opens no stream.
async fn preface_only<S: AsyncRead + AsyncWrite + Unpin>(
    proxy: &Proxy,
    what: &str,
    mut io: S,
    client: Client,
) {
    let started = Instant::now();
    io.write_all(&preface_and_settings()).await.unwrap();
    let mut got = UntilClosed {
        frames: Vec::new(),
        closed_after: None,
    };
    if client == Client::AcksPing {
        got.frames = h2_raw::read_until(&mut io, CLOSED_WITHIN, |f| {
            f.kind == PING && f.flags & ACK == 0
        })
        .await
        .unwrap_or_else(|e| proxy.fail(&format!("{what}: waiting for the GOAWAY's PING: {e}")));
        let ping = got.frames.last().expect("the PING").payload.clone();
        io.write_all(&frame(PING, ACK, 0, &ping)).await.unwrap();
    }
    let rest = frames_until_closed(&mut io, CLOSED_WITHIN).await;
    got.frames.extend(rest.frames);
    got.closed_after = rest.closed_after.map(|_| started.elapsed());
    assert_closed_by_the_head_timeout(proxy, what, &got);
    // The first GOAWAY announces the shutdown; with the PING acknowledged, the last one
    // says that no stream was processed.
    let expected = match client {
        Client::AcksPing => (0, 0),
        Client::Silent => (0x7fff_ffff, 0),
    };
    assert_eq!(
        got.goaways().last(),
        Some(&expected),
        "{what}: GOAWAY (last stream, NO_ERROR); frames: {:?}",
        got.frames
    );
}

/// Sends a whole request and reads its whole response on stream `stream`.
async fn one_request<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S, stream: u32) {
    let block = get_header_block("localhost", "/whole");
    io.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, stream, &block))
        .await
        .unwrap();
    h2_raw::read_until(io, Duration::from_secs(5), |f| {
        f.stream == stream && f.kind == DATA && f.flags & END_STREAM != 0
    })
    .await
    .unwrap_or_else(|e| panic!("the response on stream {stream}: {e}"));
}

/// After one whole request, sends a HEADERS frame without END_HEADERS and never the
/// CONTINUATION: the head never completes, and nothing else may be sent on the
/// connection meanwhile (RFC 9113 §6.10).
async fn unended_header_block<S: AsyncRead + AsyncWrite + Unpin>(
    proxy: &Proxy,
    app: &Upstream,
    what: &str,
    mut io: S,
) {
    io.write_all(&preface_and_settings()).await.unwrap();
    one_request(&mut io, 1).await;
    let block = get_header_block("localhost", "/never-ends");
    io.write_all(&frame(HEADERS, END_STREAM, 3, &block[..block.len() / 2]))
        .await
        .unwrap();
    let got = frames_until_closed(&mut io, CLOSED_WITHIN).await;
    assert_closed_by_the_head_timeout(proxy, what, &got);
    assert_eq!(app.requests(), 1, "{what}: only the whole request went up");
}

#[tokio::test]
async fn an_http2_connection_that_opens_no_stream_is_closed_at_the_header_timeout() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = plaintext_proxy(&app).await;
    let tcp = TcpStream::connect(proxy.listener_addr("edge"))
        .await
        .unwrap();
    preface_only(&proxy, "h2c", tcp, Client::AcksPing).await;
}

#[tokio::test]
async fn an_http2_over_tls_connection_that_opens_no_stream_is_closed_at_the_header_timeout() {
    let app = Upstream::http1().name("app").start().await;
    let (proxy, ca) = tls_proxy(&app).await;
    let tls = tls_h2(&proxy, &ca).await;
    preface_only(&proxy, "h2 over TLS", tls, Client::Silent).await;
}

#[tokio::test]
async fn a_headers_frame_without_end_headers_is_closed_at_the_header_timeout() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = plaintext_proxy(&app).await;
    let tcp = TcpStream::connect(proxy.listener_addr("edge"))
        .await
        .unwrap();
    unended_header_block(&proxy, &app, "h2c", tcp).await;
}

#[tokio::test]
async fn over_tls_a_headers_frame_without_end_headers_is_closed_at_the_header_timeout() {
    let app = Upstream::http1().name("app").start().await;
    let (proxy, ca) = tls_proxy(&app).await;
    let tls = tls_h2(&proxy, &ca).await;
    unended_header_block(&proxy, &app, "h2 over TLS", tls).await;
}

#[tokio::test]
async fn a_header_block_ended_by_a_continuation_that_never_comes_whole_is_closed() {
    let app = Upstream::http1().name("app").start().await;
    let (proxy, mut tcp) = h2c_after_preface(&app).await;
    let block = get_header_block("localhost", "/trickled");
    let (first, rest) = block.split_at(3);
    tcp.write_all(&frame(HEADERS, END_STREAM, 1, first))
        .await
        .unwrap();
    // The CONTINUATION that would end the block: its header and all but its last byte.
    let continuation = frame(CONTINUATION, END_HEADERS, 1, rest);
    tcp.write_all(&continuation[..continuation.len() - 1])
        .await
        .unwrap();
    let got = frames_until_closed(&mut tcp, CLOSED_WITHIN).await;
    assert_closed_by_the_head_timeout(&proxy, "a trickled CONTINUATION", &got);
    assert_eq!(app.requests(), 0);
}

#[tokio::test]
async fn an_http2_connection_idle_between_requests_outlives_the_header_timeout() {
    let app = Upstream::http1().name("app").start().await;
    let (proxy, mut tcp) = h2c_after_preface(&app).await;
    one_request(&mut tcp, 1).await;
    // Three head timeouts with no stream open: only the idle timeout (5m) applies now.
    let got = frames_until_closed(&mut tcp, Duration::from_millis(900)).await;
    if got.closed_after.is_some() || !got.goaways().is_empty() {
        proxy.fail(&format!("closed while idle: {:?}", got.frames));
    }
    one_request(&mut tcp, 3).await;
    assert_eq!(app.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_preface_only_connections_is_closed_and_leaves_no_connection_open() {
    let count: usize = std::env::var("MESHWORK_H2_FLOOD_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let app = Upstream::http1().name("app").start().await;
    let proxy = plaintext_proxy(&app).await;
    let addr = proxy.listener_addr("edge");
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..count {
        flood.spawn(async move {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            tcp.write_all(&preface_and_settings()).await.unwrap();
            frames_until_closed(&mut tcp, Duration::from_secs(20)).await
        });
    }
    let mut still_open = 0;
    while let Some(got) = flood.join_next().await {
        let got = got.expect("a flood connection");
        if got.closed_after.is_none() {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "of {count} preface-only connections");
    let active = "meshwork_downstream_connections_active";
    let scrape = proxy
        .scrape_when("no connection left open on edge", |s| {
            s.get(active, &[("listener", "edge")]) == Some(0.0)
        })
        .await;
    assert_eq!(
        scrape.get(
            "meshwork_downstream_connections_total",
            &[("listener", "edge")]
        ),
        Some(count as f64)
    );
}
