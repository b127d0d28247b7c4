//! Raw clusters: endpoints, upstream protocol, load balancing and resilience settings.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{DurationText, RawClientTls};
use crate::spanned::{Field, List, Spanned};

/// An upstream cluster.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Cluster")]
pub(crate) struct RawCluster {
    /// Unique name. Required.
    pub name: Field<String>,
    /// Static endpoints: `host:port` strings or `{address, weight}`. Required unless `discovery` is set.
    pub endpoints: List<RawEndpoint>,
    /// Endpoints from DNS, resolved by meshwork-control (only in its directory).
    pub discovery: Field<RawDiscovery>,
    /// `http1`, `http2` (h2c, or h2 over TLS) or `auto` (h2 or HTTP/1.1 as chosen by ALPN; needs `tls`). Default is `http1`.
    pub protocol: Field<UpstreamProtocolName>,
    /// Load balancing algorithm. Default is `round_robin`.
    pub load_balancer: Field<LoadBalancerName>,
    /// Hash key for `ring_hash` / `maglev`: exactly one of `header`, `cookie`, `source_ip: true`.
    pub hash: Field<RawHash>,
    /// Tuning of `load_balancer: ring_hash` (a meshwork extension of the format).
    pub ring_hash: Field<RawRingHash>,
    /// Tuning of `load_balancer: maglev` (a meshwork extension of the format).
    pub maglev: Field<RawMaglev>,
    /// Tuning of `load_balancer: peak_ewma` (a meshwork extension of the format).
    pub peak_ewma: Field<RawPeakEwma>,
    /// Time to establish a connection. Default is `1s`.
    pub connect_timeout: Field<DurationText>,
    /// Pooled idle connections are closed after this. Default is `60s`.
    pub idle_timeout: Field<DurationText>,
    /// Envoy-style thresholds: excess fails fast with 503 `overflow`.
    pub limits: Field<RawClusterLimits>,
    /// Per-endpoint circuit breaker: closed -> open -> half-open -> closed.
    pub circuit_breaker: Field<RawCircuitBreaker>,
    /// Active health checking: an endpoint failing it takes no traffic.
    pub health_check: Field<RawHealthCheck>,
    /// Originate TLS / mTLS to the endpoints.
    pub tls: Field<RawClientTls>,
    /// Service virtual addresses (a Kubernetes Service's ClusterIP and port) that stand
    /// for this cluster: a connection an `auto` listener intercepts on its way to one of
    /// them is balanced over this cluster's endpoints instead of going to the address.
    /// meshwork-control `--kubernetes` sets it on the clusters it makes of Service ports.
    pub vip: Field<RawVip>,
}

/// The virtual addresses of a cluster and what they speak.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Vip")]
pub(crate) struct RawVip {
    /// `ip:port` addresses (IP literals, no DNS names; not loopback or unspecified, which
    /// are never intercepted); each may stand for one cluster only. Required.
    pub addresses: List<String>,
    /// What connections to these addresses speak, as an `auto` listener's `ports` hint
    /// (`http`, `opaque`, `auto`), taking precedence over the listener's hint for the
    /// port. Default is `auto`.
    pub protocol: Field<super::PortProtocolName>,
}

/// An endpoint: `host:port`, or `{address, weight}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename = "$meshwork::Shape")]
#[schemars(untagged, rename = "Endpoint")]
pub(crate) enum RawEndpoint {
    /// `host:port` (host may be a DNS name).
    #[serde(rename = "scalar")]
    Address(Spanned<String>),
    /// An endpoint with a weight.
    #[serde(rename = "map")]
    Weighted(RawWeightedEndpoint),
}

/// An endpoint with a weight.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "WeightedEndpoint")]
pub(crate) struct RawWeightedEndpoint {
    /// `host:port` (host may be a DNS name). Required.
    pub address: Field<String>,
    /// Relative weight, 1 or more. Default is 1.
    pub weight: Field<u32>,
    /// The zone the endpoint runs in (meshwork-control sets it from the EndpointSlice's
    /// `zone`). Informational for now: shown by `explain`, not used for picking.
    pub zone: Field<String>,
    /// The endpoint runs a meshwork sidecar: with `mesh` configured, connections to it
    /// are meshed (mTLS with the proxy's identity) even outside `mesh.networks`.
    /// meshwork-control sets it for pods that `meshwork inject` marked. Default is false.
    pub meshed: Field<bool>,
}

/// Endpoints found by meshwork-control: from DNS (`dns`) or from a Kubernetes Service
/// port (`kubernetes`); exactly one of them.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Discovery")]
pub(crate) struct RawDiscovery {
    /// `name:port` to resolve.
    pub dns: Field<String>,
    /// `NAME.NAMESPACE.svc:PORT`: the ready endpoints of that Service port, watched by
    /// meshwork-control `--kubernetes` (a fragment cluster with this takes the place of
    /// the cluster meshwork-control makes of the port, keeping its own settings).
    pub kubernetes: Field<String>,
    /// How often to resolve again. Default is `5s`.
    pub refresh: Field<DurationText>,
}

/// Upstream protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "UpstreamProtocol")]
pub(crate) enum UpstreamProtocolName {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2: h2c in plaintext, h2 over TLS.
    Http2,
    /// Chosen by ALPN over TLS.
    Auto,
}

/// Load balancing algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "LoadBalancer")]
pub(crate) enum LoadBalancerName {
    /// Each endpoint in turn (weights ignored).
    RoundRobin,
    /// In turn, by endpoint weight.
    WeightedRoundRobin,
    /// At random, in proportion to endpoint weights.
    Random,
    /// Fewest requests in flight of two random picks.
    LeastRequest,
    /// Lowest moving-average latency times load (Linkerd's default).
    PeakEwma,
    /// Consistent hashing on a ring (needs `hash`).
    RingHash,
    /// Maglev consistent hashing (needs `hash`).
    Maglev,
}

