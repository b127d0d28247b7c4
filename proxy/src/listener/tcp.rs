//! Serves one downstream connection of a `protocol: tcp` listener: bytes both ways
//! between the client and an endpoint of the listener's cluster.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::cluster::connector::open;
use crate::snapshot::SnapshotHandle;

/// `stream`: the client's connection, plaintext or after the TLS handshake.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    client_addr: SocketAddr,
    listener: &str,
    snapshots: SnapshotHandle,
) {
    let snapshot = snapshots.load_full();
    let Some(cluster) = snapshot.cluster_for(listener) else {
        return;
    };
    // The same choice as HTTP: healthy endpoints whose breaker admits a connection; the
    // only hash key a TCP connection has is its source address.
    let key = matches!(
        cluster.config.hash,
        Some(meshwork_config::model::HashPolicy::SourceIp)
    )
    .then(|| crate::balance::hash_source_ip(client_addr.ip()));
    let endpoint = match cluster.pick(None, key) {
        Ok(endpoint) => endpoint.clone(),
        Err(error) => {
            tracing::debug!(%client_addr, cluster = cluster.name(), reason = error.reason(), "no endpoint for tcp connection");
            return;
        }
    };
    // TLS to the endpoint when the cluster originates it.
    let tls = endpoint.tls.as_deref();
    let mut upstream = match open(&endpoint.address, cluster.config.connect_timeout, tls).await {
        Ok(s) => s,
        Err(error) => {
            tracing::debug!(%client_addr, %error, "tcp upstream connect failed");
            return;
        }
    };
    drop(snapshot);
    // Opaque bytes cannot be drained gracefully: on drain, the connection lives until the
    // drain timeout ends the process.
    if let Err(error) = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await {
        tracing::debug!(%client_addr, %error, "tcp proxy connection broken");
    }
}
