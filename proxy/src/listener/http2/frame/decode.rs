//! Decoding: the client's connection preface (RFC 9113 §3.4), then one frame at a time
//! off the front of the read buffer, each checked against its type's rules in §6.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use super::head::{HEAD_LEN, Head, StreamId, flag, kind};
use super::reason::{FrameError, Reason};
use super::settings::{MAX_WINDOW_SIZE, Settings};
use super::{Frame, Priority};

/// What a client sends before its first frame (§3.4). Its first line looks like an
/// HTTP/1 request with an unknown method, so an HTTP/1-only server fails fast on it.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Consumes the connection preface from the front of `buf`: `Ok(true)` once it has
/// been, `Ok(false)` while what is buffered is a correct beginning of it (nothing is
/// consumed then). A wrong byte is refused as soon as it arrives, so an HTTP/1 client
/// that reached an HTTP/2-only port is told at once instead of left waiting for the
/// 24 bytes its short request may never reach.
pub fn take_preface(buf: &mut BytesMut) -> Result<bool, FrameError> {
    let seen = buf.len().min(PREFACE.len());
    if buf.get(..seen) != PREFACE.get(..seen) {
        return Err(FrameError::connection(
            Reason::PROTOCOL_ERROR,
            "not the HTTP/2 connection preface",
        ));
    }
    if seen < PREFACE.len() {
        return Ok(false);
    }
    buf.advance(PREFACE.len());
    Ok(true)
}

/// Decodes the frame at the front of `buf`, with `max_frame_size` the
/// SETTINGS_MAX_FRAME_SIZE we announced.
///
/// - `Ok(None)`: the frame is not all buffered yet; nothing was consumed.
/// - `Ok(Some(frame))`: that frame, and only it, was consumed.
/// - `Err(FrameError::Stream { .. })`: the frame broke a rule that costs only its
///   stream; it was consumed, and the connection reads on.
/// - `Err(FrameError::Connection { .. })`: nothing was consumed; the connection ends.
///
/// A frame is refused on its head when the head is enough to know (too long, wrong
/// stream, impossible length), without waiting for the payload.
pub fn decode(buf: &mut BytesMut, max_frame_size: u32) -> Result<Option<Frame>, FrameError> {
    let Some(head) = Head::read(buf) else {
        return Ok(None);
    };
    // Before anything else: waiting to buffer an oversized frame is what it attacks.
    // A connection error for every type, even where §4.2 would allow a stream error
    // for one that alters no connection state: nothing in the frame can be trusted.
    if head.len > max_frame_size {
        return Err(FrameError::connection(
            Reason::FRAME_SIZE_ERROR,
            "frame longer than SETTINGS_MAX_FRAME_SIZE",
        ));
    }
    check_head(head)?;
    let total = HEAD_LEN + head.len as usize;
    if buf.len() < total {
        return Ok(None);
    }
    let frame = match head.kind {
        kind::DATA => data(head, buf, total),
        kind::HEADERS => headers(head, buf, total),
        kind::PUSH_PROMISE => push_promise(head, buf, total),
        kind::CONTINUATION => Ok(Frame::Continuation {
            stream: head.stream,
            end_headers: head.has(flag::END_HEADERS),
            fragment: take(buf, total, HEAD_LEN..total),
        }),
        kind::GOAWAY => {
            let payload = &buf[HEAD_LEN..total];
            let last_stream = StreamId::new(be32(payload, 0)?);
            let code = Reason(be32(payload, 4)?);
            let debug = take(buf, total, HEAD_LEN + 8..total);
            Ok(Frame::GoAway {
                last_stream,
                code,
                debug,
            })
        }
        _ => {
            // Nothing of these outlives the buffer: read in place, no `Bytes` made.
            let decoded = fixed(head, &buf[HEAD_LEN..total]);
            if !matches!(decoded, Err(FrameError::Connection { .. })) {
                buf.advance(total);
            }
            decoded
        }
    }?;
    Ok(Some(frame))
}

