//! Serves one downstream connection of a `protocol: tcp` listener: the listener's
//! authorization policy decides by the peer's identity, then the cluster's limits and
//! circuit breakers admit (or refuse) a connection to one of its endpoints, then bytes
//! go both ways until either side is done or the listener's `idle_timeout` passes.
//!
//! A refused connection is closed before anything is sent upstream (no upstream
//! connection is even opened), counted by reason and logged at a bounded rate.

pub(in crate::listener) mod relay;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::cluster::connector::CountedStream;
use crate::cluster::{Endpoint, InFlight};
use crate::http::ProxyError;
use crate::metrics::Metrics;
use crate::observe::log_limit::LogLimiter;
use crate::snapshot::{SnapshotHandle, TcpListenerPlan};
use relay::RelayEnd;

/// What a connection needs to know about its listener.
#[derive(Clone, Debug)]
pub struct TcpConnSettings {
    pub snapshots: SnapshotHandle,
    pub idle_timeout: Duration,
    pub handles: Arc<TcpListenerHandles>,
}

/// A TCP listener's refusal counters and log budget, shared by its connections.
#[derive(Debug)]
pub struct TcpListenerHandles {
    listener: Arc<str>,
    metrics: Metrics,
    idle_timeouts: IntCounter,
    /// Bounds the refusal log lines of this listener.
    refusals_logged: Arc<LogLimiter>,
}

impl TcpListenerHandles {
    pub fn new(metrics: &Metrics, listener: Arc<str>) -> Self {
        Self {
            idle_timeouts: metrics
                .tcp
                .idle_timeouts_total
                .with_label_values(&[&*listener]),
            metrics: metrics.clone(),
            refusals_logged: LogLimiter::per_listener(listener.clone(), "refused tcp connections"),
            listener,
        }
    }

    /// Counts and (within the log budget) logs a connection closed unrelayed.
    fn refused(&self, reason: ProxyError, client_addr: SocketAddr, peer: Option<&str>) {
        let listener = &*self.listener;
        self.metrics.tcp.refused(listener, reason.reason()).inc();
        if reason == ProxyError::Unauthorized {
            self.metrics
                .tls
                .authorization_denied_total
                .with_label_values(&[listener])
                .inc();
        }
        if self.refusals_logged.admit(reason.reason()) {
            tracing::info!(
                listener,
                %client_addr,
                peer_identity = peer.unwrap_or("-"),
                reason = reason.reason(),
                "tcp connection refused; closed before reaching an upstream"
            );
        }
    }
}

/// Serves one connection: `stream` is the client's, plaintext or after the TLS
/// handshake; `peer` the verified identity of its client certificate, if any.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    client_addr: SocketAddr,
    peer: Option<Arc<str>>,
    settings: TcpConnSettings,
) {
    let Some(plan) = settings
        .snapshots
        .load()
        .tcp_listener(&settings.handles.listener)
        .cloned()
    else {
        return;
    };
    let (upstream, endpoint) = match connect(&plan, client_addr, peer.as_deref()).await {
        Ok(connected) => connected,
        Err(reason) => {
            settings
                .handles
                .refused(reason, client_addr, peer.as_deref());
            return;
        }
    };
    // The connection holds its endpoint (for `least_request` and `/clusters`), not the
    // snapshot: a reload during a long connection frees what it replaced.
    drop(plan);
    let in_flight = InFlight::new(&endpoint);
    // Opaque bytes cannot be drained gracefully: on drain, the connection lives until the
    // drain timeout ends the process.
    match relay::relay(stream, upstream, settings.idle_timeout).await {
        RelayEnd::Closed {
            from_client,
            from_upstream,
        } => {
            tracing::debug!(%client_addr, endpoint = %endpoint.address, from_client, from_upstream, "tcp connection closed")
        }
        RelayEnd::Idle => {
            settings.handles.idle_timeouts.inc();
            tracing::debug!(%client_addr, endpoint = %endpoint.address, idle_timeout = ?settings.idle_timeout, "tcp connection idle; closed");
        }
        RelayEnd::Broken(error) => {
            tracing::debug!(%client_addr, endpoint = %endpoint.address, %error, "tcp connection broken")
        }
    }
    drop(in_flight);
}

/// Admits the connection and opens its upstream connection: the policy first (a refused
/// peer costs the upstream nothing), then the cluster's admission and an endpoint
/// (`cluster/opaque.rs`), as for an HTTP attempt.
///
/// # Errors
/// Why the connection is refused: `Unauthorized`, `Overflow`, `NoHealthyEndpoint`,
/// `CircuitOpen`, `ConnectFailed`.
async fn connect(
    plan: &TcpListenerPlan,
    client_addr: SocketAddr,
    peer: Option<&str>,
) -> Result<(CountedStream, Arc<Endpoint>), ProxyError> {
    if let Some(policy) = &plan.authorization {
        if !policy.allows_connection(peer, None) {
            return Err(ProxyError::Unauthorized);
        }
    }
    crate::cluster::opaque::connect(&plan.cluster, client_addr.ip()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_cluster::{cluster, one_strike_breaker};

    /// A listener whose accept queue is full (backlog 1, never accepting): a further
    /// connect waits for a SYN-ACK that does not come.
    async fn full_listener() -> (tokio::net::TcpListener, Vec<tokio::net::TcpStream>) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..2 {
            if let Ok(Ok(conn)) = tokio::time::timeout(
                Duration::from_millis(200),
                tokio::net::TcpStream::connect(addr),
            )
            .await
            {
                fillers.push(conn);
            }
        }
        (listener, fillers)
    }

    #[tokio::test(start_paused = true)]
    async fn a_connect_abandoned_midway_gives_its_half_open_trial_back() {
        let (listener, _fillers) = full_listener().await;
        let addr = listener.local_addr().unwrap();
        let c = cluster(
            "tcp",
            &[addr],
            Some(one_strike_breaker()),
            Default::default(),
        );
        c.endpoints[0].report(false, &c.ejection);
        tokio::time::advance(Duration::from_secs(10)).await;
        let plan = TcpListenerPlan {
            cluster: c.clone(),
            authorization: None,
        };
        let client: SocketAddr = "127.0.0.1:1".parse().unwrap();
        // The listener closes (drain, removal) while the trial's connect is pending.
        let abandoned =
            tokio::time::timeout(Duration::from_millis(100), connect(&plan, client, None));
        assert!(abandoned.await.is_err(), "the connect was still pending");
        assert!(
            c.pick(None, None).is_ok(),
            "the abandoned trial's slot is free for the next connection"
        );
    }
}
