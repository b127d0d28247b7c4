//! Fields the format accepts but the proxy does not run yet: the one table to edit.
//!
//! Every field here is fully parsed and validated into the model; this pass only refuses
//! files that use it, so nobody believes a retry policy protects them when it does not.
//! When a feature lands, delete its line (and its test fixture in
//! `tests/fixtures/invalid/unsupported_*.yaml`).

use crate::diagnostic::{Pos, Sink};
use crate::path;
use crate::yaml::{Kind, Node};

/// When a field counts as used.
#[derive(Clone, Copy, Debug)]
pub(crate) enum When {
    /// Present (and not null). (No refusal uses it now; kept for the next.)
    #[cfg_attr(not(test), allow(dead_code))]
    Present,
    /// Its value (as text) is this. (No refusal uses it now; kept for the next.)
    #[cfg_attr(not(test), allow(dead_code))]
    Is(&'static str),
}

/// One refusal: the field (`[]` = every list item, `*` = every map key), when it counts
/// as used, and the issue that will build it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NotYet {
    pub field: &'static str,
    pub when: When,
    pub issue: u32,
}

/// What the proxy cannot do yet. Delete a line when its feature lands. (Empty: every
/// field of the format runs; the mechanism stays for the next one.)
#[rustfmt::skip]
pub(crate) const NOT_SUPPORTED_YET: &[NotYet] = &[
];

/// Fields only the control plane serves: `meshwork-control` resolves `discovery` into
/// endpoints; a proxy reading a file itself does not.
const CONTROL_PLANE_ONLY: &[&str] = &["clusters[].discovery"];

/// Refuses the [`CONTROL_PLANE_ONLY`] fields in a file a proxy reads itself.
pub(crate) fn check_control_plane_only(root: &Node, sink: &mut Sink) {
    for field in CONTROL_PLANE_ONLY {
        find(root, &split(field), String::new(), None, &mut |found| {
            if !found.value.is_null() && !sink.has_at(found.key_pos) {
                sink.push(
                    found.key_pos,
                    &found.path,
                    "is resolved by meshwork-control: serve this cluster from the control plane's \
                     directory (a proxy reading this file itself does not resolve DNS)",
                );
            }
        });
    }
}

/// Reports every use of a field in `table` found in the document.
pub(crate) fn check(root: &Node, table: &[NotYet], sink: &mut Sink) {
    for entry in table {
        let segments = split(entry.field);
        find(root, &segments, String::new(), None, &mut |found| {
            report(entry, found, sink);
        });
    }
}

/// A field found in the document: its key's position, its value, its path.
struct Found<'a> {
    key_pos: Pos,
    value: &'a Node,
    path: String,
}

fn report(entry: &NotYet, found: Found<'_>, sink: &mut Sink) {
    let issue = entry.issue;
    match entry.when {
        When::Present if !found.value.is_null() => {
            sink.push(
                found.key_pos,
                &found.path,
                format!("not supported yet (see issue #{issue})"),
            );
        }
        When::Is(v) if found.value.text() == Some(v) => {
            sink.push(
                found.value.pos,
                &found.path,
                format!("{v:?} is not supported yet (see issue #{issue})"),
            );
        }
        _ => {}
    }
}

/// `clusters[].endpoints[].weight` -> `clusters`, `[]`, `endpoints`, `[]`, `weight`.
fn split(field: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for part in field.split('.') {
        match part.strip_suffix("[]") {
            Some(name) => {
                out.push(name);
                out.push("[]");
            }
            None => out.push(part),
        }
    }
    out
}

fn find<'a>(
    node: &'a Node,
    segments: &[&str],
    path: String,
    key_pos: Option<Pos>,
    on: &mut dyn FnMut(Found<'a>),
) {
    let Some((first, rest)) = segments.split_first() else {
        on(Found {
            key_pos: key_pos.unwrap_or(node.pos),
            value: node,
            path,
        });
        return;
    };
    match (&node.kind, *first) {
        (Kind::Seq(items), "[]") => {
            for (i, item) in items.iter().enumerate() {
                find(item, rest, path::index(&path, i), Some(item.pos), on);
            }
        }
        (Kind::Map(entries), key) => {
            for e in entries {
                let Some(k) = e.key.text() else { continue };
                if key == "*" || k == key {
                    find(&e.value, rest, path::field(&path, k), Some(e.key.pos), on);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refusal of a present field, to check the mechanism (the real table may be empty).
    const PRESENT: &[NotYet] = &[NotYet {
        field: "clusters[].tls",
        when: When::Present,
        issue: 9,
    }];

    fn messages(yaml: &str) -> Vec<String> {
        let (root, _) = crate::yaml::parse(yaml).expect("yaml");
        let mut sink = Sink::default();
        check(&root.expect("doc"), PRESENT, &mut sink);
        let mut all: Vec<String> = sink
            .into_vec("f.yaml")
            .iter()
            .map(ToString::to_string)
            .collect();
        all.sort();
        all
    }

    #[test]
    fn present_fields_are_refused_at_their_key() {
        assert_eq!(
            messages("clusters:\n  - name: a\n    tls: { ca: ca.pem }\n  - name: b\n"),
            vec!["f.yaml:3:5: clusters[0].tls: not supported yet (see issue #9)"]
        );
    }

    #[test]
    fn discovery_is_refused_in_a_file_the_proxy_reads_itself() {
        let (root, _) =
            crate::yaml::parse("clusters:\n  - name: a\n    discovery: {dns: \"a:1\"}\n")
                .expect("yaml");
        let mut sink = Sink::default();
        check_control_plane_only(&root.expect("doc"), &mut sink);
        let all: Vec<String> = sink
            .into_vec("f.yaml")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(all.len(), 1);
        assert!(
            all[0]
                .starts_with("f.yaml:3:5: clusters[0].discovery: is resolved by meshwork-control"),
            "{all:?}"
        );
    }

    #[test]
    fn refused_values_are_reported_at_the_value() {
        // No refusal of a value is in the table now: check the mechanism with one.
        let table = [NotYet {
            field: "clusters[].protocol",
            when: When::Is("auto"),
            issue: 7,
        }];
        let yaml = "clusters:\n  - protocol: http2\n  - protocol: auto\n";
        let (root, _) = crate::yaml::parse(yaml).expect("yaml");
        let mut sink = Sink::default();
        check(&root.expect("doc"), &table, &mut sink);
        let all: Vec<String> = sink
            .into_vec("f.yaml")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            all,
            vec![
                r#"f.yaml:3:15: clusters[1].protocol: "auto" is not supported yet (see issue #7)"#
            ]
        );
    }

    #[test]
    fn absent_and_null_fields_pass() {
        assert!(messages("tracing:\nclusters:\n  - name: a\n    tls:\n  - name: b\n").is_empty());
    }
}
