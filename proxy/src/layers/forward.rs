//! Forward: the proxy's header semantics on both directions — one authority per request
//! (see `http/authority.rs`), hop-by-hop headers and `h2c` upgrades out,
//! `x-forwarded-for` / `x-forwarded-proto` / `x-request-id` in.

use std::task::{Context, Poll};

use futures_util::TryFutureExt;
use futures_util::future::{Either, MapOk, Ready, ready};
use http::{HeaderMap, StatusCode, Version, header};
use tower::{Layer, Service};

use super::{ProxyRequest, ProxyResponse};
use crate::http::ProxyError;
use crate::http::authority::reconcile as reconcile_authority;
use crate::http::headers::{add_forwarded, is_upgrade_request, remove_hop_by_hop};
use crate::http::request_id::ensure_request_id;
use crate::http::upgrade::strip_h2c;

#[derive(Clone, Copy, Debug)]
pub struct ForwardLayer;

impl<S> Layer<S> for ForwardLayer {
    type Service = Forward<S>;
    fn layer(&self, inner: S) -> Forward<S> {
        Forward { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Forward<S> {
    inner: S,
}

fn strip_response(mut rsp: ProxyResponse) -> ProxyResponse {
    let upgrading = rsp.status() == StatusCode::SWITCHING_PROTOCOLS;
    remove_hop_by_hop(rsp.headers_mut(), upgrading);
    rsp
}

impl<S> Service<ProxyRequest> for Forward<S>
where
    S: Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError>,
{
    type Response = ProxyResponse;
    type Error = ProxyError;
    type Future = Either<
        Ready<Result<ProxyResponse, ProxyError>>,
        MapOk<S::Future, fn(ProxyResponse) -> ProxyResponse>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: ProxyRequest) -> Self::Future {
        if req.http.version() == Version::HTTP_11 && !has_one_host(req.http.headers()) {
            // RFC 9112 §3.2: a missing or repeated Host is a 400; two Hosts would let the
            // proxy route on one while the upstream trusts the other.
            return Either::Left(ready(Err(ProxyError::MalformedRequest)));
        }
        if let Err(error) = reconcile_authority(&mut req.http, req.ctx.scheme) {
            return Either::Left(ready(Err(error)));
        }
        // Before anything reads the request: no route or policy should see an h2c upgrade.
        strip_h2c(req.http.headers_mut());
        let upgrade =
            req.http.version() == Version::HTTP_11 && is_upgrade_request(req.http.headers());
        let headers = req.http.headers_mut();
        remove_hop_by_hop(headers, upgrade);
        add_forwarded(headers, &req.ctx.client_address_value, req.ctx.scheme);
        let id = ensure_request_id(headers);
        let _ = req.ctx.record.request_id.set(id);
        Either::Right(self.inner.call(req).map_ok(strip_response as fn(_) -> _))
    }
}

fn has_one_host(headers: &HeaderMap) -> bool {
    let mut hosts = headers.get_all(header::HOST).iter();
    hosts.next().is_some() && hosts.next().is_none()
}
