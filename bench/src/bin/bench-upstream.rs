//! `bench-upstream`: the one upstream every target forwards to (and the direct runs hit).
//!
//! HTTP/1.1 with keep-alive and HTTP/2 prior knowledge (h2c) on one port, on a single
//! thread. `GET /` answers 128 bytes; `GET /bytes/N` answers N bytes, streamed in 1 MiB
//! chunks cut from one shared buffer, so even 100 MiB costs no allocation. It prints
//! `listening ADDRESS` on stdout once it accepts connections.
//!
//! `--status CODE` answers every request with that status (a failing endpoint for the
//! failover scenario). `GET /__bench/requests` answers how many other requests it has
//! served, so the harness can see the load the proxies sent it.
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// The body size of `GET /`, the small-response scenarios.
const SMALL_BODY_BYTES: usize = 128;
/// Large bodies are sent in chunks of this size.
const CHUNK_BYTES: usize = 1024 * 1024;

/// `length` bytes made of clones of one chunk.
#[derive(Debug)]
struct RepeatBody {
    chunk: Bytes,
    remaining: u64,
}

impl Body for RepeatBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(self.chunk.len() as u64);
        self.remaining -= n;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n as usize)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Where the harness reads the request count.
const COUNT_PATH: &str = "/__bench/requests";

/// Requests served, not counting the count queries.
static SERVED: AtomicU64 = AtomicU64::new(0);

/// The body length a path asks for: `/bytes/N` -> N, anything else -> 128.
fn body_length(path: &str) -> u64 {
    path.strip_prefix("/bytes/")
        .and_then(|n| n.parse().ok())
        .unwrap_or(SMALL_BODY_BYTES as u64)
}

/// The value after `flag` on the command line.
fn arg(flag: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != flag).nth(1)
}

fn main() -> std::io::Result<()> {
    let listen = arg("--listen").unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let status = match arg("--status").map(|s| http::StatusCode::from_bytes(s.as_bytes())) {
        None => http::StatusCode::OK,
        Some(Ok(status)) => status,
        Some(Err(e)) => {
            eprintln!("bench-upstream: --status: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(&listen, status))
}

async fn serve(listen: &str, status: http::StatusCode) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    println!("listening {}", listener.local_addr()?);
    let chunk = Bytes::from(vec![b'x'; CHUNK_BYTES]);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().keep_alive(true);
    builder.http2().max_concurrent_streams(1024);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors or similar: keep serving the connections we have.
            Err(_) => continue,
        };
        let _ = stream.set_nodelay(true);
        let chunk = chunk.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let path = req.uri().path();
                let rsp = if path == COUNT_PATH {
                    let count = Bytes::from(SERVED.load(Ordering::Relaxed).to_string());
                    Response::new(RepeatBody {
                        remaining: count.len() as u64,
                        chunk: count,
                    })
                } else {
                    SERVED.fetch_add(1, Ordering::Relaxed);
                    let mut rsp = Response::new(RepeatBody {
                        chunk: chunk.clone(),
                        remaining: body_length(path),
                    });
                    *rsp.status_mut() = status;
                    rsp
                };
                async move { Ok::<_, Infallible>(rsp) }
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_choose_the_body_length() {
        assert_eq!(body_length("/"), 128);
        assert_eq!(body_length("/bytes/1048576"), 1_048_576);
        assert_eq!(body_length("/bytes/oops"), 128);
    }
}
