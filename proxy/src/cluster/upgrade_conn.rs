//! An upgrade request's own HTTP/1.1 connection, never taken from or given back to the
//! pool (what linkerd2-proxy does).
//!
//! HTTP/2 has no `101`: an upgrade sent on a pooled connection that ALPN made `h2` (an
//! `auto` cluster over TLS) would lose its `Upgrade` and go on as a plain request. So an
//! upgrade to an `auto` cluster opens a connection of its own that offers only `http/1.1`;
//! once the upstream switches, that connection is the tunnel and lives as long as it.
//! It holds one of the cluster's `max_connections` (and is counted in the endpoint's
//! connection metrics) the whole time, as any pooled connection does.

use http::Uri;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::Endpoint;
use super::connector::{ConnectError, CountedStream};
use crate::http::RequestBody;

/// Why an upgrade request got no response.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeSendError {
    /// No connection could be opened (the cluster's `max_connections` included).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The connection broke before the response head.
    #[error("sending the upgrade request: {0}")]
    Http(#[from] hyper::Error),
}

/// Sends `req` (absolute URI, `Host` set, HTTP/1.1) on a new connection to `endpoint`.
///
/// # Errors
/// [`UpgradeSendError`]: the connect (or handshake, or slot) failure, or the broken
/// exchange.
pub async fn send(
    endpoint: &Endpoint,
    req: http::Request<RequestBody>,
) -> Result<http::Response<Incoming>, UpgradeSendError> {
    let stream = endpoint.connector.open_for_upgrade().await?;
    Ok(send_on(stream, req, &endpoint.address_text).await?)
}

/// Sends `req` on `stream` with hyper's client, which drives the connection in a task of
/// its own and hands it over to the response's upgrade when the upstream switches (and
/// closes it otherwise). The HTTP/1 pool sends its upgrades and `CONNECT`s this way too,
/// on a pooled connection.
///
/// # Errors
/// The handshake's or the exchange's failure.
pub async fn send_on(
    stream: CountedStream,
    mut req: http::Request<RequestBody>,
    endpoint: &str,
) -> Result<http::Response<Incoming>, hyper::Error> {
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await?;
    let address: Box<str> = endpoint.into();
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(endpoint = %address, %error, "upgrade connection ended");
        }
    });
    // The request line takes the origin form (RFC 9112 §3.2.1), or the authority form
    // for a `CONNECT` (§3.2.3).
    let target = if req.method() == http::Method::CONNECT {
        req.uri().authority().map(|a| Uri::from(a.clone()))
    } else {
        req.uri().path_and_query().map(|p| Uri::from(p.clone()))
    };
    if let Some(target) = target {
        *req.uri_mut() = target;
    }
    sender.send_request(req).await
}
