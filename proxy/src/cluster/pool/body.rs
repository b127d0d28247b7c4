//! An upstream response body. A pooled HTTP/1 connection's body is read from the
//! connection by the task that polls it, and gives the connection back to the pool once
//! it has been read to its end, and only then: a connection whose response was cut
//! short (the client went away, a read error) is closed with it, never reused.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::idle::IdleConnections;
use crate::cluster::http1_client::Http1Connection;
use crate::http::BodyError;

/// A pooled connection while its response body is read (and the rest of the request
/// body, which the connection holds, written).
#[derive(Debug)]
pub(super) struct Lease {
    /// `None` once the body ended (the connection went back to the pool, or closed).
    conn: Option<Box<Http1Connection>>,
    idle: Arc<IdleConnections>,
}

impl Lease {
    /// Gives the connection back when its exchange ended cleanly; closes it otherwise.
    fn end(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            if conn.finish() {
                self.idle.put(conn);
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // A body that was complete without being read to its end (no body,
        // `Content-Length: 0`, a HEAD's answer, the last bytes already returned): the
        // connection is free. Anything else closes it.
        if self
            .conn
            .as_ref()
            .is_some_and(|conn| conn.response_complete())
        {
            self.end();
        }
    }
}

pin_project_lite::pin_project! {
    /// The upstream's body, streamed through untouched.
    #[project = UpstreamBodyProj]
    #[derive(Debug)]
    pub enum UpstreamBody {
        Pooled { lease: Lease },
        /// From hyper's client (HTTP/2 connections, and the response to an upgrade).
        Hyper { #[pin] inner: Incoming },
    }
}

impl UpstreamBody {
    pub(super) fn pooled(conn: Box<Http1Connection>, idle: Arc<IdleConnections>) -> Self {
        UpstreamBody::Pooled {
            lease: Lease {
                conn: Some(conn),
                idle,
            },
        }
    }
}

impl From<Incoming> for UpstreamBody {
    fn from(inner: Incoming) -> Self {
        UpstreamBody::Hyper { inner }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.project() {
            UpstreamBodyProj::Pooled { lease } => {
                let Some(conn) = lease.conn.as_mut() else {
                    return Poll::Ready(None);
                };
                let frame = ready!(conn.poll_body(cx));
                match &frame {
                    None => lease.end(),
                    // Broken: dropping the connection closes it.
                    Some(Err(_)) => lease.conn = None,
                    Some(Ok(_)) => {}
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            UpstreamBodyProj::Hyper { inner } => inner
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Pooled { lease } => lease
                .conn
                .as_ref()
                .is_none_or(|conn| conn.response_complete()),
            UpstreamBody::Hyper { inner } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Pooled { lease } => lease
                .conn
                .as_ref()
                .map_or_else(|| SizeHint::with_exact(0), |conn| conn.body_size_hint()),
            UpstreamBody::Hyper { inner } => inner.size_hint(),
        }
    }
}
