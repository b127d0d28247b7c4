//! Rate limit: the route's local token bucket (`rate_limit`); an empty bucket ends the
//! request with `RateLimited`, which the rescue layer answers 429 `rate-limited` with a
//! `Retry-After` saying when the next token comes.

use super::ProxyRequest;
use super::step::{Decision, Step, StepLayer};
use crate::http::ProxyError;

#[derive(Debug)]
pub struct RateLimit;

pub type RateLimitLayer = StepLayer<RateLimit>;

impl Step for RateLimit {
    fn decide(req: &mut ProxyRequest) -> Decision {
        let bucket = req.ctx.route.as_ref().and_then(|r| r.rate_limit.as_ref());
        let Some(Err(wait)) = bucket.map(|b| b.try_take()) else {
            return Decision::Continue;
        };
        // Whole seconds (RFC 9110 §10.2.3), rounded up so a client that waits succeeds.
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let retry_after_secs = u32::try_from(seconds.max(1)).unwrap_or(u32::MAX);
        Decision::Answer(Err(ProxyError::RateLimited { retry_after_secs }))
    }
}
