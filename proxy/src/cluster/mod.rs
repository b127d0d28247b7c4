//! Clusters at run time: their endpoints, each with its connection pool, and the
//! registry that keeps them across reloads while their config is unchanged.

pub mod breaker;
pub mod connector;
pub mod health;
pub mod limits;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use meshwork_config::model::{self, Address, UpstreamProtocol};

use self::breaker::{BreakerState, CircuitBreaker, EjectionBudget};
use self::connector::EndpointConnector;
use self::limits::ClusterGates;
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
    pub breaker: Option<CircuitBreaker>,
    /// Set when the cluster has an active health check.
    pub health: Option<health::Health>,
}

impl Endpoint {
    pub fn is_healthy(&self) -> bool {
        self.health.as_ref().is_none_or(|h| h.is_healthy())
    }

    /// Whether the breaker lets a request through now (always, without a breaker).
    pub fn admit(&self) -> bool {
        let Some(breaker) = &self.breaker else {
            return true;
        };
        let (admitted, transition) = breaker.admit();
        if let Some(t) = transition {
            self.on_transition(t);
        }
        admitted
    }

    /// Reports an attempt's outcome to the breaker.
    pub fn report(&self, success: bool, ejection: &EjectionBudget) {
        let Some(breaker) = &self.breaker else { return };
        if let Some(t) = breaker.record(success, ejection) {
            self.on_transition(t);
        }
    }

    /// Logged once per change, never per request.
    fn on_transition(&self, (from, to): breaker::Transition) {
        self.metrics.breaker_state.set(to as i64);
        self.metrics.breaker_transition(to.as_str());
        match to {
            BreakerState::Open => {
                tracing::warn!(endpoint = %self.address, from = from.as_str(), "circuit breaker opened")
            }
            _ => {
                tracing::info!(endpoint = %self.address, from = from.as_str(), to = to.as_str(), "circuit breaker state changed")
            }
        }
    }
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
    /// How many endpoints the breakers may hold open at once.
    pub ejection: EjectionBudget,
    /// Concurrent connections, requests and retries allowed to this cluster.
    pub gates: ClusterGates,
    /// The active health checker, stopped when the cluster goes away.
    health_checker: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for ClusterRuntime {
    fn drop(&mut self) {
        if let Some(task) = &self.health_checker {
            task.abort();
        }
    }
}

impl ClusterRuntime {
    pub fn new(config: model::Cluster, metrics: &Metrics) -> Self {
        let gates = ClusterGates::new(&config.name, &config.limits, metrics);
        let endpoints: Vec<Arc<Endpoint>> = config
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
                    gates.connections.clone(),
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
                    breaker: config.circuit_breaker.clone().map(CircuitBreaker::new),
                    health: config.health_check.as_ref().map(|_| {
                        health::Health::new(metrics, &config.name, &ep.address.to_string())
                    }),
                })
            })
            .collect();
        let max_ejected = config
            .circuit_breaker
            .as_ref()
            .map_or(100, |b| b.max_ejected_percent);
        let health_checker = config.health_check.clone().and_then(|hc| {
            health::spawn(
                config.name.clone(),
                hc,
                config.protocol,
                config.connect_timeout,
                endpoints.clone(),
            )
        });
        Self {
            health_checker,
            ejection: EjectionBudget::new(endpoints.len(), max_ejected),
            gates,
            config,
            endpoints,
            next: AtomicUsize::new(0),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The next healthy endpoint in round-robin order whose breaker admits a request,
    /// preferring one other than `avoid` (the endpoint a retry follows).
    ///
    /// # Errors
    /// `NoHealthyEndpoint` when the cluster has no endpoint passing its health check (it
    /// fails fast rather than sending to endpoints known to be down); `CircuitOpen` when
    /// every healthy endpoint's breaker refuses.
    pub fn pick(
        &self,
        avoid: Option<&Arc<Endpoint>>,
    ) -> Result<&Arc<Endpoint>, crate::http::ProxyError> {
        let n = self.endpoints.len();
        if n == 0 {
            return Err(crate::http::ProxyError::NoHealthyEndpoint);
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut avoided = None;
        let mut any_healthy = false;
        for i in 0..n {
            let ep = &self.endpoints[(start + i) % n];
            // Out of rotation after failing its active health check.
            if !ep.is_healthy() {
                continue;
            }
            any_healthy = true;
            if n > 1 && avoid.is_some_and(|a| Arc::ptr_eq(a, ep)) {
                avoided = Some(ep);
                continue;
            }
            if ep.admit() {
                return Ok(ep);
            }
        }
        match avoided {
            Some(ep) if ep.admit() => Ok(ep),
            _ if !any_healthy => Err(crate::http::ProxyError::NoHealthyEndpoint),
            _ => Err(crate::http::ProxyError::CircuitOpen),
        }
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
