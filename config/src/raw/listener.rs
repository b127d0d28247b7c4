//! Raw listeners: address, protocol, TLS termination and connection limits.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{DurationText, SizeText};
use crate::spanned::{Entries, Field, List};

/// A listener: where the proxy accepts connections.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Listener")]
pub(crate) struct RawListener {
    /// Unique name. Required.
    pub name: Field<String>,
    /// Socket address to bind: an IP literal and a port (`0.0.0.0:8080`, `[::1]:8080`; port 0 = any free port). Required.
    pub address: Field<String>,
    /// `http` (HTTP/1.1 and HTTP/2, detected per connection), `tcp` (opaque bytes) or `auto` (sidecar interception: detected per connection without waiting, routed by original destination). Default is `http`.
    pub protocol: Field<ListenerProtocolName>,
    /// The route table for HTTP requests. Required for `http`, optional for `auto` (HTTP that matches none of its routes goes to its original destination), refused for `tcp`.
    pub route_table: Field<String>,
    /// TCP listeners: the cluster bytes go to. Required for `tcp`, refused for `http` and `auto`.
    pub cluster: Field<String>,
    /// Terminate TLS here.
    pub tls: Field<RawListenerTls>,
    /// Connection limits and timeouts.
    pub limits: Field<RawListenerLimits>,
    /// HTTP listeners: how request paths are read before routing and authorization (see docs/security.md "Paths"). Refused for `tcp`.
    pub paths: Field<RawListenerPaths>,
    /// `inbound` (traffic coming to this pod or edge; stops accepting first on drain) or `outbound` (the app's own calls, redirected here by `meshwork init`; kept working while inbound drains, until the app is gone). Default is `inbound`.
    pub direction: Field<DirectionName>,
    /// Route each connection by where it was going before interception redirected it here (`SO_ORIGINAL_DST`, or the local address under TPROXY). Required with `protocol: auto`, refused otherwise. Default is `false`.
    pub original_destination: Field<bool>,
    /// `auto` listeners: per destination port, the protocol to assume instead of detecting it: `http`, `opaque` (forwarded unread at once) or `auto`. Overrides the built-in list of server-first ports (MySQL, PostgreSQL, SMTP, SSH, NATS, Redis...), which are opaque at once.
    pub ports: Field<Entries<PortProtocolName>>,
}

/// Whose traffic a listener carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "Direction")]
pub(crate) enum DirectionName {
    /// Traffic coming to this pod or edge (the default).
    Inbound,
    /// The app's own calls.
    Outbound,
}

/// The protocol an `auto` listener assumes for a destination port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "PortProtocol")]
pub(crate) enum PortProtocolName {
    /// Detect per connection, never waiting.
    Auto,
    /// HTTP/1.1 or HTTP/2.
    Http,
    /// Forward unread to the original destination at once.
    Opaque,
}

/// What a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "ListenerProtocol")]
pub(crate) enum ListenerProtocolName {
    /// HTTP/1.1 and HTTP/2 (detected per connection), routed by `route_table`.
    Http,
    /// Opaque TCP, forwarded to `cluster`.
    Tcp,
    /// Sidecar interception: detected per connection, routed by original destination.
    Auto,
}

/// TLS termination.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ListenerTls")]
pub(crate) struct RawListenerTls {
    /// Certificates, picked by SNI; the first is the default. At least one, unless `identity` is set (then the identity's certificate is served).
    pub certificates: List<RawCertificate>,
    /// Client certificates: `none`, `optional` or `required` (mTLS). Default is `none`.
    pub client_auth: Field<ClientAuthName>,
    /// CA bundle (PEM) to verify client certificates. Default is the `identity` trust bundle; required when `client_auth` is not `none` and there is no `identity`.
    pub client_ca: Field<String>,
    /// A client that has not finished the TLS handshake within this is disconnected. Default is `10s`.
    pub handshake_timeout: Field<DurationText>,
}

/// One server certificate.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Certificate")]
pub(crate) struct RawCertificate {
    /// Certificate chain (PEM), relative to the config file's directory. Required.
    pub cert: Field<String>,
    /// Private key (PEM), relative to the config file's directory. Required.
    pub key: Field<String>,
    /// Names (exact or `*.suffix`) this certificate is picked for by SNI.
    pub server_names: List<String>,
}

/// Whether clients must present a certificate.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "ClientAuth")]
pub(crate) enum ClientAuthName {
    /// Do not ask for a client certificate.
    None,
    /// Ask; accept clients without one.
    Optional,
    /// Require a valid client certificate (mTLS).
    Required,
}

/// Listener limits.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ListenerLimits")]
pub(crate) struct RawListenerLimits {
    /// Open connections at most; more are refused. Default is 10000.
    pub max_connections: Field<u32>,
    /// The whole request head must arrive within this (slowloris guard). On HTTP/2, each
    /// header block, and a connection's first stream counted from the connection's start
    /// (GOAWAY, then closed). Default is `10s`.
    pub header_read_timeout: Field<DurationText>,
    /// Largest request head accepted (431 beyond, as for a head of more than 100
    /// fields). Default is `64KiB`.
    pub max_request_header_size: Field<SizeText>,
    /// A connection with no request in flight for this long is closed. Default is `5m`.
    pub idle_timeout: Field<DurationText>,
}

/// How an HTTP listener reads request paths. Every path is normalized (RFC 3986 §6.2.2:
/// unreserved characters decoded, dot segments removed, repeated slashes merged) before
/// the route, the authorization policy and the upstream see it; these settings choose
/// what happens to the cases an upstream could read differently.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ListenerPaths")]
pub(crate) struct RawListenerPaths {
    /// A percent-encoded `/` or `\` (`%2F`, `%5C`, any case) in a path: `reject` answers 400 `malformed-request`; `keep` passes it on encoded (hex uppercased), never decoded and never read as a segment separator, for APIs whose names contain slashes. Default is `reject` (an upstream that decodes it would see other segments than the route and the policy did).
    pub escaped_slashes: Field<EscapedSlashesName>,
}

/// What to do with `%2F` and `%5C` in a request path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "EscapedSlashes")]
pub(crate) enum EscapedSlashesName {
    /// Answer 400 `malformed-request` (the default).
    Reject,
    /// Keep them encoded and opaque: part of a segment's name, never a separator.
    Keep,
}
