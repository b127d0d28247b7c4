//! Balance: picks an endpoint of the chosen cluster (round robin for now); 503
//! `no-healthy-endpoint` when the cluster has none.

use std::task::{Context, Poll};

use std::sync::Arc;

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
        let endpoint = req.ctx.cluster.as_ref().and_then(|c| {
            let first = c.pick_round_robin()?;
            match &req.ctx.avoid_endpoint {
                // A retry: take the next endpoint if this is the one that just failed.
                Some(avoid) if Arc::ptr_eq(avoid, first) && c.endpoints.len() > 1 => {
                    c.pick_round_robin()
                }
                _ => Some(first),
            }
            .cloned()
        });
        match endpoint {
            Some(endpoint) => {
                req.ctx.endpoint = Some(endpoint);
                Either::Right(self.inner.call(req))
            }
            None => Either::Left(ready(Err(ProxyError::NoHealthyEndpoint))),
        }
    }
}
