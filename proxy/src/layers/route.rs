//! Route: finds the first route of the listener's table that matches the request
//! (404 `no-route` when none does) and records it for the layers below.

use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use tower::{Layer, Service};

use super::{ProxyRequest, ProxyResponse};
use crate::http::ProxyError;
use crate::router::RouteRequest;

#[derive(Clone, Copy, Debug)]
pub struct RouteLayer;

impl<S> Layer<S> for RouteLayer {
    type Service = Route<S>;
    fn layer(&self, inner: S) -> Route<S> {
        Route { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Route<S> {
    inner: S,
}

impl<S> Service<ProxyRequest> for Route<S>
where
    S: Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError>,
{
    type Response = ProxyResponse;
    type Error = ProxyError;
    type Future = Either<Ready<Result<ProxyResponse, ProxyError>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: ProxyRequest) -> Self::Future {
        let route = req.ctx.plan.as_ref().and_then(|plan| {
            let view = RouteRequest::new(req.http.method(), req.http.uri(), req.http.headers());
            plan.table.find(&view).cloned()
        });
        match route {
            Some(route) => {
                let _ = req.ctx.record.route.set(route.clone());
                req.ctx.route = Some(route);
                Either::Right(self.inner.call(req))
            }
            None => Either::Left(ready(Err(ProxyError::NoRoute))),
        }
    }
}
