//! The HTTP/1 pool against a real upstream on 127.0.0.1: which connection each request
//! takes, counted by the upstream's accepts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use meshwork_config::model::Address;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::http1::Http1Pool;
use crate::http::RequestBody;

/// Bound of every wait in these tests.
const WAIT: Duration = Duration::from_secs(5);

/// What the upstream answers on each connection, request after request.
#[derive(Clone, Copy)]
enum Answer {
    /// `ok` with a `Content-Length`, keeping the connection open.
    Small,
    /// A 64 KiB body: more than one read, so a client can stop halfway.
    Large,
    /// `ok`, then the upstream closes the connection (without saying so).
    SmallThenClose,
    /// `ok` to a connection's first request; its second is read and the connection
    /// closed unanswered: an upstream closing an idle connection just as a request
    /// comes.
    CloseOnSecond,
}

/// A raw HTTP/1.1 upstream: counts accepted connections, and reports each connection
/// it saw closed by the client.
struct Upstream {
    address: Address,
    accepted: Arc<AtomicUsize>,
    closed: mpsc::UnboundedReceiver<()>,
}

async fn upstream(answer: Answer) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (closed_tx, closed) = mpsc::unbounded_channel();
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let closed_tx = closed_tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let mut served = 0;
                loop {
                    // One request head per answer (the tests send no bodies).
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => {
                                let _ = closed_tx.send(());
                                return;
                            }
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    served += 1;
                    if matches!(answer, Answer::CloseOnSecond) && served == 2 {
                        drop(socket);
                        let _ = closed_tx.send(());
                        return;
                    }
                    let response = match answer {
                        Answer::Small | Answer::SmallThenClose | Answer::CloseOnSecond => {
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec()
                        }
                        Answer::Large => {
                            let mut r =
                                b"HTTP/1.1 200 OK\r\ncontent-length: 65536\r\n\r\n".to_vec();
                            r.resize(r.len() + 65536, b'x');
                            r
                        }
                    };
                    if socket.write_all(&response).await.is_err() {
                        let _ = closed_tx.send(());
                        return;
                    }
                    if matches!(answer, Answer::SmallThenClose) {
                        let _ = socket.shutdown().await;
                        let _ = closed_tx.send(());
                        return;
                    }
                }
            });
        }
    });
    Upstream {
        address: Address {
            host: "127.0.0.1".into(),
            port,
        },
        accepted,
        closed,
    }
}

impl Upstream {
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    async fn wait_closed(&mut self) {
        tokio::time::timeout(WAIT, self.closed.recv())
            .await
            .expect("the upstream saw no connection close in time");
    }
}

fn pool(address: &Address, max_connections: u32, idle_timeout: Duration) -> Http1Pool {
    let (connector, gates) =
        crate::cluster::test_cluster::plain_connector(address, max_connections);
    Http1Pool::new(
        connector,
        gates.connections.clone(),
        idle_timeout,
        "upstream",
    )
}

fn get(address: &Address) -> http::Request<RequestBody> {
    http::Request::get(format!("http://{address}/"))
        .body(RequestBody::replay(Bytes::new(), None))
        .unwrap()
}

