//! The validated, typed configuration: what the proxy and the control plane run on.
//!
//! Everything here has passed structural validation and cross-reference checks, so users
//! of the model never re-check names, ranges or formats. Defaults are already applied.
//! Types are plain data (`Clone + PartialEq`) so a reload can compare old and new pieces
//! and keep state (pools, breakers) for the parts that did not change. The model also
//! serializes (for the admin `/config` view) in the YAML's own notation.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::sidecar::{
    Direction, Mesh, MeshInbound, ORIGINAL_DESTINATION_CLUSTER, PortProtocol, SERVER_FIRST_PORTS,
    Vip, destination_protocol, port_protocol,
};

/// A whole, validated config file (format `version: 1`).
#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct Config {
    pub node: Node,
    pub runtime: Runtime,
    pub admin: Admin,
    pub control_plane: Option<ControlPlane>,
    pub listeners: Vec<Listener>,
    /// Route tables by name; each keeps its routes in the order written (first match wins).
    pub route_tables: BTreeMap<String, RouteTable>,
    pub clusters: Vec<Cluster>,
    pub identity: Option<Identity>,
    pub authorization: Vec<AuthorizationPolicy>,
    /// Connections between meshwork sidecars (`None`: no destination is meshed).
    pub mesh: Option<Mesh>,
    pub tracing: Option<Tracing>,
    pub access_log: Option<AccessLog>,
}

impl Config {
    /// The cluster of that name, if defined.
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.name == name)
    }
}

/// Who this proxy is, as told to the control plane.
#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Default is the machine's hostname.
    pub id: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Runtime {
    pub worker_threads: WorkerThreads,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerThreads {
    Fixed(u16),
    /// One per CPU.
    Auto,
}

/// The admin server (`/metrics /ready /live /config /clusters`).
#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Admin {
    /// Default is `127.0.0.1:9901`.
    pub address: SocketAddr,
}

pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:9901";

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ControlPlane {
    /// e.g. `http://127.0.0.1:18000`
    pub address: String,
    pub tls: Option<ClientTls>,
    /// Default [`ControlPlaneProtocol::Meshwork`].
    pub protocol: ControlPlaneProtocol,
    /// Where the last applied snapshot is saved. Default [`DEFAULT_STATE_DIR`].
    pub state_dir: PathBuf,
}

/// The discovery protocol a control plane speaks.
#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ControlPlaneProtocol {
    /// meshwork-control's own discovery stream.
    Meshwork,
    /// Envoy's xDS v3 Aggregated Discovery Service, State of the World.
    Xds,
}

/// Where a proxy saves the last snapshot applied from its control plane, by default.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/meshwork";

/// A `host:port` that may name a DNS host (upstreams, discovery).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    /// An IP literal (without brackets) or a DNS name.
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Listeners
// ---------------------------------------------------------------------------------------

#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct Listener {
    pub name: String,
    /// Port 0 asks the OS for a free port (see the admin `/listeners` endpoint).
    pub address: SocketAddr,
    #[serde(flatten)]
    pub protocol: ListenerProtocol,
    pub tls: Option<ListenerTls>,
    pub limits: ListenerLimits,
    /// How request paths are read (HTTP listeners).
    pub paths: ListenerPaths,
    /// Whose traffic this is: drain keeps `outbound` listeners working until the app is
    /// gone (its own calls during shutdown), and stops `inbound` ones first.
    pub direction: Direction,
    /// Route by where each connection was going before interception redirected it here
    /// (`SO_ORIGINAL_DST`, or the local address under TPROXY). Only with `protocol: auto`.
    pub original_destination: bool,
    /// Per destination port: the protocol to assume instead of detecting it (`auto`
    /// listeners). Ports in [`SERVER_FIRST_PORTS`] are opaque unless listed here.
    pub ports: BTreeMap<u16, PortProtocol>,
}

impl Listener {
    /// The route table its HTTP requests go through (`http`, and `auto` when set).
    pub fn route_table(&self) -> Option<&str> {
        match &self.protocol {
            ListenerProtocol::Http { route_table } => Some(route_table),
            ListenerProtocol::Auto { route_table } => route_table.as_deref(),
            ListenerProtocol::Tcp { .. } => None,
        }
    }
}

/// How an HTTP listener reads request paths (see docs/security.md "Paths").
#[derive(serde::Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenerPaths {
    pub escaped_slashes: EscapedSlashes,
}

/// What happens to a percent-encoded `/` or `\` (`%2F`, `%5C`) in a request path.
#[derive(serde::Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EscapedSlashes {
    /// 400 `malformed-request`: an upstream that decodes it would read other segments
    /// than the route and the authorization policy did.
    #[default]
    Reject,
    /// Passed on encoded (hex uppercased): part of a segment's name, never a separator.
    Keep,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "protocol", rename_all = "snake_case")]
