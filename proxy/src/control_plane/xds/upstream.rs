//! How a cluster talks to its endpoints: the upstream HTTP protocol
//! (`HttpProtocolOptions`) and TLS (`UpstreamTlsContext` with certificate files), in
//! meshwork's cluster format.

use std::mem::take;

use envoy_types::pb::envoy::config::core::v3::DataSource;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::UpstreamProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::explicit_http_config::ProtocolConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use serde_json::{Map, Value, json};

use super::fields;
use super::leftover::{Refusals, join};

/// The upstream protocol an `HttpProtocolOptions` asks for.
pub(super) fn upstream_protocol(
    mut options: HttpProtocolOptions,
    path: &str,
    refusals: &mut Refusals,
) -> Option<&'static str> {
    let protocol = match take(&mut options.upstream_protocol_options) {
        None => None,
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(explicit)) => {
            match explicit.protocol_config {
                Some(ProtocolConfig::HttpProtocolOptions(_)) | None => Some("http1"),
                Some(ProtocolConfig::Http2ProtocolOptions(_)) => Some("http2"),
                Some(ProtocolConfig::Http3ProtocolOptions(_)) => {
                    refusals.refuse(
                        join(path, "explicit_http_config.http3_protocol_options"),
                        "HTTP/3 is not supported",
                    );
                    None
                }
            }
        }
        Some(UpstreamProtocolOptions::AutoConfig(_)) => Some("auto"),
        Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(_)) => {
            refusals.refuse(
                join(path, "use_downstream_protocol_config"),
                "not supported (set the upstream protocol explicitly)",
            );
            None
        }
    };
    refusals.leftover(path, &options, &[]);
    protocol
}

/// meshwork's cluster `tls` from an `UpstreamTlsContext` whose certificates are files.
pub(super) fn upstream_tls(
    mut tls: UpstreamTlsContext,
    path: &str,
    refusals: &mut Refusals,
) -> Map<String, Value> {
    let mut out = Map::new();
    let sni = take(&mut tls.sni);
    if !sni.is_empty() {
        out.insert("server_name".into(), json!(sni));
    }
    if let Some(mut common) = take(&mut tls.common_tls_context) {
        let at = join(path, "common_tls_context");
        // meshwork offers ALPN by the cluster's protocol.
        take(&mut common.alpn_protocols);
        let certificates = take(&mut common.tls_certificates);
        if certificates.len() > 1 {
            refusals.refuse(
                join(&at, "tls_certificates"),
                "at most one client certificate is supported",
            );
        }
        if let Some(mut cert) = certificates.into_iter().next() {
            let at = join(&at, "tls_certificates[0]");
            for (name, source) in [
                ("cert", take(&mut cert.certificate_chain)),
                ("key", take(&mut cert.private_key)),
            ] {
                if let Some(file) = file(source, &join(&at, name), refusals) {
                    out.insert(name.into(), json!(file));
                }
            }
            refusals.leftover(&at, &cert, &[]);
        }
        match take(&mut common.validation_context_type) {
            None => {}
            Some(ValidationContextType::ValidationContext(mut v)) => {
                let at = join(&at, "validation_context");
                if let Some(ca) = file(take(&mut v.trusted_ca), &join(&at, "trusted_ca"), refusals)
                {
                    out.insert("ca".into(), json!(ca));
                }
                let mut identities = Vec::new();
                for (i, san) in take(&mut v.match_typed_subject_alt_names)
                    .into_iter()
                    .enumerate()
                {
                    let exact = match san.matcher.and_then(|m| m.match_pattern) {
                        Some(MatchPattern::Exact(id)) if san.san_type == SanType::Uri as i32 => {
                            Some(id)
                        }
                        _ => None,
                    };
                    match exact {
                        Some(id) => identities.push(Value::String(id)),
                        None => refusals.refuse(
                            join(&at, &format!("match_typed_subject_alt_names[{i}]")),
                            "only exact URI SANs (SPIFFE IDs) are supported",
                        ),
                    }
                }
                if !identities.is_empty() {
                    out.insert("identities".into(), Value::Array(identities));
                }
                refusals.leftover(&at, &v, fields::CERTIFICATE_VALIDATION_CONTEXT);
            }
            Some(_) => refusals.refuse(
                join(&at, "validation_context"),
                "only an inline validation_context with files is supported (no SDS)",
            ),
        }
        refusals.leftover(&at, &common, fields::COMMON_TLS_CONTEXT);
    }
    refusals.leftover(path, &tls, fields::UPSTREAM_TLS_CONTEXT);
    out
}

/// The file a `DataSource` names; meshwork reads certificates from files only.
fn file(source: Option<DataSource>, path: &str, refusals: &mut Refusals) -> Option<String> {
    match source?.specifier {
        Some(Specifier::Filename(f)) => Some(f),
        _ => {
            refusals.refuse(
                path,
                "only filename is supported (meshwork reads certificates from files)",
            );
            None
        }
    }
}
