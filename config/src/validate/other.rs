//! Validation of the smaller top-level sections: node, runtime, admin, control plane,
//! TLS origination, identity, authorization, tracing and access log.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::request_paths::{self, PathUse, Reading};
use super::{Check, Names};
use crate::model::{
    AccessLog, AccessLogFormat, AccessLogPath, Admin, AuthorizationDefault, AuthorizationPolicy,
    AuthorizationRule, ClientTls, ControlPlane, ControlPlaneProtocol, DEFAULT_ADMIN_ADDRESS,
    DEFAULT_STATE_DIR, Identity, Listener, Node, Otlp, Propagation, Runtime, Tracing,
    WorkerThreads,
};
use crate::raw::{
    AccessLogFormatName, AuthorizationDefaultName, ControlPlaneProtocolName, PropagationName,
    RawAccessLog, RawAdmin, RawAuthorization, RawClientTls, RawControlPlane, RawIdentity, RawNode,
    RawOtlp, RawRuntime, RawTracing,
};
use crate::spanned::{Field, Spanned};
use crate::units;

/// Most worker threads accepted.
const MAX_WORKER_THREADS: u16 = 1024;
/// Default head sampling probability.
pub(crate) const DEFAULT_SAMPLING: f64 = 0.01;

pub(crate) fn node(ck: &mut Check<'_>, raw: Option<&Spanned<RawNode>>, default_id: &str) -> Node {
    let raw = raw.and_then(Spanned::get);
    let id = raw
        .and_then(|n| ck.text(&n.id, "node id"))
        .unwrap_or_else(|| default_id.to_string());
    let mut labels = BTreeMap::new();
    if let Some(entries) = raw.and_then(|n| n.labels.as_ref()).and_then(Spanned::get) {
        for (key, value) in &entries.0 {
            let (Some(k), Some(v)) = (key.get(), value.get()) else {
                continue;
            };
            if k.trim().is_empty() {
                ck.error(key, "a label name cannot be empty");
            }
            labels.insert(k.clone(), v.clone());
        }
    }
    Node { id, labels }
}

pub(crate) fn runtime(ck: &mut Check<'_>, raw: Option<&Spanned<RawRuntime>>) -> Runtime {
    let worker_threads = raw
        .and_then(Spanned::get)
        .and_then(|r| {
            ck.parse(&r.worker_threads, |w| {
                let text = w.0.trim();
                if text == "auto" {
                    return Ok(WorkerThreads::Auto);
                }
                match text.parse::<u16>() {
                    Ok(n) if (1..=MAX_WORKER_THREADS).contains(&n) => Ok(WorkerThreads::Fixed(n)),
                    _ => Err(format!(
                        "expected a number of threads from 1 to {MAX_WORKER_THREADS} or \"auto\", got {text:?}"
                    )),
                }
            })
        })
        .unwrap_or(WorkerThreads::Fixed(1));
    Runtime { worker_threads }
}

pub(crate) fn default_admin_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9901))
}

pub(crate) fn admin(ck: &mut Check<'_>, raw: Option<&Spanned<RawAdmin>>) -> Admin {
    debug_assert_eq!(default_admin_address().to_string(), DEFAULT_ADMIN_ADDRESS);
    let address = raw
        .and_then(Spanned::get)
        .and_then(|a| ck.parse(&a.address, |s| units::parse_socket_addr(s)))
        .unwrap_or_else(default_admin_address);
    Admin { address }
}

