//! The connection's side of a request body: reading and decoding the bytes the body
//! asks for, in the connection's task (`http::client_body`).

use std::sync::Arc;
use std::task::Context;

use bytes::BytesMut;
use tokio::io::AsyncRead;

use super::READ_SIZE;
use super::head::BodyFraming;
use crate::cluster::http1_client::body_decoder::{BodyDecoder, Chunked, Decoded};
use crate::http::client_body::{BodyChannel, Demand, Http1RequestBody};
use crate::listener::io::read_into;
use crate::listener::output::Output;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The decoding side of a request body.
pub struct BodyFeed {
    channel: Arc<BodyChannel>,
    decoder: BodyDecoder,
}

impl Drop for BodyFeed {
    fn drop(&mut self) {
        // The connection is done with the body before its end: the reader hears so.
        self.channel.closed();
    }
}

/// Where the connection reads from.
pub struct Input<'a, I> {
    pub io: &'a mut I,
    pub buf: &'a mut BytesMut,
    /// The client sent its end (or the socket broke).
    pub closed: &'a mut bool,
}

/// What one step for the body did.
pub enum Fed {
    Nothing,
    Progress,
    /// The body is whole (or was abandoned and the rest of it was already read).
    Ended,
    /// It will not be read to its end: the connection cannot carry another request.
    Unfinished,
    /// The client broke its framing.
    Malformed,
}

/// The body a request head announced, and the feed for it (none for an empty body).
pub fn body_for(framing: BodyFraming) -> (Http1RequestBody, Option<BodyFeed>) {
    let (decoder, length) = match framing {
        BodyFraming::Empty => return (Http1RequestBody::empty(), None),
        BodyFraming::Length(len) => (BodyDecoder::Length(len), Some(len)),
        BodyFraming::Chunked => (BodyDecoder::Chunked(Chunked::Size), None),
    };
    let channel = Arc::new(BodyChannel::default());
    let body = Http1RequestBody::new(channel.clone(), length);
    (body, Some(BodyFeed { channel, decoder }))
}

impl BodyFeed {
    /// Gives the body what it wants, if it wants anything: what is buffered, else a
    /// read. `continue_owed`: a `100 Continue` goes out the first time it wants bytes
    /// that have not come.
    pub fn step<I: AsyncRead + Unpin>(
        &mut self,
        input: &mut Input<'_, I>,
        continue_owed: &mut bool,
        out: &mut Output,
        cx: &mut Context<'_>,
    ) -> Fed {
        match self.channel.demand(cx.waker()) {
            Demand::Waiting => return Fed::Nothing,
            Demand::Abandoned => {
                return if self.drain_buffered(input.buf) {
                    Fed::Ended
                } else {
                    Fed::Unfinished
                };
            }
            Demand::Wanted => {}
        }
        if std::mem::take(continue_owed) && input.buf.is_empty() {
            out.tail().extend_from_slice(CONTINUE);
        }
        match self.decoder.decode(input.buf) {
            Ok(Decoded::Data(data)) => {
                self.channel.data(data, cx.waker());
                if self.decoder.remaining() == Some(0) {
                    self.channel.end(None, cx.waker());
                    return Fed::Ended;
                }
                Fed::Progress
            }
            Ok(Decoded::Trailers(trailers)) => {
                self.channel.end(Some(trailers), cx.waker());
                Fed::Ended
            }
            Ok(Decoded::End) => {
                self.channel.end(None, cx.waker());
                Fed::Ended
            }
            Ok(Decoded::NeedMore) if *input.closed => Fed::Unfinished,
            Ok(Decoded::NeedMore) => {
                if read_into(input.io, input.buf, READ_SIZE, input.closed, cx).is_ready() {
                    Fed::Progress
                } else {
                    Fed::Nothing
                }
            }
            Err(error) => {
                tracing::debug!(%error, "malformed request body");
                self.channel.malformed("broken chunked framing", cx.waker());
                Fed::Malformed
            }
        }
    }

    /// Discards the rest of a body nobody reads when it is all in `buf` already; `true`
    /// when it was (the connection may then carry the next request).
    pub fn drain_buffered(&mut self, buf: &mut BytesMut) -> bool {
        loop {
            match self.decoder.decode(buf) {
                Ok(Decoded::Data(_)) => {}
                Ok(Decoded::Trailers(_) | Decoded::End) => return true,
                Ok(Decoded::NeedMore) | Err(_) => return false,
            }
        }
    }
}
