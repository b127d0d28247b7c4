//! Polling the streams that were woken, and writing their responses: the head as one
//! field block, the body as DATA frames within both flow-control windows, trailers as a
//! last field block.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http_body::Body;

use super::frame::{self, Reason, StreamId};
use super::stream::Response;
use super::tunnel::{Outgoing, StreamOutbox, StreamTunnel};
use super::{Http2Server, SPARE_HEADER_MAPS, WRITE_HIGH_WATER};
use crate::http::ResponseBody;
use crate::http::client_upgrade::Upgraded;
use crate::http::headers::is_http2_connection_specific;
use crate::listener::http1::Http1Service;

/// What polling a stream's body gave.
enum Step {
    /// Something was written; poll again.
    More,
    /// Nothing until the body, a window or the output lets it go on.
    Blocked,
    /// END_STREAM went out.
    Ended,
    /// The body failed: the stream is reset.
    Failed,
}

impl<I, S> Http2Server<I, S>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + std::fmt::Debug + 'static,
    S: Http1Service,
{
    /// Polls every stream whose waker fired (or that the connection marked); whether
    /// anything was written.
    pub(super) fn poll_streams(&mut self) -> bool {
        let mut ready = std::mem::take(&mut self.ready);
        self.wakers.set().take(&mut ready);
        let mut progress = false;
        for &slot in &ready {
            if self.output.len() >= WRITE_HIGH_WATER {
                // Polled again once the output drained (`deferred` has the connection
                // come back for it: nothing else would wake it).
                self.wakers.set().mark(slot);
                self.deferred = true;
                continue;
            }
            progress |= self.poll_stream(slot);
            self.collect_credit(slot);
        }
        self.ready = ready;
        progress
    }

    fn poll_stream(&mut self, slot: usize) -> bool {
        let waker = self.wakers.waker(slot).clone();
        let mut cx = Context::from_waker(&waker);
        let Some(stream) = self.streams.get_mut(slot) else {
            return false;
        };
        let mut progress = false;
        if let Response::Pending(future) = &mut stream.response {
            let Poll::Ready(Ok(response)) = Pin::new(future).poll(&mut cx) else {
                return false;
            };
            let (parts, body) = response.into_parts();
            let id = stream.id;
            let tunnel = parts.status.is_success()
                && stream.upgrade.as_ref().is_some_and(|tx| !tx.is_closed());
            let empty = !tunnel && (stream.head_request || body.is_end_stream());
            stream.response = if tunnel {
                let outbox = Arc::new(StreamOutbox::default());
                let io = StreamTunnel::new(stream.inbox.clone(), outbox.clone());
                let tx = stream.upgrade.take().expect("checked");
                let _ = tx.send(Upgraded::new(Bytes::new(), Box::new(io)));
                stream.tunneled = true;
                Response::Tunnel(outbox)
            } else if empty {
                Response::Done
            } else {
                Response::Body {
                    body,
                    held: None,
                    trailers: None,
                    ended: false,
                }
            };
            self.answered += 1;
            self.write_head(id, parts.status, &parts.headers, empty);
            self.keep_headers(parts.headers);
            progress = true;
        }
        loop {
            match self.step_body(slot, &mut cx) {
                Step::More => progress = true,
                Step::Blocked => break,
                Step::Ended | Step::Failed => {
                    progress = true;
                    break;
                }
            }
        }
        if self
            .streams
            .get_mut(slot)
            .is_some_and(|s| s.answered_early())
        {
            // Answered before the client finished its body: the rest is not wanted
            // (§8.1), and the stream ends here.
            let id = self.streams.get_mut(slot).expect("present").id;
            self.reset(id, Reason::NO_ERROR);
        }
        self.close_if_done(slot);
        progress
    }

    /// Writes what the body has, as far as the windows allow.
    fn step_body(&mut self, slot: usize, cx: &mut Context<'_>) -> Step {
        let max_frame = self.peer.max_frame_size as usize;
        let Some(stream) = self.streams.get_mut(slot) else {
            return Step::Blocked;
        };
        let id = stream.id;
        if let Response::Tunnel(outbox) = &stream.response {
            let room = self.send_window.min(stream.send_window).max(0) as usize;
            let waker = self.wakers.waker(slot);
            return match outbox.take(room.min(max_frame), waker) {
                Outgoing::Nothing => Step::Blocked,
                Outgoing::Data(data) => {
                    stream.send_window -= data.len() as i64;
                    self.send_window -= data.len() as i64;
                    write_data(&mut self.output, id, data, false);
                    Step::More
                }
                Outgoing::End => {
                    stream.response = Response::Done;
                    write_data(&mut self.output, id, Bytes::new(), true);
                    Step::Ended
                }
                Outgoing::Reset => {
                    self.reset(id, Reason::CANCEL);
                    Step::Failed
                }
            };
        }
        let Response::Body {
            body,
            held,
            trailers,
            ended,
        } = &mut stream.response
        else {
            return Step::Blocked;
        };
        if let Some(data) = held.take() {
            let room = self.send_window.min(stream.send_window).max(0) as usize;
            if room == 0 {
                *held = Some(data);
                return Step::Blocked;
            }
            let n = data.len().min(room).min(max_frame);
            let mut data = data;
            let rest = data.split_off(n);
            let last = rest.is_empty() && *ended && trailers.is_none();
            stream.send_window -= n as i64;
            self.send_window -= n as i64;
            if !rest.is_empty() {
                *held = Some(rest);
            }
            write_data(&mut self.output, id, data, last);
            if last {
                stream.response = Response::Done;
                return Step::Ended;
            }
            return Step::More;
        }
        if *ended {
            let trailers = trailers.take();
            stream.response = Response::Done;
            match trailers {
                Some(trailers) => self.write_trailers(id, &trailers),
                None => write_data(&mut self.output, id, Bytes::new(), true),
            }
            return Step::Ended;
        }
        if self.output.len() >= WRITE_HIGH_WATER {
            // Polled again once the output drained.
            self.wakers.set().mark(slot);
            self.deferred = true;
            return Step::Blocked;
        }
        match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Pending => Step::Blocked,
            Poll::Ready(None) => {
                *ended = true;
                Step::More
            }
            Poll::Ready(Some(Ok(frame))) => {
                match frame.into_data() {
                    Ok(data) => {
                        *ended = body.is_end_stream();
                        if !data.is_empty() || *ended {
                            *held = Some(data);
                        }
                    }
                    Err(frame) => {
                        if let Ok(map) = frame.into_trailers() {
                            *trailers = Some(map);
                            *ended = true;
                        }
                    }
                }
                Step::More
            }
            Poll::Ready(Some(Err(error))) => {
                tracing::debug!(stream = id.get(), %error, "response body failed; resetting");
                stream.response = Response::Done;
                self.reset(id, Reason::INTERNAL_ERROR);
                Step::Failed
            }
        }
    }

    /// A response head: `:status`, a `date` when the service set none, and its fields
    /// but the connection-specific ones.
    fn write_head(
        &mut self,
        id: StreamId,
        status: http::StatusCode,
        headers: &HeaderMap,
        end_stream: bool,
    ) {
        self.block.clear();
        self.encoder.begin_block(&mut self.block);
        self.encoder.encode_status(status, &mut self.block);
        if !headers.contains_key(header::DATE) {
            let date = super::super::date::header_value();
            self.encoder
                .encode_field(&header::DATE, &date, &mut self.block);
        }
        for (name, value) in headers {
            if !is_http2_connection_specific(name) {
                self.encoder.encode_field(name, value, &mut self.block);
            }
        }
        frame::encode_header_block(
            self.output.tail(),
            id,
            end_stream,
            &self.block,
            self.peer.max_frame_size,
        );
    }

    /// An interim `100 Continue` (RFC 9113 §8.1: a HEADERS frame without END_STREAM).
    pub(super) fn write_continue(&mut self, id: StreamId) {
        self.block.clear();
        self.encoder.begin_block(&mut self.block);
        self.encoder
            .encode_status(http::StatusCode::CONTINUE, &mut self.block);
        frame::encode_header_block(
            self.output.tail(),
            id,
            false,
            &self.block,
            self.peer.max_frame_size,
        );
    }

    /// Keeps a response's header map, emptied, for a next request's head (its
    /// capacity is what a request needs, and taking it saves the allocations).
    fn keep_headers(&mut self, mut headers: HeaderMap) {
        if self.spare_headers.len() < SPARE_HEADER_MAPS && headers.capacity() <= 64 {
            headers.clear();
            self.spare_headers.push(headers);
        }
    }

    fn write_trailers(&mut self, id: StreamId, trailers: &HeaderMap) {
        self.block.clear();
        self.encoder.begin_block(&mut self.block);
        for (name, value) in trailers {
            if !is_http2_connection_specific(name) {
                self.encoder.encode_field(name, value, &mut self.block);
            }
        }
        frame::encode_header_block(
            self.output.tail(),
            id,
            true,
            &self.block,
            self.peer.max_frame_size,
        );
    }

    /// The connection's own answer to a request it could not hand on (a head over the
    /// limit): small, so written whole at once.
    pub(super) fn write_refusal(&mut self, id: StreamId, response: http::Response<ResponseBody>) {
        let (parts, body) = response.into_parts();
        let data = match body {
            ResponseBody::Full { data } => data.unwrap_or_default(),
            _ => Bytes::new(),
        };
        self.write_head(id, parts.status, &parts.headers, data.is_empty());
        if !data.is_empty() {
            // Within the initial windows: refusals are a few dozen bytes.
            self.send_window -= data.len() as i64;
            write_data(&mut self.output, id, data, true);
        }
    }
}

fn write_data(output: &mut crate::listener::output::Output, id: StreamId, data: Bytes, last: bool) {
    frame::encode_data_head(output.tail(), id, data.len() as u32, last);
    output.push(data);
}
