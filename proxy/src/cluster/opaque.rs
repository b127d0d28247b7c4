//! A whole client connection's bytes to one endpoint of a cluster, admitted as an HTTP
//! attempt is: a `tcp` listener's connections, and the opaque traffic (TCP, TLS passed
//! through) an `auto` listener intercepts on its way to a Service VIP.

use std::net::IpAddr;
use std::sync::Arc;

use meshwork_config::model::HashPolicy;

use super::attempt::{Admission, Target};
use super::connector::CountedStream;
use super::{ClusterRuntime, Endpoint};
use crate::http::ProxyError;

/// Opens a connection for opaque bytes to an endpoint of `cluster`: a connection slot of
/// its `max_connections` first (so a refusal there spends no half-open trial of a
/// breaker), then an endpoint as HTTP picks one (healthy, breaker admitting; the only
/// hash key a connection has is `client`'s address), whose breaker then hears how the
/// connect went. A meshed endpoint's header says opaque, so its sidecar relays the bytes
/// to its app unread.
///
/// # Errors
/// Why no connection was made: `Overflow`, `NoHealthyEndpoint`, `CircuitOpen`,
/// `ConnectFailed`.
pub async fn connect(
    cluster: &Arc<ClusterRuntime>,
    client: IpAddr,
) -> Result<(CountedStream, Arc<Endpoint>), ProxyError> {
    let key = matches!(cluster.config.hash, Some(HashPolicy::SourceIp))
        .then(|| crate::balance::hash_source_ip(client));
    let target = Target::Pick { avoid: None, key };
    let mut attempt = cluster.begin(Admission::Connection, target, None)?;
    let endpoint = attempt.endpoint().clone();
    let slot = attempt.take_connection_slot().ok_or(ProxyError::Overflow)?;
    // Dropped before the connect ends (the listener going away), the attempt gives its
    // breaker admission back.
    let connected = endpoint.connector.open_opaque(slot).await;
    attempt.connected(connected.is_ok());
    match connected {
        Ok(stream) => Ok((stream, endpoint)),
        Err(error) => {
            tracing::debug!(cluster = %cluster.config.name, endpoint = %endpoint.address, %error, "opaque upstream connect failed");
            Err(ProxyError::ConnectFailed)
        }
    }
}
