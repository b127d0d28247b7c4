//! meshwork's HTTP/1.1 client connection: one request at a time, driven by the task of
//! the request that holds it rather than by a task of its own.
//!
//! With hyper's client connection, every exchange crossed tasks: the request went
//! through a channel to the connection's task, the response head came back through
//! another, and each piece of the body through a third, each crossing a wake-up and a
//! poll of the other task (a quarter of the proxy's instructions per request,
//! bench/RESULTS.md). Here the request's own future writes the head, reads the response
//! head, and its response body reads the body straight from the socket, as nginx and
//! Pingora do. Requests that switch protocols (`Upgrade`, `CONNECT`) still take hyper's
//! client on a connection of their own (`cluster::upgrade_conn`).
//!
//! The body of the request is written as the response's head and body are read, so
//! both stream at once (an upstream may answer before it has read the request).

pub mod body_decoder;
mod exchange;
pub mod request_head;
pub mod response_head;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use self::body_decoder::BodyDecoder;
pub use self::request_head::BodyLength;
use self::request_head::RequestFraming;
use crate::cluster::connector::CountedStream;
use crate::http::RequestBody;

/// Why an exchange on a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("writing to the upstream: {0}")]
    Write(#[source] std::io::Error),
    #[error("reading from the upstream: {0}")]
    Read(#[source] std::io::Error),
    #[error("the upstream closed the connection before a response")]
    Closed,
    #[error("the upstream closed the connection in the middle of the response")]
    ClosedMidBody,
    #[error("malformed response head: {0}")]
    MalformedHead(#[source] httparse::Error),
    #[error("response head larger than {} bytes", response_head::MAX_HEAD_BYTES)]
    HeadTooLarge,
    #[error("invalid response status {0}")]
    BadStatus(u16),
    #[error("invalid response header")]
    BadHeader,
    #[error("response body framing: {0}")]
    BadFraming(&'static str),
    #[error("chunked response body: {0}")]
    BadChunk(&'static str),
    #[error("the request body broke: {0}")]
    RequestBody(#[source] crate::http::client_body::ClientBodyError),
    #[error("the request body disagrees with its Content-Length")]
    RequestBodyLength,
}

impl ExchangeError {
    /// A failure of the connection itself (not of what the upstream sent, nor of the
    /// client's body): a reused connection failing this way may have been closed by the
    /// upstream while idle.
    fn is_transport(&self) -> bool {
        matches!(
            self,
            ExchangeError::Write(_) | ExchangeError::Read(_) | ExchangeError::Closed
        )
    }
}

/// One upstream HTTP/1.1 connection and the state of the exchange it carries. Boxed:
/// it holds the transport (a TLS session included) and is handed between the pool, a
/// request's future and its response body, which move it by pointer.
#[derive(Debug)]
pub struct Http1Connection {
    io: CountedStream,
    /// Bytes read and not yet consumed; empty between exchanges.
    read_buf: BytesMut,
    /// How much a read reserves: doubled while reads fill it (large bodies), up to
    /// [`MAX_READ`].
    read_size: usize,
    /// The request head, written from `head_written` on.
    head: Vec<u8>,
    head_written: usize,
    /// Framing and body bytes queued for the wire after the head, in order.
    queued: VecDeque<Bytes>,
    /// Where chunk-size lines and trailers are written before being queued.
    framing_buf: BytesMut,
    /// What is left of the request body to write; kept here (not in the response body
    /// that drives the writing) so the response, moved through every layer, stays small.
    request_body: Option<RequestBody>,
    request: RequestProgress,
    response: BodyDecoder,
    /// The upstream keeps the connection after this response.
    keep_alive: bool,
    /// An exchange on it ended cleanly before: the current request is not its first.
    served: bool,
}

/// How far the request's writing is.
#[derive(Debug)]
struct RequestProgress {
    framing: RequestFraming,
    /// Bytes of a `Content-Length` body still to write.
    remaining: u64,
    /// The body was polled (so it cannot be sent again elsewhere).
    body_started: bool,
    /// Trailers (or the last chunk) were queued.
    body_ended: bool,
    /// Everything is written and flushed.
    done: bool,
    /// A write failed: the rest of the body is dropped (the response may still come).
    write_failed: bool,
    /// A byte of the response was read.
    response_started: bool,
}

/// The first read's reservation, as hyper's.
const INITIAL_READ: usize = 8 * 1024;
/// The largest reservation for one read.
const MAX_READ: usize = 256 * 1024;

impl Http1Connection {
    pub fn new(io: CountedStream) -> Box<Self> {
        Box::new(Self {
            io,
            read_buf: BytesMut::new(),
            read_size: INITIAL_READ,
            head: Vec::new(),
            head_written: 0,
            queued: VecDeque::new(),
            framing_buf: BytesMut::new(),
            request_body: None,
            request: RequestProgress {
                framing: RequestFraming::Length(0),
                remaining: 0,
                body_started: false,
                body_ended: false,
                done: true,
                write_failed: false,
                response_started: false,
            },
            response: BodyDecoder::Done,
            keep_alive: true,
            served: false,
        })
    }

    /// The transport, for hyper's client to take over (an upgrade); the connection is
    /// idle, so nothing is left unread.
    pub fn into_io(self: Box<Self>) -> CountedStream {
        self.io
    }

    /// After an exchange failed: whether its request may go to another connection, as
    /// nothing of it can have been acted on. That is the case when this reused
    /// connection broke before its request's body was touched and before any byte of a
    /// response, and either none of the head was written or the method is idempotent
    /// (an upstream closing an idle connection just as a request is written).
    pub fn may_resend(&self, error: &ExchangeError, method: &http::Method) -> bool {
        self.served
            && error.is_transport()
            && !self.request.body_started
            && !self.request.response_started
            && (self.head_written == 0 || method.is_idempotent())
    }

    /// Whether the exchange ended so that the connection can carry another request:
    /// everything written, the response read to its end and nothing after it, and
    /// neither side asked to close.
    fn reusable(&self) -> bool {
        self.keep_alive && self.request.done && self.response.is_done() && self.read_buf.is_empty()
    }
}
