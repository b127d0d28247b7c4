//! Clusters at run time: their endpoints, each with its connection pool, and the
//! registry that keeps them across reloads while their config is unchanged.

pub mod attempt;
pub mod breaker;
pub mod connector;
pub mod failure;
pub mod health;
pub mod http1_client;
pub mod latency;
pub mod limits;
pub mod opaque;
pub mod original_dst;
pub mod pool;
pub mod slow_start;
#[cfg(test)]
pub mod test_cluster;
pub mod upgrade_conn;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use meshwork_config::model::{self, Address, UpstreamProtocol};

use self::breaker::{BreakerState, CircuitBreaker, EjectionBudget, EjectionCause};
use self::connector::EndpointConnector;
use self::limits::ClusterGates;
use crate::balance::peak_ewma::{self, PeakEwma};
use crate::balance::{Balancer, Candidates, EndpointSpec, PickError};
use crate::metrics::Metrics;
use crate::metrics::handles::EndpointHandles;

/// One upstream address and its connection pool.
#[derive(Debug)]
pub struct Endpoint {
    pub address: Address,
    /// `address` as text, formatted once: access log lines and spans carry it.
    pub address_text: Box<str>,
    /// Its connection pool: HTTP/1 keep-alive connections, or one multiplexed HTTP/2
    /// connection, depending on the cluster's protocol.
    pub client: pool::UpstreamClient,
    /// Opens connections to this endpoint: the pool's, and TCP listeners' own.
    pub connector: EndpointConnector,
    pub metrics: Arc<EndpointHandles>,
    /// Requests sent and not yet answered (response head), for `/clusters` and balancers.
    pub in_flight: AtomicUsize,
    pub breaker: Option<CircuitBreaker>,
    /// Set when the cluster has an active health check.
    pub health: Option<health::Health>,
    /// Response-time estimate, read by `peak_ewma` (kept for every balancer: cheap,
    /// and `/clusters` can show it).
    pub latency: PeakEwma,
    /// TLS origination settings, when the cluster has `tls` (health checks and TCP
    /// listeners open connections with them too).
    pub tls: Option<Arc<connector::UpstreamTls>>,
    /// Recent latencies, judged against the cluster's (`circuit_breaker.latency`).
    pub latency_window: Option<latency::window::LatencyWindow>,
    /// The ramp of its share after a return from ejection (`circuit_breaker.slow_start`).
    pub slow_start: Option<slow_start::SlowStart>,
}

