//! What an ADS subscription holds between responses and across streams: per type, the
//! last accepted version, the last nonce, the names subscribed (EDS, RDS), the last good
//! translation of each resource and each resource's standing (ACKed or NACKed, with the
//! error).
//!
//! State of the World semantics: a CDS or LDS response is the whole set (a resource it
//! leaves out is removed); an EDS or RDS response carries the resources it names (one
//! is removed when nothing refers to it any more). A resource that cannot be translated
//! keeps its previous good version; the response is NACKed naming it, and the rest of it
//! is applied.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use meshwork_config::resource::{Key, Kind, Resource};
use serde::Serialize;
use serde_json::{Value, json};

use super::cluster::{ClusterDef, EndpointSource};
use super::leftover::Refusal;
pub(crate) use super::resource::XdsType;
use super::resource::{Translated, resource, translate, type_name};

/// gRPC's INVALID_ARGUMENT, the code of a NACK's `error_detail`.
const INVALID_ARGUMENT: i32 = 3;

/// Whether the last version of a resource the server sent was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Acked,
    Nacked,
}

/// One resource as the config dump shows it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Standing {
    /// The `version_info` of the last response that carried it.
    pub version: String,
    pub status: Status,
    /// Why it was NACKed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The version in use (the last good one), when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_version: Option<String>,
}

#[derive(Debug, Default)]
struct TypeState {
    /// The last version ACKed (sent back on every request of this type).
    version: String,
    nonce: String,
    /// Whether a response of this type arrived on any stream.
    received: bool,
    /// EDS and RDS: the names subscribed to.
    names: BTreeSet<String>,
    /// The last good translation of each resource, with the version that brought it.
    held: BTreeMap<String, (String, Translated)>,
    standing: BTreeMap<String, Standing>,
}

/// A response taken in: its type and what of it cannot be translated.
#[derive(Debug)]
pub(crate) struct Received {
    pub kind: XdsType,
    pub version: String,
    pub nonce: String,
    /// The names of the resources it carried.
    pub names: Vec<String>,
    /// Per resource (by name, or `resources[i]` when it has none): what is wrong.
    pub errors: Vec<(String, String)>,
}

/// Everything an ADS subscription knows.
#[derive(Debug, Default)]
pub(crate) struct XdsState {
    types: [TypeState; 4],
}

impl XdsState {
    fn of(&self, kind: XdsType) -> &TypeState {
        &self.types[kind.index()]
    }

    fn of_mut(&mut self, kind: XdsType) -> &mut TypeState {
        &mut self.types[kind.index()]
    }

    /// The requests that open a stream: every type with a subscription, with the
    /// versions and names already held (so a stream that resumes is sent only changes);
    /// the first carries the node.
    pub fn initial_requests(&self, node: &Node) -> Vec<DiscoveryRequest> {
        let mut out: Vec<DiscoveryRequest> = XdsType::ALL
            .into_iter()
            .filter(|t| t.is_wildcard() || !self.of(*t).names.is_empty())
            .map(|t| DiscoveryRequest {
                version_info: self.of(t).version.clone(),
                resource_names: self.of(t).names.iter().cloned().collect(),
                type_url: t.type_url(),
                ..DiscoveryRequest::default()
            })
            .collect();
        if let Some(first) = out.first_mut() {
            first.node = Some(node.clone());
        }
        out
    }

    /// Takes a response in: translates each resource, keeps the good ones (and the
    /// previous version of a bad one), and removes what the response says is gone.
    ///
    /// # Errors
    /// A type this client never asked for.
    pub fn receive(&mut self, response: DiscoveryResponse) -> Result<Received, String> {
        let kind = XdsType::of_url(&response.type_url)
            .ok_or_else(|| format!("unknown type_url {:?}", response.type_url))?;
        let version = response.version_info;
        let mut received = Received {
            kind,
            version: version.clone(),
            nonce: response.nonce,
            names: Vec::new(),
            errors: Vec::new(),
        };
        let state = self.of_mut(kind);
        state.nonce.clone_from(&received.nonce);
        state.received = true;
        for (i, any) in response.resources.iter().enumerate() {
            let (name, translated) = match translate(kind, any) {
                Ok(pair) => pair,
                Err((name, error)) => {
                    let name = name.unwrap_or_else(|| format!("resources[{i}]"));
                    received.errors.push((name.clone(), error));
                    received.names.push(name);
                    continue;
                }
            };
            received.names.push(name.clone());
            match translated {
                Ok(t) => {
                    state.held.insert(name, (version.clone(), t));
                }
                Err(refusals) => {
                    let text = refusals
                        .iter()
                        .map(Refusal::to_string)
                        .collect::<Vec<_>>()
                        .join("; ");
                    received.errors.push((name, text));
                }
            }
        }
        if kind.is_wildcard() {
            let sent: BTreeSet<&String> = received.names.iter().collect();
            state.held.retain(|name, _| sent.contains(name));
            state.standing.retain(|name, _| sent.contains(name));
        }
        self.prune_unsubscribed();
        Ok(received)
    }

