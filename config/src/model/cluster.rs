//! Clusters: where requests go, and how their endpoints are picked, checked and
//! protected.

use std::path::PathBuf;
use std::time::Duration;

use super::{Address, Vip};

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
