//! One endpoint's HTTP/1.1 keep-alive pool, owned by meshwork: idle connections are
//! [`Http1Connection`]s reused newest first, each exchange driven by the task of the
//! request that holds the connection (`cluster::http1_client`). A checkout is a lock and
//! a `Vec::pop`: no pool key, no hashing, no channel, no task per connection.
//!
//! It keeps what hyper-util's legacy client did for these connections: the connector's
//! timeout, TLS and transports; origin-form request targets (authority-form for
//! `CONNECT`) and a `Host` from the URI when the request has none; a request that a reused
//! connection failed before any of it can have been acted on is sent again on another
//! one; the cluster's `idle_timeout`; and at `max_connections` a request waits, up to the
//! connect timeout, for whichever comes first: a connection another request finished
//! with, or a free connection slot. A request that switches protocols (`Upgrade`,
//! `CONNECT`) takes its connection from the pool too, and hands it to hyper's client,
//! which turns it into the tunnel.

use std::sync::Arc;

use http::{HeaderValue, Method, header};
use http_body::Body as _;

use super::SendError;
use super::body::UpstreamBody;
use super::idle::IdleConnections;
use crate::cluster::connector::{ConnectError, EndpointConnector};
use crate::cluster::http1_client::{BodyLength, Http1Connection};
use crate::cluster::limits::{Gate, Slot};
use crate::cluster::upgrade_conn;
use crate::http::RequestBody;

/// The HTTP/1.1 pool of one endpoint.
#[derive(Debug)]
pub struct Http1Pool {
    connector: EndpointConnector,
    /// The cluster's `max_connections` (also held by each open connection's stream).
    connections: Arc<Gate>,
    idle: Arc<IdleConnections>,
    /// The endpoint, for the upgraded connections' logs.
    address: Arc<str>,
}

impl Http1Pool {
    pub fn new(
        connector: EndpointConnector,
        connections: Arc<Gate>,
        idle_timeout: std::time::Duration,
        address: &str,
    ) -> Self {
        Self {
            connector,
            connections,
            idle: Arc::new(IdleConnections::new(idle_timeout)),
            address: address.into(),
        }
    }

    /// Sends `req` (absolute URI) on an idle connection or a new one; the connection goes
    /// back to the pool when the response body has been read to its end.
    ///
    /// # Errors
    /// [`SendError::Connect`] when no connection could be had (nothing was sent),
    /// [`SendError::Exchange`] when the exchange broke.
    pub async fn send(
        &self,
        mut req: http::Request<RequestBody>,
    ) -> Result<http::Response<UpstreamBody>, SendError> {
        set_host(&mut req);
        if req.method() == Method::CONNECT || req.headers().contains_key(header::UPGRADE) {
            return Box::pin(self.send_switching(req)).await;
        }
        let (mut parts, body) = req.into_parts();
        let length = if body.is_end_stream() {
            BodyLength::Empty
        } else {
            body.size_hint()
                .exact()
                .map_or(BodyLength::Unknown, BodyLength::Known)
        };
        let mut body = (length != BodyLength::Empty).then_some(body);
        loop {
            let mut conn = self.checkout().await?;
            conn.begin(&parts.method, &parts.uri, &mut parts.headers, length, body);
            match conn.response_head(&parts.method).await {
                Ok(rsp) => {
                    return Ok(rsp.map(|()| UpstreamBody::pooled(conn, self.idle.clone())));
                }
                // Closed by the peer while idle, before this request can have been acted
                // on: another connection may take it (a new one's failure is final).
                Err(error) if conn.may_resend(&error, &parts.method) => {
                    body = conn.take_request_body();
                    tracing::debug!(endpoint = %self.address, %error, "reused connection failed before the request was acted on; sending it on another");
                }
                Err(error) => return Err(SendError::Exchange(error)),
            }
        }
    }

    /// An upgrade or a `CONNECT`: hyper's client on a pooled connection (never given
    /// back: it becomes the tunnel, or closes with a response that did not switch).
    async fn send_switching(
        &self,
        req: http::Request<RequestBody>,
    ) -> Result<http::Response<UpstreamBody>, SendError> {
        let conn = self.checkout().await?;
        let rsp = upgrade_conn::send_on(conn.into_io(), req, &self.address)
            .await
            .map_err(SendError::Http)?;
        Ok(rsp.map(UpstreamBody::from))
    }

    /// An idle connection still open, else a new one.
    ///
    /// The waits for a new connection or a free slot are boxed: a connect (TLS handshake
    /// included) and the wait's `select!` are most of the size of the request's future,
    /// which every request otherwise moves around whole (its box, each layer's `call`,
    /// bench/RESULTS.md), while only the requests that open a connection or wait at
    /// `max_connections` need them.
    async fn checkout(&self) -> Result<Box<Http1Connection>, SendError> {
        if let Some(conn) = self.idle.take_open() {
            return Ok(conn);
        }
        let slot = match self.connections.take() {
            Some(slot) => slot,
            None => match Box::pin(self.wait_at_max_connections()).await? {
                Ok(conn) => return Ok(conn),
                Err(slot) => slot,
            },
        };
        Box::pin(self.open(slot)).await
    }

    /// At `max_connections`: whichever comes first within the connect timeout, a pooled
    /// connection another request finished with or a slot freed by one that closed.
    ///
    /// # Errors
    /// [`ConnectError::Overflow`] when neither came in time.
    async fn wait_at_max_connections(
        &self,
    ) -> Result<Result<Box<Http1Connection>, Slot>, SendError> {
        let deadline = tokio::time::Instant::now() + self.connector.connect_timeout();
        loop {
            let returned = self.idle.returned();
            tokio::pin!(returned);
            // Registered before looking, so a connection returned in between wakes us.
            returned.as_mut().enable();
            if let Some(conn) = self.idle.take_open() {
                return Ok(Ok(conn));
            }
            tokio::select! {
                biased;
                slot = self.connections.acquire_until(deadline) => {
                    return slot
                        .map(Err)
                        .ok_or(SendError::Connect(ConnectError::Overflow));
                }
                // A connection came back: look again.
                () = &mut returned => {}
            }
        }
    }

    /// Opens a connection holding `slot`.
    async fn open(&self, slot: Slot) -> Result<Box<Http1Connection>, SendError> {
        let stream = self
            .connector
            .open_counted(slot)
            .await
            .map_err(SendError::Connect)?;
        Ok(Http1Connection::new(stream))
    }

    #[cfg(test)]
    pub(super) fn idle_count(&self) -> usize {
        self.idle.len()
    }

    /// Whether the upstream closed the newest idle connection (the check a checkout
    /// makes).
    #[cfg(test)]
    pub(super) fn idle_closed(&self) -> bool {
        self.idle.newest_is_closed()
    }
}

/// `Host` from the URI's authority when the request has none (HTTP/1.1 requires one).
fn set_host(req: &mut http::Request<RequestBody>) {
    if req.headers().contains_key(header::HOST) {
        return;
    }
    if let Some(authority) = req.uri().authority() {
        if let Ok(value) = HeaderValue::from_str(authority.as_str()) {
            req.headers_mut().insert(header::HOST, value);
        }
    }
}
