//! A meshwork route table -> an Envoy RouteConfiguration.
//!
//! meshwork tries routes in order, each with its own host list; Envoy picks a virtual
//! host by domain first, then tries that host's routes in order. So every host pattern
//! written in the table becomes a virtual host holding, in the table's order, every
//! route that a request for that pattern could match (routes without hosts, and routes
//! whose patterns cover it); `*` holds the routes without hosts. A request then meets
//! the same routes in the same order as in meshwork.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, RuntimeFractionalPercent, header_value_option,
};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RedirectAction, RetryPolicy, Route,
    RouteAction, RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster, header_matcher,
    query_parameter_matcher, redirect_action, retry_policy, route, route_action, route_match,
    weighted_cluster,
};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use envoy_types::pb::google::protobuf::UInt64Value;
use meshwork_config::model::{
    self, Config, HashPolicy, HeaderModifier, HostMatch, PathMatch, RetryOn, ValueCondition,
};

use super::Untranslatable;
use crate::xds::proto;

/// The translation of `table`; `config` gives the clusters its routes send to.
pub(super) fn route_table(
    table: &model::RouteTable,
    config: &Config,
) -> Result<RouteConfiguration, Untranslatable> {
    let mut routes = Vec::with_capacity(table.routes.len());
    for (i, r) in table.routes.iter().enumerate() {
        routes.push(self::route(r, config).map_err(|e| e.within(&format!("[{i}]")))?);
    }
    let mut domains: Vec<&HostMatch> = Vec::new();
    for r in &table.routes {
        for h in &r.matcher.hosts {
            if !domains.contains(&h) {
                domains.push(h);
            }
        }
    }
    let mut virtual_hosts: Vec<VirtualHost> = domains
        .iter()
        .map(|domain| VirtualHost {
            name: domain.to_string(),
            domains: vec![domain.to_string()],
            routes: table
                .routes
                .iter()
                .zip(&routes)
                .filter(|(r, _)| {
                    r.matcher.hosts.is_empty() || r.matcher.hosts.iter().any(|h| covers(h, domain))
                })
                .map(|(_, envoy)| envoy.clone())
                .collect(),
            ..Default::default()
        })
        .collect();
    let any_host: Vec<Route> = table
        .routes
        .iter()
        .zip(&routes)
        .filter(|(r, _)| r.matcher.hosts.is_empty())
        .map(|(_, envoy)| envoy.clone())
        .collect();
    if !any_host.is_empty() {
        virtual_hosts.push(VirtualHost {
            name: "*".to_string(),
            domains: vec!["*".to_string()],
            routes: any_host,
            ..Default::default()
        });
    }
    Ok(RouteConfiguration {
        name: table.name.clone(),
        virtual_hosts,
        // meshwork matches hosts without their port.
        ignore_port_in_host_matching: true,
        // meshwork checks cluster names when the config is read; Envoy need not again.
        validate_clusters: Some(proto::bool_value(false)),
        ..Default::default()
    })
}

/// Whether every host `domain` stands for is matched by `pattern`.
fn covers(pattern: &HostMatch, domain: &HostMatch) -> bool {
    match (pattern, domain) {
        (HostMatch::Exact(a), HostMatch::Exact(b)) => a == b,
        (HostMatch::Wildcard(suffix), HostMatch::Exact(host)) => {
            host.len() > suffix.len() && host.ends_with(suffix.as_str())
        }
        (HostMatch::Wildcard(a), HostMatch::Wildcard(b)) => b.ends_with(a.as_str()),
        (HostMatch::Exact(_), HostMatch::Wildcard(_)) => false,
    }
}

