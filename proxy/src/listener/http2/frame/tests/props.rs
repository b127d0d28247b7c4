//! Properties over arbitrary input: decoding never panics and consumes a whole frame or
//! nothing, however the bytes arrive; encoded blocks and settings decode to what went in.

use proptest::prelude::*;

use super::super::{Settings, encode_header_block, encode_settings};
use super::*;

/// Decodes `buf` to its end or its first connection error, checking after each call
/// that exactly what the contract says was consumed. Returns the outcomes in order.
fn decode_checked(buf: &mut BytesMut, max: u32) -> Vec<Result<Frame, FrameError>> {
    let mut outcomes = Vec::new();
    loop {
        let before = buf.clone();
        let whole = (before.len() >= HEAD_LEN)
            .then(|| HEAD_LEN + u32::from_be_bytes([0, before[0], before[1], before[2]]) as usize);
        let result = decode(buf, max);
        match &result {
            Ok(None) => {
                assert_eq!(*buf, before, "Ok(None) consumed bytes");
                assert!(
                    whole.is_none_or(|whole| before.len() < whole),
                    "a whole frame left"
                );
                return outcomes;
            }
            Ok(Some(_)) | Err(FrameError::Stream { .. }) => {
                let whole = whole.expect("a frame from less than a head");
                assert_eq!(&buf[..], &before[whole..], "not exactly one frame consumed");
            }
            Err(FrameError::Connection { .. }) => {
                assert_eq!(*buf, before, "a connection error consumed bytes");
            }
        }
        let stop = matches!(result, Err(FrameError::Connection { .. }));
        outcomes.push(result.map(Option::unwrap));
        if stop {
            return outcomes;
        }
    }
}

/// Frames as a fuzzer would send them: any type (defined or a few unknown), any flags,
/// any stream, a short payload, and now and then a length field that lies.
fn frame_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..=10,
        any::<u8>(),
        prop_oneof![Just(0u32), Just(1), Just(0x8000_0001), any::<u32>()],
        // The lengths the fixed-size types want, often enough to get past them.
        prop_oneof![
            Just(4usize),
            Just(5),
            Just(6),
            Just(8),
            Just(12),
            0usize..40
        ]
        .prop_flat_map(|len| proptest::collection::vec(any::<u8>(), len)),
        proptest::option::weighted(0.1, 0u32..64),
    )
        .prop_map(|(kind, flags, stream, payload, lie)| {
            let mut buf = raw(kind, flags, stream, &payload);
            if let Some(len) = lie {
                buf[..3].copy_from_slice(&len.to_be_bytes()[1..]);
            }
            buf.to_vec()
        })
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        (
            any::<Option<u32>>(),
            any::<Option<bool>>(),
            any::<Option<u32>>(),
        ),
        proptest::option::of(0..=(1u32 << 31) - 1),
        proptest::option::of(16_384..=16_777_215u32),
        (any::<Option<u32>>(), any::<Option<bool>>()),
    )
        .prop_map(
            |((table, push, streams), window, frame, (list, connect))| Settings {
                header_table_size: table,
                enable_push: push,
                max_concurrent_streams: streams,
                initial_window_size: window,
                max_frame_size: frame,
                max_header_list_size: list,
                enable_connect_protocol: connect,
            },
        )
}

proptest! {
    #![proptest_config(crate::property::config())]

    /// Any bytes at all: no panic, and every call consumes a whole frame or nothing.
    #[test]
    fn arbitrary_bytes_never_panic_and_consume_a_whole_frame_or_nothing(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        max in prop_oneof![Just(16_384u32), Just(0), Just(20), 0u32..100_000],
    ) {
        decode_checked(&mut BytesMut::from(&bytes[..]), max);
    }

    /// Runs of plausible frames, which reach the per-type rules that random bytes
    /// rarely get past the length check to.
    #[test]
    fn arbitrary_frames_never_panic_and_consume_a_whole_frame_or_nothing(
        frames in proptest::collection::vec(frame_bytes(), 1..6),
    ) {
        decode_checked(&mut BytesMut::from(&frames.concat()[..]), MAX);
    }

    /// Bytes arriving in pieces decode to the same frames as when they arrive at once.
    #[test]
    fn frames_decode_the_same_however_the_bytes_are_cut(
        frames in proptest::collection::vec(frame_bytes(), 1..6),
        cuts in proptest::collection::vec(1usize..30, 0..10),
    ) {
        let bytes = frames.concat();
        let at_once = decode_checked(&mut BytesMut::from(&bytes[..]), MAX);
        let mut buf = BytesMut::new();
        let mut piecemeal = Vec::new();
        let mut from = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            let to = (from + cut).min(bytes.len());
            buf.extend_from_slice(&bytes[from..to]);
            from = to;
            piecemeal.extend(decode_checked(&mut buf, MAX));
            if matches!(piecemeal.last(), Some(Err(FrameError::Connection { .. }))) {
                break;
            }
        }
        prop_assert_eq!(piecemeal, at_once);
    }

    /// A field block of any size, cut for any allowed frame size, comes back whole:
    /// HEADERS first, END_HEADERS on the last frame only, no frame over the size.
    #[test]
    fn header_blocks_of_any_size_split_and_rejoin(
        len in 0usize..70_000,
        max in prop_oneof![Just(16_384u32), 16_384u32..40_000],
        end_stream in any::<bool>(),
    ) {
        let block: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut buf = BytesMut::new();
        encode_header_block(&mut buf, StreamId::new(1), end_stream, &block, max);
        let mut joined = Vec::new();
        let mut count = 0;
        while let Some(frame) = decode(&mut buf, max).unwrap() {
            let (end_headers, fragment) = match frame {
                Frame::Headers { end_headers, end_stream: e, fragment, .. } if count == 0 => {
                    prop_assert_eq!(e, end_stream);
                    (end_headers, fragment)
                }
                Frame::Continuation { end_headers, fragment, .. } if count > 0 => {
                    (end_headers, fragment)
                }
                other => panic!("frame {count}: {other:?}"),
            };
            count += 1;
            joined.extend_from_slice(&fragment);
            prop_assert_eq!(end_headers, buf.is_empty());
        }
        prop_assert_eq!(count, len.div_ceil(max as usize).max(1));
        prop_assert_eq!(joined, block);
    }

    /// Any valid settings come back as they went.
    #[test]
    fn settings_round_trip(settings in settings()) {
        let mut buf = BytesMut::new();
        encode_settings(&mut buf, &settings);
        prop_assert_eq!(decode(&mut buf, MAX), Ok(Some(Frame::Settings(settings))));
        prop_assert!(buf.is_empty());
    }
}
