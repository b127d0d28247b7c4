//! Where an intercepted connection was going: the address conntrack recorded before
//! `meshwork init`'s REDIRECT rewrote it (`SO_ORIGINAL_DST`), or, under TPROXY, the
//! address the connection was accepted on (the listener socket is transparent, so the
//! kernel delivered it untouched).
//!
//! A connection that reached the listener's own address directly (an app dialing
//! `127.0.0.1:15001`, loopback is never captured) has no original destination: forwarding
//! it "to where it was going" would connect the proxy to itself, so it is refused.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use crate::listener::original_destination;

/// Why a connection has no destination to forward to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoDestination {
    #[error("the connection was not redirected here (it dialed the listener itself)")]
    NotRedirected,
    #[error("the original destination is this listener (forwarding would loop)")]
    Loop,
}

impl NoDestination {
    /// The `reason` label of `meshwork_sidecar_refused_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotRedirected => "not-redirected",
            Self::Loop => "loop",
        }
    }
}

/// Where a connection was going, and how it got here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Destination {
    pub address: SocketAddr,
    /// Delivered by TPROXY: the destination should see the client's own address.
    pub transparent: bool,
}

/// The original destination of `stream`, accepted by a listener bound to `listening`.
///
/// # Errors
/// [`NoDestination`] when the connection was not intercepted, or was going to one of the
/// proxy's own listener ports (`is_own_port`) on this host.
pub fn resolve(
    stream: &TcpStream,
    listening: SocketAddr,
    is_own_port: impl Fn(u16) -> bool,
) -> Result<Destination, NoDestination> {
    let local = stream
        .local_addr()
        .map_err(|_| NoDestination::NotRedirected)?;
    let (destination, transparent) = match original_destination(stream, local) {
        // conntrack reports an untranslated connection as itself.
        Ok(dst) if dst != local => (dst, false),
        // TPROXY: accepted on an address the listener is not bound to.
        _ if !same_socket(local, listening) => (local, true),
        _ => return Err(NoDestination::NotRedirected),
    };
    if is_own_port(destination.port()) && is_this_host(destination, local) {
        return Err(NoDestination::Loop);
    }
    Ok(Destination {
        address: destination.map_v4_mapped(),
        transparent,
    })
}

/// Whether `local` is the listening socket's own address (a wildcard listener accepts
/// on any local address, so only its port counts then).
fn same_socket(local: SocketAddr, listening: SocketAddr) -> bool {
    local.port() == listening.port()
        && (listening.ip().is_unspecified() || canonical(local) == canonical(listening))
}

/// Whether `destination` is an address of this host: loopback, or the address the
/// connection itself arrived on.
fn is_this_host(destination: SocketAddr, local: SocketAddr) -> bool {
    let ip = canonical(destination);
    ip.is_loopback() || ip.is_unspecified() || ip == canonical(local)
}

fn canonical(addr: SocketAddr) -> std::net::IpAddr {
    addr.ip().to_canonical()
}

trait MapV4Mapped {
    fn map_v4_mapped(self) -> Self;
}

impl MapV4Mapped for SocketAddr {
    /// A dual-stack socket's IPv4 peer, as plain IPv4 (what `mesh.networks` and the
    /// upstream connect expect).
    fn map_v4_mapped(self) -> Self {
        SocketAddr::new(self.ip().to_canonical(), self.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listener_owns_every_local_address_on_its_port() {
        let listening: SocketAddr = "0.0.0.0:15006".parse().unwrap();
        assert!(same_socket("10.0.0.5:15006".parse().unwrap(), listening));
        assert!(!same_socket("10.0.0.5:8080".parse().unwrap(), listening));
        let specific: SocketAddr = "127.0.0.1:15001".parse().unwrap();
        assert!(same_socket("127.0.0.1:15001".parse().unwrap(), specific));
        assert!(!same_socket("10.0.0.5:15001".parse().unwrap(), specific));
    }

    #[test]
    fn loops_are_the_proxys_own_ports_on_this_host() {
        let local: SocketAddr = "10.0.0.5:15006".parse().unwrap();
        assert!(is_this_host("127.0.0.1:15001".parse().unwrap(), local));
        assert!(is_this_host("10.0.0.5:15001".parse().unwrap(), local));
        assert!(!is_this_host("10.0.0.6:15001".parse().unwrap(), local));
        assert!(is_this_host("[::ffff:10.0.0.5]:1".parse().unwrap(), local));
    }

    #[tokio::test]
    async fn a_connection_to_the_listener_itself_is_not_redirected() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert_eq!(
            resolve(&accepted, addr, |p| p == addr.port()),
            Err(NoDestination::NotRedirected)
        );
    }
}
