//! meshwork's HTTP/2 server connection: reads frames, hands each request to the service,
//! writes its response, and feeds its body as the client sends it, all in the
//! connection's own task.
//!
//! Owning it, rather than running hyper's HTTP/2 server over h2, is measured in
//! bench/RESULTS.md ("meshwork's own HTTP/2 server connection"): no task spawned per
//! stream, no channel per body, no stream store behind a lock, and a stream's future
//! polled only when its own waker fired (`ready`). It also puts HTTP/2's request rules
//! (RFC 9113 §8, `request_head`) and its defences against hostile clients in meshwork's
//! own code:
//!
//! - a client that stops reading stops being read: nothing is read while what is to be
//!   written is above [`WRITE_HIGH_WATER`], so PING and SETTINGS floods cannot grow the
//!   output;
//! - streams beyond [`MAX_CONCURRENT_STREAMS`] are refused (REFUSED_STREAM), and a
//!   client that keeps cancelling requests it just made (the "rapid reset" attack) is
//!   sent away with ENHANCE_YOUR_CALM (`RESET_BUDGET`);
//! - a field block is bounded while it is gathered from CONTINUATION frames, and the
//!   header list by the listener's `max_request_header_size` (answered 431);
//! - every flow-control window is checked; a body is credited back as the stack reads
//!   it, so a slow upstream slows the client rather than filling memory.
//!
//! Frames are the `frame` module's, header blocks `hpack`'s.

mod frame;
mod hpack;
mod ready;
mod recv;
mod request_head;
mod respond;
mod stream;
#[cfg(test)]
mod tests;
mod tunnel;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};

use self::frame::{Reason, Settings, StreamId};
use self::ready::SlotWakers;
use self::stream::Streams;
use super::http1::Http1Service;
use super::io::read_into;
use super::output::Output;

/// Streams a client may have open at once (hyper's default).
pub const MAX_CONCURRENT_STREAMS: u32 = 200;
/// The window each stream starts with, and the connection's (hyper's defaults): a
/// 1 MiB body goes up without waiting for credit.
const INITIAL_WINDOW: u32 = 1024 * 1024;
/// Credit is given back once this much of a window was used: fewer WINDOW_UPDATEs.
const CREDIT_THRESHOLD: i64 = INITIAL_WINDOW as i64 / 4;
/// Requests a client may cancel in flight before it has to have completed as many:
/// beyond, it is treated as the rapid reset attack (CVE-2023-44487).
const RESET_BUDGET: u64 = 100;
/// What is buffered to be written before the connection stops reading and stops
/// polling response bodies.
const WRITE_HIGH_WATER: usize = 64 * 1024;
/// Emptied response header maps kept for the next requests' heads.
const SPARE_HEADER_MAPS: usize = 4;
/// The read buffer's reservation.
const READ_SIZE: usize = 16 * 1024;
/// The payload of the PING that follows a graceful shutdown's first GOAWAY.
const DRAIN_PING: [u8; 8] = *b"meshdrn\0";

/// One HTTP/2 connection being served.
pub(super) struct Http2Server<I, S: Http1Service> {
    io: I,
    service: S,
    read_buf: BytesMut,
    output: Output,
    /// Where a response's field block is encoded before it is cut into frames.
    block: BytesMut,
    /// Response header maps, emptied: request heads are decoded into them.
    spare_headers: Vec<http::HeaderMap>,
    decoder: hpack::Decoder,
    encoder: hpack::Encoder,
    streams: Streams<S>,
    wakers: SlotWakers,
    /// Slots to poll this turn (the ready set's, swapped out).
    ready: Vec<usize>,
    /// Ready streams were left unpolled because the output was full.
    deferred: bool,
    /// The client's settings that matter to what we send.
    peer: PeerSettings,
    /// The listener's limit on a request's header list.
    max_header_list: usize,
    /// The highest stream id the client opened (every lower idle one is closed, §5.1.1).
    last_stream: StreamId,
    /// What the client may still send on the connection / what we may.
    recv_window: i64,
    send_window: i64,
    /// Connection-level credit owed to the client.
    credit: i64,
    /// A HEADERS frame's block waiting for its CONTINUATIONs.
    continuation: Option<recv::PartialBlock>,
    preface: Preface,
    /// Requests the client cancelled in flight, and requests answered.
    resets: u64,
    answered: u64,
    /// A graceful shutdown's first GOAWAY and PING went out.
    draining: bool,
    /// The final GOAWAY went out: no new streams; the connection ends with its last
    /// stream.
    going_away: bool,
    /// The client sent GOAWAY: it opens no more streams.
    client_going_away: bool,
    /// The connection ends once the output is written (a connection error's GOAWAY).
    closing: bool,
    read_closed: bool,
    done: bool,
}

/// How far the connection's start got (§3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Preface {
    /// The client's 24-byte preface is awaited.
    Magic,
    /// Its first frame must be a SETTINGS frame.
    Settings,
    Done,
}

#[derive(Debug, Clone, Copy)]
struct PeerSettings {
    initial_window: u32,
    max_frame_size: u32,
}

