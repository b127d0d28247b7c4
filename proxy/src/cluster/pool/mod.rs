//! An endpoint's upstream client: meshwork's own HTTP/1.1 pool (`http1`, on
//! `cluster::http1_client` connections) for every connection that can only be HTTP/1.1, hyper-util's legacy client for those that may
//! be HTTP/2 (an `http2` cluster's one multiplexed connection, or an `auto` cluster over
//! TLS whose endpoint picks by ALPN).
//!
//! hyper-util has no pool outside `client::legacy` yet (its `client::pool` building
//! blocks are unreleased); the legacy one hashes a pool key (SipHash) and crosses a
//! channel per checkout and return, and spawns a task per response to wait for the
//! connection to become idle again. The HTTP/1 pool here is a `Vec` per endpoint.

mod body;
pub mod http1;
mod idle;
#[cfg(test)]
mod tests;

use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use meshwork_config::model::{self, UpstreamProtocol};

pub use self::body::UpstreamBody;
use super::connector::{ConnectError, EndpointConnector};
use super::limits::ClusterGates;
use crate::http::RequestBody;

/// Why a request got no response from its endpoint.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be had (nothing was sent), the cluster's `max_connections`
    /// included ([`ConnectError::Overflow`]).
    #[error(transparent)]
    Connect(ConnectError),
    /// The exchange failed on a pooled HTTP/1 connection: it broke, or the upstream's
    /// response could not be read.
    #[error("the upstream exchange failed")]
    Exchange(#[source] crate::cluster::http1_client::ExchangeError),
    /// An upgrade's exchange (on hyper's client) broke.
    #[error("the upstream connection broke")]
    Http(#[source] hyper::Error),
    /// From the legacy client (HTTP/2 connections).
    #[error("the upstream request failed")]
    Legacy(#[source] hyper_util::client::legacy::Error),
}

/// The client of one endpoint.
#[derive(Debug)]
pub enum UpstreamClient {
    Http1(http1::Http1Pool),
    /// Boxed: it is the larger of the two, and built once per endpoint.
    Legacy(Box<Client<EndpointConnector, RequestBody>>),
}

impl UpstreamClient {
    /// The client for an endpoint of `config` reached with `connector`.
    pub fn new(
        config: &model::Cluster,
        connector: &EndpointConnector,
        gates: &ClusterGates,
        address: &str,
    ) -> Self {
        let only_http1 = match config.protocol {
            UpstreamProtocol::Http1 => true,
            // Plaintext (meshed connections included) has no ALPN to pick h2 with.
            UpstreamProtocol::Auto => connector.transport().tls().is_none(),
            UpstreamProtocol::Http2 => false,
        };
        if only_http1 {
            return Self::Http1(http1::Http1Pool::new(
                connector.clone(),
                gates.connections.clone(),
                config.idle_timeout,
                address,
            ));
        }
        Self::Legacy(Box::new(
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(config.idle_timeout)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .http2_only(config.protocol == UpstreamProtocol::Http2)
                .build(connector.clone()),
        ))
    }

    /// Sends `req` (absolute URI, `Host` set for HTTP/1) to the endpoint.
    ///
    /// # Errors
    /// [`SendError`]: no connection, or a broken exchange.
    pub async fn send(
        &self,
        req: http::Request<RequestBody>,
    ) -> Result<http::Response<UpstreamBody>, SendError> {
        match self {
            Self::Http1(pool) => pool.send(req).await,
            Self::Legacy(client) => client
                .request(req)
                .await
                .map(|rsp| rsp.map(UpstreamBody::from))
                .map_err(SendError::Legacy),
        }
    }
}
