//! Fault: injected delays and aborts (`fault`), for testing how callers cope. A delay
//! comes first; an abort answers with the configured HTTP status, or for gRPC with a
//! trailers-only response carrying `grpc-status`. Both are counted.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::Either;
use http::{HeaderValue, StatusCode, header};
use meshwork_config::model::{AbortKind, Fault};
use rand::Rng;
use tower::{Layer, Service};

use super::{ProxyRequest, ProxyResponse};
use crate::http::response::error_response;
use crate::http::{ERROR_HEADER, ProxyError, ResponseBody};

#[derive(Clone, Copy, Debug)]
pub struct FaultLayer;

impl<S> Layer<S> for FaultLayer {
    type Service = FaultInjection<S>;
    fn layer(&self, inner: S) -> FaultInjection<S> {
        FaultInjection { inner }
    }
}

#[derive(Clone, Debug)]
pub struct FaultInjection<S> {
    inner: S,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<ProxyResponse, ProxyError>> + Send>>;

/// Whether this request falls in `percent` (0 to 100) of requests.
pub(crate) fn roll(percent: f64) -> bool {
    percent >= 100.0 || (percent > 0.0 && rand::rng().random::<f64>() * 100.0 < percent)
}

/// The response of an injected abort.
pub fn abort_response(kind: AbortKind) -> ProxyResponse {
    match kind {
        AbortKind::Http(status) => {
            let mut rsp = error_response(ProxyError::FaultAbort);
            *rsp.status_mut() = status;
            rsp
        }
        AbortKind::Grpc(code) => {
            // gRPC errors travel as HTTP 200 with grpc-status in a trailers-only response.
            let mut rsp = ProxyResponse::new(ResponseBody::empty());
            *rsp.status_mut() = StatusCode::OK;
            let h = rsp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            h.insert("grpc-status", HeaderValue::from(code));
            h.insert("grpc-message", HeaderValue::from_static("fault%20injected"));
            h.insert(
                ERROR_HEADER,
                HeaderValue::from_static(ProxyError::FaultAbort.reason()),
            );
            rsp
        }
    }
}

impl<S> Service<ProxyRequest> for FaultInjection<S>
where
    S: Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ProxyResponse;
    type Error = ProxyError;
    type Future = Either<BoxFuture, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ProxyRequest) -> Self::Future {
        let Some(fault) = req.ctx.route.as_ref().and_then(|r| r.config.fault.clone()) else {
            return Either::Right(self.inner.call(req));
        };
        let Fault { delay, abort } = fault;
        let delay = delay.filter(|d| roll(d.percent)).map(|d| d.duration);
        let abort = abort.filter(|a| roll(a.percent)).map(|a| a.kind);
        if delay.is_none() && abort.is_none() {
            return Either::Right(self.inner.call(req));
        }
        let plan = req.ctx.plan.clone();
        let route = req.ctx.route.clone();
        let count = move |kind: &str| {
            if let (Some(plan), Some(route)) = (&plan, &route) {
                plan.fault_injected(route.name(), kind);
            }
        };
        // The ready clone serves this request; `self` keeps one for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Either::Left(Box::pin(async move {
            if let Some(duration) = delay {
                count("delay");
                tokio::time::sleep(duration).await;
            }
            match abort {
                Some(kind) => {
                    count("abort");
                    let _ = req.ctx.record.error.set(ProxyError::FaultAbort);
                    Ok(abort_response(kind))
                }
                None => inner.call(req).await,
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_hold_at_the_edges_and_roughly_between() {
        assert!((0..1000).all(|_| roll(100.0)));
        assert!((0..1000).all(|_| !roll(0.0)));
        let hits = (0..20_000).filter(|_| roll(10.0)).count();
        assert!((1_600..2_400).contains(&hits), "{hits}");
    }

    #[test]
    fn grpc_aborts_are_trailers_only_with_the_status() {
        let rsp = abort_response(AbortKind::Grpc(14));
        assert_eq!(rsp.status(), StatusCode::OK);
        assert_eq!(rsp.headers()["grpc-status"], "14");
        assert_eq!(rsp.headers()["content-type"], "application/grpc");
        let rsp = abort_response(AbortKind::Http(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(rsp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(rsp.headers()["x-meshwork-error"], "fault-abort");
    }
}
