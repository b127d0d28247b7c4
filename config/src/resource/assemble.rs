//! Putting resources back together over a proxy's own file, validating the result with
//! the same code as a whole file, and finding which resources to leave out when it fails.
//!
//! Each resource's positions are moved to a band of lines of its own while the whole is
//! validated (resource `i` gets lines `(i + 1) * LINE_BAND + line`), so every diagnostic
//! says which resource it is about; it is then moved back to the resource's own file,
//! line and field path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Key, Kind, Resource, wire};
use crate::diagnostic::{Diagnostic, Diagnostics, Pos, Sink};
use crate::env;
use crate::load;
use crate::model::Config;
use crate::path;
use crate::unsupported;
use crate::yaml::{self, Entry, Node};

/// Lines per resource while validating (a file longer than this is not a config file).
const LINE_BAND: usize = 100_000_000;

/// The sections that resources replace.
const RESOURCE_SECTIONS: &[&str] = &["listeners", "route_tables", "clusters"];

/// A proxy's own file: everything but listeners, route tables and clusters comes from it
/// when resources are assembled (those three sections of it are replaced).
#[derive(Clone, Debug)]
pub struct Bootstrap {
    file: String,
    text: String,
    base_dir: PathBuf,
}

impl Bootstrap {
    /// `text` read from `file`; relative paths (in it and in resources) resolve against
    /// `base_dir`.
    pub fn new(file: impl Into<String>, text: impl Into<String>, base_dir: &Path) -> Self {
        Bootstrap {
            file: file.into(),
            text: text.into(),
            base_dir: base_dir.to_path_buf(),
        }
    }

    /// No file of its own: `version: 1` (the control plane validates resources over this).
    pub fn empty(base_dir: &Path) -> Self {
        Bootstrap::new("(none)", "version: 1\n", base_dir)
    }
}

/// A resource left out, why, and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub resource: Resource,
    /// One line per problem, `file:line:col: field.path: message`.
    pub error: String,
}

/// What an `apply` step says about a config assembled from resources.
#[derive(Debug)]
pub enum Applied<T> {
    /// Applied.
    Done(T),
    /// These resources cannot be applied (e.g. a listener's port is in use): leave them
    /// out and try again.
    Reject(Vec<(Key, String)>),
    /// Nothing can be applied, for a reason not tied to a resource.
    Fail(String),
}

/// The outcome of [`settle`]: what `apply` returned, the resources it was given, and the
/// resources left out (each offered resource at most once).
#[derive(Debug)]
pub struct Settled<T> {
    pub value: T,
    pub applied: Vec<Resource>,
    pub rejected: Vec<Rejection>,
}

/// Assembles `offered` over `bootstrap` and hands the config to `apply`; every resource
/// that makes validation or `apply` fail is replaced by its `previous` version (when
/// there is one and it differs) or left out, and the rest is tried again. So one invalid
/// resource does not block the others, unless they refer to it (then they fail too).
///
/// # Errors
/// Problems not tied to any resource (in the bootstrap file itself, or `apply`'s `Fail`),
/// one per line.
pub fn settle<T>(
    bootstrap: &Bootstrap,
    offered: Vec<Resource>,
    previous: &dyn Fn(&Key) -> Option<Resource>,
    env: &dyn Fn(&str) -> Option<String>,
    apply: &mut dyn FnMut(Config) -> Applied<T>,
) -> Result<Settled<T>, String> {
    let mut set = offered;
    let mut rejected: Vec<Rejection> = Vec::new();
    let mut fell_back: Vec<Key> = Vec::new();
    // Each round removes or replaces at least one resource, each at most twice.
    for _ in 0..=2 * set.len() + 1 {
        let problems: Vec<(usize, String)> = match assemble(bootstrap, &set, env) {
            Err(Problems { other, .. }) if !other.is_empty() => {
                return Err(Diagnostics::new(other).to_string());
            }
            Err(Problems { by_resource, .. }) => by_resource
                .into_iter()
                .map(|(i, list)| (i, Diagnostics::new(list).to_string()))
                .collect(),
            Ok(config) => match apply(config) {
                Applied::Done(value) => {
                    return Ok(Settled {
                        value,
                        applied: set,
                        rejected,
                    });
                }
                Applied::Fail(error) => return Err(error),
                Applied::Reject(keys) => {
                    let mut found = Vec::new();
                    for (key, error) in keys {
                        match set.iter().position(|r| r.key == key) {
                            Some(i) => found.push((i, error)),
                            None => return Err(error),
                        }
                    }
                    found
                }
            },
        };
        let mut removed = Vec::new();
        for (i, error) in problems {
            let resource = set[i].clone();
            if !rejected.iter().any(|r| r.resource.key == resource.key) {
                rejected.push(Rejection {
                    resource: resource.clone(),
                    error,
                });
            }
            let fallback = previous(&resource.key)
                .filter(|p| p.version != resource.version && !fell_back.contains(&resource.key));
            match fallback {
                Some(p) => {
                    fell_back.push(resource.key.clone());
                    set[i] = p;
                }
                None => removed.push(i),
            }
        }
        let mut i = 0;
        set.retain(|_| {
            i += 1;
            !removed.contains(&(i - 1))
        });
    }
    Err("the resources could not be settled (a resource kept failing after every retry)".into())
}

