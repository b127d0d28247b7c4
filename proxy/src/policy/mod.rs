//! Per-route policy machinery: rate limit buckets, retry backoff and retry budgets.

pub mod backoff;
pub mod retry_budget;
pub mod token_bucket;
