//! Every frame type decoded from what the encoders (or, for the types a server never
//! sends, a client's bytes) produce.

use bytes::{Bytes, BytesMut};

use super::super::{
    Priority, Settings, encode_data, encode_data_head, encode_goaway, encode_headers, encode_ping,
    encode_rst_stream, encode_settings, encode_settings_ack, encode_window_update,
};
use super::*;

fn s(id: u32) -> StreamId {
    StreamId::new(id)
}

#[test]
fn data_round_trips() {
    let mut buf = BytesMut::new();
    encode_data(&mut buf, s(1), b"hello", true);
    let frame = decode_one(buf);
    assert_eq!(
        frame,
        Frame::Data {
            stream: s(1),
            end_stream: true,
            data: Bytes::from_static(b"hello"),
            flow_len: 5,
        }
    );
}

#[test]
fn a_data_head_and_its_payload_written_apart_decode_as_one_frame() {
    let mut buf = BytesMut::new();
    encode_data_head(&mut buf, s(7), 4, false);
    assert_eq!(buf.len(), HEAD_LEN);
    buf.extend_from_slice(b"body");
    let Frame::Data {
        stream,
        end_stream,
        data,
        ..
    } = decode_one(buf)
    else {
        panic!("not DATA")
    };
    assert_eq!((stream, end_stream, &data[..]), (s(7), false, &b"body"[..]));
}

#[test]
fn an_empty_data_frame_that_ends_its_stream_round_trips() {
    let mut buf = BytesMut::new();
    encode_data(&mut buf, s(3), b"", true);
    let frame = decode_one(buf);
    assert_eq!(
        frame,
        Frame::Data {
            stream: s(3),
            end_stream: true,
            data: Bytes::new(),
            flow_len: 0,
        }
    );
}

#[test]
fn headers_round_trip() {
    let mut buf = BytesMut::new();
    encode_headers(&mut buf, s(5), false, true, b"\x82\x86\x84");
    assert_eq!(
        decode_one(buf),
        Frame::Headers {
            stream: s(5),
            end_stream: false,
            end_headers: true,
            priority: None,
            fragment: Bytes::from_static(b"\x82\x86\x84"),
        }
    );
}

#[test]
fn settings_round_trip() {
    let settings = Settings {
        header_table_size: Some(0),
        enable_push: Some(false),
        max_concurrent_streams: Some(250),
        initial_window_size: Some(1 << 20),
        max_frame_size: Some(1 << 16),
        max_header_list_size: Some(16 << 10),
        enable_connect_protocol: Some(true),
    };
    let mut buf = BytesMut::new();
    encode_settings(&mut buf, &settings);
    assert_eq!(decode_one(buf), Frame::Settings(settings));
}

#[test]
fn empty_settings_round_trip() {
    let mut buf = BytesMut::new();
    encode_settings(&mut buf, &Settings::default());
    assert_eq!(buf.len(), HEAD_LEN);
    assert_eq!(decode_one(buf), Frame::Settings(Settings::default()));
}

#[test]
fn a_settings_ack_round_trips() {
    let mut buf = BytesMut::new();
    encode_settings_ack(&mut buf);
    assert_eq!(decode_one(buf), Frame::SettingsAck);
}

#[test]
fn pings_round_trip() {
    for ack in [false, true] {
        let mut buf = BytesMut::new();
        encode_ping(&mut buf, ack, *b"12345678");
        let payload = *b"12345678";
        assert_eq!(decode_one(buf), Frame::Ping { ack, payload });
    }
}

#[test]
fn goaway_round_trips_with_its_debug_data() {
    let mut buf = BytesMut::new();
    encode_goaway(
        &mut buf,
        s(41),
        Reason::ENHANCE_YOUR_CALM,
        b"too many resets",
    );
    assert_eq!(
        decode_one(buf),
        Frame::GoAway {
            last_stream: s(41),
            code: Reason::ENHANCE_YOUR_CALM,
            debug: Bytes::from_static(b"too many resets"),
        }
    );
}

#[test]
fn rst_stream_round_trips() {
    let mut buf = BytesMut::new();
    encode_rst_stream(&mut buf, s(9), Reason::REFUSED_STREAM);
    assert_eq!(
        decode_one(buf),
        Frame::RstStream {
            stream: s(9),
            code: Reason::REFUSED_STREAM,
        }
    );
}

#[test]
fn window_updates_round_trip_on_a_stream_and_on_the_connection() {
    for stream in [0, 11] {
        let mut buf = BytesMut::new();
        encode_window_update(&mut buf, s(stream), (1 << 31) - 1);
        assert_eq!(
            decode_one(buf),
            Frame::WindowUpdate {
                stream: s(stream),
                increment: (1 << 31) - 1,
            }
        );
    }
}

#[test]
fn a_priority_frame_decodes() {
    let frame = decode_one(raw(kind::PRIORITY, 0, 3, &[0x80, 0, 0, 1, 15]));
    let priority = Priority {
        dependency: s(1),
        exclusive: true,
        weight: 15,
    };
    assert_eq!(
        frame,
        Frame::Priority {
            stream: s(3),
            priority,
        }
    );
}

#[test]
fn a_push_promise_decodes_so_the_connection_can_refuse_it() {
    let payload = [2, 0, 0, 0, 4, b'a', b'b', 0, 0];
    let frame = decode_one(raw(
        kind::PUSH_PROMISE,
        flag::PADDED | flag::END_HEADERS,
        1,
        &payload,
    ));
    assert_eq!(
        frame,
        Frame::PushPromise {
            stream: s(1),
            end_headers: true,
            promised: s(4),
            fragment: Bytes::from_static(b"ab"),
        }
    );
}

#[test]
fn a_continuation_decodes() {
    let frame = decode_one(raw(kind::CONTINUATION, flag::END_HEADERS, 1, b"frag"));
    assert_eq!(
        frame,
        Frame::Continuation {
            stream: s(1),
            end_headers: true,
            fragment: Bytes::from_static(b"frag"),
        }
    );
}

#[test]
fn an_unknown_frame_type_is_consumed_whole_and_returned() {
    let frame = decode_one(raw(0xfa, 0xff, 0, b"whatever it carries"));
    assert_eq!(
        frame,
        Frame::Unknown {
            kind: 0xfa,
            stream: s(0)
        }
    );
}
