//! One exchange on an [`Http1Connection`]: the request head and body written, the
//! response head and body read, all polled by the request's own task.

use std::fmt::Write as _;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::{HeaderMap, Method, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::body_decoder::Decoded;
use super::request_head::{self, BodyLength, RequestFraming};
use super::{ExchangeError, Http1Connection, RequestProgress, response_head};
use crate::http::RequestBody;

/// Slices given to one vectored write: the head's rest and the queued body pieces.
const MAX_SLICES: usize = 8;

impl Http1Connection {
    /// Starts an exchange: frames the request (fixing `Content-Length` and
    /// `Transfer-Encoding` to match) and writes its head into the connection's buffer;
    /// the connection holds `body` (`None` for no body) while it writes it. Nothing is
    /// sent until the exchange is polled.
    pub fn begin(
        &mut self,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
        length: BodyLength,
        body: Option<RequestBody>,
    ) {
        let framing = request_head::encode(method, uri, headers, length, &mut self.head);
        self.request_body = body;
        self.head_written = 0;
        self.queued.clear();
        self.request = RequestProgress {
            remaining: match framing {
                RequestFraming::Length(n) => n,
                RequestFraming::Chunked { .. } => 0,
            },
            framing,
            body_started: false,
            body_ended: false,
            done: false,
            write_failed: false,
            response_started: false,
        };
        self.keep_alive = true;
    }

    /// Sends the request (as much of its body as comes before the response) and reads
    /// the response's head; the body follows with [`Http1Connection::poll_body`].
    ///
    /// # Errors
    /// [`ExchangeError`]: the connection broke, the upstream sent no valid head, or the
    /// client's body broke.
    pub async fn response_head(&mut self, method: &Method) -> Result<Response<()>, ExchangeError> {
        let mut write_error = None;
        std::future::poll_fn(|cx| {
            if !self.request.done && !self.request.write_failed {
                match self.poll_request(cx) {
                    Poll::Ready(Err(error @ ExchangeError::Write(_))) => {
                        // The upstream may have answered before it stopped reading (a
                        // 413 to an upload): its answer is still worth reading.
                        self.request.write_failed = true;
                        self.request_body = None;
                        write_error = Some(error);
                    }
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                    Poll::Ready(Ok(())) | Poll::Pending => {}
                }
            }
            match ready!(self.poll_response_head(method, cx)) {
                Ok(head) => Poll::Ready(Ok(head)),
                Err(error) => Poll::Ready(Err(write_error.take().unwrap_or(error))),
            }
        })
        .await
    }

    /// The next frame of the response body, writing more of the request body first when
    /// some is still to go.
    pub fn poll_body(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        if !self.request.done && !self.request.write_failed {
            match self.poll_request(cx) {
                Poll::Ready(Ok(())) | Poll::Pending => {}
                // The upstream stopped reading: its response may still come whole, but
                // the connection will not carry another request.
                Poll::Ready(Err(ExchangeError::Write(_))) => {
                    self.request.write_failed = true;
                    self.request_body = None;
                }
                Poll::Ready(Err(error)) => {
                    self.request.write_failed = true;
                    self.request_body = None;
                    return Poll::Ready(Some(Err(error)));
                }
            }
        }
        loop {
            match self.response.decode(&mut self.read_buf) {
                Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(Decoded::Trailers(trailers)) => {
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                Ok(Decoded::End) => return Poll::Ready(None),
                Ok(Decoded::NeedMore) => {}
                Err(error) => {
                    self.keep_alive = false;
                    return Poll::Ready(Some(Err(error)));
                }
            }
            match ready!(self.poll_fill(cx)) {
                Ok(0) => {
                    self.keep_alive = false;
                    return match self.response.at_close() {
                        Ok(()) => Poll::Ready(None),
                        Err(error) => Poll::Ready(Some(Err(error))),
                    };
                }
                Ok(_) => {}
                Err(error) => {
                    self.keep_alive = false;
                    return Poll::Ready(Some(Err(ExchangeError::Read(error))));
                }
            }
        }
    }

    /// Whether the response body has been read to its end (or has nothing left to read).
    pub fn response_complete(&self) -> bool {
        self.response.remaining() == Some(0)
    }

    /// The response body's size hint.
    pub fn body_size_hint(&self) -> SizeHint {
        match self.response.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }

    /// After the response body ended: whether the connection can carry another request.
    pub fn finish(&mut self) -> bool {
        if self.response.remaining() == Some(0) {
            let _ = self.response.decode(&mut self.read_buf);
        }
        self.request_body = None;
        let reusable = self.reusable();
        self.served |= reusable;
        reusable
    }

    /// Whether the upstream has not closed or written to this idle connection (looked
    /// at without blocking and without a system call when the socket has had no event).
    pub fn is_open(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut probe = [0u8; 1];
        let mut buf = ReadBuf::new(&mut probe);
        matches!(
            Pin::new(&mut self.io).poll_read(&mut cx, &mut buf),
            Poll::Pending
        )
    }

    /// Writes the head and the body as it comes; ready when all is written and flushed.
    fn poll_request(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ExchangeError>> {
        loop {
            ready!(self.poll_write_queued(cx))?;
            let Some(stream) = self.request_body.as_mut() else {
                if !self.request.body_ended {
                    self.end_body()?;
                    continue;
                }
                ready!(Pin::new(&mut self.io).poll_flush(cx)).map_err(ExchangeError::Write)?;
                self.request.done = true;
                return Poll::Ready(Ok(()));
            };
            self.request.body_started = true;
            match ready!(Pin::new(stream).poll_frame(cx)) {
                Some(Ok(frame)) => self.queue_frame(frame)?,
                Some(Err(error)) => {
                    self.request_body = None;
                    return Poll::Ready(Err(ExchangeError::RequestBody(error)));
                }
                None => self.request_body = None,
            }
        }
    }

    /// The request body back from an exchange that failed before touching it, for
    /// another connection to send ([`Http1Connection::may_resend`]).
    pub fn take_request_body(&mut self) -> Option<RequestBody> {
        self.request_body.take()
    }

    /// Queues a frame of the request body as its framing wants it.
    fn queue_frame(&mut self, frame: Frame<Bytes>) -> Result<(), ExchangeError> {
        let frame = match frame.into_data() {
            Ok(data) => {
                if data.is_empty() || self.request.body_ended {
                    return Ok(());
                }
                match &self.request.framing {
                    RequestFraming::Length(_) => {
                        let len = data.len() as u64;
                        if len > self.request.remaining {
                            return Err(ExchangeError::RequestBodyLength);
                        }
                        self.request.remaining -= len;
                        self.queued.push_back(data);
                    }
                    RequestFraming::Chunked { .. } => {
                        let _ = write!(self.framing_buf, "{:X}\r\n", data.len());
                        self.queued.push_back(self.framing_buf.split().freeze());
                        self.queued.push_back(data);
                        self.queued.push_back(Bytes::from_static(b"\r\n"));
                    }
                }
                return Ok(());
            }
            Err(frame) => frame,
        };
        let (Ok(trailers), RequestFraming::Chunked { trailers: declared }) =
            (frame.into_trailers(), &self.request.framing)
        else {
            // Trailers have no place in a body framed by its length.
            return Ok(());
        };
        if self.request.body_ended {
            return Ok(());
        }
        self.framing_buf.extend_from_slice(b"0\r\n");
        for name in declared {
            for value in trailers.get_all(name) {
                request_head::write_field(&mut self.framing_buf, name, value);
            }
        }
        self.framing_buf.extend_from_slice(b"\r\n");
        self.queued.push_back(self.framing_buf.split().freeze());
        self.request.body_ended = true;
        Ok(())
    }

    /// The body ended: the last chunk, or a check that the length was all sent.
    fn end_body(&mut self) -> Result<(), ExchangeError> {
        self.request.body_ended = true;
        match self.request.framing {
            RequestFraming::Length(_) if self.request.remaining != 0 => {
                Err(ExchangeError::RequestBodyLength)
            }
            RequestFraming::Length(_) => Ok(()),
            RequestFraming::Chunked { .. } => {
                self.queued.push_back(Bytes::from_static(b"0\r\n\r\n"));
                Ok(())
            }
        }
    }

    /// Writes the head's rest and the queued pieces, several per system call.
    fn poll_write_queued(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ExchangeError>> {
        while self.head_written < self.head.len() || !self.queued.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut n = 0;
            if self.head_written < self.head.len() {
                slices[0] = IoSlice::new(&self.head[self.head_written..]);
                n = 1;
            }
            for piece in self.queued.iter().take(MAX_SLICES - n) {
                slices[n] = IoSlice::new(piece);
                n += 1;
            }
            let written = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]))
                .map_err(ExchangeError::Write)?;
            if written == 0 {
                return Poll::Ready(Err(ExchangeError::Write(
                    std::io::ErrorKind::WriteZero.into(),
                )));
            }
            self.consume_written(written);
        }
        Poll::Ready(Ok(()))
    }

    fn consume_written(&mut self, mut n: usize) {
        let from_head = n.min(self.head.len() - self.head_written);
        self.head_written += from_head;
        n -= from_head;
        while n > 0 {
            let front = self.queued.front_mut().expect("written bytes were queued");
            if front.len() <= n {
                n -= front.len();
                self.queued.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }

    /// Reads until a whole response head is in (informational ones skipped).
    fn poll_response_head(
        &mut self,
        method: &Method,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response<()>, ExchangeError>> {
        loop {
            if !self.read_buf.is_empty() {
                if let Some(head) = response_head::parse(&mut self.read_buf, method)? {
                    self.response = head.body;
                    self.keep_alive &= head.keep_alive;
                    return Poll::Ready(Ok(head.response));
                }
            }
            match ready!(self.poll_fill(cx)) {
                Ok(0) => {
                    return Poll::Ready(Err(if self.request.response_started {
                        ExchangeError::ClosedMidBody
                    } else {
                        ExchangeError::Closed
                    }));
                }
                Ok(_) => self.request.response_started = true,
                Err(error) => return Poll::Ready(Err(ExchangeError::Read(error))),
            }
        }
    }

    /// One read into the read buffer; `Ok(0)` when the upstream closed.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let spare = self.read_buf.capacity() - self.read_buf.len();
        if spare < self.read_size / 2 {
            self.read_buf.reserve(self.read_size);
        }
        let spare = self.read_buf.capacity() - self.read_buf.len();
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.io),
            cx,
            &mut self.read_buf
        ))?;
        if n == spare {
            self.read_size = (self.read_size * 2).min(super::MAX_READ);
        }
        Poll::Ready(Ok(n))
    }
}
