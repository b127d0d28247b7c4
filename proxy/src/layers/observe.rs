//! Observe: the outermost layer. When the response ends (or the client goes away), the
//! request is reported once — metrics, then the access log line — from what the layers
//! below wrote into its [`RequestRecord`](crate::observe::RequestRecord).
//!
//! A client that goes away before its response head (closes its connection, resets its
//! stream) drops the request's future; the request is then reported as what it is:
//! `client-closed`, status 499 (nginx's "client closed request"), never an upstream
//! failure.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tower::Service;

use super::{ProxyRequest, ProxyResponse};
use crate::http::ProxyError;
use crate::observe::access_log::AccessLogWriter;
use crate::observe::{ObservedBody, Observer, RequestRecord};
use crate::snapshot::HttpListenerPlan;
use crate::trace::Tracer;

#[derive(Clone, Debug)]
pub struct Observe<S> {
    inner: S,
}

impl<S> Observe<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S> Service<ProxyRequest> for Observe<S>
where
    S: Service<ProxyRequest, Response = ProxyResponse, Error = Infallible>,
{
    type Response = http::Response<ObservedBody>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ProxyRequest) -> Self::Future {
        let tracer = req.ctx.snapshot.tracer.clone();
        if let Some(tracer) = &tracer {
            let _ = req.ctx.record.trace.set(tracer.begin(req.http.headers()));
        }
        ResponseFuture {
            tracer,
            record: Some(req.ctx.record.clone()),
            plan: req.ctx.plan.clone(),
            access_log: req.ctx.snapshot.access_log.clone(),
            inner: self.inner.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        record: Option<Arc<RequestRecord>>,
        plan: Option<Arc<HttpListenerPlan>>,
        access_log: Option<Arc<AccessLogWriter>>,
        tracer: Option<Arc<Tracer>>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        /// Dropped before the response head: the client went away.
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let Some(record) = this.record.take() else {
                return;
            };
            let _ = record.error.set(ProxyError::ClientClosed);
            drop(Observer {
                record,
                plan: this.plan.take(),
                access_log: this.access_log.take(),
                tracer: this.tracer.take(),
                status: ProxyError::ClientClosed.status(),
                response_bytes: 0,
            });
        }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ProxyResponse, Infallible>>,
{
    type Output = Result<http::Response<ObservedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(rsp) = ready!(this.inner.poll(cx));
        let Some(record) = this.record.take() else {
            unreachable!("polled after completion");
        };
        let observer = Observer {
            record,
            plan: this.plan.take(),
            access_log: this.access_log.take(),
            tracer: this.tracer.take(),
            status: rsp.status(),
            response_bytes: 0,
        };
        Poll::Ready(Ok(rsp.map(|body| ObservedBody::new(body, observer))))
    }
}
