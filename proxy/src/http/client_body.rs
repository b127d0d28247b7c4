//! A request body as it comes from the client: from meshwork's HTTP/1 or HTTP/2 server
//! connection (`listener::http1`, `listener::http2`; the HTTP/2 body is
//! `stream_inbox`'s).
//!
//! The HTTP/1 body does no I/O of its own. The connection's task reads the socket and
//! decodes the framing; the body only says it wants more and takes what was decoded, through
//! a [`BodyChannel`] the two share. When the body is read inside the connection's task (an
//! HTTP/1 upstream, the usual case) nothing crosses tasks: the connection sees the want
//! right after polling the request's future and feeds it at once. When another task reads
//! it (hyper's HTTP/2 client, a mirror), the two wake each other.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::stream_inbox::Http2RequestBody;

/// Why a client's request body could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum ClientBodyError {
    /// The client broke the body's framing (a bad chunk size, a bare LF, ...).
    #[error("malformed request body: {0}")]
    Malformed(&'static str),
    /// The client went away mid-body (or its connection was closed under it).
    #[error("the client closed the connection in the middle of the request body")]
    Closed,
}

pin_project_lite::pin_project! {
    /// Either server's request body.
    #[project = ClientBodyProj]
    #[derive(Debug)]
    pub enum ClientBody {
        Http1 { body: Http1RequestBody },
        Http2 { #[pin] body: Http2RequestBody },
    }
}

impl From<Http1RequestBody> for ClientBody {
    fn from(body: Http1RequestBody) -> Self {
        ClientBody::Http1 { body }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        match self.project() {
            ClientBodyProj::Http1 { body } => body.poll_frame(cx),
            ClientBodyProj::Http2 { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Http1 { body } => body.is_end_stream(),
            ClientBody::Http2 { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Http1 { body } => body.size_hint(),
            ClientBody::Http2 { body } => body.size_hint(),
        }
    }
}

/// An HTTP/1 request body, fed by its connection.
#[derive(Debug)]
pub struct Http1RequestBody {
    /// `None`: a body with nothing in it (no `Content-Length`, or 0).
    channel: Option<Arc<BodyChannel>>,
    /// Bytes of a `Content-Length` body still to come; `None` when chunked.
    remaining: Option<u64>,
    ended: bool,
}

impl Http1RequestBody {
    pub fn empty() -> Self {
        Self {
            channel: None,
            remaining: Some(0),
            ended: true,
        }
    }

    /// A body of `length` bytes (`None`: chunked) fed through `channel`.
    pub fn new(channel: Arc<BodyChannel>, length: Option<u64>) -> Self {
        Self {
            channel: Some(channel),
            remaining: length,
            ended: false,
        }
    }

    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let Some(channel) = &self.channel else {
            self.ended = true;
            return Poll::Ready(None);
        };
        let mut slot = channel.lock();
        if let Some(data) = slot.data.take() {
            if let Some(remaining) = &mut self.remaining {
                *remaining = remaining.saturating_sub(data.len() as u64);
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(trailers) = slot.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        match slot.end {
            End::Open => {}
            End::Ended => {
                self.ended = true;
                return Poll::Ready(None);
            }
            End::Malformed(what) => {
                self.ended = true;
                return Poll::Ready(Some(Err(ClientBodyError::Malformed(what))));
            }
            End::Closed => {
                self.ended = true;
                return Poll::Ready(Some(Err(ClientBodyError::Closed)));
            }
        }
        slot.wants = true;
        if !slot
            .reader
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            slot.reader = Some(cx.waker().clone());
        }
        // Read in another task than the connection's: wake the connection to read.
        if let Some(conn) = &slot.conn {
            if !conn.will_wake(cx.waker()) {
                conn.wake_by_ref();
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.remaining == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

impl Drop for Http1RequestBody {
    fn drop(&mut self) {
        if let Some(channel) = &self.channel {
            let mut slot = channel.lock();
            slot.body_gone = true;
            if let Some(conn) = slot.conn.take() {
                conn.wake();
            }
        }
    }
}

/// What an HTTP/1 body and its connection share.
#[derive(Debug, Default)]
pub struct BodyChannel {
    slot: Mutex<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    /// Decoded and not yet taken (at most one piece: the connection reads no further
    /// until it is).
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
    end: End,
    /// The body was polled and found nothing.
    wants: bool,
    /// Who polled the body last.
    reader: Option<Waker>,
    /// The connection's task, woken when a body read in another task wants more.
    conn: Option<Waker>,
    /// The body was dropped (the request's future is done with it).
    body_gone: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum End {
    #[default]
    Open,
    Ended,
    Malformed(&'static str),
    Closed,
}

/// What the connection should do for the body now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demand {
    /// Read and decode more for it.
    Wanted,
    /// Nothing until it is polled again.
    Waiting,
    /// It is gone before its end: the rest of it will never be read.
    Abandoned,
}

impl BodyChannel {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        // A panic while holding the lock leaves nothing half-written that matters here.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the body wants bytes; `conn` is woken when it comes to want them.
    pub fn demand(&self, conn: &Waker) -> Demand {
        let mut slot = self.lock();
        if slot.body_gone {
            return Demand::Abandoned;
        }
        if !slot.conn.as_ref().is_some_and(|w| w.will_wake(conn)) {
            slot.conn = Some(conn.clone());
        }
        if slot.wants && slot.data.is_none() && slot.trailers.is_none() {
            Demand::Wanted
        } else {
            Demand::Waiting
        }
    }

    /// Hands the body its next piece of data.
    pub fn data(&self, data: Bytes, conn: &Waker) {
        self.deliver(conn, |slot| slot.data = Some(data));
    }

    /// The body ended, with trailers or not.
    pub fn end(&self, trailers: Option<HeaderMap>, conn: &Waker) {
        self.deliver(conn, |slot| {
            slot.trailers = trailers;
            slot.end = End::Ended;
        });
    }

    /// The client broke the body's framing.
    pub fn malformed(&self, what: &'static str, conn: &Waker) {
        self.deliver(conn, |slot| slot.end = End::Malformed(what));
    }

    /// The client (or the connection) went away before the body's end.
    pub fn closed(&self) {
        let mut slot = self.lock();
        if slot.end == End::Open {
            slot.end = End::Closed;
        }
        slot.wants = false;
        if let Some(reader) = slot.reader.take() {
            reader.wake();
        }
    }

    fn deliver(&self, conn: &Waker, put: impl FnOnce(&mut Slot)) {
        let mut slot = self.lock();
        put(&mut slot);
        slot.wants = false;
        if let Some(reader) = slot.reader.take() {
            // Read in the connection's task: it polls the request again by itself.
            if !reader.will_wake(conn) {
                reader.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    use crate::test_waker::counting_waker as waker;

    #[test]
    fn a_body_read_in_another_task_wakes_the_connection_and_is_woken_by_it() {
        let channel = Arc::new(BodyChannel::default());
        let mut body = Http1RequestBody::new(channel.clone(), Some(5));
        let (conn_wakes, conn) = waker();
        let (reader_wakes, reader) = waker();
        assert_eq!(channel.demand(&conn), Demand::Waiting);
        let mut cx = Context::from_waker(&reader);
        assert!(body.poll_frame(&mut cx).is_pending());
        assert_eq!(conn_wakes.0.load(Ordering::Relaxed), 1);
        assert_eq!(channel.demand(&conn), Demand::Wanted);
        channel.data(Bytes::from_static(b"hello"), &conn);
        assert_eq!(reader_wakes.0.load(Ordering::Relaxed), 1);
        assert_eq!(channel.demand(&conn), Demand::Waiting);
        let Poll::Ready(Some(Ok(frame))) = body.poll_frame(&mut cx) else {
            panic!("data expected");
        };
        assert_eq!(frame.into_data().unwrap(), "hello");
        assert!(body.is_end_stream());
    }

    #[test]
    fn a_body_read_in_the_connections_task_wakes_nobody() {
        let channel = Arc::new(BodyChannel::default());
        let mut body = Http1RequestBody::new(channel.clone(), None);
        let (wakes, task) = waker();
        assert_eq!(channel.demand(&task), Demand::Waiting);
        let mut cx = Context::from_waker(&task);
        assert!(body.poll_frame(&mut cx).is_pending());
        assert_eq!(channel.demand(&task), Demand::Wanted);
        channel.end(None, &task);
        assert_eq!(wakes.0.load(Ordering::Relaxed), 0);
        assert!(matches!(body.poll_frame(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn a_broken_or_abandoned_body_says_so() {
        let channel = Arc::new(BodyChannel::default());
        let mut body = Http1RequestBody::new(channel.clone(), None);
        let (_, task) = waker();
        let mut cx = Context::from_waker(&task);
        channel.malformed("bad chunk size", &task);
        assert!(matches!(
            body.poll_frame(&mut cx),
            Poll::Ready(Some(Err(ClientBodyError::Malformed("bad chunk size"))))
        ));
        drop(body);
        assert_eq!(channel.demand(&task), Demand::Abandoned);
    }
}