pub enum ListenerProtocol {
    /// HTTP/1.1 and HTTP/2 (detected per connection), routed by the named route table.
    Http { route_table: String },
    /// Opaque TCP: bytes go to the named cluster.
    Tcp { cluster: String },
    /// Sidecar interception: detected per connection without waiting (HTTP/1.1, HTTP/2,
    /// TLS passed through by SNI, anything else opaque). HTTP that matches a route of
    /// `route_table` goes there; everything else goes to its original destination.
    Auto { route_table: Option<String> },
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ListenerTls {
    /// Picked by SNI; the first is the default. Empty = serve the `identity` certificate.
    pub certificates: Vec<ServerCertificate>,
    pub client_auth: ClientAuth,
    /// `None` = the `identity` trust bundle.
    pub client_ca: Option<PathBuf>,
    /// Default [`DEFAULT_TLS_HANDSHAKE_TIMEOUT`].
    #[serde(serialize_with = "crate::ser::duration")]
    pub handshake_timeout: Duration,
}

pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ServerCertificate {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub server_names: Vec<HostMatch>,
}

#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    None,
    Optional,
    Required,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Default 10,000.
    pub max_connections: u32,
    /// Slowloris guard: the whole request head must arrive within this. Default 10s.
    #[serde(serialize_with = "crate::ser::duration")]
    pub header_read_timeout: Duration,
    /// Default 64 KiB.
    pub max_request_header_size: u64,
    /// A connection with no request in flight for this long is closed. Default 5m.
    #[serde(serialize_with = "crate::ser::duration")]
    pub idle_timeout: Duration,
}

pub const DEFAULT_LISTENER_LIMITS: ListenerLimits = ListenerLimits {
    max_connections: 10_000,
    header_read_timeout: Duration::from_secs(10),
    max_request_header_size: 64 * 1024,
    idle_timeout: Duration::from_secs(300),
};

impl Default for ListenerLimits {
    fn default() -> Self {
        DEFAULT_LISTENER_LIMITS
    }
}

// ---------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------

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

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A number, or `"auto"`, as written in the YAML.
impl serde::Serialize for WorkerThreads {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            WorkerThreads::Fixed(n) => s.serialize_u16(*n),
            WorkerThreads::Auto => s.serialize_str("auto"),
        }
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

/// `"stdout"` or the file path, as written in the YAML.
impl serde::Serialize for AccessLogPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AccessLogPath::Stdout => s.serialize_str("stdout"),
            AccessLogPath::File(p) => s.collect_str(&p.display()),
        }
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

// ---------------------------------------------------------------------------------------
// Clusters
// ---------------------------------------------------------------------------------------

#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct Cluster {
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    pub discovery: Option<Discovery>,
    pub protocol: UpstreamProtocol,
    pub load_balancer: LoadBalancer,
    pub hash: Option<HashPolicy>,
    pub balancer_tuning: BalancerTuning,
    /// Default 1s.
    #[serde(serialize_with = "crate::ser::duration")]
    pub connect_timeout: Duration,
    /// Pooled idle connections are closed after this. Default 60s.
    #[serde(serialize_with = "crate::ser::duration")]
    pub idle_timeout: Duration,
    pub limits: ClusterLimits,
    pub circuit_breaker: Option<CircuitBreaker>,
    pub health_check: Option<HealthCheck>,
    pub tls: Option<ClientTls>,
    /// Service virtual addresses that stand for this cluster (`vip`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vip: Option<Vip>,
}

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub address: Address,
    /// Default 1.
    pub weight: u32,
    /// The endpoint's zone, when known (Kubernetes EndpointSlices say it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// The endpoint runs meshwork: connections to it are meshed when `mesh` is set.
    pub meshed: bool,
}

impl Endpoint {
    /// An endpoint of weight 1, no zone, not marked meshed.
    pub fn at(address: Address) -> Self {
        Endpoint {
            address,
            weight: 1,
            zone: None,
            meshed: false,
        }
    }
}

/// Where meshwork-control finds a cluster's endpoints.
#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum Discovery {
    Dns(DnsDiscovery),
    Kubernetes {
        kubernetes: crate::units::ServicePort,
    },
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct DnsDiscovery {
    pub dns: Address,
    /// Default 5s.
    #[serde(serialize_with = "crate::ser::duration")]
    pub refresh: Duration,
}

#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    Http1,
    /// h2c in plaintext, h2 over TLS.
    Http2,
    /// ALPN over TLS.
    Auto,
}

#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancer {
    RoundRobin,
    WeightedRoundRobin,
    Random,
    LeastRequest,
    PeakEwma,
    RingHash,
    Maglev,
}

