//! The active configuration as one immutable snapshot, swapped atomically on reload.
//!
//! Requests load the current snapshot once and finish on it, so a reload never changes
//! the rules under a request in flight.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;
use meshwork_config::Config;
use meshwork_config::model::{Direction, ListenerPaths, ListenerProtocol, PortProtocol};

use crate::cluster::{ClusterRegistry, ClusterRuntime};
use crate::drain::ConnectionTracker;
use crate::mesh::MeshPlan;
use crate::metrics::Metrics;
use crate::metrics::handles::{ListenerHandles, RequestHandles, RequestSlot};
use crate::observe::access_log::AccessLogWriter;
use crate::policy::authorization::Authorization;
use crate::router::{RouteEntry, RouteTable};
use crate::tls::TlsPlan;
use crate::tls::plan::ListenerTlsPlan;
use crate::trace::Tracer;
use crate::vip::{Vips, whole_cluster_route};

/// An HTTP listener's routes and the metric handles of each (route, backend).
#[derive(Debug)]
pub struct HttpListenerPlan {
    pub name: String,
    pub table: Arc<RouteTable>,
    pub handles: ListenerHandles,
    /// The listener's authorization policy, if it has one.
    pub authorization: Option<Authorization>,
    /// How the listener reads request paths (`paths`).
    pub paths: ListenerPaths,
    metrics: Metrics,
    /// Per route (by index): one slot per backend, then one for local answers.
    slots: Vec<Vec<RequestSlot>>,
    no_route: RequestSlot,
}

impl HttpListenerPlan {
    fn new(
        name: &str,
        table: Arc<RouteTable>,
        authorization: Option<Authorization>,
        paths: ListenerPaths,
        metrics: &Metrics,
    ) -> Self {
        let slots = table
            .routes
            .iter()
            .map(|r| {
                (0..=r.backends.len())
                    .map(|_| RequestSlot::default())
                    .collect()
            })
            .collect();
        Self {
            name: name.into(),
            handles: ListenerHandles::new(metrics, name),
            authorization,
            paths,
            metrics: metrics.clone(),
            table,
            slots,
            no_route: RequestSlot::default(),
        }
    }

    /// Counts a retry on a route of this listener, by reason.
    pub fn retried(&self, route: &str, reason: &str) {
        self.metrics
            .http
            .retries_total
            .with_label_values(&[self.name.as_str(), route, reason])
            .inc();
    }

    /// Counts a request refused by the authorization policy.
    pub fn authorization_denied(&self) {
        self.metrics
            .tls
            .authorization_denied_total
            .with_label_values(&[self.name.as_str()])
            .inc();
    }

    /// Counts a retry refused because the route's budget was spent.
    pub fn retry_budget_exhausted(&self, route: &str) {
        self.metrics
            .http
            .retry_budget_exhausted_total
            .with_label_values(&[self.name.as_str(), route])
            .inc();
    }

    /// How many hedging `event`s a route of this listener has counted.
    #[cfg(test)]
    pub fn hedges_counted(
        &self,
        route: &str,
        event: crate::layers::retry::hedge::HedgeEvent,
    ) -> u64 {
        self.metrics
            .http
            .hedges_total
            .with_label_values(&[self.name.as_str(), route, event.as_str()])
            .get()
    }

    /// Counts a hedging event on a route of this listener.
    pub fn hedge(&self, route: &str, event: crate::layers::retry::hedge::HedgeEvent) {
        self.metrics
            .http
            .hedges_total
            .with_label_values(&[self.name.as_str(), route, event.as_str()])
            .inc();
    }

    /// Counts an injected fault (`kind`: `delay` or `abort`) on a route of this listener.
    pub fn fault_injected(&self, route: &str, kind: &str) {
        self.metrics
            .http
            .faults_injected_total
            .with_label_values(&[self.name.as_str(), route, kind])
            .inc();
    }

    /// Counts a copy of a request for the route's mirror `cluster`, by `outcome`
    /// (`answered`, `failed`, `skipped`).
    pub fn mirrored(&self, route: &str, cluster: &str, outcome: &str) {
        self.metrics
            .http
            .mirror_requests_total
            .with_label_values(&[self.name.as_str(), route, cluster, outcome])
            .inc();
    }

