//! meshwork-bench: meshwork side by side with nginx and HAProxy on the same upstream, in
//! one command (`meshwork-bench all`), plus the pure pieces the harness is built from.
#![forbid(unsafe_code)]

pub mod goals;
pub mod idle;
pub mod instructions;
pub mod machine;
pub mod parse;
pub mod process;
pub mod report;
pub mod results_md;
pub mod run;
pub mod scenarios;
pub mod stats;
pub mod table;
pub mod targets;
pub mod tools;
