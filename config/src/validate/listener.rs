//! Validation of listeners: address, protocol and its target, TLS, limits.

use std::net::SocketAddr;

use super::other::refer;
use super::{Check, Names};
use crate::model::{
    ClientAuth, DEFAULT_LISTENER_LIMITS, DEFAULT_TLS_HANDSHAKE_TIMEOUT, EscapedSlashes, Listener,
    ListenerLimits, ListenerPaths, ListenerProtocol, ListenerTls, ServerCertificate,
};
use crate::raw::{
    ClientAuthName, EscapedSlashesName, ListenerProtocolName, RawListener, RawListenerLimits,
    RawListenerPaths, RawListenerTls,
};
use crate::spanned::{List, Spanned};
use crate::units;

pub(crate) fn listeners(
    ck: &mut Check<'_>,
    raw: &List<RawListener>,
    names: &Names,
) -> Vec<Listener> {
    let list = ck.list(raw, |ck, at, l| {
        // Where the address is written (or the listener itself).
        let at_address = match &l.address {
            Some(a) => (a.pos, a.path.clone()),
            None => (at.pos, at.path.clone()),
        };
        Some((listener(ck, at, l, names), at_address))
    });
    // Two listeners cannot bind the same address (port 0 = a different free port each).
    let mut bound: Vec<(SocketAddr, usize)> = Vec::new();
    for (l, (pos, path)) in &list {
        if l.address.port() == 0 {
            continue;
        }
        if let Some((_, line)) = bound.iter().find(|(a, _)| *a == l.address) {
            ck.at(
                *pos,
                path,
                format!(
                    "address {} is already used by another listener (line {line})",
                    l.address
                ),
            );
        } else {
            bound.push((l.address, pos.line));
        }
    }
    list.into_iter().map(|(l, _)| l).collect()
}

fn listener(
    ck: &mut Check<'_>,
    at: &Spanned<RawListener>,
    raw: &RawListener,
    names: &Names,
) -> Listener {
    let name = ck.required_text(at, &raw.name, "name");
    let address = if ck.require(at, &raw.address, "address") {
        ck.parse(&raw.address, |s| units::parse_socket_addr(s))
    } else {
        None
    }
    // Port 0 stands in for a bad address: it is left out of the clash check.
    .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));

    let kind = raw
        .protocol
        .as_ref()
        .and_then(Spanned::get)
        .copied()
        .unwrap_or(ListenerProtocolName::Http);
    let protocol = match kind {
        ListenerProtocolName::Http => {
            if let Some(cluster) = &raw.cluster {
                ck.error(
                    cluster,
                    "only tcp listeners have a cluster (http listeners use route_table)",
                );
            }
            if ck.require(at, &raw.route_table, "route_table") {
                refer(ck, &raw.route_table, &names.route_tables, "route table");
            }
            let route_table = ck.text(&raw.route_table, "route_table").unwrap_or_default();
            ListenerProtocol::Http { route_table }
        }
        ListenerProtocolName::Tcp => {
            if let Some(table) = &raw.route_table {
                ck.error(
                    table,
                    "only http listeners have a route_table (tcp listeners use cluster)",
                );
            }
            if let Some(paths) = &raw.paths {
                ck.error(
                    paths,
                    "only http listeners read request paths (a tcp listener forwards bytes)",
                );
            }
            if ck.require(at, &raw.cluster, "cluster") {
                refer(ck, &raw.cluster, &names.clusters, "cluster");
            }
            let cluster = ck.text(&raw.cluster, "cluster").unwrap_or_default();
            ListenerProtocol::Tcp { cluster }
        }
        ListenerProtocolName::Auto => {
            if let Some(cluster) = &raw.cluster {
                ck.error(
                    cluster,
                    "an auto listener sends what it does not route to the original destination (it has \
                     no cluster; HTTP goes to its optional route_table)",
                );
            }
            if raw.route_table.is_some() {
                refer(ck, &raw.route_table, &names.route_tables, "route table");
            }
            let route_table = ck.text(&raw.route_table, "route_table");
            ListenerProtocol::Auto { route_table }
        }
    };
    let sidecar = super::sidecar::listener(ck, at, raw, kind);
    let tls = ck.optional(raw.tls.as_ref(), |ck, at| tls(ck, at, names.identity));
    let limits = ck
        .optional(raw.limits.as_ref(), |ck, at| match at.get() {
            Some(l) => {
                if kind == ListenerProtocolName::Tcp {
                    http_only_limits(ck, l);
                }
                limits(ck, l)
            }
            None => DEFAULT_LISTENER_LIMITS,
        })
        .unwrap_or(DEFAULT_LISTENER_LIMITS);
    let paths = raw
        .paths
        .as_ref()
        .and_then(Spanned::get)
        .map(paths)
        .unwrap_or_default();
    Listener {
        name,
        address,
        protocol,
        tls,
        limits,
        paths,
        direction: sidecar.direction,
        original_destination: sidecar.original_destination,
        ports: sidecar.ports,
    }
}