/// Why an assembly failed: problems by resource index, and problems in the bootstrap.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    pub by_resource: BTreeMap<usize, Vec<Diagnostic>>,
    pub other: Vec<Diagnostic>,
}

/// Builds one config from `bootstrap` (minus its listeners, route tables and clusters)
/// and `resources`, and validates it.
pub(crate) fn assemble(
    bootstrap: &Bootstrap,
    resources: &[Resource],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Problems> {
    let mut problems = Problems::default();
    let (substituted, columns, env_problems) = env::substitute(&bootstrap.text, env);
    let to_bootstrap = |pos: Pos, path: &str, message: String| {
        Diagnostic::new(bootstrap.file.clone(), columns.original(pos), path, message)
    };
    for (pos, message) in env_problems {
        problems.other.push(to_bootstrap(pos, "", message));
    }
    let root = match yaml::parse(&substituted) {
        Ok((Some(root), _)) => root,
        Ok((None, _)) => Node {
            pos: Pos::new(1, 1),
            kind: yaml::Kind::Map(Vec::new()),
        },
        Err((pos, message)) => {
            problems.other.push(to_bootstrap(pos, "", message));
            return Err(problems);
        }
    };
    if !problems.other.is_empty() {
        return Err(problems);
    }
    let yaml::Kind::Map(entries) = root.kind else {
        problems
            .other
            .push(to_bootstrap(root.pos, "", "expected a mapping".into()));
        return Err(problems);
    };
    let mut entries: Vec<Entry> = entries
        .into_iter()
        .filter(|e| !e.key.text().is_some_and(|k| RESOURCE_SECTIONS.contains(&k)))
        .collect();

    let (sections, prefixes) = build_sections(resources, &mut problems);
    if !problems.by_resource.is_empty() {
        return Err(problems);
    }
    entries.extend(sections);
    let root = Node {
        pos: root.pos,
        kind: yaml::Kind::Map(entries),
    };

    let mut sink = Sink::default();
    let config = load::check(
        &root,
        &bootstrap.base_dir,
        unsupported::NOT_SUPPORTED_YET,
        false,
        &mut sink,
    );
    for d in sink.into_vec("") {
        let band = d.line / LINE_BAND;
        match band
            .checked_sub(1)
            .and_then(|i| resources.get(i).map(|r| (i, r)))
        {
            Some((i, resource)) => {
                let path = match d.path.strip_prefix(prefixes[i].as_str()) {
                    Some(rest) => format!("{}{rest}", resource.source.path),
                    None => d.path.clone(),
                };
                let pos = Pos::new(d.line % LINE_BAND, d.column);
                let moved = Diagnostic::new(resource.source.file.clone(), pos, path, d.message);
                problems.by_resource.entry(i).or_default().push(moved);
            }
            None => problems
                .other
                .push(to_bootstrap(d.pos(), &d.path, d.message)),
        }
    }
    match config {
        Some(config) if problems.by_resource.is_empty() && problems.other.is_empty() => Ok(config),
        _ => Err(problems),
    }
}

/// The `listeners`, `route_tables` and `clusters` entries built from `resources`, and
/// each resource's field path in the assembled document.
fn build_sections(resources: &[Resource], problems: &mut Problems) -> (Vec<Entry>, Vec<String>) {
    let mut listeners = Vec::new();
    let mut tables = Vec::new();
    let mut clusters: Vec<Node> = Vec::new();
    let mut cluster_index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut prefixes = vec![String::new(); resources.len()];
    let mut endpoints = Vec::new();
    let fail = |problems: &mut Problems, i: usize, r: &Resource, message: String| {
        let at = Pos::new(r.source.line, r.source.column);
        let d = Diagnostic::new(r.source.file.clone(), at, r.source.path.clone(), message);
        problems.by_resource.entry(i).or_default().push(d);
    };
    for (i, r) in resources.iter().enumerate() {
        let mut body = match wire::decode(&r.body) {
            Ok(body) => body,
            Err(message) => {
                fail(problems, i, r, message);
                continue;
            }
        };
        shift(&mut body, (i + 1) * LINE_BAND);
        match r.key.kind {
            Kind::Listener => {
                prefixes[i] = path::index("listeners", listeners.len());
                listeners.push(body);
            }
            Kind::Cluster => {
                prefixes[i] = path::index("clusters", clusters.len());
                cluster_index.insert(r.key.name.as_str(), clusters.len());
                clusters.push(body);
            }
            Kind::RouteTable => {
                prefixes[i] = path::field("route_tables", &r.key.name);
                let key_pos = Pos::new((i + 1) * LINE_BAND + r.source.line, r.source.column);
                tables.push(Entry {
                    key: scalar(key_pos, &r.key.name),
                    value: body,
                });
            }
            Kind::Endpoints => endpoints.push((i, r, body)),
        }
    }
    // Resolved endpoints take the place of their cluster's `discovery`.
    for (i, r, body) in endpoints {
        let target = cluster_index.get(r.key.name.as_str()).copied();
        let discovery = target.and_then(|c| match &mut clusters[c].kind {
            yaml::Kind::Map(entries) => entries
                .iter_mut()
                .find(|e| e.key.text() == Some("discovery"))
                .map(|e| (c, e)),
            _ => None,
        });
        match discovery {
            Some((c, entry)) => {
                prefixes[i] = path::field(&path::index("clusters", c), "endpoints");
                entry.key = scalar(entry.key.pos, "endpoints");
                entry.value = body;
            }
            None => fail(
                problems,
                i,
                r,
                format!(
                    "resolved endpoints for {:?}, which is not a cluster with `discovery`",
                    r.key.name
                ),
            ),
        }
    }
    let section = |name: &str, kind: yaml::Kind| Entry {
        key: scalar(Pos::default(), name),
        value: Node {
            pos: Pos::default(),
            kind,
        },
    };
    let entries = vec![
        section("listeners", yaml::Kind::Seq(listeners)),
        section("route_tables", yaml::Kind::Map(tables)),
        section("clusters", yaml::Kind::Seq(clusters)),
    ];
    (entries, prefixes)
}

fn scalar(pos: Pos, text: &str) -> Node {
    Node {
        pos,
        kind: yaml::Kind::Scalar(yaml::Scalar {
            text: text.to_string(),
            value: yaml::Value::Str,
        }),
    }
}

fn shift(node: &mut Node, lines: usize) {
    node.pos.line += lines;
    match &mut node.kind {
        yaml::Kind::Scalar(_) => {}
        yaml::Kind::Seq(items) => items.iter_mut().for_each(|n| shift(n, lines)),
        yaml::Kind::Map(entries) => {
            for e in entries {
                shift(&mut e.key, lines);
                shift(&mut e.value, lines);
            }
        }
    }
}
