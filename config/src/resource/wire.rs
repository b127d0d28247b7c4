//! A resource body on the wire: a YAML subtree as JSON, every node keeping its position.
//!
//! Each node is a JSON array `[line, column, shape, ...]`:
//! `[l, c, "=", tag, text]` a scalar (tag `~` null, `b` bool, `i` integer, `f` float,
//! `s` string; `text` as written), `[l, c, "-", [items]]` a list,
//! `[l, c, ":", [[key, value], ...]]` a mapping in the order written. Positions are the
//! ones in the control plane's file, so the proxy's diagnostics point into that file.
//! Written here because the format is ours: a plain JSON rendering would lose positions.

use serde_json::{Value as Json, json};

use crate::diagnostic::Pos;
use crate::yaml::{Entry, Kind, Node, Scalar, Value};

/// Deepest nesting accepted from the wire (the YAML parser keeps at most this deep too).
const MAX_DEPTH: usize = crate::yaml::MAX_DEPTH + 8;

pub(crate) fn encode(node: &Node) -> String {
    to_json(node).to_string()
}

fn to_json(node: &Node) -> Json {
    let (l, c) = (node.pos.line, node.pos.column);
    match &node.kind {
        Kind::Scalar(s) => {
            let tag = match s.value {
                Value::Null => "~",
                Value::Bool(_) => "b",
                Value::Int(_) => "i",
                Value::Float(_) => "f",
                Value::Str => "s",
            };
            json!([l, c, "=", tag, s.text])
        }
        Kind::Seq(items) => json!([l, c, "-", items.iter().map(to_json).collect::<Vec<_>>()]),
        Kind::Map(entries) => json!([
            l,
            c,
            ":",
            entries
                .iter()
                .map(|e| json!([to_json(&e.key), to_json(&e.value)]))
                .collect::<Vec<_>>()
        ]),
    }
}

/// Parses a body back into a tree.
///
/// # Errors
/// A message saying what is malformed (the body did not come from [`encode`]).
pub(crate) fn decode(body: &str) -> Result<Node, String> {
    let json: Json = serde_json::from_str(body).map_err(|e| format!("body is not JSON: {e}"))?;
    from_json(&json, 0)
}

fn from_json(json: &Json, depth: usize) -> Result<Node, String> {
    if depth > MAX_DEPTH {
        return Err("body nests too deep".into());
    }
    let bad = || format!("malformed body node: {json}");
    let parts = json.as_array().ok_or_else(bad)?;
    let number = |i: usize| -> Result<usize, String> {
        parts
            .get(i)
            .and_then(Json::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(bad)
    };
    let pos = Pos::new(number(0)?, number(1)?);
    let kind = match (parts.get(2).and_then(Json::as_str), parts.len()) {
        (Some("="), 5) => {
            let text = parts[4].as_str().ok_or_else(bad)?.to_string();
            let value = match parts[3].as_str() {
                Some("~") => Value::Null,
                Some(tag @ ("b" | "i" | "f")) => match (tag, rescan(&text)) {
                    ("b", Some(v @ Value::Bool(_)))
                    | ("i", Some(v @ Value::Int(_)))
                    | ("f", Some(v @ Value::Float(_))) => v,
                    _ => return Err(bad()),
                },
                Some("s") => Value::Str,
                _ => return Err(bad()),
            };
            Kind::Scalar(Scalar { text, value })
        }
        (Some("-"), 4) => Kind::Seq(
            parts[3]
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|item| from_json(item, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        (Some(":"), 4) => Kind::Map(
            parts[3]
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|pair| match pair.as_array().map(Vec::as_slice) {
                    Some([k, v]) => Ok(Entry {
                        key: from_json(k, depth + 1)?,
                        value: from_json(v, depth + 1)?,
                    }),
                    _ => Err(bad()),
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err(bad()),
    };
    Ok(Node { pos, kind })
}

/// The core-schema value of a plain scalar's text (`0x10`, `True`, `.inf`), found by the
/// same YAML parser that read it on the control plane.
fn rescan(text: &str) -> Option<Value> {
    match crate::yaml::parse(text) {
        Ok((
            Some(Node {
                kind: Kind::Scalar(s),
                ..
            }),
            _,
        )) => Some(s.value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(yaml: &str) -> Node {
        crate::yaml::parse(yaml).expect("yaml").0.expect("document")
    }

    #[test]
    fn a_tree_survives_the_wire_with_its_positions() {
        let node = tree(
            "name: api\nendpoints:\n  - 127.0.0.1:1\n  - { address: \"a:1\", weight: 0x10 }\nflag: true\nratio: .inf\nnone: ~\n",
        );
        let back = decode(&encode(&node)).expect("decodes");
        assert_eq!(back, node);
        let Kind::Map(entries) = &back.kind else {
            panic!("map")
        };
        assert_eq!(entries[1].value.pos, Pos::new(3, 3));
    }

    #[test]
    fn malformed_bodies_are_refused_with_a_reason() {
        assert!(decode("{").unwrap_err().starts_with("body is not JSON"));
        assert!(
            decode("[1,1,\"?\"]")
                .unwrap_err()
                .starts_with("malformed body node")
        );
        assert!(decode("[1,1,\"=\",\"i\",\"x\"]").is_err());
        let deep = "[1,1,\"-\",[".repeat(100) + &"]]".repeat(100);
        assert!(decode(&deep).is_err());
    }
}