async fn read_all(rsp: http::Response<super::UpstreamBody>) -> Bytes {
    rsp.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn a_connection_whose_body_was_read_to_its_end_is_reused() {
    let up = upstream(Answer::Small).await;
    let pool = pool(&up.address, 10, Duration::from_secs(60));
    for _ in 0..3 {
        let rsp = pool.send(get(&up.address)).await.unwrap();
        assert_eq!(read_all(rsp).await, "ok");
    }
    assert_eq!(up.accepted(), 1, "three requests, one connection");
}

#[tokio::test]
async fn a_connection_whose_body_was_not_read_to_its_end_is_not_reused() {
    let mut up = upstream(Answer::Large).await;
    let pool = pool(&up.address, 10, Duration::from_secs(60));
    let mut rsp = pool.send(get(&up.address)).await.unwrap();
    let first = rsp.body_mut().frame().await.unwrap().unwrap();
    assert!(first.data_ref().is_some_and(|d| d.len() < 65536));
    drop(rsp);
    up.wait_closed().await;
    assert_eq!(pool.idle_count(), 0, "the cut connection was not kept");
    let rsp = pool.send(get(&up.address)).await.unwrap();
    assert_eq!(read_all(rsp).await.len(), 65536);
    assert_eq!(up.accepted(), 2);
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let mut up = upstream(Answer::Small).await;
    let pool = pool(&up.address, 10, Duration::from_millis(100));
    let rsp = pool.send(get(&up.address)).await.unwrap();
    read_all(rsp).await;
    // Closed by the reaper, with no request coming to notice it.
    up.wait_closed().await;
    assert_eq!(pool.idle_count(), 0);
    let rsp = pool.send(get(&up.address)).await.unwrap();
    read_all(rsp).await;
    assert_eq!(up.accepted(), 2);
}

#[tokio::test]
async fn a_connection_its_upstream_closed_while_idle_is_not_handed_out() {
    let mut up = upstream(Answer::SmallThenClose).await;
    let pool = pool(&up.address, 10, Duration::from_secs(60));
    let rsp = pool.send(get(&up.address)).await.unwrap();
    read_all(rsp).await;
    up.wait_closed().await;
    assert_eq!(pool.idle_count(), 1, "kept: the response allowed it");
    // The connection's task notices the close on its own; wait for it, bounded.
    tokio::time::timeout(WAIT, async {
        while !pool.idle_closed() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the pool did not notice the close");
    let rsp = pool.send(get(&up.address)).await.unwrap();
    assert_eq!(read_all(rsp).await, "ok");
    assert_eq!(up.accepted(), 2, "the closed connection was skipped");
}

#[tokio::test]
async fn at_max_connections_a_request_waits_for_the_connection_another_one_finishes_with() {
    let up = upstream(Answer::Large).await;
    let pool = Arc::new(pool(&up.address, 1, Duration::from_secs(60)));
    let mut first = pool.send(get(&up.address)).await.unwrap();
    let second = tokio::spawn({
        let pool = pool.clone();
        let request = get(&up.address);
        async move { read_all(pool.send(request).await.unwrap()).await.len() }
    });
    // Reading the first body to its end hands its connection to the waiting request.
    let mut read = 0;
    while let Some(frame) = first.body_mut().frame().await {
        read += frame.unwrap().into_data().map_or(0, |d| d.len());
    }
    drop(first);
    assert_eq!(read, 65536);
    let second = tokio::time::timeout(WAIT, second)
        .await
        .expect("the waiting request got no connection")
        .unwrap();
    assert_eq!(second, 65536);
    assert_eq!(up.accepted(), 1);
}

#[tokio::test]
async fn at_max_connections_a_request_gets_overflow_after_the_connect_timeout() {
    let up = upstream(Answer::Large).await;
    let pool = pool(&up.address, 1, Duration::from_secs(60));
    let _held = pool.send(get(&up.address)).await.unwrap();
    tokio::time::pause();
    let error = pool.send(get(&up.address)).await.unwrap_err();
    assert!(
        matches!(
            error,
            super::SendError::Connect(crate::cluster::connector::ConnectError::Overflow)
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_get_its_reused_connection_closed_unanswered_goes_to_a_new_one() {
    let mut up = upstream(Answer::CloseOnSecond).await;
    let pool = pool(&up.address, 10, Duration::from_secs(60));
    let rsp = pool.send(get(&up.address)).await.unwrap();
    assert_eq!(read_all(rsp).await, "ok");
    let rsp = pool.send(get(&up.address)).await.unwrap();
    assert_eq!(read_all(rsp).await, "ok", "sent again on a new connection");
    up.wait_closed().await;
    assert_eq!(up.accepted(), 2);
}

#[tokio::test]
async fn a_post_its_reused_connection_closed_unanswered_is_not_sent_again() {
    let up = upstream(Answer::CloseOnSecond).await;
    let pool = pool(&up.address, 10, Duration::from_secs(60));
    let rsp = pool.send(get(&up.address)).await.unwrap();
    read_all(rsp).await;
    let post = http::Request::post(format!("http://{}/", up.address))
        .body(RequestBody::replay(Bytes::new(), None))
        .unwrap();
    let error = pool.send(post).await.unwrap_err();
    assert!(
        matches!(error, super::SendError::Exchange(_)),
        "the upstream may have acted on it: {error:?}"
    );
    assert_eq!(up.accepted(), 1);
}
