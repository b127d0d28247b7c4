//! The YAML library behind two functions: a stream of Kubernetes documents in, as JSON
//! values, and back out.
//!
//! Kubernetes resources are JSON objects (the API server speaks JSON; YAML is only how
//! people write them), so `inject` works on `serde_json::Value`s: every field it does not
//! touch — including fields newer than any typed model — goes through as it came, in its
//! order (`serde_json`'s `preserve_order`). `saphyr` (YAML 1.2, already the config crate's
//! parser) reads and writes the text: aliases are expanded (with its billion-laughs node
//! budget), duplicate keys are refused. Comments are not kept, as with `kubectl`.
//!
//! One trap on the way out: `kubectl` reads YAML with YAML 1.1 rules, where `y`, `n`,
//! `1_000`, `0b101` or `2024-01-02` are not strings. Any string a YAML 1.1 reader could
//! take for something else is written double-quoted.

use std::borrow::Cow;

use saphyr::{LoadableYamlNode, Mapping, Scalar, ScalarStyle, Yaml, YamlEmitter};
use serde_json::{Map, Number, Value};

/// Why the input cannot be read as Kubernetes documents.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum YamlError {
    #[error("line {line}, column {column}: not valid YAML: {reason}")]
    Syntax {
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("document {document}: {reason}")]
    NotJson { document: usize, reason: String },
}

/// The documents of a YAML stream, numbered from 1 in error messages; an empty document
/// (a stray `---`) is `None`.
///
/// # Errors
/// Invalid YAML (with line and column), or a document that no JSON value can hold (a
/// custom tag, a non-scalar mapping key, a NaN).
pub fn parse_documents(text: &str) -> Result<Vec<Option<Value>>, YamlError> {
    let documents = Yaml::load_from_str(text).map_err(|error| YamlError::Syntax {
        line: error.marker().line(),
        column: error.marker().col() + 1,
        reason: error.info().to_owned(),
    })?;
    documents
        .iter()
        .enumerate()
        .map(|(index, document)| match document {
            Yaml::Value(Scalar::Null) => Ok(None),
            document => to_json(document)
                .map(Some)
                .map_err(|reason| YamlError::NotJson {
                    document: index + 1,
                    reason,
                }),
        })
        .collect()
}

