//! CDS and EDS: an Envoy `Cluster` and its `ClusterLoadAssignment` in meshwork's cluster
//! format.
//!
//! Translated: the discovery type (STATIC, STRICT_DNS and LOGICAL_DNS with their
//! `load_assignment`, EDS), `connect_timeout` (Envoy's default 5s when unset),
//! `lb_policy` (ROUND_ROBIN is weighted in Envoy, so `weighted_round_robin`;
//! LEAST_REQUEST; RANDOM), the default-priority circuit breaker thresholds (`limits`),
//! the upstream protocol (HTTP/1.1, HTTP/2, auto), and upstream TLS given as files
//! (`tls`). Endpoints marked unhealthy, draining or timed out are left out, as Envoy
//! does. Anything else set is refused by field.

// Servers still send the deprecated fields (header matchers, `http2_protocol_options`,
// DNS settings): reading them is the point.
#![allow(deprecated)]

use std::mem::take;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::config::core::v3::{HealthStatus, RoutingPriority};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LocalityLbEndpoints};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use serde_json::{Map, Value, json};

use super::fields;
use super::leftover::{Refusal, Refusals, join};
use super::units;
use super::upstream::{upstream_protocol, upstream_tls};

/// Envoy's `connect_timeout` when a cluster does not set one.
const ENVOY_DEFAULT_CONNECT_TIMEOUT: &str = "5000ms";

/// The key of the upstream HTTP options in `typed_extension_protocol_options`.
const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// A cluster in meshwork's format, but for its endpoints.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ClusterDef {
    /// Every field but `endpoints`.
    pub fields: Map<String, Value>,
    pub endpoints: EndpointSource,
}

/// Where a cluster's endpoints come from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum EndpointSource {
    /// Given in the cluster (`load_assignment`).
    Static(Vec<Value>),
    /// The `ClusterLoadAssignment` of this name (EDS).
    Eds(String),
}

