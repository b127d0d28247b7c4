//! Endpoint changes applied to the last catalog without reading everything again.
//!
//! When only the endpoints of some Kubernetes Service ports changed (the common case: pods
//! come and go, turn ready or not), the catalog of the last full reading is patched: the
//! endpoints resource of every served cluster taking those ports is rebuilt, validated
//! with its cluster alone (an endpoints resource plugs into its own cluster and nothing
//! refers to its content, so alone or among all, it is valid or not the same), and put
//! in place; the node snapshots already computed are patched the same way and say what
//! changed ([`Delta`]), so a stream sends those resources without comparing the whole
//! set. Whenever that reasoning does not hold — a cluster or endpoints resource
//! involved was refused, the new one does not validate, a node does not get the
//! cluster — the caller reads everything again, which decides as it always did. A
//! test in `tests.rs` holds both ways to the same result.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use meshwork_config::resource::{self, Applied, Bootstrap, DiscoveredEndpoint, Key, Kind, settle};
use meshwork_config::units::ServicePort;

use super::{Catalog, NodeSnapshot, Reader, Served};

/// What changed in a node snapshot since the one it was patched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    /// The version of the snapshot it was patched from.
    pub from_version: String,
    /// Resources new or changed.
    pub changed: Vec<Key>,
    /// Resources gone.
    pub removed: Vec<Key>,
}

/// The endpoints resource of a cluster: `Some` replaces (or adds) it, `None` removes it.
type Replacements = BTreeMap<Key, Option<Served>>;

impl Reader {
    /// `current` with the endpoints of the `changed` ports replaced (an empty list: the
    /// port has none left); `None` when that cannot be decided without reading
    /// everything again (see the module's doc).
    pub fn update_endpoints(
        &mut self,
        current: &Catalog,
        changed: &BTreeMap<ServicePort, Vec<DiscoveredEndpoint>>,
    ) -> Option<Catalog> {
        let replacements = self.replacements(current, changed)?;
        let mut served = current.served.clone();
        for (key, new) in &replacements {
            match (served.binary_search_by(|s| s.resource.key.cmp(key)), new) {
                (Ok(i), Some(new)) => served[i] = new.clone(),
                (Ok(i), None) => {
                    served.remove(i);
                }
                (Err(i), Some(new)) => served.insert(i, new.clone()),
                (Err(_), None) => {}
            }
            match new {
                Some(new) => self.last_good.insert(key.clone(), new.clone()),
                None => self.last_good.remove(key),
            };
        }
        let version = resource::snapshot_version(served.iter().map(|s| &*s.resource));
        if version != self.version {
            self.generation += 1;
            self.version = version.clone();
        }
        let groups = patch_groups(current, &replacements);
        Some(Catalog {
            generation: self.generation,
            version,
            served,
            problems: current.problems.clone(),
            discovery: current.discovery.clone(),
            groups: Mutex::new(groups),
            base_dir: current.base_dir.clone(),
            selectors: current.selectors.clone(),
            discovering: current.discovering.clone(),
            refused: current.refused.clone(),
        })
    }

    /// The endpoints resources to put in place, each validated with its cluster.
    fn replacements(
        &self,
        current: &Catalog,
        changed: &BTreeMap<ServicePort, Vec<DiscoveredEndpoint>>,
    ) -> Option<Replacements> {
        let bootstrap = Bootstrap::empty(&self.dir);
        let mut replacements = Replacements::new();
        for (port, list) in changed {
            for cluster_key in current.discovering.get(port).into_iter().flatten() {
                let key = Key::new(Kind::Endpoints, cluster_key.name.clone());
                if current.refused.contains(cluster_key) || current.refused.contains(&key) {
                    return None;
                }
                let cluster = current.served(cluster_key)?;
                let new = if list.is_empty() {
                    None
                } else {
                    Some(resource::discovered_endpoints(&cluster.resource, list)?)
                };
                let old = current.served(&key).map(|s| &s.resource.version);
                if old == new.as_ref().map(|n| &n.version) {
                    continue;
                }
                if let Some(new) = &new {
                    let pair = vec![(*cluster.resource).clone(), new.clone()];
                    let settled =
                        settle(&bootstrap, pair, &|_| None, &self.env, &mut Applied::Done).ok()?;
                    if !settled.rejected.is_empty() {
                        return None;
                    }
                }
                let new = new.map(|r| Served {
                    resource: Arc::new(r),
                    selector: cluster.selector.clone(),
                });
                replacements.insert(key, new);
            }
        }
        Some(replacements)
    }
}

/// The node snapshots of `current` with the replacements made; a group whose snapshot
/// cannot be patched (the node does not get the cluster, or refused one of the
/// resources) is left out, to be computed in full when a node asks.
fn patch_groups(
    current: &Catalog,
    replacements: &Replacements,
) -> HashMap<Vec<bool>, Arc<NodeSnapshot>> {
    let groups = current.groups.lock().unwrap_or_else(|e| e.into_inner());
    let mut patched = HashMap::new();
    'groups: for (group, snapshot) in groups.iter() {
        if snapshot
            .rejected
            .iter()
            .any(|r| replacements.contains_key(&r.resource.key))
        {
            continue;
        }
        let mut resources = snapshot.resources.clone();
        let (mut changed, mut removed) = (Vec::new(), Vec::new());
        for (key, new) in replacements {
            let cluster_key = Key::new(Kind::Cluster, key.name.clone());
            let Some(cluster) = current.served(&cluster_key) else {
                continue 'groups;
            };
            let Ok(selector) = current.selectors.binary_search(&cluster.selector) else {
                continue 'groups;
            };
            if !group[selector] {
                continue;
            }
            if !resources.contains_key(&cluster_key) {
                continue 'groups;
            }
            match new {
                Some(new) => {
                    resources.insert(key.clone(), new.resource.clone());
                    changed.push(key.clone());
                }
                None => {
                    if resources.remove(key).is_some() {
                        removed.push(key.clone());
                    }
                }
            }
        }
        let version = resource::snapshot_version(resources.values().map(|r| &**r));
        let delta = Delta {
            from_version: snapshot.version.clone(),
            changed,
            removed,
        };
        let node = NodeSnapshot {
            version,
            resources,
            rejected: snapshot.rejected.clone(),
            delta: Some(delta),
            encoded: Default::default(),
        };
        patched.insert(group.clone(), Arc::new(node));
    }
    patched
}

#[cfg(test)]
mod tests;
