//! A meshwork cluster -> an Envoy EDS Cluster (balancer, limits, outlier detection,
//! health checks, upstream TLS, HTTP protocol) and its ClusterLoadAssignment.

use std::net::IpAddr;

use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, OutlierDetection, circuit_breakers, cluster,
};
use envoy_types::pb::envoy::config::core::v3::{
    HealthCheck, Http1ProtocolOptions, Http2ProtocolOptions, HttpProtocolOptions as CommonHttp,
    TransportSocket, health_check, transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SubjectAltNameMatcher, TlsCertificate,
    UpstreamTlsContext, common_tls_context, subject_alt_name_matcher,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use envoy_types::pb::envoy::r#type::v3::{CodecClientType, Int64Range};
use envoy_types::pb::google::protobuf::UInt64Value;
use meshwork_config::model::{self, HealthCheckKind, LoadBalancer, UpstreamProtocol};

use super::Untranslatable;
use crate::xds::proto;

/// Where Envoy finds a cluster's HTTP protocol settings.
const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// The cluster and its endpoints.
pub(super) fn cluster(
    c: &model::Cluster,
) -> Result<(Cluster, ClusterLoadAssignment), Untranslatable> {
    let lb_policy = lb_policy(c.load_balancer)?;
    if let Some(b) = &c.circuit_breaker {
        breaker_extensions(b)?;
    }
    let tls = c
        .tls
        .as_ref()
        .map(|t| upstream_tls(t, c.protocol))
        .transpose()?;
    let endpoints = load_assignment(c)?;
    let mut envoy = Cluster {
        name: c.name.clone(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(proto::ads()),
            service_name: String::new(),
        }),
        connect_timeout: Some(proto::duration(c.connect_timeout)),
        lb_policy: lb_policy as i32,
        lb_config: lb_config(c),
        circuit_breakers: Some(CircuitBreakers {
            thresholds: vec![circuit_breakers::Thresholds {
                max_connections: Some(proto::u32_value(c.limits.max_connections)),
                max_pending_requests: Some(proto::u32_value(c.limits.max_pending)),
                max_requests: Some(proto::u32_value(c.limits.max_requests)),
                max_retries: Some(proto::u32_value(c.limits.max_retries)),
                ..Default::default()
            }],
            ..Default::default()
        }),
        outlier_detection: c.circuit_breaker.as_ref().map(outlier_detection),
        health_checks: c
            .health_check
            .as_ref()
            .map(|h| health_check(h, c.protocol))
            .into_iter()
            .collect(),
        transport_socket: tls,
        ..Default::default()
    };
    envoy.typed_extension_protocol_options.insert(
        HTTP_PROTOCOL_OPTIONS.to_string(),
        proto::any(&http_protocol_options(c)),
    );
    Ok((envoy, endpoints))
}

fn lb_policy(lb: LoadBalancer) -> Result<cluster::LbPolicy, Untranslatable> {
    Ok(match lb {
        // Envoy's round robin follows endpoint weights: it is meshwork's weighted one.
        LoadBalancer::RoundRobin | LoadBalancer::WeightedRoundRobin => {
            cluster::LbPolicy::RoundRobin
        }
        LoadBalancer::Random => cluster::LbPolicy::Random,
        LoadBalancer::LeastRequest => cluster::LbPolicy::LeastRequest,
        LoadBalancer::RingHash => cluster::LbPolicy::RingHash,
        LoadBalancer::Maglev => cluster::LbPolicy::Maglev,
        LoadBalancer::PeakEwma => {
            return Err(Untranslatable::new(
                "load_balancer",
                "peak_ewma has no Envoy equivalent (use least_request)",
            ));
        }
    })
}

fn lb_config(c: &model::Cluster) -> Option<cluster::LbConfig> {
    match c.load_balancer {
        LoadBalancer::RingHash => Some(cluster::LbConfig::RingHashLbConfig(
            cluster::RingHashLbConfig {
                minimum_ring_size: c
                    .balancer_tuning
                    .ring_size
                    .map(|n| UInt64Value { value: n.into() }),
                ..Default::default()
            },
        )),
        LoadBalancer::Maglev => Some(cluster::LbConfig::MaglevLbConfig(cluster::MaglevLbConfig {
            table_size: c
                .balancer_tuning
                .maglev_table_size
                .map(|n| UInt64Value { value: n.into() }),
        })),
        _ => None,
    }
}