/// Translates a CDS cluster.
///
/// # Errors
/// Every field meshwork cannot represent.
pub(crate) fn cluster(cluster: &Cluster) -> Result<ClusterDef, Vec<Refusal>> {
    let mut c = cluster.clone();
    let mut refusals = Refusals::default();
    let mut out = Map::new();
    out.insert("name".into(), Value::String(take(&mut c.name)));
    // Names for stats and metadata for filters: nothing meshwork reads.
    take(&mut c.alt_stat_name);
    take(&mut c.metadata);

    let kind = match take(&mut c.cluster_discovery_type) {
        None => DiscoveryType::Static,
        Some(ClusterDiscoveryType::Type(t)) => {
            DiscoveryType::try_from(t).unwrap_or(DiscoveryType::OriginalDst)
        }
        Some(ClusterDiscoveryType::ClusterType(custom)) => {
            refusals.refuse(
                "cluster_type",
                format!("custom cluster types ({:?}) are not supported", custom.name),
            );
            DiscoveryType::Static
        }
    };
    let eds = take(&mut c.eds_cluster_config);
    let endpoints = match kind {
        DiscoveryType::Eds => {
            let service = eds.map(|e| e.service_name).unwrap_or_default();
            let name = out["name"].as_str().unwrap_or_default().to_string();
            EndpointSource::Eds(if service.is_empty() { name } else { service })
        }
        DiscoveryType::Static | DiscoveryType::StrictDns | DiscoveryType::LogicalDns => {
            if eds.is_some() {
                refusals.refuse(
                    "eds_cluster_config",
                    "set on a cluster whose type is not EDS",
                );
            }
            if kind != DiscoveryType::Static {
                // meshwork resolves host names of endpoints itself.
                take(&mut c.dns_lookup_family);
                take(&mut c.dns_refresh_rate);
                take(&mut c.respect_dns_ttl);
            }
            match take(&mut c.load_assignment) {
                Some(cla) => {
                    EndpointSource::Static(assignment(&cla, "load_assignment", &mut refusals))
                }
                None => {
                    refusals.refuse(
                        "load_assignment",
                        "a STATIC or DNS cluster needs its endpoints here",
                    );
                    EndpointSource::Static(Vec::new())
                }
            }
        }
        DiscoveryType::OriginalDst => {
            refusals.refuse(
                "type",
                "only STATIC, STRICT_DNS, LOGICAL_DNS and EDS clusters are supported",
            );
            EndpointSource::Static(Vec::new())
        }
    };

    let timeout = match take(&mut c.connect_timeout) {
        None => Some(ENVOY_DEFAULT_CONNECT_TIMEOUT.to_string()),
        Some(d) => units::duration(&d),
    };
    match timeout {
        Some(t) => {
            out.insert("connect_timeout".into(), Value::String(t));
        }
        None => refusals.refuse("connect_timeout", "not a valid duration"),
    }

    let balancer = match LbPolicy::try_from(take(&mut c.lb_policy)) {
        Ok(LbPolicy::RoundRobin) => Ok("weighted_round_robin"),
        Ok(LbPolicy::LeastRequest) => Ok("least_request"),
        Ok(LbPolicy::Random) => Ok("random"),
        Ok(LbPolicy::RingHash | LbPolicy::Maglev) => Err(
            "RING_HASH and MAGLEV take their hash key from the route's hash_policy, which meshwork cannot represent (its hash key is set on the cluster)",
        ),
        Ok(_) | Err(_) => Err("not supported (ROUND_ROBIN, LEAST_REQUEST and RANDOM are)"),
    };
    match balancer {
        Ok(name) => {
            out.insert("load_balancer".into(), json!(name));
        }
        Err(why) => refusals.refuse("lb_policy", why),
    }

    if let Some(mut breakers) = take(&mut c.circuit_breakers) {
        for (i, mut t) in take(&mut breakers.thresholds).into_iter().enumerate() {
            let path = format!("circuit_breakers.thresholds[{i}]");
            if take(&mut t.priority) != RoutingPriority::Default as i32 {
                // Requests have no priority in meshwork: HIGH thresholds never apply.
                continue;
            }
            let mut limits = Map::new();
            for (name, value) in [
                ("max_connections", take(&mut t.max_connections)),
                ("max_pending", take(&mut t.max_pending_requests)),
                ("max_requests", take(&mut t.max_requests)),
                ("max_retries", take(&mut t.max_retries)),
            ] {
                if let Some(v) = value {
                    limits.insert(name.into(), json!(v.value));
                }
            }
            refusals.leftover(&path, &t, fields::THRESHOLDS);
            out.insert("limits".into(), Value::Object(limits));
        }
        refusals.leftover("circuit_breakers", &breakers, &[]);
    }

    if take(&mut c.http2_protocol_options).is_some() {
        out.insert("protocol".into(), json!("http2"));
    }
    for (key, any) in take(&mut c.typed_extension_protocol_options) {
        let path = format!("typed_extension_protocol_options[{key:?}]");
        if key != HTTP_PROTOCOL_OPTIONS {
            refusals.refuse(path, "not supported");
            continue;
        }
        match units::decode::<HttpProtocolOptions>(&any) {
            Ok(options) => {
                if let Some(protocol) = upstream_protocol(options, &path, &mut refusals) {
                    out.insert("protocol".into(), json!(protocol));
                }
            }
            Err(e) => refusals.refuse(path, e),
        }
    }

    if let Some(socket) = take(&mut c.transport_socket) {
        match socket.config_type {
            Some(ConfigType::TypedConfig(any)) => match units::decode::<UpstreamTlsContext>(&any) {
                Ok(tls) => {
                    let tls = upstream_tls(tls, "transport_socket.typed_config", &mut refusals);
                    out.insert("tls".into(), Value::Object(tls));
                }
                Err(e) => refusals.refuse("transport_socket.typed_config", e),
            },
            None => refusals.refuse(
                "transport_socket",
                "a transport socket without typed_config",
            ),
        }
    }

    refusals.leftover("", &c, fields::CLUSTER);
    if refusals.is_empty() {
        Ok(ClusterDef {
            fields: out,
            endpoints,
        })
    } else {
        Err(refusals.into_vec())
    }
}

