//! Translation and subscription rules, without a socket.

use std::path::Path;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{
    RouteConfiguration, route, route_action, route_match,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value};
use meshwork_config::model::Config;
use prost::Message;

use super::node::EnvoyNode;
use super::sotw::Subscription;
use super::translate::{Translated, translate};
use super::types::ResourceType;

fn config(yaml: &str) -> Config {
    meshwork_config::load_str("test.yaml", yaml, Path::new(""), &|_| None)
        .unwrap_or_else(|e| panic!("test config is invalid:\n{e}"))
}

fn translated(yaml: &str) -> Translated {
    translate(&config(yaml))
}

const BASE: &str = "
version: 1
listeners:
  - name: edge
    address: 127.0.0.1:8080
    route_table: edge
clusters:
  - name: api
    endpoints: [127.0.0.1:9001, { address: 127.0.0.1:9002, weight: 3 }]
  - name: web
    endpoints: [127.0.0.1:9003]
";

fn with_routes(routes: &str) -> String {
    format!("{BASE}route_tables:\n  edge:\n{routes}")
}

fn hcm(listener: &Listener) -> HttpConnectionManager {
    let filter = listener.filter_chains[0]
        .filters
        .iter()
        .find(|f| f.name == "envoy.filters.network.http_connection_manager")
        .expect("an HCM filter");
    let Some(filter::ConfigType::TypedConfig(any)) = &filter.config_type else {
        panic!("typed config");
    };
    HttpConnectionManager::decode(any.value.as_slice()).expect("decodes")
}

fn only_route_config(t: &Translated) -> &RouteConfiguration {
    assert!(t.refused.is_empty(), "refused: {:?}", t.refused);
    t.routes.get("edge").expect("route config edge")
}

#[test]
fn an_http_listener_takes_its_routes_over_ads_by_table_name() {
    let t = translated(&with_routes(
        "    - name: all\n      backends: [{ cluster: api }]\n",
    ));
    assert!(t.refused.is_empty(), "{:?}", t.refused);
    let hcm = hcm(&t.listeners["edge"]);
    let Some(http_connection_manager::RouteSpecifier::Rds(rds)) = hcm.route_specifier else {
        panic!("RDS expected");
    };
    assert_eq!(rds.route_config_name, "edge");
    assert!(
        rds.config_source
            .is_some_and(|c| c.config_source_specifier.is_some())
    );
    assert_eq!(
        hcm.http_filters.last().map(|f| f.name.as_str()),
        Some("envoy.filters.http.router")
    );
}

#[test]
fn clusters_are_eds_with_weighted_endpoints() {
    let t = translated(&with_routes(
        "    - name: all\n      backends: [{ cluster: api }]\n",
    ));
    let api: &Cluster = &t.clusters["api"];
    assert_eq!(
        api.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32
        ))
    );
    let endpoints = &t.endpoints["api"].endpoints[0].lb_endpoints;
    let weights: Vec<u32> = endpoints
        .iter()
        .map(|e| e.load_balancing_weight.as_ref().map_or(0, |w| w.value))
        .collect();
    assert_eq!(weights, [1, 3]);
}

#[test]
fn a_route_without_timeout_has_none_in_envoy_either() {
    let t = translated(&with_routes(
        "    - name: all\n      backends: [{ cluster: api }]\n",
    ));
    let route = &only_route_config(&t).virtual_hosts[0].routes[0];
    let Some(route::Action::Route(action)) = &route.action else {
        panic!("route action");
    };
    // Envoy's default would be 15s.
    assert_eq!(
        action.timeout.as_ref().map(|d| (d.seconds, d.nanos)),
        Some((0, 0))
    );
}

