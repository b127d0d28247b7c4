//! Raw config: the YAML file as written, every field optional and spanned.
//!
//! These structs mirror the format (docs/config-reference.md) field for field. They are filled by the recovering
//! deserializer (`de.rs`), so a missing or malformed field never stops the others from
//! being read; required fields, formats and cross-references are checked in `validate`.
//! Their doc comments are the descriptions in the JSON Schema (`schema.rs`).

mod cluster;
mod listener;
mod route;
mod text;

use schemars::JsonSchema;
use serde::Deserialize;

pub(crate) use cluster::*;
pub(crate) use listener::*;
pub(crate) use route::*;
pub(crate) use text::*;

use crate::spanned::{Entries, Field, List, Spanned};

/// A meshwork routing file, format version 1.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "meshwork config (format v1)")]
pub(crate) struct RawConfig {
    /// Format version. Required; must be 1.
    pub version: Field<u32>,
    /// Who this proxy is (told to the control plane).
    pub node: Field<RawNode>,
    /// Process settings.
    pub runtime: Field<RawRuntime>,
    /// The admin server: /metrics /ready /live /config /clusters.
    pub admin: Field<RawAdmin>,
    /// Control plane to take config from; without it this file is the source of truth.
    pub control_plane: Field<RawControlPlane>,
    /// Where the proxy accepts connections.
    pub listeners: List<RawListener>,
    /// Route tables by name; each is a list of routes tried in order (first match wins).
    pub route_tables: Field<Entries<Vec<Spanned<RawRoute>>>>,
    /// Upstream clusters: groups of endpoints that routes send traffic to.
    pub clusters: List<RawCluster>,
    /// Mesh identity (sidecar mode): certificate, key and trust bundle.
    pub identity: Field<RawIdentity>,
    /// Authorization policies, applied on listeners that know their peers' identities (mTLS, or meshed connections).
    pub authorization: List<RawAuthorization>,
    /// Connections between meshwork sidecars: which destinations run meshwork (mutual TLS to their inbound port), and whether this proxy's inbound side still accepts clients that are not meshed.
    pub mesh: Field<RawMesh>,
    /// Distributed tracing: propagation formats, sampling, OTLP export.
    pub tracing: Field<RawTracing>,
    /// Access log: one line per request.
    pub access_log: Field<RawAccessLog>,
}

/// Connections between meshwork sidecars.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Mesh")]
pub(crate) struct RawMesh {
    /// Destinations in these networks (CIDRs, e.g. `10.0.0.0/8`, `fd00::/8`) run a meshwork sidecar: the outbound side originates mutual TLS with this proxy's `identity` to their inbound port. Required.
    pub networks: List<String>,
    /// `permissive`: the inbound listener still serves clients that are not meshed (plaintext, or TLS of their own) | `strict`: only meshed peers. Default is `permissive`.
    pub inbound: Field<MeshInboundName>,
    /// The port meshed peers' inbound listeners accept on. Default is 15006 (`meshwork init`'s inbound port).
    pub inbound_port: Field<u32>,
}

/// What the inbound side does with clients that are not meshed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "MeshInbound")]
pub(crate) enum MeshInboundName {
    /// Serve them too (the default).
    Permissive,
    /// Refuse them: only meshed peers.
    Strict,
}

/// Who this proxy is.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Node")]
pub(crate) struct RawNode {
    /// Node id. Default is the machine's hostname.
    pub id: Field<String>,
    /// Free-form labels (e.g. app, zone). Default is none.
    pub labels: Field<Entries<String>>,
}

/// Process settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Runtime")]
pub(crate) struct RawRuntime {
    /// Worker threads: a number, or `auto` for one per CPU. Default is 1 (sidecar-friendly).
    pub worker_threads: Field<WorkerThreadsText>,
}

/// The admin server.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Admin")]
pub(crate) struct RawAdmin {
    /// Socket address (IP literal and port; port 0 = any free port). Default is `127.0.0.1:9901`.
    pub address: Field<String>,
}

/// Control plane connection.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ControlPlane")]
pub(crate) struct RawControlPlane {
    /// URL of the control plane, e.g. `http://127.0.0.1:18000` (plaintext h2c) or `https://control:18000` (with `tls`). Required.
    pub address: Field<String>,
    /// TLS to the control plane (mTLS with `cert`/`key`); the address is then https://. With `identity`, `ca`, `cert` and `key` default to its files.
    pub tls: Field<RawClientTls>,
    /// The discovery protocol the control plane speaks: `meshwork` (meshwork-control's own) or `xds` (Envoy's xDS v3 Aggregated Discovery Service, State of the World: istiod, go-control-plane...). Default is `meshwork`.
    pub protocol: Field<ControlPlaneProtocolName>,
    /// Directory where the last snapshot applied from the control plane is saved (atomically), so a proxy restarted while the control plane is down serves it (reported as stale on /ready and /config) until the control plane answers; relative paths are resolved against the config file's directory. Default is `/var/lib/meshwork`.
    pub state_dir: Field<String>,
}