/// `identity`: an `identity` section is present (its trust bundle and certificate stand
/// in for `tls.ca` and `tls.cert`/`tls.key`, as for clusters).
pub(crate) fn control_plane(
    ck: &mut Check<'_>,
    at: &Spanned<RawControlPlane>,
    identity: bool,
) -> ControlPlane {
    let Some(raw) = at.get() else {
        return ControlPlane {
            address: String::new(),
            tls: None,
            protocol: ControlPlaneProtocol::Meshwork,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
        };
    };
    let address = if ck.require(at, &raw.address, "address") {
        ck.parse(&raw.address, |s| url(s)).unwrap_or_default()
    } else {
        String::new()
    };
    let tls_present = raw.tls.as_ref().is_some_and(|t| t.get().is_some());
    if let Some(field) = &raw.address {
        // The scheme says whether the stream is encrypted, as in Envoy and gRPC clients:
        // https:// always goes with `tls`, http:// never does.
        match (address.starts_with("https://"), tls_present) {
            (true, false) => ck.error(
                field,
                "an https:// control plane needs `tls` (at least `ca`, the CA bundle that \
                 signed its certificate; or set `identity` and write `tls: {}` to use its \
                 trust bundle)",
            ),
            (false, true) if !address.is_empty() => ck.error(
                field,
                format!(
                    "with `tls` the address must be https:// (got {address:?}); http:// is \
                     plaintext h2c"
                ),
            ),
            _ => {}
        }
    }
    let tls = ck.optional(raw.tls.as_ref(), |ck, at| {
        if at.get().is_some_and(|t| t.ca.is_none()) && !identity {
            ck.error(
                at,
                "missing field \"ca\" (the CA bundle to verify the control plane's certificate; \
                 or set `identity` to use its trust bundle)",
            );
        }
        client_tls(ck, at)
    });
    let protocol = match raw.protocol.as_ref().and_then(Spanned::get) {
        None | Some(ControlPlaneProtocolName::Meshwork) => ControlPlaneProtocol::Meshwork,
        Some(ControlPlaneProtocolName::Xds) => ControlPlaneProtocol::Xds,
    };
    let state_dir = ck
        .path(&raw.state_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    ControlPlane {
        address,
        tls,
        protocol,
        state_dir,
    }
}

/// An `http://` or `https://` URL with a host.
fn url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| {
            format!("{s:?} is not a URL (expected http://host:port or https://host:port)")
        })?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return Err(format!("{s:?} is not a URL: it has no host"));
    }
    Ok(s.to_string())
}

pub(crate) fn client_tls(ck: &mut Check<'_>, at: &Spanned<RawClientTls>) -> ClientTls {
    let Some(raw) = at.get() else {
        return ClientTls {
            ca: None,
            cert: None,
            key: None,
            server_name: None,
            identities: Vec::new(),
        };
    };
    let ca = ck.path(&raw.ca);
    let cert = ck.path(&raw.cert);
    let key = ck.path(&raw.key);
    match (&raw.cert, &raw.key) {
        (Some(_), None) => ck.error(
            at,
            "missing field \"key\" (a client certificate needs its key)",
        ),
        (None, Some(_)) => ck.error(at, "missing field \"cert\" (a key needs its certificate)"),
        _ => {}
    }
    let server_name = ck.parse(&raw.server_name, |s| {
        units::check_dns_name(s).map(|()| s.to_ascii_lowercase())
    });
    let identities = ck.list(&raw.identities, |ck, at, id| spiffe_id(ck, at, id, false));
    ClientTls {
        ca,
        cert,
        key,
        server_name,
        identities,
    }
}

/// A SPIFFE ID (`spiffe://trust-domain/path`), or `*` where `allow_any`.
fn spiffe_id(
    ck: &mut Check<'_>,
    at: &Spanned<String>,
    id: &str,
    allow_any: bool,
) -> Option<String> {
    if allow_any && id == "*" {
        return Some(id.to_string());
    }
    let domain = id
        .strip_prefix("spiffe://")
        .map(|r| r.split('/').next().unwrap_or_default());
    if domain.is_none_or(str::is_empty) {
        let any = if allow_any { " or \"*\"" } else { "" };
        ck.error(
            at,
            format!("{id:?} is not a SPIFFE ID (expected spiffe://trust-domain/path{any})"),
        );
        return None;
    }
    Some(id.to_string())
}

pub(crate) fn identity(ck: &mut Check<'_>, at: &Spanned<RawIdentity>) -> Identity {
    let Some(raw) = at.get() else {
        return Identity {
            cert: Default::default(),
            key: Default::default(),
            trust_bundle: Default::default(),
        };
    };
    Identity {
        cert: ck.required_path(at, &raw.cert, "cert"),
        key: ck.required_path(at, &raw.key, "key"),
        trust_bundle: ck.required_path(at, &raw.trust_bundle, "trust_bundle"),
    }
}

pub(crate) fn authorization(
    ck: &mut Check<'_>,
    at: &Spanned<RawAuthorization>,
    raw: &RawAuthorization,
    names: &Names,
    listeners: &[Listener],
) -> AuthorizationPolicy {
    let listener = ck.required_text(at, &raw.listener, "listener");
    refer(ck, &raw.listener, &names.listeners, "listener");
    let reading = Reading::listener(listeners, &listener);
    let default = match raw.default.as_ref().and_then(Spanned::get) {
        Some(AuthorizationDefaultName::Allow) => AuthorizationDefault::Allow,
        _ => AuthorizationDefault::Deny,
    };
    let allow = ck.list(&raw.allow, |ck, _, rule| {
        Some(AuthorizationRule {
            from: ck.list(&rule.from, |ck, at, id| spiffe_id(ck, at, id, true)),
            methods: ck.list(&rule.methods, |ck, at, m| method(ck, at, m)),
            paths: ck.list(&rule.paths, |ck, at, p| {
                let checked = if p == "*" {
                    Ok(p.clone())
                } else if p.starts_with('/') {
                    request_paths::check(p, PathUse::Pattern, &reading)
                } else {
                    Err(format!(
                        "{p:?} is not a path pattern (it must start with \"/\")"
                    ))
                };
                checked.map_err(|e| ck.error(at, e)).ok()
            }),
            ports: ck.list(&rule.ports, |ck, at, port| match u16::try_from(*port) {
                Ok(port) if port > 0 => Some(port),
                _ => {
                    ck.error(at, format!("{port} is not a port (1 to 65535)"));
                    None
                }
            }),
        })
    });
    AuthorizationPolicy {
        listener,
        default,
        allow,
    }
}

