//! The four xDS resource types and one resource's way into meshwork: decoded from its
//! `Any`, translated by type ([`super::cluster`], [`super::listener`], [`super::route`]),
//! and written out as a meshwork fragment so the same validation as a file's reports
//! its problems.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::Any;
use meshwork_config::resource::Resource;
use prost::{Message, Name};
use serde::Serialize;
use serde_json::Value;

use super::cluster::{self, ClusterDef};
use super::leftover::Refusal;
use super::listener::{self, ListenerDef};
use super::route;

/// The four resource types, in the order ADS asks for them (clusters and their
/// endpoints before the listeners and routes that use them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub(crate) enum XdsType {
    Cluster,
    ClusterLoadAssignment,
    Listener,
    RouteConfiguration,
}

impl XdsType {
    pub const ALL: [XdsType; 4] = [
        XdsType::Cluster,
        XdsType::ClusterLoadAssignment,
        XdsType::Listener,
        XdsType::RouteConfiguration,
    ];

    pub fn type_url(self) -> String {
        match self {
            XdsType::Cluster => Cluster::type_url(),
            XdsType::ClusterLoadAssignment => ClusterLoadAssignment::type_url(),
            XdsType::Listener => Listener::type_url(),
            XdsType::RouteConfiguration => RouteConfiguration::type_url(),
        }
    }

    pub fn of_url(url: &str) -> Option<XdsType> {
        XdsType::ALL.into_iter().find(|t| t.type_url() == url)
    }

    /// CDS and LDS subscribe to everything; EDS and RDS to the names in use.
    pub(crate) fn is_wildcard(self) -> bool {
        matches!(self, XdsType::Cluster | XdsType::Listener)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A resource translated into meshwork's format.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Translated {
    Cluster(ClusterDef),
    Endpoints(Vec<Value>),
    Listener(ListenerDef),
    RouteTable(Vec<Value>),
}

pub(crate) fn type_name(kind: XdsType) -> &'static str {
    match kind {
        XdsType::Cluster => "Cluster",
        XdsType::ClusterLoadAssignment => "ClusterLoadAssignment",
        XdsType::Listener => "Listener",
        XdsType::RouteConfiguration => "RouteConfiguration",
    }
}

/// One resource of a response: its name and its translation (or what it sets that
/// meshwork cannot represent). The outer error: it does not even decode.
#[allow(clippy::type_complexity)]
pub(crate) fn translate(
    kind: XdsType,
    any: &Any,
) -> Result<(String, Result<Translated, Vec<Refusal>>), (Option<String>, String)> {
    if any.type_url != kind.type_url() {
        return Err((
            None,
            format!(
                "a {:?} in a response of type {:?}",
                any.type_url,
                kind.type_url()
            ),
        ));
    }
    let bytes = any.value.as_slice();
    let bad = |e: prost::DecodeError| (None, format!("cannot decode: {e}"));
    Ok(match kind {
        XdsType::Cluster => {
            let c = Cluster::decode(bytes).map_err(bad)?;
            (
                c.name.clone(),
                cluster::cluster(&c).map(Translated::Cluster),
            )
        }
        XdsType::ClusterLoadAssignment => {
            let cla = ClusterLoadAssignment::decode(bytes).map_err(bad)?;
            (
                cla.cluster_name.clone(),
                cluster::endpoints(&cla).map(Translated::Endpoints),
            )
        }
        XdsType::Listener => {
            let l = Listener::decode(bytes).map_err(bad)?;
            (
                l.name.clone(),
                listener::listener(&l).map(Translated::Listener),
            )
        }
        XdsType::RouteConfiguration => {
            let rc = RouteConfiguration::decode(bytes).map_err(bad)?;
            (
                rc.name.clone(),
                route::route_table(&rc).map(Translated::RouteTable),
            )
        }
    })
}

/// A translated resource as a meshwork resource: written out as a fragment (JSON is
/// YAML) named after the xDS resource, so meshwork's own validation reports problems
/// as `xds:Cluster/api:LINE:COL: clusters[0].field: ...`.
pub(crate) fn resource(kind: XdsType, name: &str, fragment: Value) -> Vec<Resource> {
    let file = format!("xds:{}/{name}", type_name(kind));
    let text = serde_json::to_string_pretty(&fragment)
        .unwrap_or_default()
        // `${` would be read as an environment variable; `$${` is a literal `${`.
        .replace("${", "$${");
    match meshwork_config::resource::parse_fragment(&file, &text, &|_| None) {
        Ok(f) => f.resources,
        Err(error) => {
            // The fragment is written here from checked parts: not expected to fail.
            tracing::error!(%error, %file, "cannot cut a translated xDS resource");
            Vec::new()
        }
    }
}
