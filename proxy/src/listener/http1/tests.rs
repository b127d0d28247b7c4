//! The server connection against a scripted service, over an in-memory pipe.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

/// Answers every request with what it read of it: method, target and body (or the body
/// error), as `200` with a known length; `/stream` answers chunked, `/ws` switches
/// protocols and echoes what the tunnel carries.
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
            if request.uri().path() == "/ws" {
                let upgrade = request.extensions_mut().remove::<ClientUpgrade>().unwrap();
                tokio::spawn(async move {
                    let mut io = upgrade.into_io().await.unwrap();
                    let mut buf = [0u8; 64];
                    let n = io.read(&mut buf).await.unwrap();
                    io.write_all(&buf[..n]).await.unwrap();
                });
                let mut rsp = http::Response::new(Full::new(Bytes::new()).boxed_unsync());
                *rsp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                rsp.headers_mut().insert("upgrade", "echo".parse().unwrap());
                rsp.headers_mut()
                    .insert("connection", "upgrade".parse().unwrap());
                return Ok(rsp);
            }
            let body = match request.into_body().collect().await {
                Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
                Err(error) => format!("error: {error}"),
            };
            let text = Bytes::from(format!("{line} {body}"));
            let body = if line.ends_with("/stream") {
                let stream = futures_util::stream::iter([
                    Ok::<_, Infallible>(Frame::data(text)),
                    Ok(Frame::data(Bytes::from_static(b"!"))),
                ]);
                http_body_util::StreamBody::new(stream).boxed_unsync()
            } else {
                Full::new(text).boxed_unsync()
            };
            Ok(http::Response::new(body))
        })
    }
}

/// A connection served in a task of its own; the client's end of the pipe.
fn serve() -> (DuplexStream, Echo, tokio::task::JoinHandle<io::Result<()>>) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let echo = Echo::default();
    let conn = Http1Server::new(server, echo.clone(), 8192);
    (client, echo, tokio::spawn(conn))
}