pub(crate) fn method(ck: &mut Check<'_>, at: &Spanned<String>, m: &str) -> Option<String> {
    units::parse_method(m).map_err(|e| ck.error(at, e)).ok()
}

/// Reports a name that is not among `defined`.
pub(crate) fn refer(
    ck: &mut Check<'_>,
    field: &Field<String>,
    defined: &Option<Vec<String>>,
    kind: &str,
) {
    let Some(defined) = defined else { return };
    let Some(spanned) = field.as_ref() else {
        return;
    };
    let Some(name) = spanned.get() else { return };
    if name.trim().is_empty() || defined.iter().any(|d| d == name) {
        return;
    }
    let refs: Vec<&str> = defined.iter().map(String::as_str).collect();
    let hint = match crate::suggest::closest(name, &refs) {
        Some(c) => format!(" (did you mean {c:?}?)"),
        None if refs.is_empty() => format!(" (no {kind}s are defined)"),
        None => format!(" (defined: {})", refs.join(", ")),
    };
    ck.error(spanned, format!("no {kind} named {name:?}{hint}"));
}

pub(crate) fn tracing(ck: &mut Check<'_>, at: &Spanned<RawTracing>, node_id: &str) -> Tracing {
    let Some(raw) = at.get() else {
        return Tracing {
            propagation: Vec::new(),
            sampling: 0.0,
            otlp: None,
            service_name: String::new(),
        };
    };
    let mut propagation = ck.list(&raw.propagation, |_, _, p| {
        Some(match p {
            PropagationName::W3c => Propagation::W3c,
            PropagationName::B3 => Propagation::B3,
        })
    });
    propagation.dedup();
    if raw.propagation.is_none() {
        propagation.push(Propagation::W3c);
    }
    let sampling = ck.number_in(&raw.sampling, 0.0, 1.0, DEFAULT_SAMPLING);
    let otlp = ck.optional(raw.otlp.as_ref(), otlp);
    let service_name = ck
        .text(&raw.service_name, "service_name")
        .unwrap_or_else(|| node_id.to_string());
    Tracing {
        propagation,
        sampling,
        otlp,
        service_name,
    }
}

/// The OTLP collector: `https://` verifies it (the system's trust store unless
/// `tls.ca` says otherwise); `tls` with an `http://` endpoint would be ignored, so it is
/// refused, as for the control plane.
fn otlp(ck: &mut Check<'_>, at: &Spanned<RawOtlp>) -> Otlp {
    let Some(raw) = at.get() else {
        return Otlp {
            endpoint: String::new(),
            tls: None,
        };
    };
    let endpoint = if ck.require(at, &raw.endpoint, "endpoint") {
        ck.parse(&raw.endpoint, |s| url(s)).unwrap_or_default()
    } else {
        String::new()
    };
    let tls = ck.optional(raw.tls.as_ref(), client_tls);
    if let Some(field) = raw.tls.as_ref().filter(|_| endpoint.starts_with("http://")) {
        ck.error(
            field,
            format!("`tls` needs an https:// endpoint (got {endpoint:?}, which is plaintext)"),
        );
    }
    Otlp { endpoint, tls }
}

pub(crate) fn access_log(ck: &mut Check<'_>, at: &Spanned<RawAccessLog>) -> AccessLog {
    let raw = at.get();
    let format = match raw.and_then(|r| r.format.as_ref()).and_then(Spanned::get) {
        Some(AccessLogFormatName::Text) => AccessLogFormat::Text,
        _ => AccessLogFormat::Json,
    };
    let path = match raw.and_then(|r| r.path.as_ref()).and_then(Spanned::get) {
        None => AccessLogPath::Stdout,
        Some(p) if p == "stdout" => AccessLogPath::Stdout,
        Some(_) => raw
            .and_then(|r| ck.path(&r.path))
            .map_or(AccessLogPath::Stdout, AccessLogPath::File),
    };
    AccessLog { format, path }
}
