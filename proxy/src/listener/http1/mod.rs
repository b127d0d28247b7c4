//! meshwork's HTTP/1 server connection: reads request heads, hands each request to the
//! service, writes its response, and feeds its body as the service reads it, all in the
//! connection's own task.
//!
//! Owning it, rather than running hyper's, takes about 1,900 instructions and two
//! allocations off each HTTP/1.1 request (bench/RESULTS.md, "meshwork's own HTTP/1
//! server connection"): no dispatcher between the socket and the service, no body
//! channel (a request without a body has none at all; a body is fed through a slot the
//! connection fills right after the service asks, `http::client_body`), the framing
//! fields read while the head is parsed, and parking without tricking a library into
//! letting go. It also puts the request framing, and so the smuggling defences, in
//! meshwork's own code. Requests are served one at a time, in order; pipelined requests
//! wait in the read buffer.
//!
//! Framing is strict (`head`): what could be read two ways is refused with 400 and the
//! connection closed, as the next request's start would be unknowable. A response
//! ends the connection whenever the request's body was not read to its end.

mod encode;
mod feed;
mod head;
mod output;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

use self::encode::{BodyEncoder, RequestFacts};
use self::feed::{BodyFeed, Fed, Input};
use self::head::{HeadError, RequestHead};
use self::output::FrameOutcome;
use super::activity::ConnActivity;
use super::io::read_into;
use super::output::Output;
use crate::http::client_body::ClientBody;
use crate::http::client_upgrade::{ClientUpgrade, TunnelIo, Upgraded};
use crate::http::response::error_response;
use crate::http::{ProxyError, ResponseBody};

/// What the connection asks of whoever answers its requests.
pub(super) trait Http1Service {
    type Body: Body<Data = Bytes, Error: std::fmt::Display> + Unpin;
    type Future: Future<Output = Result<http::Response<Self::Body>, Infallible>> + Unpin;

    fn serve(&self, request: http::Request<ClientBody>) -> Self::Future;

    /// The connection answered a head it could not serve with `error` itself.
    fn refused(&self, error: ProxyError);
}

/// How much response is buffered before it is written (and the body polled no more).
const WRITE_HIGH_WATER: usize = 64 * 1024;
/// The read buffer's reservation.
const READ_SIZE: usize = 8 * 1024;

/// One HTTP/1 connection being served.
pub(super) struct Http1Server<I, S: Http1Service> {
    /// Taken when the connection switches protocols.
    io: Option<I>,
    service: S,
    read_buf: BytesMut,
    /// What is to be written to the client.
    output: Output,
    state: State<S>,
    max_head: usize,
    /// How much is read ahead (pipelined requests, a tunnel's first bytes) while a
    /// request is in flight.
    max_buf: usize,
    /// A graceful shutdown began: no request after the current one.
    shutting_down: bool,
    /// The client sent its end (or the socket broke).
    read_closed: bool,
    /// How much of a partial head in `read_buf` was parsed and found incomplete.
    head_checked: usize,
    /// The last response's header map, emptied: the next request's head is parsed into
    /// it (its capacity kept).
    spare_headers: Option<HeaderMap>,
    /// Where the connection hears that it has been idle long enough to be parked.
    activity: Option<Arc<ConnActivity>>,
}

enum State<S: Http1Service> {
    /// Waiting for (or reading) the next request head.
    Head,
    Exchange(Exchange<S>),
    /// Writing what is left, then closing the sending side.
    Closing,
    Done,
    /// Idle between requests with nothing buffered either way: the transport can be
    /// taken back ([`Http1Server::into_parked`]) and the connection's state dropped.
    Parked,
}

/// A request in flight and its response.
struct Exchange<S: Http1Service> {
    facts: RequestFacts,
    keep_alive: bool,
    /// The request body being read, until its end (or it is abandoned).
    body: Option<BodyFeed>,
    /// The request body will not be read to its end: the connection cannot be reused.
    body_unfinished: bool,
    /// A `100 Continue` is owed the first time the body wants bytes.
    expect_continue: bool,
    upgrade: Option<oneshot::Sender<Upgraded>>,
    response: Response<S>,
}

