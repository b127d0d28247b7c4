//! Validation of route tables and routes: match, action, rewrite and header edits.
//! (Retry, fault, rate limit and mirror are in `policy.rs`.)

use super::check::pos_of;
use super::other::{method, refer};
use super::request_paths::{self, PathUse, Reading};
use super::{Check, Names, policy};
use crate::model::{
    DirectResponse, HeaderMatch, HeaderModifier, Listener, PathMatch, Pattern, QueryMatch,
    Redirect, Rewrite, Route, RouteAction, RouteMatch, RouteTable, ValueCondition, WeightedBackend,
};
use crate::raw::{
    RawBackend, RawDirectResponse, RawHeaderEdits, RawMatch, RawRedirect, RawRewrite, RawRoute,
    RawValueMatch,
};
use crate::spanned::{Field, Spanned};
use crate::units;

/// Statuses a redirect may use.
const REDIRECT_STATUSES: &[u16] = &[301, 302, 303, 307, 308];

pub(crate) fn table(
    ck: &mut Check<'_>,
    name: &str,
    routes: &Spanned<Vec<Spanned<RawRoute>>>,
    names: &Names,
    listeners: &[Listener],
) -> RouteTable {
    ck.unique_names(Some(routes), "route", |r: &RawRoute| &r.name);
    let reading = Reading::route_table(listeners, name);
    let routes = ck.items(Some(routes), |ck, at, r| {
        Some(route(ck, at, r, names, &reading))
    });
    RouteTable {
        name: name.to_string(),
        routes,
    }
}

fn route(
    ck: &mut Check<'_>,
    at: &Spanned<RawRoute>,
    raw: &RawRoute,
    names: &Names,
    reading: &Reading,
) -> Route {
    let name = ck.required_text(at, &raw.name, "name");
    let matcher = raw
        .matcher
        .as_ref()
        .and_then(|m| m.get().map(|v| route_match(ck, v, reading)))
        .unwrap_or_default();
    let action = action(ck, at, raw, names);
    let timeout = raw
        .timeout
        .is_some()
        .then(|| ck.positive_duration(&raw.timeout, Default::default()));
    let rewrite = ck.optional(raw.rewrite.as_ref(), |ck, at| {
        rewrite(ck, at, &matcher, reading)
    });
    Route {
        name,
        action,
        timeout,
        retry: ck.optional(raw.retry.as_ref(), policy::retry),
        hedge: ck.optional(raw.hedge.as_ref(), super::hedge::hedge),
        fault: ck.optional(raw.fault.as_ref(), policy::fault),
        rewrite,
        request_headers: header_edits(ck, &raw.request_headers),
        response_headers: header_edits(ck, &raw.response_headers),
        rate_limit: ck.optional(raw.rate_limit.as_ref(), policy::rate_limit),
        mirror: ck.optional(raw.mirror.as_ref(), |ck, at| policy::mirror(ck, at, names)),
        upgrades: super::upgrades::upgrades(ck, &raw.upgrades),
        matcher,
    }
}

fn route_match(ck: &mut Check<'_>, raw: &RawMatch, reading: &Reading) -> RouteMatch {
    RouteMatch {
        hosts: ck.list(&raw.host, |ck, at, h| {
            units::parse_host_match(h).map_err(|e| ck.error(at, e)).ok()
        }),
        path: ck
            .optional(raw.path.as_ref(), |ck, at| {
                let p = at.get()?;
                if !ck.exactly_one(
                    at,
                    &[
                        ("prefix", pos_of(&p.prefix)),
                        ("exact", pos_of(&p.exact)),
                        ("regex", pos_of(&p.regex)),
                    ],
                ) {
                    return None;
                }
                if let Some(prefix) =
                    ck.parse(&p.prefix, |s| request_path(s, PathUse::Prefix, reading))
                {
                    return Some(PathMatch::Prefix(prefix));
                }
                if let Some(exact) =
                    ck.parse(&p.exact, |s| request_path(s, PathUse::Exact, reading))
                {
                    return Some(PathMatch::Exact(exact));
                }
                ck.parse(&p.regex, |s| pattern(s)).map(PathMatch::Regex)
            })
            .flatten(),
        methods: ck.list(&raw.method, |ck, at, m| method(ck, at, m)),
        headers: ck.list(&raw.headers, |ck, at, h| {
            let name = ck.parse(&h.name, |n| units::parse_header_name(n));
            let condition = condition(ck, at, h, true);
            Some(HeaderMatch {
                name: name?,
                condition: condition?,
            })
        }),
        query: ck.list(&raw.query, |ck, at, q| {
            let name = ck.parse(&q.name, |n| {
                if n.is_empty() {
                    Err("a query parameter name cannot be empty".to_string())
                } else {
                    Ok(n.clone())
                }
            });
            let condition = condition(ck, at, q, false);
            Some(QueryMatch {
                name: name?,
                condition: condition?,
            })
        }),
    }
}

