//! meshwork's configuration: YAML routing files (format v1) -> validated, typed model.
//!
//! Entry points: [`load_file`], [`load_str`] (the pure core) and [`json_schema`]. Errors
//! come back as [`Diagnostics`], every problem in the file at once, each rendered as
//! `file:line:col: field.path: message`. The pipeline: `env` (substitution) -> `yaml`
//! (tree with positions) -> `de` (recovering deserializer into `raw`) -> `unsupported`
//! (fields not built yet) -> `validate` (into `model`).
#![forbid(unsafe_code)]

mod de;
mod diagnostic;
mod env;
mod load;
pub mod model;
mod path;
mod raw;
pub mod request_path;
pub mod resource;
mod schema;
mod ser;
mod sidecar;
mod spanned;
mod suggest;
pub mod units;
mod unsupported;
mod validate;
mod yaml;

/// The discovery API's wire types (generated from `proto/discovery.proto`).
#[cfg(feature = "discovery")]
pub mod discovery;

pub use diagnostic::{Diagnostic, Diagnostics, Pos};
pub use load::{FALLBACK_NODE_ID, hostname, load_file, load_str};
pub use model::Config;
pub use schema::json_schema;
