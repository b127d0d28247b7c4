//! The server connection against a scripted service, over an in-memory pipe, driven by
//! h2's client (an independent implementation) or, for what no well-behaved client
//! sends, by raw frames.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::http::ProxyError;
use crate::http::client_body::ClientBody;
use crate::http::client_upgrade::ClientUpgrade;

/// Answers every request with what it read of it: method, target and body (or the body
/// error) as the body, and the request's trailers as its trailers; `/tunnel` (an
/// extended CONNECT) echoes what the tunnel carries.
#[derive(Clone, Default)]
struct Echo {
    seen: Arc<Mutex<Vec<String>>>,
}

type EchoFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<EchoBody>, Infallible>> + Send>>;
type EchoBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

impl Http1Service for Echo {
    type Body = EchoBody;
    type Future = EchoFuture;

    fn refused(&self, error: ProxyError) {
        self.seen
            .lock()
            .unwrap()
            .push(format!("refused: {}", error.reason()));
    }

    fn serve(&self, mut request: http::Request<ClientBody>) -> EchoFuture {
        let seen = self.seen.clone();
        Box::pin(async move {
            let line = format!("{} {}", request.method(), request.uri());
            seen.lock().unwrap().push(line.clone());
            if request.uri().path() == "/tunnel" {
                let upgrade = request.extensions_mut().remove::<ClientUpgrade>().unwrap();
                tokio::spawn(async move {
                    let mut io = upgrade.into_io().await.unwrap();
                    let mut buf = [0u8; 64];
                    let n = io.read(&mut buf).await.unwrap();
                    io.write_all(&buf[..n]).await.unwrap();
                    io.shutdown().await.unwrap();
                });
                return Ok(http::Response::new(Full::new(Bytes::new()).boxed_unsync()));
            }
            let (body, trailers) = match request.into_body().collect().await {
                Ok(body) => {
                    let trailers = body.trailers().cloned();
                    (body.to_bytes(), trailers)
                }
                Err(error) => (Bytes::from(format!("error: {error}")), None),
            };
            let mut text = BytesMut::from(format!("{line} ").as_bytes());
            text.extend_from_slice(&body);
            let text = text.freeze();
            let body = match trailers {
                Some(trailers) => http_body_util::StreamBody::new(futures_util::stream::iter([
                    Ok::<_, Infallible>(http_body::Frame::data(text)),
                    Ok(http_body::Frame::trailers(trailers)),
                ]))
                .boxed_unsync(),
                None => Full::new(text).boxed_unsync(),
            };
            Ok(http::Response::new(body))
        })
    }
}

/// A connection served in a task of its own; the client's end of the pipe.
fn serve() -> (DuplexStream, Echo, tokio::task::JoinHandle<io::Result<()>>) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let echo = Echo::default();
    let conn = Http2Server::new(server, echo.clone(), 8192);
    (client, echo, tokio::spawn(conn))
}

