//! An upstream response body that gives its HTTP/1 connection back to the pool once it
//! has been read to its end, and only then: a connection whose response was cut short
//! (the client went away, a read error) is closed with it, never reused.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;

use super::idle::IdleConnections;
use crate::http::RequestBody;

/// The connection a response came on, going back to its pool when the body ends.
#[derive(Debug)]
pub(super) struct Lease {
    pub(super) sender: SendRequest<RequestBody>,
    pub(super) idle: Arc<IdleConnections>,
}

impl Lease {
    fn release(self) {
        self.idle.put(self.sender);
    }
}

pin_project_lite::pin_project! {
    /// The upstream's body, streamed through untouched.
    #[derive(Debug)]
    pub struct UpstreamBody {
        #[pin]
        inner: Incoming,
        // `None` for a connection that is not pooled (HTTP/2, an upgrade's own) or whose
        // body has ended.
        lease: Option<Lease>,
    }

    impl PinnedDrop for UpstreamBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // A body that was complete without being read (no body, `Content-Length: 0`,
            // a HEAD's answer): hyper has read the whole message, the connection is free.
            if this.inner.is_end_stream() {
                if let Some(lease) = this.lease.take() {
                    lease.release();
                }
            }
        }
    }
}

impl UpstreamBody {
    pub(super) fn pooled(inner: Incoming, lease: Lease) -> Self {
        Self {
            inner,
            lease: Some(lease),
        }
    }
}

impl From<Incoming> for UpstreamBody {
    fn from(inner: Incoming) -> Self {
        Self { inner, lease: None }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        match &frame {
            None => {
                if let Some(lease) = this.lease.take() {
                    lease.release();
                }
            }
            // The connection broke: hyper closes it; dropping the lease forgets it.
            Some(Err(_)) => drop(this.lease.take()),
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
