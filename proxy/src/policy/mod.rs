//! Per-route policy state that lives with a compiled route: rate limit buckets.

pub mod token_bucket;