fn route(r: &model::Route, config: &Config) -> Result<Route, Untranslatable> {
    if r.fault.is_some() {
        return Err(Untranslatable::new(
            "fault",
            "fault injection is not translated for Envoy yet",
        ));
    }
    if r.hedge.is_some() {
        return Err(Untranslatable::new(
            "hedge",
            "Envoy hedges only when a per-try timeout fires (hedge_on_per_try_timeout, counted against num_retries): it has no hedge delay of its own, no latency percentile and no budget shared with retries",
        ));
    }
    if r.rate_limit.is_some() {
        return Err(Untranslatable::new(
            "rate_limit",
            "local rate limits are not translated for Envoy yet",
        ));
    }
    let action = match &r.action {
        model::RouteAction::Backends(backends) => {
            route::Action::Route(route_action(r, backends, config)?)
        }
        model::RouteAction::DirectResponse(d) => {
            route::Action::DirectResponse(DirectResponseAction {
                status: u32::from(d.status.as_u16()),
                body: Some(DataSource {
                    specifier: Some(data_source::Specifier::InlineString(d.body.clone())),
                    ..Default::default()
                }),
                ..Default::default()
            })
        }
        model::RouteAction::Redirect(redirect) => {
            route::Action::Redirect(redirect_action(redirect)?)
        }
    };
    // Request bodies up to `max_body` are buffered so they can be replayed on a retry.
    let buffer = r
        .retry
        .as_ref()
        .filter(|p| p.attempts > 1)
        .map(|p| UInt64Value { value: p.max_body });
    Ok(Route {
        name: r.name.clone(),
        r#match: Some(route_match(&r.matcher)?),
        request_headers_to_add: headers_to_add(&r.request_headers),
        request_headers_to_remove: names(&r.request_headers),
        response_headers_to_add: headers_to_add(&r.response_headers),
        response_headers_to_remove: names(&r.response_headers),
        request_body_buffer_limit: buffer,
        action: Some(action),
        ..Default::default()
    })
}

fn route_match(m: &model::RouteMatch) -> Result<RouteMatch, Untranslatable> {
    let path = match &m.path {
        None => route_match::PathSpecifier::Prefix("/".to_string()),
        Some(PathMatch::Exact(p)) => route_match::PathSpecifier::Path(p.clone()),
        Some(PathMatch::Prefix(p)) => route_match::PathSpecifier::Prefix(p.clone()),
        Some(PathMatch::Regex(re)) => route_match::PathSpecifier::SafeRegex(proto::full_regex(
            format!("(?s).*(?:{}).*", re.source),
        )),
    };
    let mut headers = Vec::new();
    if !m.methods.is_empty() {
        headers.push(HeaderMatcher {
            name: ":method".to_string(),
            header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
                proto::one_of(&m.methods),
            )),
            ..Default::default()
        });
    }
    for h in &m.headers {
        let specifier = match &h.condition {
            ValueCondition::Exact(v) => {
                header_matcher::HeaderMatchSpecifier::StringMatch(proto::exact(v))
            }
            ValueCondition::Regex(re) => header_matcher::HeaderMatchSpecifier::StringMatch(
                proto::unanchored_regex(&re.source),
            ),
            ValueCondition::Present(present) => {
                header_matcher::HeaderMatchSpecifier::PresentMatch(*present)
            }
        };
        headers.push(HeaderMatcher {
            name: h.name.as_str().to_string(),
            header_match_specifier: Some(specifier),
            ..Default::default()
        });
    }
    let mut query_parameters = Vec::new();
    for (i, q) in m.query.iter().enumerate() {
        let specifier = match &q.condition {
            ValueCondition::Exact(v) => {
                query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(proto::exact(v))
            }
            ValueCondition::Regex(re) => {
                query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(
                    proto::unanchored_regex(&re.source),
                )
            }
            ValueCondition::Present(true) => {
                query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(true)
            }
            ValueCondition::Present(false) => {
                return Err(Untranslatable::new(
                    format!("match.query[{i}].present"),
                    "Envoy cannot match on a query parameter being absent",
                ));
            }
        };
        query_parameters.push(QueryParameterMatcher {
            name: q.name.clone(),
            query_parameter_match_specifier: Some(specifier),
        });
    }
    Ok(RouteMatch {
        path_specifier: Some(path),
        headers,
        query_parameters,
        ..Default::default()
    })
}

