//! `meshwork explain`: how the request's path is normalized (or why it is refused), which
//! route it takes, and why the routes before it did not; or, given a destination
//! (`10.0.0.5:8080`), what an `auto` listener does with a connection going there
//! (`destination.rs`).

mod destination;

pub use destination::explain_destination;

use std::fmt::Write;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use meshwork_config::Config;
use meshwork_config::model::{Direction, EscapedSlashes, ListenerProtocol, RouteAction};

use crate::cluster::ClusterRegistry;
use crate::http::target::normalize_target;
use crate::router::{RouteEntry, RouteRequest, RouteTable};

/// The explanation text, and whether a route matched.
///
/// # Errors
/// A request or header that cannot be parsed, or an unknown listener.
pub fn explain(
    config: &Config,
    request: &str,
    headers: &[String],
    listener: Option<&str>,
    destination: Option<std::net::SocketAddr>,
) -> Result<(String, bool), String> {
    let (method, uri) = parse_request(request)?;
    let mut header_map = HeaderMap::new();
    for h in headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("header {h:?} is not 'name: value'"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("invalid header value in {h:?}"))?;
        header_map.append(name, value);
    }

    // HTTP listeners, and auto listeners (which serve the HTTP they detect).
    let http_listeners: Vec<(&str, &str)> = config
        .listeners
        .iter()
        .filter_map(|l| match &l.protocol {
            ListenerProtocol::Http { route_table } => Some((l.name.as_str(), route_table.as_str())),
            ListenerProtocol::Auto { route_table } => {
                Some((l.name.as_str(), route_table.as_deref().unwrap_or("")))
            }
            ListenerProtocol::Tcp { .. } => None,
        })
        .collect();
    let (listener_name, table_name) = match listener {
        Some(name) => *http_listeners
            .iter()
            .find(|(l, _)| *l == name)
            .ok_or_else(|| {
                format!(
                    "no HTTP listener named {name:?} (have: {})",
                    names(&http_listeners)
                )
            })?,
        None => *http_listeners
            .first()
            .ok_or("the config has no HTTP listener")?,
    };

    let mut out = String::new();
    let _ = writeln!(out, "request:  {method} {uri}");
    let escaped = config
        .listeners
        .iter()
        .find(|l| l.name == listener_name)
        .map_or(EscapedSlashes::Reject, |l| l.paths.escaped_slashes);
    let uri = match normalize_target(&method, &uri, escaped) {
        Ok(None) => {
            let _ = writeln!(out, "path:     {} (already normal)", uri.path());
            uri
        }
        Ok(Some(normalized)) => {
            let _ = writeln!(
                out,
                "path:     {} -> {} (normalized: what the policy, the routes and the upstream see)",
                uri.path(),
                normalized.path()
            );
            normalized
        }
        Err(refusal) => {
            let _ = writeln!(out, "path:     {} refused: {refusal}", uri.path());
            let _ = writeln!(
                out,
                "\n=> the proxy answers 400 (x-meshwork-error: malformed-request) before any policy or route (listener {listener_name:?}, escaped_slashes: {})",
                escaped_slashes_name(escaped)
            );
            return Ok((out, false));
        }
    };

    let registry = ClusterRegistry::new(crate::metrics::Metrics::new());
    let clusters = registry.resolve(
        &config.clusters,
        &crate::tls::TlsPlan::default(),
        false,
        None,
    );
    let auto = config
        .listeners
        .iter()
        .find(|l| l.name == listener_name && matches!(l.protocol, ListenerProtocol::Auto { .. }));
    let table = if let Some(listener) = auto {
        // As the snapshot does: only outbound listeners look destinations up as VIPs.
        let vip_clusters = match listener.direction {
            Direction::Outbound => &config.clusters[..],
            Direction::Inbound => &[],
        };
        crate::snapshot::auto_route_table(
            listener_name,
            config.route_tables.get(table_name),
            &clusters,
            registry.original_destination(),
            vip_clusters,
        )
    } else {
        RouteTable::build(&config.route_tables[table_name], &clusters)
    };
    let auto = auto.is_some();
    let table_name = if auto && table_name.is_empty() {
        "(none: everything to the original destination)"
    } else {
        table_name
    };
    let view = RouteRequest::new(&method, &uri, &header_map);

    let host = if view.host.is_empty() {
        "(none)"
    } else {
        &view.host
    };
    let _ = writeln!(out, "host:     {host}");
    let _ = writeln!(
        out,
        "listener: {listener_name} -> route table {table_name:?}"
    );
    let _ = writeln!(out);

    let mut winner: Option<std::sync::Arc<RouteEntry>> = None;
    let width = table
        .routes
        .iter()
        .map(|r| r.name().len())
        .max()
        .unwrap_or(0);
    for (i, (route, verdict)) in table.explain(&view).into_iter().enumerate() {
        let n = i + 1;
        let name = route.name();
        if winner.is_some() {
            let _ = writeln!(
                out,
                "  {n:>2}. {name:<width$}  not reached (an earlier route matched)"
            );
            continue;
        }
        match verdict {
            Ok(()) => {
                let _ = writeln!(out, "  {n:>2}. {name:<width$}  MATCH");
                describe_route(&mut out, &route);
                winner = Some(route);
            }
            Err(why) => {
                let _ = writeln!(out, "  {n:>2}. {name:<width$}  no match: {why}");
            }
        }
    }
    let _ = writeln!(out);
    let vip = winner
        .as_ref()
        .filter(|route| {
            route
                .backends
                .iter()
                .any(|(c, _)| c.original_destinations.is_some())
        })
        .and_then(|_| destination.and_then(|d| table.vip_route(d)));
    match (&winner, vip) {
        (Some(_), Some(route)) => {
            let _ = writeln!(
                out,
                "=> no route of the table matches: {} is a VIP of cluster {:?}, so route {:?}: {}",
                destination.map(|d| d.to_string()).unwrap_or_default(),
                route.name(),
                route.name(),
                summary(route)
            );
        }
        (Some(route), None)
            if route
                .backends
                .iter()
                .any(|(c, _)| c.original_destinations.is_some()) =>
        {
            let to = destination.map_or_else(
                || "where its connection was going (give it with --destination)".to_string(),
                |d| d.to_string(),
            );
            let _ = writeln!(
                out,
                "=> no route of the table matches: forwarded to its original destination, {to}"
            );
        }
        (Some(route), _) => {
            let _ = writeln!(out, "=> route {:?}: {}", route.name(), summary(route));
        }
        (None, _) => {
            let _ = writeln!(
                out,
                "=> no route matches: the proxy answers 404 (x-meshwork-error: no-route)"
            );
        }
    }
    Ok((out, winner.is_some()))
}

