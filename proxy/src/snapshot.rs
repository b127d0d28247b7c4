//! The active configuration as one immutable snapshot, swapped atomically on reload.
//!
//! Requests load the current snapshot once and finish on it, so a reload never changes
//! the rules under a request in flight.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use meshwork_config::Config;
use meshwork_config::model::ListenerProtocol;

use crate::cluster::{ClusterRegistry, ClusterRuntime};
use crate::router::RouteTable;

/// Everything a request needs, compiled from one config.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one with each applied config.
    pub version: u64,
    /// Where the config came from (e.g. `file:/etc/meshwork/config.yaml`).
    pub source: String,
    pub config: Arc<Config>,
    /// Route table of each HTTP listener, by listener name.
    listener_routes: HashMap<String, Arc<RouteTable>>,
    /// Target cluster of each TCP listener, by listener name.
    listener_clusters: HashMap<String, Arc<ClusterRuntime>>,
    pub route_tables: HashMap<String, Arc<RouteTable>>,
    pub clusters: HashMap<String, Arc<ClusterRuntime>>,
}

impl Snapshot {
    pub fn build(version: u64, source: String, config: Config, registry: &ClusterRegistry) -> Self {
        let clusters = registry.resolve(&config.clusters);
        let route_tables: HashMap<String, Arc<RouteTable>> = config
            .route_tables
            .iter()
            .map(|(name, table)| (name.clone(), Arc::new(RouteTable::build(table, &clusters))))
            .collect();
        let mut listener_routes = HashMap::new();
        let mut listener_clusters = HashMap::new();
        for listener in &config.listeners {
            match &listener.protocol {
                ListenerProtocol::Http { route_table } => {
                    if let Some(t) = route_tables.get(route_table) {
                        listener_routes.insert(listener.name.clone(), t.clone());
                    }
                }
                ListenerProtocol::Tcp { cluster } => {
                    if let Some(c) = clusters.get(cluster) {
                        listener_clusters.insert(listener.name.clone(), c.clone());
                    }
                }
            }
        }
        Self {
            version,
            source,
            config: Arc::new(config),
            listener_routes,
            listener_clusters,
            route_tables,
            clusters,
        }
    }

    pub fn routes_for(&self, listener: &str) -> Option<&Arc<RouteTable>> {
        self.listener_routes.get(listener)
    }

    pub fn cluster_for(&self, listener: &str) -> Option<&Arc<ClusterRuntime>> {
        self.listener_clusters.get(listener)
    }

    pub fn listener(&self, name: &str) -> Option<&meshwork_config::model::Listener> {
        self.config.listeners.iter().find(|l| l.name == name)
    }
}

/// The shared, swappable pointer to the active snapshot.
pub type SnapshotHandle = Arc<ArcSwap<Snapshot>>;
