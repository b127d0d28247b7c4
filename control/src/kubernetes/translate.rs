//! Kubernetes objects -> what the catalog serves: every TCP port of every Service is a
//! cluster named `NAME.NAMESPACE.svc:PORT`, its endpoints the usable addresses of the
//! Service's EndpointSlices for that port.
//!
//! Usable, as Kubernetes defines it (and kube-proxy does): the endpoints whose
//! `conditions.ready` is true (unset counts as true); when there is none, the ones still
//! `serving` while `terminating`, so a Service whose pods are all shutting down keeps
//! taking traffic until they stop serving.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::{Service, ServicePort as KubePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use meshwork_config::model::PortProtocol;
use meshwork_config::resource::{DiscoveredEndpoint, ServiceSettings, Source};
use meshwork_config::units::ServicePort;

/// The label EndpointSlices carry naming their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The annotation `meshwork inject` puts on the pods it adds the sidecar to.
pub const INJECTED_ANNOTATION: &str = "meshwork.io/injected";

/// A pod, by namespace and name.
pub type PodName = (String, String);

/// What the cluster's objects say, translated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Discovered {
    pub ports: BTreeMap<ServicePort, PortInfo>,
    /// The usable endpoints of each port that has any.
    pub endpoints: BTreeMap<ServicePort, Vec<DiscoveredEndpoint>>,
}

/// A Service port's own settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    /// The port says it speaks HTTP/2 (appProtocol or name): the cluster's protocol.
    pub http2: bool,
    /// The Service's cluster IPs (its VIPs), none for a headless Service.
    pub cluster_ips: Vec<IpAddr>,
    /// What the port speaks, by its `appProtocol` or name: the VIPs' protocol hint.
    pub protocol: PortProtocol,
    /// Where it comes from, for `/status` and error messages.
    pub source: Source,
}

impl PortInfo {
    /// The settings of the cluster made of this port, numbered `port` on the Service.
    pub fn cluster_settings(&self, port: u16) -> ServiceSettings {
        ServiceSettings {
            http2: self.http2,
            vips: self
                .cluster_ips
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect(),
            protocol: self.protocol,
        }
    }
}

/// Translates the Services, their EndpointSlices and the set of meshed pods.
pub fn translate<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    meshed: &HashSet<PodName>,
) -> Discovered {
    let mut by_service: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        let (Some(namespace), Some(service)) = (
            slice.metadata.namespace.as_deref(),
            slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL)),
        ) else {
            continue;
        };
        by_service
            .entry((namespace, service.as_str()))
            .or_default()
            .push(slice);
    }
    // The stores hold objects in no set order; by name, the result does not depend on it.
    for list in by_service.values_mut() {
        list.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    }
    let mut out = Discovered::default();
    for service in services {
        let (Some(name), Some(namespace), Some(spec)) = (
            service.metadata.name.as_deref(),
            service.metadata.namespace.as_deref(),
            service.spec.as_ref(),
        ) else {
            continue;
        };
        // An ExternalName Service is a DNS alias: it has no endpoints to balance.
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let cluster_ips = cluster_ips(spec);
        let slices = by_service
            .get(&(namespace, name))
            .map_or(&[][..], Vec::as_slice);
        for (index, port) in spec.ports.iter().flatten().enumerate() {
            if port.protocol.as_deref().unwrap_or("TCP") != "TCP" {
                continue;
            }
            let Ok(number) = u16::try_from(port.port) else {
                continue;
            };
            let key = ServicePort {
                name: name.to_string(),
                namespace: namespace.to_string(),
                port: number,
            };
            let endpoints = port_endpoints(port, slices, meshed);
            if !endpoints.is_empty() {
                out.endpoints.insert(key.clone(), endpoints);
            }
            let info = PortInfo {
                http2: speaks_http2(port),
                cluster_ips: cluster_ips.clone(),
                protocol: protocol_hint(port),
                source: Source {
                    file: format!("kubernetes:services/{namespace}/{name}"),
                    line: 1,
                    column: 1,
                    path: format!("spec.ports[{index}]"),
                },
            };
            out.ports.insert(key, info);
        }
    }
    out
}

/// The VIPs of a Service (`None`, the headless marker, is not one).
fn cluster_ips(spec: &k8s_openapi::api::core::v1::ServiceSpec) -> Vec<IpAddr> {
    let mut ips: BTreeSet<IpAddr> = BTreeSet::new();
    for text in spec.cluster_ips.iter().flatten().chain(&spec.cluster_ip) {
        if let Ok(ip) = text.parse() {
            ips.insert(ip);
        }
    }
    ips.into_iter().collect()
}

