//! Where an intercepted connection was going before `meshwork init`'s redirect sent it
//! here: the address conntrack recorded (`SO_ORIGINAL_DST`, `IP6T_SO_ORIGINAL_DST`).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt};

/// The original destination of the accepted connection `socket`, whose local address is
/// `local`. A connection that was not redirected has none (`ENOENT`): its original
/// destination is its local address, which the caller knows.
///
/// # Errors
/// The kernel's error, e.g. `ENOENT` for a connection conntrack did not translate.
pub fn original_destination(socket: &impl AsFd, local: SocketAddr) -> io::Result<SocketAddr> {
    let v4 = match local {
        SocketAddr::V4(_) => true,
        // A dual-stack socket's IPv4 connections are tracked as IPv4.
        SocketAddr::V6(a) => a.ip().to_ipv4_mapped().is_some(),
    };
    if v4 {
        let sin = getsockopt(socket, sockopt::OriginalDst).map_err(io::Error::from)?;
        Ok(SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
            u16::from_be(sin.sin_port),
        )))
    } else {
        let sin6 = getsockopt(socket, sockopt::Ip6tOriginalDst).map_err(io::Error::from)?;
        Ok(SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(sin6.sin6_addr.s6_addr),
            u16::from_be(sin6.sin6_port),
            sin6.sin6_flowinfo,
            sin6.sin6_scope_id,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_that_was_not_redirected_has_no_original_destination() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let local = accepted.local_addr().unwrap();
        // Without a NAT rule conntrack has no translation to report (or, where conntrack
        // is not loaded at all, the option is unknown): never a made-up address.
        match original_destination(&accepted, local) {
            Err(_) => {}
            Ok(dst) => assert_eq!(dst, local, "an untranslated connection reports itself"),
        }
    }
}
