//! Retry: re-sends a failed request per the route's `retry` policy — on the conditions it
//! names, up to `attempts` tries, with exponential backoff and full jitter (or the
//! upstream's `Retry-After` when within `backoff.max`), within the route's retry budget.
//!
//! Only the policy's methods (idempotent ones by default) are retried, and only when the
//! request body fits `max_body` (it is buffered for replay; larger bodies stream once).
//! Decisions are made on the response head, before any byte goes to the client. Each
//! retry prefers an endpoint other than the one that just failed, and takes a
//! `max_retries` slot of the cluster it goes to (its split is made per attempt); a
//! retry that cluster turns away ends the request with `503 overflow`.
//!
//! A route's `hedge` sends one more attempt, to another endpoint, when the first has
//! not answered after a delay; the first response wins (`retry/attempts.rs`). Hedges
//! and retries draw from the route's one retry budget.
//!
//! `per_try_timeout` bounds every attempt of a route that sets it, the first included,
//! whether or not the request may be retried (a POST, `attempts: 1`, a body too large
//! to replay).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::future::Either;
use http::{HeaderMap, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use meshwork_config::model::{RetryOn, RetryPolicy};
use tower::{Layer, Service};

use super::{ProxyRequest, ProxyResponse};
use crate::http::client_fault::ClientFault;
use crate::http::headers::is_upgrade_request;
use crate::http::{ProxyError, RequestBody};

#[derive(Clone, Copy, Debug)]
pub struct RetryLayer;

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;
    fn layer(&self, inner: S) -> Retry<S> {
        Retry { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Retry<S> {
    inner: S,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<ProxyResponse, ProxyError>> + Send>>;

/// Why an attempt's outcome is worth another try, as a metric label; `None` if it is not.
pub fn retry_reason(
    policy: &RetryPolicy,
    outcome: &Result<ProxyResponse, ProxyError>,
) -> Option<String> {
    match outcome {
        Err(ProxyError::ConnectFailed) => policy
            .on
            .contains(&RetryOn::ConnectFailure)
            .then(|| "connect-failure".into()),
        Err(ProxyError::UpstreamReset) => {
            policy.on.contains(&RetryOn::Reset).then(|| "reset".into())
        }
        Err(ProxyError::UpstreamTimeout) => policy
            .on
            .iter()
            .any(|o| {
                matches!(
                    o,
                    RetryOn::ServerError | RetryOn::GatewayError | RetryOn::Status(504)
                )
            })
            .then(|| "per-try-timeout".into()),
        Err(_) => None,
        Ok(rsp) => {
            let status = rsp.status().as_u16();
            let by_status = policy.on.iter().any(|o| match o {
                RetryOn::ServerError => (500..600).contains(&status),
                RetryOn::GatewayError => matches!(status, 502..=504),
                RetryOn::Retriable4xx => status == 409,
                RetryOn::Status(s) => *s == status,
                _ => false,
            });
            if by_status {
                return Some(status.to_string());
            }
            // gRPC errors arrive as HTTP 200 with grpc-status in a trailers-only response.
            let grpc = rsp
                .headers()
                .get(crate::http::response::GRPC_STATUS)?
                .to_str()
                .ok()?
                .parse::<u16>()
                .ok()?;
            policy
                .on
                .iter()
                .any(|o| matches!(o, RetryOn::Grpc(code) if *code as u16 == grpc))
                .then(|| format!("grpc-{grpc}"))
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not honored).
fn retry_after(rsp: &ProxyResponse) -> Option<Duration> {
    if !matches!(
        rsp.status(),
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
    ) {
        return None;
    }
    let secs: u64 = rsp
        .headers()
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

/// The request body, whole, if it fits `max`; otherwise a body that streams what was
/// read followed by the rest.
async fn buffer(
    body: RequestBody,
    max: u64,
) -> Result<Result<(Bytes, Option<HeaderMap>), RequestBody>, ProxyError> {
    if body.size_hint().lower() > max {
        return Ok(Err(body));
    }
    let mut body = body;
    let mut data = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        // Read before any attempt: a failure here can only be the client's.
        let frame = frame.map_err(|e| ClientFault::of(&e).error())?;
        match frame.into_data() {
            Ok(chunk) => {
                data.extend_from_slice(&chunk);
                if data.len() as u64 > max {
                    let prefix = Some(data.freeze());
                    return Ok(Err(match body {
                        RequestBody::Streaming {
                            inner,
                            record,
                            tee,
                            faults,
                        } => RequestBody::Prefixed {
                            prefix,
                            rest: inner,
                            record,
                            tee,
                            faults,
                        },
                        other => other,
                    }));
                }
            }
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    Ok(Ok((data.freeze(), trailers)))
}

impl<S> Service<ProxyRequest> for Retry<S>
where
    S: Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ProxyResponse;
    type Error = ProxyError;
    type Future = Either<BoxFuture, Either<PerTry<S::Future>, S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ProxyRequest) -> Self::Future {
        let Some(route) = req.ctx.route.clone() else {
            return Either::Right(Either::Right(self.inner.call(req)));
        };
        let (policy, hedge) = (route.config.retry.as_ref(), route.config.hedge.as_ref());
        if policy.is_none() && hedge.is_none() {
            return Either::Right(Either::Right(self.inner.call(req)));
        }
        // An attempt is rebuilt without the :protocol (and the client's side of the
        // tunnel): an upgrade or an extended CONNECT is never replayed.
        let replayable = !is_upgrade_request(req.http.headers())
            && crate::http::extended_connect::protocol(&req.http).is_none();
        let method = req.http.method().as_str();
        let allowed = attempts::Allowed {
            retries: replayable
                && policy.is_some_and(|p| p.attempts > 1 && p.methods.iter().any(|m| m == method)),
            hedge: replayable && hedge.is_some_and(|h| hedge::may_hedge(h, &req.http)),
        };
        if !allowed.retries && !allowed.hedge {
            // One attempt, still bounded by the policy's `per_try_timeout`.
            return Either::Right(Either::Left(one_attempt(
                &mut self.inner,
                req,
                policy.and_then(|p| p.per_try_timeout),
            )));
        }
        if let Some(budget) = &route.retry_budget {
            budget.deposit();
        }
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Either::Left(Box::pin(attempts::run(inner, req, route, allowed)))
    }
}

/// One attempt of `req`, cut at `per_try` from now when set (the attempt is dropped
/// at its deadline, which it reports as its endpoint's timeout).
fn one_attempt<S>(
    inner: &mut S,
    mut req: ProxyRequest,
    per_try: Option<Duration>,
) -> PerTry<S::Future>
where
    S: Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError>,
{
    let per_try = per_try.map(|limit| tokio::time::Instant::now() + limit);
    req.ctx.deadline = super::timeout::earliest(req.ctx.deadline, per_try);
    match per_try {
        Some(deadline) => PerTry::Bounded {
            inner: tokio::time::timeout_at(deadline, inner.call(req)),
        },
        None => PerTry::Unbounded {
            inner: inner.call(req),
        },
    }
}

pin_project_lite::pin_project! {
    /// An attempt's future, ending in `UpstreamTimeout` at its `per_try_timeout`.
    #[project = PerTryProj]
    pub enum PerTry<F> {
        Bounded { #[pin] inner: tokio::time::Timeout<F> },
        Unbounded { #[pin] inner: F },
    }
}

impl<F> Future for PerTry<F>
where
    F: Future<Output = Result<ProxyResponse, ProxyError>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            PerTryProj::Bounded { inner } => inner
                .poll(cx)
                .map(|out| out.unwrap_or(Err(ProxyError::UpstreamTimeout))),
            PerTryProj::Unbounded { inner } => inner.poll(cx),
        }
    }
}

mod attempts;
pub mod hedge;
#[cfg(test)]
mod hedge_tests;
#[cfg(test)]
mod tests;
