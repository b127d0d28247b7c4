//! Tests of the subscription state: what is asked, kept, NACKed and resumed.

use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType, LbPolicy};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{Endpoint, LbEndpoint, LocalityLbEndpoints};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, filter};
use envoy_types::pb::envoy::config::route::v3::{Route, RouteAction, RouteMatch, VirtualHost, route, route_action, route_match};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{HttpConnectionManager, HttpFilter, Rds, http_filter};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

use super::*;

fn any<M: Message + Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

fn address(port: u32) -> Address {
    Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: "127.0.0.1".into(),
            port_specifier: Some(PortSpecifier::PortValue(port)),
            ..SocketAddress::default()
        })),
    }
}

fn eds_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        ..Cluster::default()
    }
}

fn cla(name: &str, port: u32) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                    address: Some(address(port)),
                    ..Endpoint::default()
                })),
                ..LbEndpoint::default()
            }],
            ..LocalityLbEndpoints::default()
        }],
        ..ClusterLoadAssignment::default()
    }
}

fn http_listener(name: &str, routes: &str) -> Listener {
    let hcm = HttpConnectionManager {
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: None,
            route_config_name: routes.into(),
        })),
        http_filters: vec![HttpFilter {
            name: "router".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(
                any(&Router::default()),
            )),
            ..HttpFilter::default()
        }],
        ..HttpConnectionManager::default()
    };
    Listener {
        name: name.into(),
        address: Some(address(0)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "hcm".into(),
                config_type: Some(filter::ConfigType::TypedConfig(any(&hcm))),
            }],
            ..FilterChain::default()
        }],
        ..Listener::default()
    }
}

fn routes(name: &str, cluster: &str) -> RouteConfiguration {
    RouteConfiguration {
        name: name.into(),
        virtual_hosts: vec![VirtualHost {
            name: "all".into(),
            domains: vec!["*".into()],
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                    ..RouteMatch::default()
                }),
                action: Some(route::Action::Route(RouteAction {
                    cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                        cluster.into(),
                    )),
                    ..RouteAction::default()
                })),
                ..Route::default()
            }],
            ..VirtualHost::default()
        }],
        ..RouteConfiguration::default()
    }
}

fn response<M: Message + Name>(version: &str, nonce: &str, resources: &[M]) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: version.into(),
        nonce: nonce.into(),
        type_url: M::type_url(),
        resources: resources.iter().map(any).collect(),
        ..DiscoveryResponse::default()
    }
}

/// Takes a response in and answers it with no apply errors.
fn take_in(state: &mut XdsState, r: DiscoveryResponse) -> (Received, DiscoveryRequest) {
    let received = state.receive(r).expect("a known type");
    let errors = received.errors.clone();
    let answer = state.answer(&received, &errors);
    (received, answer)
}

fn keys(state: &XdsState) -> Vec<String> {
    state
        .resources()
        .iter()
        .map(|r| r.key.to_string())
        .collect()
}

#[test]
fn a_stream_opens_with_wildcard_cds_and_lds_and_names_the_node() {
    let node = Node {
        id: "web-1".into(),
        ..Node::default()
    };
    let requests = XdsState::default().initial_requests(&node);
    let types: Vec<&str> = requests.iter().map(|r| r.type_url.as_str()).collect();
    assert_eq!(types, [Cluster::type_url(), Listener::type_url()]);
    assert_eq!(
        requests[0].node.as_ref().map(|n| n.id.as_str()),
        Some("web-1")
    );
    assert!(requests[1].node.is_none());
    assert!(
        requests
            .iter()
            .all(|r| r.resource_names.is_empty() && r.version_info.is_empty())
    );
}

