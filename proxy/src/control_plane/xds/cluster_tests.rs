//! Tests of the CDS/EDS translation.

use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, EdsClusterConfig,
};
use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, OutlierDetection, circuit_breakers::Thresholds,
};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    Address, DataSource, SocketAddress, TransportSocket, transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{Endpoint, LbEndpoint, LocalityLbEndpoints};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SubjectAltNameMatcher, TlsCertificate,
};
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::google::protobuf::{Any, Duration, UInt32Value};
use prost::{Message, Name};

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;

use super::*;

fn address(host: &str, port: u32) -> Address {
    Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: host.into(),
            port_specifier: Some(PortSpecifier::PortValue(port)),
            ..SocketAddress::default()
        })),
    }
}

fn lb_endpoint(port: u32, weight: Option<u32>, health: HealthStatus) -> LbEndpoint {
    LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(address("127.0.0.1", port)),
            ..Endpoint::default()
        })),
        load_balancing_weight: weight.map(|value| UInt32Value { value }),
        health_status: health as i32,
        ..LbEndpoint::default()
    }
}

fn assignment(endpoints: Vec<LbEndpoint>) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: "api".into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: endpoints,
            ..LocalityLbEndpoints::default()
        }],
        ..ClusterLoadAssignment::default()
    }
}

fn refused_fields(result: Result<ClusterDef, Vec<Refusal>>) -> Vec<String> {
    result
        .expect_err("refused")
        .into_iter()
        .map(|r| r.field)
        .collect()
}

#[test]
fn an_eds_cluster_keeps_envoys_meaning() {
    let c = Cluster {
        name: "api".into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: None,
            service_name: "api-svc".into(),
        }),
        circuit_breakers: Some(CircuitBreakers {
            thresholds: vec![Thresholds {
                max_connections: Some(UInt32Value { value: 7 }),
                max_retries: Some(UInt32Value { value: 2 }),
                ..Thresholds::default()
            }],
            ..CircuitBreakers::default()
        }),
        ..Cluster::default()
    };
    let def = cluster(&c).expect("translates");
    assert_eq!(def.endpoints, EndpointSource::Eds("api-svc".into()));
    assert_eq!(
        Value::Object(def.fields),
        json!({
            "name": "api",
            // Envoy's defaults, written out: 5s to connect, weighted round robin.
            "connect_timeout": "5000ms",
            "load_balancer": "weighted_round_robin",
            "limits": { "max_connections": 7, "max_retries": 2 },
        })
    );
}

#[test]
fn endpoints_keep_weights_and_leave_out_the_ones_not_serving() {
    let cla = assignment(vec![
        lb_endpoint(1, Some(3), HealthStatus::Healthy),
        lb_endpoint(2, None, HealthStatus::Unknown),
        lb_endpoint(3, None, HealthStatus::Draining),
        lb_endpoint(4, None, HealthStatus::Unhealthy),
    ]);
    assert_eq!(
        endpoints(&cla).expect("translates"),
        vec![
            json!({ "address": "127.0.0.1:1", "weight": 3 }),
            json!({ "address": "127.0.0.1:2", "weight": 1 }),
        ]
    );
    let mut failover = assignment(vec![lb_endpoint(1, None, HealthStatus::Healthy)]);
    failover.endpoints[0].priority = 1;
    let refused = endpoints(&failover).expect_err("refused");
    assert_eq!(refused[0].field, "endpoints[0].priority");
}

#[test]
fn upstream_tls_from_files_becomes_the_clusters_tls() {
    let file = |f: &str| {
        Some(DataSource {
            specifier: Some(Specifier::Filename(f.into())),
            ..DataSource::default()
        })
    };
    let tls = UpstreamTlsContext {
        sni: "api.internal".into(),
        common_tls_context: Some(CommonTlsContext {
            tls_certificates: vec![TlsCertificate {
                certificate_chain: file("/certs/client.pem"),
                private_key: file("/certs/client-key.pem"),
                ..TlsCertificate::default()
            }],
            validation_context_type: Some(ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    trusted_ca: file("/certs/ca.pem"),
                    match_typed_subject_alt_names: vec![SubjectAltNameMatcher {
                        san_type: SanType::Uri as i32,
                        matcher: Some(StringMatcher {
                            match_pattern: Some(MatchPattern::Exact(
                                "spiffe://cluster.local/ns/prod/sa/api".into(),
                            )),
                            ..StringMatcher::default()
                        }),
                        ..SubjectAltNameMatcher::default()
                    }],
                    ..CertificateValidationContext::default()
                },
            )),
            ..CommonTlsContext::default()
        }),
        ..UpstreamTlsContext::default()
    };
    let c = Cluster {
        name: "api".into(),
        load_assignment: Some(assignment(vec![lb_endpoint(
            443,
            None,
            HealthStatus::Unknown,
        )])),
        transport_socket: Some(TransportSocket {
            name: "envoy.transport_sockets.tls".into(),
            config_type: Some(transport_socket::ConfigType::TypedConfig(Any {
                type_url: UpstreamTlsContext::type_url(),
                value: tls.encode_to_vec(),
            })),
        }),
        ..Cluster::default()
    };
    let def = cluster(&c).expect("translates");
    assert_eq!(
        def.fields["tls"],
        json!({
            "server_name": "api.internal",
            "cert": "/certs/client.pem",
            "key": "/certs/client-key.pem",
            "ca": "/certs/ca.pem",
            "identities": ["spiffe://cluster.local/ns/prod/sa/api"],
        })
    );
    assert_eq!(
        def.endpoints,
        EndpointSource::Static(vec![json!({ "address": "127.0.0.1:443", "weight": 1 })])
    );
}

#[test]
fn what_meshwork_cannot_represent_is_refused_by_field() {
    let c = Cluster {
        name: "hashed".into(),
        lb_policy: LbPolicy::Maglev as i32,
        outlier_detection: Some(OutlierDetection::default()),
        connect_timeout: Some(Duration {
            seconds: -1,
            nanos: 0,
        }),
        load_assignment: Some(assignment(vec![lb_endpoint(
            1,
            None,
            HealthStatus::Unknown,
        )])),
        ..Cluster::default()
    };
    assert_eq!(
        refused_fields(cluster(&c)),
        ["connect_timeout", "lb_policy", "outlier_detection"]
    );

    let original_dst = Cluster {
        name: "passthrough".into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(
            DiscoveryType::OriginalDst as i32,
        )),
        ..Cluster::default()
    };
    assert_eq!(refused_fields(cluster(&original_dst)), ["type"]);

    let no_endpoints = Cluster {
        name: "static".into(),
        ..Cluster::default()
    };
    assert_eq!(refused_fields(cluster(&no_endpoints)), ["load_assignment"]);
}
