//! RDS: an Envoy `RouteConfiguration` as one meshwork route table.
//!
//! Envoy first picks a virtual host by the request's host (exact domains, then the
//! longest `*.suffix`, then `*`) and then tries only that host's routes; meshwork tries
//! one list of routes in order. So the virtual hosts are laid out most specific first,
//! and each host-bound group ends with a route answering 404 for its hosts: a request
//! that Envoy would answer 404 never falls through to another virtual host's routes.
//!
//! Translated per route: path `prefix`, `path` and `safe_regex` (full match, as in
//! Envoy), header matchers (exact, regex, present, prefix, suffix, contains; `:method`
//! exact as a method), `cluster` and `weighted_clusters`, `timeout` (Envoy's default
//! 15s when unset, none when 0), `retry_policy`, `prefix_rewrite`,
//! `host_rewrite_literal`, `direct_response`, header edits, route `upgrade_configs`.

// Servers still send the deprecated fields (header matchers, `http2_protocol_options`,
// DNS settings): reading them is the point.
#![allow(deprecated)]

use std::mem::take;

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::{
    ClusterSpecifier, HostRewriteSpecifier,
};
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use serde_json::{Map, Value, json};

use super::fields;
use super::leftover::{Refusal, Refusals, join};
use super::route_policy::{header_edits, retry_policy};
use super::units;

/// Envoy's route `timeout` when a route does not set one.
const ENVOY_DEFAULT_ROUTE_TIMEOUT: &str = "15000ms";

/// Translates a route configuration into a meshwork route table (its list of routes).
///
/// # Errors
/// Every field meshwork cannot represent.
pub(crate) fn route_table(config: &RouteConfiguration) -> Result<Vec<Value>, Vec<Refusal>> {
    let mut rc = config.clone();
    let mut refusals = Refusals::default();
    take(&mut rc.name);
    take(&mut rc.metadata);
    // Envoy's check that routed clusters exist: meshwork always checks.
    take(&mut rc.validate_clusters);
    let mut groups: Vec<(HostClass, usize, Vec<String>)> = Vec::new();
    let hosts = take(&mut rc.virtual_hosts);
    for (i, vhost) in hosts.iter().enumerate() {
        for (class, domains) in classify(
            &vhost.domains,
            &format!("virtual_hosts[{i}].domains"),
            &mut refusals,
        ) {
            groups.push((class, i, domains));
        }
    }
    groups.sort_by_key(|g| g.0);
    let mut routes = Vec::new();
    let mut translated: Vec<Option<Vec<Map<String, Value>>>> = vec![None; hosts.len()];
    for (class, i, domains) in groups {
        let vhost = &hosts[i];
        let list = translated[i]
            .get_or_insert_with(|| {
                virtual_host(vhost, &format!("virtual_hosts[{i}]"), &mut refusals)
            })
            .clone();
        let tag = if domains.is_empty() {
            String::new()
        } else {
            format!("[{}]", domains.join(","))
        };
        for (j, mut route) in list.into_iter().enumerate() {
            let name = route
                .get("name")
                .and_then(Value::as_str)
                .map_or_else(|| j.to_string(), str::to_string);
            route.insert("name".into(), json!(format!("{}{tag}/{name}", vhost.name)));
            if !domains.is_empty() {
                let matcher = route.entry("match").or_insert_with(|| json!({}));
                if let Some(m) = matcher.as_object_mut() {
                    m.insert("host".into(), json!(domains));
                }
            }
            routes.push(Value::Object(route));
        }
        if class != HostClass::Any {
            routes.push(json!({
                "name": format!("{}{tag}/no-route", vhost.name),
                "match": { "host": domains },
                "direct_response": { "status": 404 },
            }));
        }
    }
    refusals.leftover("", &rc, fields::ROUTE_CONFIGURATION);
    if refusals.is_empty() {
        Ok(routes)
    } else {
        Err(refusals.into_vec())
    }
}

