//! Shared settings of the property tests (proptest): how many cases a run tries.
//!
//! CI runs [`DEFAULT_CASES`] per property: enough to cover the shapes the generators
//! make, in about a second per property (debug build). A longer hunt sets `PROPTEST_CASES`, e.g.
//! `PROPTEST_CASES=200000 cargo test -p meshwork-proxy props` (minutes).

use proptest::test_runner::Config;

/// Cases per property when `PROPTEST_CASES` is not set.
pub const DEFAULT_CASES: u32 = 2048;

/// The runner config: `PROPTEST_CASES` cases, else [`DEFAULT_CASES`]; failures are not
/// persisted to files (the failing input is printed, and the tests run from any
/// directory).
pub fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}
