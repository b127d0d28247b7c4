//! Encoding the frames a server sends, appended to the connection's output buffer.
//!
//! Each function reserves what its frame needs once and writes it: the only allocation
//! is the buffer's own growth. Arguments are the connection's, not the peer's, so they
//! are trusted; a length that cannot be framed at all is a bug and panics (see
//! `Head::bytes`) rather than corrupt the framing of every stream on the connection.

use bytes::BufMut;

use super::head::{HEAD_LEN, Head, StreamId, flag, kind};
use super::reason::Reason;
use super::settings::{DEFAULT_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE, MAX_WINDOW_SIZE, Settings};

/// Where frames are written: the connection's output (a `Vec`), or a `BytesMut`.
pub trait FrameSink: BufMut {
    /// Room for `additional` more bytes, made once per frame.
    fn reserve_frame(&mut self, additional: usize);
}

impl FrameSink for Vec<u8> {
    fn reserve_frame(&mut self, additional: usize) {
        self.reserve(additional);
    }
}

impl FrameSink for bytes::BytesMut {
    fn reserve_frame(&mut self, additional: usize) {
        self.reserve(additional);
    }
}

/// A HEADERS frame carrying `fragment` whole: at most the peer's
/// SETTINGS_MAX_FRAME_SIZE, which [`encode_header_block`] takes care of.
pub fn encode_headers(
    dst: &mut impl FrameSink,
    stream: StreamId,
    end_stream: bool,
    end_headers: bool,
    fragment: &[u8],
) {
    debug_assert!(!stream.is_zero(), "HEADERS on stream 0");
    let flags = bit(end_stream, flag::END_STREAM) | bit(end_headers, flag::END_HEADERS);
    dst.reserve_frame(HEAD_LEN + fragment.len());
    dst.put_slice(&Head::bytes(fragment.len(), kind::HEADERS, flags, stream));
    dst.put_slice(fragment);
}

/// A whole encoded field block, cut to the peer's `max_frame_size`: a HEADERS frame,
/// then as many CONTINUATION frames as the rest needs (§6.10). END_STREAM goes on the
/// HEADERS (a CONTINUATION has no such flag; the stream ends with the block),
/// END_HEADERS on the last frame only. The HPACK encoder can thus write a block
/// without knowing frame sizes; the frames go out back to back, as §6.10 requires.
/// `max_frame_size` is kept within what SETTINGS allows, so a bad value cannot make
/// the cut loop forever or produce frames the peer must refuse.
pub fn encode_header_block(
    dst: &mut impl FrameSink,
    stream: StreamId,
    end_stream: bool,
    block: &[u8],
    max_frame_size: u32,
) {
    let max = max_frame_size.clamp(DEFAULT_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE) as usize;
    let mut fragments = block.chunks(max);
    let first = fragments.next().unwrap_or_default();
    let continuations = fragments.len();
    dst.reserve_frame(block.len() + (1 + continuations) * HEAD_LEN);
    encode_headers(dst, stream, end_stream, continuations == 0, first);
    for (i, fragment) in fragments.enumerate() {
        let flags = bit(i + 1 == continuations, flag::END_HEADERS);
        dst.put_slice(&Head::bytes(
            fragment.len(),
            kind::CONTINUATION,
            flags,
            stream,
        ));
        dst.put_slice(fragment);
    }
}

/// Only the 9-byte head of a DATA frame of `len` bytes: its payload, a `Bytes` of the
/// response body, goes out after it in the same vectored write instead of being copied
/// into the output buffer. Sends no padding.
pub fn encode_data_head(dst: &mut impl FrameSink, stream: StreamId, len: u32, end_stream: bool) {
    debug_assert!(!stream.is_zero(), "DATA on stream 0");
    let flags = bit(end_stream, flag::END_STREAM);
    dst.put_slice(&Head::bytes(len as usize, kind::DATA, flags, stream));
}

/// A whole DATA frame, for a payload small enough that copying it beats a separate
/// buffer in the write (and for an empty one that only ends the stream).
#[cfg(test)]
pub fn encode_data(dst: &mut impl FrameSink, stream: StreamId, data: &[u8], end_stream: bool) {
    debug_assert!(!stream.is_zero(), "DATA on stream 0");
    let flags = bit(end_stream, flag::END_STREAM);
    dst.reserve_frame(HEAD_LEN + data.len());
    dst.put_slice(&Head::bytes(data.len(), kind::DATA, flags, stream));
    dst.put_slice(data);
}

/// A SETTINGS frame with each parameter of `settings` that is set.
pub fn encode_settings(dst: &mut impl FrameSink, settings: &Settings) {
    settings.encode(dst);
}

/// The acknowledgement the peer's every SETTINGS frame is owed (§6.5.3).
pub fn encode_settings_ack(dst: &mut impl FrameSink) {
    dst.put_slice(&Head::bytes(0, kind::SETTINGS, flag::ACK, StreamId::ZERO));
}

/// A PING, or with `ack` the answer to one, which must echo its payload (§6.7).
pub fn encode_ping(dst: &mut impl FrameSink, ack: bool, payload: [u8; 8]) {
    dst.reserve_frame(HEAD_LEN + payload.len());
    dst.put_slice(&Head::bytes(
        8,
        kind::PING,
        bit(ack, flag::ACK),
        StreamId::ZERO,
    ));
    dst.put_slice(&payload);
}

/// A GOAWAY: streams above `last_stream` were not and will not be processed, so the
/// client may retry them elsewhere (§6.8). `debug` is for the peer's logs; keep it
/// short, as the whole frame must fit the peer's SETTINGS_MAX_FRAME_SIZE.
pub fn encode_goaway(dst: &mut impl FrameSink, last_stream: StreamId, code: Reason, debug: &[u8]) {
    let len = 8 + debug.len();
    dst.reserve_frame(HEAD_LEN + len);
    dst.put_slice(&Head::bytes(len, kind::GOAWAY, 0, StreamId::ZERO));
    dst.put_u32(last_stream.get());
    dst.put_u32(code.0);
    dst.put_slice(debug);
}

pub fn encode_rst_stream(dst: &mut impl FrameSink, stream: StreamId, code: Reason) {
    debug_assert!(!stream.is_zero(), "RST_STREAM on stream 0");
    dst.reserve_frame(HEAD_LEN + 4);
    dst.put_slice(&Head::bytes(4, kind::RST_STREAM, 0, stream));
    dst.put_u32(code.0);
}

/// Credit for `increment` more bytes on `stream`'s window, or the connection's on
/// stream 0. The increment must be 1..=2^31-1; the peer refuses 0 (§6.9), and the
/// reserved top bit is never sent.
pub fn encode_window_update(dst: &mut impl FrameSink, stream: StreamId, increment: u32) {
    debug_assert!(
        (1..=MAX_WINDOW_SIZE).contains(&increment),
        "WINDOW_UPDATE increment {increment} out of 1..=2^31-1"
    );
    dst.reserve_frame(HEAD_LEN + 4);
    dst.put_slice(&Head::bytes(4, kind::WINDOW_UPDATE, 0, stream));
    dst.put_u32(increment & MAX_WINDOW_SIZE);
}

fn bit(set: bool, flag: u8) -> u8 {
    if set { flag } else { 0 }
}