/// How specific a virtual host domain is, most specific first (Envoy's order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum HostClass {
    Exact,
    /// `*.suffix`; a longer suffix is more specific (the `Reverse` of its length).
    Suffix(std::cmp::Reverse<usize>),
    Any,
}

/// A virtual host's domains grouped by class, each group with its order.
fn classify(
    domains: &[String],
    path: &str,
    refusals: &mut Refusals,
) -> Vec<(HostClass, Vec<String>)> {
    let mut exact = Vec::new();
    let mut out = Vec::new();
    for (i, d) in domains.iter().enumerate() {
        if d == "*" {
            out.push((HostClass::Any, Vec::new()));
        } else if let Some(suffix) = d.strip_prefix("*.") {
            out.push((
                HostClass::Suffix(std::cmp::Reverse(suffix.len())),
                vec![d.clone()],
            ));
        } else if d.contains('*') {
            refusals.refuse(
                format!("{path}[{i}]"),
                format!("{d:?}: only exact domains, \"*.suffix\" and \"*\" are supported"),
            );
        } else {
            exact.push(d.clone());
        }
    }
    if !exact.is_empty() {
        out.push((HostClass::Exact, exact));
    }
    out
}

/// A virtual host's routes in meshwork's format (names and hosts added by the caller).
fn virtual_host(
    vhost: &VirtualHost,
    path: &str,
    refusals: &mut Refusals,
) -> Vec<Map<String, Value>> {
    let mut v = vhost.clone();
    take(&mut v.name);
    take(&mut v.domains);
    take(&mut v.metadata);
    let routes = take(&mut v.routes)
        .into_iter()
        .enumerate()
        .map(|(j, r)| route(r, &format!("{path}.routes[{j}]"), refusals))
        .collect();
    refusals.leftover(path, &v, fields::VIRTUAL_HOST);
    routes
}

