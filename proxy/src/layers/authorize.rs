//! Authorization: the listener's policy decides by the peer's verified identity, the
//! method and the path (403 `unauthorized` when it refuses); then the application is
//! told who the peer is in `x-meshwork-peer-identity` (a client's own copy of that
//! header is always removed, so the application can trust it).

use http::{HeaderName, HeaderValue};

use super::ProxyRequest;
use super::step::{Decision, Step, StepLayer};
use crate::http::ProxyError;

/// The request header carrying the verified peer identity to the application.
pub const PEER_IDENTITY_HEADER: HeaderName = HeaderName::from_static("x-meshwork-peer-identity");

#[derive(Debug)]
pub struct Authorize;

pub type AuthorizeLayer = StepLayer<Authorize>;

impl Step for Authorize {
    fn decide(req: &mut ProxyRequest) -> Decision {
        let peer = req.ctx.peer_identity.as_deref();
        if let Some(plan) = &req.ctx.plan {
            if let Some(policy) = &plan.authorization {
                let (method, path) = (req.http.method(), req.http.uri().path());
                let port = req.ctx.original_destination.map(|d| d.port());
                if !policy.allows(peer, method, path, port) {
                    plan.authorization_denied();
                    tracing::info!(
                        listener = %req.ctx.listener,
                        client_addr = %req.ctx.client_addr,
                        peer_identity = peer.unwrap_or("-"),
                        %method,
                        path,
                        "request denied by the authorization policy"
                    );
                    return Decision::Answer(Err(ProxyError::Unauthorized));
                }
            }
        }
        let headers = req.http.headers_mut();
        headers.remove(PEER_IDENTITY_HEADER);
        if let Some(value) = peer.and_then(|p| HeaderValue::from_str(p).ok()) {
            headers.insert(PEER_IDENTITY_HEADER, value);
        }
        Decision::Continue
    }
}
