//! Raw scalar types that are parsed later, during validation: they keep the text as
//! written (any YAML scalar is accepted as text) and describe themselves in the schema.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;

/// A duration with a unit: `250ms`, `5s`, `2m`, `1h` (also `ns`, `us`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(transparent)]
pub(crate) struct DurationText(pub String);

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$",
            "description": "A duration with a unit: `250ms`, `5s`, `2m`, `1h` (also `ns`, `us`). Bare numbers are refused.",
            "examples": ["250ms", "5s", "2m"],
        })
    }
}

/// A size with a unit: `512B`, `64KiB`, `1MiB`, `1GiB` (also `KB`, `MB`, `GB` = powers of 1000).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(transparent)]
pub(crate) struct SizeText(pub String);

impl JsonSchema for SizeText {
    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[0-9]+ ?(B|KiB|MiB|GiB|KB|MB|GB)$",
            "description": "A size with a unit: `512B`, `64KiB`, `1MiB`, `1GiB` (binary); `KB`, `MB`, `GB` are powers of 1000. Bare numbers are refused.",
            "examples": ["64KiB", "1MiB"],
        })
    }
}

/// A number of worker threads, or `auto` (one per CPU).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(transparent)]
pub(crate) struct WorkerThreadsText(pub String);

impl JsonSchema for WorkerThreadsText {
    fn schema_name() -> Cow<'static, str> {
        "WorkerThreads".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A number of worker threads (1 to 1024), or `auto` for one per CPU.",
            "anyOf": [
                { "type": "integer", "minimum": 1, "maximum": 1024 },
                { "const": "auto" }
            ],
        })
    }
}

/// A retry condition: a name, a status code, or a gRPC code name.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(transparent)]
pub(crate) struct RetryOnText(pub String);

/// The names accepted in `retry.on`, besides status codes.
pub(crate) const RETRY_ON_NAMES: &[&str] = &[
    "connect-failure",
    "reset",
    "5xx",
    "gateway-error",
    "retriable-4xx",
    "cancelled",
    "deadline-exceeded",
    "resource-exhausted",
    "unavailable",
];

impl JsonSchema for RetryOnText {
    fn schema_name() -> Cow<'static, str> {
        "RetryOn".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "When to retry: `connect-failure`, `reset`, `5xx`, `gateway-error` (502/503/504), `retriable-4xx` (409), a status code (e.g. 503), or a gRPC code: `cancelled`, `deadline-exceeded`, `resource-exhausted`, `unavailable`.",
            "anyOf": [
                { "type": "integer", "minimum": 100, "maximum": 599 },
                { "type": "string", "pattern": "^[1-5][0-9][0-9]$" },
                { "enum": RETRY_ON_NAMES }
            ],
        })
    }
}