fn route(mut r: Route, path: &str, refusals: &mut Refusals) -> Map<String, Value> {
    let mut out = Map::new();
    let name = take(&mut r.name);
    if !name.is_empty() {
        out.insert("name".into(), json!(name));
    }
    take(&mut r.metadata);
    take(&mut r.decorator);
    take(&mut r.stat_prefix);
    let matcher = route_match(
        take(&mut r.r#match).unwrap_or_default(),
        &join(path, "match"),
        refusals,
    );
    out.insert("match".into(), Value::Object(matcher));
    match take(&mut r.action) {
        Some(Action::Route(action)) => {
            route_action(action, &join(path, "route"), refusals, &mut out)
        }
        Some(Action::DirectResponse(direct)) => {
            let body = match direct.body.and_then(|b| b.specifier) {
                None => Some(String::new()),
                Some(Specifier::InlineString(s)) => Some(s),
                Some(Specifier::InlineBytes(b)) => String::from_utf8(b).ok(),
                Some(_) => None,
            };
            match body {
                Some(body) => {
                    out.insert(
                        "direct_response".into(),
                        json!({ "status": direct.status, "body": body }),
                    );
                }
                None => refusals.refuse(
                    join(path, "direct_response.body"),
                    "only an inline UTF-8 body is supported",
                ),
            }
        }
        Some(Action::Redirect(_)) => {
            refusals.refuse(join(path, "redirect"), "redirects are not supported")
        }
        Some(_) | None => refusals.refuse(
            join(path, "action"),
            "only route and direct_response actions are supported",
        ),
    }
    for (field, list, remove) in [
        (
            "request_headers",
            take(&mut r.request_headers_to_add),
            take(&mut r.request_headers_to_remove),
        ),
        (
            "response_headers",
            take(&mut r.response_headers_to_add),
            take(&mut r.response_headers_to_remove),
        ),
    ] {
        if let Some(edits) = header_edits(list, remove, &join(path, field), refusals) {
            out.insert(field.into(), edits);
        }
    }
    refusals.leftover(path, &r, fields::ROUTE);
    out
}

fn route_match(mut m: RouteMatch, path: &str, refusals: &mut Refusals) -> Map<String, Value> {
    let mut out = Map::new();
    match take(&mut m.path_specifier) {
        Some(PathSpecifier::Prefix(p)) => {
            out.insert("path".into(), json!({ "prefix": p }));
        }
        Some(PathSpecifier::Path(p)) => {
            out.insert("path".into(), json!({ "exact": p }));
        }
        Some(PathSpecifier::SafeRegex(r)) => {
            out.insert("path".into(), json!({ "regex": full_match(&r.regex) }));
        }
        Some(_) => refusals.refuse(
            join(path, "path_specifier"),
            "only prefix, path and safe_regex are supported",
        ),
        None => {}
    }
    if take(&mut m.case_sensitive).is_some_and(|c| !c.value) {
        refusals.refuse(
            join(path, "case_sensitive"),
            "case-insensitive paths are not supported",
        );
    }
    let mut headers = Vec::new();
    let mut methods = Vec::new();
    for (i, h) in take(&mut m.headers).into_iter().enumerate() {
        let at = format!("{path}.headers[{i}]");
        match header_match(h, &at, refusals) {
            Some(HeaderCondition::Method(method)) => methods.push(method),
            Some(HeaderCondition::Header(value)) => headers.push(value),
            None => {}
        }
    }
    if !headers.is_empty() {
        out.insert("headers".into(), Value::Array(headers));
    }
    if !methods.is_empty() {
        out.insert("method".into(), json!(methods));
    }
    refusals.leftover(path, &m, fields::ROUTE_MATCH);
    out
}

/// A header matcher as meshwork reads it.
enum HeaderCondition {
    /// `:method` with an exact value.
    Method(String),
    Header(Value),
}

fn header_match(
    mut h: HeaderMatcher,
    path: &str,
    refusals: &mut Refusals,
) -> Option<HeaderCondition> {
    let name = take(&mut h.name);
    if take(&mut h.invert_match) {
        refusals.refuse(
            join(path, "invert_match"),
            "inverted header matches are not supported",
        );
    }
    let condition = match take(&mut h.header_match_specifier) {
        Some(HeaderMatchSpecifier::ExactMatch(v)) => Some(("exact", json!(v))),
        Some(HeaderMatchSpecifier::SafeRegexMatch(r)) => {
            Some(("regex", json!(full_match(&r.regex))))
        }
        Some(HeaderMatchSpecifier::PresentMatch(p)) => Some(("present", json!(p))),
        Some(HeaderMatchSpecifier::PrefixMatch(p)) => {
            Some(("regex", json!(format!("^{}", regex::escape(&p)))))
        }
        Some(HeaderMatchSpecifier::SuffixMatch(s)) => {
            Some(("regex", json!(format!("{}$", regex::escape(&s)))))
        }
        Some(HeaderMatchSpecifier::ContainsMatch(c)) => Some(("regex", json!(regex::escape(&c)))),
        Some(HeaderMatchSpecifier::StringMatch(s)) if !s.ignore_case => match s.match_pattern {
            Some(MatchPattern::Exact(v)) => Some(("exact", json!(v))),
            Some(MatchPattern::Prefix(p)) => {
                Some(("regex", json!(format!("^{}", regex::escape(&p)))))
            }
            Some(MatchPattern::Suffix(p)) => {
                Some(("regex", json!(format!("{}$", regex::escape(&p)))))
            }
            Some(MatchPattern::Contains(p)) => Some(("regex", json!(regex::escape(&p)))),
            Some(MatchPattern::SafeRegex(r)) => Some(("regex", json!(full_match(&r.regex)))),
            _ => None,
        },
        // Envoy: no specifier matches when the header is present.
        None => Some(("present", json!(true))),
        Some(_) => None,
    };
    refusals.leftover(path, &h, fields::HEADER_MATCHER);
    let Some((kind, value)) = condition else {
        refusals.refuse(path, "only exact, regex, present, prefix, suffix and contains matches (case-sensitive) are supported");
        return None;
    };
    if name == ":method" && kind == "exact" {
        return value
            .as_str()
            .map(|m| HeaderCondition::Method(m.to_string()));
    }
    if name.starts_with(':') {
        refusals.refuse(
            join(path, "name"),
            format!("{name:?}: pseudo-headers other than an exact :method are not supported"),
        );
        return None;
    }
    let mut out = Map::new();
    out.insert("name".into(), json!(name));
    out.insert(kind.into(), value);
    Some(HeaderCondition::Header(Value::Object(out)))
}

/// Envoy's regexes match the whole value; meshwork's search it.
fn full_match(regex: &str) -> String {
    format!("^(?:{regex})$")
}

fn route_action(
    mut a: RouteAction,
    path: &str,
    refusals: &mut Refusals,
    out: &mut Map<String, Value>,
) {
    match take(&mut a.cluster_specifier) {
        Some(ClusterSpecifier::Cluster(c)) => {
            out.insert("backends".into(), json!([{ "cluster": c, "weight": 1 }]));
        }
        Some(ClusterSpecifier::WeightedClusters(mut w)) => {
            let mut backends = Vec::new();
            for (i, mut c) in take(&mut w.clusters).into_iter().enumerate() {
                let at = format!("{path}.weighted_clusters.clusters[{i}]");
                let weight = take(&mut c.weight).map_or(0, |v| v.value);
                let cluster = take(&mut c.name);
                refusals.leftover(&at, &c, &[]);
                // A cluster weighted 0 takes no traffic in Envoy: meshwork needs no entry.
                if weight > 0 {
                    backends.push(json!({ "cluster": cluster, "weight": weight }));
                }
            }
            take(&mut w.total_weight);
            refusals.leftover(&join(path, "weighted_clusters"), &w, &[]);
            if backends.is_empty() {
                refusals.refuse(
                    join(path, "weighted_clusters"),
                    "every cluster has weight 0",
                );
            }
            out.insert("backends".into(), Value::Array(backends));
        }
        _ => refusals.refuse(
            join(path, "cluster_specifier"),
            "only cluster and weighted_clusters are supported",
        ),
    }
    match take(&mut a.timeout) {
        None => {
            out.insert("timeout".into(), json!(ENVOY_DEFAULT_ROUTE_TIMEOUT));
        }
        Some(d) if units::is_zero(&d) => {}
        Some(d) => match units::duration(&d) {
            Some(t) => {
                out.insert("timeout".into(), json!(t));
            }
            None => refusals.refuse(join(path, "timeout"), "not a valid duration"),
        },
    }
    let mut rewrite = Map::new();
    let prefix = take(&mut a.prefix_rewrite);
    if !prefix.is_empty() {
        rewrite.insert("path_prefix".into(), json!(prefix));
    }
    match take(&mut a.host_rewrite_specifier) {
        None => {}
        Some(HostRewriteSpecifier::HostRewriteLiteral(host)) => {
            rewrite.insert("host".into(), json!(host));
        }
        Some(_) => refusals.refuse(
            join(path, "host_rewrite_specifier"),
            "only host_rewrite_literal is supported",
        ),
    }
    if !rewrite.is_empty() {
        out.insert("rewrite".into(), Value::Object(rewrite));
    }
    if let Some(retry) = take(&mut a.retry_policy) {
        if let Some(r) = retry_policy(retry, &join(path, "retry_policy"), refusals) {
            out.insert("retry".into(), r);
        }
    }
    let upgrades: Vec<String> = take(&mut a.upgrade_configs)
        .into_iter()
        .filter(|u| u.enabled.as_ref().is_none_or(|e| e.value))
        .map(|u| u.upgrade_type.to_ascii_lowercase())
        .collect();
    // Envoy upgrades a connection only when asked to.
    out.insert("upgrades".into(), json!(upgrades));
    refusals.leftover(path, &a, fields::ROUTE_ACTION);
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