/// h2's client over `io`, its connection driven in a task.
async fn client(io: DuplexStream) -> h2::client::SendRequest<Bytes> {
    let (send, conn) = h2::client::handshake(io).await.expect("a handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

fn get(path: &str) -> Request<()> {
    Request::get(format!("http://example.com{path}"))
        .body(())
        .unwrap()
}

/// Sends `req` with `body` (and `trailers`), returns the status, body and trailers.
async fn exchange(
    send: &mut h2::client::SendRequest<Bytes>,
    req: Request<()>,
    body: Option<Bytes>,
    trailers: Option<HeaderMap>,
) -> (StatusCode, Bytes, Option<HeaderMap>) {
    let mut send = send.clone().ready().await.unwrap();
    let end = body.is_none() && trailers.is_none();
    let (response, mut stream) = send.send_request(req, end).unwrap();
    if let Some(body) = body {
        send_all(&mut stream, body, trailers.is_none()).await;
    }
    if let Some(trailers) = trailers {
        stream.send_trailers(trailers).unwrap();
    }
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("a response in time")
        .expect("a response");
    let status = response.status();
    let mut body = response.into_body();
    let mut data = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.unwrap();
    (status, data.freeze(), trailers)
}

/// Sends `body` within the flow-control windows.
async fn send_all(stream: &mut h2::SendStream<Bytes>, mut body: Bytes, end: bool) {
    while !body.is_empty() {
        stream.reserve_capacity(body.len());
        let granted = std::future::poll_fn(|cx| stream.poll_capacity(cx))
            .await
            .expect("capacity")
            .unwrap();
        let chunk = body.split_to(granted.min(body.len()));
        stream.send_data(chunk, body.is_empty() && end).unwrap();
    }
}

#[tokio::test]
async fn a_request_and_its_body_go_through_and_the_response_comes_back() {
    let (io, echo, _conn) = serve();
    let mut send = client(io).await;
    let mut req = get("/a?b");
    *req.method_mut() = http::Method::POST;
    let (status, body, _) = exchange(&mut send, req, Some(Bytes::from("hello")), None).await;
    assert_eq!(status, 200);
    assert_eq!(body, "POST http://example.com/a?b hello");
    let (_, body, _) = exchange(&mut send, get("/again"), None, None).await;
    assert_eq!(body, "GET http://example.com/again ");
    assert_eq!(echo.seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_body_larger_than_every_window_goes_both_ways() {
    let (io, _, _conn) = serve();
    let mut send = client(io).await;
    let big = Bytes::from(vec![b'x'; 3 * 1024 * 1024]);
    let mut req = get("/big");
    *req.method_mut() = http::Method::PUT;
    let (status, body, _) = exchange(&mut send, req, Some(big.clone()), None).await;
    assert_eq!(status, 200);
    assert_eq!(body.len(), "PUT http://example.com/big ".len() + big.len());
    // The connection's windows were given back: another one goes through too.
    let mut req = get("/big");
    *req.method_mut() = http::Method::PUT;
    let (_, body, _) = exchange(&mut send, req, Some(big), None).await;
    assert_eq!(
        body.len(),
        "PUT http://example.com/big ".len() + 3 * 1024 * 1024
    );
}

#[tokio::test]
async fn trailers_go_both_ways() {
    let (io, _, _conn) = serve();
    let mut send = client(io).await;
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    let mut req = get("/rpc");
    *req.method_mut() = http::Method::POST;
    let (_, body, echoed) = exchange(&mut send, req, Some(Bytes::from("m")), Some(trailers)).await;
    assert_eq!(body, "POST http://example.com/rpc m");
    assert_eq!(echoed.expect("trailers")["grpc-status"], "0");
}

#[tokio::test]
async fn many_streams_at_once_each_get_their_own_answer() {
    let (io, _, _conn) = serve();
    let send = client(io).await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..50 {
        let mut send = send.clone();
        calls.spawn(async move {
            let mut req = get(&format!("/{i}"));
            *req.method_mut() = http::Method::POST;
            let (_, body, _) =
                exchange(&mut send, req, Some(Bytes::from(i.to_string())), None).await;
            assert_eq!(body, format!("POST http://example.com/{i} {i}"));
        });
    }
    while let Some(call) = calls.join_next().await {
        call.unwrap();
    }
}

#[tokio::test]
async fn a_graceful_shutdown_answers_the_request_in_flight_then_ends() {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let mut conn = Box::pin(Http2Server::new(server_io, Echo::default(), 8192));
    let mut send = client(client_io).await;
    // A request whose body is still coming is in flight when the shutdown begins.
    let mut req = get("/slow");
    *req.method_mut() = http::Method::POST;
    let (response, mut stream) = send.send_request(req, false).unwrap();
    let mut serving = tokio::spawn(async move {
        tokio::select! {
            result = &mut conn => result,
            () = tokio::time::sleep(Duration::ZERO) => {
                // One turn: the request is taken; then the shutdown.
                conn.as_mut().get_mut().graceful_shutdown();
                conn.await
            }
        }
    });
    stream.send_data(Bytes::from("done"), true).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("an answer in time")
        .expect("answered, not refused");
    let body = response.into_body().collect_all().await;
    assert_eq!(body, "POST http://example.com/slow done");
    let ended = tokio::time::timeout(Duration::from_secs(10), &mut serving).await;
    assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
}

/// Collects an h2 body.
trait CollectAll {
    async fn collect_all(self) -> String;
}

impl CollectAll for h2::RecvStream {
    async fn collect_all(mut self) -> String {
        let mut data = Vec::new();
        while let Some(chunk) = self.data().await {
            let chunk = chunk.unwrap();
            self.flow_control().release_capacity(chunk.len()).unwrap();
            data.extend_from_slice(&chunk);
        }
        String::from_utf8(data).unwrap()
    }
}

#[tokio::test]
async fn an_extended_connect_becomes_a_tunnel() {
    let (io, _, _conn) = serve();
    let (send, conn) = h2::client::Builder::new().handshake(io).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut send = send.ready().await.unwrap();
    // A first exchange: the server's SETTINGS came before its answer.
    let (status, _, _) = exchange(&mut send, get("/first"), None, None).await;
    assert_eq!(status, 200);
    assert!(send.is_extended_connect_protocol_enabled());
    let mut req = Request::connect("http://example.com/tunnel")
        .body(())
        .unwrap();
    req.extensions_mut()
        .insert(h2::ext::Protocol::from_static("echo"));
    let (response, mut stream) = send.send_request(req, false).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    stream.send_data(Bytes::from("ping"), false).unwrap();
    let echoed = response.into_body().collect_all().await;
    assert_eq!(echoed, "ping");
}

/// Raw frames, for what h2's client will not send.
mod raw {
    use super::*;

    pub fn preface() -> Vec<u8> {
        let mut out = frame::PREFACE.to_vec();
        frame::encode_settings(&mut out, &Settings::default());
        out
    }

    /// A request head for `path` as one HPACK block (literals, no indexing).
    pub fn head_block(path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut encoder = hpack::Encoder::new();
        let mut block = BytesMut::new();
        encoder.begin_block(&mut block);
        for (name, value) in [(":method", "POST"), (":scheme", "http"), (":path", path)]
            .iter()
            .chain(extra)
        {
            literal(&mut block, name, value);
        }
        block.to_vec()
    }

    /// A literal field without indexing, new name, no Huffman (RFC 7541 §6.2.2).
    fn literal(block: &mut BytesMut, name: &str, value: &str) {
        block.extend_from_slice(&[0x00, name.len() as u8]);
        block.extend_from_slice(name.as_bytes());
        block.extend_from_slice(&[value.len() as u8]);
        block.extend_from_slice(value.as_bytes());
    }

    /// Every frame the server sends until it closes, or `within` passes; as
    /// (type, flags, stream, payload).
    pub async fn frames_until_closed(
        io: &mut DuplexStream,
        within: Duration,
    ) -> Vec<(u8, u8, u32, Vec<u8>)> {
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(within, io.read_to_end(&mut buf)).await;
        let mut frames = Vec::new();
        let mut at = 0;
        while buf.len() >= at + 9 {
            let len = u32::from_be_bytes([0, buf[at], buf[at + 1], buf[at + 2]]) as usize;
            let stream = u32::from_be_bytes([buf[at + 5], buf[at + 6], buf[at + 7], buf[at + 8]]);
            let payload = buf.get(at + 9..at + 9 + len).unwrap_or_default().to_vec();
            frames.push((buf[at + 3], buf[at + 4], stream & 0x7fff_ffff, payload));
            at += 9 + len;
        }
        frames
    }

    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const GOAWAY: u8 = 0x7;

    /// The error code of the GOAWAY among `frames`.
    pub fn goaway_code(frames: &[(u8, u8, u32, Vec<u8>)]) -> Option<u32> {
        frames
            .iter()
            .find(|f| f.0 == GOAWAY)
            .map(|f| u32::from_be_bytes([f.3[4], f.3[5], f.3[6], f.3[7]]))
    }
}

#[tokio::test]
async fn a_continuation_flood_is_sent_away() {
    let (mut io, _, _conn) = serve();
    let mut out = raw::preface();
    let block = raw::head_block("/", &[]);
    frame::encode_header_block(&mut out, StreamId::new(1), true, &block[..1], 16_384);
    // Rewrite END_HEADERS off the HEADERS frame: CONTINUATIONs must follow.
    let at = out.len() - 1 - 9;
    out[at + 4] &= !0x4;
    for _ in 0..200 {
        out.extend_from_slice(&[0, 0, 0, 0x9, 0, 0, 0, 0, 1]);
    }
    io.write_all(&out).await.unwrap();
    let frames = raw::frames_until_closed(&mut io, Duration::from_secs(5)).await;
    assert_eq!(
        raw::goaway_code(&frames),
        Some(Reason::ENHANCE_YOUR_CALM.0),
        "{frames:?}"
    );
}

#[tokio::test]
async fn data_beyond_the_content_length_resets_the_stream() {
    let (mut io, echo, _conn) = serve();
    let mut out = raw::preface();
    let block = raw::head_block("/cl", &[("content-length", "3")]);
    frame::encode_header_block(&mut out, StreamId::new(1), false, &block, 16_384);
    frame::encode_data_head(&mut out, StreamId::new(1), 5, true);
    out.extend_from_slice(b"hello");
    io.write_all(&out).await.unwrap();
    io.shutdown().await.unwrap();
    let frames = raw::frames_until_closed(&mut io, Duration::from_secs(5)).await;
    let reset = frames
        .iter()
        .find(|f| f.0 == raw::RST_STREAM && f.2 == 1)
        .unwrap_or_else(|| panic!("no RST_STREAM: {frames:?}"));
    assert_eq!(reset.3, Reason::PROTOCOL_ERROR.0.to_be_bytes());
    // The stack's read of the body failed rather than taking a cut one for whole.
    let seen = echo.seen.lock().unwrap().clone();
    assert!(seen.iter().all(|s| !s.contains("hello")), "{seen:?}");
}

#[tokio::test]
async fn requests_cancelled_in_flight_again_and_again_are_sent_away() {
    let (io, _, conn) = serve();
    let send = client(io).await;
    for i in 0..(RESET_BUDGET + 10) {
        let Ok(mut ready) = send.clone().ready().await else {
            break;
        };
        let mut req = get(&format!("/{i}"));
        *req.method_mut() = http::Method::POST;
        // Its body never comes: the request stays in flight until dropped (RST_STREAM).
        let Ok((response, stream)) = ready.send_request(req, false) else {
            break;
        };
        tokio::task::yield_now().await;
        drop((response, stream));
    }
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "the connection did not end: {ended:?}"
    );
}

#[tokio::test]
async fn a_header_list_over_the_limit_is_answered_431() {
    let (mut io, echo, _conn) = serve();
    let mut out = raw::preface();
    // Values under 127 bytes: one-byte HPACK lengths. 100 of them exceed 8 KiB.
    let long = "v".repeat(100);
    let extra: Vec<(String, &str)> = (0..100)
        .map(|i| (format!("x-{i}"), long.as_str()))
        .collect();
    let extra: Vec<(&str, &str)> = extra.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let block = raw::head_block("/big-head", &extra);
    frame::encode_header_block(&mut out, StreamId::new(1), true, &block, 16_384);
    io.write_all(&out).await.unwrap();
    io.shutdown().await.unwrap();
    let frames = raw::frames_until_closed(&mut io, Duration::from_secs(5)).await;
    let head = frames
        .iter()
        .find(|f| f.0 == raw::HEADERS && f.2 == 1)
        .unwrap_or_else(|| panic!("no response: {frames:?}"));
    // `:status: 431` as a literal with the static name `:status` (index 8).
    let mut decoder = hpack::Decoder::new(4096, 65_536);
    let mut status = None;
    decoder
        .decode(&Bytes::from(head.3.clone()), |field| {
            if field.name.as_bytes() == b":status" {
                status = Some(field.value.clone());
            }
            Ok::<(), ()>(())
        })
        .unwrap();
    assert_eq!(status.as_deref(), Some(&b"431"[..]));
    assert_eq!(
        echo.seen.lock().unwrap().as_slice(),
        ["refused: header-too-large"]
    );
}

#[tokio::test]
async fn a_client_expecting_100_continue_is_answered_before_it_sends_its_body() {
    let (mut io, _, _conn) = serve();
    let mut out = raw::preface();
    let block = raw::head_block("/upload", &[("expect", "100-continue")]);
    frame::encode_header_block(&mut out, StreamId::new(1), false, &block, 16_384);
    io.write_all(&out).await.unwrap();
    // Only the head went out: the interim answer comes without any DATA.
    let mut got = Vec::new();
    let interim = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let mut buf = [0u8; 1024];
            let n = io.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the interim answer");
            got.extend_from_slice(&buf[..n]);
            if let Some(status) = first_status_on(&got, 1) {
                return status;
            }
        }
    })
    .await
    .expect("an interim answer before the body");
    assert_eq!(interim, "100");
}

/// The `:status` of the first HEADERS frame on `stream` in `bytes` (whole frames only).
fn first_status_on(bytes: &[u8], stream: u32) -> Option<String> {
    let mut at = 0;
    let mut decoder = hpack::Decoder::new(4096, 65_536);
    while bytes.len() >= at + 9 {
        let len = u32::from_be_bytes([0, bytes[at], bytes[at + 1], bytes[at + 2]]) as usize;
        let id = u32::from_be_bytes([bytes[at + 5], bytes[at + 6], bytes[at + 7], bytes[at + 8]]);
        let payload = bytes.get(at + 9..at + 9 + len)?;
        if bytes[at + 3] == raw::HEADERS && id == stream {
            let mut status = None;
            decoder
                .decode(&Bytes::copy_from_slice(payload), |field| {
                    if field.name.as_bytes() == b":status" {
                        status = Some(String::from_utf8_lossy(&field.value).into_owned());
                    }
                    Ok::<(), ()>(())
                })
                .ok()?;
            return status;
        }
        at += 9 + len;
    }
    None
}
