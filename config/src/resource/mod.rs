//! Resources: the pieces of config the control plane serves one by one (listeners, route
//! tables, clusters, resolved endpoints), each with its source position and a content
//! version.
//!
//! The control plane cuts fragment files into resources ([`parse_fragment`]); both sides
//! put resources back together over a proxy's own file and validate them with the same
//! code as a whole file ([`assemble`], [`settle`]), so a problem in a pushed resource is
//! reported as `file:line:col: field.path: message` against the file it was written in.

mod assemble;
mod fragment;
mod kubernetes;
mod wire;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

pub use assemble::{Applied, Bootstrap, Rejection, Settled, settle};
pub use fragment::{FRAGMENT_FIELDS, Fragment, duplicate, parse_fragment};
pub use kubernetes::{
    DiscoveredEndpoint, ServiceSettings, discovered_endpoints, kubernetes_discovery,
    service_cluster,
};

/// What a resource is. The order is the order a proxy applies them in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Listener,
    RouteTable,
    Cluster,
    /// The endpoints a cluster's `discovery` resolved to; named after the cluster.
    Endpoints,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Listener,
        Kind::RouteTable,
        Kind::Cluster,
        Kind::Endpoints,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Listener => "listener",
            Kind::RouteTable => "route_table",
            Kind::Cluster => "cluster",
            Kind::Endpoints => "endpoints",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resource's identity: its kind and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Key {
    pub kind: Kind,
    pub name: String,
}

impl Key {
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        Key {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind, self.name)
    }
}

/// Where a resource was written: its file, the position of its definition (1-based) and
/// its field path in that file (`clusters[2]`, `route_tables.edge`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub path: String,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One resource as served: identity, content version, body and source.
///
/// The body is the resource's YAML subtree in a JSON encoding that keeps every node's
/// source position (see `wire.rs`); its shape depends on the kind: a listener or cluster
/// mapping, a route table's list of routes, a list of endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    pub key: Key,
    pub version: String,
    pub body: String,
    pub source: Source,
}

impl Resource {
    /// A resource with its content version computed from kind, name and body.
    pub fn new(key: Key, body: String, source: Source) -> Self {
        let version = content_version(&[key.kind.as_str(), &key.name, &body]);
        Resource {
            key,
            version,
            body,
            source,
        }
    }
}

/// A content hash (SHA-1, as git does for content addressing; 16 hex digits kept): the
/// same parts give the same version in every process and on every replica.
pub fn content_version(parts: &[&str]) -> String {
    let mut hasher = Sha1::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The version of a set of resources: a hash of their keys and versions, in key order.
pub fn snapshot_version<'a>(resources: impl IntoIterator<Item = &'a Resource>) -> String {
    let mut sorted: Vec<&Resource> = resources.into_iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let parts: Vec<String> = sorted
        .iter()
        .map(|r| format!("{}/{}@{}", r.key.kind, r.key.name, r.version))
        .collect();
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    content_version(&refs)
}

/// A node's labels matched against a fragment's `node_selector`: every pair must be there.
pub fn selector_matches(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The endpoints resource for `cluster` (a cluster resource with `discovery`): the
/// addresses its DNS name resolved to, sorted (so the same answer in another order is the
/// same version), placed at the `discovery` field.
///
/// `None` when `cluster` is not a cluster with `discovery`.
pub fn resolved_endpoints(
    cluster: &Resource,
    addresses: &[std::net::SocketAddr],
) -> Option<Resource> {
    let mut sorted = addresses.to_vec();
    sorted.sort();
    sorted.dedup();
    endpoints_at_discovery(cluster, |at| {
        sorted
            .iter()
            .map(|a| crate::yaml::Node {
                pos: at,
                kind: crate::yaml::Kind::Scalar(crate::yaml::Scalar {
                    text: a.to_string(),
                    value: crate::yaml::Value::Str,
                }),
            })
            .collect()
    })
}

/// An endpoints resource named after `cluster` (which must have `discovery`): the list
/// `items` makes, placed at the `discovery` field's position.
fn endpoints_at_discovery(
    cluster: &Resource,
    items: impl FnOnce(crate::diagnostic::Pos) -> Vec<crate::yaml::Node>,
) -> Option<Resource> {
    let body = wire::decode(&cluster.body).ok()?;
    let crate::yaml::Kind::Map(entries) = &body.kind else {
        return None;
    };
    let at = entries
        .iter()
        .find(|e| e.key.text() == Some("discovery"))?
        .key
        .pos;
    let list = crate::yaml::Node {
        pos: at,
        kind: crate::yaml::Kind::Seq(items(at)),
    };
    let source = Source {
        file: cluster.source.file.clone(),
        line: at.line,
        column: at.column,
        path: crate::path::field(&cluster.source.path, "discovery"),
    };
    Some(Resource::new(
        Key::new(Kind::Endpoints, cluster.key.name.clone()),
        wire::encode(&list),
        source,
    ))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit_tests {
    use super::*;

    fn resource(name: &str, body: &str) -> Resource {
        Resource::new(
            Key::new(Kind::Cluster, name),
            body.into(),
            Source::default(),
        )
    }

    #[test]
    fn versions_depend_on_content_only() {
        let a = resource("api", "[1,1,\":\",[]]");
        let mut b = resource("api", "[1,1,\":\",[]]");
        b.source.file = "elsewhere.yaml".into();
        assert_eq!(a.version, b.version);
        assert_eq!(a.version.len(), 16);
        assert_ne!(a.version, resource("api", "[2,1,\":\",[]]").version);
        assert_ne!(a.version, resource("web", "[1,1,\":\",[]]").version);
    }

    #[test]
    fn part_boundaries_count_in_versions() {
        assert_ne!(content_version(&["ab", "c"]), content_version(&["a", "bc"]));
    }

    #[test]
    fn snapshot_versions_ignore_order() {
        let (a, b) = (resource("a", "x"), resource("b", "y"));
        assert_eq!(snapshot_version([&a, &b]), snapshot_version([&b, &a]));
        assert_ne!(snapshot_version([&a]), snapshot_version([&a, &b]));
    }

    #[test]
    fn selectors_need_every_label() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let labels = map(&[("app", "web"), ("zone", "eu-1")]);
        assert!(selector_matches(&map(&[]), &labels));
        assert!(selector_matches(&map(&[("app", "web")]), &labels));
        assert!(!selector_matches(
            &map(&[("app", "web"), ("zone", "us-1")]),
            &labels
        ));
        assert!(!selector_matches(&map(&[("tier", "edge")]), &labels));
    }
}