fn paths(raw: &RawListenerPaths) -> ListenerPaths {
    let escaped_slashes = match raw.escaped_slashes.as_ref().and_then(Spanned::get) {
        None | Some(EscapedSlashesName::Reject) => EscapedSlashes::Reject,
        Some(EscapedSlashesName::Keep) => EscapedSlashes::Keep,
    };
    ListenerPaths { escaped_slashes }
}

/// `identity`: an `identity` section is present, standing in for a missing certificate
/// (its own) and client CA (its trust bundle).
fn tls(ck: &mut Check<'_>, at: &Spanned<RawListenerTls>, identity: bool) -> ListenerTls {
    let empty = ListenerTls {
        certificates: Vec::new(),
        client_auth: ClientAuth::None,
        client_ca: None,
        handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
    };
    let Some(raw) = at.get() else { return empty };
    if raw.certificates.is_none() && !identity {
        ck.error(
            at,
            "missing field \"certificates\" (or set `identity` to serve its certificate)",
        );
    } else if raw.certificates.is_some() {
        if let Some(list) = raw
            .certificates
            .as_ref()
            .filter(|l| l.get().is_some_and(Vec::is_empty))
        {
            ck.error(list, "needs at least one certificate");
        }
    }
    let certificates = ck.list(&raw.certificates, |ck, at, c| {
        Some(ServerCertificate {
            cert: ck.required_path(at, &c.cert, "cert"),
            key: ck.required_path(at, &c.key, "key"),
            server_names: ck.list(&c.server_names, |ck, at, n| {
                units::parse_host_match(n).map_err(|e| ck.error(at, e)).ok()
            }),
        })
    });
    let client_auth = match raw.client_auth.as_ref().and_then(Spanned::get) {
        None | Some(ClientAuthName::None) => ClientAuth::None,
        Some(ClientAuthName::Optional) => ClientAuth::Optional,
        Some(ClientAuthName::Required) => ClientAuth::Required,
    };
    let client_ca = ck.path(&raw.client_ca);
    if client_auth != ClientAuth::None && raw.client_ca.is_none() && !identity {
        ck.error(
            at,
            "missing field \"client_ca\" (needed to verify client certificates; or set `identity` to use its trust bundle)",
        );
    }
    let handshake_timeout =
        ck.positive_duration(&raw.handshake_timeout, DEFAULT_TLS_HANDSHAKE_TIMEOUT);
    ListenerTls {
        certificates,
        client_auth,
        client_ca,
        handshake_timeout,
    }
}

/// Refuses the limits a tcp listener would ignore: its connections carry no request
/// head to time or measure (its `max_connections` and `idle_timeout` apply).
fn http_only_limits(ck: &mut Check<'_>, raw: &RawListenerLimits) {
    let fields = [
        raw.header_read_timeout
            .as_ref()
            .map(|f| (f.pos, f.path.clone())),
        raw.max_request_header_size
            .as_ref()
            .map(|f| (f.pos, f.path.clone())),
    ];
    for (pos, path) in fields.into_iter().flatten() {
        ck.at(
            pos,
            &path,
            "applies to http listeners only: a tcp connection has no request head (tcp \
             listeners take max_connections and idle_timeout)",
        );
    }
}

fn limits(ck: &mut Check<'_>, raw: &RawListenerLimits) -> ListenerLimits {
    let d = DEFAULT_LISTENER_LIMITS;
    ListenerLimits {
        max_connections: ck.int_in(&raw.max_connections, 1, u32::MAX, d.max_connections),
        header_read_timeout: ck.positive_duration(&raw.header_read_timeout, d.header_read_timeout),
        max_request_header_size: ck.size(&raw.max_request_header_size, d.max_request_header_size),
        idle_timeout: ck.positive_duration(&raw.idle_timeout, d.idle_timeout),
    }
}
