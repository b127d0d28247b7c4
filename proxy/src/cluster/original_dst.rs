//! The `original-destination` cluster of an `auto` listener: HTTP that matches none of the
//! listener's routes goes to where its connection was going (as Envoy's ORIGINAL_DST
//! cluster). Its endpoints are made on demand, one per destination address and HTTP
//! version, and share one set of metric labels: a series per destination IP would let
//! any app (or any scanner of the pod) grow the metrics without bound.

use std::net::SocketAddr;
use std::sync::Arc;

use dashmap::DashMap;
use std::time::Duration;

use meshwork_config::model::{self, Address, UpstreamProtocol};

use super::Endpoint;
use super::connector::Transport;
use super::limits::ClusterGates;
use crate::mesh::connect::MeshDial;
use crate::mesh::{MeshPlan, MeshProtocol};
use crate::metrics::Metrics;
use crate::metrics::handles::EndpointHandles;

/// The cluster's name in metrics, the access log and `/clusters` (a cluster of the
/// config may not take it).
pub const ORIGINAL_DESTINATION: &str = meshwork_config::model::ORIGINAL_DESTINATION_CLUSTER;

/// How long a connection to an original destination may take (Istio's passthrough
/// cluster uses 10 s too): the destination is whatever the app dialed, near or far.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Destinations kept with their connection pools; past this, endpoints no request is
/// using are dropped first, and a destination that still finds no room gets an endpoint
/// of its own that is not kept.
const MAX_KEPT: usize = 1024;

/// Where an original destination's requests go, by HTTP version, and the meshed peer's
/// inbound port when it is reached meshed.
/// Destination, HTTP/2, the meshed peer's inbound port, the transparent source.
type Key = (SocketAddr, bool, Option<u16>, Option<std::net::IpAddr>);

/// Endpoints made on demand for the original destinations of one listener's connections.
#[derive(Debug)]
pub struct OriginalDestinations {
    http1: model::Cluster,
    http2: model::Cluster,
    /// Sharded: every request of an `auto` listener's unrouted HTTP looks its endpoint
    /// up here, so one lock for all of them would be contended.
    kept: DashMap<Key, Arc<Endpoint>>,
    handles: Arc<EndpointHandles>,
    epoch: std::time::Instant,
    metrics: Metrics,
}

/// The config an original-destination endpoint is built with: no health check, no
/// breaker (the app's own destination is not ours to eject), default limits.
pub fn cluster_config(protocol: UpstreamProtocol) -> model::Cluster {
    model::Cluster {
        name: ORIGINAL_DESTINATION.into(),
        endpoints: Vec::new(),
        discovery: None,
        protocol,
        load_balancer: model::LoadBalancer::RoundRobin,
        hash: None,
        balancer_tuning: Default::default(),
        connect_timeout: CONNECT_TIMEOUT,
        idle_timeout: model::DEFAULT_POOL_IDLE_TIMEOUT,
        limits: Default::default(),
        circuit_breaker: None,
        health_check: None,
        tls: None,
        vip: None,
    }
}

impl OriginalDestinations {
    pub fn new(metrics: &Metrics) -> Self {
        Self {
            http1: cluster_config(UpstreamProtocol::Http1),
            http2: cluster_config(UpstreamProtocol::Http2),
            kept: DashMap::new(),
            handles: Arc::new(EndpointHandles::new(
                metrics,
                ORIGINAL_DESTINATION,
                ORIGINAL_DESTINATION,
            )),
            epoch: std::time::Instant::now(),
            metrics: metrics.clone(),
        }
    }

    /// The endpoint for requests of HTTP version `h2` to `destination`, with its pool;
    /// its connections are meshed (mutual TLS to the peer's inbound port) with `mesh`,
    /// or opened from `transparent_source` (a TPROXY-delivered client's address, so the
    /// app sees who called: one pool per client address).
    pub fn endpoint(
        &self,
        destination: SocketAddr,
        h2: bool,
        gates: &ClusterGates,
        mesh: Option<&Arc<MeshPlan>>,
        transparent_source: Option<std::net::IpAddr>,
    ) -> Arc<Endpoint> {
        let key = (
            destination,
            h2,
            mesh.map(|m| m.mesh.inbound_port),
            transparent_source,
        );
        if let Some(endpoint) = self.kept.get(&key) {
            return endpoint.clone();
        }
        let config = if h2 { &self.http2 } else { &self.http1 };
        let endpoint = Arc::new(Endpoint::build(
            Address {
                host: destination.ip().to_string(),
                port: destination.port(),
            },
            config,
            gates,
            self.handles.clone(),
            mesh.map_or(
                transparent_source.map_or(Transport::Plain, Transport::TransparentFrom),
                |plan| {
                    let protocol = if h2 {
                        MeshProtocol::Http2
                    } else {
                        MeshProtocol::Http1
                    };
                    Transport::Meshed(MeshDial::new(plan.clone(), destination, protocol))
                },
            ),
            self.epoch,
            &self.metrics,
        ));
        if self.kept.len() >= MAX_KEPT {
            // Only this map holds them: no request is using them.
            self.kept.retain(|_, e| Arc::strong_count(e) > 1);
        }
        if self.kept.len() < MAX_KEPT {
            // A racing request for the same key keeps whichever endpoint got in first.
            return self.kept.entry(key).or_insert(endpoint).clone();
        }
        endpoint
    }

    /// How many destinations are kept with their pools now.
    pub fn kept(&self) -> usize {
        self.kept.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_endpoint_per_destination_and_version_and_no_more_than_the_cap() {
        let metrics = Metrics::new();
        let od = OriginalDestinations::new(&metrics);
        let gates = ClusterGates::new(ORIGINAL_DESTINATION, &Default::default(), &metrics);
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let first = od.endpoint(a, false, &gates, None, None);
        assert!(Arc::ptr_eq(
            &first,
            &od.endpoint(a, false, &gates, None, None)
        ));
        assert!(!Arc::ptr_eq(
            &first,
            &od.endpoint(a, true, &gates, None, None)
        ));
        for port in 1..=(MAX_KEPT as u16 + 10) {
            let _ = od.endpoint(
                SocketAddr::from(([10, 0, 0, 2], port)),
                false,
                &gates,
                None,
                None,
            );
        }
        assert!(od.kept() <= MAX_KEPT, "kept {}", od.kept());
        // The one still in use survived the sweep.
        assert!(Arc::ptr_eq(
            &first,
            &od.endpoint(a, false, &gates, None, None)
        ));
    }
}
