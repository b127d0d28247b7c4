//! A tunnel in the making and then in use: what the upstream's `101` may switch to, the
//! client's side of the connection, how the client is told the tunnel is open (the
//! `101` itself over HTTP/1.1; a `200` to an HTTP/2 extended CONNECT, RFC 8441), and
//! the bytes copied both ways until either side closes.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::ProxyError;
use super::client_upgrade::ClientUpgrade;
use super::extended_connect::Http2Answer;
use super::upgrade::Requested;

/// How the client asked for the tunnel, so how it is answered.
#[derive(Debug)]
pub enum Downstream {
    /// An HTTP/1.1 `Upgrade` request: the upstream's `101` is relayed.
    Http1,
    /// An HTTP/2 extended CONNECT: the `101` becomes a `200`.
    Http2(Http2Answer),
}

/// An upgrade asked of the upstream: what its `101` may switch to, and the client's
/// side of the tunnel.
#[derive(Debug)]
pub struct PendingTunnel {
    requested: Requested,
    client: ClientUpgrade,
    downstream: Downstream,
}

impl PendingTunnel {
    pub fn new(requested: Requested, client: ClientUpgrade, downstream: Downstream) -> Self {
        Self {
            requested,
            client,
            downstream,
        }
    }

    /// Whether a `101` with these headers switched to what was asked.
    pub fn accepts(&self, response: &http::HeaderMap) -> bool {
        self.requested.accepts(response)
    }

    /// The response for the client, given the upstream's (a `101` only when
    /// [`accepts`](Self::accepts) said yes); on a switch, starts copying bytes between
    /// the two sides in a task of its own. `endpoint` names the upstream in logs.
    ///
    /// # Errors
    /// [`ProxyError::UpgradeFailed`] when the answer cannot open an HTTP/2 client's
    /// tunnel; the upstream connection is dropped with the response.
    pub fn open<B>(
        self,
        rsp: http::Response<B>,
        endpoint: &str,
        connections: &crate::drain::ConnectionTracker,
    ) -> Result<http::Response<B>, ProxyError> {
        let switched = rsp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        let mut rsp = match &self.downstream {
            Downstream::Http1 => rsp,
            Downstream::Http2(answer) => answer.answer(rsp).map_err(|refusal| {
                tracing::debug!(endpoint, %refusal, "no tunnel for the HTTP/2 extended CONNECT");
                ProxyError::UpgradeFailed
            })?,
        };
        if switched {
            let upstream = hyper::upgrade::on(&mut rsp);
            connections.spawn(relay(self.client, upstream, endpoint.into()));
        }
        Ok(rsp)
    }
}

/// Copies bytes both ways between an upgraded client and upstream until either closes.
async fn relay(downstream: ClientUpgrade, upstream: OnUpgrade, endpoint: Box<str>) {
    let upstream = async { upstream.await.map_err(|e| e.to_string()) };
    let (mut down, up) = match tokio::try_join!(downstream.into_io(), upstream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(%endpoint, %error, "upgrade failed");
            return;
        }
    };
    let mut up = TokioIo::new(up);
    match tokio::io::copy_bidirectional(&mut down, &mut up).await {
        Ok((from_client, from_upstream)) => {
            tracing::debug!(%endpoint, from_client, from_upstream, "tunnel closed")
        }
        Err(error) => tracing::debug!(%endpoint, %error, "tunnel broken"),
    }
}
