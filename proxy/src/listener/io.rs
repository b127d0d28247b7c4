//! The downstream connection's transport, reporting reads to the connection's
//! [`ConnActivity`] (HTTP/1 head bytes scanned for ambiguous framing, HTTP/2 frames
//! for header blocks): the read half of a plaintext socket (the write half stays with the
//! connection's supervisor, which may still write a last 408 after it stopped hyper on a
//! slow request head; hyper writes through the read half's shared socket), or a TLS
//! stream.
//!
//! An HTTP/1 keep-alive connection idle for a while is parked: once its supervisor
//! marks it due, when hyper asks for the next request head and provably holds no unread
//! byte and no unwritten one, the transport answers end-of-stream. hyper then closes the connection cleanly (an EOF
//! between requests is a client going away), without shutting the socket down, and
//! drops its read and write buffers; the transport goes back to the connection's task
//! ([`Handback`]), which waits for the next bytes on it alone (`park`).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::OwnedReadHalf;
use tokio_rustls::server::TlsStream;

use super::sidecar::Rewind;

use super::activity::{ConnActivity, ConnProtocol};
use super::framing::HeadScanner;
use super::header_blocks::HeaderBlockScanner;

/// Where a parked connection's transport goes when hyper drops it.
pub type Handback<T> = Arc<Mutex<Option<T>>>;

/// What the bytes read are watched for.
#[derive(Debug)]
enum Scanner {
    /// HTTP/1 request heads, for both framing headers at once.
    Http1 {
        head: HeadScanner,
        /// `activity.requests_started()` when `head` was last reset.
        scanned_for: u64,
        /// Bytes read since the end of the head `head` scanned (body or pipelined).
        past_head: u64,
    },
    /// HTTP/2 frames, for header blocks starting and ending.
    Http2(HeaderBlockScanner),
}

/// A downstream transport (`OwnedReadHalf`: plaintext; `TlsStream`: TLS) whose reads
/// are watched.
#[derive(Debug)]
pub struct ConnIo<T> {
    /// Always present until the connection is dropped parked (then it is handed back).
    stream: Option<T>,
    activity: Arc<ConnActivity>,
    scanner: Scanner,
    /// Bytes read while the connection was parked, read again first.
    replay: Bytes,
    /// HTTP/1 connections that may be parked: where the transport goes then.
    handback: Option<Handback<T>>,
    /// Bytes were written and not flushed since.
    unflushed: bool,
    /// End-of-stream was answered to park the connection.
    parked: bool,
}

impl<T> ConnIo<T> {
    pub fn new(stream: T, activity: Arc<ConnActivity>) -> Self {
        let scanner = match activity.protocol() {
            ConnProtocol::Http1 => Scanner::Http1 {
                head: HeadScanner::default(),
                scanned_for: activity.requests_started(),
                past_head: 0,
            },
            ConnProtocol::Http2 => Scanner::Http2(HeaderBlockScanner::default()),
        };
        Self {
            stream: Some(stream),
            activity,
            scanner,
            replay: Bytes::new(),
            handback: None,
            unflushed: false,
            parked: false,
        }
    }

    /// An HTTP/1 connection parked between requests once idle: its transport is put in
    /// `handback` when hyper drops it. `replay` is what was read while it was parked.
    pub fn parkable(mut self, handback: Handback<T>, replay: Bytes) -> Self {
        self.handback = Some(handback);
        self.replay = replay;
        self
    }

    fn stream(&mut self) -> Pin<&mut T>
    where
        T: Unpin,
    {
        Pin::new(self.stream.as_mut().expect("present until dropped"))
    }

    fn inspect(&mut self, bytes: &[u8]) {
        let activity = &self.activity;
        match &mut self.scanner {
            Scanner::Http1 {
                head,
                scanned_for,
                past_head,
            } => {
                activity.on_read();
                if !activity.reading_head() {
                    *past_head += bytes.len() as u64;
                    return;
                }
                let started = activity.requests_started();
                if started != *scanned_for {
                    *head = HeadScanner::default();
                    *scanned_for = started;
                    *past_head = 0;
                }
                let in_head = head.scan(bytes);
                *past_head += (bytes.len() - in_head) as u64;
                if head.ambiguous() {
                    activity.flag_ambiguous_framing();
                }
            }
            Scanner::Http2(blocks) => blocks.feed(bytes, |event| activity.on_header_block(event)),
        }
    }

