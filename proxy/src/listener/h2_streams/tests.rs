//! A real hyper HTTP/2 server connection with its streams polled in its task, and a
//! hyper client on the other end of an in-memory pipe.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::{Barrier, Notify, mpsc, oneshot};

use super::*;

const BOUND: Duration = Duration::from_secs(10);

type Answer = Pin<Box<dyn Future<Output = http::Response<Full<Bytes>>> + Send>>;

/// Serves one connection in a task of its own, with `answer` for each request; a
/// graceful shutdown starts when `shutdown` fires. Returns the client's sender and the
/// server's task (its connection's result).
async fn start(
    answer: impl Fn(http::Request<Incoming>) -> Answer + Send + Sync + 'static,
    shutdown: oneshot::Receiver<()>,
) -> (
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
) {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let answer = Arc::new(answer);
    let service = hyper::service::service_fn(move |req| {
        let rsp = answer(req);
        async move { Ok::<_, Infallible>(rsp.await) }
    });
    let server = tokio::spawn(async move {
        let conn = serve(|exec| {
            hyper::server::conn::http2::Builder::new(exec)
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(server_io), service)
        });
        let mut conn = std::pin::pin!(conn);
        tokio::select! {
            ended = conn.as_mut() => return ended,
            _ = shutdown => {}
        }
        conn.as_mut().graceful_shutdown();
        conn.await
    });
    let (sender, client) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(client_io))
            .await
            .unwrap();
    tokio::spawn(client);
    (sender, server)
}

fn get(path: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(format!("http://test{path}"))
        .body(Full::default())
        .unwrap()
}

fn ok(body: String) -> http::Response<Full<Bytes>> {
    http::Response::new(Full::new(Bytes::from(body)))
}

/// Sends `req` and reads the whole response: its status and body.
async fn fetch(
    mut sender: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    req: http::Request<Full<Bytes>>,
) -> Result<(http::StatusCode, Bytes), hyper::Error> {
    let rsp = sender.send_request(req).await?;
    let status = rsp.status();
    let body = rsp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Every stream waits for all the others before it answers: the connection's task must
/// drive them all at once, and answer each.
#[tokio::test]
async fn concurrent_streams_on_one_connection_are_all_answered() {
    const STREAMS: usize = 64;
    let barrier = Arc::new(Barrier::new(STREAMS));
    let (_shutdown, shutdown_rx) = oneshot::channel();
    let (sender, _server) = start(
        move |req| {
            let barrier = barrier.clone();
            Box::pin(async move {
                barrier.wait().await;
                ok(req.uri().path().to_owned())
            })
        },
        shutdown_rx,
    )
    .await;
    let requests = (0..STREAMS).map(|i| fetch(sender.clone(), get(&format!("/{i}"))));
    let answers = tokio::time::timeout(BOUND, join_all(requests))
        .await
        .expect("all streams answered");
    for (i, answer) in answers.into_iter().enumerate() {
        let (status, body) = answer.unwrap();
        assert_eq!(status, http::StatusCode::OK);
        assert_eq!(body, format!("/{i}"));
    }
}

/// A graceful shutdown (a drain) while streams are in flight: they all finish, and then
/// the connection ends.
#[tokio::test]
async fn a_graceful_shutdown_lets_the_streams_in_flight_finish() {
    const STREAMS: usize = 8;
    let release = Arc::new(Notify::new());
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
    let (shutdown, shutdown_rx) = oneshot::channel();
    let answers_release = release.clone();
    let (sender, server) = start(
        move |req| {
            let release = answers_release.clone();
            let arrived = arrived_tx.clone();
            Box::pin(async move {
                let released = release.notified();
                let _ = arrived.send(());
                released.await;
                ok(req.uri().path().to_owned())
            })
        },
        shutdown_rx,
    )
    .await;
    let requests = tokio::spawn(join_all(
        (0..STREAMS).map(|i| fetch(sender.clone(), get(&format!("/{i}")))),
    ));
    for _ in 0..STREAMS {
        tokio::time::timeout(BOUND, arrived.recv())
            .await
            .expect("every request reached its stream")
            .unwrap();
    }
    shutdown.send(()).unwrap();
    // The streams are still waiting: the connection must not end under them.
    assert!(!server.is_finished());
    release.notify_waiters();
    let answers = tokio::time::timeout(BOUND, requests)
        .await
        .expect("the streams in flight finished")
        .unwrap();
    for (i, answer) in answers.into_iter().enumerate() {
        let (status, body) = answer.expect("answered despite the shutdown");
        assert_eq!(status, http::StatusCode::OK);
        assert_eq!(body, format!("/{i}"));
    }
    // (Its result may be the client's closing first, once answered and told to go.)
    tokio::time::timeout(BOUND, server)
        .await
        .expect("the connection ended after its streams")
        .unwrap()
        .ok();
}

/// A stream that panics is reset; the connection and its other streams, in flight or
/// new, go on, as they would had the stream a task of its own.
#[tokio::test]
async fn a_panicking_stream_is_reset_alone() {
    let release = Arc::new(Notify::new());
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
    let (_shutdown, shutdown_rx) = oneshot::channel();
    let answers_release = release.clone();
    let (sender, server) = start(
        move |req| {
            let release = answers_release.clone();
            let arrived = arrived_tx.clone();
            Box::pin(async move {
                match req.uri().path() {
                    "/panic" => panic!("a stream's service panics (expected by this test)"),
                    "/wait" => {
                        let released = release.notified();
                        let _ = arrived.send(());
                        released.await;
                    }
                    _ => {}
                }
                ok(req.uri().path().to_owned())
            })
        },
        shutdown_rx,
    )
    .await;
    let waiting = tokio::spawn(fetch(sender.clone(), get("/wait")));
    tokio::time::timeout(BOUND, arrived.recv())
        .await
        .expect("the waiting request reached its stream")
        .unwrap();
    let panicked = tokio::time::timeout(BOUND, fetch(sender.clone(), get("/panic")))
        .await
        .expect("the panicking stream was answered (reset)");
    assert!(panicked.is_err(), "reset: {panicked:?}");
    release.notify_waiters();
    let (status, body) = tokio::time::timeout(BOUND, waiting)
        .await
        .expect("the stream in flight finished")
        .unwrap()
        .unwrap();
    assert_eq!((status, &body[..]), (http::StatusCode::OK, &b"/wait"[..]));
    let (status, body) = tokio::time::timeout(BOUND, fetch(sender, get("/after")))
        .await
        .expect("a new stream answered")
        .unwrap();
    assert_eq!((status, &body[..]), (http::StatusCode::OK, &b"/after"[..]));
    assert!(!server.is_finished(), "the connection is still served");
}
