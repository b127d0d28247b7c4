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
