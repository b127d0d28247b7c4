//! The downstream connection's transport, reporting reads to the connection's
//! [`ConnActivity`] (HTTP/1 head bytes scanned for ambiguous framing, HTTP/2 frames
//! for header blocks): the read half of a plaintext socket (the write half stays with the
//! connection's supervisor, which may still write a last 408 after it stopped hyper on a
//! slow request head; hyper writes through the read half's shared socket), or a TLS
//! stream.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::OwnedReadHalf;
use tokio_rustls::server::TlsStream;

use super::sidecar::Rewind;

use super::activity::{ConnActivity, ConnProtocol};
use super::framing::HeadScanner;
use super::header_blocks::HeaderBlockScanner;

/// What the bytes read are watched for.
#[derive(Debug)]
enum Scanner {
    /// HTTP/1 request heads, for both framing headers at once.
    Http1 {
        head: HeadScanner,
        /// `activity.requests_started()` when `head` was last reset.
        scanned_for: u64,
    },
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
}

impl<T> ConnIo<T> {
    pub fn new(stream: T, activity: Arc<ConnActivity>) -> Self {
        let scanner = match activity.protocol() {
            ConnProtocol::Http1 => Scanner::Http1 {
                head: HeadScanner::default(),
                scanned_for: 0,
            },
            ConnProtocol::Http2 => Scanner::Http2(HeaderBlockScanner::default()),
        };
        Self {
            stream,
            activity,
            scanner,
        }
    }

    fn inspect(&mut self, bytes: &[u8]) {
        let activity = &self.activity;
        match &mut self.scanner {
            Scanner::Http1 { head, scanned_for } => {
                activity.on_read();
                if activity.reading_head() {
                    let started = activity.requests_started();
                    if started != *scanned_for {
                        *head = HeadScanner::default();
                        *scanned_for = started;
                    }
                    if head.feed(bytes) {
                        activity.flag_ambiguous_framing();
                    }
                }
            }
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
        // Plaintext goes through tokio's read path: it reads into the uninitialized part
        // of hyper's buffer (no zero-fill, so idle connections' buffers stay mostly
        // unresident) and clears the socket's readiness after a short read, so the next
        // read waits for epoll instead of trying (and failing with EAGAIN) once per
        // request.
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.inspect(&buf.filled()[before..]);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ConnIo<OwnedReadHalf> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.as_ref().poll_write_ready(cx))?;
            match self.stream.as_ref().try_write(data) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.as_ref().poll_write_ready(cx))?;
            match self.stream.as_ref().try_write_vectored(bufs) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result =
            socket2::SockRef::from(self.stream.as_ref()).shutdown(std::net::Shutdown::Write);
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
                Pin::new(&mut self.get_mut().stream).poll_write(cx, data)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.stream.is_write_vectored()
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.get_mut().stream).poll_flush(cx)
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
            }
        }
    )+};
}

write_through!(TlsStream<S>, Rewind<S>);