fn route_action(
    r: &model::Route,
    backends: &[model::WeightedBackend],
    config: &Config,
) -> Result<RouteAction, Untranslatable> {
    let cluster = match backends {
        [one] => route_action::ClusterSpecifier::Cluster(one.cluster.clone()),
        many => route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: many
                .iter()
                .map(|b| weighted_cluster::ClusterWeight {
                    name: b.cluster.clone(),
                    weight: Some(proto::u32_value(b.weight)),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    };
    let mut action = RouteAction {
        cluster_specifier: Some(cluster),
        // No `timeout` in meshwork is no timeout; Envoy's default would be 15s.
        timeout: Some(proto::duration(r.timeout.unwrap_or_default())),
        retry_policy: r
            .retry
            .as_ref()
            .map(retry_policy)
            .transpose()
            .map_err(|e| e.within("retry"))?
            .flatten(),
        hash_policy: hash_policy(backends, config)?,
        upgrade_configs: r
            .upgrades
            .iter()
            .map(|u| route_action::UpgradeConfig {
                upgrade_type: u.clone(),
                enabled: Some(proto::bool_value(true)),
                ..Default::default()
            })
            .collect(),
        request_mirror_policies: r
            .mirror
            .iter()
            .map(|m| route_action::RequestMirrorPolicy {
                cluster: m.cluster.clone(),
                runtime_fraction: Some(RuntimeFractionalPercent {
                    default_value: Some(FractionalPercent {
                        numerator: (m.percent * 10_000.0).round() as u32,
                        denominator: fractional_percent::DenominatorType::Million as i32,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    if let Some(rewrite) = &r.rewrite {
        if let Some(prefix) = &rewrite.path_prefix {
            action.prefix_rewrite = prefix.clone();
        }
        if let Some(host) = &rewrite.host {
            action.host_rewrite_specifier = Some(
                route_action::HostRewriteSpecifier::HostRewriteLiteral(host.clone()),
            );
        }
    }
    Ok(action)
}

/// The hash of `ring_hash` / `maglev` clusters: Envoy takes it from the route, so the
/// route's backends must agree on it.
fn hash_policy(
    backends: &[model::WeightedBackend],
    config: &Config,
) -> Result<Vec<route_action::HashPolicy>, Untranslatable> {
    let policies: BTreeMap<&str, Option<&HashPolicy>> = backends
        .iter()
        .filter_map(|b| config.cluster(&b.cluster))
        .map(|c| (c.name.as_str(), c.hash.as_ref()))
        .collect();
    let mut distinct: Vec<Option<&HashPolicy>> = policies.values().copied().collect();
    distinct.dedup();
    let Some(Some(policy)) = distinct.first().copied().filter(|_| distinct.len() == 1) else {
        if distinct.len() > 1 {
            return Err(Untranslatable::new(
                "backends",
                "its clusters hash requests differently; Envoy takes one hash per route",
            ));
        }
        return Ok(Vec::new());
    };
    use route_action::hash_policy::{ConnectionProperties, Cookie, Header, PolicySpecifier};
    let specifier = match policy {
        HashPolicy::Header(name) => PolicySpecifier::Header(Header {
            header_name: name.as_str().to_string(),
            ..Default::default()
        }),
        HashPolicy::Cookie(name) => PolicySpecifier::Cookie(Cookie {
            name: name.clone(),
            ..Default::default()
        }),
        HashPolicy::SourceIp => {
            PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip: true })
        }
    };
    Ok(vec![route_action::HashPolicy {
        policy_specifier: Some(specifier),
        ..Default::default()
    }])
}

/// Retries as Envoy's policy; `None` when `attempts: 1` (no retry).
fn retry_policy(p: &model::RetryPolicy) -> Result<Option<RetryPolicy>, Untranslatable> {
    if p.attempts <= 1 {
        return Ok(None);
    }
    let default_budget = model::RetryBudget {
        ratio: 0.2,
        min_per_second: 10,
    };
    if p.budget != default_budget {
        return Err(Untranslatable::new(
            "budget",
            "Envoy bounds retries per cluster (`limits.max_retries`), not with a per-route budget",
        ));
    }
    let mut on: Vec<&str> = Vec::new();
    let mut codes = Vec::new();
    for condition in &p.on {
        let name = match condition {
            RetryOn::ConnectFailure => "connect-failure",
            RetryOn::Reset => "reset",
            RetryOn::ServerError => "5xx",
            RetryOn::GatewayError => "gateway-error",
            RetryOn::Retriable4xx => "retriable-4xx",
            RetryOn::Status(code) => {
                codes.push(u32::from(*code));
                "retriable-status-codes"
            }
            RetryOn::Grpc(code) => match code {
                model::GrpcCode::Cancelled => "cancelled",
                model::GrpcCode::DeadlineExceeded => "deadline-exceeded",
                model::GrpcCode::ResourceExhausted => "resource-exhausted",
                model::GrpcCode::Unavailable => "unavailable",
            },
        };
        if !on.contains(&name) {
            on.push(name);
        }
    }
    Ok(Some(RetryPolicy {
        retry_on: on.join(","),
        num_retries: Some(proto::u32_value(p.attempts - 1)),
        per_try_timeout: p.per_try_timeout.map(proto::duration),
        retriable_status_codes: codes,
        retry_back_off: Some(retry_policy::RetryBackOff {
            base_interval: Some(proto::duration(p.backoff.base)),
            max_interval: Some(proto::duration(p.backoff.max)),
        }),
        // Only these methods are retried, as in meshwork.
        retriable_request_headers: vec![HeaderMatcher {
            name: ":method".to_string(),
            header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
                proto::one_of(&p.methods),
            )),
            ..Default::default()
        }],
        ..Default::default()
    }))
}

fn redirect_action(r: &model::Redirect) -> Result<RedirectAction, Untranslatable> {
    use redirect_action::RedirectResponseCode as Code;
    let code = match r.status.as_u16() {
        301 => Code::MovedPermanently,
        302 => Code::Found,
        303 => Code::SeeOther,
        307 => Code::TemporaryRedirect,
        308 => Code::PermanentRedirect,
        other => {
            return Err(Untranslatable::new(
                "redirect.status",
                format!("{other} has no Envoy redirect code"),
            ));
        }
    };
    Ok(RedirectAction {
        host_redirect: r.host.clone().unwrap_or_default(),
        port_redirect: r.port.map(u32::from).unwrap_or_default(),
        response_code: code as i32,
        scheme_rewrite_specifier: r
            .scheme
            .clone()
            .map(redirect_action::SchemeRewriteSpecifier::SchemeRedirect),
        path_rewrite_specifier: r
            .path
            .clone()
            .map(redirect_action::PathRewriteSpecifier::PathRedirect),
        ..Default::default()
    })
}

/// `set` overwrites, `add` appends (meshwork removes first, then sets, then adds; Envoy
/// also removes before it adds).
fn headers_to_add(m: &HeaderModifier) -> Vec<HeaderValueOption> {
    use header_value_option::HeaderAppendAction as Append;
    let option =
        |(name, value): &(http::HeaderName, http::HeaderValue), action: Append| HeaderValueOption {
            header: Some(HeaderValue {
                key: name.as_str().to_string(),
                raw_value: value.as_bytes().to_vec(),
                ..Default::default()
            }),
            append_action: action as i32,
            ..Default::default()
        };
    m.set
        .iter()
        .map(|h| option(h, Append::OverwriteIfExistsOrAdd))
        .chain(m.add.iter().map(|h| option(h, Append::AppendIfExistsOrAdd)))
        .collect()
}

fn names(m: &HeaderModifier) -> Vec<String> {
    m.remove.iter().map(|n| n.as_str().to_string()).collect()
}
