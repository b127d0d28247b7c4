//! Raw routes: match conditions, the action (backends, direct response or redirect) and
//! the per-route policies.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{DurationText, RetryOnText, SizeText};
use crate::spanned::{Entries, Field, List};

/// A route: if `match` holds, do the action (exactly one of `backends`, `direct_response`, `redirect`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Route")]
pub(crate) struct RawRoute {
    /// Name, unique within its table. Required.
    pub name: Field<String>,
    /// Conditions; all present ones must hold. Absent = match everything.
    #[serde(rename = "match")]
    pub matcher: Field<RawMatch>,
    /// Weighted split across clusters.
    pub backends: List<RawBackend>,
    /// Answer directly instead of forwarding.
    pub direct_response: Field<RawDirectResponse>,
    /// Answer with a redirect instead of forwarding.
    pub redirect: Field<RawRedirect>,
    /// Whole request, retries included. Default is no timeout.
    pub timeout: Field<DurationText>,
    /// Retry policy. Not supported yet (issue #5).
    pub retry: Field<RawRetry>,
    /// Hedging: when the first attempt has not answered after a delay, send one more to
    /// another endpoint; the first response wins and the other attempt is cancelled.
    /// Hedges and retries share the retry budget. Default is no hedging.
    pub hedge: Field<RawHedge>,
    /// Fault injection. Not supported yet (issue #5).
    pub fault: Field<RawFault>,
    /// Rewrites before forwarding.
    pub rewrite: Field<RawRewrite>,
    /// Edits to request headers (applied remove, set, add).
    pub request_headers: Field<RawHeaderEdits>,
    /// Edits to response headers (applied remove, set, add).
    pub response_headers: Field<RawHeaderEdits>,
    /// Local token-bucket rate limit (429 when empty). Not supported yet (issue #5).
    pub rate_limit: Field<RawRateLimit>,
    /// Fire-and-forget copy of a share of the requests to another cluster.
    pub mirror: Field<RawMirror>,
    /// Protocols a request may switch to through this route with `Upgrade` (names as in
    /// the IANA upgrade token registry, case-insensitive, e.g. `websocket`); the upstream
    /// connection is then tunnelled both ways. An upgrade to any other protocol goes on
    /// as a plain request. `h2c` is never allowed. Default is `[websocket]`; `[]` allows none.
    pub upgrades: List<String>,
}

/// Route match conditions.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Match")]
pub(crate) struct RawMatch {
    /// Host names, exact or `*.suffix` (case-insensitive). Absent = any host.
    pub host: List<String>,
    /// Path condition: exactly one of `prefix`, `exact`, `regex`. Absent = any path.
    pub path: Field<RawPath>,
    /// HTTP methods (any of them). Absent = any method.
    pub method: List<String>,
    /// Header conditions (all must hold).
    pub headers: List<RawValueMatch>,
    /// Query parameter conditions (all must hold).
    pub query: List<RawValueMatch>,
}

/// A path condition: exactly one key.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Path")]
pub(crate) struct RawPath {
    /// The normalized request path starts with this (a string prefix: it may end inside a segment). Starts with `/`, in normalized form (`/~user/`, not `/%7Euser/`; no `//` or dot segments), or it could never match.
    pub prefix: Field<String>,
    /// The normalized request path is exactly this. Starts with `/`, in normalized form, or it could never match.
    pub exact: Field<String>,
    /// The normalized request path matches this regular expression (Rust `regex` syntax, unanchored unless written with `^`/`$`).
    pub regex: Field<String>,
}

/// A header or query parameter condition: `name` and exactly one of `exact`, `regex`, `present`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ValueMatch")]
pub(crate) struct RawValueMatch {
    /// Header name (case-insensitive) or query parameter name (case-sensitive). Required.
    pub name: Field<String>,
    /// The value is exactly this.
    pub exact: Field<String>,
    /// The value matches this regular expression.
    pub regex: Field<String>,
    /// `true`: must be present; `false`: must be absent.
    pub present: Field<bool>,
}

/// One weighted backend.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Backend")]
pub(crate) struct RawBackend {
    /// Cluster name. Required; must name a cluster.
    pub cluster: Field<String>,
    /// Relative weight, 1 or more. Default is 1.
    pub weight: Field<u32>,
}

/// A response made by the proxy.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "DirectResponse")]
pub(crate) struct RawDirectResponse {
    /// HTTP status, 100 to 599. Required.
    pub status: Field<u16>,
    /// Response body. Default is empty.
    pub body: Field<String>,
}

/// A redirect made by the proxy: each given part replaces that part of the request URL.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Redirect")]
pub(crate) struct RawRedirect {
    /// `http` or `https`.
    pub scheme: Field<String>,
    /// Host name.
    pub host: Field<String>,
    /// Port, 1 to 65535.
    pub port: Field<u16>,
    /// Path: starts with `/`, in normalized form (encoded slashes allowed).
    pub path: Field<String>,
    /// 301, 302, 303, 307 or 308. Default is 301.
    pub status: Field<u16>,
}