/// Translates an EDS `ClusterLoadAssignment` into meshwork endpoints (possibly none).
///
/// # Errors
/// Every field meshwork cannot represent.
pub(crate) fn endpoints(cla: &ClusterLoadAssignment) -> Result<Vec<Value>, Vec<Refusal>> {
    let mut refusals = Refusals::default();
    let list = assignment(cla, "", &mut refusals);
    if refusals.is_empty() {
        Ok(list)
    } else {
        Err(refusals.into_vec())
    }
}

/// The serving endpoints of `cla` (at `path` in its resource), as meshwork endpoints.
fn assignment(cla: &ClusterLoadAssignment, path: &str, refusals: &mut Refusals) -> Vec<Value> {
    let mut cla = cla.clone();
    take(&mut cla.cluster_name);
    if let Some(mut policy) = take(&mut cla.policy) {
        if !policy.drop_overloads.is_empty() {
            refusals.refuse(join(path, "policy.drop_overloads"), "not supported");
        }
        // Priority and locality tuning: meshwork has one priority and no localities.
        take(&mut policy.drop_overloads);
    }
    let mut out = Vec::new();
    for (i, group) in take(&mut cla.endpoints).into_iter().enumerate() {
        let at = join(path, &format!("endpoints[{i}]"));
        locality(group, &at, refusals, &mut out);
    }
    refusals.leftover(path, &cla, fields::CLUSTER_LOAD_ASSIGNMENT);
    out
}

fn locality(
    mut group: LocalityLbEndpoints,
    at: &str,
    refusals: &mut Refusals,
    out: &mut Vec<Value>,
) {
    if take(&mut group.priority) != 0 {
        refusals.refuse(
            join(at, "priority"),
            "only priority 0 is supported (meshwork has no failover priorities)",
        );
    }
    // Where the endpoints are and how the locality weighs: meshwork balances endpoints only.
    take(&mut group.locality);
    take(&mut group.load_balancing_weight);
    take(&mut group.metadata);
    for (j, mut lb) in take(&mut group.lb_endpoints).into_iter().enumerate() {
        let at = join(at, &format!("lb_endpoints[{j}]"));
        let health =
            HealthStatus::try_from(take(&mut lb.health_status)).unwrap_or(HealthStatus::Unknown);
        take(&mut lb.metadata);
        let weight = take(&mut lb.load_balancing_weight).map_or(1, |w| w.value);
        let address = match take(&mut lb.host_identifier) {
            Some(HostIdentifier::Endpoint(mut e)) => {
                take(&mut e.hostname);
                let address = take(&mut e.address);
                refusals.leftover(&join(&at, "endpoint"), &e, fields::ENDPOINT);
                match address.as_ref().map(units::socket_address) {
                    Some(Ok(a)) => Some(a),
                    Some(Err(why)) => {
                        refusals.refuse(join(&at, "endpoint.address"), why);
                        None
                    }
                    None => {
                        refusals.refuse(join(&at, "endpoint.address"), "missing");
                        None
                    }
                }
            }
            Some(HostIdentifier::EndpointName(name)) => {
                refusals.refuse(
                    join(&at, "endpoint_name"),
                    format!("named endpoints ({name:?}) are not supported"),
                );
                None
            }
            None => {
                refusals.refuse(join(&at, "endpoint"), "missing");
                None
            }
        };
        refusals.leftover(&at, &lb, fields::LB_ENDPOINT);
        let serving = !matches!(
            health,
            HealthStatus::Unhealthy | HealthStatus::Draining | HealthStatus::Timeout
        );
        if let (Some(address), true) = (address, serving) {
            out.push(json!({ "address": address, "weight": weight }));
        }
    }
    refusals.leftover(at, &group, fields::LOCALITY_LB_ENDPOINTS);
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
