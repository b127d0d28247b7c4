//! Each rule RFC 9113 §4 and §6 set for a frame on its own, broken once: refused with
//! the right code, as a connection or a stream error, consuming the right bytes.

use super::*;

const PROTOCOL: Reason = Reason::PROTOCOL_ERROR;
const FRAME_SIZE: Reason = Reason::FRAME_SIZE_ERROR;

#[test]
fn refuses_a_data_frame_longer_than_max_frame_size() {
    assert_connection_error(&raw(kind::DATA, 0, 1, &[0; MAX as usize + 1]), FRAME_SIZE);
}

#[test]
fn refuses_a_headers_frame_longer_than_max_frame_size_as_a_connection_error() {
    assert_connection_error(
        &raw(kind::HEADERS, 0, 1, &[0; MAX as usize + 1]),
        FRAME_SIZE,
    );
}

#[test]
fn refuses_an_oversized_frame_on_its_head_before_its_payload_arrives() {
    assert_connection_error(&head_only(1 << 20, kind::DATA, 0, 1), FRAME_SIZE);
    // An unknown type too: it is not buffered just to be ignored.
    assert_connection_error(&head_only(MAX + 1, 0xee, 0, 0), FRAME_SIZE);
}

#[test]
fn accepts_a_frame_of_exactly_max_frame_size_and_a_larger_one_when_allowed() {
    let frame = decode_one(raw(kind::DATA, 0, 1, &[7; MAX as usize]));
    assert!(matches!(frame, Frame::Data { flow_len: MAX, .. }));
    let mut buf = raw(kind::DATA, 0, 1, &[7; 1 << 16]);
    assert!(decode(&mut buf, 1 << 16).unwrap().is_some());
}

#[test]
fn refuses_data_on_stream_zero() {
    assert_connection_error(&raw(kind::DATA, 0, 0, b"x"), PROTOCOL);
}

#[test]
fn refuses_headers_on_stream_zero() {
    assert_connection_error(&raw(kind::HEADERS, flag::END_HEADERS, 0, b"\x82"), PROTOCOL);
}

#[test]
fn refuses_priority_on_stream_zero() {
    assert_connection_error(&raw(kind::PRIORITY, 0, 0, &[0, 0, 0, 1, 0]), PROTOCOL);
}

#[test]
fn refuses_rst_stream_on_stream_zero() {
    assert_connection_error(&raw(kind::RST_STREAM, 0, 0, &[0, 0, 0, 8]), PROTOCOL);
}

#[test]
fn refuses_push_promise_on_stream_zero() {
    assert_connection_error(&raw(kind::PUSH_PROMISE, 0, 0, &[0, 0, 0, 2]), PROTOCOL);
}

#[test]
fn refuses_continuation_on_stream_zero() {
    assert_connection_error(
        &raw(kind::CONTINUATION, flag::END_HEADERS, 0, b""),
        PROTOCOL,
    );
}

#[test]
fn refuses_settings_on_a_stream() {
    assert_connection_error(&raw(kind::SETTINGS, 0, 1, b""), PROTOCOL);
}

#[test]
fn refuses_ping_on_a_stream() {
    assert_connection_error(&raw(kind::PING, 0, 1, &[0; 8]), PROTOCOL);
}

#[test]
fn refuses_goaway_on_a_stream() {
    assert_connection_error(&raw(kind::GOAWAY, 0, 1, &[0; 8]), PROTOCOL);
}

#[test]
fn refuses_a_settings_ack_with_a_payload() {
    assert_connection_error(
        &raw(kind::SETTINGS, flag::ACK, 0, &[0, 3, 0, 0, 0, 1]),
        FRAME_SIZE,
    );
}

#[test]
fn refuses_settings_whose_length_is_not_a_multiple_of_six() {
    assert_connection_error(&raw(kind::SETTINGS, 0, 0, &[0, 3, 0, 0, 1]), FRAME_SIZE);
    assert_connection_error(
        &raw(kind::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 1, 0]),
        FRAME_SIZE,
    );
}

#[test]
fn refuses_a_ping_of_seven_bytes() {
    assert_connection_error(&raw(kind::PING, 0, 0, &[0; 7]), FRAME_SIZE);
}

#[test]
fn refuses_a_ping_of_nine_bytes() {
    assert_connection_error(&raw(kind::PING, flag::ACK, 0, &[0; 9]), FRAME_SIZE);
}