impl Endpoint {
    /// One endpoint of cluster `config` at `address`, with its connector and pool.
    /// `epoch`: the cluster's latency clock, shared by its endpoints so `peak_ewma`
    /// compares them.
    pub fn build(
        address: Address,
        config: &model::Cluster,
        gates: &ClusterGates,
        handles: Arc<EndpointHandles>,
        transport: connector::Transport,
        epoch: std::time::Instant,
        metrics: &Metrics,
    ) -> Self {
        let tls = transport.tls().cloned();
        let connector = EndpointConnector::new(
            address.clone(),
            config.connect_timeout,
            handles.clone(),
            gates.connections.clone(),
            transport,
        );
        let address_text: Box<str> = address.to_string().into();
        let client = pool::UpstreamClient::new(config, &connector, gates, &address_text);
        Endpoint {
            address_text,
            client,
            connector,
            metrics: handles,
            in_flight: AtomicUsize::new(0),
            breaker: config.circuit_breaker.clone().map(CircuitBreaker::new),
            health: config
                .health_check
                .as_ref()
                .map(|_| health::Health::new(metrics, &config.name, &address.to_string())),
            latency: PeakEwma::new(
                peak_ewma::DEFAULT_RTT,
                config.balancer_tuning.ewma_decay,
                epoch,
            ),
            tls,
            address,
            latency_window: config
                .circuit_breaker
                .as_ref()
                .and_then(|b| b.latency.as_ref())
                .map(|l| latency::window::LatencyWindow::new(l.window)),
            slow_start: config
                .circuit_breaker
                .as_ref()
                .and_then(|b| b.slow_start)
                .map(slow_start::SlowStart::new),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.health.as_ref().is_none_or(|h| h.is_healthy())
    }

    /// Records the time an attempt waited for its response head, which ended at `now`
    /// (for `peak_ewma` and latency-based ejection; an attempt's end reads the clock once
    /// for everything it records).
    pub fn observe_latency_at(&self, elapsed: std::time::Duration, now: tokio::time::Instant) {
        self.latency.observe(elapsed, now.into_std());
        if let Some(window) = &self.latency_window {
            window.record(elapsed, now);
        }
    }

    /// Records an attempt cut at its deadline after `elapsed`: the endpoint took at
    /// least that long, which latency-based ejection counts (`peak_ewma` learns of it
    /// from the attempts still in flight).
    pub fn observe_cut(&self, elapsed: std::time::Duration) {
        if let Some(window) = &self.latency_window {
            window.record(elapsed, tokio::time::Instant::now());
        }
    }

    /// The share of its picks the endpoint takes now (below 1 during slow start).
    pub fn share(&self) -> f64 {
        self.slow_start
            .as_ref()
            .map_or(1.0, |ramp| ramp.share(tokio::time::Instant::now()))
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

    /// An admitted request ended without an outcome that says anything about this
    /// endpoint (its client went away, a local limit): frees a half-open trial slot.
    pub fn release(&self) {
        if let Some(breaker) = &self.breaker {
            breaker.release();
        }
    }

    /// Logged once per change, never per request.
    fn on_transition(&self, (from, to): breaker::Transition) {
        self.metrics.breaker_state.set(to as i64);
        self.metrics.breaker_transition(to.as_str());
        match to {
            BreakerState::Open => {
                let cause = self.breaker.as_ref().and_then(CircuitBreaker::cause);
                let reason = cause.map_or("unknown", EjectionCause::as_str);
                self.metrics.breaker_ejection(reason);
                if let Some(EjectionCause::Latency { latency, others }) = cause {
                    tracing::warn!(endpoint = %self.address, from = from.as_str(), reason, latency = ?latency, others_median = ?others, "circuit breaker opened: endpoint slower than the rest of its cluster")
                } else {
                    tracing::warn!(endpoint = %self.address, from = from.as_str(), reason, "circuit breaker opened")
                }
            }
            BreakerState::Closed => {
                if let Some(ramp) = &self.slow_start {
                    ramp.begin(tokio::time::Instant::now());
                }
                tracing::info!(endpoint = %self.address, from = from.as_str(), to = to.as_str(), slow_start = self.slow_start.is_some(), "circuit breaker state changed")
            }
            BreakerState::HalfOpen => {
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

/// One unit of an endpoint's load held by an owner that outlives any borrow of the
/// endpoint (a relayed connection): what [`InFlight`] is for a request.
#[derive(Debug)]
pub struct HeldLoad(Arc<Endpoint>);

impl HeldLoad {
    pub fn new(endpoint: Arc<Endpoint>) -> Self {
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(endpoint)
    }

    /// The endpoint whose load this is.
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.0
    }
}

impl Drop for HeldLoad {
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
    /// The `load_balancer`, with its schedule, ring or table built for `endpoints`.
    balancer: Balancer,
    /// How many endpoints the breakers may hold open at once.
    pub ejection: EjectionBudget,
    /// Concurrent connections, requests and retries allowed to this cluster.
    pub gates: ClusterGates,
    /// The active health checker, stopped when the cluster goes away.
    health_checker: Option<tokio::task::JoinHandle<()>>,
    /// Built while the config had an `identity` (which a TLS cluster may lean on).
    with_identity: bool,
    /// [`TlsPlan::cluster_files`](crate::tls::TlsPlan::cluster_files) when built.
    tls_files: u64,
    /// The mesh plan its endpoints were built with (`None` without `mesh`).
    mesh: Option<Arc<crate::mesh::MeshPlan>>,
    /// Set for an `auto` listener's `original-destination` cluster: its endpoints are
    /// made per request, from where the request's connection was going.
    pub original_destinations: Option<original_dst::OriginalDestinations>,
    /// Latency-based ejection, when `circuit_breaker.latency` is set.
    pub latency_outliers: Option<latency::LatencyOutliers>,
}

impl Drop for ClusterRuntime {
    fn drop(&mut self) {
        if let Some(task) = &self.health_checker {
            task.abort();
        }
    }
}

impl ClusterRuntime {
    /// `tls`: the cluster's origination settings when it has `tls`. `mesh`: the
    /// config's meshed connections, for a cluster without `tls` whose endpoints run
    /// meshwork (see [`endpoint_transport`]).
    pub fn new(
        config: model::Cluster,
        tls: Option<&crate::tls::client::Origination>,
        mesh: Option<&Arc<crate::mesh::MeshPlan>>,
        metrics: &Metrics,
    ) -> Self {
        // The endpoints' latency estimates share one epoch, so peak_ewma compares them.
        let epoch = std::time::Instant::now();
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
                let transport =
                    match tls {
                        Some(o) => connector::Transport::Tls(Arc::new(
                            connector::UpstreamTls::new(o, &ep.address, &config.name, metrics),
                        )),
                        None => endpoint_transport(&config, ep, mesh),
                    };
                Arc::new(Endpoint::build(
                    ep.address.clone(),
                    &config,
                    &gates,
                    handles,
                    transport,
                    epoch,
                    metrics,
                ))
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
        let keys: Vec<String> = config
            .endpoints
            .iter()
            .map(|ep| ep.address.to_string())
            .collect();
        let specs: Vec<EndpointSpec<'_>> = keys
            .iter()
            .zip(&config.endpoints)
            .map(|(key, ep)| EndpointSpec {
                key,
                weight: ep.weight,
            })
            .collect();
        let balancer = Balancer::with_tuning(
            config.load_balancer,
            &config.balancer_tuning,
            &specs,
            &mut rand::rng(),
        );
        let latency_outliers = config
            .circuit_breaker
            .as_ref()
            .and_then(|b| b.latency.clone())
            .map(latency::LatencyOutliers::new);
        Self {
            mesh: None,
            original_destinations: None,
            latency_outliers,
            health_checker,
            with_identity: false,
            tls_files: 0,
            ejection: EjectionBudget::new(endpoints.len(), max_ejected),
            gates,
            config,
            endpoints,
            balancer,
        }
    }

    /// An `auto` listener's `original-destination` cluster.
    pub fn original_destination(metrics: &Metrics) -> Self {
        let mut runtime = Self::new(
            original_dst::cluster_config(UpstreamProtocol::Http1),
            None,
            None,
            metrics,
        );
        runtime.original_destinations = Some(original_dst::OriginalDestinations::new(metrics));
        runtime
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The endpoint for the next request, chosen by the cluster's `load_balancer` among
    /// healthy endpoints whose breaker admits a request, preferring one other than
    /// `avoid` (the endpoint a retry follows). `key` is the request's hash key (see
    /// `layers/balance.rs`), used by `ring_hash` and `maglev`.
    ///
    /// # Errors
    /// `NoHealthyEndpoint` when the cluster has no endpoint passing its health check (it
    /// fails fast rather than sending to endpoints known to be down); `CircuitOpen` when
    /// every healthy endpoint's breaker refuses.
    pub fn pick(
        &self,
        avoid: Option<&Arc<Endpoint>>,
        key: Option<u64>,
    ) -> Result<&Arc<Endpoint>, crate::http::ProxyError> {
        let live = LiveEndpoints {
            endpoints: &self.endpoints,
        };
        let avoid = avoid.and_then(|a| self.endpoints.iter().position(|ep| Arc::ptr_eq(ep, a)));
        match self.balancer.pick(&live, avoid, key, &mut rand::rng()) {
            Ok(i) => Ok(&self.endpoints[i]),
            Err(PickError::NoHealthyEndpoint) => Err(crate::http::ProxyError::NoHealthyEndpoint),
            Err(PickError::AllRefused) => Err(crate::http::ProxyError::CircuitOpen),
        }
    }
}

/// How a cluster without `tls` reaches an endpoint: meshed (mutual TLS with the proxy's
/// identity to the peer sidecar, the header naming the endpoint's port and the cluster's
/// HTTP version) when the endpoint's address is an IP in `mesh.networks`, so a route's
/// traffic to another meshed pod is encrypted and authenticated like the rest; plain
/// TCP otherwise. An endpoint marked `meshed` (meshwork-control marks injected pods) is
/// meshed wherever its address is. An endpoint named by DNS is not meshed: which address
/// it resolves to is known only at connect time.
fn endpoint_transport(
    config: &model::Cluster,
    endpoint: &model::Endpoint,
    mesh: Option<&Arc<crate::mesh::MeshPlan>>,
) -> connector::Transport {
    let Some(plan) = mesh else {
        return connector::Transport::Plain;
    };
    let address = &endpoint.address;
    let Ok(ip) = address.host.parse::<std::net::IpAddr>() else {
        return connector::Transport::Plain;
    };
    if !endpoint.meshed && !plan.is_meshed(ip) {
        return connector::Transport::Plain;
    }
    let protocol = match config.protocol {
        UpstreamProtocol::Http2 => crate::mesh::MeshProtocol::Http2,
        UpstreamProtocol::Http1 | UpstreamProtocol::Auto => crate::mesh::MeshProtocol::Http1,
    };
    connector::Transport::Meshed(crate::mesh::connect::MeshDial::new(
        plan.clone(),
        std::net::SocketAddr::new(ip, address.port),
        protocol,
    ))
}

/// Whether any endpoint of a cluster without `tls` would be meshed under `plan`.
fn has_meshed_endpoint(config: &model::Cluster, plan: &crate::mesh::MeshPlan) -> bool {
    config.tls.is_none()
        && config.endpoints.iter().any(|ep| {
            ep.address
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ep.meshed || plan.is_meshed(ip))
        })
}

/// A cluster's endpoints as its balancer sees them during one pick.
struct LiveEndpoints<'a> {
    endpoints: &'a [Arc<Endpoint>],
}

impl Candidates for LiveEndpoints<'_> {
    fn len(&self) -> usize {
        self.endpoints.len()
    }
    fn is_healthy(&self, i: usize) -> bool {
        self.endpoints[i].is_healthy()
    }
    fn admit(&self, i: usize) -> bool {
        self.endpoints[i].admit()
    }
    fn is_refusing(&self, i: usize) -> bool {
        self.endpoints[i]
            .breaker
            .as_ref()
            .is_some_and(CircuitBreaker::is_refusing)
    }
    fn share(&self, i: usize) -> f64 {
        self.endpoints[i].share()
    }
    fn in_flight(&self, i: usize) -> usize {
        self.endpoints[i].in_flight.load(Ordering::Relaxed)
    }
    fn latency(&self, i: usize) -> peak_ewma::Estimate {
        self.endpoints[i].latency.stored()
    }
}

/// Keeps cluster state (pools) alive across reloads for clusters whose config did not
/// change; a changed or removed cluster's state goes away with the last snapshot using it.
#[derive(Debug)]
pub struct ClusterRegistry {
    clusters: std::sync::Mutex<HashMap<String, Arc<ClusterRuntime>>>,
    /// The `original-destination` cluster, shared by every `auto` listener (its pools are
    /// per destination, whichever listener's connection asks).
    original_destination: std::sync::OnceLock<Arc<ClusterRuntime>>,
    /// Per-route state (rate-limit buckets, retry budgets), kept the same way for
    /// unchanged routes.
    pub routes: crate::router::state::RouteStates,
    metrics: Metrics,
}

impl ClusterRegistry {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            clusters: Default::default(),
            original_destination: Default::default(),
            routes: Default::default(),
            metrics,
        }
    }

    /// The `original-destination` cluster, made on first use and kept across reloads.
    pub fn original_destination(&self) -> Arc<ClusterRuntime> {
        self.original_destination
            .get_or_init(|| Arc::new(ClusterRuntime::original_destination(&self.metrics)))
            .clone()
    }

    /// The runtime clusters for `configs`, reusing unchanged ones. Only called when a
    /// snapshot is built, never on the request path. A TLS cluster is also rebuilt when
    /// the config gains or loses its `identity` (its defaults come from there) and when
    /// its certificate files changed on disk (new connections then use the new ones).
    pub fn resolve(
        &self,
        configs: &[model::Cluster],
        tls: &crate::tls::TlsPlan,
        with_identity: bool,
        mesh: Option<&Arc<crate::mesh::MeshPlan>>,
    ) -> HashMap<String, Arc<ClusterRuntime>> {
        let mut known = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = HashMap::with_capacity(configs.len());
        for config in configs {
            let tls_files = tls.cluster_files(&config.name);
            let same_tls = |c: &ClusterRuntime| {
                if config.tls.is_some() {
                    c.with_identity == with_identity && c.tls_files == tls_files
                } else {
                    // Meshed endpoints dial with the plan they were built with; a cluster
                    // with none keeps its state whatever the plan.
                    let meshed_now = mesh.filter(|plan| has_meshed_endpoint(config, plan));
                    match (&c.mesh, meshed_now) {
                        (None, None) => true,
                        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                        _ => false,
                    }
                }
            };
            let runtime = match known.get(&config.name) {
                Some(existing) if existing.config == *config && same_tls(existing) => {
                    existing.clone()
                }
                _ => {
                    let mut runtime = ClusterRuntime::new(
                        config.clone(),
                        tls.cluster(&config.name),
                        mesh,
                        &self.metrics,
                    );
                    runtime.mesh = mesh
                        .filter(|plan| has_meshed_endpoint(config, plan))
                        .cloned();
                    runtime.with_identity = with_identity;
                    runtime.tls_files = tls_files;
                    Arc::new(runtime)
                }
            };
            next.insert(config.name.clone(), runtime);
        }
        *known = next.clone();
        next
    }
}
