//! One endpoint's HTTP/1.1 keep-alive pool, owned by meshwork: idle connections are
//! hyper `SendRequest`s reused newest first; each connection is driven by a task of its
//! own spawned when it opens (not per request). A checkout is a lock and a `Vec::pop`:
//! no pool key, no hashing, no channel beyond hyper's own dispatch.
//!
//! It keeps what hyper-util's legacy client did for these connections: the connector's
//! timeout, TLS and transports; origin-form request targets (authority-form for
//! `CONNECT`) and a `Host` from the URI when the request has none; a request that a reused
//! connection closed before sending is sent again on another one; the cluster's
//! `idle_timeout`; and at `max_connections` a request waits, up to the connect timeout,
//! for whichever comes first: a connection another request finished with, or a free
//! connection slot.

use std::sync::Arc;

use http::{HeaderValue, Method, StatusCode, Uri, header};
use hyper::client::conn::http1::{Builder, SendRequest};
use hyper_util::rt::TokioIo;

use super::SendError;
use super::body::{Lease, UpstreamBody};
use super::idle::IdleConnections;
use crate::cluster::connector::{ConnectError, EndpointConnector};
use crate::cluster::limits::{Gate, Slot};
use crate::http::RequestBody;

/// The HTTP/1.1 pool of one endpoint.
#[derive(Debug)]
pub struct Http1Pool {
    connector: EndpointConnector,
    /// The cluster's `max_connections` (also held by each open connection's stream).
    connections: Arc<Gate>,
    idle: Arc<IdleConnections>,
    /// The endpoint, for the connection tasks' logs.
    address: Arc<str>,
}

/// A connection ready for one request, and whether it served one before (a request it
/// refuses unsent may then go to another).
struct Checkout {
    sender: SendRequest<RequestBody>,
    reused: bool,
}

/// What a request waiting at `max_connections` got.
enum Waited {
    Connection(SendRequest<RequestBody>),
    Slot(Slot),
}

/// What ended one wait at `max_connections`.
enum Woke {
    /// The watched connection finished its exchange (`true`) or closed.
    Finished(bool),
    Slot(Option<Slot>),
    Returned,
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
    /// [`SendError::Http`] when the exchange broke.
    pub async fn send(
        &self,
        mut req: http::Request<RequestBody>,
    ) -> Result<http::Response<UpstreamBody>, SendError> {
        set_host(&mut req);
        to_request_target(&mut req);
        let connect = req.method() == Method::CONNECT;
        loop {
            let Checkout { mut sender, reused } = self.checkout().await?;
            match sender.try_send_request(req).await {
                Ok(rsp) => {
                    // A switched or tunnelled connection is no longer HTTP/1's.
                    let status = rsp.status();
                    if status == StatusCode::SWITCHING_PROTOCOLS || (connect && status.is_success())
                    {
                        return Ok(rsp.map(UpstreamBody::from));
                    }
                    let lease = Lease {
                        sender,
                        idle: self.idle.clone(),
                    };
                    return Ok(rsp.map(|body| UpstreamBody::pooled(body, lease)));
                }
                Err(mut error) => match error.take_message() {
                    // Closed by the peer while idle, before this request was written:
                    // another connection may take it (a new one's failure is final).
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(SendError::Http(error.into_error())),
                },
            }
        }
    }

    /// An idle connection that is ready, else a new one.
    ///
    /// The waits for a new connection or a free slot are boxed: a connect (TLS handshake
    /// included) and the wait's `select!` are most of the size of the request's future,
    /// which every request otherwise moves around whole (its box, each layer's `call`,
    /// bench/RESULTS.md), while only the requests that open a connection or wait at
    /// `max_connections` need them.
    async fn checkout(&self) -> Result<Checkout, SendError> {
        if let Some(sender) = self.idle.take_ready() {
            return Ok(Checkout {
                sender,
                reused: true,
            });
        }
        let slot = match self.connections.take() {
            Some(slot) => slot,
            None => match Box::pin(self.wait_at_max_connections()).await? {
                Waited::Connection(sender) => {
                    return Ok(Checkout {
                        sender,
                        reused: true,
                    });
                }
                Waited::Slot(slot) => slot,
            },
        };
        Box::pin(self.open(slot)).await.map(|sender| Checkout {
            sender,
            reused: false,
        })
    }

    /// At `max_connections`: whichever comes first within the connect timeout, a pooled
    /// connection another request finished with or a slot freed by one that closed.
    ///
    /// # Errors
    /// [`ConnectError::Overflow`] when neither came in time.
    async fn wait_at_max_connections(&self) -> Result<Waited, SendError> {
        let deadline = tokio::time::Instant::now() + self.connector.connect_timeout();
        loop {
            let returned = self.idle.returned();
            tokio::pin!(returned);
            // Registered before looking, so a connection returned in between wakes us.
            returned.as_mut().enable();
            if let Some(sender) = self.idle.take_ready() {
                return Ok(Waited::Connection(sender));
            }
            // One given back but still finishing its exchange is watched meanwhile.
            let mut finishing = self.idle.take_finishing();
            let ready = async {
                match finishing.as_mut() {
                    Some(entry) => std::future::poll_fn(|cx| entry.sender.poll_ready(cx)).await,
                    None => std::future::pending().await,
                }
            };
            let woke = tokio::select! {
                biased;
                ready = ready => Woke::Finished(ready.is_ok()),
                slot = self.connections.acquire_until(deadline) => Woke::Slot(slot),
                () = &mut returned => Woke::Returned,
            };
            match woke {
                Woke::Finished(true) => {
                    let entry = finishing.expect("watched");
                    return Ok(Waited::Connection(entry.sender));
                }
                // Closed instead: dropped, look again.
                Woke::Finished(false) => {}
                Woke::Slot(slot) => {
                    if let Some(entry) = finishing {
                        self.idle.restore(entry);
                    }
                    return slot
                        .map(Waited::Slot)
                        .ok_or(SendError::Connect(ConnectError::Overflow));
                }
                Woke::Returned => {
                    if let Some(entry) = finishing {
                        self.idle.restore(entry);
                    }
                }
            }
        }
    }

    /// Opens a connection holding `slot` and spawns the task that drives it.
    async fn open(&self, slot: Slot) -> Result<SendRequest<RequestBody>, SendError> {
        let stream = self
            .connector
            .open_counted(slot)
            .await
            .map_err(SendError::Connect)?;
        let (sender, connection) = Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(SendError::Http)?;
        let address = self.address.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(endpoint = %address, %error, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    #[cfg(test)]
    pub(super) fn idle_count(&self) -> usize {
        self.idle.len()
    }

    /// Whether the newest idle connection's task has seen it closed.
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

/// The request target an origin server expects (RFC 9112 §3.2): origin form, or the
/// authority form for a `CONNECT`.
fn to_request_target(req: &mut http::Request<RequestBody>) {
    let target = if req.method() == Method::CONNECT {
        req.uri().authority().map(|a| Uri::from(a.clone()))
    } else {
        Some(
            req.uri()
                .path_and_query()
                .filter(|p| p.as_str() != "/")
                .map_or_else(Uri::default, |p| Uri::from(p.clone())),
        )
    };
    if let Some(target) = target {
        *req.uri_mut() = target;
    }
}