    /// Whether clusters and listeners arrived (before, nothing is applied: the proxy's
    /// own file keeps serving).
    pub fn is_ready(&self) -> bool {
        self.of(XdsType::Cluster).received && self.of(XdsType::Listener).received
    }

    /// Whether everything the clusters and listeners refer to arrived too (endpoints of
    /// EDS clusters, route tables of listeners): the proxy serves all it was sent.
    pub fn is_warm(&self) -> bool {
        let [(_, services), (_, tables)] = self.wanted();
        self.is_ready()
            && services
                .iter()
                .all(|s| self.of(XdsType::ClusterLoadAssignment).held.contains_key(s))
            && tables
                .iter()
                .all(|t| self.of(XdsType::RouteConfiguration).held.contains_key(t))
    }

    /// The resources to apply, in meshwork's format: every cluster whose endpoints are
    /// known, every route table, every listener whose route table arrived.
    pub fn resources(&self) -> Vec<Resource> {
        let endpoints = &self.of(XdsType::ClusterLoadAssignment).held;
        let tables = &self.of(XdsType::RouteConfiguration).held;
        let mut out = Vec::new();
        for (name, (_, t)) in &self.of(XdsType::Cluster).held {
            let Translated::Cluster(def) = t else {
                continue;
            };
            let list = match &def.endpoints {
                EndpointSource::Static(list) => Some(list),
                EndpointSource::Eds(service) => match endpoints.get(service) {
                    Some((_, Translated::Endpoints(list))) => Some(list),
                    _ => None,
                },
            };
            // A cluster with no endpoint to send to is not applied (meshwork clusters
            // have at least one); routes to it fail until it has.
            let Some(list) = list.filter(|l| !l.is_empty()) else {
                continue;
            };
            let mut fields = def.fields.clone();
            fields.insert("endpoints".into(), Value::Array(list.clone()));
            out.extend(resource(
                XdsType::Cluster,
                name,
                json!({ "clusters": [fields] }),
            ));
        }
        for (name, (_, t)) in tables {
            let Translated::RouteTable(routes) = t else {
                continue;
            };
            out.extend(resource(
                XdsType::RouteConfiguration,
                name,
                json!({ "route_tables": { name: routes } }),
            ));
        }
        for (name, (_, t)) in &self.of(XdsType::Listener).held {
            let Translated::Listener(def) = t else {
                continue;
            };
            if def
                .route_config
                .as_ref()
                .is_some_and(|rc| !tables.contains_key(rc))
            {
                continue;
            }
            out.extend(resource(
                XdsType::Listener,
                name,
                json!({ "listeners": [def.fields] }),
            ));
        }
        out
    }

    /// The xDS resource a meshwork resource came from (for a cluster: from the response
    /// `kind` when that brought its endpoints).
    pub fn origin(&self, key: &Key, kind: XdsType, names: &[String]) -> (XdsType, String) {
        match key.kind {
            Kind::Listener => (XdsType::Listener, key.name.clone()),
            Kind::RouteTable => (XdsType::RouteConfiguration, key.name.clone()),
            Kind::Cluster | Kind::Endpoints => {
                let service = match self.of(XdsType::Cluster).held.get(&key.name) {
                    Some((_, Translated::Cluster(def))) => match &def.endpoints {
                        EndpointSource::Eds(s) => Some(s.clone()),
                        EndpointSource::Static(_) => None,
                    },
                    _ => None,
                };
                match service {
                    Some(s) if kind == XdsType::ClusterLoadAssignment && names.contains(&s) => {
                        (XdsType::ClusterLoadAssignment, s)
                    }
                    _ => (XdsType::Cluster, key.name.clone()),
                }
            }
        }
    }