#[test]
fn refuses_an_rst_stream_of_three_or_five_bytes() {
    assert_connection_error(&raw(kind::RST_STREAM, 0, 1, &[0; 3]), FRAME_SIZE);
    assert_connection_error(&raw(kind::RST_STREAM, 0, 1, &[0; 5]), FRAME_SIZE);
}

#[test]
fn refuses_a_window_update_of_three_or_five_bytes() {
    assert_connection_error(&raw(kind::WINDOW_UPDATE, 0, 1, &[0, 0, 1]), FRAME_SIZE);
    assert_connection_error(
        &raw(kind::WINDOW_UPDATE, 0, 0, &[0, 0, 0, 1, 0]),
        FRAME_SIZE,
    );
}

#[test]
fn refuses_a_window_update_of_zero_on_a_stream_as_an_error_of_that_stream() {
    let mut bytes = raw(kind::WINDOW_UPDATE, 0, 5, &[0, 0, 0, 0]);
    put_raw(&mut bytes, kind::PING, 0, 0, &[3; 8]);
    let mut rest = assert_stream_error(&bytes, 5, PROTOCOL);
    assert!(matches!(
        decode(&mut rest, MAX),
        Ok(Some(Frame::Ping { .. }))
    ));
}

#[test]
fn refuses_a_window_update_of_zero_on_the_connection_as_a_connection_error() {
    assert_connection_error(&raw(kind::WINDOW_UPDATE, 0, 0, &[0, 0, 0, 0]), PROTOCOL);
}

#[test]
fn a_window_update_of_only_the_reserved_bit_is_an_increment_of_zero() {
    assert_stream_error(
        &raw(kind::WINDOW_UPDATE, 0, 1, &[0x80, 0, 0, 0]),
        1,
        PROTOCOL,
    );
    let frame = decode_one(raw(kind::WINDOW_UPDATE, 0, 1, &[0x80, 0, 0, 1]));
    assert_eq!(
        frame,
        Frame::WindowUpdate {
            stream: StreamId::new(1),
            increment: 1
        }
    );
}

#[test]
fn refuses_data_whose_padding_is_as_long_as_the_payload() {
    // h2spec 6.1/3 sends a pad length of 6 in a 5-byte payload; 5 is the limit case.
    assert_connection_error(&raw(kind::DATA, flag::PADDED, 1, b"\x05Test"), PROTOCOL);
    assert_connection_error(&raw(kind::DATA, flag::PADDED, 1, b"\x06Test"), PROTOCOL);
    assert_connection_error(&raw(kind::DATA, flag::PADDED, 1, b"\x01"), PROTOCOL);
}

#[test]
fn refuses_a_padded_data_frame_too_short_for_its_pad_length() {
    assert_connection_error(&raw(kind::DATA, flag::PADDED, 1, b""), FRAME_SIZE);
}

#[test]
fn refuses_headers_whose_padding_exceeds_the_payload() {
    let mut payload = vec![16];
    payload.extend_from_slice(&[0x82; 14]);
    assert_connection_error(&raw(kind::HEADERS, flag::PADDED, 1, &payload), PROTOCOL);
    assert_connection_error(
        &raw(kind::HEADERS, flag::PADDED, 1, b"\x04\x82\0\0"),
        PROTOCOL,
    );
    // Padding that leaves an empty fragment is fine.
    let frame = decode_one(raw(kind::HEADERS, flag::PADDED, 1, b"\x03\x82\0\0"));
    assert!(matches!(&frame, Frame::Headers { fragment, .. } if fragment.is_empty()));
}

#[test]
fn refuses_headers_whose_padding_eats_into_the_priority_fields() {
    let flags = flag::PADDED | flag::PRIORITY;
    assert_connection_error(&raw(kind::HEADERS, flags, 1, &[1, 0, 0, 0, 3, 9]), PROTOCOL);
    // The same without the byte of padding is a priority and an empty fragment.
    let frame = decode_one(raw(kind::HEADERS, flags, 1, &[0, 0, 0, 0, 3, 9]));
    assert!(matches!(&frame, Frame::Headers { fragment, .. } if fragment.is_empty()));
}

#[test]
fn refuses_headers_too_short_for_their_priority_fields() {
    assert_connection_error(
        &raw(kind::HEADERS, flag::PRIORITY, 1, &[0, 0, 0, 3]),
        FRAME_SIZE,
    );
    let flags = flag::PRIORITY | flag::PADDED;
    assert_connection_error(&raw(kind::HEADERS, flags, 1, &[0, 0, 0, 0, 3]), FRAME_SIZE);
}