/// Reads until `ends` has come `count` times, or the end.
async fn read_until(client: &mut DuplexStream, ends: &str, count: usize) -> String {
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while text.matches(ends).count() < count {
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
            .await
            .expect("a response in time")
            .unwrap();
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    text
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let (mut client, echo, _conn) = serve();
    client
        .write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /c HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // The last response's body ends the bytes.
    let text = read_until(&mut client, "GET /c ", 1).await;
    let a = text.find("GET /a ").unwrap();
    let b = text.find("POST /b abc").unwrap();
    let c = text.find("GET /c ").unwrap();
    assert!(a < b && b < c, "{text}");
    assert_eq!(echo.seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_chunked_body_is_read_and_a_chunked_response_written() {
    let (mut client, _, _conn) = serve();
    client
        .write_all(b"POST /stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nx-t: 1\r\n\r\n")
        .await
        .unwrap();
    let text = read_until(&mut client, "0\r\n\r\n", 1).await;
    assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
    assert!(
        text.contains("POST /stream abcde\r\n1\r\n!\r\n0\r\n\r\n"),
        "{text}"
    );
}

#[tokio::test]
async fn a_broken_chunk_fails_the_body_and_closes_the_connection() {
    let (mut client, _, conn) = serve();
    client
        .write_all(b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        .await
        .unwrap();
    let text = read_until(&mut client, "\r\n\r\n", 1).await;
    let text = text + &read_until(&mut client, "never", 1).await;
    assert!(text.contains("connection: close"), "{text}");
    assert!(text.contains("error: malformed request body"), "{text}");
    conn.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_client_expecting_100_continue_gets_it_before_sending_its_body() {
    let (mut client, _, _conn) = serve();
    client
        .write_all(
            b"PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    let text = read_until(&mut client, "100 Continue\r\n\r\n", 1).await;
    assert_eq!(text, "HTTP/1.1 100 Continue\r\n\r\n");
    client.write_all(b"ok").await.unwrap();
    let text = read_until(&mut client, "PUT /a ok", 1).await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
}

#[tokio::test]
async fn a_refused_head_is_answered_and_the_connection_closed() {
    let (mut client, echo, conn) = serve();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n")
        .await
        .unwrap();
    let text = read_until(&mut client, "never", 1).await;
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(
        text.contains("x-meshwork-error: malformed-request"),
        "{text}"
    );
    conn.await.unwrap().unwrap();
    assert_eq!(*echo.seen.lock().unwrap(), ["refused: malformed-request"]);
}

#[tokio::test]
async fn an_http10_client_gets_its_connection_closed_unless_it_asks_to_keep_it() {
    let (mut client, _, conn) = serve();
    client.write_all(b"GET /a HTTP/1.0\r\n\r\n").await.unwrap();
    let text = read_until(&mut client, "never", 1).await;
    assert!(text.contains("connection: close\r\n"), "{text}");
    conn.await.unwrap().unwrap();

    let (mut client, _, _conn) = serve();
    client
        .write_all(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let text = read_until(&mut client, "never", 1).await;
    assert!(text.contains("connection: keep-alive\r\n"), "{text}");
    assert!(text.contains("GET /b "), "{text}");
}

#[tokio::test]
async fn a_switch_hands_the_connection_and_early_bytes_to_the_tunnel() {
    let (mut client, _, conn) = serve();
    client
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\nping",
        )
        .await
        .unwrap();
    let text = read_until(&mut client, "ping", 1).await;
    assert!(
        text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\nping"), "{text}");
    conn.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_graceful_shutdown_ends_an_idle_connection_and_closes_a_busy_one_after_its_response() {
    let (client, server) = tokio::io::duplex(4096);
    let conn = Http1Server::new(server, Echo::default(), 8192);
    let mut conn = std::pin::pin!(conn);
    assert!(futures_util::poll!(conn.as_mut()).is_pending());
    conn.as_mut().get_mut().graceful_shutdown();
    assert!(matches!(
        futures_util::poll!(conn.as_mut()),
        Poll::Ready(Ok(()))
    ));
    drop(client);

    let (mut client, server) = tokio::io::duplex(4096);
    let mut conn = Box::pin(Http1Server::new(server, Echo::default(), 8192));
    client
        .write_all(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n")
        .await
        .unwrap();
    assert!(futures_util::poll!(conn.as_mut()).is_pending());
    conn.as_mut().get_mut().graceful_shutdown();
    let task = tokio::spawn(conn);
    client.write_all(b"hi").await.unwrap();
    let text = read_until(&mut client, "never", 1).await;
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert!(text.ends_with("POST /a hi"), "{text}");
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_client_leaving_while_its_request_waits_ends_the_connection() {
    let (client, server) = tokio::io::duplex(4096);
    let pending = Pending;
    let conn = tokio::spawn(Http1Server::new(server, pending, 8192));
    let mut client = client;
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    client.shutdown().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the connection ends when its client leaves")
        .unwrap()
        .unwrap();
}

/// A service that never answers.
struct Pending;

impl Http1Service for Pending {
    type Body = EchoBody;
    type Future =
        Pin<Box<dyn Future<Output = Result<http::Response<EchoBody>, Infallible>> + Send>>;

    fn serve(&self, _: http::Request<ClientBody>) -> Self::Future {
        Box::pin(std::future::pending())
    }

    fn refused(&self, _: ProxyError) {}
}

#[tokio::test]
async fn a_head_trickled_byte_by_byte_is_served_once_whole() {
    let (mut client, echo, _conn) = serve();
    for byte in b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" {
        client.write_all(&[*byte]).await.unwrap();
        tokio::task::yield_now().await;
    }
    let text = read_until(&mut client, "GET /slow ", 1).await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert_eq!(*echo.seen.lock().unwrap(), ["GET /slow"]);
}
