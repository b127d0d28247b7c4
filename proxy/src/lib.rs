//! meshwork's data plane: listeners, the per-request stack, clusters and the admin API.
#![forbid(unsafe_code)]

pub mod admin;
pub mod await_ready;
pub mod balance;
pub mod certs;
pub mod cli;
pub mod cluster;
pub mod control_plane;
pub mod dataplane;
pub mod demo;
pub mod drain;
pub mod drain_request;
pub mod explain;
pub mod file_watch;
pub mod http;
pub mod init;
pub mod inject;
pub mod layers;
pub mod lifecycle;
pub mod listener;
pub mod mesh;
pub mod metrics;
pub mod observe;
pub mod policy;
#[cfg(test)]
mod property;
pub mod readiness;
pub mod reload;
pub mod restart;
pub mod rewind;
pub mod router;
pub mod snapshot;
#[cfg(test)]
mod test_waker;
pub mod tls;
pub mod trace;
pub mod vip;
