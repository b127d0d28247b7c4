//! The encoders' bytes on the wire, a field block cut into HEADERS and CONTINUATION
//! frames, the connection preface, and how error codes and errors read in logs.

use bytes::Bytes;

use super::super::{
    PREFACE, encode_data_head, encode_header_block, encode_ping, encode_rst_stream,
    encode_settings_ack, encode_window_update, take_preface,
};
use super::*;

/// Decodes every frame in `buf`, with the peer's `max` frame size.
fn decode_all(mut buf: BytesMut, max: u32) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(frame) = decode(&mut buf, max).unwrap() {
        frames.push(frame);
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    frames
}

/// Asserts `frames` are a HEADERS then CONTINUATIONs of `block` on `stream`, with
/// END_HEADERS on the last only.
fn assert_header_block(frames: &[Frame], stream: StreamId, end_stream: bool, block: &[u8]) {
    let mut joined = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let last = i + 1 == frames.len();
        let fragment = match frame {
            Frame::Headers {
                stream: s,
                end_stream: e,
                end_headers,
                priority: None,
                fragment,
            } if i == 0 => {
                assert_eq!((*s, *e, *end_headers), (stream, end_stream, last));
                fragment
            }
            Frame::Continuation {
                stream: s,
                end_headers,
                fragment,
            } if i > 0 => {
                assert_eq!((*s, *end_headers), (stream, last));
                fragment
            }
            other => panic!("frame {i} of the block: {other:?}"),
        };
        joined.extend_from_slice(fragment);
    }
    assert_eq!(joined, block);
}

#[test]
fn a_large_header_block_splits_into_headers_and_continuations() {
    let block: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
    let mut buf = BytesMut::new();
    encode_header_block(&mut buf, StreamId::new(1), true, &block, MAX);
    let frames = decode_all(buf, MAX);
    assert_eq!(frames.len(), 3, "16384 + 16384 + 7232");
    assert_header_block(&frames, StreamId::new(1), true, &block);
}

#[test]
fn a_header_block_that_fits_one_frame_is_one_headers_frame() {
    for len in [0, 1, MAX as usize] {
        let block = vec![0x82; len];
        let mut buf = BytesMut::new();
        encode_header_block(&mut buf, StreamId::new(3), false, &block, MAX);
        let frames = decode_all(buf, MAX);
        assert_eq!(frames.len(), 1, "a block of {len}");
        assert_header_block(&frames, StreamId::new(3), false, &block);
    }
}

#[test]
fn a_header_block_one_byte_over_the_frame_size_takes_a_continuation() {
    let block = vec![0x82; MAX as usize + 1];
    let mut buf = BytesMut::new();
    encode_header_block(&mut buf, StreamId::new(5), false, &block, MAX);
    let frames = decode_all(buf, MAX);
    assert_eq!(frames.len(), 2);
    assert_header_block(&frames, StreamId::new(5), false, &block);
}

#[test]
fn a_header_block_is_cut_to_the_peers_larger_frame_size() {
    let block = vec![0x82; 100_000];
    let mut buf = BytesMut::new();
    encode_header_block(&mut buf, StreamId::new(1), true, &block, 1 << 16);
    let frames = decode_all(buf, 1 << 16);
    assert_eq!(frames.len(), 2);
    assert_header_block(&frames, StreamId::new(1), true, &block);
}

#[test]
fn a_frame_size_below_the_minimum_cuts_at_the_minimum_instead() {
    let block = vec![0x82; 20_000];
    let mut buf = BytesMut::new();
    encode_header_block(&mut buf, StreamId::new(1), false, &block, 0);
    let frames = decode_all(buf, MAX);
    assert_eq!(frames.len(), 2);
    assert_header_block(&frames, StreamId::new(1), false, &block);
}

#[test]
fn frames_go_out_as_rfc_9113_lays_them_out() {
    let mut buf = BytesMut::new();
    encode_settings_ack(&mut buf);
    assert_eq!(&buf[..], [0, 0, 0, 4, 1, 0, 0, 0, 0]);

    let mut buf = BytesMut::new();
    encode_ping(&mut buf, true, *b"abcdefgh");
    assert_eq!(&buf[..], b"\0\0\x08\x06\x01\0\0\0\0abcdefgh");

    let mut buf = BytesMut::new();
    encode_rst_stream(&mut buf, StreamId::new(0x0102_0304), Reason::CANCEL);
    assert_eq!(&buf[..], [0, 0, 4, 3, 0, 1, 2, 3, 4, 0, 0, 0, 8]);

    let mut buf = BytesMut::new();
    encode_data_head(&mut buf, StreamId::new(1), 0x01_0000, true);
    assert_eq!(&buf[..], [1, 0, 0, 0, 1, 0, 0, 0, 1]);
}

#[test]
fn the_reserved_bits_are_never_sent() {
    let mut buf = BytesMut::new();
    encode_window_update(&mut buf, StreamId::new(u32::MAX), 5);
    assert_eq!(
        &buf[..],
        [0, 0, 4, 8, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 5]
    );
    assert_eq!(StreamId::new(u32::MAX), StreamId::MAX);
}

