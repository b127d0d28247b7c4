//! The catalog: the directory's fragment files merged into resources, each validated on
//! its own, with the last good version of every resource kept through invalid changes.
//!
//! Reading is deterministic in the files (and DNS answers): replicas reading the same
//! directory serve the same resources at the same content versions. What a replica
//! remembers is only the last good version of what it read itself, so a replica started
//! while a file is broken serves that file's resources only once it is fixed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshwork_config::model::{Address, Discovery};
use meshwork_config::resource::{
    self, Applied, Bootstrap, Key, Kind, Rejection, Resource, parse_fragment, selector_matches,
    settle,
};
use meshwork_config::units::ServicePort;
use serde::Serialize;

use crate::kubernetes::Discovered;

mod incremental;

pub use incremental::Delta;

/// Labels a node must have to get a resource (its file's `node_selector`; empty: all).
pub type Selector = BTreeMap<String, String>;

/// A resource the catalog serves, with the selector of the file it came from.
#[derive(Clone, Debug)]
pub struct Served {
    /// Shared by every catalog and node snapshot holding this version (an endpoint
    /// change then copies pointers, not every body).
    pub resource: Arc<Resource>,
    pub selector: Selector,
}

/// Something wrong in the directory, as `/status` shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// The file, relative to the directory.
    pub file: String,
    /// The resource (`cluster "api"`), when the problem is about one; else the whole
    /// file was refused (its resources keep their last good versions).
    pub resource: Option<String>,
    /// One line per error, `file:line:col: field.path: message`.
    pub error: String,
}

/// A cluster whose endpoints come from DNS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryTarget {
    pub cluster: String,
    pub dns: Address,
    pub refresh: Duration,
}

/// What a node is served: the resources its labels select, checked together.
#[derive(Debug)]
pub struct NodeSnapshot {
    /// Content hash of the resources' versions.
    pub version: String,
    pub resources: BTreeMap<Key, Arc<Resource>>,
    /// Resources left out for this node (e.g. they refer to one its labels do not select).
    pub rejected: Vec<Rejection>,
    /// What changed since the snapshot this one was patched from (endpoint changes);
    /// `None` when it was computed in full.
    pub delta: Option<Delta>,
    /// Wire encodings of `resources` and of what `delta` names, made once by the first
    /// stream that sends them and shared by every stream of the group (see
    /// `server::encoded`).
    pub encoded: crate::server::EncodedCache,
}

/// One reading of the directory.
#[derive(Debug)]
pub struct Catalog {
    /// Bumped whenever the served resources change.
    pub generation: u64,
    /// Content hash of every served resource's version.
    pub version: String,
    pub served: Vec<Served>,
    pub problems: Vec<Problem>,
    pub discovery: Vec<DiscoveryTarget>,
    /// Node snapshots by which selectors a node matches (computed once per group).
    groups: Mutex<HashMap<Vec<bool>, Arc<NodeSnapshot>>>,
    base_dir: PathBuf,
    /// The served resources' selectors, sorted, without duplicates: a node's group is
    /// which of them it matches.
    selectors: Vec<Selector>,
    /// The clusters offered (served or refused) taking each Service port's endpoints
    /// (`discovery.kubernetes`).
    discovering: BTreeMap<ServicePort, Vec<Key>>,
    /// Resources refused by this reading (invalid, defined twice): an endpoint change
    /// touching one is decided by a full reading.
    refused: HashSet<Key>,
}

impl Catalog {
    /// The snapshot for a node with `labels`.
    pub fn for_node(&self, labels: &BTreeMap<String, String>) -> Arc<NodeSnapshot> {
        let group: Vec<bool> = self
            .selectors
            .iter()
            .map(|s| selector_matches(s, labels))
            .collect();
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(snapshot) = groups.get(&group) {
            return snapshot.clone();
        }
        let offered: Vec<Arc<Resource>> = self
            .served
            .iter()
            .filter(|s| selector_matches(&s.selector, labels))
            .map(|s| s.resource.clone())
            .collect();
        let snapshot = Arc::new(node_snapshot(&self.base_dir, offered));
        groups.insert(group, snapshot.clone());
        snapshot
    }

    /// Whether any file or resource in the directory is refused.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// The served resource of `key`.
    pub fn served(&self, key: &Key) -> Option<&Served> {
        self.served
            .binary_search_by(|s| s.resource.key.cmp(key))
            .ok()
            .map(|i| &self.served[i])
    }

    /// Resources served, by kind.
    pub fn count(&self, kind: Kind) -> usize {
        self.served
            .iter()
            .filter(|s| s.resource.key.kind == kind)
            .count()
    }
}