fn condition(
    ck: &mut Check<'_>,
    at: &Spanned<RawValueMatch>,
    raw: &RawValueMatch,
    header: bool,
) -> Option<ValueCondition> {
    ck.require(at, &raw.name, "name");
    let one = [
        ("exact", pos_of(&raw.exact)),
        ("regex", pos_of(&raw.regex)),
        ("present", pos_of(&raw.present)),
    ];
    if !ck.exactly_one(at, &one) {
        return None;
    }
    if let Some(exact) = raw.exact.as_ref().and_then(Spanned::get) {
        if header {
            return ck
                .parse(&raw.exact, |v| {
                    units::parse_header_value(v).map(|_| v.clone())
                })
                .map(ValueCondition::Exact);
        }
        return Some(ValueCondition::Exact(exact.clone()));
    }
    if let Some(regex) = ck.parse(&raw.regex, |s| pattern(s)) {
        return Some(ValueCondition::Regex(regex));
    }
    raw.present
        .as_ref()
        .and_then(Spanned::get)
        .map(|p| ValueCondition::Present(*p))
}

/// A compiled regular expression (the regex crate's message on error).
pub(crate) fn pattern(source: &str) -> Result<Pattern, String> {
    regex::Regex::new(source)
        .map(|regex| Pattern {
            source: source.to_string(),
            regex,
        })
        .map_err(|e| {
            format!(
                "{source:?} is not a valid regular expression: {}",
                regex_reason(&e)
            )
        })
}

/// The regex crate's reason, without its multi-line drawing of the pattern.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    match text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
    {
        Some(reason) => reason.to_string(),
        None => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// A path that meets request paths (see `request_paths`): absolute and normalized.
fn request_path(s: &str, used: PathUse, reading: &Reading) -> Result<String, String> {
    absolute_path(s).and_then(|p| request_paths::check(&p, used, reading))
}

pub(crate) fn absolute_path(s: &str) -> Result<String, String> {
    if s.starts_with('/') {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not a path (it must start with \"/\")"))
    }
}

fn action(
    ck: &mut Check<'_>,
    at: &Spanned<RawRoute>,
    raw: &RawRoute,
    names: &Names,
) -> RouteAction {
    let one = [
        ("backends", pos_of(&raw.backends)),
        ("direct_response", pos_of(&raw.direct_response)),
        ("redirect", pos_of(&raw.redirect)),
    ];
    let single = ck.exactly_one(at, &one);
    // Each given action is checked, even when more than one is given.
    let backends = raw.backends.as_ref().map(|list| backends(ck, list, names));
    let direct = ck
        .optional(raw.direct_response.as_ref(), direct_response)
        .flatten();
    let redirect = ck.optional(raw.redirect.as_ref(), redirect).flatten();
    let placeholder = RouteAction::Backends(Vec::new());
    if !single {
        return placeholder;
    }
    backends
        .map(RouteAction::Backends)
        .or(direct.map(RouteAction::DirectResponse))
        .or(redirect.map(RouteAction::Redirect))
        .unwrap_or(placeholder)
}

fn backends(
    ck: &mut Check<'_>,
    list: &Spanned<Vec<Spanned<RawBackend>>>,
    names: &Names,
) -> Vec<WeightedBackend> {
    if list.get().is_some_and(Vec::is_empty) {
        ck.error(list, "needs at least one backend");
    }
    let mut seen: Vec<String> = Vec::new();
    ck.items(Some(list), |ck, at, b| {
        let backend = backend(ck, at, b, names)?;
        if !backend.cluster.is_empty() && seen.contains(&backend.cluster) {
            let message = format!(
                "cluster {:?} is listed twice (give it one backend with the sum of the weights)",
                backend.cluster
            );
            ck.error(at, message);
        }
        seen.push(backend.cluster.clone());
        Some(backend)
    })
}

fn backend(
    ck: &mut Check<'_>,
    at: &Spanned<RawBackend>,
    raw: &RawBackend,
    names: &Names,
) -> Option<WeightedBackend> {
    let cluster = ck.required_text(at, &raw.cluster, "cluster");
    refer(ck, &raw.cluster, &names.clusters, "cluster");
    let weight = ck.int_in(&raw.weight, 1, u32::MAX, 1);
    Some(WeightedBackend { cluster, weight })
}