/// Refuses the breaker settings Envoy has nothing for: rather than send a cluster that
/// would quietly behave otherwise.
fn breaker_extensions(b: &model::CircuitBreaker) -> Result<(), Untranslatable> {
    if b.latency.is_some() {
        return Err(Untranslatable::new(
            "circuit_breaker.latency",
            "Envoy has no latency-based ejection (its outlier detection ejects on errors only; least_request biases picks away from slow endpoints)",
        ));
    }
    if b.slow_start.is_some() {
        return Err(Untranslatable::new(
            "circuit_breaker.slow_start",
            "Envoy's slow start ramps up new or health-checked endpoints, not endpoints returning from outlier ejection",
        ));
    }
    Ok(())
}

/// meshwork's per-endpoint breaker as Envoy's outlier detection: consecutive failures
/// and failure rate eject an endpoint for `open_duration` (growing per ejection up to
/// `max_open_duration`); Envoy's own success-rate ejection is switched off.
fn outlier_detection(b: &model::CircuitBreaker) -> OutlierDetection {
    let percent = |on: bool| Some(proto::u32_value(if on { 100 } else { 0 }));
    let mut od = OutlierDetection {
        base_ejection_time: Some(proto::duration(b.open_duration)),
        max_ejection_time: Some(proto::duration(b.max_open_duration)),
        max_ejection_percent: Some(proto::u32_value(b.max_ejected_percent.into())),
        enforcing_success_rate: percent(false),
        enforcing_consecutive_5xx: percent(b.consecutive_failures.is_some()),
        consecutive_5xx: b.consecutive_failures.map(proto::u32_value),
        enforcing_consecutive_gateway_failure: percent(false),
        enforcing_failure_percentage: percent(b.failure_rate.is_some()),
        ..Default::default()
    };
    if let Some(rate) = &b.failure_rate {
        // threshold is a share (0..=1) in meshwork, a percentage in Envoy.
        let threshold = (rate.threshold * 100.0).round().clamp(0.0, 100.0) as u32;
        od.failure_percentage_threshold = Some(proto::u32_value(threshold));
        od.failure_percentage_request_volume = Some(proto::u32_value(rate.min_requests));
        od.failure_percentage_minimum_hosts = Some(proto::u32_value(1));
        od.interval = Some(proto::duration(rate.window));
    }
    od
}

fn health_check(h: &model::HealthCheck, protocol: UpstreamProtocol) -> HealthCheck {
    let checker = match &h.kind {
        HealthCheckKind::Http {
            path,
            expected_status,
        } => health_check::HealthChecker::HttpHealthCheck(health_check::HttpHealthCheck {
            path: path.clone(),
            expected_statuses: expected_status
                .iter()
                .map(|s| Int64Range {
                    start: i64::from(*s),
                    end: i64::from(*s) + 1,
                })
                .collect(),
            codec_client_type: match protocol {
                UpstreamProtocol::Http2 => CodecClientType::Http2 as i32,
                _ => CodecClientType::Http1 as i32,
            },
            ..Default::default()
        }),
        HealthCheckKind::Tcp => {
            health_check::HealthChecker::TcpHealthCheck(health_check::TcpHealthCheck::default())
        }
    };
    HealthCheck {
        timeout: Some(proto::duration(h.timeout)),
        interval: Some(proto::duration(h.interval)),
        unhealthy_threshold: Some(proto::u32_value(h.unhealthy_threshold)),
        healthy_threshold: Some(proto::u32_value(h.healthy_threshold)),
        health_checker: Some(checker),
        ..Default::default()
    }
}

/// HTTP/1.1, HTTP/2 (h2c or h2), or ALPN over TLS (`auto` in plaintext is HTTP/1.1, as
/// in meshwork); pooled connections close after `idle_timeout`.
fn http_protocol_options(c: &model::Cluster) -> HttpProtocolOptions {
    use http_protocol_options::{AutoHttpConfig, ExplicitHttpConfig, explicit_http_config};
    let upstream = match (c.protocol, c.tls.is_some()) {
        (UpstreamProtocol::Http2, _) => {
            http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
                protocol_config: Some(explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                    Http2ProtocolOptions::default(),
                )),
            })
        }
        (UpstreamProtocol::Auto, true) => {
            http_protocol_options::UpstreamProtocolOptions::AutoConfig(AutoHttpConfig {
                http_protocol_options: Some(Http1ProtocolOptions::default()),
                http2_protocol_options: Some(Http2ProtocolOptions::default()),
                ..Default::default()
            })
        }
        _ => {
            http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
                protocol_config: Some(explicit_http_config::ProtocolConfig::HttpProtocolOptions(
                    Http1ProtocolOptions::default(),
                )),
            })
        }
    };
    HttpProtocolOptions {
        common_http_protocol_options: Some(CommonHttp {
            idle_timeout: Some(proto::duration(c.idle_timeout)),
            ..Default::default()
        }),
        upstream_protocol_options: Some(upstream),
        ..Default::default()
    }
}

