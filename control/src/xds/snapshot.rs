//! What one Envoy node is served: its catalog snapshot translated, each resource packed
//! with a content version; cached by the node snapshot's version, so nodes with the
//! same resources share one translation.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use envoy_types::pb::google::protobuf::Any;
use meshwork_config::resource::{self, Applied, Bootstrap, settle};
use prost::Message;

use super::translate::{Refusal, Translated, translate};
use super::types::ResourceType;
use crate::catalog::NodeSnapshot;

/// Snapshots kept before the cache starts over (one per distinct set of resources in use).
const CACHED_SNAPSHOTS: usize = 64;

/// One translated resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Content hash of its encoded form.
    pub version: String,
    pub body: Any,
}

/// A node's Envoy resources, by type and name, and what was refused.
#[derive(Debug, Default)]
pub struct EnvoySnapshot {
    resources: BTreeMap<ResourceType, BTreeMap<String, Entry>>,
    pub refused: Vec<Refusal>,
}

impl EnvoySnapshot {
    /// Translates what `node` is served. The resources were validated by the catalog;
    /// they are assembled once more into a typed config (file paths left as written:
    /// Envoy reads them on its own machine).
    pub fn build(node: &NodeSnapshot) -> EnvoySnapshot {
        let bootstrap = Bootstrap::empty(Path::new(""));
        let offered = node.resources.values().map(|r| (**r).clone()).collect();
        let settled = settle(
            &bootstrap,
            offered,
            &|_| None,
            &|_| None,
            &mut Applied::Done,
        );
        let config = match settled {
            Ok(s) if s.rejected.is_empty() => s.value,
            Ok(s) => {
                // Not reachable: the catalog checked this same set together.
                let refused = s
                    .rejected
                    .into_iter()
                    .map(|r| Refusal {
                        kind: r.resource.key.kind.as_str(),
                        name: r.resource.key.name,
                        error: r.error,
                    })
                    .collect();
                return EnvoySnapshot {
                    resources: BTreeMap::new(),
                    refused,
                };
            }
            Err(error) => {
                tracing::error!(%error, "cannot assemble a node's resources for Envoy");
                return EnvoySnapshot::default();
            }
        };
        Self::from_translated(translate(&config))
    }

    fn from_translated(t: Translated) -> EnvoySnapshot {
        fn pack<M: Message + prost::Name>(
            ty: ResourceType,
            items: BTreeMap<String, M>,
        ) -> BTreeMap<String, Entry> {
            items
                .into_iter()
                .map(|(name, message)| {
                    let body = super::proto::any(&message);
                    let hex: String = body.value.iter().map(|b| format!("{b:02x}")).collect();
                    let version = resource::content_version(&[ty.as_str(), &name, &hex]);
                    (name, Entry { version, body })
                })
                .collect()
        }
        let mut resources = BTreeMap::new();
        resources.insert(
            ResourceType::Cluster,
            pack(ResourceType::Cluster, t.clusters),
        );
        resources.insert(
            ResourceType::Endpoints,
            pack(ResourceType::Endpoints, t.endpoints),
        );
        resources.insert(
            ResourceType::Listener,
            pack(ResourceType::Listener, t.listeners),
        );
        resources.insert(ResourceType::Route, pack(ResourceType::Route, t.routes));
        EnvoySnapshot {
            resources,
            refused: t.refused,
        }
    }

    /// Every resource of `ty`, by name.
    pub fn of(&self, ty: ResourceType) -> &BTreeMap<String, Entry> {
        static EMPTY: BTreeMap<String, Entry> = BTreeMap::new();
        self.resources.get(&ty).unwrap_or(&EMPTY)
    }
}

/// The version of a set of resources as sent: a hash of their names and versions.
pub fn set_version<'a>(entries: impl IntoIterator<Item = (&'a String, &'a Entry)>) -> String {
    let parts: Vec<String> = entries
        .into_iter()
        .map(|(name, e)| format!("{name}@{}", e.version))
        .collect();
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    resource::content_version(&refs)
}

/// Translations by node snapshot version.
#[derive(Debug, Default)]
pub struct SnapshotCache {
    by_version: Mutex<HashMap<String, Arc<EnvoySnapshot>>>,
}

impl SnapshotCache {
    /// The translation of `node`, made (and its refusals logged) on first use.
    pub fn get(&self, node: &NodeSnapshot) -> Arc<EnvoySnapshot> {
        let mut map = self.by_version.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = map.get(&node.version) {
            return found.clone();
        }
        let built = Arc::new(EnvoySnapshot::build(node));
        for r in &built.refused {
            tracing::warn!(kind = r.kind, name = %r.name, error = %r.error, "not sent to Envoy");
        }
        if map.len() >= CACHED_SNAPSHOTS {
            map.clear();
        }
        map.insert(node.version.clone(), built.clone());
        built
    }
}