/// Checks `offered` together. The snapshot holds the catalog's own allocation of every
/// resource applied as offered (all of them, unless checking changed one): a copy per
/// node group would double the catalog's memory (bodies are most of it at scale).
fn node_snapshot(base_dir: &Path, offered: Vec<Arc<Resource>>) -> NodeSnapshot {
    let bootstrap = Bootstrap::empty(base_dir);
    let no_env = |_: &str| None;
    let settled = settle(
        &bootstrap,
        offered.iter().map(|r| (**r).clone()).collect(),
        &|_| None,
        &no_env,
        &mut Applied::Done,
    );
    let (applied, rejected) = match settled {
        Ok(s) => (s.applied, s.rejected),
        // Not reachable with an empty bootstrap; serve nothing rather than half a set.
        Err(error) => {
            tracing::error!(%error, "cannot check a node's resources together");
            (Vec::new(), Vec::new())
        }
    };
    NodeSnapshot {
        version: resource::snapshot_version(&applied),
        resources: applied
            .into_iter()
            .map(|r| {
                let shared = offered
                    .binary_search_by(|o| o.key.cmp(&r.key))
                    .ok()
                    .map(|i| &offered[i])
                    .filter(|o| o.version == r.version);
                let r = shared.map_or_else(|| Arc::new(r), Arc::clone);
                (r.key.clone(), r)
            })
            .collect(),
        rejected,
        delta: None,
        encoded: Default::default(),
    }
}

/// Reads the directory again and again, remembering what was good.
#[derive(Debug)]
pub struct Reader {
    dir: PathBuf,
    env: fn(&str) -> Option<String>,
    last_good: BTreeMap<Key, Served>,
    generation: u64,
    version: String,
}

/// Fragment files: `*.yaml` and `*.yml`, not hidden (Kubernetes keeps ConfigMap data in
/// `..data` directories and links the visible names to it).
fn is_fragment(name: &str) -> bool {
    !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

impl Reader {
    pub fn new(dir: PathBuf) -> Self {
        Reader {
            dir,
            env: |name| std::env::var(name).ok(),
            last_good: BTreeMap::new(),
            generation: 0,
            version: String::new(),
        }
    }

    /// Reads every fragment file, merges and validates; `dns` holds the last answers for
    /// discovery clusters (by cluster name).
    ///
    /// # Errors
    /// When the directory itself cannot be listed.
    pub fn read(&mut self, dns: &BTreeMap<String, Vec<SocketAddr>>) -> std::io::Result<Catalog> {
        self.read_with(dns, None)
    }

    /// As [`Reader::read`], with what the Kubernetes watches found (`--kubernetes`): a
    /// cluster per Service port the files do not define themselves, and the endpoints of
    /// every cluster whose `discovery.kubernetes` names a port.
    ///
    /// # Errors
    /// When the directory itself cannot be listed.
    pub fn read_with(
        &mut self,
        dns: &BTreeMap<String, Vec<SocketAddr>>,
        kubernetes: Option<&Discovered>,
    ) -> std::io::Result<Catalog> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)?
            .filter_map(Result::ok)
            .filter(|e| e.path().is_file())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| is_fragment(n))
            .collect();
        names.sort();
        let mut problems = Vec::new();
        let mut offered: Vec<Served> = Vec::new();
        for name in &names {
            let text = match std::fs::read_to_string(self.dir.join(name)) {
                Ok(text) => text,
                Err(error) => {
                    problems.push(Problem {
                        file: name.clone(),
                        resource: None,
                        error: format!("{name}:0:0: cannot read the file: {error}"),
                    });
                    offered.extend(self.last_good_of(name));
                    continue;
                }
            };
            match parse_fragment(name, &text, &self.env) {
                Ok(fragment) => offered.extend(fragment.resources.into_iter().map(|r| Served {
                    resource: Arc::new(r),
                    selector: fragment.selector.clone(),
                })),
                Err(diagnostics) => {
                    problems.push(Problem {
                        file: name.clone(),
                        resource: None,
                        error: diagnostics.to_string(),
                    });
                    offered.extend(self.last_good_of(name));
                }
            }
        }
        let mut refused: HashSet<Key> = HashSet::new();
        let offered = self.without_duplicates(offered, &mut problems, &mut refused);
        let offered = with_endpoints(offered, dns);
        let offered = match kubernetes {
            Some(found) => with_kubernetes(offered, found),
            None => offered,
        };
        // Refused ones too: a change of their endpoints changes the problems.
        let discovering = discovering(&offered);

        let selectors: HashMap<Key, Selector> = offered
            .iter()
            .chain(self.last_good.values())
            .map(|s| (s.resource.key.clone(), s.selector.clone()))
            .rev()
            .collect();
        let bootstrap = Bootstrap::empty(&self.dir);
        let last_good = &self.last_good;
        let previous = |key: &Key| last_good.get(key).map(|s| (*s.resource).clone());
        let resources: Vec<Resource> = offered.iter().map(|s| (*s.resource).clone()).collect();
        let settled = settle(
            &bootstrap,
            resources,
            &previous,
            &self.env,
            &mut Applied::Done,
        )
        .map_err(std::io::Error::other)?;
        for r in &settled.rejected {
            refused.insert(r.resource.key.clone());
            problems.push(Problem {
                file: r.resource.source.file.clone(),
                resource: Some(r.resource.key.to_string()),
                error: r.error.clone(),
            });
        }
        let discovery = settled
            .value
            .clusters
            .iter()
            .filter_map(|c| match c.discovery.as_ref()? {
                Discovery::Dns(d) => Some(DiscoveryTarget {
                    cluster: c.name.clone(),
                    dns: d.dns.clone(),
                    refresh: d.refresh,
                }),
                Discovery::Kubernetes { .. } => None,
            })
            .collect();
        let mut served: Vec<Served> = settled
            .applied
            .into_iter()
            .map(|r| Served {
                selector: selectors.get(&r.key).cloned().unwrap_or_default(),
                resource: Arc::new(r),
            })
            .collect();
        served.sort_by(|a, b| a.resource.key.cmp(&b.resource.key));
        let version = resource::snapshot_version(served.iter().map(|s| &*s.resource));
        if version != self.version {
            self.generation += 1;
            self.version = version.clone();
        }
        self.last_good = served
            .iter()
            .map(|s| (s.resource.key.clone(), s.clone()))
            .collect();
        Ok(Catalog {
            generation: self.generation,
            version,
            selectors: selectors_of(&served),
            discovering,
            served,
            problems,
            discovery,
            groups: Mutex::new(HashMap::new()),
            base_dir: self.dir.clone(),
            refused,
        })
    }

    /// The last good resources written in `file` (kept while it is broken).
    fn last_good_of(&self, file: &str) -> Vec<Served> {
        self.last_good
            .values()
            .filter(|s| s.resource.source.file == file && s.resource.key.kind != Kind::Endpoints)
            .cloned()
            .collect()
    }

    /// Every name defined twice is refused (each definition after the first is named in
    /// a problem, with the first); the name keeps its last good version.
    fn without_duplicates(
        &self,
        offered: Vec<Served>,
        problems: &mut Vec<Problem>,
        refused: &mut HashSet<Key>,
    ) -> Vec<Served> {
        let mut by_key: BTreeMap<Key, Vec<Served>> = BTreeMap::new();
        for s in offered {
            by_key.entry(s.resource.key.clone()).or_default().push(s);
        }
        let mut out = Vec::new();
        for (key, mut list) in by_key {
            if list.len() == 1 {
                out.append(&mut list);
                continue;
            }
            refused.insert(key.clone());
            for second in &list[1..] {
                problems.push(Problem {
                    file: second.resource.source.file.clone(),
                    resource: Some(key.to_string()),
                    error: resource::duplicate(&list[0].resource, &second.resource).to_string(),
                });
            }
            out.extend(self.last_good.get(&key).cloned());
        }
        out
    }
}

