//! Authorization: the listener's policy decides by the peer's verified identity, the
//! method and the path (403 `unauthorized` when it refuses); then the application is
//! told who the peer is in `x-meshwork-peer-identity` (a client's own copy of that
//! header is always removed, so the application can trust it).

use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use http::{HeaderName, HeaderValue};
use tower::{Layer, Service};

use super::{ProxyRequest, ProxyResponse};
use crate::http::ProxyError;
use crate::http::response::error_response;

/// The request header carrying the verified peer identity to the application.
pub const PEER_IDENTITY_HEADER: HeaderName = HeaderName::from_static("x-meshwork-peer-identity");

#[derive(Clone, Copy, Debug)]
pub struct AuthorizeLayer;

impl<S> Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;
    fn layer(&self, inner: S) -> Authorize<S> {
        Authorize { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Authorize<S> {
    inner: S,
}

impl<S> Service<ProxyRequest> for Authorize<S>
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
        let peer = req.ctx.peer_identity.as_deref();
        if let Some(plan) = &req.ctx.plan {
            if let Some(policy) = &plan.authorization {
                let (method, path) = (req.http.method(), req.http.uri().path());
                if !policy.allows(peer, method, path) {
                    plan.authorization_denied();
                    tracing::info!(
                        listener = %req.ctx.listener,
                        client_addr = %req.ctx.client_addr,
                        peer_identity = peer.unwrap_or("-"),
                        %method,
                        path,
                        "request denied by the authorization policy"
                    );
                    let _ = req.ctx.record.error.set(ProxyError::Unauthorized);
                    return Either::Left(ready(Ok(error_response(ProxyError::Unauthorized))));
                }
            }
        }
        let headers = req.http.headers_mut();
        headers.remove(PEER_IDENTITY_HEADER);
        if let Some(value) = peer.and_then(|p| HeaderValue::from_str(p).ok()) {
            headers.insert(PEER_IDENTITY_HEADER, value);
        }
        Either::Right(self.inner.call(req))
    }
}
