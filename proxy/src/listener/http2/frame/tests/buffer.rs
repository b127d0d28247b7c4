//! Decoding as the read buffer presents frames: padded, with priority, with bits and
//! flags to ignore, cut short, several at once, and sliced rather than copied.

use bytes::{Bytes, BytesMut};

use super::super::{
    Priority, encode_data, encode_goaway, encode_headers, encode_ping, encode_settings_ack,
};
use super::*;

fn s(id: u32) -> StreamId {
    StreamId::new(id)
}

#[test]
fn padded_data_drops_its_padding_but_counts_it_for_flow_control() {
    let frame = decode_one(raw(kind::DATA, flag::PADDED, 1, b"\x03abc\0\0\0"));
    assert_eq!(
        frame,
        Frame::Data {
            stream: s(1),
            end_stream: false,
            data: Bytes::from_static(b"abc"),
            flow_len: 7,
        }
    );
}

#[test]
fn data_that_is_all_padding_is_empty_but_counts_for_flow_control() {
    let frame = decode_one(raw(
        kind::DATA,
        flag::PADDED | flag::END_STREAM,
        1,
        b"\x02\0\0",
    ));
    assert_eq!(
        frame,
        Frame::Data {
            stream: s(1),
            end_stream: true,
            data: Bytes::new(),
            flow_len: 3,
        }
    );
}

#[test]
fn padded_headers_drop_their_padding() {
    let frame = decode_one(raw(kind::HEADERS, flag::PADDED, 1, b"\x02\x82\x84\0\0"));
    let Frame::Headers { fragment, .. } = frame else {
        panic!("not HEADERS: {frame:?}")
    };
    assert_eq!(&fragment[..], b"\x82\x84");
}

#[test]
fn headers_with_priority_give_the_priority_and_the_fragment_after_it() {
    let payload = [0, 0, 0, 3, 255, 0x82];
    let frame = decode_one(raw(
        kind::HEADERS,
        flag::PRIORITY | flag::END_HEADERS,
        5,
        &payload,
    ));
    assert_eq!(
        frame,
        Frame::Headers {
            stream: s(5),
            end_stream: false,
            end_headers: true,
            priority: Some(Priority {
                dependency: s(3),
                exclusive: false,
                weight: 255,
            }),
            fragment: Bytes::from_static(b"\x82"),
        }
    );
}

#[test]
fn padded_headers_with_priority_give_both_without_the_padding() {
    let payload = [1, 0x80, 0, 0, 0, 7, 0x82, 0x86, 0];
    let frame = decode_one(raw(
        kind::HEADERS,
        flag::PADDED | flag::PRIORITY,
        1,
        &payload,
    ));
    let Frame::Headers {
        priority, fragment, ..
    } = frame
    else {
        panic!("not HEADERS: {frame:?}")
    };
    let expected = Priority {
        dependency: s(0),
        exclusive: true,
        weight: 7,
    };
    assert_eq!(
        (priority, &fragment[..]),
        (Some(expected), &b"\x82\x86"[..])
    );
}

#[test]
fn the_reserved_bit_of_the_stream_identifier_is_ignored() {
    let frame = decode_one(raw(kind::RST_STREAM, 0, 0x8000_0003, &[0, 0, 0, 8]));
    assert_eq!(frame.stream(), s(3));
    // And on the connection's frames, the reserved bit does not make the stream non-zero.
    let frame = decode_one(raw(kind::PING, 0, 0x8000_0000, &[0; 8]));
    assert_eq!(
        frame,
        Frame::Ping {
            ack: false,
            payload: [0; 8]
        }
    );
}

#[test]
fn flags_a_type_does_not_define_are_ignored() {
    let frame = decode_one(raw(kind::PING, 0xfe, 0, &[1; 8]));
    assert_eq!(
        frame,
        Frame::Ping {
            ack: false,
            payload: [1; 8]
        }
    );
    let frame = decode_one(raw(kind::DATA, 0xf6, 1, b"x"));
    assert!(
        matches!(
            frame,
            Frame::Data {
                end_stream: false,
                ..
            }
        ),
        "{frame:?}"
    );
}

#[test]
fn a_partial_frame_returns_none_and_consumes_nothing() {
    let mut whole = BytesMut::new();
    encode_data(&mut whole, s(1), b"0123456789", false);
    for cut in 0..whole.len() {
        let mut buf = BytesMut::from(&whole[..cut]);
        assert_eq!(decode(&mut buf, MAX), Ok(None), "cut at {cut}");
        assert_eq!(&buf[..], &whole[..cut], "cut at {cut}");
    }
}

#[test]
fn several_frames_in_one_buffer_decode_in_order() {
    let mut buf = BytesMut::new();
    encode_settings_ack(&mut buf);
    encode_headers(&mut buf, s(1), false, true, b"\x82");
    encode_data(&mut buf, s(1), b"abc", true);
    encode_ping(&mut buf, false, [9; 8]);
    encode_data(&mut buf, s(3), b"d", false);
    let mut kinds = Vec::new();
    while let Some(frame) = decode(&mut buf, MAX).unwrap() {
        kinds.push(frame);
    }
    assert!(buf.is_empty());
    assert!(matches!(kinds[0], Frame::SettingsAck));
    assert!(matches!(
        kinds[1],
        Frame::Headers {
            end_headers: true,
            ..
        }
    ));
    assert!(matches!(&kinds[2], Frame::Data { data, end_stream: true, .. } if &data[..] == b"abc"));
    assert_eq!(
        kinds[3],
        Frame::Ping {
            ack: false,
            payload: [9; 8]
        }
    );
    assert!(
        matches!(&kinds[4], Frame::Data { data, stream, .. } if &data[..] == b"d" && *stream == s(3))
    );
    assert_eq!(kinds.len(), 5);
}

#[test]
fn a_frame_followed_by_part_of_the_next_leaves_that_part_buffered() {
    let mut buf = BytesMut::new();
    encode_data(&mut buf, s(1), b"abc", false);
    encode_data(&mut buf, s(1), b"defgh", true);
    buf.truncate(buf.len() - 2);
    assert!(matches!(
        decode(&mut buf, MAX),
        Ok(Some(Frame::Data { .. }))
    ));
    let rest = buf.clone();
    assert_eq!(decode(&mut buf, MAX), Ok(None));
    assert_eq!(buf, rest);
}

#[test]
fn bodies_and_fragments_are_slices_of_the_read_buffer_not_copies() {
    let mut buf = BytesMut::with_capacity(256);
    encode_data(&mut buf, s(1), b"a body worth not copying", false);
    encode_goaway(&mut buf, s(1), Reason::NO_ERROR, b"debug");
    let start = buf.as_ptr() as usize;
    let within = |bytes: &Bytes| (start..start + 256).contains(&(bytes.as_ptr() as usize));
    let Ok(Some(Frame::Data { data, .. })) = decode(&mut buf, MAX) else {
        panic!("not DATA")
    };
    assert!(within(&data), "the body was copied");
    let Ok(Some(Frame::GoAway { debug, .. })) = decode(&mut buf, MAX) else {
        panic!("not GOAWAY")
    };
    assert!(within(&debug), "the debug data was copied");
}

#[test]
fn frame_stream_names_the_stream_or_zero_for_the_connection() {
    assert_eq!(
        decode_one(raw(kind::CONTINUATION, 0, 9, b"")).stream(),
        s(9)
    );
    assert_eq!(
        decode_one(raw(kind::SETTINGS, flag::ACK, 0, b"")).stream(),
        s(0)
    );
}
