//! Validation: raw config -> typed model, collecting every problem (pure; no I/O).
//!
//! Each part checks its own fields and returns `None` when something required is
//! missing or malformed; every field is looked at before giving up, so all problems are
//! reported. Defaults from `model` are applied here. Cross-references (route tables,
//! clusters, listeners by name) are checked against the names collected first.

mod authorization;
mod breaker;
mod check;
mod cluster;
#[cfg(test)]
mod control_plane_tests;
mod hedge;
mod listener;
mod other;
mod policy;
mod request_paths;
mod route;
mod sidecar;
mod upgrades;
mod vip;

use std::collections::BTreeMap;
use std::path::Path;

pub(crate) use check::Check;

use crate::diagnostic::Sink;
use crate::model::{Config, Listener, RouteTable};
use crate::raw::RawConfig;
use crate::spanned::Spanned;

/// The names defined in a file, for cross-reference checks; `None` when a definition
/// was malformed (then references are not checked, to avoid follow-on errors).
#[derive(Debug, Default)]
pub(crate) struct Names {
    pub listeners: Option<Vec<String>>,
    pub route_tables: Option<Vec<String>>,
    pub clusters: Option<Vec<String>>,
    /// An `identity` section is present (it stands in for TLS files left out).
    pub identity: bool,
}

/// What validation needs besides the raw config.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    /// Relative file paths are resolved against this (the config file's directory).
    pub base_dir: &'a Path,
    /// Used when `node.id` is absent.
    pub default_node_id: String,
    /// A proxy's own file with `control_plane`: the listeners its `authorization` names
    /// may be served later, so they are checked when the control plane's resources are
    /// assembled over it, not here.
    pub listeners_served_later: bool,
}

/// Checks everything and builds the model; `None` if any problem was found (all are in
/// `sink`).
pub(crate) fn validate(
    raw: &Spanned<RawConfig>,
    cx: &Context<'_>,
    sink: &mut Sink,
) -> Option<Config> {
    let ck = &mut Check::new(sink, cx.base_dir);
    let config = raw.get()?;

    match &config.version {
        None => ck.at(
            raw.pos,
            "",
            "missing field \"version\" (write `version: 1` at the top)",
        ),
        Some(v) => {
            if let Some(n) = v.get() {
                if *n != 1 {
                    ck.error(
                        v,
                        format!("{n} is not supported (this meshwork reads version 1)"),
                    );
                }
            }
        }
    }

    let names = Names {
        listeners: ck.unique_names(config.listeners.as_ref(), "listener", |l| &l.name),
        route_tables: match &config.route_tables {
            None => Some(Vec::new()),
            Some(t) => t
                .get()
                .map(|t| t.0.iter().filter_map(|(k, _)| k.get().cloned()).collect()),
        },
        clusters: ck.unique_names(config.clusters.as_ref(), "cluster", |c| &c.name),
        identity: config.identity.as_ref().is_some_and(|i| i.get().is_some()),
    };

    let node = other::node(ck, config.node.as_ref(), &cx.default_node_id);
    let runtime = other::runtime(ck, config.runtime.as_ref());
    let admin = other::admin(ck, config.admin.as_ref());
    let control_plane = ck.optional(config.control_plane.as_ref(), |ck, at| {
        other::control_plane(ck, at, names.identity)
    });
    let listeners = listener::listeners(ck, &config.listeners, &names);
    let route_tables = route_tables(ck, config, &names, &listeners);
    let mut vips = vip::VipClaims::new();
    let clusters = ck.list(&config.clusters, |ck, at, c| {
        cluster::cluster(ck, at, c, &names, &mut vips)
    });
    let identity = ck.optional(config.identity.as_ref(), other::identity);
    let mesh = ck.optional(config.mesh.as_ref(), |ck, at| {
        sidecar::mesh(ck, at, names.identity)
    });
    let mut policed: Vec<String> = Vec::new();
    let unchecked = Names::default();
    let (listener_names, known_listeners) =
        if cx.listeners_served_later && config.control_plane.is_some() {
            (&unchecked, &[][..])
        } else {
            (&names, listeners.as_slice())
        };
    let authorization = ck.list(&config.authorization, |ck, at, a| {
        let policy = other::authorization(ck, at, a, listener_names, known_listeners);
        if policed.contains(&policy.listener) {
            let at_listener = a.listener.as_ref().map_or((at.pos, at.path.clone()), |l| (l.pos, l.path.clone()));
            ck.at(
                at_listener.0,
                &at_listener.1,
                format!(
                    "listener {:?} already has a policy (one policy per listener: put all its rules in one allow list)",
                    policy.listener
                ),
            );
        } else {
            policed.push(policy.listener.clone());
        }
        Some(policy)
    });
    authorization::fit_listeners(ck, &config.authorization, &listeners);
    let tracing = ck.optional(config.tracing.as_ref(), |ck, t| {
        other::tracing(ck, t, &node.id)
    });
    let access_log = ck.optional(config.access_log.as_ref(), other::access_log);

    ck.is_clean().then_some(Config {
        node,
        runtime,
        admin,
        control_plane,
        listeners,
        route_tables,
        clusters,
        identity,
        authorization,
        mesh,
        tracing,
        access_log,
    })
}

fn route_tables(
    ck: &mut Check<'_>,
    config: &RawConfig,
    names: &Names,
    listeners: &[Listener],
) -> BTreeMap<String, RouteTable> {
    let mut out = BTreeMap::new();
    let Some(tables) = config.route_tables.as_ref().and_then(Spanned::get) else {
        return out;
    };
    for (key, routes) in &tables.0 {
        let Some(name) = key.get() else { continue };
        if name.trim().is_empty() {
            ck.error(key, "a route table name cannot be empty");
            continue;
        }
        out.insert(
            name.clone(),
            route::table(ck, name, routes, names, listeners),
        );
    }
    out
}
