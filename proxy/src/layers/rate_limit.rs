//! Rate limit: the route's local token bucket (`rate_limit`); an empty bucket answers
//! 429 `rate-limited` with a `Retry-After` saying when the next token comes.

use http::HeaderValue;

use super::ProxyRequest;
use super::step::{Decision, Step, StepLayer};
use crate::http::ProxyError;
use crate::http::response::error_response;

#[derive(Debug)]
pub struct RateLimit;

pub type RateLimitLayer = StepLayer<RateLimit>;

impl Step for RateLimit {
    fn decide(req: ProxyRequest) -> Decision {
        let bucket = req.ctx.route.as_ref().and_then(|r| r.rate_limit.as_ref());
        let Some(Err(wait)) = bucket.map(|b| b.try_take()) else {
            return Decision::Continue(req);
        };
        let _ = req.ctx.record.error.set(ProxyError::RateLimited);
        let mut rsp = error_response(ProxyError::RateLimited);
        // Whole seconds (RFC 9110 §10.2.3), rounded up so a client that waits succeeds.
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        rsp.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        Decision::Answer(Ok(rsp))
    }
}
