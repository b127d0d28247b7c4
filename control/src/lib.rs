//! meshwork's control plane: reads a directory of YAML fragments, validates each
//! resource, resolves DNS discovery, and serves every proxy the resources its labels
//! select over a gRPC stream modeled on xDS ADS (see docs/control-plane.md).
#![forbid(unsafe_code)]

pub mod admin;
pub mod catalog;
pub mod dns;
pub mod kubernetes;
pub mod metrics;
pub mod nodes;
pub mod run;
pub mod server;
#[cfg(test)]
mod testing;
pub mod tls;
pub mod xds;

use std::sync::Arc;

use meshwork_config::resource::Kind;
use tokio::sync::watch;

use crate::catalog::Catalog;
use crate::metrics::Metrics;
use crate::nodes::Nodes;

pub use run::{Options, run};

/// What the discovery streams and the admin server share.
#[derive(Debug)]
pub struct ControlPlane {
    /// The current reading of the directory; streams wait on it for changes.
    pub catalog: watch::Sender<Arc<Catalog>>,
    pub nodes: Nodes,
    pub metrics: Metrics,
    /// Envoy's xDS streams (see `xds`).
    pub envoy: xds::EnvoyStreams,
    /// The Kubernetes watches' health (`--kubernetes` only).
    pub kubernetes: Option<Arc<kubernetes::Health>>,
}

impl ControlPlane {
    /// `None` when ready to serve proxies; else why not (`/ready`).
    pub fn not_ready(&self) -> Option<String> {
        self.kubernetes.as_ref().and_then(|h| h.not_ready())
    }

    /// `/status`: the served version, the directory's problems, every connected proxy.
    pub fn status(&self) -> serde_json::Value {
        let catalog = self.catalog.borrow().clone();
        let resources: serde_json::Map<String, serde_json::Value> = Kind::ALL
            .iter()
            .map(|k| (k.to_string(), catalog.count(*k).into()))
            .collect();
        serde_json::json!({
            "version": catalog.version,
            "generation": catalog.generation,
            "clean": catalog.is_clean(),
            "resources": resources,
            "problems": catalog.problems,
            "nodes": self.nodes.list(),
            "envoy": self.envoy.list(),
            "kubernetes": self.kubernetes.as_ref().map(|h| h.snapshot()),
        })
    }
}