/// The rules a frame head alone can break: the stream it may be on, and the lengths
/// its type allows. All are connection errors (§6): a bad head leaves the rest of the
/// frame unknowable, as it may not even be where the head says it ends.
fn check_head(head: Head) -> Result<(), FrameError> {
    let padding = u32::from(head.has(flag::PADDED));
    match head.kind {
        kind::DATA => {
            on_a_stream(head, "DATA on stream 0")?;
            at_least(head, padding)
        }
        kind::HEADERS => {
            on_a_stream(head, "HEADERS on stream 0")?;
            let priority = if head.has(flag::PRIORITY) { 5 } else { 0 };
            at_least(head, padding + priority)
        }
        // Its length is a stream error, checked once the frame is buffered (§6.3).
        kind::PRIORITY => on_a_stream(head, "PRIORITY on stream 0"),
        kind::RST_STREAM => {
            on_a_stream(head, "RST_STREAM on stream 0")?;
            exactly(head, 4, "RST_STREAM not 4 bytes long")
        }
        kind::SETTINGS => {
            on_the_connection(head, "SETTINGS on a stream")?;
            if head.has(flag::ACK) {
                exactly(head, 0, "SETTINGS with ACK and a payload")
            } else if head.len % 6 != 0 {
                Err(frame_size("SETTINGS length not a multiple of 6"))
            } else {
                Ok(())
            }
        }
        kind::PUSH_PROMISE => {
            on_a_stream(head, "PUSH_PROMISE on stream 0")?;
            at_least(head, padding + 4)
        }
        kind::PING => {
            on_the_connection(head, "PING on a stream")?;
            exactly(head, 8, "PING not 8 bytes long")
        }
        kind::GOAWAY => {
            on_the_connection(head, "GOAWAY on a stream")?;
            at_least(head, 8)
        }
        kind::WINDOW_UPDATE => exactly(head, 4, "WINDOW_UPDATE not 4 bytes long"),
        kind::CONTINUATION => on_a_stream(head, "CONTINUATION on stream 0"),
        _ => Ok(()),
    }
}

fn on_a_stream(head: Head, detail: &'static str) -> Result<(), FrameError> {
    if head.stream.is_zero() {
        return Err(FrameError::connection(Reason::PROTOCOL_ERROR, detail));
    }
    Ok(())
}

fn on_the_connection(head: Head, detail: &'static str) -> Result<(), FrameError> {
    if !head.stream.is_zero() {
        return Err(FrameError::connection(Reason::PROTOCOL_ERROR, detail));
    }
    Ok(())
}

fn exactly(head: Head, len: u32, detail: &'static str) -> Result<(), FrameError> {
    if head.len != len {
        return Err(frame_size(detail));
    }
    Ok(())
}

/// A frame too short for the fields its type and flags say it has (§4.2).
fn at_least(head: Head, len: u32) -> Result<(), FrameError> {
    if head.len < len {
        return Err(TOO_SHORT);
    }
    Ok(())
}

const TOO_SHORT: FrameError = frame_size("frame too short for its fields");

const fn frame_size(detail: &'static str) -> FrameError {
    FrameError::connection(Reason::FRAME_SIZE_ERROR, detail)
}

fn data(head: Head, buf: &mut BytesMut, total: usize) -> Result<Frame, FrameError> {
    let content = unpad(head, &buf[HEAD_LEN..total], 0)?;
    Ok(Frame::Data {
        stream: head.stream,
        end_stream: head.has(flag::END_STREAM),
        data: take(buf, total, HEAD_LEN + content.start..HEAD_LEN + content.end),
        flow_len: head.len,
    })
}

fn headers(head: Head, buf: &mut BytesMut, total: usize) -> Result<Frame, FrameError> {
    let payload = &buf[HEAD_LEN..total];
    let fields = if head.has(flag::PRIORITY) { 5 } else { 0 };
    let content = unpad(head, payload, fields)?;
    let priority = if fields > 0 {
        let priority = read_priority(payload, content.start)?;
        // §5.3.1 makes this a stream error, but the frame's field block must still go
        // through HPACK to keep the decoder's table in step with the client's encoder,
        // and a stream error hands the connection no block. Ending the connection,
        // which §5.4 allows for any stream error, costs only a broken client.
        if priority.dependency == head.stream {
            return Err(FrameError::connection(
                Reason::PROTOCOL_ERROR,
                "HEADERS depends on its own stream",
            ));
        }
        Some(priority)
    } else {
        None
    };
    Ok(Frame::Headers {
        stream: head.stream,
        end_stream: head.has(flag::END_STREAM),
        end_headers: head.has(flag::END_HEADERS),
        priority,
        fragment: take(
            buf,
            total,
            HEAD_LEN + content.start + fields..HEAD_LEN + content.end,
        ),
    })
}