    /// The metric handles for a request that took `route` to `cluster` (either may be
    /// absent: no route matched, or the route answered itself).
    pub fn request_handles(
        &self,
        route: Option<&Arc<RouteEntry>>,
        cluster: Option<&Arc<ClusterRuntime>>,
    ) -> &RequestHandles {
        let Some(route) = route else {
            return self.no_route.get(&self.metrics, &self.name, "", "");
        };
        let Some(slots) = self.slots.get(route.index) else {
            return self.no_route.get(&self.metrics, &self.name, "", "");
        };
        let backend =
            cluster.and_then(|c| route.backends.iter().position(|(b, _)| Arc::ptr_eq(b, c)));
        match backend {
            Some(i) => slots[i].get(
                &self.metrics,
                &self.name,
                route.name(),
                route.backends[i].0.name(),
            ),
            None => slots[route.backends.len()].get(&self.metrics, &self.name, route.name(), ""),
        }
    }
}

/// A `tcp` listener's target cluster and the policy its connections must pass.
#[derive(Debug)]
pub struct TcpListenerPlan {
    pub cluster: Arc<ClusterRuntime>,
    /// The listener's authorization policy, if it has one (decided by peer identity).
    pub authorization: Option<Authorization>,
}

/// Everything a request needs, compiled from one config.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one with each applied config.
    pub version: u64,
    /// Where the config came from (e.g. `file:/etc/meshwork/config.yaml`).
    pub source: String,
    pub config: Arc<Config>,
    /// What each HTTP listener's requests need, by listener name: looked up once per
    /// request, and a B-tree's few string comparisons cost less than hashing the name.
    http_listeners: BTreeMap<String, Arc<HttpListenerPlan>>,
    /// What each TCP listener's connections need, by listener name.
    tcp_listeners: HashMap<String, Arc<TcpListenerPlan>>,
    /// Each `auto` listener's per-port protocol hints, by listener name.
    port_hints: HashMap<String, Arc<BTreeMap<u16, PortProtocol>>>,
    /// The configured ports of every listener: an intercepted connection going to one of
    /// them on this host would loop.
    pub listener_ports: Arc<[u16]>,
    /// The clusters' VIPs, for outbound `auto` listeners.
    pub vips: Vips,
    pub clusters: HashMap<String, Arc<ClusterRuntime>>,
    /// TLS settings of listeners (and clusters, already handed to their runtimes).
    tls: TlsPlan,
    pub access_log: Option<Arc<AccessLogWriter>>,
    pub tracer: Option<Arc<Tracer>>,
    /// Meshed connections (`mesh`): which destinations are meshed, both sides' TLS.
    pub mesh: Option<Arc<MeshPlan>>,
    /// What the drain waits for: a request that outlives its connection (an upgraded
    /// tunnel) is spawned here.
    pub connections: ConnectionTracker,
}

/// What a snapshot takes over ready-made, built (and checked) before it: the parts whose
/// building can fail or that outlive snapshots.
#[derive(Debug, Default)]
pub struct SnapshotParts {
    pub tls: TlsPlan,
    pub access_log: Option<Arc<AccessLogWriter>>,
    pub tracer: Option<Arc<Tracer>>,
    pub mesh: Option<Arc<MeshPlan>>,
    pub connections: ConnectionTracker,
}

