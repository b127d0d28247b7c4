//! SETTINGS parameters: each value §6.5.2 (and RFC 8441) forbids is refused with its
//! code, the values at the edges are accepted, and unknown identifiers are skipped.

use super::super::Settings;
use super::*;

/// A SETTINGS frame of `(identifier, value)` parameters.
fn settings(params: &[(u16, u32)]) -> BytesMut {
    let mut payload = Vec::new();
    for &(id, value) in params {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    raw(kind::SETTINGS, 0, 0, &payload)
}

fn decoded(params: &[(u16, u32)]) -> Settings {
    match decode_one(settings(params)) {
        Frame::Settings(settings) => settings,
        other => panic!("not SETTINGS: {other:?}"),
    }
}

#[test]
fn reads_each_parameter_into_its_field() {
    let got = decoded(&[
        (1, 8192),
        (2, 0),
        (3, 100),
        (4, 1),
        (5, 20_000),
        (6, 9000),
        (8, 1),
    ]);
    let expected = Settings {
        header_table_size: Some(8192),
        enable_push: Some(false),
        max_concurrent_streams: Some(100),
        initial_window_size: Some(1),
        max_frame_size: Some(20_000),
        max_header_list_size: Some(9000),
        enable_connect_protocol: Some(true),
    };
    assert_eq!(got, expected);
}

#[test]
fn ignores_parameters_with_unknown_identifiers() {
    // 0x9 is RFC 9218's SETTINGS_NO_RFC7540_PRIORITIES; 0x0 and 0xffff are unassigned.
    let got = decoded(&[(0x0, 7), (0x9, 1), (0xffff, u32::MAX), (3, 10)]);
    let expected = Settings {
        max_concurrent_streams: Some(10),
        ..Settings::default()
    };
    assert_eq!(got, expected);
}

#[test]
fn keeps_the_last_value_of_a_parameter_named_twice() {
    assert_eq!(decoded(&[(4, 10), (4, 20)]).initial_window_size, Some(20));
}

#[test]
fn refuses_enable_push_of_two() {
    assert_connection_error(&settings(&[(2, 2)]), Reason::PROTOCOL_ERROR);
}

#[test]
fn accepts_enable_push_of_zero_or_one() {
    assert_eq!(decoded(&[(2, 1)]).enable_push, Some(true));
    assert_eq!(decoded(&[(2, 0)]).enable_push, Some(false));
}

#[test]
fn refuses_an_initial_window_size_above_2_31_minus_1_as_a_flow_control_error() {
    assert_connection_error(&settings(&[(4, 1 << 31)]), Reason::FLOW_CONTROL_ERROR);
    assert_connection_error(&settings(&[(4, u32::MAX)]), Reason::FLOW_CONTROL_ERROR);
}

#[test]
fn accepts_an_initial_window_size_of_2_31_minus_1() {
    assert_eq!(
        decoded(&[(4, (1 << 31) - 1)]).initial_window_size,
        Some((1 << 31) - 1)
    );
}

#[test]
fn refuses_a_max_frame_size_below_16384() {
    assert_connection_error(&settings(&[(5, 16_383)]), Reason::PROTOCOL_ERROR);
    assert_connection_error(&settings(&[(5, 0)]), Reason::PROTOCOL_ERROR);
}

#[test]
fn refuses_a_max_frame_size_above_16777215() {
    assert_connection_error(&settings(&[(5, 16_777_216)]), Reason::PROTOCOL_ERROR);
}

#[test]
fn accepts_a_max_frame_size_at_either_end_of_its_range() {
    assert_eq!(decoded(&[(5, 16_384)]).max_frame_size, Some(16_384));
    assert_eq!(decoded(&[(5, 16_777_215)]).max_frame_size, Some(16_777_215));
}

#[test]
fn refuses_enable_connect_protocol_of_two() {
    assert_connection_error(&settings(&[(8, 2)]), Reason::PROTOCOL_ERROR);
}

#[test]
fn refuses_a_bad_value_even_when_a_good_one_follows_it() {
    assert_connection_error(&settings(&[(2, 5), (2, 1)]), Reason::PROTOCOL_ERROR);
}

#[test]
fn takes_any_value_for_the_unbounded_parameters() {
    let got = decoded(&[(1, u32::MAX), (3, 0), (6, 0)]);
    assert_eq!(got.header_table_size, Some(u32::MAX));
    assert_eq!(got.max_concurrent_streams, Some(0));
    assert_eq!(got.max_header_list_size, Some(0));
}

#[test]
fn writes_parameters_in_identifier_order_and_only_those_set() {
    let mut buf = BytesMut::new();
    let ours = Settings {
        max_concurrent_streams: Some(100),
        enable_push: Some(false),
        ..Settings::default()
    };
    super::super::encode_settings(&mut buf, &ours);
    let expected: &[u8] = &[
        0, 0, 12, 4, 0, 0, 0, 0, 0, // head
        0, 2, 0, 0, 0, 0, // ENABLE_PUSH 0
        0, 3, 0, 0, 0, 100, // MAX_CONCURRENT_STREAMS 100
    ];
    assert_eq!(&buf[..], expected);
}
