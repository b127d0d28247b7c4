//! Clusters for unit tests: real runtimes (pools, breakers, gates) over given addresses,
//! built without a config file.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use meshwork_config::model::{self, UpstreamProtocol};

use super::ClusterRuntime;
use super::connector::{EndpointConnector, Transport};
use super::limits::ClusterGates;
use crate::metrics::Metrics;
use crate::metrics::handles::EndpointHandles;

/// A breaker opening at the first failure, open 10 s (then 20 s, up to 40 s), closing
/// after one successful trial.
pub fn one_strike_breaker() -> model::CircuitBreaker {
    model::CircuitBreaker {
        consecutive_failures: Some(1),
        failure_rate: None,
        open_duration: Duration::from_secs(10),
        max_open_duration: Duration::from_secs(40),
        half_open_requests: 1,
        max_ejected_percent: 100,
        latency: None,
        slow_start: None,
    }
}

/// An HTTP/1 cluster `name` of `endpoints` with `breaker` and `limits`.
pub fn cluster(
    name: &str,
    endpoints: &[SocketAddr],
    breaker: Option<model::CircuitBreaker>,
    limits: model::ClusterLimits,
) -> Arc<ClusterRuntime> {
    let mut config = super::original_dst::cluster_config(UpstreamProtocol::Http1);
    config.name = name.into();
    config.endpoints = endpoints
        .iter()
        .map(|a| {
            model::Endpoint::at(model::Address {
                host: a.ip().to_string(),
                port: a.port(),
            })
        })
        .collect();
    config.circuit_breaker = breaker;
    config.limits = limits;
    Arc::new(ClusterRuntime::new(config, None, None, &Metrics::new()))
}

/// A plaintext connector to `address` (2 s connect timeout) and the gates of a cluster
/// `c` allowing `max_connections`.
pub fn plain_connector(
    address: &model::Address,
    max_connections: u32,
) -> (EndpointConnector, ClusterGates) {
    let metrics = Metrics::new();
    let limits = model::ClusterLimits {
        max_connections,
        max_pending: 100,
        max_requests: 100,
        max_retries: 3,
    };
    let gates = ClusterGates::new("c", &limits, &metrics);
    let handles = Arc::new(EndpointHandles::new(&metrics, "c", &address.to_string()));
    let connector = EndpointConnector::new(
        address.clone(),
        Duration::from_secs(2),
        handles,
        gates.connections.clone(),
        Transport::Plain,
    );
    (connector, gates)
}
