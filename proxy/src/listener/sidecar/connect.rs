//! Connections to original destinations. Under TPROXY the app is meant to see the
//! client's own address, so the connection is opened from it: a transparent socket bound
//! to the client's IP, carrying `meshwork init`'s TPROXY mark so that the app's replies
//! (addressed to the client) are routed back to the proxy (see docs/sidecar.md, "TPROXY
//! mode").

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;

use crate::cluster::connector::connect_transparent;
use meshwork_config::model::Address;

/// How long a connection to an original destination may take (as the
/// `original-destination` cluster's, see `cluster/original_dst.rs`).
pub const CONNECT_TIMEOUT: Duration = crate::cluster::original_dst::CONNECT_TIMEOUT;

/// Opens a connection to `destination`; from `transparent_source` (the client's address)
/// when the connection was delivered by TPROXY.
///
/// # Errors
/// The connect's own error, or `TimedOut` after [`CONNECT_TIMEOUT`].
pub async fn connect(
    destination: SocketAddr,
    transparent_source: Option<IpAddr>,
) -> io::Result<TcpStream> {
    if let Some(source) = transparent_source {
        let address = Address {
            host: destination.ip().to_string(),
            port: destination.port(),
        };
        return connect_transparent(&address, source, CONNECT_TIMEOUT)
            .await
            .map_err(io::Error::other);
    }
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(destination))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Whether this pod runs in TPROXY mode for a connection from `client`: the proxy's
/// marked packets to `client` are routed by `meshwork init --mode tproxy`'s policy
/// routing (the mark's own table, whose default route is local) instead of leaving the
/// pod as unmarked ones do. Only then can a connection to the app be opened from
/// `client`'s address (the app's replies, addressed to `client`, come back to the
/// proxy), so only then is it. Two route lookups (UDP sockets connected, nothing sent):
/// no packet, no state.
///
/// `false` without CAP_NET_ADMIN (the mark cannot be set, and neither could the
/// transparent connection be made), for a client on this host, and in REDIRECT mode.
pub fn routed_back_under_tproxy(client: IpAddr) -> bool {
    let client = client.to_canonical();
    match (
        route_source(client, None),
        route_source(client, Some(crate::init::DEFAULT_TPROXY_MARK)),
    ) {
        (Ok(Some(unmarked)), Ok(marked)) => unmarked != client && marked != Some(unmarked),
        _ => false,
    }
}

/// The source address the kernel picks towards `destination` for packets carrying
/// `mark`; `None` when it has no route (a `local` route of the mark's table answers
/// `ENETUNREACH` to a connect).
///
/// # Errors
/// When the socket cannot be made or marked.
fn route_source(destination: IpAddr, mark: Option<u32>) -> io::Result<Option<IpAddr>> {
    let target = SocketAddr::new(destination, 9);
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(target),
        socket2::Type::DGRAM,
        None,
    )?;
    if let Some(mark) = mark {
        socket.set_mark(mark)?;
    }
    if socket.connect(&target.into()).is_err() {
        return Ok(None);
    }
    Ok(socket
        .local_addr()?
        .as_socket()
        .map(|local| local.ip().to_canonical()))
}
