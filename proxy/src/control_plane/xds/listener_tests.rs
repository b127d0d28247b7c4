//! Tests of the LDS translation.

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, TransportSocket};
use envoy_types::pb::envoy::config::listener::v3::FilterChain;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, Rds,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

use super::*;

fn any<M: Message + Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

fn router() -> HttpFilter {
    HttpFilter {
        name: "envoy.filters.http.router".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(
            any(&Router::default()),
        )),
        ..HttpFilter::default()
    }
}

fn hcm(route_specifier: RouteSpecifier, filters: Vec<HttpFilter>) -> HttpConnectionManager {
    HttpConnectionManager {
        stat_prefix: "edge".into(),
        route_specifier: Some(route_specifier),
        http_filters: filters,
        ..HttpConnectionManager::default()
    }
}

fn rds(name: &str) -> RouteSpecifier {
    RouteSpecifier::Rds(Rds {
        config_source: None,
        route_config_name: name.into(),
    })
}

fn listener_with(filters: Vec<Any>) -> Listener {
    Listener {
        name: "edge".into(),
        address: Some(Address {
            address: Some(AddressKind::SocketAddress(SocketAddress {
                address: "0.0.0.0".into(),
                port_specifier: Some(PortSpecifier::PortValue(8080)),
                ..SocketAddress::default()
            })),
        }),
        filter_chains: vec![FilterChain {
            filters: filters
                .into_iter()
                .map(|a| Filter {
                    name: "f".into(),
                    config_type: Some(ConfigType::TypedConfig(a)),
                })
                .collect(),
            ..FilterChain::default()
        }],
        ..Listener::default()
    }
}

fn refused(l: &Listener) -> Vec<String> {
    listener(l)
        .expect_err("refused")
        .into_iter()
        .map(|r| r.field)
        .collect()
}

#[test]
fn an_http_connection_manager_on_rds_is_an_http_listener() {
    let def = listener(&listener_with(vec![any(&hcm(
        rds("edge-routes"),
        vec![router()],
    ))]))
    .expect("translates");
    assert_eq!(def.route_config.as_deref(), Some("edge-routes"));
    assert_eq!(
        Value::Object(def.fields),
        json!({ "name": "edge", "address": "0.0.0.0:8080", "protocol": "http", "route_table": "edge-routes" })
    );
}

#[test]
fn a_tcp_proxy_is_a_tcp_listener() {
    let tcp = TcpProxy {
        stat_prefix: "db".into(),
        cluster_specifier: Some(ClusterSpecifier::Cluster("db".into())),
        ..TcpProxy::default()
    };
    let mut l = listener_with(vec![any(&tcp)]);
    l.traffic_direction = TrafficDirection::Outbound as i32;
    let def = listener(&l).expect("translates");
    assert_eq!(def.route_config, None);
    assert_eq!(def.fields["protocol"], "tcp");
    assert_eq!(def.fields["cluster"], "db");
    assert_eq!(def.fields["direction"], "outbound");
}

#[test]
fn filters_meshwork_does_not_run_are_refused_by_field() {
    // A filter before the router would be skipped: refused, not ignored.
    let mut authz = router();
    authz.name = "envoy.filters.http.ext_authz".into();
    authz.config_type = Some(http_filter::ConfigType::TypedConfig(Any {
        type_url: "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz".into(),
        value: Vec::new(),
    }));
    let l = listener_with(vec![any(&hcm(rds("r"), vec![authz, router()]))]);
    assert_eq!(
        refused(&l),
        ["filter_chains[0].filters[0].typed_config.http_filters[0]"]
    );

    let inline = RouteSpecifier::RouteConfig(RouteConfiguration::default());
    let l = listener_with(vec![any(&hcm(inline, vec![router()]))]);
    assert_eq!(
        refused(&l),
        ["filter_chains[0].filters[0].typed_config.route_specifier"]
    );

    let mut tls = listener_with(vec![any(&hcm(rds("r"), vec![router()]))]);
    tls.filter_chains[0].transport_socket = Some(TransportSocket::default());
    assert_eq!(refused(&tls), ["filter_chains[0].transport_socket"]);

    let mut two = listener_with(vec![any(&hcm(rds("r"), vec![router()]))]);
    two.filter_chains.push(FilterChain::default());
    assert_eq!(refused(&two), ["filter_chains"]);
}