impl Snapshot {
    pub fn build(
        version: u64,
        source: String,
        config: Config,
        registry: &ClusterRegistry,
        metrics: &Metrics,
        parts: SnapshotParts,
    ) -> Self {
        let SnapshotParts {
            tls,
            access_log,
            tracer,
            mesh,
            connections,
        } = parts;
        let clusters = registry.resolve(
            &config.clusters,
            &tls,
            config.identity.is_some(),
            mesh.as_ref(),
        );
        let route_tables = registry.routes.resolve(&config.route_tables, &clusters);
        let mut http_listeners = BTreeMap::new();
        let mut tcp_listeners = HashMap::new();
        for listener in &config.listeners {
            let authorization = || {
                config
                    .authorization
                    .iter()
                    .find(|a| a.listener == listener.name)
                    .map(Authorization::new)
            };
            match &listener.protocol {
                ListenerProtocol::Http { route_table } => {
                    if let Some(t) = route_tables.get(route_table) {
                        let authorization = authorization();
                        let plan = HttpListenerPlan::new(
                            &listener.name,
                            t.clone(),
                            authorization,
                            listener.paths,
                            metrics,
                        );
                        http_listeners.insert(listener.name.clone(), Arc::new(plan));
                    }
                }
                ListenerProtocol::Auto { route_table } => {
                    // Only what the pod's own app dials is looked up as a VIP.
                    let vip_clusters = match listener.direction {
                        Direction::Outbound => &config.clusters[..],
                        Direction::Inbound => &[],
                    };
                    let table = auto_route_table(
                        &listener.name,
                        route_table
                            .as_deref()
                            .and_then(|t| config.route_tables.get(t)),
                        &clusters,
                        registry.original_destination(),
                        vip_clusters,
                    );
                    let plan = HttpListenerPlan::new(
                        &listener.name,
                        Arc::new(table),
                        authorization(),
                        listener.paths,
                        metrics,
                    );
                    http_listeners.insert(listener.name.clone(), Arc::new(plan));
                }
                ListenerProtocol::Tcp { cluster } => {
                    if let Some(c) = clusters.get(cluster) {
                        let plan = TcpListenerPlan {
                            cluster: c.clone(),
                            authorization: authorization(),
                        };
                        tcp_listeners.insert(listener.name.clone(), Arc::new(plan));
                    }
                }
            }
        }
        let port_hints = config
            .listeners
            .iter()
            .filter(|l| matches!(l.protocol, ListenerProtocol::Auto { .. }))
            .map(|l| (l.name.clone(), Arc::new(l.ports.clone())))
            .collect();
        let listener_ports = config.listeners.iter().map(|l| l.address.port()).collect();
        let vips = Vips::build(&config.clusters, &clusters);
        Self {
            version,
            source,
            config: Arc::new(config),
            http_listeners,
            tcp_listeners,
            port_hints,
            listener_ports,
            vips,
            clusters,
            tls,
            access_log,
            tracer,
            mesh,
            connections,
        }
    }

    /// An `auto` listener's per-port protocol hints.
    pub fn port_hints(&self, listener: &str) -> Option<&Arc<BTreeMap<u16, PortProtocol>>> {
        self.port_hints.get(listener)
    }

    /// The TLS handshake settings of a listener that terminates TLS.
    pub fn listener_tls(&self, listener: &str) -> Option<&Arc<ListenerTlsPlan>> {
        self.tls.listener(listener)
    }

    pub fn http_listener(&self, listener: &str) -> Option<&Arc<HttpListenerPlan>> {
        self.http_listeners.get(listener)
    }

    pub fn tcp_listener(&self, listener: &str) -> Option<&Arc<TcpListenerPlan>> {
        self.tcp_listeners.get(listener)
    }

    pub fn listener(&self, name: &str) -> Option<&meshwork_config::model::Listener> {
        self.config.listeners.iter().find(|l| l.name == name)
    }
}

/// The shared, swappable pointer to the active snapshot.
pub type SnapshotHandle = Arc<ArcSwap<Snapshot>>;

/// An `auto` listener's routes: its `route_table`'s, then one that takes everything else
/// to the `original-destination` cluster (where each connection was going), then one per
/// cluster of `vip_clusters` with a `vip`, taken instead of that one by a request whose
/// connection was going to one of the cluster's VIPs.
pub(crate) fn auto_route_table(
    listener: &str,
    table: Option<&meshwork_config::model::RouteTable>,
    clusters: &HashMap<String, Arc<ClusterRuntime>>,
    original_destination: Arc<ClusterRuntime>,
    vip_clusters: &[meshwork_config::model::Cluster],
) -> RouteTable {
    use meshwork_config::model::{self, ORIGINAL_DESTINATION_CLUSTER};
    let mut table = table.cloned().unwrap_or_else(|| model::RouteTable {
        name: listener.into(),
        routes: Vec::new(),
    });
    table
        .routes
        .push(whole_cluster_route(ORIGINAL_DESTINATION_CLUSTER, None));
    let fallback = table.routes.len() - 1;
    let mut by_destination = HashMap::new();
    for cluster in vip_clusters {
        let Some(vip) = &cluster.vip else { continue };
        let index = table.routes.len() as u32;
        // Retried as `retry: {}` retries: a VIP's cluster is a service of the mesh.
        let retry = Some(model::RetryPolicy::defaults());
        table.routes.push(whole_cluster_route(&cluster.name, retry));
        for address in &vip.addresses {
            by_destination.insert(*address, index);
        }
    }
    let mut clusters = clusters.clone();
    clusters.insert(ORIGINAL_DESTINATION_CLUSTER.into(), original_destination);
    RouteTable::build(&table, &clusters).with_vip_routes(fallback, by_destination)
}
