//! Listeners: where the proxy accepts connections, and how it treats them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{Direction, HostMatch, PortProtocol};

#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct Listener {
    pub name: String,
    /// Port 0 asks the OS for a free port (see the admin `/listeners` endpoint).
    pub address: SocketAddr,
    #[serde(flatten)]
    pub protocol: ListenerProtocol,
    pub tls: Option<ListenerTls>,
    pub limits: ListenerLimits,
    /// How request paths are read (HTTP listeners).
    pub paths: ListenerPaths,
    /// Whose traffic this is: drain keeps `outbound` listeners working until the app is
    /// gone (its own calls during shutdown), and stops `inbound` ones first.
    pub direction: Direction,
    /// Route by where each connection was going before interception redirected it here
    /// (`SO_ORIGINAL_DST`, or the local address under TPROXY). Only with `protocol: auto`.
    pub original_destination: bool,
    /// Per destination port: the protocol to assume instead of detecting it (`auto`
    /// listeners). Ports in [`SERVER_FIRST_PORTS`] are opaque unless listed here.
    pub ports: BTreeMap<u16, PortProtocol>,
}

impl Listener {
    /// The route table its HTTP requests go through (`http`, and `auto` when set).
    pub fn route_table(&self) -> Option<&str> {
        match &self.protocol {
            ListenerProtocol::Http { route_table } => Some(route_table),
            ListenerProtocol::Auto { route_table } => route_table.as_deref(),
            ListenerProtocol::Tcp { .. } => None,
        }
    }
}

/// How an HTTP listener reads request paths (see docs/security.md "Paths").
#[derive(serde::Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenerPaths {
    pub escaped_slashes: EscapedSlashes,
}

/// What happens to a percent-encoded `/` or `\` (`%2F`, `%5C`) in a request path.
#[derive(serde::Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EscapedSlashes {
    /// 400 `malformed-request`: an upstream that decodes it would read other segments
    /// than the route and the authorization policy did.
    #[default]
    Reject,
    /// Passed on encoded (hex uppercased): part of a segment's name, never a separator.
    Keep,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "protocol", rename_all = "snake_case")]
pub enum ListenerProtocol {
    /// HTTP/1.1 and HTTP/2 (detected per connection), routed by the named route table.
    Http { route_table: String },
    /// Opaque TCP: bytes go to the named cluster.
    Tcp { cluster: String },
    /// Sidecar interception: detected per connection without waiting (HTTP/1.1, HTTP/2,
    /// TLS passed through by SNI, anything else opaque). HTTP that matches a route of
    /// `route_table` goes there; everything else goes to its original destination.
    Auto { route_table: Option<String> },
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ListenerTls {
    /// Picked by SNI; the first is the default. Empty = serve the `identity` certificate.
    pub certificates: Vec<ServerCertificate>,
    pub client_auth: ClientAuth,
    /// `None` = the `identity` trust bundle.
    pub client_ca: Option<PathBuf>,
    /// Default [`DEFAULT_TLS_HANDSHAKE_TIMEOUT`].
    #[serde(serialize_with = "crate::ser::duration")]
    pub handshake_timeout: Duration,
}

pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ServerCertificate {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub server_names: Vec<HostMatch>,
}

#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    None,
    Optional,
    Required,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Default 10,000.
    pub max_connections: u32,
    /// Slowloris guard: the whole request head must arrive within this. Default 10s.
    #[serde(serialize_with = "crate::ser::duration")]
    pub header_read_timeout: Duration,
    /// Default 64 KiB.
    pub max_request_header_size: u64,
    /// A connection with no request in flight for this long is closed. Default 5m.
    #[serde(serialize_with = "crate::ser::duration")]
    pub idle_timeout: Duration,
}

pub const DEFAULT_LISTENER_LIMITS: ListenerLimits = ListenerLimits {
    max_connections: 10_000,
    header_read_timeout: Duration::from_secs(10),
    max_request_header_size: 64 * 1024,
    idle_timeout: Duration::from_secs(300),
};

impl Default for ListenerLimits {
    fn default() -> Self {
        DEFAULT_LISTENER_LIMITS
    }
}