fn push_promise(head: Head, buf: &mut BytesMut, total: usize) -> Result<Frame, FrameError> {
    let payload = &buf[HEAD_LEN..total];
    let content = unpad(head, payload, 4)?;
    let promised = StreamId::new(be32(payload, content.start)?);
    Ok(Frame::PushPromise {
        stream: head.stream,
        end_headers: head.has(flag::END_HEADERS),
        promised,
        fragment: take(
            buf,
            total,
            HEAD_LEN + content.start + 4..HEAD_LEN + content.end,
        ),
    })
}

/// The frames whose content is all fixed-size fields.
fn fixed(head: Head, payload: &[u8]) -> Result<Frame, FrameError> {
    let stream = head.stream;
    match head.kind {
        kind::PRIORITY => {
            if payload.len() != 5 {
                let detail = "PRIORITY not 5 bytes long";
                return Err(FrameError::stream(stream, Reason::FRAME_SIZE_ERROR, detail));
            }
            let priority = read_priority(payload, 0)?;
            if priority.dependency == stream {
                let detail = "PRIORITY depends on its own stream";
                return Err(FrameError::stream(stream, Reason::PROTOCOL_ERROR, detail));
            }
            Ok(Frame::Priority { stream, priority })
        }
        kind::RST_STREAM => Ok(Frame::RstStream {
            stream,
            code: Reason(be32(payload, 0)?),
        }),
        kind::SETTINGS if head.has(flag::ACK) => Ok(Frame::SettingsAck),
        kind::SETTINGS => Settings::parse(payload).map(Frame::Settings),
        kind::PING => Ok(Frame::Ping {
            ack: head.has(flag::ACK),
            payload: payload.try_into().map_err(|_| TOO_SHORT)?,
        }),
        kind::WINDOW_UPDATE => {
            // The top bit is reserved (§6.9) and ignored like the stream's.
            let increment = be32(payload, 0)? & MAX_WINDOW_SIZE;
            if increment > 0 {
                Ok(Frame::WindowUpdate { stream, increment })
            } else if stream.is_zero() {
                let detail = "WINDOW_UPDATE of 0 for the connection";
                Err(FrameError::connection(Reason::PROTOCOL_ERROR, detail))
            } else {
                let detail = "WINDOW_UPDATE of 0";
                Err(FrameError::stream(stream, Reason::PROTOCOL_ERROR, detail))
            }
        }
        other => Ok(Frame::Unknown {
            kind: other,
            stream,
        }),
    }
}

/// Where the content lies in a payload that may be padded (§6.1): after the pad length
/// byte, before the padding. `fields` is how many bytes of fixed fields the content
/// must hold before its fragment or data; padding that leaves less is a PROTOCOL_ERROR
/// (§6.1, §6.2, §6.6).
fn unpad(head: Head, payload: &[u8], fields: usize) -> Result<Range<usize>, FrameError> {
    if !head.has(flag::PADDED) {
        return Ok(0..payload.len());
    }
    let (&padding, _) = payload.split_first().ok_or(TOO_SHORT)?;
    match payload.len().checked_sub(usize::from(padding)) {
        Some(end) if end > fields => Ok(1..end),
        _ => Err(FrameError::connection(
            Reason::PROTOCOL_ERROR,
            "padding longer than the frame leaves room for",
        )),
    }
}

/// The 5-byte priority fields (§6.3) at `at`.
fn read_priority(payload: &[u8], at: usize) -> Result<Priority, FrameError> {
    let dependency = be32(payload, at)?;
    let weight = *payload.get(at + 4).ok_or(TOO_SHORT)?;
    Ok(Priority {
        dependency: StreamId::new(dependency),
        exclusive: dependency >> 31 == 1,
        weight,
    })
}

/// The 32-bit big-endian field at `at`. The head's checks have made sure the payload
/// holds it; a short one is a frame size error rather than a panic all the same.
fn be32(payload: &[u8], at: usize) -> Result<u32, FrameError> {
    let bytes = payload.get(at..at + 4).ok_or(TOO_SHORT)?;
    Ok(u32::from_be_bytes(bytes.try_into().map_err(|_| TOO_SHORT)?))
}

/// Consumes the `total` bytes of the frame at the front of `buf` and returns `range` of
/// them, a slice of the read buffer (no copy). An empty range (a DATA frame that only
/// ends its stream) takes no reference on the buffer at all.
fn take(buf: &mut BytesMut, total: usize, range: Range<usize>) -> Bytes {
    if range.is_empty() {
        buf.advance(total);
        return Bytes::new();
    }
    let mut frame = buf.split_to(total);
    frame.truncate(range.end);
    frame.advance(range.start);
    frame.freeze()
}
