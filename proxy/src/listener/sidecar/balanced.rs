//! Opaque connections (TCP, TLS passed through) an outbound `auto` listener intercepts on
//! their way to a Service VIP: connected to an endpoint the VIP's cluster's balancer
//! picks, never to the VIP itself (so kube-proxy does not balance them again), within
//! the cluster's `max_connections` and breakers, meshed when the endpoint is.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use super::race::{Connecting, UpstreamStream};
use crate::cluster::{ClusterRuntime, HeldLoad, opaque};

/// Dials an endpoint of `cluster` for a connection from `client`; the connection holds
/// its cluster slot and its endpoint's load for as long as it lives.
pub fn dial(cluster: Arc<ClusterRuntime>, client: IpAddr) -> Connecting {
    Box::pin(async move {
        let (stream, endpoint) = opaque::connect(&cluster, client)
            .await
            .map_err(|error| io::Error::other(Unbalanced { error }))?;
        Ok(UpstreamStream::Held {
            held: Box::new(stream),
            load: HeldLoad::new(endpoint),
        })
    })
}

/// Why no endpoint of the VIP's cluster took the connection.
#[derive(Debug, thiserror::Error)]
#[error("no endpoint of the VIP's cluster was connected: {error}")]
pub struct Unbalanced {
    error: crate::http::ProxyError,
}