fn escaped_slashes_name(escaped: EscapedSlashes) -> &'static str {
    match escaped {
        EscapedSlashes::Reject => "reject",
        EscapedSlashes::Keep => "keep",
    }
}

fn names(list: &[(&str, &str)]) -> String {
    list.iter().map(|(l, _)| *l).collect::<Vec<_>>().join(", ")
}

/// `GET http://h/p`, `http://h/p` (GET), or `POST /p`.
fn parse_request(text: &str) -> Result<(Method, Uri), String> {
    let mut parts = text.split_whitespace();
    let first = parts
        .next()
        .ok_or("empty request; try 'GET http://host/path'")?;
    let (method, target) = match parts.next() {
        Some(target) => (first, target),
        None => ("GET", first),
    };
    if parts.next().is_some() {
        return Err(format!("{text:?}: expected 'METHOD URL'"));
    }
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("invalid method {method:?}"))?;
    let uri: Uri = target
        .parse()
        .map_err(|e| format!("invalid URL {target:?}: {e}"))?;
    Ok((method, uri))
}

fn summary(route: &RouteEntry) -> String {
    match &route.config.action {
        RouteAction::Backends(list) => {
            let total: u64 = list.iter().map(|b| u64::from(b.weight)).sum();
            let parts: Vec<String> = list
                .iter()
                .map(|b| {
                    if list.len() == 1 {
                        format!("cluster {}", b.cluster)
                    } else {
                        format!(
                            "{} ({:.1}%)",
                            b.cluster,
                            100.0 * f64::from(b.weight) / total.max(1) as f64
                        )
                    }
                })
                .collect();
            format!("forwards to {}", parts.join(" / "))
        }
        RouteAction::DirectResponse(d) => format!("answers {} directly", d.status.as_u16()),
        RouteAction::Redirect(r) => format!("redirects with {}", r.status.as_u16()),
    }
}

