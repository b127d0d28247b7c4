//! The validated, typed configuration: what the proxy and the control plane run on.
//!
//! Everything here has passed structural validation and cross-reference checks, so users
//! of the model never re-check names, ranges or formats. Defaults are already applied.
//! Types are plain data (`Clone + PartialEq`) so a reload can compare old and new pieces
//! and keep state (pools, breakers) for the parts that did not change. The model also
//! serializes (for the admin `/config` view) in the YAML's own notation.
//!
//! One module per part of the file: listeners, routes, clusters, and identity with
//! authorization and observability; everything is re-exported here, so users name
//! `model::Route` whatever module it lives in.

mod cluster;
mod listener;
mod observe;
mod route;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use self::cluster::*;
pub use self::listener::*;
pub use self::observe::*;
pub use self::route::*;
pub use crate::sidecar::{
    Direction, Mesh, MeshInbound, ORIGINAL_DESTINATION_CLUSTER, PortProtocol, SERVER_FIRST_PORTS,
    Vip, destination_protocol, port_protocol,
};

/// A whole, validated config file (format `version: 1`).
#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct Config {
    pub node: Node,
    pub runtime: Runtime,
    pub admin: Admin,
    pub control_plane: Option<ControlPlane>,
    pub listeners: Vec<Listener>,
    /// Route tables by name; each keeps its routes in the order written (first match wins).
    pub route_tables: BTreeMap<String, RouteTable>,
    pub clusters: Vec<Cluster>,
    pub identity: Option<Identity>,
    pub authorization: Vec<AuthorizationPolicy>,
    /// Connections between meshwork sidecars (`None`: no destination is meshed).
    pub mesh: Option<Mesh>,
    pub tracing: Option<Tracing>,
    pub access_log: Option<AccessLog>,
}

impl Config {
    /// The cluster of that name, if defined.
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.name == name)
    }
}

/// Who this proxy is, as told to the control plane.
#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Default is the machine's hostname.
    pub id: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Runtime {
    pub worker_threads: WorkerThreads,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerThreads {
    Fixed(u16),
    /// One per CPU.
    Auto,
}

/// The admin server (`/metrics /ready /live /config /clusters`).
#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Admin {
    /// Default is `127.0.0.1:9901`.
    pub address: SocketAddr,
}

pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:9901";

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ControlPlane {
    /// e.g. `http://127.0.0.1:18000`
    pub address: String,
    pub tls: Option<ClientTls>,
    /// Default [`ControlPlaneProtocol::Meshwork`].
    pub protocol: ControlPlaneProtocol,
    /// Where the last applied snapshot is saved. Default [`DEFAULT_STATE_DIR`].
    pub state_dir: PathBuf,
}

/// The discovery protocol a control plane speaks.
#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ControlPlaneProtocol {
    /// meshwork-control's own discovery stream.
    Meshwork,
    /// Envoy's xDS v3 Aggregated Discovery Service, State of the World.
    Xds,
}

/// Where a proxy saves the last snapshot applied from its control plane, by default.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/meshwork";

/// A `host:port` that may name a DNS host (upstreams, discovery).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    /// An IP literal (without brackets) or a DNS name.
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A number, or `"auto"`, as written in the YAML.
impl serde::Serialize for WorkerThreads {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            WorkerThreads::Fixed(n) => s.serialize_u16(*n),
            WorkerThreads::Auto => s.serialize_str("auto"),
        }
    }
}