enum Response<S: Http1Service> {
    Pending(S::Future),
    Body {
        body: S::Body,
        encoder: BodyEncoder,
    },
    Written {
        /// A `101` went out: the connection now belongs to the tunnel.
        switched: bool,
    },
}

/// What one turn of the connection did.
enum Turn {
    Progress,
    Blocked,
    Finished(io::Result<()>),
}

impl<I, S> Http1Server<I, S>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug + 'static,
    S: Http1Service,
{
    pub(super) fn new(io: I, service: S, max_head: usize) -> Self {
        Self {
            io: Some(io),
            service,
            read_buf: BytesMut::new(),
            output: Output::default(),
            state: State::Head,
            max_head,
            max_buf: max_head.max(READ_SIZE) + READ_SIZE,
            shutting_down: false,
            read_closed: false,
            head_checked: 0,
            spare_headers: None,
            activity: None,
        }
    }

    /// Lets the connection be parked between requests once `activity` says it is due
    /// (the supervisor marks it after a while idle, `supervise::PARK_AFTER`).
    pub(super) fn parkable(mut self, activity: Arc<ConnActivity>) -> Self {
        self.activity = Some(activity);
        self
    }

    /// The transport of a connection that ended parked.
    pub(super) fn into_parked(self) -> Option<I> {
        matches!(self.state, State::Parked)
            .then_some(self.io)
            .flatten()
    }

    /// Stops taking requests: an idle connection ends now, a busy one after its
    /// response (which then says `Connection: close`).
    pub(super) fn graceful_shutdown(&mut self) {
        self.shutting_down = true;
        if let State::Exchange(exchange) = &mut self.state {
            exchange.keep_alive = false;
        }
    }

    fn turn(&mut self, cx: &mut Context<'_>) -> Turn {
        match self.state {
            State::Head => self.read_head(cx),
            State::Exchange(_) => self.exchange(cx),
            State::Closing => match self
                .output
                .poll_write_all(self.io.as_mut().expect("present until switched"), cx)
            {
                Poll::Pending => Turn::Blocked,
                Poll::Ready(Err(e)) => Turn::Finished(Err(e)),
                Poll::Ready(Ok(())) => {
                    let io = self.io.as_mut().expect("present until switched");
                    match Pin::new(io).poll_shutdown(cx) {
                        Poll::Pending => Turn::Blocked,
                        Poll::Ready(_) => {
                            self.state = State::Done;
                            Turn::Finished(Ok(()))
                        }
                    }
                }
            },
            State::Done | State::Parked => Turn::Finished(Ok(())),
        }
    }

    fn read_head(&mut self, cx: &mut Context<'_>) -> Turn {
        if !self.read_buf.is_empty() {
            head::skip_empty_lines(&mut self.read_buf);
            self.head_checked = self.head_checked.min(self.read_buf.len());
        }
        // A partial head is parsed again only once a line has ended since (or it is too
        // large): a client trickling its head byte by byte costs one parse per line,
        // not one per byte.
        let worth_parsing = !self.read_buf.is_empty()
            && (self.head_checked == 0
                || self.read_buf.len() > self.max_head
                || memchr::memchr(b'\n', &self.read_buf[self.head_checked..]).is_some());
        if worth_parsing {
            let headers = self.spare_headers.take().unwrap_or_default();
            match head::parse(&mut self.read_buf, self.max_head, headers) {
                Ok(Some(head)) => {
                    self.head_checked = 0;
                    self.start(head);
                    return Turn::Progress;
                }
                Ok(None) => self.head_checked = self.read_buf.len(),
                Err(error) => {
                    tracing::debug!(%error, "refusing a request head");
                    let refusal = match error {
                        HeadError::TooLarge => ProxyError::HeaderTooLarge,
                        HeadError::Malformed(_) => ProxyError::MalformedRequest,
                    };
                    self.service.refused(refusal);
                    self.refuse(refusal);
                    self.state = State::Closing;
                    return Turn::Progress;
                }
            }
        }
        if self.read_closed || (self.shutting_down && self.read_buf.is_empty()) {
            self.state = State::Closing;
            return Turn::Progress;
        }
        let park = self.read_buf.is_empty()
            && self.output.is_idle()
            && self.activity.as_ref().is_some_and(|a| a.park_due());
        if park {
            self.state = State::Parked;
            return Turn::Finished(Ok(()));
        }
        match self.poll_read(cx) {
            Poll::Pending => Turn::Blocked,
            Poll::Ready(_) => Turn::Progress,
        }
    }

    /// Answers a head the connection cannot serve as the stack answers its errors
    /// (`error_response`), with `Connection: close`.
    fn refuse(&mut self, refusal: ProxyError) {
        let (parts, body) = error_response(refusal).into_parts();
        // The head could not be read: answered as to an HTTP/1.1 GET.
        let facts = RequestFacts::of(&http::Method::GET, http::Version::HTTP_11, false);
        encode::head(
            self.output.tail(),
            parts.status,
            None,
            &parts.headers,
            body.size_hint(),
            facts,
            &mut false,
        );
        if let ResponseBody::Full { data: Some(data) } = body {
            self.output.push(data);
        }
    }

    /// Hands a parsed request to the service.
    fn start(&mut self, head: RequestHead) {
        let RequestHead {
            mut request,
            body: framing,
            keep_alive,
            expect_continue,
            upgrade,
            trailers,
        } = head;
        let facts = RequestFacts::of(request.method(), request.version(), trailers);
        let upgrade = upgrade.then(|| {
            let (tx, extension) = ClientUpgrade::pair();
            request.extensions_mut().insert(extension);
            tx
        });
        let (body, feed) = feed::body_for(framing);
        let future = self.service.serve(request.map(|()| ClientBody::from(body)));
        self.state = State::Exchange(Exchange {
            facts,
            keep_alive: keep_alive && !self.shutting_down,
            expect_continue: expect_continue && feed.is_some(),
            body: feed,
            body_unfinished: false,
            upgrade,
            response: Response::Pending(future),
        });
    }

    fn exchange(&mut self, cx: &mut Context<'_>) -> Turn {
        let State::Exchange(exchange) = &mut self.state else {
            unreachable!("called in an exchange");
        };
        let mut progress = false;

        if let Response::Pending(future) = &mut exchange.response {
            if let Poll::Ready(Ok(response)) = Pin::new(future).poll(cx) {
                exchange.expect_continue = false;
                let (parts, body) = response.into_parts();
                let reason = parts
                    .extensions
                    .get::<hyper::ext::ReasonPhrase>()
                    .map(|r| r.as_bytes());
                let switching = parts.status == StatusCode::SWITCHING_PROTOCOLS;
                let switched =
                    switching && exchange.upgrade.as_ref().is_some_and(|tx| !tx.is_closed());
                if switching && !switched {
                    // Nothing takes the connection over: it cannot go on as HTTP/1.
                    exchange.keep_alive = false;
                }
                if exchange.facts.connect && parts.status.is_success() {
                    exchange.keep_alive = false;
                }
                let encoder = encode::head(
                    self.output.tail(),
                    parts.status,
                    reason,
                    &parts.headers,
                    body.size_hint(),
                    exchange.facts,
                    &mut exchange.keep_alive,
                );
                let mut headers = parts.headers;
                headers.clear();
                self.spare_headers = Some(headers);
                exchange.response = match encoder {
                    BodyEncoder::None | BodyEncoder::Length(0) => Response::Written { switched },
                    encoder => Response::Body { body, encoder },
                };
                progress = true;
            }
        }

        if let Response::Body { body, encoder } = &mut exchange.response {
            loop {
                if self.output.len() >= WRITE_HIGH_WATER {
                    break;
                }
                let frame = match Pin::new(&mut *body).poll_frame(cx) {
                    Poll::Pending => break,
                    Poll::Ready(frame) => frame,
                };
                progress = true;
                match output::write_frame(&mut self.output, encoder, frame) {
                    FrameOutcome::More => {}
                    FrameOutcome::Ended => {
                        exchange.response = Response::Written { switched: false };
                        break;
                    }
                    FrameOutcome::Broken => {
                        // The client must not take a cut response for a whole one.
                        exchange.keep_alive = false;
                        self.state = State::Closing;
                        return Turn::Progress;
                    }
                }
            }
        }

        if let Some(feed) = &mut exchange.body {
            let io = self.io.as_mut().expect("present until switched");
            let input = &mut Input {
                io,
                buf: &mut self.read_buf,
                closed: &mut self.read_closed,
            };
            let continue_owed = &mut exchange.expect_continue;
            match feed.step(input, continue_owed, &mut self.output, cx) {
                Fed::Nothing => {}
                Fed::Progress => progress = true,
                Fed::Ended => {
                    exchange.body = None;
                    progress = true;
                }
                Fed::Unfinished => {
                    exchange.body = None;
                    exchange.body_unfinished = true;
                    progress = true;
                }
                Fed::Malformed => {
                    exchange.body = None;
                    exchange.body_unfinished = true;
                    exchange.keep_alive = false;
                    progress = true;
                }
            }
        } else if matches!(exchange.response, Response::Pending(_))
            && !self.read_closed
            && self.read_buf.len() < self.max_buf
        {
            // Watch for the client going away while it waits (its request is then
            // cancelled), buffering what it sends ahead meanwhile.
            let io = self.io.as_mut().expect("present until switched");
            if read_into(io, &mut self.read_buf, READ_SIZE, &mut self.read_closed, cx).is_ready() {
                if self.read_closed {
                    tracing::debug!(
                        "the client closed its connection while its request was in flight"
                    );
                    self.state = State::Done;
                    return Turn::Finished(Ok(()));
                }
                progress = true;
            }
        }

        let had_output = self.output.has_pending();
        let io = self.io.as_mut().expect("present until switched");
        let written = match self.output.poll_write_all(io, cx) {
            Poll::Ready(Err(e)) => return Turn::Finished(Err(e)),
            Poll::Ready(Ok(())) => true,
            Poll::Pending => false,
        };
        // Room was made: a response body left unpolled at the high-water mark is
        // polled again (nothing else would wake the connection for it).
        progress |= written && had_output;
        let State::Exchange(exchange) = &mut self.state else {
            unreachable!("still in the exchange");
        };
        if let (true, Response::Written { switched }) = (written, &exchange.response) {
            if *switched {
                return self.switch();
            }
            let mut reusable =
                exchange.keep_alive && !exchange.body_unfinished && !self.shutting_down;
            if reusable {
                if let Some(mut feed) = exchange.body.take() {
                    reusable = feed.drain_buffered(&mut self.read_buf);
                }
            }
            self.state = if reusable {
                State::Head
            } else {
                State::Closing
            };
            return Turn::Progress;
        }
        if progress {
            Turn::Progress
        } else {
            Turn::Blocked
        }
    }

    /// Hands the connection over to the tunnel its `101` opened.
    fn switch(&mut self) -> Turn {
        let State::Exchange(exchange) = std::mem::replace(&mut self.state, State::Done) else {
            unreachable!("switching from an exchange");
        };
        let io: Box<dyn TunnelIo> = Box::new(self.io.take().expect("present until switched"));
        let early = self.read_buf.split().freeze();
        if let Some(tx) = exchange.upgrade {
            let _ = tx.send(Upgraded::new(early, io));
        }
        Turn::Finished(Ok(()))
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let io = self.io.as_mut().expect("present until switched");
        read_into(io, &mut self.read_buf, READ_SIZE, &mut self.read_closed, cx)
    }
}

impl<I, S> Future for Http1Server<I, S>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug + 'static,
    S: Http1Service + Unpin,
{
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.turn(cx) {
                Turn::Progress => {}
                Turn::Blocked => return Poll::Pending,
                Turn::Finished(result) => return Poll::Ready(result),
            }
        }
    }
}