/// The documents as one YAML stream, each starting with `---`.
pub fn emit_documents(documents: &[Value]) -> String {
    let mut out = String::new();
    for document in documents {
        let yaml = to_yaml(document);
        let mut emitter = YamlEmitter::new(&mut out);
        // Multi-line strings (embedded config files) as literal blocks, readable as written.
        emitter.multiline(true);
        // Writing into a String cannot fail.
        let _ = emitter.dump(&yaml);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

fn to_json(node: &Yaml<'_>) -> Result<Value, String> {
    Ok(match node {
        Yaml::Value(scalar) => scalar_to_json(scalar)?,
        Yaml::Representation(text, ..) => Value::String(text.to_string()),
        Yaml::Sequence(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Mapping(entries) => {
            let mut map = Map::with_capacity(entries.len());
            for (key, value) in entries {
                map.insert(key_text(key)?, to_json(value)?);
            }
            Value::Object(map)
        }
        Yaml::Tagged(tag, _) => {
            return Err(format!(
                "the tag {tag} has no meaning in a Kubernetes resource"
            ));
        }
        Yaml::Alias(_) | Yaml::BadValue => return Err("a value that YAML cannot resolve".into()),
    })
}

fn scalar_to_json(scalar: &Scalar<'_>) -> Result<Value, String> {
    Ok(match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::Number((*i).into()),
        Scalar::FloatingPoint(f) => Value::Number(
            Number::from_f64(f.into_inner())
                .ok_or_else(|| format!("{f} is not a number a Kubernetes resource can hold"))?,
        ),
        Scalar::String(s) => Value::String(s.to_string()),
    })
}

/// Mapping keys become strings, as the Kubernetes YAML reader makes them (`1:` is "1").
fn key_text(key: &Yaml<'_>) -> Result<String, String> {
    match key {
        Yaml::Value(Scalar::String(s)) => Ok(s.to_string()),
        Yaml::Value(Scalar::Integer(i)) => Ok(i.to_string()),
        Yaml::Value(Scalar::Boolean(b)) => Ok(b.to_string()),
        Yaml::Value(Scalar::FloatingPoint(f)) => Ok(f.to_string()),
        Yaml::Value(Scalar::Null) => Ok("null".into()),
        _ => Err("a mapping key that is not a scalar".into()),
    }
}

fn to_yaml(value: &Value) -> Yaml<'static> {
    match value {
        Value::Null => Yaml::Value(Scalar::Null),
        Value::Bool(b) => Yaml::Value(Scalar::Boolean(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Yaml::Value(Scalar::Integer(i)),
            (None, Some(f)) => Yaml::Value(Scalar::FloatingPoint(f.into())),
            // u64 above i64::MAX: written as its digits.
            (None, None) => Yaml::Representation(n.to_string().into(), ScalarStyle::Plain, None),
        },
        Value::String(s) => string(s),
        Value::Array(items) => Yaml::Sequence(items.iter().map(to_yaml).collect()),
        Value::Object(map) => {
            let mut mapping = Mapping::with_capacity(map.len());
            for (key, value) in map {
                mapping.insert(string(key), to_yaml(value));
            }
            Yaml::Mapping(mapping)
        }
    }
}

/// A string node: double-quoted when a YAML 1.1 reader could take it for something else
/// and `saphyr` (a YAML 1.2 writer) would leave it plain; otherwise left to `saphyr`.
fn string(s: &str) -> Yaml<'static> {
    if yaml11_ambiguous(s) {
        // A JSON string is a valid YAML double-quoted scalar; the emitter adds the quotes.
        let quoted = serde_json::to_string(s).unwrap_or_default();
        let inner = quoted[1..quoted.len() - 1].to_owned();
        Yaml::Representation(Cow::Owned(inner), ScalarStyle::DoubleQuoted, None)
    } else {
        Yaml::Value(Scalar::String(Cow::Owned(s.to_owned())))
    }
}

/// YAML 1.1 booleans `y`/`n` (which `saphyr` leaves plain on purpose, as libyaml does), and
/// anything starting like a number: YAML 1.1 integers (`1_000`, `0b101`, `0755`), floats and
/// timestamps (`2024-01-02`). Over-quoting a version such as `1.2.3` costs nothing.
fn yaml11_ambiguous(s: &str) -> bool {
    !s.contains('\n')
        && (matches!(s, "y" | "Y" | "n" | "N")
            || s.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_round_trip_in_order_with_empty_ones_kept_as_none() {
        let text = "---\nkind: A\nz: 1\na: [x, {b: true}]\n---\n---\nkind: B\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[1], None);
        let a = docs[0].clone().unwrap();
        assert_eq!(a, json!({"kind": "A", "z": 1, "a": ["x", {"b": true}]}));
        assert_eq!(
            a.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["kind", "z", "a"]
        );
        let out = emit_documents(&[a.clone(), docs[2].clone().unwrap()]);
        assert_eq!(
            out,
            "---\nkind: A\nz: 1\na:\n  - x\n  - b: true\n---\nkind: B\n"
        );
        let again: Vec<Value> = parse_documents(&out)
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(emit_documents(&again), out, "emitting is stable");
    }

    #[test]
    fn strings_a_yaml_1_1_reader_would_misread_are_quoted() {
        let value = json!({
            "a": "y", "b": "n", "c": "1_000", "d": "2024-01-02", "e": "0b101",
            "f": "yes", "g": "8080", "h": "-x", "i": "plain", "y": "key too",
        });
        let out = emit_documents(std::slice::from_ref(&value));
        for line in [
            "a: \"y\"",
            "b: \"n\"",
            "c: \"1_000\"",
            "d: \"2024-01-02\"",
            "e: \"0b101\"",
            "f: \"yes\"",
            "g: \"8080\"",
            "h: \"-x\"",
            "i: plain",
            "\"y\": key too",
        ] {
            assert!(out.lines().any(|l| l == line), "{line:?} in\n{out}");
        }
        let back = parse_documents(&out).unwrap().remove(0).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn multi_line_strings_are_literal_blocks_and_survive_the_round_trip() {
        let value =
            json!({"data": {"config.yaml": "version: 1\nadmin:\n  address: 0.0.0.0:4191\n"}});
        let out = emit_documents(std::slice::from_ref(&value));
        assert!(out.contains("config.yaml: |\n    version: 1\n"), "{out}");
        assert_eq!(parse_documents(&out).unwrap()[0].as_ref(), Some(&value));
    }

    #[test]
    fn bad_input_is_refused_with_its_place() {
        let err = parse_documents("kind: A\n  b: [\n").unwrap_err();
        assert!(matches!(err, YamlError::Syntax { line: 2, .. }), "{err}");
        let err = parse_documents("a: 1\na: 2\n").unwrap_err();
        assert!(matches!(err, YamlError::Syntax { .. }), "{err}");
        let err = parse_documents("kind: A\n---\nkind: !custom B\n").unwrap_err();
        assert_eq!(
            err,
            YamlError::NotJson {
                document: 2,
                reason: "the tag !custom has no meaning in a Kubernetes resource".into()
            }
        );
        let err = parse_documents("? [a]\n: b\n").unwrap_err();
        assert!(
            err.to_string().starts_with("document 1: a mapping key"),
            "{err}"
        );
    }
}