/// Settings of the balancers that have any (the cluster's `ring_hash`, `maglev` and
/// `peak_ewma` fields, a meshwork extension of the format).
#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct BalancerTuning {
    /// `ring_hash.ring_size`; `None`: 160 points per unit of weight.
    pub ring_size: Option<u32>,
    /// `maglev.table_size` (prime); `None`: 65537, or larger for big clusters.
    pub maglev_table_size: Option<u32>,
    /// `peak_ewma.decay`. Default 10s.
    #[serde(serialize_with = "crate::ser::duration")]
    pub ewma_decay: Duration,
}

pub const DEFAULT_EWMA_DECAY: Duration = Duration::from_secs(10);

impl Default for BalancerTuning {
    fn default() -> Self {
        Self {
            ring_size: None,
            maglev_table_size: None,
            ewma_decay: DEFAULT_EWMA_DECAY,
        }
    }
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HashPolicy {
    Header(#[serde(serialize_with = "crate::ser::header_name")] http::HeaderName),
    Cookie(String),
    SourceIp,
}

#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterLimits {
    pub max_connections: u32,
    pub max_pending: u32,
    pub max_requests: u32,
    pub max_retries: u32,
}

/// Envoy's defaults.
pub const DEFAULT_CLUSTER_LIMITS: ClusterLimits = ClusterLimits {
    max_connections: 1024,
    max_pending: 1024,
    max_requests: 1024,
    max_retries: 3,
};

impl Default for ClusterLimits {
    fn default() -> Self {
        DEFAULT_CLUSTER_LIMITS
    }
}

#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct CircuitBreaker {
    pub consecutive_failures: Option<u32>,
    pub failure_rate: Option<FailureRate>,
    #[serde(serialize_with = "crate::ser::duration")]
    pub open_duration: Duration,
    #[serde(serialize_with = "crate::ser::duration")]
    pub max_open_duration: Duration,
    pub half_open_requests: u32,
    pub max_ejected_percent: u8,
    /// Latency-based ejection, when configured.
    pub latency: Option<LatencyEjection>,
    /// How long a returning endpoint's share ramps up (`None`: full share at once).
    #[serde(serialize_with = "crate::ser::opt_duration")]
    pub slow_start: Option<Duration>,
}

/// `circuit_breaker.latency`: eject an endpoint whose latency `percentile` over `window`
/// stays above `factor` x the median of the other endpoints' and above `min_latency`,
/// each judged on at least `min_requests` finished requests.
#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct LatencyEjection {
    pub factor: f64,
    #[serde(serialize_with = "crate::ser::duration")]
    pub min_latency: Duration,
    pub min_requests: u32,
    #[serde(serialize_with = "crate::ser::duration")]
    pub window: Duration,
    pub percentile: u8,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct FailureRate {
    pub threshold: f64,
    pub min_requests: u32,
    #[serde(serialize_with = "crate::ser::duration")]
    pub window: Duration,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub kind: HealthCheckKind,
    #[serde(serialize_with = "crate::ser::duration")]
    pub interval: Duration,
    #[serde(serialize_with = "crate::ser::duration")]
    pub timeout: Duration,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    Http {
        path: String,
        expected_status: Vec<u16>,
    },
    Tcp,
}

/// TLS origination (cluster `tls`, control plane `tls`).
#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ClientTls {
    /// `None` = the `identity` trust bundle (clusters).
    pub ca: Option<PathBuf>,
    /// `None` (with `key`) = the `identity` certificate when there is one (clusters).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub server_name: Option<String>,
    /// Accepted peer SPIFFE IDs; empty = any peer chaining to `ca`.
    pub identities: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// Identity, authorization, observability
// ---------------------------------------------------------------------------------------

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub trust_bundle: PathBuf,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationPolicy {
    pub listener: String,
    pub default: AuthorizationDefault,
    pub allow: Vec<AuthorizationRule>,
}

#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthorizationDefault {
    Deny,
    Allow,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationRule {
    /// Peer identities; `*` = any authenticated peer. Empty = anyone.
    pub from: Vec<String>,
    /// Empty = any method.
    pub methods: Vec<String>,
    /// Globs (`*` matches any run of characters). Empty = any path.
    pub paths: Vec<String>,
    /// Original destination ports (`auto` listeners). Empty = any port.
    pub ports: Vec<u16>,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct Tracing {
    pub propagation: Vec<Propagation>,
    pub sampling: f64,
    pub otlp: Option<Otlp>,
    pub service_name: String,
}

#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Propagation {
    W3c,
    B3,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Otlp {
    /// An `http://` or `https://` URL.
    pub endpoint: String,
    /// TLS settings for an `https://` endpoint (`None`: the system's trust store, the
    /// endpoint's host as the name).
    pub tls: Option<ClientTls>,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct AccessLog {
    pub format: AccessLogFormat,
    pub path: AccessLogPath,
}

#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFormat {
    Json,
    Text,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessLogPath {
    Stdout,
    File(PathBuf),
}
