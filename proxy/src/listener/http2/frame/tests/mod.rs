//! Tests of the frame codec, and the helpers they share: frames built byte by byte as a
//! client (or an attacker) would send them, and checks of what decoding consumed.

mod buffer;
mod encode;
mod props;
mod round_trip;
mod rules;
mod settings;

use bytes::{BufMut, BytesMut};

use super::head::{flag, kind};
use super::{DEFAULT_MAX_FRAME_SIZE, Frame, FrameError, HEAD_LEN, Reason, StreamId, decode};

/// The SETTINGS_MAX_FRAME_SIZE the tests decode with unless they say otherwise.
const MAX: u32 = DEFAULT_MAX_FRAME_SIZE;

/// A frame with a head that tells the truth about its payload's length, and whatever
/// else it is given.
fn raw(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    put_raw(&mut buf, kind, flags, stream, payload);
    buf
}

fn put_raw(buf: &mut BytesMut, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap();
    buf.put_slice(&len.to_be_bytes()[1..]);
    buf.put_u8(kind);
    buf.put_u8(flags);
    buf.put_u32(stream);
    buf.put_slice(payload);
}

/// Only the head of a frame announcing `len` bytes of payload.
fn head_only(len: u32, kind: u8, flags: u8, stream: u32) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_slice(&len.to_be_bytes()[1..]);
    buf.put_u8(kind);
    buf.put_u8(flags);
    buf.put_u32(stream);
    buf
}

/// The one frame `bytes` holds, which decoding must consume exactly.
fn decode_one(mut bytes: BytesMut) -> Frame {
    let frame = decode(&mut bytes, MAX).unwrap().expect("a whole frame");
    assert!(
        bytes.is_empty(),
        "{} bytes left after {frame:?}",
        bytes.len()
    );
    frame
}

/// Asserts `bytes` is refused as a connection error with `reason`, and that nothing of
/// it was consumed.
#[track_caller]
fn assert_connection_error(bytes: &[u8], reason: Reason) {
    let mut buf = BytesMut::from(bytes);
    match decode(&mut buf, MAX) {
        Err(FrameError::Connection { reason: got, .. }) => assert_eq!(got, reason),
        other => panic!("expected a connection {reason}, got {other:?}"),
    }
    assert_eq!(&buf[..], bytes, "a connection error consumes nothing");
}

/// Asserts `bytes` starts with a frame refused as an error of `stream` with `reason`,
/// and that exactly that frame was consumed: the returned rest is what follows it.
#[track_caller]
fn assert_stream_error(bytes: &[u8], stream: u32, reason: Reason) -> BytesMut {
    let mut buf = BytesMut::from(bytes);
    match decode(&mut buf, MAX) {
        Err(FrameError::Stream {
            stream: got_stream,
            reason: got,
            ..
        }) => {
            assert_eq!(got_stream, StreamId::new(stream));
            assert_eq!(got, reason);
        }
        other => panic!("expected a stream {reason}, got {other:?}"),
    }
    let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
    assert_eq!(
        &buf[..],
        &bytes[HEAD_LEN + len..],
        "the whole frame is consumed"
    );
    buf
}
