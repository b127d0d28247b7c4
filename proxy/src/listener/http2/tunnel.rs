//! An extended CONNECT's stream once answered 2xx (RFC 8441 §5): the client's side of a
//! tunnel (a WebSocket, say). Reads take the stream's DATA from its inbox; writes queue
//! bytes in its outbox, which the connection sends as DATA within the windows.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::http::stream_inbox::{Http2RequestBody, StreamInbox};

/// What the tunnel writes before a write waits for the connection to send.
const OUTBOX_HIGH_WATER: usize = 64 * 1024;

/// Bytes a tunnel wrote, waiting to go out as DATA frames.
#[derive(Debug, Default)]
pub struct StreamOutbox {
    slot: Mutex<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    queued: VecDeque<Bytes>,
    len: usize,
    /// The tunnel shut its sending side: END_STREAM once `queued` is out.
    shut: bool,
    /// The tunnel went away without shutting down: the stream is reset.
    dropped: bool,
    /// The stream is gone: writes fail.
    closed: bool,
    writer: Option<Waker>,
    conn: Option<Waker>,
}

/// What the connection takes from an outbox.
#[derive(Debug, PartialEq, Eq)]
pub enum Outgoing {
    Data(Bytes),
    /// Nothing now.
    Nothing,
    End,
    Reset,
}

impl StreamOutbox {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        // A panic while holding the lock leaves nothing half-written that matters here.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Up to `max` queued bytes; `conn` is woken when there are more.
    pub fn take(&self, max: usize, conn: &Waker) -> Outgoing {
        let mut slot = self.lock();
        if !slot.conn.as_ref().is_some_and(|w| w.will_wake(conn)) {
            slot.conn = Some(conn.clone());
        }
        if slot.dropped {
            return Outgoing::Reset;
        }
        let Some(front) = slot.queued.front_mut() else {
            return if slot.shut {
                Outgoing::End
            } else {
                Outgoing::Nothing
            };
        };
        if max == 0 {
            return Outgoing::Nothing;
        }
        let data = if front.len() <= max {
            slot.queued.pop_front().expect("present")
        } else {
            front.split_to(max)
        };
        slot.len -= data.len();
        if let Some(writer) = slot.writer.take() {
            writer.wake();
        }
        Outgoing::Data(data)
    }

    /// The stream is gone: the tunnel's writes fail from now on.
    pub fn close(&self) {
        let mut slot = self.lock();
        slot.closed = true;
        if let Some(writer) = slot.writer.take() {
            writer.wake();
        }
    }

    fn poll_push(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut slot = self.lock();
        if slot.closed || slot.shut {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if slot.len >= OUTBOX_HIGH_WATER {
            slot.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = data.len().min(OUTBOX_HIGH_WATER - slot.len);
        slot.queued.push_back(Bytes::copy_from_slice(&data[..n]));
        slot.len += n;
        if let Some(conn) = &slot.conn {
            conn.wake_by_ref();
        }
        Poll::Ready(Ok(n))
    }

    fn finish(&self, dropped: bool) {
        let mut slot = self.lock();
        if slot.shut || slot.closed {
            return;
        }
        if dropped {
            slot.dropped = true;
        } else {
            slot.shut = true;
        }
        if let Some(conn) = &slot.conn {
            conn.wake_by_ref();
        }
    }
}

/// The client's side of an extended CONNECT's tunnel.
#[derive(Debug)]
pub struct StreamTunnel {
    body: Http2RequestBody,
    outbox: Arc<StreamOutbox>,
    /// Received and not yet read.
    unread: Bytes,
    read_ended: bool,
}

impl StreamTunnel {
    pub fn new(inbox: Option<Arc<StreamInbox>>, outbox: Arc<StreamOutbox>) -> Self {
        let body = match inbox {
            Some(inbox) => Http2RequestBody::new(inbox, None),
            None => Http2RequestBody::empty(),
        };
        Self {
            body,
            outbox,
            unread: Bytes::new(),
            read_ended: false,
        }
    }
}

impl AsyncRead for StreamTunnel {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.unread.is_empty() && !this.read_ended {
            match std::task::ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        this.unread = data;
                    }
                }
                Some(Err(_)) => {
                    this.read_ended = true;
                    return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
                }
                None => this.read_ended = true,
            }
        }
        crate::rewind::replay(&mut this.unread, buf);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for StreamTunnel {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.outbox.poll_push(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.outbox.finish(false);
        Poll::Ready(Ok(()))
    }
}

impl Drop for StreamTunnel {
    fn drop(&mut self) {
        self.outbox.finish(true);
    }
}