#[test]
fn host_patterns_become_virtual_hosts_keeping_route_order() {
    let t = translated(&with_routes(
        "    - name: exact
      match: { host: [api.example.com], path: { prefix: /v1/ } }
      backends: [{ cluster: api }]
    - name: wild
      match: { host: [\"*.example.com\"] }
      backends: [{ cluster: web }]
    - name: any
      backends: [{ cluster: web }]
",
    ));
    let rc = only_route_config(&t);
    let hosts: Vec<(Vec<String>, Vec<String>)> = rc
        .virtual_hosts
        .iter()
        .map(|v| {
            (
                v.domains.clone(),
                v.routes.iter().map(|r| r.name.clone()).collect(),
            )
        })
        .collect();
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        hosts,
        vec![
            // api.example.com is also covered by *.example.com, after its own route.
            (
                strings(&["api.example.com"]),
                strings(&["exact", "wild", "any"])
            ),
            (strings(&["*.example.com"]), strings(&["wild", "any"])),
            (strings(&["*"]), strings(&["any"])),
        ]
    );
    let first = &rc.virtual_hosts[0].routes[0];
    assert_eq!(
        first
            .r#match
            .as_ref()
            .and_then(|m| m.path_specifier.clone()),
        Some(route_match::PathSpecifier::Prefix("/v1/".into()))
    );
}

#[test]
fn weighted_backends_become_weighted_clusters() {
    let t = translated(&with_routes(
        "    - name: split\n      backends: [{ cluster: api, weight: 90 }, { cluster: web, weight: 10 }]\n",
    ));
    let route = &only_route_config(&t).virtual_hosts[0].routes[0];
    let Some(route::Action::Route(action)) = &route.action else {
        panic!("route action");
    };
    let Some(route_action::ClusterSpecifier::WeightedClusters(w)) = &action.cluster_specifier
    else {
        panic!("weighted clusters");
    };
    let split: Vec<(String, u32)> = w
        .clusters
        .iter()
        .map(|c| (c.name.clone(), c.weight.as_ref().map_or(0, |w| w.value)))
        .collect();
    assert_eq!(split, [("api".to_string(), 90), ("web".to_string(), 10)]);
}

#[test]
fn retries_keep_attempts_conditions_and_methods() {
    let t = translated(&with_routes(
        "    - name: all
      backends: [{ cluster: api }]
      retry: { attempts: 3, on: [connect-failure, 503, unavailable], per_try_timeout: 1s }
",
    ));
    let route = &only_route_config(&t).virtual_hosts[0].routes[0];
    let Some(route::Action::Route(action)) = &route.action else {
        panic!("route action");
    };
    let retry = action.retry_policy.as_ref().expect("a retry policy");
    assert_eq!(retry.num_retries.as_ref().map(|n| n.value), Some(2));
    assert_eq!(
        retry.retry_on,
        "connect-failure,retriable-status-codes,unavailable"
    );
    assert_eq!(retry.retriable_status_codes, [503]);
    assert_eq!(retry.retriable_request_headers[0].name, ":method");
}

#[test]
fn an_untranslatable_route_refuses_its_table_and_the_listener_using_it() {
    let t = translated(&with_routes(
        "    - name: all
      backends: [{ cluster: api }]
      fault: { abort: { percent: 5, status: 503 } }
",
    ));
    assert!(t.routes.is_empty() && t.listeners.is_empty());
    let refused: Vec<(&str, &str, &str)> = t
        .refused
        .iter()
        .map(|r| (r.kind, r.name.as_str(), r.error.as_str()))
        .collect();
    assert_eq!(
        refused,
        [
            (
                "route_table",
                "edge",
                "[0].fault: fault injection is not translated for Envoy yet"
            ),
            ("listener", "edge", "its route table \"edge\" is refused"),
        ]
    );
    // The clusters are not affected.
    assert_eq!(t.count(ResourceType::Cluster), 2);
}

#[test]
fn a_hedging_route_is_refused_with_why_envoy_cannot_do_it() {
    let t = translated(&with_routes(
        "    - name: all
      backends: [{ cluster: api }]
      hedge: { delay: p95 }
",
    ));
    assert!(t.routes.is_empty() && t.listeners.is_empty());
    let refusal = t.refused.iter().find(|r| r.kind == "route_table").unwrap();
    assert!(
        refusal
            .error
            .starts_with("[0].hedge: Envoy hedges only when a per-try timeout fires"),
        "{}",
        refusal.error
    );
}

#[test]
fn a_cluster_with_a_dns_endpoint_is_refused_with_what_refers_to_it() {
    let yaml = with_routes("    - name: all\n      backends: [{ cluster: api }]\n")
        .replace("127.0.0.1:9001", "api.internal:9001");
    let t = translated(&yaml);
    assert!(!t.clusters.contains_key("api") && t.clusters.contains_key("web"));
    assert_eq!(t.refused[0].kind, "cluster");
    assert!(
        t.refused[0]
            .error
            .starts_with("endpoints[0]: api.internal:9001 is a DNS name"),
        "{}",
        t.refused[0].error
    );
    assert_eq!(
        t.refused[1].error,
        "it sends to cluster \"api\", which is refused"
    );
    assert_eq!(t.refused[2].kind, "listener");
}

#[test]
fn relative_certificate_paths_are_refused_absolute_ones_translated() {
    let tls = |ca: &str| {
        format!(
            "{BASE}  - name: secure
    endpoints: [127.0.0.1:9443]
    tls: {{ ca: {ca}, server_name: api.internal }}
route_tables:
  edge:
    - name: all
      backends: [{{ cluster: secure }}]
"
        )
    };
    let relative = translated(&tls("certs/ca.pem"));
    assert_eq!(relative.refused[0].name, "secure");
    assert!(
        relative.refused[0]
            .error
            .starts_with("tls.ca: \"certs/ca.pem\" is relative"),
        "{}",
        relative.refused[0].error
    );
    let absolute = translated(&tls("/etc/meshwork/ca.pem"));
    assert!(absolute.refused.is_empty(), "{:?}", absolute.refused);
    assert!(absolute.clusters["secure"].transport_socket.is_some());
}

#[test]
fn upstream_tls_without_a_name_to_verify_is_refused() {
    let yaml = format!(
        "{BASE}  - name: secure
    endpoints: [127.0.0.1:9443]
    tls: {{ ca: /etc/ca.pem }}
route_tables:
  edge:
    - name: all
      backends: [{{ cluster: api }}]
"
    );
    let t = translated(&yaml);
    assert_eq!(t.refused.len(), 1);
    assert!(
        t.refused[0]
            .error
            .starts_with("tls: give `server_name` or `identities`")
    );
}

#[test]
fn wildcard_subscriptions_follow_xds_rules() {
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        Subscription::of(ResourceType::Listener, &[]),
        Subscription::All
    );
    assert_eq!(
        Subscription::of(ResourceType::Cluster, &[]),
        Subscription::All
    );
    assert_eq!(
        Subscription::of(ResourceType::Route, &[]),
        Subscription::Names(Default::default())
    );
    assert_eq!(
        Subscription::of(ResourceType::Route, &names(&["*"])),
        Subscription::All
    );
    let named = Subscription::of(ResourceType::Endpoints, &names(&["api"]));
    assert!(named.wants("api") && !named.wants("web"));
}