#[test]
fn endpoints_and_routes_are_subscribed_by_name_and_applied_once_warm() {
    let mut state = XdsState::default();
    let (_, ack) = take_in(&mut state, response("c1", "n1", &[eds_cluster("api")]));
    assert_eq!(
        (ack.version_info.as_str(), ack.response_nonce.as_str()),
        ("c1", "n1")
    );
    assert!(ack.error_detail.is_none());
    let subscribe = state.resubscriptions();
    assert_eq!(subscribe.len(), 1);
    assert_eq!(
        (
            subscribe[0].type_url.clone(),
            subscribe[0].resource_names.clone()
        ),
        (ClusterLoadAssignment::type_url(), vec!["api".to_string()])
    );
    assert!(
        !state.is_ready(),
        "nothing applies before listeners arrived"
    );

    take_in(
        &mut state,
        response("l1", "n2", &[http_listener("edge", "edge-routes")]),
    );
    assert!(state.is_ready() && !state.is_warm());
    assert!(
        keys(&state).is_empty(),
        "the cluster waits for its endpoints, the listener for its routes"
    );
    let subscribe = state.resubscriptions();
    assert_eq!(subscribe[0].resource_names, ["edge-routes"]);

    take_in(&mut state, response("e1", "n3", &[cla("api", 8080)]));
    take_in(
        &mut state,
        response("r1", "n4", &[routes("edge-routes", "api")]),
    );
    assert!(state.is_warm());
    assert_eq!(
        keys(&state),
        [
            "cluster \"api\"",
            "route_table \"edge-routes\"",
            "listener \"edge\""
        ]
    );
    assert!(
        state.resubscriptions().is_empty(),
        "the names did not change"
    );

    // A stream that resumes asks with everything it holds.
    let again = state.initial_requests(&Node::default());
    let asked: Vec<(String, Vec<String>)> = again
        .iter()
        .map(|r| (r.version_info.clone(), r.resource_names.clone()))
        .collect();
    assert_eq!(
        asked,
        [
            ("c1".to_string(), vec![]),
            ("e1".to_string(), vec!["api".to_string()]),
            ("l1".to_string(), vec![]),
            ("r1".to_string(), vec!["edge-routes".to_string()]),
        ]
    );
}

#[test]
fn a_nack_names_the_resource_keeps_its_previous_version_and_the_last_version_taken() {
    let mut state = XdsState::default();
    let mut good = eds_cluster("api");
    good.connect_timeout = Some(envoy_types::pb::google::protobuf::Duration {
        seconds: 2,
        nanos: 0,
    });
    take_in(&mut state, response("1", "n1", &[good]));
    let mut bad = eds_cluster("api");
    bad.lb_policy = LbPolicy::Maglev as i32;
    let (received, nack) = take_in(&mut state, response("2", "n2", &[bad, eds_cluster("web")]));
    assert_eq!(received.names, ["api", "web"]);
    assert_eq!(
        nack.version_info, "1",
        "a NACK carries the last version taken"
    );
    assert_eq!(nack.response_nonce, "n2");
    let detail = nack.error_detail.expect("a NACK");
    assert_eq!(detail.code, 3);
    assert!(
        detail
            .message
            .starts_with("Cluster \"api\": lb_policy: RING_HASH and MAGLEV"),
        "{}",
        detail.message
    );
    assert!(!detail.message.contains("web"));
    // The previous api (2s timeout) is kept, web is taken.
    let view = state.view();
    let clusters = &view[0]["resources"];
    assert_eq!(clusters[0]["standing"]["status"], "nacked");
    assert_eq!(clusters[0]["standing"]["applied_version"], "1");
    assert_eq!(clusters[1]["standing"]["status"], "acked");
    match &state.of(XdsType::Cluster).held["api"].1 {
        Translated::Cluster(def) => assert_eq!(def.fields["connect_timeout"], "2000ms"),
        other => panic!("{other:?}"),
    }
    // A CDS response is the whole set: what it leaves out is gone.
    take_in(&mut state, response("3", "n3", &[eds_cluster("web")]));
    assert_eq!(
        state.of(XdsType::Cluster).held.keys().collect::<Vec<_>>(),
        ["web"]
    );
}

#[test]
fn a_resource_of_another_type_or_one_that_does_not_decode_is_nacked() {
    let mut state = XdsState::default();
    let mut r = response("1", "n1", &[eds_cluster("api")]);
    r.resources.push(any(&cla("api", 1)));
    r.resources.push(Any {
        type_url: Cluster::type_url(),
        value: vec![0xff],
    });
    let (_, nack) = take_in(&mut state, r);
    let message = nack.error_detail.expect("NACK").message;
    assert!(message.contains("\"resources[1]\": a \"type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\" in a response of type"), "{message}");
    assert!(
        message.contains("\"resources[2]\": cannot decode"),
        "{message}"
    );
    assert!(
        state
            .receive(DiscoveryResponse {
                type_url: "type.googleapis.com/x.Y".into(),
                ..DiscoveryResponse::default()
            })
            .is_err()
    );
}
