//! Fragment files (the control plane's directory): YAML holding any of `listeners`,
//! `route_tables`, `clusters`, and optionally `node_selector`, cut into resources.
//!
//! Only the shape needed to cut is checked here (each listener and cluster is a mapping
//! with a `name`, route tables are a mapping); everything else is validated when the
//! resources are assembled, with the same code as a whole file.

use std::collections::BTreeMap;

use super::{Key, Kind, Resource, Source, wire};
use crate::diagnostic::{Diagnostic, Diagnostics, Pos, Sink};
use crate::env::{self, ColumnMap};
use crate::path;
use crate::suggest;
use crate::yaml::{self, Node};

/// The top-level fields a fragment may hold.
pub const FRAGMENT_FIELDS: &[&str] = &[
    "version",
    "node_selector",
    "listeners",
    "route_tables",
    "clusters",
];

/// Fields of a whole config that belong in each proxy's own file.
const PROXY_ONLY_FIELDS: &[&str] = &[
    "node",
    "runtime",
    "admin",
    "control_plane",
    "identity",
    "authorization",
    "mesh",
    "tracing",
    "access_log",
];

/// One fragment file cut into resources.
#[derive(Clone, Debug, Default)]
pub struct Fragment {
    /// `node_selector`: the labels a node must have to get these resources (empty: all).
    pub selector: BTreeMap<String, String>,
    pub resources: Vec<Resource>,
}

/// Substitutes `${VAR}` (from `env`), parses `text` and cuts it into resources, each
/// with its position in `file_name`.
///
/// # Errors
/// Every problem that keeps the file from being cut: YAML syntax, unknown or proxy-only
/// top-level fields, entries without a name, a malformed `node_selector`.
pub fn parse_fragment(
    file_name: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Fragment, Diagnostics> {
    let (substituted, columns, env_problems) = env::substitute(text, env);
    let mut sink = Sink::default();
    for (pos, message) in env_problems {
        sink.push(columns.original(pos), "", message);
    }
    let mut fragment = Fragment::default();
    match yaml::parse(&substituted) {
        Err((pos, message)) => sink.push(columns.original(pos), "", message),
        Ok((None, _)) => {}
        Ok((Some(mut root), problems)) => {
            for (pos, path, message) in problems {
                sink.push(columns.original(pos), &path, message);
            }
            restore_positions(&mut root, &columns);
            cut(file_name, &root, &mut fragment, &mut sink);
        }
    }
    if sink.is_empty() {
        Ok(fragment)
    } else {
        Err(Diagnostics::new(sink.into_vec(file_name)))
    }
}

/// Moves every position from the substituted text back to the file.
fn restore_positions(node: &mut Node, columns: &ColumnMap) {
    node.pos = columns.original(node.pos);
    match &mut node.kind {
        yaml::Kind::Scalar(_) => {}
        yaml::Kind::Seq(items) => items.iter_mut().for_each(|n| restore_positions(n, columns)),
        yaml::Kind::Map(entries) => {
            for e in entries {
                restore_positions(&mut e.key, columns);
                restore_positions(&mut e.value, columns);
            }
        }
    }
}

fn cut(file: &str, root: &Node, out: &mut Fragment, sink: &mut Sink) {
    let yaml::Kind::Map(entries) = &root.kind else {
        sink.push(
            root.pos,
            "",
            format!(
                "expected a mapping of {}, got {}",
                FRAGMENT_FIELDS[2..].join(", "),
                root.describe()
            ),
        );
        return;
    };
    for entry in entries {
        let Some(key) = entry.key.text() else {
            sink.push(entry.key.pos, "", "expected a field name");
            continue;
        };
        let value = &entry.value;
        match key {
            "version" => {
                if value.text() != Some("1") {
                    sink.push(value.pos, "version", format!("{} is not supported (this meshwork reads version 1)", value.describe()));
                }
            }
            "node_selector" => out.selector = selector(value, sink),
            "listeners" | "clusters" => {
                let kind = if key == "listeners" { Kind::Listener } else { Kind::Cluster };
                for_items(key, value, sink, |i, item, sink| {
                    let path = path::index(key, i);
                    match name_of(item) {
                        Some(name) => out.resources.push(resource(kind, name, item, item.pos, file, path)),
                        None => sink.push(item.pos, &path, format!("a fragment's {} need a `name`", key)),
                    }
                });
            }
            "route_tables" => match &value.kind {
                yaml::Kind::Map(tables) => {
                    for t in tables {
                        let Some(name) = t.key.text().filter(|n| !n.trim().is_empty()) else {
                            sink.push(t.key.pos, key, "a route table name cannot be empty");
                            continue;
                        };
                        let path = path::field(key, name);
                        out.resources.push(resource(Kind::RouteTable, name, &t.value, t.key.pos, file, path));
                    }
                }
                _ if value.is_null() => {}
                _ => sink.push(value.pos, key, format!("expected a mapping of route table names to routes, got {}", value.describe())),
            },
            other if PROXY_ONLY_FIELDS.contains(&other) => sink.push(
                entry.key.pos,
                other,
                format!("{other:?} belongs in each proxy's own file, not in the control plane's directory (fragments hold listeners, route_tables and clusters)"),
            ),
            other => sink.push(entry.key.pos, other, suggest::unknown("field", other, FRAGMENT_FIELDS)),
        }
    }
}

fn for_items(
    key: &str,
    value: &Node,
    sink: &mut Sink,
    mut each: impl FnMut(usize, &Node, &mut Sink),
) {
    match &value.kind {
        yaml::Kind::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                each(i, item, sink);
            }
        }
        _ if value.is_null() => {}
        _ => sink.push(
            value.pos,
            key,
            format!("expected a list, got {}", value.describe()),
        ),
    }
}