fn describe_route(out: &mut String, route: &RouteEntry) {
    let c = &route.config;
    let pad = "        ";
    match &c.action {
        RouteAction::Backends(list) => {
            for b in list {
                let endpoints = route
                    .backends
                    .iter()
                    .find(|(cl, _)| cl.name() == b.cluster)
                    .map(|(cl, _)| {
                        cl.endpoints
                            .iter()
                            .map(|e| e.address.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{pad}backend: {} weight {} -> [{endpoints}]",
                    b.cluster, b.weight
                );
            }
        }
        RouteAction::DirectResponse(d) => {
            let _ = writeln!(
                out,
                "{pad}direct response: {} {:?}",
                d.status.as_u16(),
                d.body
            );
        }
        RouteAction::Redirect(r) => {
            let _ = writeln!(
                out,
                "{pad}redirect: {} (scheme {}, host {}, port {}, path {})",
                r.status.as_u16(),
                r.scheme.as_deref().unwrap_or("kept"),
                r.host.as_deref().unwrap_or("kept"),
                r.port.map_or("kept".to_owned(), |p| p.to_string()),
                r.path.as_deref().unwrap_or("kept"),
            );
        }
    }
    match c.timeout {
        Some(t) => {
            let _ = writeln!(out, "{pad}timeout: {t:?}");
        }
        None => {
            let _ = writeln!(out, "{pad}timeout: none");
        }
    }
    if let Some(rw) = &c.rewrite {
        if let Some(p) = &rw.path_prefix {
            let _ = writeln!(out, "{pad}rewrite: matched path prefix -> {p:?}");
        }
        if let Some(h) = &rw.host {
            let _ = writeln!(out, "{pad}rewrite: host -> {h}");
        }
    }
    for (label, m) in [
        ("request headers", &c.request_headers),
        ("response headers", &c.response_headers),
    ] {
        if m.is_empty() {
            continue;
        }
        let mut edits = Vec::new();
        edits.extend(m.remove.iter().map(|n| format!("remove {n}")));
        edits.extend(
            m.set
                .iter()
                .map(|(n, v)| format!("set {n}: {}", String::from_utf8_lossy(v.as_bytes()))),
        );
        edits.extend(
            m.add
                .iter()
                .map(|(n, v)| format!("add {n}: {}", String::from_utf8_lossy(v.as_bytes()))),
        );
        let _ = writeln!(out, "{pad}{label}: {}", edits.join("; "));
    }
    if let Some(r) = &c.retry {
        let _ = writeln!(out, "{pad}retry: {} attempts on {:?}", r.attempts, r.on);
    }
    if let Some(f) = &c.fault {
        let _ = writeln!(out, "{pad}fault: {f:?}");
    }
    if let Some(r) = &c.rate_limit {
        let _ = writeln!(
            out,
            "{pad}rate limit: {} req/s, burst {}",
            r.requests_per_second, r.burst
        );
    }
    if let Some(m) = &c.mirror {
        let _ = writeln!(out, "{pad}mirror: {}% to {}", m.percent, m.cluster);
    }
}
