//! Rescue: the outermost layer, turning each [`ProxyError`] into its status code and
//! `x-meshwork-error` response, so the service given to hyper cannot fail.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tower::Service;

use super::{ProxyRequest, ProxyResponse};
use crate::http::ProxyError;
use crate::http::response::error_response;

#[derive(Clone, Debug)]
pub struct Rescue<S> {
    inner: S,
}

impl<S> Rescue<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S> Service<ProxyRequest> for Rescue<S>
where
    S: Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError>,
{
    type Response = ProxyResponse;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Readiness errors become responses at call time: there is no error to report here.
        let _ = ready!(self.inner.poll_ready(cx));
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ProxyRequest) -> Self::Future {
        ResponseFuture {
            record: req.ctx.record.clone(),
            inner: self.inner.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        record: std::sync::Arc<crate::observe::RequestRecord>,
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ProxyResponse, ProxyError>>,
{
    type Output = Result<ProxyResponse, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        Poll::Ready(Ok(match ready!(this.inner.poll(cx)) {
            Ok(rsp) => rsp,
            Err(error) => {
                let _ = this.record.error.set(error);
                tracing::debug!(reason = error.reason(), "proxy answered with an error");
                error_response(error)
            }
        }))
    }
}
