//! Envoy's scalar types in meshwork's notation: durations (`250ms`), socket addresses
//! (`host:port`), and `Any` payloads decoded against the type they must be.

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::{PortSpecifier, Protocol};
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
use envoy_types::pb::google::protobuf::{Any, Duration};
use prost::{Message, Name};

/// A protobuf duration as meshwork writes one (`1500ms`); `None` when negative or out of
/// range.
pub(super) fn duration(d: &Duration) -> Option<String> {
    if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 {
        return None;
    }
    let millis = u64::try_from(d.seconds)
        .ok()?
        .checked_mul(1000)?
        .checked_add(u64::from(d.nanos.unsigned_abs()).div_ceil(1_000_000))?;
    Some(format!("{millis}ms"))
}

/// Whether a duration is zero (Envoy's "disabled" for timeouts).
pub(super) fn is_zero(d: &Duration) -> bool {
    d.seconds == 0 && d.nanos == 0
}

/// A TCP socket address as `host:port` (`[v6]:port` for IPv6 literals).
///
/// # Errors
/// What the address sets that meshwork cannot use: a pipe, an internal address, UDP, a
/// named port or a resolver.
pub(super) fn socket_address(address: &Address) -> Result<String, String> {
    match &address.address {
        Some(AddressKind::SocketAddress(s)) => tcp_address(s),
        Some(AddressKind::Pipe(_)) => Err("pipe (unix socket) addresses are not supported".into()),
        Some(AddressKind::EnvoyInternalAddress(_)) => {
            Err("Envoy internal addresses are not supported".into())
        }
        None => Err("no address".into()),
    }
}

fn tcp_address(s: &SocketAddress) -> Result<String, String> {
    if s.protocol != Protocol::Tcp as i32 {
        return Err("only TCP addresses are supported".into());
    }
    if !s.resolver_name.is_empty() {
        return Err(format!(
            "resolver_name {:?} is not supported",
            s.resolver_name
        ));
    }
    if !s.network_namespace_filepath.is_empty() {
        return Err("network_namespace_filepath is not supported".into());
    }
    let port = match &s.port_specifier {
        Some(PortSpecifier::PortValue(p)) => *p,
        Some(PortSpecifier::NamedPort(name)) => {
            return Err(format!("named port {name:?} is not supported"));
        }
        None => 0,
    };
    if s.address.is_empty() {
        return Err("the address has no host".into());
    }
    if s.address.contains(':') {
        Ok(format!("[{}]:{port}", s.address))
    } else {
        Ok(format!("{}:{port}", s.address))
    }
}

/// `any` decoded as `M`.
///
/// # Errors
/// When it holds another type, or does not decode.
pub(super) fn decode<M: Message + Name + Default>(any: &Any) -> Result<M, String> {
    if any.type_url != M::type_url() {
        return Err(format!(
            "expected a {}, got {:?}",
            M::full_name(),
            any.type_url
        ));
    }
    M::decode(any.value.as_slice()).map_err(|e| format!("cannot decode {}: {e}", M::full_name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_written_in_milliseconds_rounded_up() {
        let d = |seconds, nanos| duration(&Duration { seconds, nanos });
        assert_eq!(d(1, 500_000_000).as_deref(), Some("1500ms"));
        assert_eq!(d(0, 1).as_deref(), Some("1ms"));
        assert_eq!(d(-1, 0), None);
        assert_eq!(d(i64::MAX, 0), None);
    }

    #[test]
    fn socket_addresses_take_tcp_hosts_and_ports_only() {
        let address = |host: &str, port| Address {
            address: Some(AddressKind::SocketAddress(SocketAddress {
                address: host.into(),
                port_specifier: Some(PortSpecifier::PortValue(port)),
                ..SocketAddress::default()
            })),
        };
        assert_eq!(
            socket_address(&address("127.0.0.1", 80)).unwrap(),
            "127.0.0.1:80"
        );
        assert_eq!(socket_address(&address("::1", 80)).unwrap(), "[::1]:80");
        assert!(socket_address(&address("", 80)).is_err());
        let mut udp = address("127.0.0.1", 53);
        if let Some(AddressKind::SocketAddress(s)) = &mut udp.address {
            s.protocol = Protocol::Udp as i32;
        }
        assert!(socket_address(&udp).is_err());
    }
}