/// Retry policy.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Retry")]
pub(crate) struct RawRetry {
    /// Total tries, the first included, 1 to 10. Default is 2.
    pub attempts: Field<u32>,
    /// Conditions to retry on. Default is `[connect-failure, reset, gateway-error]`.
    pub on: List<RetryOnText>,
    /// Timeout of each try. Default is none (only the route timeout).
    pub per_try_timeout: Field<DurationText>,
    /// Exponential backoff with full jitter.
    pub backoff: Field<RawBackoff>,
    /// Retry budget: retries stay under `ratio` of requests (over 10s) plus `min_per_second`.
    pub budget: Field<RawBudget>,
    /// Methods that may be retried. Default is the idempotent ones: GET, HEAD, OPTIONS, PUT, DELETE, TRACE.
    pub methods: List<String>,
    /// Larger request bodies are not buffered, so not retried. Default is `64KiB`.
    pub max_body: Field<SizeText>,
}

/// Hedging policy ("The Tail at Scale"): one extra attempt for a slow request.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Hedge")]
pub(crate) struct RawHedge {
    /// How long the first attempt may go unanswered before the hedge is sent: a duration
    /// (`50ms`), or a percentile of the route's recent response times (`p90`, `p95`,
    /// `p99`; from `p50` to `p99.9`). Required.
    pub delay: Field<String>,
    /// With a percentile `delay`: the delay used until the route has seen enough
    /// responses to estimate it. Default is `100ms`.
    pub initial_delay: Field<DurationText>,
    /// Methods that may be hedged. Default is the idempotent ones: GET, HEAD, OPTIONS, PUT, DELETE, TRACE.
    pub methods: List<String>,
    /// `true`: the gRPC calls this route matches are idempotent and may be hedged (gRPC
    /// calls are `POST`s, so `methods` cannot say it; match the idempotent gRPC methods
    /// by path in this route). Default is false.
    pub grpc: Field<bool>,
}

/// Backoff between tries.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Backoff")]
pub(crate) struct RawBackoff {
    /// First backoff. Default is `25ms`.
    pub base: Field<DurationText>,
    /// Largest backoff (at least `base`). Default is `1s`.
    pub max: Field<DurationText>,
}

/// Retry budget.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Budget")]
pub(crate) struct RawBudget {
    /// Retries as a share of requests, 0 to 1. Default is 0.2.
    pub ratio: Field<f64>,
    /// Retries always allowed per second. Default is 10.
    pub min_per_second: Field<u32>,
}

/// Fault injection.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Fault")]
pub(crate) struct RawFault {
    /// Delay some requests.
    pub delay: Field<RawFaultDelay>,
    /// Fail some requests.
    pub abort: Field<RawFaultAbort>,
}

/// Delay a share of requests.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FaultDelay")]
pub(crate) struct RawFaultDelay {
    /// Share of requests, 0 to 100. Required.
    pub percent: Field<f64>,
    /// How long. Required.
    pub duration: Field<DurationText>,
}

/// Fail a share of requests: exactly one of `status`, `grpc_status`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FaultAbort")]
pub(crate) struct RawFaultAbort {
    /// Share of requests, 0 to 100. Required.
    pub percent: Field<f64>,
    /// HTTP status to answer, 100 to 599.
    pub status: Field<u16>,
    /// gRPC status code to answer, 0 to 16.
    pub grpc_status: Field<u16>,
}

/// Rewrites before forwarding.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Rewrite")]
pub(crate) struct RawRewrite {
    /// Replaces the prefix matched by `match.path.prefix` (only with a prefix match). In normalized form; a rewritten path that is not normal is refused (400).
    pub path_prefix: Field<String>,
    /// Replaces the `Host` header / `:authority`.
    pub host: Field<String>,
}

/// Header edits.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "HeaderEdits")]
pub(crate) struct RawHeaderEdits {
    /// Headers to set, replacing any present.
    pub set: Field<Entries<String>>,
    /// Headers to add, keeping any present.
    pub add: Field<Entries<String>>,
    /// Header names to remove.
    pub remove: List<String>,
}

/// Local rate limit.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RateLimit")]
pub(crate) struct RawRateLimit {
    /// Sustained rate, more than 0. Required.
    pub requests_per_second: Field<f64>,
    /// Bucket size. Default is `requests_per_second` rounded up.
    pub burst: Field<u32>,
}

/// Request mirroring.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Mirror")]
pub(crate) struct RawMirror {
    /// Cluster to copy requests to. Required; must name a cluster.
    pub cluster: Field<String>,
    /// Share of requests to copy, 0 to 100. Default is 100.
    pub percent: Field<f64>,
}
