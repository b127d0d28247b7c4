//! Resources made from Kubernetes objects: the cluster meshwork-control makes of a
//! Service port, and the endpoints resource of every cluster whose
//! `discovery.kubernetes` names that port. Both are built as YAML trees and encoded as
//! any resource is, so the proxy validates them with the same code as a written file.

use std::net::SocketAddr;

use super::{Key, Kind, Resource, Source, wire};
use crate::diagnostic::Pos;
use crate::model::PortProtocol;
use crate::units::ServicePort;
use crate::yaml::{Entry, Kind as Shape, Node, Scalar, Value};

/// One endpoint of a Service port, with what the proxy may use about it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DiscoveredEndpoint {
    pub address: SocketAddr,
    /// The EndpointSlice's `zone` for it.
    pub zone: Option<String>,
    /// It runs a meshwork sidecar.
    pub meshed: bool,
}

/// What the cluster of a Service port says besides its name and discovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSettings {
    /// The port speaks HTTP/2 (`protocol: http2`).
    pub http2: bool,
    /// The Service's cluster IPs at the port (`vip.addresses`); none for a headless
    /// Service.
    pub vips: Vec<SocketAddr>,
    /// What the port speaks, from its `appProtocol` or name (`vip.protocol`).
    pub protocol: PortProtocol,
}

/// The cluster for `service`: named after it, its endpoints from `discovery.kubernetes`,
/// `protocol: http2` when the port speaks HTTP/2, and its VIPs with their protocol.
pub fn service_cluster(
    service: &ServicePort,
    settings: &ServiceSettings,
    source: Source,
) -> Resource {
    let at = Pos::new(source.line, source.column);
    let name = service.to_string();
    let mut entries = vec![
        entry(at, "name", text(at, &name)),
        entry(
            at,
            "discovery",
            map(at, vec![entry(at, "kubernetes", text(at, &name))]),
        ),
    ];
    if settings.http2 {
        entries.push(entry(at, "protocol", text(at, "http2")));
    }
    if !settings.vips.is_empty() {
        let addresses = settings
            .vips
            .iter()
            .map(|a| text(at, &a.to_string()))
            .collect();
        let mut vip = vec![entry(at, "addresses", list(at, addresses))];
        match settings.protocol {
            PortProtocol::Auto => {}
            PortProtocol::Http => vip.push(entry(at, "protocol", text(at, "http"))),
            PortProtocol::Opaque => vip.push(entry(at, "protocol", text(at, "opaque"))),
        }
        entries.push(entry(at, "vip", map(at, vip)));
    }
    Resource::new(
        Key::new(Kind::Cluster, name),
        wire::encode(&map(at, entries)),
        source,
    )
}

/// The Service port a cluster resource's `discovery.kubernetes` names, if any.
pub fn kubernetes_discovery(cluster: &Resource) -> Option<ServicePort> {
    if cluster.key.kind != Kind::Cluster {
        return None;
    }
    let body = wire::decode(&cluster.body).ok()?;
    let discovery = field(&body, "discovery")?;
    crate::units::parse_service_port(field(discovery, "kubernetes")?.text()?).ok()
}

/// The endpoints resource for `cluster` (a cluster with `discovery.kubernetes`): each
/// endpoint as `{address, zone, meshed}`, sorted, placed at the `discovery` field.
/// `None` when `cluster` has no `discovery`.
pub fn discovered_endpoints(
    cluster: &Resource,
    endpoints: &[DiscoveredEndpoint],
) -> Option<Resource> {
    let mut sorted = endpoints.to_vec();
    sorted.sort();
    sorted.dedup_by(|a, b| a.address == b.address);
    super::endpoints_at_discovery(cluster, |at| {
        sorted
            .iter()
            .map(|e| {
                let mut entries = vec![entry(at, "address", text(at, &e.address.to_string()))];
                if let Some(zone) = &e.zone {
                    entries.push(entry(at, "zone", text(at, zone)));
                }
                if e.meshed {
                    entries.push(entry(at, "meshed", boolean(at, true)));
                }
                map(at, entries)
            })
            .collect()
    })
}

fn field<'a>(node: &'a Node, name: &str) -> Option<&'a Node> {
    match &node.kind {
        Shape::Map(entries) => entries
            .iter()
            .find(|e| e.key.text() == Some(name))
            .map(|e| &e.value),
        _ => None,
    }
}

fn entry(at: Pos, key: &str, value: Node) -> Entry {
    Entry {
        key: text(at, key),
        value,
    }
}

fn map(at: Pos, entries: Vec<Entry>) -> Node {
    Node {
        pos: at,
        kind: Shape::Map(entries),
    }
}

fn list(at: Pos, items: Vec<Node>) -> Node {
    Node {
        pos: at,
        kind: Shape::Seq(items),
    }
}

fn text(at: Pos, text: &str) -> Node {
    Node {
        pos: at,
        kind: Shape::Scalar(Scalar {
            text: text.to_string(),
            value: Value::Str,
        }),
    }
}

fn boolean(at: Pos, value: bool) -> Node {
    Node {
        pos: at,
        kind: Shape::Scalar(Scalar {
            text: value.to_string(),
            value: Value::Bool(value),
        }),
    }
}
