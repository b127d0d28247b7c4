//! Split: picks the backend cluster of the route by weight (`backends[].weight`).

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use rand::Rng;
use tower::{Layer, Service};

use super::{ProxyRequest, ProxyResponse};
use crate::cluster::ClusterRuntime;
use crate::http::ProxyError;

#[derive(Clone, Copy, Debug)]
pub struct SplitLayer;

impl<S> Layer<S> for SplitLayer {
    type Service = Split<S>;
    fn layer(&self, inner: S) -> Split<S> {
        Split { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Split<S> {
    inner: S,
}

/// The backend whose cumulative weight range holds `point` (`0 <= point < total`).
pub fn pick_weighted(
    backends: &[(Arc<ClusterRuntime>, u32)],
    mut point: u64,
) -> Option<&Arc<ClusterRuntime>> {
    for (cluster, weight) in backends {
        let w = u64::from(*weight);
        if point < w {
            return Some(cluster);
        }
        point -= w;
    }
    None
}

impl<S> Service<ProxyRequest> for Split<S>
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
        let cluster = req
            .ctx
            .route
            .as_ref()
            .and_then(|route| match route.backends.as_slice() {
                [(only, _)] => Some(only.clone()),
                many if route.total_weight > 0 => {
                    let point = rand::rng().random_range(0..route.total_weight);
                    pick_weighted(many, point).cloned()
                }
                _ => None,
            });
        match cluster {
            Some(cluster) => {
                let _ = req.ctx.record.cluster.set(cluster.clone());
                req.ctx.cluster = Some(cluster);
                Either::Right(self.inner.call(req))
            }
            None => Either::Left(ready(Err(ProxyError::NoHealthyEndpoint))),
        }
    }
}
