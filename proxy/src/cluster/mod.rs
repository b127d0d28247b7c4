//! Clusters at run time: their endpoints, each with its connection pool, and the
//! registry that keeps them across reloads while their config is unchanged.

pub mod connector;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use meshwork_config::model::{self, Address, UpstreamProtocol};

use self::connector::EndpointConnector;
use crate::http::RequestBody;
use crate::metrics::Metrics;
use crate::metrics::handles::EndpointHandles;

/// The pooled HTTP client of one endpoint: an HTTP/1 keep-alive pool or one multiplexed
/// HTTP/2 connection, depending on the cluster's protocol.
pub type EndpointClient = Client<EndpointConnector, RequestBody>;

/// One upstream address and its connection pool.
#[derive(Debug)]
pub struct Endpoint {
    pub address: Address,
    pub client: EndpointClient,
    pub metrics: Arc<EndpointHandles>,
    /// Requests sent and not yet answered (response head), for `/clusters` and balancers.
    pub in_flight: AtomicUsize,
}

/// Counts a request against its endpoint's `in_flight` until dropped.
#[derive(Debug)]
pub struct InFlight<'a>(&'a Endpoint);

impl<'a> InFlight<'a> {
    pub fn new(endpoint: &'a Endpoint) -> Self {
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(endpoint)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A cluster's live state: built once per distinct config, shared by every snapshot
/// that contains that same config.
#[derive(Debug)]
pub struct ClusterRuntime {
    pub config: model::Cluster,
    pub endpoints: Vec<Arc<Endpoint>>,
    next: AtomicUsize,
}

impl ClusterRuntime {
    pub fn new(config: model::Cluster, metrics: &Metrics) -> Self {
        let endpoints = config
            .endpoints
            .iter()
            .map(|ep| {
                let handles = Arc::new(EndpointHandles::new(
                    metrics,
                    &config.name,
                    &ep.address.to_string(),
                ));
                let connector = EndpointConnector::new(
                    ep.address.clone(),
                    config.connect_timeout,
                    handles.clone(),
                );
                let client = Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(config.idle_timeout)
                    .pool_timer(TokioTimer::new())
                    .timer(TokioTimer::new())
                    .http2_only(config.protocol == UpstreamProtocol::Http2)
                    .build(connector);
                Arc::new(Endpoint {
                    address: ep.address.clone(),
                    client,
                    metrics: handles,
                    in_flight: AtomicUsize::new(0),
                })
            })
            .collect();
        Self {
            config,
            endpoints,
            next: AtomicUsize::new(0),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Round robin over the endpoints; `None` when the cluster has none.
    pub fn pick_round_robin(&self) -> Option<&Arc<Endpoint>> {
        let n = self.endpoints.len();
        if n == 0 {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
        Some(&self.endpoints[i])
    }
}

/// Keeps cluster state (pools) alive across reloads for clusters whose config did not
/// change; a changed or removed cluster's state goes away with the last snapshot using it.
#[derive(Debug)]
pub struct ClusterRegistry {
    clusters: std::sync::Mutex<HashMap<String, Arc<ClusterRuntime>>>,
    metrics: Metrics,
}

impl ClusterRegistry {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            clusters: Default::default(),
            metrics,
        }
    }

    /// The runtime clusters for `configs`, reusing unchanged ones. Only called when a
    /// snapshot is built, never on the request path.
    pub fn resolve(&self, configs: &[model::Cluster]) -> HashMap<String, Arc<ClusterRuntime>> {
        let mut known = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = HashMap::with_capacity(configs.len());
        for config in configs {
            let runtime = match known.get(&config.name) {
                Some(existing) if existing.config == *config => existing.clone(),
                _ => Arc::new(ClusterRuntime::new(config.clone(), &self.metrics)),
            };
            next.insert(config.name.clone(), runtime);
        }
        *known = next.clone();
        next
    }
}
