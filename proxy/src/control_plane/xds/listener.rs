//! LDS: an Envoy `Listener` as a meshwork listener.
//!
//! A listener translates when it has one filter chain (no `filter_chain_match`, no TLS)
//! holding one network filter: an `HttpConnectionManager` whose routes come from RDS
//! and whose only HTTP filter is the router (`protocol: http`, `route_table`: the route
//! configuration's name), or a `TcpProxy` to one cluster (`protocol: tcp`). Its address
//! must be a TCP socket address; `traffic_direction: OUTBOUND` gives `direction:
//! outbound`.

use std::mem::take;

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, Listener};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::{
    CodecType, RouteSpecifier,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier;
use prost::Name;
use serde_json::{Map, Value, json};

use super::fields;
use super::leftover::{Refusal, Refusals, join};
use super::units;

/// A listener in meshwork's format and the route configuration it waits for.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ListenerDef {
    pub fields: Map<String, Value>,
    /// The RDS route configuration an HTTP listener serves (it is not applied before
    /// that arrives).
    pub route_config: Option<String>,
}

/// Translates an LDS listener.
///
/// # Errors
/// Every field meshwork cannot represent.
pub(crate) fn listener(listener: &Listener) -> Result<ListenerDef, Vec<Refusal>> {
    let mut l = listener.clone();
    let mut refusals = Refusals::default();
    let mut out = Map::new();
    out.insert("name".into(), json!(take(&mut l.name)));
    take(&mut l.stat_prefix);
    take(&mut l.metadata);
    match take(&mut l.address).as_ref().map(units::socket_address) {
        Some(Ok(address)) => {
            out.insert("address".into(), json!(address));
        }
        Some(Err(why)) => refusals.refuse("address", why),
        None => refusals.refuse("address", "missing"),
    }
    if TrafficDirection::try_from(take(&mut l.traffic_direction)) == Ok(TrafficDirection::Outbound)
    {
        out.insert("direction".into(), json!("outbound"));
    }
    let mut route_config = None;
    let chains = take(&mut l.filter_chains);
    if chains.len() != 1 {
        refusals.refuse(
            "filter_chains",
            format!(
                "exactly one filter chain is supported, got {}",
                chains.len()
            ),
        );
    }
    if let Some(mut chain) = chains.into_iter().next() {
        let path = "filter_chains[0]";
        take(&mut chain.name);
        take(&mut chain.metadata);
        let filters = take(&mut chain.filters);
        if filters.len() != 1 {
            refusals.refuse(
                join(path, "filters"),
                format!(
                    "exactly one network filter is supported, got {}",
                    filters.len()
                ),
            );
        }
        if let Some(filter) = filters.into_iter().next() {
            route_config =
                network_filter(filter, &join(path, "filters[0]"), &mut refusals, &mut out);
        }
        refusals.leftover(path, &chain, fields::FILTER_CHAIN);
    }
    refusals.leftover("", &l, fields::LISTENER);
    if refusals.is_empty() {
        Ok(ListenerDef {
            fields: out,
            route_config,
        })
    } else {
        Err(refusals.into_vec())
    }
}

/// The listener's protocol from its network filter; the RDS name for HTTP.
fn network_filter(
    filter: Filter,
    path: &str,
    refusals: &mut Refusals,
    out: &mut Map<String, Value>,
) -> Option<String> {
    let Some(ConfigType::TypedConfig(any)) = filter.config_type else {
        refusals.refuse(
            join(path, "typed_config"),
            "a network filter needs its typed_config",
        );
        return None;
    };
    let at = join(path, "typed_config");
    if any.type_url == TcpProxy::type_url() {
        let mut tcp = match units::decode::<TcpProxy>(&any) {
            Ok(t) => t,
            Err(why) => {
                refusals.refuse(at, why);
                return None;
            }
        };
        take(&mut tcp.stat_prefix);
        match take(&mut tcp.cluster_specifier) {
            Some(ClusterSpecifier::Cluster(c)) => {
                out.insert("protocol".into(), json!("tcp"));
                out.insert("cluster".into(), json!(c));
            }
            _ => refusals.refuse(
                join(&at, "cluster_specifier"),
                "only one cluster is supported",
            ),
        }
        refusals.leftover(&at, &tcp, fields::TCP_PROXY);
        return None;
    }
    let mut hcm = match units::decode::<HttpConnectionManager>(&any) {
        Ok(h) => h,
        Err(_) => {
            refusals.refuse(at, format!("{:?}: only the http_connection_manager and tcp_proxy network filters are supported", any.type_url));
            return None;
        }
    };
    take(&mut hcm.stat_prefix);
    if take(&mut hcm.codec_type) != CodecType::Auto as i32 {
        refusals.refuse(
            join(&at, "codec_type"),
            "only AUTO is supported (meshwork detects HTTP/1.1 and HTTP/2 per connection)",
        );
    }
    let filters = take(&mut hcm.http_filters);
    for (i, f) in filters.iter().enumerate() {
        let is_router = match &f.config_type {
            Some(http_filter::ConfigType::TypedConfig(any)) => any.type_url == Router::type_url(),
            _ => false,
        };
        if !is_router || i + 1 != filters.len() {
            refusals.refuse(
                format!("{at}.http_filters[{i}]"),
                format!("{:?}: only the router filter is supported", f.name),
            );
        }
    }
    let route_config = match take(&mut hcm.route_specifier) {
        Some(RouteSpecifier::Rds(rds)) if !rds.route_config_name.is_empty() => {
            out.insert("protocol".into(), json!("http"));
            out.insert("route_table".into(), json!(rds.route_config_name));
            Some(rds.route_config_name)
        }
        _ => {
            refusals.refuse(
                join(&at, "route_specifier"),
                "only rds with a route_config_name is supported",
            );
            None
        }
    };
    refusals.leftover(&at, &hcm, fields::HTTP_CONNECTION_MANAGER);
    route_config
}

#[cfg(test)]
#[path = "listener_tests.rs"]
mod tests;
