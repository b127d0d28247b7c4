//! What an upstream does with a request on a given path.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;

use super::echo::Echo;
use crate::body::{BoxError, GeneratedBody, RequestBody, empty, full, verify_pattern};

/// One behaviour of an upstream.
#[derive(Clone, Debug)]
pub enum Handler {
    /// 200 with this text body.
    Text(String),
    /// 200 with the request echoed as JSON ([`Echo`]).
    Echo,
    /// 200 streaming the request body back as it arrives.
    EchoBody,
    /// Reads the request body, checking it against the generated pattern, and answers
    /// `{"bytes": N, "first_mismatch": null|offset}`.
    CountBody,
    /// An empty response with this status.
    Status(u16),
    /// Waits, then 200 with body `slow`.
    Slow(Duration),
    /// Bimodal latency, deterministic: request `n` (counted from 1 by `seen` across
    /// clones) with `n % every == phase` waits `slow` and gets 200 `slow`; the others get
    /// 200 `fast` at once.
    Bimodal {
        every: u64,
        phase: u64,
        slow: Duration,
        seen: Arc<std::sync::atomic::AtomicU64>,
    },
    /// 200 with this many bytes of the pattern, generated as they are sent, chunked.
    Large(u64),
    /// 200 with body `with-trailers`, then trailers `x-checksum: 5d41402a` and
    /// `grpc-status: 0` (HTTP/2, or HTTP/1 chunked when the client accepts trailers).
    Trailers,
    /// Drops the connection (HTTP/1) or resets the stream (HTTP/2) before answering.
    ResetBeforeHeaders,
    /// Sends the head announcing 1 MiB and 64 KiB of it, then aborts.
    ResetMidBody,
    /// The first `failures` requests get `status` (with `Retry-After: retry_after` when
    /// set); later ones get 200 `recovered` (`recovered:BODY` when the request had a
    /// body). `seen` counts requests across clones.
    FailFirst {
        failures: u64,
        status: u16,
        retry_after: Option<u64>,
        seen: Arc<std::sync::atomic::AtomicU64>,
    },
}

/// Length announced by [`Handler::ResetMidBody`].
pub const RESET_MID_BODY_ANNOUNCED: u64 = 1024 * 1024;

/// Trailers sent by [`Handler::Trailers`].
pub fn trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("5d41402a"));
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers
}

/// Failure that makes hyper drop the connection or reset the stream.
#[derive(Debug)]
pub struct DeliberateReset;

impl std::fmt::Display for DeliberateReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deliberate reset by the test upstream")
    }
}

impl std::error::Error for DeliberateReset {}

impl Handler {
    /// Answers `req` as upstream `name`.
    ///
    /// # Errors
    /// [`DeliberateReset`] for [`Handler::ResetBeforeHeaders`].
    pub async fn respond(
        &self,
        name: &Arc<str>,
        req: Request<Incoming>,
    ) -> Result<Response<RequestBody>, DeliberateReset> {
        let response = match self {
            Handler::Text(text) => ok(full(text.clone())),
            Handler::Echo => {
                let echo = Echo::of(name, &req);
                // Read (and drop) the body so keep-alive works for bodies too.
                let _ = req.into_body().collect().await;
                let mut response = ok(full(serde_json::to_vec(&echo).expect("echo serializes")));
                response
                    .headers_mut()
                    .insert("content-type", HeaderValue::from_static("application/json"));
                response
            }
            Handler::EchoBody => {
                let body = req.into_body().map_err(|e| -> BoxError { Box::new(e) });
                ok(body.boxed())
            }
            Handler::CountBody => {
                let text = match verify_pattern(req.into_body()).await {
                    Ok(check) => serde_json::json!({
                        "bytes": check.bytes,
                        "first_mismatch": check.first_mismatch,
                    }),
                    Err((check, e)) => serde_json::json!({
                        "bytes": check.bytes,
                        "first_mismatch": check.first_mismatch,
                        "error": e.to_string(),
                    }),
                };
                ok(full(text.to_string()))
            }
            Handler::Status(code) => {
                let mut response = Response::new(empty());
                *response.status_mut() = StatusCode::from_u16(*code).expect("a valid status");
                response
            }
            Handler::Slow(delay) => {
                tokio::time::sleep(*delay).await;
                ok(full("slow"))
            }
            Handler::Bimodal {
                every,
                phase,
                slow,
                seen,
            } => {
                let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                if n % every == *phase {
                    tokio::time::sleep(*slow).await;
                    ok(full("slow"))
                } else {
                    ok(full("fast"))
                }
            }
            Handler::Large(len) => ok(GeneratedBody::chunked(*len).boxed()),
            Handler::Trailers => {
                let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
                    Ok(Frame::data(Bytes::from_static(b"with-trailers"))),
                    Ok(Frame::trailers(trailers())),
                ];
                let body = StreamBody::new(futures_util::stream::iter(frames));
                ok(body.map_err(|never| match never {}).boxed())
            }
            Handler::ResetBeforeHeaders => return Err(DeliberateReset),
            Handler::FailFirst {
                failures,
                status,
                retry_after,
                seen,
            } => {
                let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n < *failures {
                    let mut response = Response::new(empty());
                    *response.status_mut() = StatusCode::from_u16(*status).expect("a valid status");
                    if let Some(secs) = retry_after {
                        response
                            .headers_mut()
                            .insert("retry-after", HeaderValue::from(*secs));
                    }
                    response
                } else {
                    // Echo the body: a replayed request must carry all of it again.
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let mut text = b"recovered".to_vec();
                    if !body.is_empty() {
                        text.push(b':');
                        text.extend_from_slice(&body);
                    }
                    ok(full(Bytes::from(text)))
                }
            }
            Handler::ResetMidBody => {
                // The pause lets the head and the first bytes reach the proxy before
                // the failure tears the connection or stream down.
                let frames = futures_util::stream::unfold(0u8, |step| async move {
                    let frame: Result<Frame<Bytes>, BoxError> = match step {
                        0 => Ok(Frame::data(Bytes::from(vec![b'x'; 64 * 1024]))),
                        1 => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            Err(Box::new(DeliberateReset))
                        }
                        _ => return None,
                    };
                    Some((frame, step + 1))
                });
                let body = StreamBody::new(frames);
                let mut response = ok(body.boxed());
                response.headers_mut().insert(
                    "content-length",
                    HeaderValue::from(RESET_MID_BODY_ANNOUNCED),
                );
                response
            }
        };
        Ok(response)
    }
}

fn ok(body: RequestBody) -> Response<RequestBody> {
    Response::new(body)
}
