//! meshwork's configuration: YAML routing files (format v1) -> validated, typed model.
#![forbid(unsafe_code)]

pub mod model;

pub use model::Config;

use std::fmt;
use std::path::Path;

/// One problem found in a config file, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}: {}", self.file, self.line, self.column, self.path, self.message)
    }
}

/// Every problem found in a file (never empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Reads, substitutes `${VAR}` from the process environment, parses and validates a file.
pub fn load_file(path: &Path) -> Result<Config, Diagnostics> {
    let _ = path;
    unimplemented!("config loader: being written")
}

/// The JSON Schema of the format, for editors.
pub fn json_schema() -> serde_json::Value {
    unimplemented!("config schema: being written")
}
