//! Route tables and routes: what a request must match and what is done with it.

use std::fmt;
use std::time::Duration;

/// Routes in the order written; the first that matches wins.
#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct RouteTable {
    pub name: String,
    pub routes: Vec<Route>,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct Route {
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: RouteMatch,
    pub action: RouteAction,
    /// Whole request, retries included. `None` = no timeout.
    #[serde(serialize_with = "crate::ser::opt_duration")]
    pub timeout: Option<Duration>,
    pub retry: Option<RetryPolicy>,
    pub hedge: Option<Hedge>,
    pub fault: Option<Fault>,
    pub rewrite: Option<Rewrite>,
    pub request_headers: HeaderModifier,
    pub response_headers: HeaderModifier,
    pub rate_limit: Option<RateLimit>,
    pub mirror: Option<Mirror>,
    /// Protocols a request may switch to through this route (lower-case `Upgrade`
    /// protocol names); anything else goes on as a plain request. Never `h2c`.
    pub upgrades: Vec<String>,
}

/// The upgrade protocols a route allows when it does not say: WebSocket only.
pub const DEFAULT_UPGRADES: &[&str] = &["websocket"];

/// All present conditions must hold; an empty matcher matches everything.
#[derive(serde::Serialize, Clone, Debug, Default, PartialEq)]
pub struct RouteMatch {
    /// Any of these; empty = any host.
    pub hosts: Vec<HostMatch>,
    pub path: Option<PathMatch>,
    /// Any of these (upper-case method names); empty = any method.
    pub methods: Vec<String>,
    pub headers: Vec<HeaderMatch>,
    pub query: Vec<QueryMatch>,
}

/// A host name pattern, lower-cased: exact, or `*.suffix` (matches any name ending in
/// `.suffix`, at least one label deep).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostMatch {
    Exact(String),
    /// The suffix including its leading dot, e.g. `.example.com`.
    Wildcard(String),
}

impl fmt::Display for HostMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostMatch::Exact(h) => f.write_str(h),
            HostMatch::Wildcard(s) => write!(f, "*{s}"),
        }
    }
}

#[derive(serde::Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
    Regex(Pattern),
}

/// A compiled regular expression, anchored as written. Compared by its source text.
#[derive(Clone, Debug)]
pub struct Pattern {
    pub source: String,
    pub regex: regex::Regex,
}