/// The discovery protocol a control plane speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "ControlPlaneProtocol")]
pub(crate) enum ControlPlaneProtocolName {
    /// meshwork-control's discovery stream (the default).
    Meshwork,
    /// Envoy's xDS v3 Aggregated Discovery Service (State of the World).
    Xds,
}

/// TLS origination settings (to upstreams or to the control plane).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ClientTls")]
pub(crate) struct RawClientTls {
    /// CA bundle (PEM) to verify the peer; relative paths are resolved against the config file's directory. Clusters: default is the `identity` trust bundle, required without `identity`.
    pub ca: Field<String>,
    /// Client certificate (PEM) for mTLS; needs `key`. Clusters: default is the `identity` certificate when there is one.
    pub cert: Field<String>,
    /// Client private key (PEM) for mTLS; needs `cert`.
    pub key: Field<String>,
    /// Server name to send (SNI) and verify. Default is the endpoint's host.
    pub server_name: Field<String>,
    /// Accepted peer identities (SPIFFE IDs); empty = any peer chaining to `ca`.
    pub identities: List<String>,
}

/// Mesh identity files (watched and rotated live).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Identity")]
pub(crate) struct RawIdentity {
    /// This proxy's certificate (PEM). Required.
    pub cert: Field<String>,
    /// This proxy's private key (PEM). Required.
    pub key: Field<String>,
    /// CA certificates trusted for peers (PEM). Required.
    pub trust_bundle: Field<String>,
}

/// An authorization policy for one listener.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Authorization")]
pub(crate) struct RawAuthorization {
    /// The listener this policy applies to. Required; must name a listener.
    pub listener: Field<String>,
    /// What happens to requests no rule allows. Default is `deny`.
    pub default: Field<AuthorizationDefaultName>,
    /// Rules; a request matching any rule is allowed.
    pub allow: List<RawAllowRule>,
}

/// What happens to requests no rule allows.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "AuthorizationDefault")]
pub(crate) enum AuthorizationDefaultName {
    /// Refuse with 403.
    Deny,
    /// Let through.
    Allow,
}

/// One allow rule: all present conditions must hold.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "AllowRule")]
pub(crate) struct RawAllowRule {
    /// Peer identities (SPIFFE IDs); `*` = any authenticated peer. Absent = anyone.
    pub from: List<String>,
    /// HTTP methods. Absent = any method.
    pub methods: List<String>,
    /// Path globs (`*` matches any run of characters), compared with the normalized request path, so written in normalized form. Absent = any path.
    pub paths: List<String>,
    /// `auto` listeners: the destination ports (the app's ports a connection was going to) this rule covers. Absent = any port.
    pub ports: List<u32>,
}

/// Distributed tracing.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Tracing")]
pub(crate) struct RawTracing {
    /// Trace context formats: read any of them, write all of them. Default is `[w3c]`.
    pub propagation: List<PropagationName>,
    /// Head sampling probability for new traces, 0 to 1; a parent's decision wins. Default is 0.01.
    pub sampling: Field<f64>,
    /// Where spans are exported (OTLP/HTTP protobuf).
    pub otlp: Field<RawOtlp>,
    /// Service name on spans. Default is the node id.
    pub service_name: Field<String>,
}

/// A trace context format.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "Propagation")]
pub(crate) enum PropagationName {
    /// W3C Trace Context (`traceparent`).
    W3c,
    /// Zipkin B3 (`b3`, `x-b3-*`).
    B3,
}

/// OTLP exporter.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Otlp")]
pub(crate) struct RawOtlp {
    /// Collector URL, e.g. `http://127.0.0.1:4318/v1/traces`, or `https://` (TLS, verified against the system's trust store unless `tls.ca` is set). Required.
    pub endpoint: Field<String>,
    /// TLS to an `https://` collector: `ca` (default: the system's trust store), `server_name` (default: the endpoint's host), `cert`/`key` for mTLS, `identities`. Refused with an `http://` endpoint.
    pub tls: Field<RawClientTls>,
}

/// Access log.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "AccessLog")]
pub(crate) struct RawAccessLog {
    /// Line format. Default is `json`.
    pub format: Field<AccessLogFormatName>,
    /// `stdout` or a file path (relative to the config file's directory). Default is `stdout`.
    pub path: Field<String>,
}

/// Access log line format.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "AccessLogFormat")]
pub(crate) enum AccessLogFormatName {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}
