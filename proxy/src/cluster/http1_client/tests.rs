//! An [`Http1Connection`] against a scripted upstream on 127.0.0.1: the bytes it writes,
//! the responses it reads, and whether the connection may carry another request.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use meshwork_config::model::Address;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{BodyLength, ExchangeError, Http1Connection};
use crate::cluster::limits::ClusterGates;
use crate::http::RequestBody;

/// Bound of every wait in these tests.
const WAIT: Duration = Duration::from_secs(5);

/// A connection to a fresh listener, and the upstream's side of it.
async fn connected() -> (Box<Http1Connection>, TcpStream, ClusterGates) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = Address {
        host: "127.0.0.1".into(),
        port: listener.local_addr().unwrap().port(),
    };
    let (connector, gates) = crate::cluster::test_cluster::plain_connector(&address, 10);
    let slot = gates.connections.take().expect("a free slot");
    let (io, accepted) = tokio::join!(connector.open_counted(slot), listener.accept());
    (
        Http1Connection::new(io.unwrap()),
        accepted.unwrap().0,
        gates,
    )
}

/// A request to start an exchange with: its method, target, headers, body and length.
struct Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Option<RequestBody>,
    length: BodyLength,
}

fn request(method: Method, body: &[u8]) -> Request {
    let body = Bytes::copy_from_slice(body);
    let mut headers = HeaderMap::new();
    headers.insert(http::header::HOST, HeaderValue::from_static("up"));
    let length = if body.is_empty() {
        BodyLength::Empty
    } else {
        BodyLength::Known(body.len() as u64)
    };
    Request {
        method,
        uri: Uri::from_static("http://up/x"),
        headers,
        body: (!body.is_empty()).then(|| RequestBody::replay(body, None)),
        length,
    }
}

impl Request {
    async fn send(
        &mut self,
        conn: &mut Http1Connection,
    ) -> Result<http::Response<()>, ExchangeError> {
        conn.begin(
            &self.method,
            &self.uri,
            &mut self.headers,
            self.length,
            self.body.take(),
        );
        tokio::time::timeout(WAIT, conn.response_head(&self.method))
            .await
            .expect("a response head in time")
    }

    /// The response body read to its end.
    async fn body(&mut self, conn: &mut Http1Connection) -> Result<Vec<u8>, ExchangeError> {
        let mut data = Vec::new();
        let read = async {
            loop {
                let frame = std::future::poll_fn(|cx| conn.poll_body(cx)).await;
                match frame {
                    None => return Ok(data),
                    Some(Err(error)) => return Err(error),
                    Some(Ok(frame)) => {
                        if let Some(d) = frame.data_ref() {
                            data.extend_from_slice(d);
                        }
                    }
                }
            }
        };
        tokio::time::timeout(WAIT, read)
            .await
            .expect("the body in time")
    }
}

/// The upstream's side: reads the request head, answers `response` and closes.
async fn answer_and_close(mut server: TcpStream, response: &[u8]) {
    let head = receive(&mut server, 1).await;
    assert!(head.ends_with(b"\r\n\r\n"), "{head:?}");
    server.write_all(response).await.unwrap();
}

/// Reads from the upstream's side until `len` bytes came (or the client closed).
async fn receive(server: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while got.len() < len {
        let n = tokio::time::timeout(WAIT, server.read(&mut chunk))
            .await
            .expect("bytes from the client in time")
            .unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
    }
    got
}

#[tokio::test]
async fn a_body_framed_by_its_length_follows_the_head_and_the_connection_is_kept() {
    let (mut conn, mut server, _gates) = connected().await;
    let mut req = request(Method::POST, b"hello");
    let expected = b"POST /x HTTP/1.1\r\nhost: up\r\ncontent-length: 5\r\n\r\nhello";
    let upstream = async {
        let got = receive(&mut server, expected.len()).await;
        server
            .write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok")
            .await
            .unwrap();
        got
    };
    let (rsp, got) = tokio::join!(req.send(&mut conn), upstream);
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
    assert_eq!(rsp.unwrap().status(), StatusCode::CREATED);
    assert_eq!(req.body(&mut conn).await.unwrap(), b"ok");
    assert!(conn.finish(), "a clean exchange keeps the connection");
    assert!(conn.is_open());
}

#[tokio::test]
async fn informational_answers_are_skipped_for_the_final_one() {
    let (mut conn, mut server, _gates) = connected().await;
    let mut req = request(Method::GET, b"");
    server
        .write_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        .await
        .unwrap();
    assert_eq!(req.send(&mut conn).await.unwrap().status(), StatusCode::OK);
    assert_eq!(req.body(&mut conn).await.unwrap(), b"ok");
    assert!(conn.finish());
}

