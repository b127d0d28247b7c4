//! Timeout: the route's `timeout` over everything below it (retries included, once they
//! exist) until the response head arrives; 504 `upstream-timeout` when it fires.
//!
//! It deliberately does not cover the response body: a long download or a gRPC stream
//! that has started answering is not cut by a request timeout.
//!
//! The deadline is also written into the request's context, so an attempt cut short can
//! tell a cut for being slow (the endpoint's fault) from its client going away (not).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use super::{ProxyRequest, ProxyResponse};
use crate::http::ProxyError;

#[derive(Clone, Copy, Debug)]
pub struct TimeoutLayer;

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Timeout<S> {
    inner: S,
}

impl<S> Service<ProxyRequest> for Timeout<S>
where
    S: Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError>,
{
    type Response = ProxyResponse;
    type Error = ProxyError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: ProxyRequest) -> Self::Future {
        let timeout = req.ctx.route.as_ref().and_then(|r| r.config.timeout);
        let deadline = timeout.map(|t| Instant::now() + t);
        req.ctx.deadline = earliest(req.ctx.deadline, deadline);
        ResponseFuture {
            inner: self.inner.call(req),
            sleep: deadline.map(tokio::time::sleep_until),
        }
    }
}

/// The sooner of two optional deadlines.
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

pin_project_lite::pin_project! {
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ProxyResponse, ProxyError>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.inner.poll(cx) {
            return Poll::Ready(out);
        }
        match this.sleep.as_pin_mut().map(|sleep| sleep.poll(cx)) {
            // The attempt in flight, dropped with `inner` past its deadline, counts the
            // timeout against its endpoint.
            Some(Poll::Ready(())) => Poll::Ready(Err(ProxyError::UpstreamTimeout)),
            _ => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn fires_after_the_deadline_and_not_before() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, ProxyError>(ProxyResponse::new(crate::http::ResponseBody::empty()))
        };
        let fut = ResponseFuture {
            inner: slow,
            sleep: Some(tokio::time::sleep(Duration::from_secs(2))),
        };
        let start = tokio::time::Instant::now();
        let out = fut.await;
        assert_eq!(out.unwrap_err(), ProxyError::UpstreamTimeout);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_timeout_waits_for_the_response() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, ProxyError>(ProxyResponse::new(crate::http::ResponseBody::empty()))
        };
        let fut = ResponseFuture {
            inner: slow,
            sleep: None,
        };
        assert!(fut.await.is_ok());
    }
}
