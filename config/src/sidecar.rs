//! The sidecar's part of the model: which way a listener's traffic goes, what protocol a
//! destination port is assumed to speak, and which destinations run meshwork too.
//!
//! Kept apart from the rest of the model because `auto` listeners decide per connection
//! with it (`port_protocol`), in the proxy and in `explain` alike.

use std::collections::BTreeMap;

use ipnet::IpNet;

/// The cluster an `auto` listener sends what matches none of its routes to: each
/// connection's original destination. Reserved: no cluster of the config may take it.
pub const ORIGINAL_DESTINATION_CLUSTER: &str = "original-destination";

/// Whose traffic a listener carries.
#[derive(serde::Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Traffic coming to this pod or edge: stops accepting first on drain.
    #[default]
    Inbound,
    /// The app's own calls: kept working while inbound drains, until the app is gone.
    Outbound,
}

/// What an `auto` listener assumes a destination port speaks.
#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PortProtocol {
    /// Detect per connection, never waiting (the default for ports not in
    /// [`SERVER_FIRST_PORTS`]).
    Auto,
    /// HTTP/1.1 or HTTP/2: served as HTTP without racing a connect to the destination.
    Http,
    /// Bytes forwarded to the original destination at once, unread (server-first
    /// protocols, or anything that must not be sniffed).
    Opaque,
}

/// Well-known ports of protocols whose server speaks first (a greeting before any client
/// byte) or that are never HTTP: an `auto` listener forwards them opaque at once, with no
/// detection at all. A listener's `ports` overrides any of them.
pub const SERVER_FIRST_PORTS: &[(u16, &str)] = &[
    (21, "FTP"),
    (22, "SSH"),
    (25, "SMTP"),
    (110, "POP3"),
    (143, "IMAP"),
    (587, "SMTP submission"),
    (3306, "MySQL"),
    (4222, "NATS"),
    (4567, "Galera replication"),
    (4568, "Galera IST"),
    (4444, "Galera SST"),
    (5432, "PostgreSQL"),
    (6379, "Redis"),
    (11211, "memcached"),
    (27017, "MongoDB"),
    (33060, "MySQL X protocol"),
];

/// The protocol an `auto` listener assumes for destination `port` before any detection:
/// the listener's own hint, else the built-in server-first list, else [`PortProtocol::Auto`].
pub fn port_protocol(hints: &BTreeMap<u16, PortProtocol>, port: u16) -> PortProtocol {
    if let Some(hint) = hints.get(&port) {
        return *hint;
    }
    if SERVER_FIRST_PORTS.iter().any(|(p, _)| *p == port) {
        return PortProtocol::Opaque;
    }
    PortProtocol::Auto
}

/// A cluster's virtual addresses (`vip`, a Kubernetes Service's ClusterIP and port): an
/// `auto` listener sends the connections it intercepts on their way to one of them to the
/// cluster, balanced over its endpoints, instead of to the address itself.
#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Vip {
    pub addresses: Vec<std::net::SocketAddr>,
    /// What connections to them speak; [`PortProtocol::Auto`] leaves it to the
    /// listener's hints and to detection.
    pub protocol: PortProtocol,
}

/// The protocol an `auto` listener assumes for a connection to `port` that was going to
/// a VIP speaking `vip` (`None`: not a VIP): the VIP's own `http` or `opaque` (the
/// Service says what its port speaks, more precisely than a listener's per-port hint),
/// else [`port_protocol`].
pub fn destination_protocol(
    hints: &BTreeMap<u16, PortProtocol>,
    port: u16,
    vip: Option<PortProtocol>,
) -> PortProtocol {
    match vip {
        Some(hint @ (PortProtocol::Http | PortProtocol::Opaque)) => hint,
        Some(PortProtocol::Auto) | None => port_protocol(hints, port),
    }
}

/// Connections between meshwork sidecars: which destinations run meshwork (so the
/// outbound side originates mutual TLS to their inbound port instead of the app's), and
/// whether the inbound side still accepts clients that are not meshed.
#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Mesh {
    /// Destinations in these networks run a meshwork sidecar.
    #[serde(serialize_with = "crate::ser::display_list")]
    pub networks: Vec<IpNet>,
    pub inbound: MeshInbound,
    /// The port meshed peers accept on (their inbound listener). Default
    /// [`DEFAULT_MESH_INBOUND_PORT`].
    pub inbound_port: u16,
}

/// The port `meshwork init` redirects a pod's inbound traffic to, by default.
pub const DEFAULT_MESH_INBOUND_PORT: u16 = 15006;

impl Mesh {
    /// Whether a destination runs meshwork.
    pub fn is_meshed(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
            v4 => v4,
        };
        self.networks.iter().any(|n| n.contains(&ip))
    }
}

/// What an inbound listener does with a client that is not a meshed peer (as Istio's
/// PeerAuthentication modes).
#[derive(serde::Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MeshInbound {
    /// Plaintext (and non-meshed TLS) clients are still served.
    #[default]
    Permissive,
    /// Only meshed peers (mutual TLS with a meshwork identity) are served.
    Strict,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vips_own_protocol_overrides_the_listeners_hint_and_auto_defers_to_it() {
        let hints: BTreeMap<u16, PortProtocol> = [(8080, PortProtocol::Opaque)].into();
        let http = Some(PortProtocol::Http);
        assert_eq!(destination_protocol(&hints, 8080, http), PortProtocol::Http);
        assert_eq!(
            destination_protocol(&hints, 80, Some(PortProtocol::Opaque)),
            PortProtocol::Opaque
        );
        let auto = Some(PortProtocol::Auto);
        assert_eq!(
            destination_protocol(&hints, 8080, auto),
            PortProtocol::Opaque
        );
        assert_eq!(
            destination_protocol(&hints, 3306, auto),
            PortProtocol::Opaque
        );
        assert_eq!(destination_protocol(&hints, 80, None), PortProtocol::Auto);
    }

    #[test]
    fn a_listed_port_overrides_the_built_in_server_first_list() {
        let mut hints = BTreeMap::new();
        assert_eq!(port_protocol(&hints, 3306), PortProtocol::Opaque);
        assert_eq!(port_protocol(&hints, 8080), PortProtocol::Auto);
        hints.insert(3306, PortProtocol::Http);
        hints.insert(8080, PortProtocol::Opaque);
        assert_eq!(port_protocol(&hints, 3306), PortProtocol::Http);
        assert_eq!(port_protocol(&hints, 8080), PortProtocol::Opaque);
    }

    #[test]
    fn an_ipv4_mapped_destination_is_matched_as_ipv4() {
        let mesh = Mesh {
            networks: vec!["10.0.0.0/8".parse().unwrap()],
            inbound: MeshInbound::Permissive,
            inbound_port: DEFAULT_MESH_INBOUND_PORT,
        };
        assert!(mesh.is_meshed("10.1.2.3".parse().unwrap()));
        assert!(mesh.is_meshed("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!mesh.is_meshed("192.168.1.1".parse().unwrap()));
    }
}
