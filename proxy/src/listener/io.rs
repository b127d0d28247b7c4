//! The downstream connection's transport, reporting reads to the connection's
//! [`ConnActivity`] (HTTP/1: bytes between requests start a request head's timer;
//! HTTP/2: frames are scanned for header blocks): the read half of a plaintext socket
//! (the write half stays with the connection's supervisor, which may still write a last
//! 408 after it stopped serving a slow request head; writes go through the read half's
//! shared socket), or a TLS stream.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::OwnedReadHalf;
use tokio_rustls::server::TlsStream;

use super::sidecar::Rewind;

use super::activity::{ConnActivity, ConnProtocol};
use super::header_blocks::HeaderBlockScanner;

/// What the bytes read are watched for.
#[derive(Debug)]
enum Scanner {
    /// HTTP/1: the reads themselves (a read between requests starts a head).
    Http1,
    /// HTTP/2 frames, for header blocks starting and ending.
    Http2(HeaderBlockScanner),
}

/// A downstream transport (`OwnedReadHalf`: plaintext; `TlsStream`: TLS) whose reads
/// are watched.
#[derive(Debug)]
pub struct ConnIo<T> {
    stream: T,
    activity: Arc<ConnActivity>,
    scanner: Scanner,
    /// Bytes read while the connection was parked (or before it was served), read
    /// again first.
    replay: Bytes,
}

impl<T> ConnIo<T> {
    pub fn new(stream: T, activity: Arc<ConnActivity>) -> Self {
        let scanner = match activity.protocol() {
            ConnProtocol::Http1 => Scanner::Http1,
            ConnProtocol::Http2 => Scanner::Http2(HeaderBlockScanner::default()),
        };
        Self {
            stream,
            activity,
            scanner,
            replay: Bytes::new(),
        }
    }

    /// Reads `replay` (bytes already taken from the stream) before the stream.
    pub fn replaying(mut self, replay: Bytes) -> Self {
        self.replay = replay;
        self
    }

    /// The stream, for a connection parked between requests.
    pub fn into_inner(self) -> T {
        self.stream
    }

    fn stream(&mut self) -> Pin<&mut T>
    where
        T: Unpin,
    {
        Pin::new(&mut self.stream)
    }

    fn inspect(&mut self, bytes: &[u8]) {
        let activity = &self.activity;
        match &mut self.scanner {
            Scanner::Http1 => activity.on_read(),
            Scanner::Http2(blocks) => blocks.feed(bytes, |event| activity.on_header_block(event)),
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
        let before = buf.filled().len();
        if crate::rewind::replay(&mut this.replay, buf) {
            this.inspect(&buf.filled()[before..]);
            return Poll::Ready(Ok(()));
        }
        // Plaintext goes through tokio's read path: it reads into the uninitialized part
        // of the connection's buffer (no zero-fill) and clears the socket's readiness after a short read, so the next
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
        self.stream.as_ref()
    }
}

impl AsyncWrite for ConnIo<OwnedReadHalf> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let socket = self.socket();
        let written = loop {
            ready!(socket.poll_write_ready(cx))?;
            match socket.try_write(data) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => break other,
            }
        };
        Poll::Ready(written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let socket = self.socket();
        let written = loop {
            ready!(socket.poll_write_ready(cx))?;
            match socket.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => break other,
            }
        };
        Poll::Ready(written)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written straight to the socket.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = socket2::SockRef::from(self.socket()).shutdown(std::net::Shutdown::Write);
        Poll::Ready(match result {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        })
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
                Poll::Ready(written)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let this = self.get_mut();
                let written = ready!(this.stream().poll_write_vectored(cx, bufs));
                Poll::Ready(written)
            }

            fn is_write_vectored(&self) -> bool {
                self.stream.is_write_vectored()
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.get_mut().stream().poll_flush(cx)
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.get_mut().stream().poll_shutdown(cx)
            }
        }
    )+};
}

write_through!(TlsStream<S>, Rewind<S>);

/// Reads what the socket has into `buf` (making room for `reserve` bytes when little is
/// left); `Ready` when something happened (bytes, the
/// end, an error: the last two set `closed`).
pub(super) fn read_into<I: AsyncRead + Unpin>(
    io: &mut I,
    buf: &mut BytesMut,
    reserve: usize,
    closed: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if buf.capacity() - buf.len() < reserve / 8 {
        buf.reserve(reserve);
    }
    match tokio_util::io::poll_read_buf(Pin::new(io), cx, buf) {
        Poll::Pending => Poll::Pending,
        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
            *closed = true;
            Poll::Ready(())
        }
        Poll::Ready(Ok(_)) => Poll::Ready(()),
    }
}
