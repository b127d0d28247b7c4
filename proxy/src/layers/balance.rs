//! Balance: picks an endpoint of the chosen cluster (round robin for now) whose circuit
//! breaker admits the request; 503 `circuit-open` when every breaker is open,
//! `no-healthy-endpoint` when the cluster has no endpoints.

use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use tower::{Layer, Service};

use super::{ProxyRequest, ProxyResponse};
use crate::http::ProxyError;

#[derive(Clone, Copy, Debug)]
pub struct BalanceLayer;

impl<S> Layer<S> for BalanceLayer {
    type Service = Balance<S>;
    fn layer(&self, inner: S) -> Balance<S> {
        Balance { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Balance<S> {
    inner: S,
}

impl<S> Service<ProxyRequest> for Balance<S>
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
        let picked = match &req.ctx.cluster {
            Some(c) => c.pick(req.ctx.avoid_endpoint.as_ref()).cloned(),
            None => Err(ProxyError::NoHealthyEndpoint),
        };
        match picked {
            Ok(endpoint) => {
                req.ctx.endpoint = Some(endpoint);
                Either::Right(self.inner.call(req))
            }
            Err(error) => Either::Left(ready(Err(error))),
        }
    }
}
