//! Rate limit: the route's local token bucket (`rate_limit`); an empty bucket answers
//! 429 `rate-limited` with a `Retry-After` saying when the next token comes.

use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use http::HeaderValue;
use tower::{Layer, Service};

use super::{ProxyRequest, ProxyResponse};
use crate::http::ProxyError;
use crate::http::response::error_response;

#[derive(Clone, Copy, Debug)]
pub struct RateLimitLayer;

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit { inner }
    }
}

#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
}

impl<S> Service<ProxyRequest> for RateLimit<S>
where
    S: Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError>,
{
    type Response = ProxyResponse;
    type Error = ProxyError;
    type Future = Either<Ready<Result<ProxyResponse, ProxyError>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ProxyRequest) -> Self::Future {
        let bucket = req.ctx.route.as_ref().and_then(|r| r.rate_limit.as_ref());
        let Some(Err(wait)) = bucket.map(|b| b.try_take()) else {
            return Either::Right(self.inner.call(req));
        };
        let _ = req.ctx.record.error.set(ProxyError::RateLimited);
        let mut rsp = error_response(ProxyError::RateLimited);
        // Whole seconds (RFC 9110 §10.2.3), rounded up so a client that waits succeeds.
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        rsp.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        Either::Left(ready(Ok(rsp)))
    }
}
