//! The JSON Schema: valid JSON, describes every top-level key and every field.

use serde_json::Value;

const TOP_LEVEL: &[&str] = &[
    "version",
    "node",
    "runtime",
    "admin",
    "control_plane",
    "listeners",
    "route_tables",
    "clusters",
    "identity",
    "authorization",
    "mesh",
    "tracing",
    "access_log",
];

#[test]
fn schema_is_draft_2020_12_json_with_every_top_level_key() {
    let schema = meshwork_config::json_schema();
    let text = serde_json::to_string_pretty(&schema).expect("serializes");
    let back: Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(
        back["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let properties = back["properties"].as_object().expect("properties");
    for key in TOP_LEVEL {
        assert!(properties.contains_key(*key), "schema lacks {key}");
    }
    assert_eq!(
        properties.len(),
        TOP_LEVEL.len(),
        "unexpected top-level keys"
    );
    assert_eq!(back["additionalProperties"], Value::Bool(false));
}

/// Walks every object schema's properties and checks each has a description.
fn undescribed(schema: &Value, path: &str, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                for (name, prop) in props {
                    if prop.get("description").is_none() {
                        out.push(format!("{path}.{name}"));
                    }
                }
            }
            for (key, value) in map {
                undescribed(value, &format!("{path}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                undescribed(item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_field_is_described() {
    let schema = meshwork_config::json_schema();
    let mut missing = Vec::new();
    undescribed(&schema, "", &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );
}