    /// Whether the connection is due to be parked (idle for a while, `activity`) and
    /// hyper, asking for bytes now, is between requests with nothing of the
    /// client's left unread in its buffer and nothing of its own unwritten: exactly one
    /// request started since the last head was scanned, and exactly its body was read
    /// past that head.
    fn may_park(&self) -> bool {
        let Scanner::Http1 {
            scanned_for,
            past_head,
            ..
        } = &self.scanner
        else {
            return false;
        };
        let activity = &self.activity;
        activity.park_due()
            && self.handback.is_some()
            && !self.unflushed
            && self.replay.is_empty()
            && activity.in_flight() == 0
            && !activity.receiving_head()
            && activity.requests_started() == scanned_for + 1
            && activity.request_body() == Some(*past_head)
    }
}

/// A transport dropped parked goes back to the connection's task.
impl<T> Drop for ConnIo<T> {
    fn drop(&mut self) {
        if !self.parked {
            return;
        }
        if let (Some(handback), Some(stream)) = (&self.handback, self.stream.take()) {
            if let Ok(mut slot) = handback.lock() {
                *slot = Some(stream);
            }
        }
    }
}

/// The same for both transports: every read is reported and scanned.
impl<T: AsyncRead + Unpin> AsyncRead for ConnIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.parked || this.may_park() {
            // End-of-stream between requests: hyper lets go of the connection.
            this.parked = true;
            return Poll::Ready(Ok(()));
        }
        if this.replay.has_remaining() {
            let n = this.replay.len().min(buf.remaining());
            let bytes = this.replay.split_to(n);
            buf.put_slice(&bytes);
            this.inspect(&bytes);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        // Plaintext goes through tokio's read path: it reads into the uninitialized part
        // of hyper's buffer (no zero-fill, so idle connections' buffers stay mostly
        // unresident) and clears the socket's readiness after a short read, so the next
        // read waits for epoll instead of trying (and failing with EAGAIN) once per
        // request.
        ready!(this.stream().poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.inspect(&buf.filled()[before..]);
        }
        Poll::Ready(Ok(()))
    }
}

impl ConnIo<OwnedReadHalf> {
    fn socket(&self) -> &tokio::net::TcpStream {
        self.stream
            .as_ref()
            .expect("present until dropped")
            .as_ref()
    }
}

impl AsyncWrite for ConnIo<OwnedReadHalf> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let socket = this.socket();
        let written = loop {
            ready!(socket.poll_write_ready(cx))?;
            match socket.try_write(data) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => break other,
            }
        };
        Poll::Ready(this.wrote(written))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let socket = this.socket();
        let written = loop {
            ready!(socket.poll_write_ready(cx))?;
            match socket.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => break other,
            }
        };
        Poll::Ready(this.wrote(written))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written straight to the socket: hyper flushing means its own buffer is empty.
        self.get_mut().unflushed = false;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.parked {
            return Poll::Ready(Ok(()));
        }
        let result = socket2::SockRef::from(this.socket()).shutdown(std::net::Shutdown::Write);
        Poll::Ready(match result {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        })
    }
}

impl<T> ConnIo<T> {
    /// Notes a write: until the next flush, the connection is not parked.
    fn wrote(&mut self, written: io::Result<usize>) -> io::Result<usize> {
        if matches!(written, Ok(n) if n > 0) {
            self.unflushed = true;
        }
        written
    }
}

/// Transports that write through themselves (TLS, or an intercepted connection whose
/// first bytes were replayed): writes go straight to the stream.
macro_rules! write_through {
    ($($stream:ty),+ $(,)?) => {$(
        impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ConnIo<$stream> {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                data: &[u8],
            ) -> Poll<io::Result<usize>> {
                let this = self.get_mut();
                let written = ready!(this.stream().poll_write(cx, data));
                Poll::Ready(this.wrote(written))
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let this = self.get_mut();
                let written = ready!(this.stream().poll_write_vectored(cx, bufs));
                Poll::Ready(this.wrote(written))
            }

            fn is_write_vectored(&self) -> bool {
                self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let this = self.get_mut();
                ready!(this.stream().poll_flush(cx))?;
                this.unflushed = false;
                Poll::Ready(Ok(()))
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let this = self.get_mut();
                if this.parked {
                    // The connection lives on past hyper: no close_notify, no FIN.
                    return Poll::Ready(Ok(()));
                }
                this.stream().poll_shutdown(cx)
            }
        }
    )+};
}

write_through!(TlsStream<S>, Rewind<S>);