#[test]
fn refuses_headers_depending_on_their_own_stream_as_a_connection_error() {
    // A stream error by §5.3.1, raised to the connection: see `decode::headers`.
    let payload = [0, 0, 0, 1, 16, 0x82];
    assert_connection_error(&raw(kind::HEADERS, flag::PRIORITY, 1, &payload), PROTOCOL);
    let payload = [0x80, 0, 0, 1, 16, 0x82];
    assert_connection_error(
        &raw(kind::HEADERS, flag::PRIORITY, 0x8000_0001, &payload),
        PROTOCOL,
    );
}

#[test]
fn refuses_a_priority_frame_of_four_or_six_bytes_as_an_error_of_its_stream() {
    let mut bytes = raw(kind::PRIORITY, 0, 3, &[0, 0, 0, 1]);
    put_raw(&mut bytes, kind::PRIORITY, 0, 3, &[0, 0, 0, 1, 0, 0]);
    let rest = assert_stream_error(&bytes, 3, FRAME_SIZE);
    let rest = assert_stream_error(&rest, 3, FRAME_SIZE);
    assert!(rest.is_empty());
}

#[test]
fn refuses_a_priority_frame_depending_on_its_own_stream_as_an_error_of_its_stream() {
    let mut bytes = raw(kind::PRIORITY, 0, 7, &[0x80, 0, 0, 7, 0]);
    put_raw(&mut bytes, kind::CONTINUATION, 0, 7, b"x");
    let mut rest = assert_stream_error(&bytes, 7, PROTOCOL);
    assert!(matches!(
        decode(&mut rest, MAX),
        Ok(Some(Frame::Continuation { .. }))
    ));
}

#[test]
fn refuses_a_push_promise_too_short_for_its_promised_stream() {
    assert_connection_error(&raw(kind::PUSH_PROMISE, 0, 1, &[0, 0, 2]), FRAME_SIZE);
    let payload = [0, 0, 0, 0, 2];
    assert_connection_error(
        &raw(kind::PUSH_PROMISE, flag::PADDED, 1, &payload[..4]),
        FRAME_SIZE,
    );
}

#[test]
fn refuses_a_push_promise_whose_padding_eats_into_its_promised_stream() {
    let payload = [1, 0, 0, 0, 2];
    assert_connection_error(
        &raw(kind::PUSH_PROMISE, flag::PADDED, 1, &payload),
        PROTOCOL,
    );
}

#[test]
fn refuses_a_goaway_shorter_than_eight_bytes() {
    assert_connection_error(&raw(kind::GOAWAY, 0, 0, &[0; 7]), FRAME_SIZE);
    assert_connection_error(&raw(kind::GOAWAY, 0, 0, b""), FRAME_SIZE);
}

#[test]
fn refuses_frames_with_a_bad_head_before_their_payload_arrives() {
    // The head alone decides: no waiting on a payload that may never come.
    assert_connection_error(&head_only(7, kind::PING, 0, 0), FRAME_SIZE);
    assert_connection_error(&head_only(100, kind::DATA, 0, 0), PROTOCOL);
    assert_connection_error(&head_only(4, kind::SETTINGS, 0, 0), FRAME_SIZE);
    assert_connection_error(&head_only(4, kind::HEADERS, flag::PRIORITY, 1), FRAME_SIZE);
}

#[test]
fn waits_for_the_whole_frame_before_a_stream_error_so_it_can_consume_it() {
    let whole = raw(kind::PRIORITY, 0, 3, &[0, 0, 0, 3, 0]);
    let mut buf = BytesMut::from(&whole[..12]);
    assert_eq!(decode(&mut buf, MAX), Ok(None));
    assert_eq!(&buf[..], &whole[..12]);
}

#[test]
fn accepts_an_unknown_frame_type_on_any_stream_with_any_flags() {
    let mut bytes = raw(0x0a, 0xff, 0, b"an ALTSVC, say");
    put_raw(&mut bytes, 0x10, 0, 0x8000_0005, b"PRIORITY_UPDATE");
    let first = decode(&mut bytes, MAX).unwrap().unwrap();
    let second = decode(&mut bytes, MAX).unwrap().unwrap();
    assert_eq!(
        first,
        Frame::Unknown {
            kind: 0x0a,
            stream: StreamId::new(0)
        }
    );
    assert_eq!(
        second,
        Frame::Unknown {
            kind: 0x10,
            stream: StreamId::new(5)
        }
    );
    assert!(bytes.is_empty());
}