/// The `name` of a mapping, when it is a non-empty scalar.
fn name_of(item: &Node) -> Option<&str> {
    let yaml::Kind::Map(entries) = &item.kind else {
        return None;
    };
    entries
        .iter()
        .find(|e| e.key.text() == Some("name"))
        .and_then(|e| e.value.text())
        .filter(|n| !n.trim().is_empty())
}

fn selector(value: &Node, sink: &mut Sink) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match &value.kind {
        yaml::Kind::Map(entries) => {
            for e in entries {
                match (e.key.text(), e.value.text()) {
                    (Some(k), Some(v)) => {
                        out.insert(k.to_string(), v.to_string());
                    }
                    (k, _) => sink.push(
                        e.value.pos,
                        &path::field("node_selector", k.unwrap_or("?")),
                        format!("a label value must be text, got {}", e.value.describe()),
                    ),
                }
            }
        }
        _ if value.is_null() => {}
        _ => sink.push(
            value.pos,
            "node_selector",
            format!(
                "expected a mapping of label names to values (e.g. {{ app: web }}), got {}",
                value.describe()
            ),
        ),
    }
    out
}

fn resource(kind: Kind, name: &str, body: &Node, at: Pos, file: &str, path: String) -> Resource {
    let source = Source {
        file: file.to_string(),
        line: at.line,
        column: at.column,
        path,
    };
    Resource::new(Key::new(kind, name), wire::encode(body), source)
}

/// A diagnostic in a fragment that is not about one resource (used by the control plane
/// for "defined twice" errors).
pub fn duplicate(first: &Resource, second: &Resource) -> Diagnostic {
    Diagnostic::new(
        second.source.file.clone(),
        Pos::new(second.source.line, second.source.column),
        second.source.path.clone(),
        format!(
            "{} is defined twice: here and at {} ({})",
            second.key, first.source, first.source.path
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Fragment, Diagnostics> {
        parse_fragment("f.yaml", text, &|name| {
            (name == "PORT").then(|| "9001".to_string())
        })
    }

    #[test]
    fn a_fragment_is_cut_into_resources_with_their_positions() {
        let fragment = parse(
            "node_selector: { app: web }\nclusters:\n  - name: api\n    endpoints: [\"127.0.0.1:${PORT}\"]\nroute_tables:\n  edge:\n    - backends: [{ cluster: api }]\nlisteners: []\n",
        )
        .expect("parses");
        assert_eq!(
            fragment.selector.get("app").map(String::as_str),
            Some("web")
        );
        let keys: Vec<String> = fragment
            .resources
            .iter()
            .map(|r| r.key.to_string())
            .collect();
        assert_eq!(keys, vec![r#"cluster "api""#, r#"route_table "edge""#]);
        let api = &fragment.resources[0];
        assert_eq!((api.source.line, api.source.column), (3, 5));
        assert_eq!(api.source.path, "clusters[0]");
        assert!(api.body.contains("127.0.0.1:9001"), "{}", api.body);
        let edge = &fragment.resources[1];
        assert_eq!(
            (edge.source.line, edge.source.path.as_str()),
            (6, "route_tables.edge")
        );
    }

    #[test]
    fn proxy_only_and_unknown_fields_are_refused() {
        let err = parse(
            "admin: { address: 127.0.0.1:1 }\nclustres: []\nlisteners:\n  - address: 1.2.3.4:5\n",
        )
        .expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains("f.yaml:1:1: admin: \"admin\" belongs in each proxy's own file"),
            "{text}"
        );
        assert!(
            text.contains(
                "f.yaml:2:1: clustres: unknown field \"clustres\", did you mean \"clusters\"?"
            ),
            "{text}"
        );
        assert!(
            text.contains("f.yaml:4:5: listeners[0]: a fragment's listeners need a `name`"),
            "{text}"
        );
    }

    #[test]
    fn syntax_errors_name_the_file() {
        let err = parse("clusters: [\n").expect_err("refused");
        assert!(err.to_string().starts_with("f.yaml:"), "{err}");
    }

    #[test]
    fn an_empty_file_is_an_empty_fragment() {
        assert!(
            parse("# nothing yet\n")
                .expect("parses")
                .resources
                .is_empty()
        );
    }
}
