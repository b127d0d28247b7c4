//! What the connection does with each frame the client sends (RFC 9113 §5, §6): stream
//! states, CONTINUATION sequencing, flow-control windows, and new requests.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::frame::{self, Frame, FrameError, Reason, Settings, StreamId};
use super::hpack::DecodeError;
use super::request_head::{Malformed, RequestHead, RequestHeadBuilder};
use super::stream::{Response, Stream};
use super::{
    CREDIT_THRESHOLD, Http2Server, INITIAL_WINDOW, MAX_CONCURRENT_STREAMS, Preface, RESET_BUDGET,
};
use crate::http::ProxyError;
use crate::http::client_body::ClientBody;
use crate::http::client_upgrade::ClientUpgrade;
use crate::http::stream_inbox::{Http2RequestBody, StreamInbox};
use crate::listener::http1::Http1Service;

/// A field block gathered from more CONTINUATION frames than this is refused as the
/// CONTINUATION flood it is (CVE-2024-27316 and kin), whatever their sizes.
const MAX_CONTINUATIONS: usize = 64;

/// A HEADERS frame's block, while its CONTINUATIONs come.
#[derive(Debug)]
pub struct PartialBlock {
    stream: StreamId,
    end_stream: bool,
    block: BytesMut,
    continuations: usize,
}

/// How a frame's handling ended for the connection.
type Handled = Result<(), FrameError>;

fn connection_error(reason: Reason, detail: &'static str) -> FrameError {
    FrameError::Connection { reason, detail }
}

fn stream_error(stream: StreamId, reason: Reason, detail: &'static str) -> FrameError {
    FrameError::Stream {
        stream,
        reason,
        detail,
    }
}

