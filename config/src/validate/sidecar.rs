//! Validation of the sidecar fields: a listener's `direction`, `original_destination` and
//! per-port protocol hints, and the top-level `mesh`.
//!
//! `protocol: auto` and `original_destination: true` go together: an `auto` listener
//! forwards whatever it does not route to where the connection was going, so without the
//! original destination it would have nowhere to send it; and only an `auto` listener
//! knows what to do with a connection whose destination is not a cluster of its own.

use std::collections::BTreeMap;

use super::Check;
use crate::model::{Direction, Mesh, MeshInbound, PortProtocol};
use crate::raw::{
    DirectionName, ListenerProtocolName, MeshInboundName, PortProtocolName, RawListener, RawMesh,
};
use crate::sidecar::DEFAULT_MESH_INBOUND_PORT;
use crate::spanned::Spanned;

/// A listener's sidecar fields, checked against its protocol.
pub(crate) struct ListenerSidecar {
    pub direction: Direction,
    pub original_destination: bool,
    pub ports: BTreeMap<u16, PortProtocol>,
}

pub(crate) fn listener(
    ck: &mut Check<'_>,
    at: &Spanned<RawListener>,
    raw: &RawListener,
    kind: ListenerProtocolName,
) -> ListenerSidecar {
    let direction = match raw.direction.as_ref().and_then(Spanned::get) {
        None | Some(DirectionName::Inbound) => Direction::Inbound,
        Some(DirectionName::Outbound) => Direction::Outbound,
    };
    let original_destination = raw
        .original_destination
        .as_ref()
        .and_then(Spanned::get)
        .copied()
        .unwrap_or(false);
    let auto = kind == ListenerProtocolName::Auto;
    match (&raw.original_destination, auto) {
        (Some(field), false) if original_destination => ck.error(
            field,
            "only `protocol: auto` listeners route by original destination (an http listener \
             routes by its route_table, a tcp listener sends to its cluster)",
        ),
        (_, true) if !original_destination => {
            let (pos, path) = raw
                .original_destination
                .as_ref()
                .map_or((at.pos, at.path.as_str()), |f| (f.pos, f.path.as_str()));
            ck.at(
                pos,
                path,
                "a `protocol: auto` listener sends what it does not route to each \
                 connection's original destination: set `original_destination: true`",
            );
        }
        _ => {}
    }
    let mut ports = BTreeMap::new();
    if let Some(field) = &raw.ports {
        if !auto {
            ck.error(
                field,
                "only `protocol: auto` listeners take per-port protocol hints (this \
                 listener's protocol is fixed)",
            );
        }
        for (key, value) in field.get().map(|e| e.0.as_slice()).unwrap_or_default() {
            let Some(text) = key.get() else { continue };
            let port = match text.parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => {
                    ck.error(
                        key,
                        format!("{text:?} is not a port (a number from 1 to 65535)"),
                    );
                    continue;
                }
            };
            let Some(protocol) = value.get() else {
                continue;
            };
            ports.insert(
                port,
                match protocol {
                    PortProtocolName::Auto => PortProtocol::Auto,
                    PortProtocolName::Http => PortProtocol::Http,
                    PortProtocolName::Opaque => PortProtocol::Opaque,
                },
            );
        }
    }
    if auto {
        if let Some(tls) = &raw.tls {
            ck.error(
                tls,
                "a `protocol: auto` listener does not terminate TLS of its own: clients' TLS is \
                 passed through (by SNI), and meshed peers' mutual TLS is set by `mesh` and \
                 `identity`",
            );
        }
    }
    ListenerSidecar {
        direction,
        original_destination,
        ports,
    }
}

/// The top-level `mesh`. It needs an `identity`: meshed connections are mutual TLS with
/// the proxy's own certificate, verified against the identity's trust bundle.
pub(crate) fn mesh(ck: &mut Check<'_>, at: &Spanned<RawMesh>, identity: bool) -> Mesh {
    let raw = at.get();
    if !identity {
        ck.error(
            at,
            "meshed connections are mutual TLS with this proxy's identity: add an `identity` \
             (cert, key, trust_bundle)",
        );
    }
    let mut networks = Vec::new();
    if let Some(raw) = raw {
        if ck.require(at, &raw.networks, "networks") {
            networks = ck.list(&raw.networks, |ck, at, text| match network(text) {
                Ok(net) => Some(net),
                Err(message) => {
                    ck.error(at, message);
                    None
                }
            });
            if let Some(field) = raw.networks.as_ref().filter(|_| networks.is_empty()) {
                if field.get().is_some_and(Vec::is_empty) {
                    ck.error(
                        field,
                        "needs at least one network (a CIDR such as 10.0.0.0/8)",
                    );
                }
            }
        }
    }
    let inbound = match raw.and_then(|r| r.inbound.as_ref()).and_then(Spanned::get) {
        None | Some(MeshInboundName::Permissive) => MeshInbound::Permissive,
        Some(MeshInboundName::Strict) => MeshInbound::Strict,
    };
    let inbound_port = raw.map_or(u32::from(DEFAULT_MESH_INBOUND_PORT), |r| {
        ck.int_in(
            &r.inbound_port,
            1,
            65535,
            u32::from(DEFAULT_MESH_INBOUND_PORT),
        )
    });
    Mesh {
        networks,
        inbound,
        inbound_port: u16::try_from(inbound_port).unwrap_or(DEFAULT_MESH_INBOUND_PORT),
    }
}

/// A CIDR, or a bare address (a network of one).
fn network(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        if net.trunc() != net {
            return Err(format!(
                "{text:?} has host bits set (did you mean {:?}?)",
                net.trunc().to_string()
            ));
        }
        return Ok(net);
    }
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(ipnet::IpNet::from(ip));
    }
    Err(format!(
        "{text:?} is not a network: write a CIDR such as \"10.0.0.0/8\" or \"fd00::/8\""
    ))
}

#[cfg(test)]
mod tests {
    use super::network;

    #[test]
    fn networks_are_cidrs_without_host_bits() {
        assert_eq!(network("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(network("10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
        assert_eq!(network("fd00::/8").unwrap().to_string(), "fd00::/8");
        assert_eq!(
            network("10.1.0.0/8").unwrap_err(),
            r#""10.1.0.0/8" has host bits set (did you mean "10.0.0.0/8"?)"#
        );
        assert!(network("ten/8").unwrap_err().contains("not a network"));
    }
}