fn direct_response(ck: &mut Check<'_>, at: &Spanned<RawDirectResponse>) -> Option<DirectResponse> {
    let raw = at.get()?;
    ck.require(at, &raw.status, "status");
    let status = ck.parse(&raw.status, |s| units::parse_status(*s));
    let body = raw
        .body
        .as_ref()
        .and_then(Spanned::get)
        .cloned()
        .unwrap_or_default();
    Some(DirectResponse {
        status: status?,
        body,
    })
}

fn redirect(ck: &mut Check<'_>, at: &Spanned<RawRedirect>) -> Option<Redirect> {
    let raw = at.get()?;
    let scheme = ck.parse(&raw.scheme, |s| match s.to_ascii_lowercase().as_str() {
        lower @ ("http" | "https") => Ok(lower.to_string()),
        _ => Err(format!("{s:?} is not a scheme (expected http or https)")),
    });
    let host = ck.parse(&raw.host, |h| host(h));
    let port = ck.parse(&raw.port, |p| {
        if *p == 0 {
            Err("port 0 cannot be redirected to (expected 1 to 65535)".to_string())
        } else {
            Ok(*p)
        }
    });
    let path = ck.parse(&raw.path, |p| {
        request_path(p, PathUse::Redirect, &Reading::anywhere())
    });
    if raw.scheme.is_none() && raw.host.is_none() && raw.port.is_none() && raw.path.is_none() {
        ck.error(
            at,
            "a redirect must change at least one of scheme, host, port, path (or it would loop)",
        );
    }
    let status = ck
        .parse(&raw.status, |s| {
            if REDIRECT_STATUSES.contains(s) {
                units::parse_status(*s)
            } else {
                Err(format!(
                    "{s} is not a redirect status (expected 301, 302, 303, 307 or 308)"
                ))
            }
        })
        .unwrap_or(http::StatusCode::MOVED_PERMANENTLY);
    Some(Redirect {
        scheme,
        host,
        port,
        path,
        status,
    })
}

/// A host name or IP, optionally with `:port`, lower-cased.
fn host(h: &str) -> Result<String, String> {
    let lower = h.to_ascii_lowercase();
    if units::parse_address(&lower).is_ok()
        || units::parse_host_match(&lower)
            .is_ok_and(|m| matches!(m, crate::model::HostMatch::Exact(_)))
    {
        Ok(lower)
    } else {
        Err(format!(
            "{h:?} is not a host name (expected e.g. \"api.internal\" or \"api.internal:8080\")"
        ))
    }
}

fn rewrite(
    ck: &mut Check<'_>,
    at: &Spanned<RawRewrite>,
    matcher: &RouteMatch,
    reading: &Reading,
) -> Rewrite {
    let Some(raw) = at.get() else {
        return Rewrite {
            path_prefix: None,
            host: None,
        };
    };
    let path_prefix = ck.parse(&raw.path_prefix, |p| {
        request_path(p, PathUse::Rewrite, reading)
    });
    if let Some(field) = &raw.path_prefix {
        let got = match &matcher.path {
            Some(PathMatch::Prefix(_)) => None,
            Some(PathMatch::Exact(_)) => Some("an exact path match"),
            Some(PathMatch::Regex(_)) => Some("a regex path match"),
            None => Some("no path match"),
        };
        if let Some(got) = got {
            ck.error(
                field,
                format!("path_prefix needs a prefix path match (match.path.prefix), got {got}"),
            );
        }
    }
    let host = ck.parse(&raw.host, |h| host(h));
    if raw.path_prefix.is_none() && raw.host.is_none() {
        ck.error(at, "a rewrite needs path_prefix or host");
    }
    Rewrite { path_prefix, host }
}

fn header_edits(ck: &mut Check<'_>, field: &Field<RawHeaderEdits>) -> HeaderModifier {
    let Some(raw) = field.as_ref().and_then(Spanned::get) else {
        return HeaderModifier::default();
    };
    let pairs = |ck: &mut Check<'_>, f: &Field<crate::spanned::Entries<String>>| {
        let mut out = Vec::new();
        for (key, value) in f
            .as_ref()
            .and_then(Spanned::get)
            .map(|e| e.0.as_slice())
            .unwrap_or_default()
        {
            let name = key.get().and_then(|k| {
                units::parse_header_name(k)
                    .map_err(|e| ck.error(key, e))
                    .ok()
            });
            let val = value.get().and_then(|v| {
                units::parse_header_value(v)
                    .map_err(|e| ck.error(value, e))
                    .ok()
            });
            if let (Some(n), Some(v)) = (name, val) {
                out.push((n, v));
            }
        }
        out
    };
    HeaderModifier {
        set: pairs(ck, &raw.set),
        add: pairs(ck, &raw.add),
        remove: ck.list(&raw.remove, |ck, at, n| {
            units::parse_header_name(n)
                .map_err(|e| ck.error(at, e))
                .ok()
        }),
    }
}