/// Adds the resolved endpoints of every discovery cluster that has an answer.
fn with_endpoints(
    mut offered: Vec<Served>,
    dns: &BTreeMap<String, Vec<SocketAddr>>,
) -> Vec<Served> {
    let endpoints: Vec<Served> = offered
        .iter()
        .filter(|s| s.resource.key.kind == Kind::Cluster)
        .filter_map(|s| {
            let addresses = dns.get(&s.resource.key.name).filter(|a| !a.is_empty())?;
            Some(Served {
                resource: Arc::new(resource::resolved_endpoints(&s.resource, addresses)?),
                selector: s.selector.clone(),
            })
        })
        .collect();
    offered.extend(endpoints);
    offered
}

/// Adds a cluster for every Service port no file defines a cluster of that name for (a
/// file's cluster of the same name takes its place, with its own settings), then the
/// endpoints of every cluster with `discovery.kubernetes`.
fn with_kubernetes(mut offered: Vec<Served>, found: &Discovered) -> Vec<Served> {
    let written: std::collections::HashSet<String> = offered
        .iter()
        .filter(|s| s.resource.key.kind == Kind::Cluster)
        .map(|s| s.resource.key.name.clone())
        .collect();
    for (port, info) in &found.ports {
        if !written.contains(&port.to_string()) {
            offered.push(Served {
                resource: Arc::new(resource::service_cluster(
                    port,
                    &info.cluster_settings(port.port),
                    info.source.clone(),
                )),
                selector: Selector::new(),
            });
        }
    }
    let endpoints: Vec<Served> = offered
        .iter()
        .filter_map(|s| {
            let port = resource::kubernetes_discovery(&s.resource)?;
            let list = found.endpoints.get(&port).filter(|l| !l.is_empty())?;
            Some(Served {
                resource: Arc::new(resource::discovered_endpoints(&s.resource, list)?),
                selector: s.selector.clone(),
            })
        })
        .collect();
    offered.extend(endpoints);
    offered
}

/// The selectors of `served`, sorted, without duplicates.
fn selectors_of(served: &[Served]) -> Vec<Selector> {
    let mut all: Vec<Selector> = served.iter().map(|s| s.selector.clone()).collect();
    all.sort();
    all.dedup();
    all
}

/// The clusters of `offered` taking each Service port's endpoints.
fn discovering(offered: &[Served]) -> BTreeMap<ServicePort, Vec<Key>> {
    let mut by_port: BTreeMap<ServicePort, Vec<Key>> = BTreeMap::new();
    for s in offered {
        if let Some(port) = resource::kubernetes_discovery(&s.resource) {
            by_port
                .entry(port)
                .or_default()
                .push(s.resource.key.clone());
        }
    }
    by_port
}

#[cfg(test)]
mod tests;
