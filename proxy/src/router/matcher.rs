//! One route's match conditions, checked against a request; a failed check says which
//! condition failed so `meshwork explain` can tell the user why.

use std::fmt;

use meshwork_config::model::{
    HeaderMatch, HostMatch, PathMatch, QueryMatch, RouteMatch, ValueCondition,
};

use super::request::{RouteRequest, query_values};

/// The first condition of a route that a request did not meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    Host,
    Path,
    Method,
    /// Index into the route's header conditions.
    Header(usize),
    /// Index into the route's query conditions.
    Query(usize),
}

/// Whether `host` (normalized) matches the pattern.
pub fn host_matches(pattern: &HostMatch, host: &str) -> bool {
    match pattern {
        HostMatch::Exact(h) => h == host,
        HostMatch::Wildcard(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
    }
}

pub fn path_matches(pattern: &PathMatch, path: &str) -> bool {
    match pattern {
        PathMatch::Exact(p) => p == path,
        PathMatch::Prefix(p) => path.starts_with(p.as_str()),
        PathMatch::Regex(re) => re.regex.is_match(path),
    }
}

fn value_matches(
    condition: &ValueCondition,
    mut values: impl Iterator<Item = impl AsRef<[u8]>>,
) -> bool {
    match condition {
        ValueCondition::Present(want) => values.next().is_some() == *want,
        ValueCondition::Exact(want) => values.any(|v| v.as_ref() == want.as_bytes()),
        ValueCondition::Regex(re) => {
            values.any(|v| std::str::from_utf8(v.as_ref()).is_ok_and(|s| re.regex.is_match(s)))
        }
    }
}

fn header_matches(m: &HeaderMatch, req: &RouteRequest<'_>) -> bool {
    value_matches(
        &m.condition,
        req.headers.get_all(&m.name).iter().map(|v| v.as_bytes()),
    )
}

fn query_matches(m: &QueryMatch, req: &RouteRequest<'_>) -> bool {
    value_matches(&m.condition, query_values(req.query, &m.name))
}

/// Checks every condition in a fixed order (host, path, method, headers, query).
pub fn check(m: &RouteMatch, req: &RouteRequest<'_>) -> Result<(), Mismatch> {
    if !m.hosts.is_empty() && !m.hosts.iter().any(|h| host_matches(h, &req.host)) {
        return Err(Mismatch::Host);
    }
    if let Some(path) = &m.path {
        if !path_matches(path, req.path) {
            return Err(Mismatch::Path);
        }
    }
    if !m.methods.is_empty() && !m.methods.iter().any(|x| x == req.method.as_str()) {
        return Err(Mismatch::Method);
    }
    for (i, h) in m.headers.iter().enumerate() {
        if !header_matches(h, req) {
            return Err(Mismatch::Header(i));
        }
    }
    for (i, q) in m.query.iter().enumerate() {
        if !query_matches(q, req) {
            return Err(Mismatch::Query(i));
        }
    }
    Ok(())
}

/// A sentence saying why `m` did not match `req`, for `meshwork explain`.
pub fn describe(m: &RouteMatch, mismatch: Mismatch, req: &RouteRequest<'_>) -> String {
    match mismatch {
        Mismatch::Host => format!(
            "host {:?} is not one of [{}]",
            req.host,
            m.hosts
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Mismatch::Path => {
            let want = match &m.path {
                Some(PathMatch::Exact(p)) => format!("exactly {p:?}"),
                Some(PathMatch::Prefix(p)) => format!("a path starting with {p:?}"),
                Some(PathMatch::Regex(r)) => format!("a path matching regex {:?}", r.source),
                None => "any path".into(),
            };
            format!("path {:?} is not {want}", req.path)
        }
        Mismatch::Method => format!(
            "method {} is not one of [{}]",
            req.method,
            m.methods.join(", ")
        ),
        Mismatch::Header(i) => {
            let h = &m.headers[i];
            let got: Vec<String> = req
                .headers
                .get_all(&h.name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            format!(
                "header {}: {} (request has {})",
                h.name,
                Condition(&h.condition),
                Values(&got)
            )
        }
        Mismatch::Query(i) => {
            let q = &m.query[i];
            let got: Vec<String> = query_values(req.query, &q.name).collect();
            format!(
                "query parameter {}: {} (request has {})",
                q.name,
                Condition(&q.condition),
                Values(&got)
            )
        }
    }
}

struct Condition<'a>(&'a ValueCondition);

impl fmt::Display for Condition<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ValueCondition::Exact(v) => write!(f, "wanted exactly {v:?}"),
            ValueCondition::Regex(r) => write!(f, "wanted a value matching regex {:?}", r.source),
            ValueCondition::Present(true) => f.write_str("wanted it present"),
            ValueCondition::Present(false) => f.write_str("wanted it absent"),
        }
    }
}

struct Values<'a>(&'a [String]);

impl fmt::Display for Values<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let quoted: Vec<String> = self.0.iter().map(|v| format!("{v:?}")).collect();
        f.write_str(&quoted.join(", "))
    }
}
