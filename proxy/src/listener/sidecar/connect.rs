//! Connections to original destinations. Under TPROXY the app is meant to see the
//! client's own address, so the connection is opened from it: a transparent socket bound
//! to the client's IP, carrying `meshwork init`'s TPROXY mark so that the app's replies
//! (addressed to the client) are routed back to the proxy (see docs/sidecar.md, "TPROXY
//! mode").

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::net::{TcpSocket, TcpStream};

/// How long a connection to an original destination may take (as the
/// `original-destination` cluster's, see `cluster/original_dst.rs`).
pub const CONNECT_TIMEOUT: Duration = crate::cluster::original_dst::CONNECT_TIMEOUT;

/// `meshwork init --mode tproxy`'s default `--tproxy-mark`.
pub const TPROXY_MARK: u32 = 0x539;

/// Opens a connection to `destination`; from `transparent_source` (the client's address)
/// when the connection was delivered by TPROXY.
///
/// # Errors
/// The connect's own error, or `TimedOut` after [`CONNECT_TIMEOUT`].
pub async fn connect(
    destination: SocketAddr,
    transparent_source: Option<IpAddr>,
) -> io::Result<TcpStream> {
    let connecting = async {
        let Some(source) = transparent_source else {
            return TcpStream::connect(destination).await;
        };
        let socket = Socket::new(Domain::for_address(destination), Type::STREAM, None)?;
        if destination.is_ipv6() {
            socket.set_ip_transparent_v6(true)?;
        } else {
            socket.set_ip_transparent_v4(true)?;
        }
        socket.set_mark(TPROXY_MARK)?;
        socket.set_nonblocking(true)?;
        socket.bind(&SocketAddr::new(source, 0).into())?;
        TcpSocket::from_std_stream(socket.into())
            .connect(destination)
            .await
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}