/// `appProtocol` (`grpc`, `h2c`, `http2`, `kubernetes.io/h2c`) or, without it, the
/// port-name convention (`grpc-*`, `http2-*`, `h2c-*`) says HTTP/2.
fn speaks_http2(port: &KubePort) -> bool {
    const HTTP2: [&str; 4] = ["grpc", "h2c", "http2", "kubernetes.io/h2c"];
    if let Some(app) = port.app_protocol.as_deref() {
        return HTTP2.contains(&app.to_ascii_lowercase().as_str());
    }
    let name = port.name.as_deref().unwrap_or_default();
    HTTP2
        .iter()
        .any(|p| name == *p || name.strip_prefix(p).is_some_and(|r| r.starts_with('-')))
}

/// What a Service port speaks, as Istio and Linkerd read it: its `appProtocol`, else its
/// name's protocol part (`http-web` -> `http`). HTTP (`http`, `http2`, `h2c`, `grpc`,
/// `grpc-web`, `kubernetes.io/h2c`, `kubernetes.io/ws`) is served as HTTP without a race;
/// `tcp`, `tls`, `https`, `kubernetes.io/wss` and the server-first `mysql`, `mongo`,
/// `redis` go opaque at once; anything else is detected.
fn protocol_hint(port: &KubePort) -> PortProtocol {
    const HTTP: [&str; 7] = [
        "http",
        "http2",
        "h2c",
        "grpc",
        "grpc-web",
        "kubernetes.io/h2c",
        "kubernetes.io/ws",
    ];
    const OPAQUE: [&str; 7] = [
        "tcp",
        "tls",
        "https",
        "kubernetes.io/wss",
        "mysql",
        "mongo",
        "redis",
    ];
    let protocol = match port.app_protocol.as_deref() {
        Some(app) => app.to_ascii_lowercase(),
        None => {
            let name = port.name.as_deref().unwrap_or_default();
            name.split('-')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase()
        }
    };
    if HTTP.contains(&protocol.as_str()) {
        PortProtocol::Http
    } else if OPAQUE.contains(&protocol.as_str()) {
        PortProtocol::Opaque
    } else {
        PortProtocol::Auto
    }
}

/// The usable endpoints of the slices for one Service port (deduplicated by address:
/// the same pod may show in two slices while the controller moves it).
fn port_endpoints(
    port: &KubePort,
    slices: &[&EndpointSlice],
    meshed: &HashSet<PodName>,
) -> Vec<DiscoveredEndpoint> {
    let wanted = port.name.as_deref().unwrap_or_default();
    let mut ready: BTreeMap<SocketAddr, DiscoveredEndpoint> = BTreeMap::new();
    let mut terminating: BTreeMap<SocketAddr, DiscoveredEndpoint> = BTreeMap::new();
    for slice in slices {
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            continue;
        }
        let Some(target) = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or_default() == wanted
                && p.protocol.as_deref().unwrap_or("TCP") == "TCP"
        }) else {
            continue;
        };
        let Some(number) = target.port.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for endpoint in &slice.endpoints {
            // Consumers use the first address (the API says all are fungible).
            let Some(ip) = endpoint
                .addresses
                .first()
                .and_then(|a| a.parse::<IpAddr>().ok())
            else {
                continue;
            };
            let address = SocketAddr::new(ip, number);
            let found = DiscoveredEndpoint {
                address,
                zone: endpoint.zone.clone(),
                meshed: is_meshed(endpoint, slice, meshed),
            };
            // The first slice (by name) listing an address says what it is.
            match usability(endpoint) {
                Usable::Ready => {
                    ready.entry(address).or_insert(found);
                }
                Usable::Terminating => {
                    terminating.entry(address).or_insert(found);
                }
                Usable::No => {}
            }
        }
    }
    let chosen = if ready.is_empty() { terminating } else { ready };
    chosen.into_values().collect()
}

enum Usable {
    Ready,
    /// Serving while terminating: used only when no endpoint is ready.
    Terminating,
    No,
}

fn usability(endpoint: &Endpoint) -> Usable {
    let conditions = endpoint.conditions.as_ref();
    let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
    let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
    let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
    if ready && !terminating {
        Usable::Ready
    } else if serving && terminating {
        Usable::Terminating
    } else {
        Usable::No
    }
}

/// The endpoint is a pod `meshwork inject` marked.
fn is_meshed(endpoint: &Endpoint, slice: &EndpointSlice, meshed: &HashSet<PodName>) -> bool {
    let Some(target) = endpoint.target_ref.as_ref() else {
        return false;
    };
    if target.kind.as_deref() != Some("Pod") {
        return false;
    }
    let namespace = target
        .namespace
        .clone()
        .or_else(|| slice.metadata.namespace.clone());
    match (namespace, target.name.clone()) {
        (Some(namespace), Some(name)) => meshed.contains(&(namespace, name)),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
