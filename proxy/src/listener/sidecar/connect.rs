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
