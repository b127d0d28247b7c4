//! meshwork's model -> Envoy's resources. Each resource translates on its own or is
//! refused with the field and the reason; a resource that refers to a refused one
//! (a route table naming a refused cluster, a listener using a refused route table) is
//! refused too, so Envoy never gets a resource that points at nothing.
//!
//! What is translated and what is refused is listed in docs/envoy.md.

mod cluster;
mod listener;
mod route;

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use meshwork_config::model::{Config, ListenerProtocol, RouteAction};
use serde::Serialize;

use super::types::ResourceType;

/// Why one field of a resource has no Envoy translation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Untranslatable {
    /// The field path inside the resource (`routes[2].fault`), empty for the whole.
    pub field: String,
    pub reason: String,
}

impl Untranslatable {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Untranslatable {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same problem, its field path put under `parent`.
    pub(crate) fn within(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_string()
        } else if self.field.starts_with('[') {
            format!("{parent}{}", self.field)
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

/// A resource not sent to Envoy, and why (as `/status` and the log show it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// meshwork's kind: `listener`, `route_table`, `cluster`.
    pub kind: &'static str,
    pub name: String,
    /// `field: reason`.
    pub error: String,
}

/// A config translated: the Envoy resources by name, and what was refused.
#[derive(Debug, Default)]
pub struct Translated {
    pub clusters: BTreeMap<String, Cluster>,
    pub endpoints: BTreeMap<String, ClusterLoadAssignment>,
    pub listeners: BTreeMap<String, Listener>,
    pub routes: BTreeMap<String, RouteConfiguration>,
    pub refused: Vec<Refusal>,
}

impl Translated {
    /// How many resources of `ty` there are.
    pub fn count(&self, ty: ResourceType) -> usize {
        match ty {
            ResourceType::Cluster => self.clusters.len(),
            ResourceType::Endpoints => self.endpoints.len(),
            ResourceType::Listener => self.listeners.len(),
            ResourceType::Route => self.routes.len(),
        }
    }
}

/// Translates the listeners, route tables and clusters of `config` (everything else of a
/// config belongs to a proxy's own file and has no meaning here).
pub fn translate(config: &Config) -> Translated {
    let mut out = Translated::default();
    for c in &config.clusters {
        match cluster::cluster(c) {
            Ok((envoy, endpoints)) => {
                out.clusters.insert(c.name.clone(), envoy);
                out.endpoints.insert(c.name.clone(), endpoints);
            }
            Err(e) => out.refuse("cluster", &c.name, e.to_string()),
        }
    }
    for (name, table) in &config.route_tables {
        let missing: BTreeSet<&str> = table
            .routes
            .iter()
            .flat_map(|r| {
                let backends: Vec<&str> = match &r.action {
                    RouteAction::Backends(b) => b.iter().map(|b| b.cluster.as_str()).collect(),
                    _ => Vec::new(),
                };
                backends
                    .into_iter()
                    .chain(r.mirror.iter().map(|m| m.cluster.as_str()))
            })
            .filter(|c| !out.clusters.contains_key(*c))
            .collect();
        if let Some(first) = missing.first() {
            out.refuse(
                "route_table",
                name,
                format!("it sends to cluster {first:?}, which is refused"),
            );
            continue;
        }
        match route::route_table(table, config) {
            Ok(envoy) => {
                out.routes.insert(name.clone(), envoy);
            }
            Err(e) => out.refuse("route_table", name, e.to_string()),
        }
    }
    for l in &config.listeners {
        let refused_target = match &l.protocol {
            ListenerProtocol::Http { route_table } if !out.routes.contains_key(route_table) => {
                Some(format!("its route table {route_table:?} is refused"))
            }
            ListenerProtocol::Tcp { cluster } if !out.clusters.contains_key(cluster) => {
                Some(format!("its cluster {cluster:?} is refused"))
            }
            _ => None,
        };
        if let Some(reason) = refused_target {
            out.refuse("listener", &l.name, reason);
            continue;
        }
        match listener::listener(l) {
            Ok(envoy) => {
                out.listeners.insert(l.name.clone(), envoy);
            }
            Err(e) => out.refuse("listener", &l.name, e.to_string()),
        }
    }
    out
}

impl Translated {
    fn refuse(&mut self, kind: &'static str, name: &str, error: String) {
        self.refused.push(Refusal {
            kind,
            name: name.to_string(),
            error,
        });
    }
}
