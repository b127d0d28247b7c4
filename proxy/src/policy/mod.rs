//! Policy machinery: authorization, rate limit buckets, retry backoff and retry budgets.

pub mod authorization;
pub mod backoff;
pub mod retry_budget;
pub mod token_bucket;