#[tokio::test]
async fn an_answer_before_the_body_was_read_comes_and_the_connection_is_not_kept() {
    let (mut conn, mut server, _gates) = connected().await;
    // More than the sockets' buffers hold: the writing blocks while the upstream, which
    // reads only the head, answers.
    let mut req = request(Method::PUT, &vec![b'x'; 8 << 20]);
    let upstream = async {
        let head = receive(&mut server, 1).await;
        assert!(head.starts_with(b"PUT /x HTTP/1.1\r\n"));
        server
            .write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
    };
    let (rsp, ()) = tokio::join!(req.send(&mut conn), upstream);
    assert_eq!(rsp.unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(conn.response_complete());
    assert!(
        !conn.finish(),
        "the request was not all written: the connection goes"
    );
}

#[tokio::test]
async fn a_body_read_until_close_ends_with_the_connection() {
    let (mut conn, server, _gates) = connected().await;
    let mut req = request(Method::GET, b"");
    let (rsp, ()) = tokio::join!(
        req.send(&mut conn),
        answer_and_close(server, b"HTTP/1.1 200 OK\r\n\r\nabc")
    );
    assert_eq!(rsp.unwrap().status(), StatusCode::OK);
    assert_eq!(req.body(&mut conn).await.unwrap(), b"abc");
    assert!(!conn.finish());
}

#[tokio::test]
async fn a_body_cut_short_is_an_error() {
    let (mut conn, server, _gates) = connected().await;
    let mut req = request(Method::GET, b"");
    let (rsp, ()) = tokio::join!(
        req.send(&mut conn),
        answer_and_close(server, b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
    );
    rsp.unwrap();
    assert!(matches!(
        req.body(&mut conn).await,
        Err(ExchangeError::ClosedMidBody)
    ));
    assert!(!conn.finish());
}

#[tokio::test]
async fn a_head_answer_has_no_body_whatever_its_length_says() {
    let (mut conn, mut server, _gates) = connected().await;
    let mut req = request(Method::HEAD, b"");
    server
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
        .await
        .unwrap();
    let rsp = req.send(&mut conn).await.unwrap();
    assert_eq!(rsp.headers()["content-length"], "100");
    assert!(conn.response_complete());
    assert!(conn.finish());
}

#[tokio::test]
async fn bytes_after_the_response_make_the_connection_unfit() {
    let (mut conn, mut server, _gates) = connected().await;
    let mut req = request(Method::GET, b"");
    server
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n")
        .await
        .unwrap();
    req.send(&mut conn).await.unwrap();
    assert_eq!(req.body(&mut conn).await.unwrap(), b"ok");
    assert!(
        !conn.finish(),
        "what followed the response was never asked for"
    );
}

#[tokio::test]
async fn an_idle_connection_the_upstream_wrote_to_or_closed_is_not_open() {
    for close in [false, true] {
        let (mut conn, mut server, _gates) = connected().await;
        assert!(conn.is_open());
        if close {
            drop(server);
        } else {
            server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        }
        // The socket's event reaches the runtime's driver between turns.
        tokio::time::timeout(WAIT, async {
            while conn.is_open() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the connection was seen closed or written to");
    }
}

#[tokio::test]
async fn a_chunked_body_ends_with_the_trailer_fields_it_declared() {
    let (mut conn, mut server, _gates) = connected().await;
    let mut trailers = HeaderMap::new();
    trailers.insert("x-sum", HeaderValue::from_static("42"));
    trailers.insert("x-undeclared", HeaderValue::from_static("1"));
    let mut req = request(Method::POST, b"");
    req.headers.insert(
        http::header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    req.headers
        .insert(http::header::TRAILER, HeaderValue::from_static("x-sum"));
    req.body = Some(RequestBody::replay(
        Bytes::from_static(b"hello"),
        Some(trailers),
    ));
    req.length = BodyLength::Unknown;
    let expected = "POST /x HTTP/1.1\r\nhost: up\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n5\r\nhello\r\n0\r\nx-sum: 42\r\n\r\n";
    let upstream = async {
        let got = receive(&mut server, expected.len()).await;
        server
            .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await
            .unwrap();
        got
    };
    let (rsp, got) = tokio::join!(req.send(&mut conn), upstream);
    assert_eq!(String::from_utf8_lossy(&got), expected);
    assert_eq!(rsp.unwrap().status(), StatusCode::NO_CONTENT);
    assert!(conn.finish());
}
