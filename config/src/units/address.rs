//! Addresses and host names: socket addresses to bind, upstream `host:port`, DNS names,
//! host patterns.

use std::net::{IpAddr, SocketAddr};

use crate::model::{Address, HostMatch};

/// A socket address to bind: an IP literal and a port (`0.0.0.0:8080`, `[::1]:8080`).
/// Port 0 is allowed (the OS picks one).
pub fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let address = parse_host_port(text, true)?;
    match address.host.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, address.port)),
        Err(_) => Err(format!(
            "{text:?} is not an IP address and port (addresses to bind take an IP literal, e.g. \"127.0.0.1:{}\" or \"0.0.0.0:{}\")",
            address.port, address.port
        )),
    }
}

/// An upstream `host:port`; the host may be a DNS name. Port 0 is refused.
pub fn parse_address(text: &str) -> Result<Address, String> {
    parse_host_port(text, false)
}

fn parse_host_port(text: &str, bind: bool) -> Result<Address, String> {
    let example = if bind {
        "e.g. \"127.0.0.1:8080\" or \"[::1]:8080\""
    } else {
        "e.g. \"127.0.0.1:8080\", \"[::1]:8080\" or \"api.internal:80\""
    };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(format!(
                "{text:?} is not an address: missing \"]\" ({example})"
            ));
        };
        let Some(port) = after.strip_prefix(':') else {
            return Err(format!("{text:?} has no port ({example})"));
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!(
                "{text:?} is not an address: {host:?} is not an IPv6 address"
            ));
        }
        (host, port)
    } else {
        let Some((host, port)) = text.rsplit_once(':') else {
            return Err(format!("{text:?} has no port ({example})"));
        };
        if host.contains(':') {
            return Err(format!(
                "{text:?} is not an address: write IPv6 addresses in brackets, e.g. \"[{host}]:{port}\""
            ));
        }
        if host.parse::<IpAddr>().is_err() {
            check_dns_name(host).map_err(|why| format!("{text:?} is not an address: {why}"))?;
        }
        (host, port)
    };
    let port: u16 = port.parse().map_err(|_| {
        format!("{text:?} is not an address: port {port:?} is not a number from 1 to 65535")
    })?;
    if port == 0 && !bind {
        return Err(format!(
            "{text:?} is not an address: port 0 cannot be connected to"
        ));
    }
    Ok(Address {
        host: host.to_string(),
        port,
    })
}

/// A DNS name: dot-separated labels of letters, digits, `-` and `_`, each 1 to 63
/// characters, not starting or ending with `-`; 253 characters at most.
pub fn check_dns_name(name: &str) -> Result<(), String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("the host name is empty".to_string());
    }
    if name.len() > 253 {
        return Err(format!("host name {name:?} is longer than 253 characters"));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(format!("{name:?} is not a valid host name"));
        }
    }
    Ok(())
}

/// A host pattern: an exact name or `*.suffix`, lower-cased. Any other `*` is refused.
pub fn parse_host_match(text: &str) -> Result<HostMatch, String> {
    let lower = text.trim().to_ascii_lowercase();
    if let Some(suffix) = lower.strip_prefix("*.") {
        if suffix.contains('*') {
            return Err(format!(
                "{text:?} is not a host pattern: \"*\" may only be the whole first label (\"*.example.com\")"
            ));
        }
        check_dns_name(suffix).map_err(|why| format!("{text:?} is not a host pattern: {why}"))?;
        return Ok(HostMatch::Wildcard(format!(".{suffix}")));
    }
    if lower.contains('*') {
        return Err(format!(
            "{text:?} is not a host pattern: \"*\" may only be the whole first label (\"*.example.com\")"
        ));
    }
    let bare = lower
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(&lower);
    if bare.parse::<IpAddr>().is_err() {
        check_dns_name(bare).map_err(|why| format!("{text:?} is not a host pattern: {why}"))?;
    }
    Ok(HostMatch::Exact(lower))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addresses_need_an_ip_literal() {
        assert_eq!(
            parse_socket_addr("127.0.0.1:8080"),
            Ok("127.0.0.1:8080".parse().expect("addr"))
        );
        assert_eq!(
            parse_socket_addr("[::1]:0"),
            Ok("[::1]:0".parse().expect("addr"))
        );
        assert!(
            parse_socket_addr("localhost:80")
                .expect_err("dns")
                .contains("IP literal")
        );
        assert!(
            parse_socket_addr("127.0.0.1")
                .expect_err("port")
                .contains("has no port")
        );
        assert!(
            parse_socket_addr("1.2.3.4:99999")
                .expect_err("range")
                .contains("65535")
        );
    }

    #[test]
    fn upstream_addresses_may_be_dns_names() {
        let a = parse_address("api.internal:80").expect("dns");
        assert_eq!((a.host.as_str(), a.port), ("api.internal", 80));
        let v6 = parse_address("[::1]:9000").expect("v6");
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), "[::1]:9000");
        assert!(
            parse_address("::1:80")
                .expect_err("v6")
                .contains("brackets")
        );
        assert!(
            parse_address("api.internal:0")
                .expect_err("zero")
                .contains("port 0")
        );
        assert!(
            parse_address("bad host:80")
                .expect_err("name")
                .contains("not a valid host name")
        );
        assert!(
            parse_address("api.internal")
                .expect_err("port")
                .contains("no port")
        );
    }

    #[test]
    fn host_patterns_are_exact_or_leading_wildcard() {
        assert_eq!(
            parse_host_match("API.Example.com"),
            Ok(HostMatch::Exact("api.example.com".to_string()))
        );
        assert_eq!(
            parse_host_match("*.example.com"),
            Ok(HostMatch::Wildcard(".example.com".to_string()))
        );
        assert!(parse_host_match("api.*.com").is_err());
        assert!(parse_host_match("*example.com").is_err());
        assert!(parse_host_match("*").is_err());
    }
}