/// TLS to the endpoints with files Envoy reads. The peer must be verified against
/// something: the accepted SPIFFE IDs, or else `server_name` (Envoy checks only the
/// chain otherwise, which would accept any certificate of the CA for any name).
fn upstream_tls(
    t: &model::ClientTls,
    protocol: UpstreamProtocol,
) -> Result<TransportSocket, Untranslatable> {
    let ca = t.ca.as_deref().ok_or_else(|| {
        Untranslatable::new(
            "tls.ca",
            "absent means the proxy's identity trust bundle, which Envoy does not have; name the CA file",
        )
    })?;
    let san = |san_type: subject_alt_name_matcher::SanType, value: &str| SubjectAltNameMatcher {
        san_type: san_type as i32,
        matcher: Some(proto::exact(value)),
        ..Default::default()
    };
    let names: Vec<SubjectAltNameMatcher> = if !t.identities.is_empty() {
        t.identities
            .iter()
            .map(|id| san(subject_alt_name_matcher::SanType::Uri, id))
            .collect()
    } else if let Some(name) = &t.server_name {
        vec![san(subject_alt_name_matcher::SanType::Dns, name)]
    } else {
        return Err(Untranslatable::new(
            "tls",
            "give `server_name` or `identities`: without either Envoy would accept any certificate of the CA",
        ));
    };
    let certificates = match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => vec![TlsCertificate {
            certificate_chain: Some(proto::file("tls.cert", cert)?),
            private_key: Some(proto::file("tls.key", key)?),
            ..Default::default()
        }],
        (None, None) => Vec::new(),
        _ => {
            return Err(Untranslatable::new(
                "tls",
                "a client certificate needs both `cert` and `key` for Envoy (the identity certificate is not available to it)",
            ));
        }
    };
    let alpn = match protocol {
        UpstreamProtocol::Http1 => vec!["http/1.1".to_string()],
        UpstreamProtocol::Http2 => vec!["h2".to_string()],
        UpstreamProtocol::Auto => vec!["h2".to_string(), "http/1.1".to_string()],
    };
    let context = UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificates: certificates,
            alpn_protocols: alpn,
            validation_context_type: Some(
                common_tls_context::ValidationContextType::ValidationContext(
                    CertificateValidationContext {
                        trusted_ca: Some(proto::file("tls.ca", ca)?),
                        match_typed_subject_alt_names: names,
                        ..Default::default()
                    },
                ),
            ),
            ..Default::default()
        }),
        sni: t.server_name.clone().unwrap_or_default(),
        ..Default::default()
    };
    Ok(TransportSocket {
        name: "envoy.transport_sockets.tls".to_string(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(proto::any(
            &context,
        ))),
    })
}

/// The endpoints as addresses: Envoy's EDS takes IPs (DNS names are resolved by
/// meshwork-control when the cluster uses `discovery`).
fn load_assignment(c: &model::Cluster) -> Result<ClusterLoadAssignment, Untranslatable> {
    let mut lb_endpoints = Vec::with_capacity(c.endpoints.len());
    for (i, e) in c.endpoints.iter().enumerate() {
        let ip: IpAddr = e.address.host.parse().map_err(|_| {
            Untranslatable::new(
                format!("endpoints[{i}]"),
                format!(
                    "{} is a DNS name; Envoy's EDS takes addresses (use `discovery: {{ dns: ... }}`, which meshwork-control resolves)",
                    e.address
                ),
            )
        })?;
        lb_endpoints.push(LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(proto::socket_address(ip, e.address.port)),
                ..Default::default()
            })),
            load_balancing_weight: Some(proto::u32_value(e.weight)),
            ..Default::default()
        });
    }
    Ok(ClusterLoadAssignment {
        cluster_name: c.name.clone(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints,
            ..Default::default()
        }],
        ..Default::default()
    })
}
