//! A meshwork listener -> an Envoy Listener: HTTP through an HttpConnectionManager whose
//! routes come over RDS, TCP through tcp_proxy, TLS terminated with file certificates
//! picked by SNI.

use envoy_types::pb::envoy::config::core::v3::{
    HttpProtocolOptions as CommonHttp, TrafficDirection, TransportSocket, transport_socket,
};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter, listener_filter,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::connection_limit::v3::ConnectionLimit;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, TlsCertificate,
    common_tls_context,
};
use envoy_types::pb::google::protobuf::UInt64Value;
use meshwork_config::model::{self, ClientAuth, Direction, EscapedSlashes, ListenerProtocol};

use super::Untranslatable;
use crate::xds::proto;

/// Envoy's ceiling for `max_request_headers_kb`.
const ENVOY_MAX_REQUEST_HEADERS_KIB: u64 = 8192;

pub(super) fn listener(l: &model::Listener) -> Result<Listener, Untranslatable> {
    let main = match &l.protocol {
        ListenerProtocol::Http { route_table } => http_connection_manager(l, route_table)?,
        ListenerProtocol::Tcp { cluster } => tcp_proxy(l, cluster),
        ListenerProtocol::Auto { .. } => {
            return Err(Untranslatable::new(
                "protocol",
                "`auto` (sidecar interception, detection per connection) is not translated for Envoy",
            ));
        }
    };
    let filters = vec![connection_limit(l), main];
    let (filter_chains, listener_filters) = match &l.tls {
        None => (
            vec![FilterChain {
                filters,
                ..Default::default()
            }],
            Vec::new(),
        ),
        Some(tls) => (
            tls_chains(tls, &filters).map_err(|e| e.within("tls"))?,
            vec![ListenerFilter {
                name: "envoy.filters.listener.tls_inspector".to_string(),
                config_type: Some(listener_filter::ConfigType::TypedConfig(proto::any(
                    &TlsInspector::default(),
                ))),
                ..Default::default()
            }],
        ),
    };
    Ok(Listener {
        name: l.name.clone(),
        address: Some(proto::socket_address(l.address.ip(), l.address.port())),
        filter_chains,
        listener_filters,
        traffic_direction: match l.direction {
            Direction::Inbound => TrafficDirection::Inbound as i32,
            Direction::Outbound => TrafficDirection::Outbound as i32,
        },
        ..Default::default()
    })
}

/// `limits.max_connections`: connections past it are closed at once.
fn connection_limit(l: &model::Listener) -> Filter {
    let limit = ConnectionLimit {
        stat_prefix: l.name.clone(),
        max_connections: Some(UInt64Value {
            value: l.limits.max_connections.into(),
        }),
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.connection_limit".to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(proto::any(&limit))),
    }
}

fn http_connection_manager(
    l: &model::Listener,
    route_table: &str,
) -> Result<Filter, Untranslatable> {
    let header_kib = l.limits.max_request_header_size.div_ceil(1024);
    if header_kib > ENVOY_MAX_REQUEST_HEADERS_KIB {
        return Err(Untranslatable::new(
            "limits.max_request_header_size",
            format!("Envoy allows at most {ENVOY_MAX_REQUEST_HEADERS_KIB}KiB"),
        ));
    }
    use http_connection_manager::PathWithEscapedSlashesAction as Slashes;
    let hcm = HttpConnectionManager {
        stat_prefix: l.name.clone(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(proto::ads()),
            route_config_name: route_table.to_string(),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".to_string(),
            config_type: Some(http_filter::ConfigType::TypedConfig(proto::any(
                &Router::default(),
            ))),
            ..Default::default()
        }],
        max_request_headers_kb: Some(proto::u32_value(header_kib as u32)),
        request_headers_timeout: Some(proto::duration(l.limits.header_read_timeout)),
        common_http_protocol_options: Some(CommonHttp {
            idle_timeout: Some(proto::duration(l.limits.idle_timeout)),
            ..Default::default()
        }),
        // Paths are routed normalized (dot segments resolved), as in meshwork.
        normalize_path: Some(proto::bool_value(true)),
        path_with_escaped_slashes_action: match l.paths.escaped_slashes {
            EscapedSlashes::Reject => Slashes::RejectRequest as i32,
            EscapedSlashes::Keep => Slashes::KeepUnchanged as i32,
        },
        ..Default::default()
    };
    Ok(Filter {
        name: "envoy.filters.network.http_connection_manager".to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(proto::any(&hcm))),
    })
}

