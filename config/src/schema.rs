//! The JSON Schema (draft 2020-12) of the format, generated from the raw structs.

use schemars::generate::SchemaSettings;

use crate::raw::RawConfig;

/// The JSON Schema (draft 2020-12) of the YAML format, for editors (e.g. the YAML
/// language server's `# yaml-language-server: $schema=...`). Every field has a
/// description; formats the schema cannot express (durations, sizes, addresses) are
/// described and given a pattern where one fits.
pub fn json_schema() -> serde_json::Value {
    let schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<RawConfig>();
    schema.to_value()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::yaml::{self, Kind, Node};

    /// The YAML tree as JSON, scalars typed by the YAML 1.2 core schema.
    fn to_json(node: &Node) -> Value {
        match &node.kind {
            Kind::Scalar(s) => match s.value {
                yaml::Value::Null => Value::Null,
                yaml::Value::Bool(b) => Value::Bool(b),
                yaml::Value::Int(i) => Value::from(i),
                yaml::Value::Float(f) => Value::from(f),
                yaml::Value::Str => Value::String(s.text.clone()),
            },
            Kind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|e| {
                        (
                            e.key.text().unwrap_or_default().to_string(),
                            to_json(&e.value),
                        )
                    })
                    .collect(),
            ),
        }
    }

    fn document(path: &std::path::Path) -> Value {
        let text = std::fs::read_to_string(path).expect("read");
        // The fixtures' environment (see tests/fixtures.rs).
        let env = |name: &str| match name {
            "PORT" => Some("8080".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let (text, _, problems) = crate::env::substitute(&text, &env);
        assert!(problems.is_empty(), "{}: {problems:?}", path.display());
        let (root, _) = yaml::parse(&text).expect("YAML");
        to_json(&root.expect("a document"))
    }

    fn yaml_files(dir: &str) -> Vec<std::path::PathBuf> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn examples_and_valid_fixtures_validate_against_the_schema() {
        let schema = super::json_schema();
        let validator = jsonschema::draft202012::new(&schema).expect("a valid schema");
        let mut files = yaml_files("examples");
        files.extend(yaml_files("tests/fixtures/valid"));
        for file in files {
            let doc = document(&file);
            let errors: Vec<String> = validator
                .iter_errors(&doc)
                .map(|e| format!("{}: {e}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
        }
    }

    #[test]
    fn the_schema_rejects_what_the_loader_rejects() {
        let schema = super::json_schema();
        let validator = jsonschema::draft202012::new(&schema).expect("a valid schema");
        for bad in [
            serde_json::json!({ "version": 1, "listners": [] }),
            serde_json::json!({ "version": 1, "clusters": [{ "name": "a", "connect_timeout": "5 s" }] }),
            serde_json::json!({ "version": 1, "clusters": [{ "name": "a", "load_balancer": "fastest" }] }),
            serde_json::json!({ "version": 1, "runtime": { "worker_threads": "many" } }),
        ] {
            assert!(!validator.is_valid(&bad), "accepted {bad}");
        }
    }
}