impl<I, S> Http2Server<I, S>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug + 'static,
    S: Http1Service,
{
    /// A connection whose requests' header lists may be `max_header_list` bytes.
    pub(super) fn new(io: I, service: S, max_header_list: usize) -> Self {
        let mut conn = Self {
            io,
            service,
            read_buf: BytesMut::new(),
            output: Output::default(),
            block: BytesMut::new(),
            spare_headers: Vec::new(),
            decoder: hpack::Decoder::new(
                frame::DEFAULT_HEADER_TABLE_SIZE as usize,
                max_header_list,
            ),
            encoder: hpack::Encoder::new(),
            streams: Streams::default(),
            wakers: SlotWakers::default(),
            ready: Vec::new(),
            deferred: false,
            peer: PeerSettings {
                initial_window: frame::DEFAULT_INITIAL_WINDOW_SIZE,
                max_frame_size: frame::DEFAULT_MAX_FRAME_SIZE,
            },
            max_header_list,
            last_stream: StreamId::ZERO,
            recv_window: i64::from(INITIAL_WINDOW),
            send_window: i64::from(frame::DEFAULT_INITIAL_WINDOW_SIZE),
            credit: 0,
            continuation: None,
            preface: Preface::Magic,
            resets: 0,
            answered: 0,
            draining: false,
            going_away: false,
            client_going_away: false,
            closing: false,
            read_closed: false,
            done: false,
        };
        // Our settings go out first (§3.4), then the connection window's growth (it can
        // only be set by WINDOW_UPDATE, §6.9.2).
        let settings = Settings {
            max_concurrent_streams: Some(MAX_CONCURRENT_STREAMS),
            initial_window_size: Some(INITIAL_WINDOW),
            max_header_list_size: Some(u32::try_from(max_header_list).unwrap_or(u32::MAX)),
            enable_connect_protocol: Some(true),
            ..Settings::default()
        };
        let out = conn.output.tail();
        frame::encode_settings(out, &settings);
        frame::encode_window_update(
            out,
            StreamId::ZERO,
            INITIAL_WINDOW - frame::DEFAULT_INITIAL_WINDOW_SIZE,
        );
        conn
    }

    /// Stops taking streams: those in flight are answered, then the connection ends.
    ///
    /// As RFC 9113 §6.8 advises: a first GOAWAY naming the largest stream id, so that
    /// requests the client is sending meanwhile are not refused, and a PING; once the
    /// client acknowledges the PING (a round trip later, so it has seen the GOAWAY),
    /// the final GOAWAY names the last stream taken.
    pub(super) fn graceful_shutdown(&mut self) {
        if self.draining || self.going_away {
            return;
        }
        self.draining = true;
        let out = self.output.tail();
        frame::encode_goaway(out, StreamId::MAX, Reason::NO_ERROR, b"");
        frame::encode_ping(out, false, DRAIN_PING);
    }

    /// The client acknowledged a PING of ours.
    fn ping_acked(&mut self, payload: [u8; 8]) {
        if payload == DRAIN_PING && self.draining {
            self.go_away(Reason::NO_ERROR, b"");
        }
    }

    /// Sends GOAWAY naming the last stream we will answer.
    fn go_away(&mut self, reason: Reason, detail: &[u8]) {
        if self.going_away && reason == Reason::NO_ERROR {
            return;
        }
        self.going_away = true;
        frame::encode_goaway(self.output.tail(), self.last_stream, reason, detail);
        if reason != Reason::NO_ERROR {
            tracing::debug!(
                reason = ?reason,
                detail = %String::from_utf8_lossy(detail),
                "HTTP/2 connection error"
            );
            self.closing = true;
        }
    }

    /// One pass: read and handle frames, poll the streams woken, write.
    fn turn(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.wakers.set().register(cx.waker());
        loop {
            let mut progress = false;
            if !self.closing && !self.read_closed && self.output.len() < WRITE_HIGH_WATER {
                progress |= self.read(cx);
            }
            if !self.closing {
                progress |= self.poll_streams();
                self.give_credit();
            }
            match self.output.poll_write_all(&mut self.io, cx) {
                // A client that leaves once its last answer came, as it may after our
                // GOAWAY, ended the connection cleanly.
                Poll::Ready(Err(_)) if self.streams.is_empty() && self.going_away => {
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    // Streams left unpolled at the high-water mark are polled now.
                    progress |= std::mem::take(&mut self.deferred);
                    if self.closing || self.finished() {
                        return match Pin::new(&mut self.io).poll_shutdown(cx) {
                            Poll::Pending => Poll::Pending,
                            Poll::Ready(_) => Poll::Ready(Ok(())),
                        };
                    }
                }
                Poll::Pending => {}
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// Nothing more will happen: the client left, or we went away and every stream we
    /// took is done.
    fn finished(&self) -> bool {
        self.streams.is_empty() && (self.read_closed || self.going_away || self.client_going_away)
    }

    /// Reads what the socket has and handles every whole frame; whether anything came.
    fn read(&mut self, cx: &mut Context<'_>) -> bool {
        let read = read_into(
            &mut self.io,
            &mut self.read_buf,
            READ_SIZE,
            &mut self.read_closed,
            cx,
        );
        if read.is_pending() {
            return false;
        }
        if self.read_closed {
            self.client_gone();
        } else {
            self.handle_frames();
        }
        true
    }

    /// The client's side ended: the requests in flight are cancelled (and what reads
    /// or writes their streams broken off, as each stream is dropped).
    fn client_gone(&mut self) {
        self.streams.drain().for_each(drop);
    }
}

impl<I, S> Future for Http2Server<I, S>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug + 'static,
    S: Http1Service + Unpin,
{
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(Ok(()));
        }
        let result = std::task::ready!(this.turn(cx));
        this.done = true;
        this.client_gone();
        Poll::Ready(result)
    }
}