#[test]
#[should_panic(expected = "does not fit the 24-bit length field")]
fn a_data_head_too_long_for_the_length_field_panics_rather_than_corrupt_the_framing() {
    encode_data_head(&mut BytesMut::new(), StreamId::new(1), 1 << 24, false);
}

#[test]
fn takes_the_connection_preface_once_it_is_all_there() {
    let mut buf = BytesMut::from(PREFACE);
    buf.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    assert_eq!(take_preface(&mut buf), Ok(true));
    assert_eq!(
        decode(&mut buf, MAX),
        Ok(Some(Frame::Settings(Default::default())))
    );
}

#[test]
fn waits_for_the_rest_of_a_correct_partial_preface() {
    for cut in 0..PREFACE.len() {
        let mut buf = BytesMut::from(&PREFACE[..cut]);
        assert_eq!(take_preface(&mut buf), Ok(false), "cut at {cut}");
        assert_eq!(&buf[..], &PREFACE[..cut]);
    }
}

#[test]
fn refuses_a_wrong_preface_as_soon_as_a_byte_differs() {
    for bytes in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\r",
        b"X",
    ] {
        let mut buf = BytesMut::from(bytes);
        let err = take_preface(&mut buf).unwrap_err();
        assert_eq!(err.reason(), Reason::PROTOCOL_ERROR);
        assert!(matches!(err, FrameError::Connection { .. }));
    }
}

#[test]
fn error_codes_read_by_name() {
    assert_eq!(Reason::FRAME_SIZE_ERROR.to_string(), "FRAME_SIZE_ERROR");
    assert_eq!(Reason::HTTP_1_1_REQUIRED.to_string(), "HTTP_1_1_REQUIRED");
    assert_eq!(format!("{:?}", Reason::NO_ERROR), "Reason(NO_ERROR)");
    assert_eq!(Reason(0xbeef).to_string(), "unknown error code 0xbeef");
    assert_eq!(format!("{:?}", Reason(0xbeef)), "Reason(0xbeef)");
}

#[test]
fn error_codes_are_numbered_as_in_rfc_9113_section_7() {
    let codes = [
        Reason::NO_ERROR,
        Reason::PROTOCOL_ERROR,
        Reason::INTERNAL_ERROR,
        Reason::FLOW_CONTROL_ERROR,
        Reason::SETTINGS_TIMEOUT,
        Reason::STREAM_CLOSED,
        Reason::FRAME_SIZE_ERROR,
        Reason::REFUSED_STREAM,
        Reason::CANCEL,
        Reason::COMPRESSION_ERROR,
        Reason::CONNECT_ERROR,
        Reason::ENHANCE_YOUR_CALM,
        Reason::INADEQUATE_SECURITY,
        Reason::HTTP_1_1_REQUIRED,
    ];
    for (number, code) in (0..).zip(codes) {
        assert_eq!(code, Reason(number));
        assert!(
            code.name()
                .is_some_and(|name| format!("{code:?}").contains(name))
        );
    }
    assert_eq!(Reason(0xe).name(), None);
}

#[test]
fn limits_and_defaults_are_those_of_rfc_9113() {
    use super::super::{
        DEFAULT_HEADER_TABLE_SIZE, DEFAULT_INITIAL_WINDOW_SIZE, MAX_LENGTH, MAX_MAX_FRAME_SIZE,
        MAX_WINDOW_SIZE,
    };
    assert_eq!(DEFAULT_HEADER_TABLE_SIZE, 4096);
    assert_eq!(DEFAULT_INITIAL_WINDOW_SIZE, (1 << 16) - 1);
    assert_eq!(DEFAULT_MAX_FRAME_SIZE, 1 << 14);
    assert_eq!(
        (MAX_MAX_FRAME_SIZE, MAX_LENGTH),
        ((1 << 24) - 1, (1 << 24) - 1)
    );
    assert_eq!(MAX_WINDOW_SIZE, (1 << 31) - 1);
}

#[test]
fn errors_say_what_they_reach_which_code_and_which_rule() {
    let err = decode(&mut raw(kind::PING, 0, 0, &[0; 7]), MAX).unwrap_err();
    assert_eq!(
        err.to_string(),
        "HTTP/2 connection error FRAME_SIZE_ERROR: PING not 8 bytes long"
    );
    let err = decode(&mut raw(kind::WINDOW_UPDATE, 0, 3, &[0; 4]), MAX).unwrap_err();
    assert_eq!(
        err.to_string(),
        "HTTP/2 stream 3 error PROTOCOL_ERROR: WINDOW_UPDATE of 0"
    );
    assert_eq!(err.detail(), "WINDOW_UPDATE of 0");
}

#[test]
fn a_goaway_carries_no_debug_data_when_given_none() {
    let mut buf = BytesMut::new();
    super::super::encode_goaway(&mut buf, StreamId::ZERO, Reason::NO_ERROR, b"");
    let frame = decode_all(buf, MAX).pop().unwrap();
    let expected = Frame::GoAway {
        last_stream: StreamId::ZERO,
        code: Reason::NO_ERROR,
        debug: Bytes::new(),
    };
    assert_eq!(frame, expected);
}