#[test]
fn node_labels_come_from_metadata_labels() {
    let string = |s: &str| Value {
        kind: Some(value::Kind::StringValue(s.into())),
    };
    let node = |labels: Value| Node {
        id: "envoy-1".into(),
        metadata: Some(Struct {
            fields: [("labels".to_string(), labels)].into_iter().collect(),
        }),
        ..Default::default()
    };
    let labels = Value {
        kind: Some(value::Kind::StructValue(Struct {
            fields: [("app".to_string(), string("web"))].into_iter().collect(),
        })),
    };
    let parsed = EnvoyNode::from_first(Some(&node(labels))).expect("valid node");
    assert_eq!(parsed.labels.get("app").map(String::as_str), Some("web"));

    let bad = EnvoyNode::from_first(Some(&node(string("app=web")))).expect_err("not a map");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let anonymous = EnvoyNode::from_first(Some(&Node::default())).expect_err("no id");
    assert_eq!(anonymous.code(), tonic::Code::InvalidArgument);
}

#[test]
fn latency_ejection_and_slow_start_are_refused_with_their_reason() {
    for (setting, field, reason) in [
        (
            "latency: { factor: 3 }",
            "circuit_breaker.latency",
            "Envoy has no latency-based ejection",
        ),
        (
            "slow_start: 30s",
            "circuit_breaker.slow_start",
            "Envoy's slow start ramps up new or health-checked endpoints",
        ),
    ] {
        let yaml = with_routes("    - name: all\n      backends: [{ cluster: web }]\n").replace(
            "    endpoints: [127.0.0.1:9001, { address: 127.0.0.1:9002, weight: 3 }]\n",
            &format!(
                "    endpoints: [127.0.0.1:9001, {{ address: 127.0.0.1:9002, weight: 3 }}]\n    circuit_breaker: {{ {setting} }}\n"
            ),
        );
        let t = translated(&yaml);
        assert!(!t.clusters.contains_key("api"), "{setting}");
        assert!(t.clusters.contains_key("web"), "the others are translated");
        assert_eq!(t.refused[0].kind, "cluster");
        assert_eq!(t.refused[0].name, "api");
        assert!(
            t.refused[0]
                .error
                .starts_with(&format!("{field}: {reason}")),
            "{}",
            t.refused[0].error
        );
    }
}
