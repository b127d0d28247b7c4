//! Parsers for the load generators' output: wrk (through a Lua summary line), oha (JSON)
//! and h2load (its text summary). Pure functions, tested on captured output.

pub mod h2load;
pub mod oha;
pub mod wrk;

/// Output that does not hold what a parser looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub tool: &'static str,
    pub what: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot read {} output: {}", self.tool, self.what)
    }
}

impl std::error::Error for ParseError {}

/// `key=value` pairs of one whitespace-separated line, the value parsed as a number.
fn key_value(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}