/// `ring_hash` tuning.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RingHash")]
pub(crate) struct RawRingHash {
    /// Points on the ring in all, shared by weight (Envoy's `minimum_ring_size`); 1 to
    /// 8388608. More points spread keys more evenly and cost memory (8 bytes each).
    /// Default is 160 per unit of weight.
    pub ring_size: Field<u32>,
}

/// `maglev` tuning.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Maglev")]
pub(crate) struct RawMaglev {
    /// Lookup table size: a prime larger than the number of endpoints (Maglev wants at
    /// least 100 slots per endpoint for even shares). Default is 65537 (a larger prime
    /// past 655 endpoints).
    pub table_size: Field<u32>,
}

/// `peak_ewma` tuning.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "PeakEwma")]
pub(crate) struct RawPeakEwma {
    /// How fast past latencies are forgotten: an observation's weight falls to 1/e
    /// after this long. Default is `10s` (linkerd2-proxy's default).
    pub decay: Field<DurationText>,
}

/// Hash key: exactly one field.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Hash")]
pub(crate) struct RawHash {
    /// Hash this request header.
    pub header: Field<String>,
    /// Hash this cookie.
    pub cookie: Field<String>,
    /// `true`: hash the client's IP address.
    pub source_ip: Field<bool>,
}

/// Cluster limits.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ClusterLimits")]
pub(crate) struct RawClusterLimits {
    /// Connections to all endpoints. Default is 1024.
    pub max_connections: Field<u32>,
    /// Requests waiting for a connection. Default is 1024.
    pub max_pending: Field<u32>,
    /// Requests in flight. Default is 1024.
    pub max_requests: Field<u32>,
    /// Retries in flight. Default is 3.
    pub max_retries: Field<u32>,
}

/// Circuit breaker: closed -> open -> half-open -> closed, per endpoint.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "CircuitBreaker")]
pub(crate) struct RawCircuitBreaker {
    /// Open after this many failures in a row. Default is 5 when `failure_rate` is absent.
    pub consecutive_failures: Field<u32>,
    /// Open when the failure rate over a window passes a threshold.
    pub failure_rate: Field<RawFailureRate>,
    /// How long an endpoint stays open; doubles on each re-open. Default is `10s`.
    pub open_duration: Field<DurationText>,
    /// Cap on `open_duration` doubling. Default is `5m`.
    pub max_open_duration: Field<DurationText>,
    /// Trial requests in half-open; all must succeed to close. Default is 3.
    pub half_open_requests: Field<u32>,
    /// Never open more than this share of endpoints, 0 to 100. Default is 50.
    pub max_ejected_percent: Field<u8>,
    /// Also open an endpoint whose latency stays well above the rest of the cluster's
    /// (latency-based outlier ejection). Off when absent.
    pub latency: Field<RawLatencyEjection>,
    /// After an ejection ends, the endpoint's share of picks ramps up linearly from
    /// 10% to its full share over this time. Off (full share at once) when absent.
    pub slow_start: Field<DurationText>,
}

/// Latency-based ejection: an endpoint whose windowed latency percentile stays above
/// `factor` x the median of the other endpoints' (and above `min_latency`) is opened.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "LatencyEjection")]
pub(crate) struct RawLatencyEjection {
    /// How many times slower than the median of the other endpoints an endpoint must be
    /// to be ejected, more than 1. Default is 3.
    pub factor: Field<f64>,
    /// Never eject an endpoint whose latency is below this, however the others do.
    /// Default is `20ms`.
    pub min_latency: Field<DurationText>,
    /// Fewest finished requests in the window before an endpoint is judged, or counted
    /// in the others' median. Default is 20.
    pub min_requests: Field<u32>,
    /// How far back latencies count; judged every tenth of it. Default is `10s`.
    pub window: Field<DurationText>,
    /// Which latency percentile is compared, 1 to 99. Default is 50 (the median).
    pub percentile: Field<u32>,
}

/// Failure-rate trigger.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FailureRate")]
pub(crate) struct RawFailureRate {
    /// Failure share that opens the breaker, 0 to 1. Required.
    pub threshold: Field<f64>,
    /// Fewest requests in the window before the rate counts. Default is 20.
    pub min_requests: Field<u32>,
    /// Window length. Default is `10s`.
    pub window: Field<DurationText>,
}

/// Active health check: exactly one of `http`, `tcp`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "HealthCheck")]
pub(crate) struct RawHealthCheck {
    /// HTTP check.
    pub http: Field<RawHttpCheck>,
    /// TCP connect check: `tcp: {}`.
    pub tcp: Field<RawTcpCheck>,
    /// Time between checks. Default is `5s`.
    pub interval: Field<DurationText>,
    /// Time a check may take. Default is `1s`.
    pub timeout: Field<DurationText>,
    /// Failures in a row that make an endpoint unhealthy. Default is 3.
    pub unhealthy_threshold: Field<u32>,
    /// Successes in a row that make it healthy again. Default is 2.
    pub healthy_threshold: Field<u32>,
}

/// HTTP health check.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "HttpCheck")]
pub(crate) struct RawHttpCheck {
    /// Path to GET (must start with `/`). Required.
    pub path: Field<String>,
    /// Statuses that count as healthy. Default is `[200]`.
    pub expected_status: List<u16>,
}

/// TCP health check (no settings).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "TcpCheck")]
pub(crate) struct RawTcpCheck {}