impl<I, S> Http2Server<I, S>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + std::fmt::Debug + 'static,
    S: Http1Service,
{
    /// Handles every whole frame in the read buffer.
    pub(super) fn handle_frames(&mut self) {
        if self.preface == Preface::Magic {
            match frame::take_preface(&mut self.read_buf) {
                Ok(true) => self.preface = Preface::Settings,
                Ok(false) => return,
                Err(error) => return self.connection_failed(error),
            }
        }
        while !self.closing {
            let decoded = frame::decode(&mut self.read_buf, frame::DEFAULT_MAX_FRAME_SIZE);
            let handled = match decoded {
                Ok(None) => return,
                Ok(Some(frame)) => self.handle(frame),
                Err(error) => Err(error),
            };
            match handled {
                Ok(()) => {}
                Err(FrameError::Stream {
                    stream,
                    reason,
                    detail,
                }) => {
                    tracing::debug!(stream = stream.get(), ?reason, detail, "resetting a stream");
                    self.reset(stream, reason);
                }
                Err(error) => self.connection_failed(error),
            }
        }
    }

    fn connection_failed(&mut self, error: FrameError) {
        self.go_away(error.reason(), error.detail().as_bytes());
    }

    fn handle(&mut self, frame: Frame) -> Handled {
        if self.preface == Preface::Settings {
            if !matches!(frame, Frame::Settings(_)) {
                return Err(connection_error(
                    Reason::PROTOCOL_ERROR,
                    "the connection did not start with SETTINGS",
                ));
            }
            self.preface = Preface::Done;
        }
        if let Some(partial) = &self.continuation {
            let expected = partial.stream;
            return match frame {
                Frame::Continuation {
                    stream,
                    end_headers,
                    fragment,
                } if stream == expected => self.continue_block(end_headers, &fragment),
                _ => Err(connection_error(
                    Reason::PROTOCOL_ERROR,
                    "a frame other than CONTINUATION inside a field block",
                )),
            };
        }
        match frame {
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                fragment,
                ..
            } => self.headers(stream, end_stream, end_headers, fragment),
            Frame::Continuation { .. } => Err(connection_error(
                Reason::PROTOCOL_ERROR,
                "CONTINUATION without a HEADERS before it",
            )),
            Frame::Data {
                stream,
                end_stream,
                data,
                flow_len,
            } => self.data(stream, end_stream, data, flow_len),
            Frame::RstStream { stream, .. } => self.client_reset(stream),
            Frame::Settings(settings) => self.settings(settings),
            Frame::SettingsAck | Frame::Priority { .. } | Frame::Unknown { .. } => Ok(()),
            Frame::PushPromise { .. } => Err(connection_error(
                Reason::PROTOCOL_ERROR,
                "PUSH_PROMISE from a client",
            )),
            Frame::Ping {
                ack: false,
                payload,
            } => {
                frame::encode_ping(self.output.tail(), true, payload);
                Ok(())
            }
            Frame::Ping { ack: true, payload } => {
                self.ping_acked(payload);
                Ok(())
            }
            Frame::GoAway { .. } => {
                // The client opens no more streams; those in flight are answered.
                self.client_going_away = true;
                Ok(())
            }
            Frame::WindowUpdate { stream, increment } => self.window_update(stream, increment),
        }
    }

    /// An id above every stream opened so far: idle (§5.1).
    fn is_idle(&self, stream: StreamId) -> bool {
        stream.get() > self.last_stream.get()
    }

    fn headers(
        &mut self,
        stream: StreamId,
        end_stream: bool,
        end_headers: bool,
        fragment: Bytes,
    ) -> Handled {
        if !stream.is_client_initiated() {
            return Err(connection_error(
                Reason::PROTOCOL_ERROR,
                "HEADERS on an even stream id",
            ));
        }
        if !self.is_idle(stream) {
            // Trailers on an open stream, or a frame for one that is closed.
            let open = self
                .streams
                .slot_of(stream)
                .and_then(|slot| self.streams.get_mut(slot))
                .is_some_and(|s| !s.recv_closed());
            if !open {
                return Err(connection_error(
                    Reason::STREAM_CLOSED,
                    "HEADERS on a closed stream",
                ));
            }
        }
        if end_headers {
            // The usual head, in one frame: decoded where it was read.
            return self.block_complete(stream, end_stream, fragment);
        }
        let mut block = BytesMut::with_capacity(fragment.len() * 2);
        block.extend_from_slice(&fragment);
        self.continuation = Some(PartialBlock {
            stream,
            end_stream,
            block,
            continuations: 0,
        });
        Ok(())
    }

    fn continue_block(&mut self, end_headers: bool, fragment: &[u8]) -> Handled {
        let partial = self.continuation.as_mut().expect("checked by the caller");
        partial.continuations += 1;
        // The encoded block can be larger than the list it decodes to only by a little
        // (literal prefixes); twice the list's limit is no honest client's.
        if partial.continuations > MAX_CONTINUATIONS
            || partial.block.len() + fragment.len() > 2 * self.max_header_list + 4096
        {
            return Err(connection_error(
                Reason::ENHANCE_YOUR_CALM,
                "a field block too large or in too many CONTINUATION frames",
            ));
        }
        partial.block.extend_from_slice(fragment);
        if end_headers {
            let partial = self.continuation.take().expect("present");
            self.block_complete(partial.stream, partial.end_stream, partial.block.freeze())
        } else {
            Ok(())
        }
    }

    /// A whole field block: trailers of a stream in flight, or a new request.
    fn block_complete(&mut self, stream: StreamId, end_stream: bool, block: Bytes) -> Handled {
        if !self.is_idle(stream) {
            return self.trailers(stream, end_stream, &block);
        }
        self.last_stream = stream;
        let refuse = if self.going_away {
            // Past our GOAWAY's last stream: ignored (§6.8), but its block decoded.
            Some(None)
        } else if self.streams.len() >= MAX_CONCURRENT_STREAMS as usize {
            Some(Some(Reason::REFUSED_STREAM))
        } else {
            None
        };
        let spare = self.spare_headers.pop().unwrap_or_default();
        let mut builder = RequestHeadBuilder::new(spare, true);
        let decoded = self.decoder.decode(&block, |field| builder.field(field));
        match decoded {
            Err(DecodeError::Compression(error)) => {
                tracing::debug!(%error, "undecodable field block");
                return Err(connection_error(
                    Reason::COMPRESSION_ERROR,
                    "a field block that cannot be decoded",
                ));
            }
            _ if refuse.is_some() => {
                return match refuse.flatten() {
                    Some(reason) => Err(stream_error(stream, reason, "too many streams")),
                    None => Ok(()),
                };
            }
            Err(DecodeError::HeaderListTooLarge { .. }) => {
                self.refuse(stream, ProxyError::HeaderTooLarge);
                return Ok(());
            }
            Err(DecodeError::Field(Malformed(what))) => {
                return Err(stream_error(stream, Reason::PROTOCOL_ERROR, what));
            }
            Ok(()) => {}
        }
        let head = builder
            .finish()
            .map_err(|Malformed(what)| stream_error(stream, Reason::PROTOCOL_ERROR, what))?;
        self.open(stream, end_stream, head);
        Ok(())
    }

    /// Hands a new request to the service.
    fn open(&mut self, id: StreamId, end_stream: bool, head: RequestHead) {
        let RequestHead {
            mut request,
            content_length,
            extended_connect,
        } = head;
        let head_request = request.method() == http::Method::HEAD;
        // A client that waits for `100 Continue` before its body (RFC 9110 §10.1.1) is
        // answered at once: the body is read as soon as the stack wants it.
        let continue_owed = !end_stream
            && request
                .headers()
                .get(http::header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let inbox = (!end_stream).then(|| Arc::new(StreamInbox::default()));
        // An extended CONNECT's DATA is its tunnel's, not a body: the inbox waits for
        // the tunnel.
        let body = match &inbox {
            Some(inbox) if !extended_connect => {
                Http2RequestBody::new(inbox.clone(), content_length)
            }
            _ => Http2RequestBody::empty(),
        };
        let upgrade = extended_connect.then(|| {
            let (tx, extension) = ClientUpgrade::pair();
            request.extensions_mut().insert(extension);
            tx
        });
        let future = self
            .service
            .serve(request.map(|()| ClientBody::Http2 { body }));
        if continue_owed {
            self.write_continue(id);
        }
        let slot = self.streams.insert(Stream {
            id,
            inbox,
            recv_ended: end_stream,
            recv_window: i64::from(INITIAL_WINDOW),
            credit: 0,
            content_length,
            received: 0,
            send_window: i64::from(self.peer.initial_window),
            response: Response::Pending(future),
            head_request,
            upgrade,
            tunneled: false,
        });
        self.wakers.set().mark(slot);
        if end_stream && content_length.is_some_and(|n| n > 0) {
            self.body_broken(slot, "a body shorter than its content-length");
        }
    }

    /// A request answered by the connection itself (its head could not be served).
    fn refuse(&mut self, id: StreamId, error: ProxyError) {
        self.service.refused(error);
        let response = crate::http::response::error_response(error);
        self.write_refusal(id, response);
    }

    fn trailers(&mut self, id: StreamId, end_stream: bool, block: &Bytes) -> Handled {
        let mut builder = RequestHeadBuilder::trailers();
        let decoded = self.decoder.decode(block, |field| builder.field(field));
        match decoded {
            Err(DecodeError::Compression(_)) => {
                return Err(connection_error(
                    Reason::COMPRESSION_ERROR,
                    "a field block that cannot be decoded",
                ));
            }
            Err(DecodeError::HeaderListTooLarge { .. }) => {
                return Err(stream_error(
                    id,
                    Reason::PROTOCOL_ERROR,
                    "trailers too large",
                ));
            }
            Err(DecodeError::Field(Malformed(what))) => {
                return Err(stream_error(id, Reason::PROTOCOL_ERROR, what));
            }
            Ok(()) => {}
        }
        if !end_stream {
            return Err(stream_error(
                id,
                Reason::PROTOCOL_ERROR,
                "trailers without END_STREAM",
            ));
        }
        let Some(slot) = self.streams.slot_of(id) else {
            return Ok(());
        };
        let stream = self.streams.get_mut(slot).expect("found");
        if stream.content_length.is_some_and(|n| n != stream.received) {
            self.body_broken(slot, "a body shorter than its content-length");
            return Ok(());
        }
        stream.recv_ended = true;
        if let Some(inbox) = &stream.inbox {
            inbox.end(Some(builder.into_headers()), self.wakers.waker(slot));
        }
        self.wakers.set().mark(slot);
        self.close_if_done(slot);
        Ok(())
    }

    fn data(&mut self, id: StreamId, end_stream: bool, data: Bytes, flow_len: u32) -> Handled {
        if self.is_idle(id) {
            return Err(connection_error(
                Reason::PROTOCOL_ERROR,
                "DATA on an idle stream",
            ));
        }
        let flow = i64::from(flow_len);
        if flow > self.recv_window {
            return Err(connection_error(
                Reason::FLOW_CONTROL_ERROR,
                "DATA beyond the connection's window",
            ));
        }
        self.recv_window -= flow;
        // Padding is credited back at once; the data once the stack reads it.
        let mut credit = flow - data.len() as i64;
        let slot = self.streams.slot_of(id);
        let open = slot
            .and_then(|slot| self.streams.get_mut(slot))
            .filter(|s| !s.recv_closed());
        let Some(stream) = open else {
            self.credit += flow;
            return Err(stream_error(
                id,
                Reason::STREAM_CLOSED,
                "DATA on a closed stream",
            ));
        };
        let slot = slot.expect("found");
        if flow > stream.recv_window {
            self.credit += flow;
            return Err(stream_error(
                id,
                Reason::FLOW_CONTROL_ERROR,
                "DATA beyond the stream's window",
            ));
        }
        stream.recv_window -= flow;
        stream.received += data.len() as u64;
        let overrun = stream.content_length.is_some_and(|n| stream.received > n);
        let underrun = end_stream && stream.content_length.is_some_and(|n| stream.received != n);
        if overrun || underrun {
            self.credit += flow;
            self.body_broken(slot, "a body that disagrees with its content-length");
            return Ok(());
        }
        let waker = self.wakers.waker(slot);
        let inbox = stream.inbox.as_ref().expect("open");
        credit += inbox.push(data, waker) as i64;
        if end_stream {
            stream.recv_ended = true;
            inbox.end(None, waker);
        }
        self.credit += credit;
        // A body read in the connection's own task is not woken by the push: its
        // stream is polled again here.
        self.wakers.set().mark(slot);
        if end_stream {
            self.close_if_done(slot);
        }
        Ok(())
    }

    /// The request's body broke a rule (§8.1.1): the stack's read fails, the stream is
    /// reset.
    fn body_broken(&mut self, slot: usize, what: &'static str) {
        let Some(stream) = self.streams.get_mut(slot) else {
            return;
        };
        let id = stream.id;
        stream.recv_ended = true;
        if let Some(inbox) = &stream.inbox {
            inbox.malformed(what);
        }
        tracing::debug!(stream = id.get(), what, "resetting a stream");
        self.reset(id, Reason::PROTOCOL_ERROR);
    }

    fn client_reset(&mut self, id: StreamId) -> Handled {
        if self.is_idle(id) {
            return Err(connection_error(
                Reason::PROTOCOL_ERROR,
                "RST_STREAM on an idle stream",
            ));
        }
        let Some(slot) = self.streams.slot_of(id) else {
            return Ok(());
        };
        let stream = self.forget(slot).expect("found");
        if matches!(stream.response, Response::Pending(_)) {
            self.resets += 1;
        }
        if self.resets > RESET_BUDGET && self.resets > self.answered {
            return Err(connection_error(
                Reason::ENHANCE_YOUR_CALM,
                "too many requests cancelled in flight",
            ));
        }
        Ok(())
    }

    fn settings(&mut self, settings: Settings) -> Handled {
        if let Some(size) = settings.header_table_size {
            self.encoder.set_max_table_size(size as usize);
        }
        if let Some(size) = settings.max_frame_size {
            self.peer.max_frame_size = size;
        }
        if let Some(window) = settings.initial_window_size {
            // §6.9.2: the change applies to every stream's window, and may not take
            // one above the maximum.
            let delta = i64::from(window) - i64::from(self.peer.initial_window);
            self.peer.initial_window = window;
            for stream in self.streams.iter_mut() {
                stream.send_window += delta;
                if stream.send_window > i64::from(frame::MAX_WINDOW_SIZE) {
                    return Err(connection_error(
                        Reason::FLOW_CONTROL_ERROR,
                        "SETTINGS_INITIAL_WINDOW_SIZE overflows a stream's window",
                    ));
                }
            }
            if delta > 0 {
                self.mark_all_ready();
            }
        }
        frame::encode_settings_ack(self.output.tail());
        Ok(())
    }

    fn window_update(&mut self, id: StreamId, increment: u32) -> Handled {
        let increment = i64::from(increment);
        if id.is_zero() {
            self.send_window += increment;
            if self.send_window > i64::from(frame::MAX_WINDOW_SIZE) {
                return Err(connection_error(
                    Reason::FLOW_CONTROL_ERROR,
                    "the connection's window above 2^31-1",
                ));
            }
            self.mark_all_ready();
            return Ok(());
        }
        if self.is_idle(id) {
            return Err(connection_error(
                Reason::PROTOCOL_ERROR,
                "WINDOW_UPDATE on an idle stream",
            ));
        }
        let Some(slot) = self.streams.slot_of(id) else {
            return Ok(());
        };
        let stream = self.streams.get_mut(slot).expect("found");
        stream.send_window += increment;
        if stream.send_window > i64::from(frame::MAX_WINDOW_SIZE) {
            return Err(stream_error(
                id,
                Reason::FLOW_CONTROL_ERROR,
                "a stream's window above 2^31-1",
            ));
        }
        self.wakers.set().mark(slot);
        Ok(())
    }

    fn mark_all_ready(&mut self) {
        for slot in self.streams.slots() {
            self.wakers.set().mark(slot);
        }
    }

    /// Resets stream `id` (RST_STREAM), dropping its request if it is in flight.
    pub(super) fn reset(&mut self, id: StreamId, reason: Reason) {
        frame::encode_rst_stream(self.output.tail(), id, reason);
        if let Some(slot) = self.streams.slot_of(id) {
            self.forget(slot);
        }
    }

    /// Gives back the credit the client earned: the connection's, and each stream's as
    /// its body was read.
    pub(super) fn give_credit(&mut self) {
        if self.credit >= CREDIT_THRESHOLD
            || (self.credit > 0 && self.recv_window < CREDIT_THRESHOLD)
        {
            let credit = std::mem::take(&mut self.credit);
            self.recv_window += credit;
            frame::encode_window_update(self.output.tail(), StreamId::ZERO, credit as u32);
        }
    }

    /// Credit from stream `slot`'s body, read since the last look.
    pub(super) fn collect_credit(&mut self, slot: usize) {
        let Some(stream) = self.streams.get_mut(slot) else {
            return;
        };
        let Some(inbox) = &stream.inbox else {
            return;
        };
        let released = inbox.take_released() as i64;
        if released == 0 {
            return;
        }
        self.credit += released;
        stream.credit += released;
        if stream.credit >= CREDIT_THRESHOLD {
            let credit = std::mem::take(&mut stream.credit);
            stream.recv_window += credit;
            frame::encode_window_update(self.output.tail(), stream.id, credit as u32);
        }
    }

    /// Forgets a stream both sides are done with.
    pub(super) fn close_if_done(&mut self, slot: usize) {
        let done = self
            .streams
            .get_mut(slot)
            .is_some_and(|s| s.recv_closed() && s.send_closed());
        if done {
            self.forget(slot);
        }
    }

    /// Removes a stream, crediting the connection with what the client sent on it and
    /// the stack did not read (it never will).
    pub(super) fn forget(&mut self, slot: usize) -> Option<super::stream::Stream<S>> {
        let stream = self.streams.remove(slot)?;
        if let Some(inbox) = &stream.inbox {
            self.credit += inbox.settle() as i64;
        }
        Some(stream)
    }
}
