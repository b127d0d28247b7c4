//! Policy machinery: authorization, rate limit buckets, retry backoff, retry budgets and
//! the latency percentile that times hedges.

pub mod authorization;
pub mod backoff;
pub mod latency_percentile;
pub mod retry_budget;
pub mod token_bucket;
