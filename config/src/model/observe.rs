//! Identity, authorization and observability: who the proxy is, who may call it, and
//! what it reports.

use std::path::PathBuf;

use super::ClientTls;

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub trust_bundle: PathBuf,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationPolicy {
    pub listener: String,
    pub default: AuthorizationDefault,
    pub allow: Vec<AuthorizationRule>,
}

#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthorizationDefault {
    Deny,
    Allow,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationRule {
    /// Peer identities; `*` = any authenticated peer. Empty = anyone.
    pub from: Vec<String>,
    /// Empty = any method.
    pub methods: Vec<String>,
    /// Globs (`*` matches any run of characters). Empty = any path.
    pub paths: Vec<String>,
    /// Original destination ports (`auto` listeners). Empty = any port.
    pub ports: Vec<u16>,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct Tracing {
    pub propagation: Vec<Propagation>,
    pub sampling: f64,
    pub otlp: Option<Otlp>,
    pub service_name: String,
}

#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Propagation {
    W3c,
    B3,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Otlp {
    /// An `http://` or `https://` URL.
    pub endpoint: String,
    /// TLS settings for an `https://` endpoint (`None`: the system's trust store, the
    /// endpoint's host as the name).
    pub tls: Option<ClientTls>,
}

#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct AccessLog {
    pub format: AccessLogFormat,
    pub path: AccessLogPath,
}

#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFormat {
    Json,
    Text,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessLogPath {
    Stdout,
    File(PathBuf),
}

/// `"stdout"` or the file path, as written in the YAML.
impl serde::Serialize for AccessLogPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AccessLogPath::Stdout => s.serialize_str("stdout"),
            AccessLogPath::File(p) => s.collect_str(&p.display()),
        }
    }
}