impl serde::Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl serde::Serialize for HostMatch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `{status: 503}` or `{grpc_status: 14}`, as written in the YAML.
impl serde::Serialize for AbortKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1))?;
        match self {
            AbortKind::Http(code) => map.serialize_entry("status", &code.as_u16())?,
            AbortKind::Grpc(code) => map.serialize_entry("grpc_status", code)?,
        }
        map.end()
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct HeaderMatch {
    /// Lower-case header name.
    #[serde(serialize_with = "crate::ser::header_name")]
    pub name: http::HeaderName,
    pub condition: ValueCondition,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct QueryMatch {
    /// The query parameter name, as written (case-sensitive).
    pub name: String,
    pub condition: ValueCondition,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ValueCondition {
    Exact(String),
    Regex(Pattern),
    /// `present: true` (must be there) or `present: false` (must be absent).
    Present(bool),
}

#[derive(serde::Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum RouteAction {
    /// Weighted split across clusters (weights > 0; at least one backend).
    Backends(Vec<WeightedBackend>),
    DirectResponse(DirectResponse),
    Redirect(Redirect),
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct WeightedBackend {
    pub cluster: String,
    /// Default 1.
    pub weight: u32,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct DirectResponse {
    #[serde(serialize_with = "crate::ser::status")]
    pub status: http::StatusCode,
    pub body: String,
}

/// Each `Some` part replaces that part of the request URL; status is 301, 302, 303, 307
/// or 308 (default 301).
#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: Option<String>,
    #[serde(serialize_with = "crate::ser::status")]
    pub status: http::StatusCode,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// Replaces the prefix matched by `match.path.prefix` (only valid with a prefix match).
    pub path_prefix: Option<String>,
    /// Replaces `Host` / `:authority`.
    pub host: Option<String>,
}

/// Header edits, applied in the order remove, set, add.
#[derive(serde::Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderModifier {
    #[serde(serialize_with = "crate::ser::header_pairs")]
    pub set: Vec<(http::HeaderName, http::HeaderValue)>,
    #[serde(serialize_with = "crate::ser::header_pairs")]
    pub add: Vec<(http::HeaderName, http::HeaderValue)>,
    #[serde(serialize_with = "crate::ser::header_names")]
    pub remove: Vec<http::HeaderName>,
}

impl HeaderModifier {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Total tries, the first included (>= 1).
    pub attempts: u32,
    pub on: Vec<RetryOn>,
    #[serde(serialize_with = "crate::ser::opt_duration")]
    pub per_try_timeout: Option<Duration>,
    pub backoff: Backoff,
    pub budget: RetryBudget,
    /// Upper-case method names that may be retried. Default: idempotent methods.
    pub methods: Vec<String>,
    /// Request bodies up to this are buffered for replay. Default 64 KiB.
    pub max_body: u64,
}

pub const DEFAULT_RETRY_METHODS: &[&str] = &["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"];

/// The retry budget of a route that does not set one (its hedges draw from it too).
pub const DEFAULT_RETRY_BUDGET: RetryBudget = RetryBudget {
    ratio: 0.2,
    min_per_second: 10,
};

/// Request bodies up to this are buffered for replay when a route does not say.
pub const DEFAULT_RETRY_MAX_BODY: u64 = 64 * 1024;

/// A route's hedging: one extra attempt, to another endpoint, for a request whose first
/// attempt has not answered after `delay`; the first response wins.
#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct Hedge {
    pub delay: HedgeDelay,
    /// Upper-case method names that may be hedged. Default: idempotent methods.
    pub methods: Vec<String>,
    /// The gRPC calls the route matches are idempotent: hedged although they are POSTs.
    pub grpc: bool,
}

/// When a hedge is sent.
#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum HedgeDelay {
    /// After this long.
    Fixed(#[serde(serialize_with = "crate::ser::duration")] Duration),
    /// After the route's recent response time at this percentile (50 to 99.9); `initial`
    /// until the route has seen enough responses.
    Percentile {
        percentile: f64,
        #[serde(serialize_with = "crate::ser::duration")]
        initial: Duration,
    },
}

#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOn {
    ConnectFailure,
    Reset,
    /// Any 5xx.
    ServerError,
    /// 502, 503, 504.
    GatewayError,
    /// 409.
    Retriable4xx,
    Status(u16),
    Grpc(GrpcCode),
}

#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum GrpcCode {
    Cancelled = 1,
    DeadlineExceeded = 4,
    ResourceExhausted = 8,
    Unavailable = 14,
}

#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Default 25ms.
    #[serde(serialize_with = "crate::ser::duration")]
    pub base: Duration,
    /// Default 1s.
    #[serde(serialize_with = "crate::ser::duration")]
    pub max: Duration,
}

#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq)]
pub struct RetryBudget {
    /// Default 0.2.
    pub ratio: f64,
    /// Default 10.
    pub min_per_second: u32,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct Fault {
    pub delay: Option<FaultDelay>,
    pub abort: Option<FaultAbort>,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct FaultDelay {
    /// 0..=100.
    pub percent: f64,
    #[serde(serialize_with = "crate::ser::duration")]
    pub duration: Duration,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct FaultAbort {
    pub percent: f64,
    pub kind: AbortKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AbortKind {
    Http(http::StatusCode),
    Grpc(u16),
}

#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub requests_per_second: f64,
    /// Default: requests_per_second rounded up.
    pub burst: u32,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct Mirror {
    pub cluster: String,
    /// 0..=100, default 100.
    pub percent: f64,
}