    /// The answer to `received`: an ACK, or a NACK listing `errors` (its resources'
    /// and those rejected when applied). Records each resource's standing.
    pub fn answer(&mut self, received: &Received, errors: &[(String, String)]) -> DiscoveryRequest {
        let state = self.of_mut(received.kind);
        for name in &received.names {
            let error = errors
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, e)| e.clone());
            let applied_version = state.held.get(name).map(|(v, _)| v.clone());
            state.standing.insert(
                name.clone(),
                Standing {
                    version: received.version.clone(),
                    status: if error.is_some() {
                        Status::Nacked
                    } else {
                        Status::Acked
                    },
                    error,
                    applied_version,
                },
            );
        }
        let error_detail = (!errors.is_empty()).then(|| RpcStatus {
            code: INVALID_ARGUMENT,
            message: errors
                .iter()
                .map(|(name, error)| format!("{} {name:?}: {error}", type_name(received.kind)))
                .collect::<Vec<_>>()
                .join("\n"),
            details: Vec::new(),
        });
        if error_detail.is_none() {
            state.version.clone_from(&received.version);
        }
        DiscoveryRequest {
            version_info: state.version.clone(),
            resource_names: state.names.iter().cloned().collect(),
            type_url: received.kind.type_url(),
            response_nonce: received.nonce.clone(),
            error_detail,
            ..DiscoveryRequest::default()
        }
    }

    /// A resource of an earlier response that failed when applied now: NACKed in the
    /// dump (its response was ACKed when it came).
    pub fn mark_rejected(&mut self, kind: XdsType, name: &str, error: &str) {
        if let Some(s) = self.of_mut(kind).standing.get_mut(name) {
            s.status = Status::Nacked;
            s.error = Some(error.to_string());
        }
    }

    /// Requests for the EDS and RDS subscriptions that changed (the clusters and
    /// listeners held name other endpoints or route tables now).
    pub fn resubscriptions(&mut self) -> Vec<DiscoveryRequest> {
        let wanted = self.wanted();
        let mut out = Vec::new();
        for (kind, names) in wanted {
            let state = self.of_mut(kind);
            if state.names != names {
                state.names = names;
                out.push(DiscoveryRequest {
                    version_info: state.version.clone(),
                    resource_names: state.names.iter().cloned().collect(),
                    type_url: kind.type_url(),
                    response_nonce: state.nonce.clone(),
                    ..DiscoveryRequest::default()
                });
            }
        }
        out
    }

    /// The endpoints and route tables the held clusters and listeners refer to.
    fn wanted(&self) -> [(XdsType, BTreeSet<String>); 2] {
        let services = self
            .of(XdsType::Cluster)
            .held
            .values()
            .filter_map(|(_, t)| match t {
                Translated::Cluster(ClusterDef {
                    endpoints: EndpointSource::Eds(s),
                    ..
                }) => Some(s.clone()),
                _ => None,
            })
            .collect();
        let tables = self
            .of(XdsType::Listener)
            .held
            .values()
            .filter_map(|(_, t)| match t {
                Translated::Listener(def) => def.route_config.clone(),
                _ => None,
            })
            .collect();
        [
            (XdsType::ClusterLoadAssignment, services),
            (XdsType::RouteConfiguration, tables),
        ]
    }

    /// Drops endpoints and route tables nothing refers to any more.
    fn prune_unsubscribed(&mut self) {
        for (kind, names) in self.wanted() {
            let state = self.of_mut(kind);
            state.held.retain(|n, _| names.contains(n));
            state.standing.retain(|n, _| names.contains(n));
        }
    }

    /// The versions of everything held once `received` is taken, `cds/eds/lds/rds`.
    pub fn version_with(&self, received: &Received) -> String {
        XdsType::ALL
            .iter()
            .map(|t| {
                if *t == received.kind {
                    received.version.as_str()
                } else {
                    self.of(*t).version.as_str()
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The config dump's xDS part: per type, its version and each resource's standing.
    pub fn view(&self) -> Value {
        let types: Vec<Value> = XdsType::ALL
            .iter()
            .map(|t| {
                let s = self.of(*t);
                json!({
                    "type_url": t.type_url(),
                    "version": s.version,
                    "nonce": s.nonce,
                    "subscribed": if t.is_wildcard() { None } else { Some(&s.names) },
                    "resources": s.standing.iter().map(|(name, standing)| json!({
                        "name": name,
                        "standing": standing,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!(types)
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