fn tcp_proxy(l: &model::Listener, cluster: &str) -> Filter {
    let proxy = TcpProxy {
        stat_prefix: l.name.clone(),
        cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(cluster.to_string())),
        idle_timeout: Some(proto::duration(l.limits.idle_timeout)),
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.tcp_proxy".to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(proto::any(&proxy))),
    }
}

/// One filter chain per certificate, matched by SNI on its `server_names` (a name goes
/// to the first certificate listing it), and the first certificate again as the chain
/// for any other name or none (meshwork's default certificate).
fn tls_chains(
    tls: &model::ListenerTls,
    filters: &[Filter],
) -> Result<Vec<FilterChain>, Untranslatable> {
    if tls.certificates.is_empty() {
        return Err(Untranslatable::new(
            "certificates",
            "absent means the proxy's identity certificate, which Envoy does not have; name the files",
        ));
    }
    let validation = match tls.client_auth {
        ClientAuth::None => None,
        ClientAuth::Optional | ClientAuth::Required => {
            let ca = tls.client_ca.as_deref().ok_or_else(|| {
                Untranslatable::new(
                    "client_ca",
                    "absent means the identity trust bundle, which Envoy does not have; name the CA file",
                )
            })?;
            Some(CertificateValidationContext {
                trusted_ca: Some(proto::file("client_ca", ca)?),
                ..Default::default()
            })
        }
    };
    let chain = |i: usize, server_names: Vec<String>| -> Result<FilterChain, Untranslatable> {
        let cert = &tls.certificates[i];
        let field = format!("certificates[{i}]");
        let context = DownstreamTlsContext {
            common_tls_context: Some(CommonTlsContext {
                tls_certificates: vec![TlsCertificate {
                    certificate_chain: Some(proto::file(&format!("{field}.cert"), &cert.cert)?),
                    private_key: Some(proto::file(&format!("{field}.key"), &cert.key)?),
                    ..Default::default()
                }],
                alpn_protocols: vec!["h2".to_string(), "http/1.1".to_string()],
                validation_context_type: validation
                    .clone()
                    .map(common_tls_context::ValidationContextType::ValidationContext),
                ..Default::default()
            }),
            require_client_certificate: Some(proto::bool_value(
                tls.client_auth == ClientAuth::Required,
            )),
            ..Default::default()
        };
        Ok(FilterChain {
            filter_chain_match: (!server_names.is_empty()).then(|| FilterChainMatch {
                server_names,
                ..Default::default()
            }),
            filters: filters.to_vec(),
            transport_socket: Some(TransportSocket {
                name: "envoy.transport_sockets.tls".to_string(),
                config_type: Some(transport_socket::ConfigType::TypedConfig(proto::any(
                    &context,
                ))),
            }),
            transport_socket_connect_timeout: Some(proto::duration(tls.handshake_timeout)),
            ..Default::default()
        })
    };
    let mut claimed: Vec<String> = Vec::new();
    let mut chains = Vec::new();
    for (i, cert) in tls.certificates.iter().enumerate() {
        let names: Vec<String> = cert
            .server_names
            .iter()
            .map(ToString::to_string)
            .filter(|n| !claimed.contains(n))
            .collect();
        claimed.extend(names.iter().cloned());
        if !names.is_empty() {
            chains.push(chain(i, names)?);
        }
    }
    chains.push(chain(0, Vec::new())?);
    Ok(chains)
}
