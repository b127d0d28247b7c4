//! What an HTTP/2 client sends on one stream (a request body, or a tunnel's bytes), as
//! meshwork's HTTP/2 server connection receives it, and the reader that takes it.
//!
//! The connection reads the socket and sorts DATA frames by stream; the reader (the
//! request's body, read by the stack) takes them from the stream's inbox. What the
//! reader has taken is credited back to the client (WINDOW_UPDATE) by the connection:
//! flow control then paces the client by how fast the upstream takes the body, and an
//! inbox holds at most the stream's window. When the reader runs in the connection's
//! task (the usual case) the connection sees the credit after polling the stream;
//! when it runs in another (an HTTP/2 upstream, a mirror), taking wakes the connection.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::client_body::ClientBodyError;

/// One stream's received bytes, shared by the connection and the reader.
#[derive(Debug, Default)]
pub struct StreamInbox {
    slot: Mutex<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    data: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    end: End,
    /// Bytes the reader took since the connection last asked: window to give back.
    released: usize,
    reader: Option<Waker>,
    /// The stream's waker in the connection: woken when a reader in another task takes.
    conn: Option<Waker>,
    /// The reader was dropped: what comes is discarded (and credited at once).
    reader_gone: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum End {
    #[default]
    Open,
    Ended,
    /// The stream was reset, or the connection ended, before the end.
    Closed,
    /// The client broke a rule of the stream (its DATA exceeded its content-length...).
    Malformed(&'static str),
}

impl StreamInbox {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        // A panic while holding the lock leaves nothing half-written that matters here.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Received data. Returns how much of it can be credited back at once (all of it
    /// when the reader is gone).
    pub fn push(&self, data: Bytes, conn: &Waker) -> usize {
        let mut slot = self.lock();
        if slot.reader_gone {
            return data.len();
        }
        if !slot.conn.as_ref().is_some_and(|w| w.will_wake(conn)) {
            slot.conn = Some(conn.clone());
        }
        if !data.is_empty() {
            slot.data.push_back(data);
        }
        wake_reader(&mut slot, conn);
        0
    }

    /// The stream's end, with trailers or not.
    pub fn end(&self, trailers: Option<HeaderMap>, conn: &Waker) {
        let mut slot = self.lock();
        slot.trailers = trailers;
        slot.end = End::Ended;
        wake_reader(&mut slot, conn);
    }

    /// The stream broke off (reset, or its connection ended) before its end.
    pub fn close(&self) {
        let mut slot = self.lock();
        if slot.end == End::Open {
            slot.end = End::Closed;
        }
        if let Some(reader) = slot.reader.take() {
            reader.wake();
        }
    }

    /// The client broke a rule of the stream.
    pub fn malformed(&self, what: &'static str) {
        let mut slot = self.lock();
        slot.end = End::Malformed(what);
        slot.data.clear();
        if let Some(reader) = slot.reader.take() {
            reader.wake();
        }
    }

    /// Bytes taken since the last call: the window to give back to the client.
    pub fn take_released(&self) -> usize {
        std::mem::take(&mut self.lock().released)
    }

    /// The stream is forgotten: what the reader took since the last look and what it
    /// left unread, all of which the client is owed; what comes later is discarded.
    pub fn settle(&self) -> usize {
        let mut slot = self.lock();
        slot.reader_gone = true;
        let queued: usize = slot.data.drain(..).map(|d| d.len()).sum();
        if queued > 0 {
            // A reader still alive (a mirror's copy) must not take what is left for
            // the whole body.
            slot.end = End::Closed;
        }
        std::mem::take(&mut slot.released) + queued
    }

    /// The reader is gone before the end: the rest will never be read.
    pub fn abandoned(&self) -> bool {
        let slot = self.lock();
        slot.reader_gone && slot.end == End::Open
    }

    fn poll_take(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let mut slot = self.lock();
        if let Some(data) = slot.data.pop_front() {
            slot.released += data.len();
            // Read in another task than the connection's: the connection learns of the
            // credit only when woken.
            if let Some(conn) = &slot.conn
                && !conn.will_wake(cx.waker())
            {
                conn.wake_by_ref();
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        match slot.end {
            End::Open => {
                if !slot
                    .reader
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    slot.reader = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            End::Ended => Poll::Ready(slot.trailers.take().map(|t| Ok(Frame::trailers(t)))),
            End::Closed => Poll::Ready(Some(Err(ClientBodyError::Closed))),
            End::Malformed(what) => Poll::Ready(Some(Err(ClientBodyError::Malformed(what)))),
        }
    }

    fn reader_dropped(&self) {
        let mut slot = self.lock();
        slot.reader_gone = true;
        // Queued bytes will never be read: credit them back now.
        let queued: usize = slot.data.drain(..).map(|d| d.len()).sum();
        slot.released += queued;
        if let Some(conn) = slot.conn.take() {
            conn.wake();
        }
    }
}

fn wake_reader(slot: &mut Slot, conn: &Waker) {
    if let Some(reader) = slot.reader.take() {
        // Read in the connection's task: the connection polls the stream again itself.
        if !reader.will_wake(conn) {
            reader.wake();
        }
    }
}

/// An HTTP/2 request body, fed by its connection.
#[derive(Debug)]
pub struct Http2RequestBody {
    /// `None`: the request ended with its head.
    inbox: Option<Arc<StreamInbox>>,
    /// What the request's `content-length` says is still to come.
    remaining: Option<u64>,
    ended: bool,
}

impl Http2RequestBody {
    pub fn empty() -> Self {
        Self {
            inbox: None,
            remaining: Some(0),
            ended: true,
        }
    }

    pub fn new(inbox: Arc<StreamInbox>, content_length: Option<u64>) -> Self {
        Self {
            inbox: Some(inbox),
            remaining: content_length,
            ended: false,
        }
    }
}

impl Drop for Http2RequestBody {
    fn drop(&mut self) {
        if let Some(inbox) = &self.inbox {
            inbox.reader_dropped();
        }
    }
}

impl Body for Http2RequestBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = self.get_mut();
        let Some(inbox) = this.inbox.as_ref().filter(|_| !this.ended) else {
            return Poll::Ready(None);
        };
        let polled = std::task::ready!(inbox.poll_take(cx));
        match &polled {
            Some(Ok(frame)) => {
                if let (Some(data), Some(remaining)) = (frame.data_ref(), &mut this.remaining) {
                    *remaining = remaining.saturating_sub(data.len() as u64);
                }
            }
            Some(Err(_)) | None => this.ended = true,
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inbox.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    use crate::test_waker::counting_waker as waker;

    fn poll(
        body: &mut Http2RequestBody,
        waker: &Waker,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        Pin::new(body).poll_frame(&mut Context::from_waker(waker))
    }

    #[test]
    fn data_taken_is_credited_and_wakes_a_connection_in_another_task() {
        let inbox = Arc::new(StreamInbox::default());
        let mut body = Http2RequestBody::new(inbox.clone(), Some(8));
        let (conn_wakes, conn) = waker();
        let (reader_wakes, reader) = waker();
        assert!(poll(&mut body, &reader).is_pending());
        assert_eq!(inbox.push(Bytes::from_static(b"hell"), &conn), 0);
        assert_eq!(inbox.push(Bytes::from_static(b"o, w"), &conn), 0);
        assert_eq!(reader_wakes.0.load(Ordering::Relaxed), 1);
        let Poll::Ready(Some(Ok(frame))) = poll(&mut body, &reader) else {
            panic!("data expected");
        };
        assert_eq!(frame.into_data().unwrap(), "hell");
        assert_eq!(conn_wakes.0.load(Ordering::Relaxed), 1);
        assert_eq!(inbox.take_released(), 4);
        assert_eq!(inbox.take_released(), 0);
        assert!(matches!(poll(&mut body, &reader), Poll::Ready(Some(Ok(_)))));
        inbox.end(None, &conn);
        assert!(matches!(poll(&mut body, &reader), Poll::Ready(None)));
        assert!(body.is_end_stream());
    }

    #[test]
    fn a_body_read_in_the_connections_task_wakes_nobody() {
        let inbox = Arc::new(StreamInbox::default());
        let mut body = Http2RequestBody::new(inbox.clone(), None);
        let (wakes, task) = waker();
        assert!(poll(&mut body, &task).is_pending());
        inbox.push(Bytes::from_static(b"x"), &task);
        assert!(matches!(poll(&mut body, &task), Poll::Ready(Some(Ok(_)))));
        assert_eq!(wakes.0.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn trailers_end_the_body() {
        let inbox = Arc::new(StreamInbox::default());
        let mut body = Http2RequestBody::new(inbox.clone(), None);
        let (_, task) = waker();
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        inbox.end(Some(trailers), &task);
        let Poll::Ready(Some(Ok(frame))) = poll(&mut body, &task) else {
            panic!("trailers expected");
        };
        assert_eq!(frame.into_trailers().unwrap()["grpc-status"], "0");
        assert!(matches!(poll(&mut body, &task), Poll::Ready(None)));
    }

    #[test]
    fn a_reset_stream_fails_the_body_and_a_dropped_body_credits_what_it_left() {
        let inbox = Arc::new(StreamInbox::default());
        let mut body = Http2RequestBody::new(inbox.clone(), None);
        let (_, task) = waker();
        inbox.push(Bytes::from_static(b"abc"), &task);
        inbox.close();
        assert!(matches!(poll(&mut body, &task), Poll::Ready(Some(Ok(_)))));
        assert!(matches!(
            poll(&mut body, &task),
            Poll::Ready(Some(Err(ClientBodyError::Closed)))
        ));
        let inbox = Arc::new(StreamInbox::default());
        let body = Http2RequestBody::new(inbox.clone(), None);
        inbox.push(Bytes::from_static(b"abcdef"), &task);
        drop(body);
        assert_eq!(inbox.take_released(), 6);
        assert!(inbox.abandoned());
        assert_eq!(inbox.push(Bytes::from_static(b"gh"), &task), 2);
    }
}
