//! Normalize: the request's path, normalized once before anything reads it, so the
//! authorization policy, the route, a rewrite, the mirror and the upstream all see the
//! same path (400 `malformed-request` when it is one they could read differently).
//! The rules are in `meshwork_config::request_path` and docs/security.md "Paths".

use meshwork_config::model::EscapedSlashes;

use super::ProxyRequest;
use super::step::{Decision, Step, StepLayer};
use crate::http::ProxyError;
use crate::http::target::normalize_target;

#[derive(Debug)]
pub struct NormalizePath;

pub type NormalizePathLayer = StepLayer<NormalizePath>;

impl Step for NormalizePath {
    fn decide(req: &mut ProxyRequest) -> Decision {
        // A listener removed by a reload keeps the default (the strict reading).
        let escaped = req
            .ctx
            .plan
            .as_ref()
            .map_or(EscapedSlashes::Reject, |plan| plan.paths.escaped_slashes);
        match normalize_target(req.http.method(), req.http.uri(), escaped) {
            Ok(None) => Decision::Continue,
            Ok(Some(uri)) => {
                *req.http.uri_mut() = uri;
                Decision::Continue
            }
            Err(refusal) => {
                tracing::debug!(
                    listener = %req.ctx.listener,
                    client_addr = %req.ctx.client_addr,
                    %refusal,
                    "request path refused"
                );
                Decision::Answer(Err(ProxyError::MalformedRequest))
            }
        }
    }
}
