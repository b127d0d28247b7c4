//! Fault: injected delays and aborts (`fault`), for testing how callers cope. A delay
//! comes first; an abort answers with the configured HTTP status, or for gRPC with a
//! trailers-only response carrying `grpc-status`. Both are counted.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::Either;
use meshwork_config::model::Fault;
use rand::Rng;
use tower::{Layer, Service};

use super::{ProxyRequest, ProxyResponse};
use crate::http::ProxyError;

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
                    // Answered like every local answer: by the rescue layer.
                    Err(ProxyError::FaultAbort { kind })
                }
                None => inner.call(req).await,
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;
    use meshwork_config::model::AbortKind;

    use super::*;
    use crate::http::response::error_response;

    #[test]
    fn percentages_hold_at_the_edges_and_roughly_between() {
        assert!((0..1000).all(|_| roll(100.0)));
        assert!((0..1000).all(|_| !roll(0.0)));
        let hits = (0..20_000).filter(|_| roll(10.0)).count();
        assert!((1_600..2_400).contains(&hits), "{hits}");
    }

    #[test]
    fn grpc_aborts_are_trailers_only_with_the_status() {
        let abort = |kind| error_response(ProxyError::FaultAbort { kind });
        let rsp = abort(AbortKind::Grpc(14));
        assert_eq!(rsp.status(), StatusCode::OK);
        assert_eq!(rsp.headers()["grpc-status"], "14");
        assert_eq!(rsp.headers()["content-type"], "application/grpc");
        let rsp = abort(AbortKind::Http(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(rsp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(rsp.headers()["x-meshwork-error"], "fault-abort");
    }

    #[tokio::test]
    async fn an_abort_is_an_error_for_the_rescue_layer_and_never_reaches_upstream() {
        let snapshot = crate::layers::test_request::snapshot(
            "route_tables:\n  edge:\n    - name: api\n      backends: [{ cluster: app }]\n      \
             fault: { abort: { percent: 100, status: 418 } }\n\
             clusters:\n  - { name: app, endpoints: [127.0.0.1:9] }\n",
        );
        // Reaching the upstream would answer `ConnectFailed` instead.
        let upstream = tower::service_fn(|_: ProxyRequest| async {
            Err::<ProxyResponse, _>(ProxyError::ConnectFailed)
        });
        let mut svc = FaultLayer.layer(upstream);
        let req = crate::layers::test_request::routed(&snapshot, http::Method::GET);
        let outcome = svc.call(req).await;
        let expected = ProxyError::FaultAbort {
            kind: AbortKind::Http(StatusCode::IM_A_TEAPOT),
        };
        assert_eq!(outcome.err(), Some(expected));
        assert_eq!(expected.status(), StatusCode::IM_A_TEAPOT);
    }
}
