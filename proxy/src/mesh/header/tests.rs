//! The header codec's tests: the wire layout, round trips, hostile inputs.

use super::*;
use proptest::prelude::*;

const PROTOCOLS: [MeshProtocol; 3] = [
    MeshProtocol::Opaque,
    MeshProtocol::Http1,
    MeshProtocol::Http2,
];

async fn read_bytes(bytes: &[u8]) -> Result<MeshHeader, HeaderError> {
    let mut io = bytes;
    MeshHeader::read(&mut io, Duration::from_secs(1)).await
}

fn decode(bytes: &[u8]) -> Result<MeshHeader, HeaderError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(read_bytes(bytes))
}

#[test]
fn version_one_is_seven_field_bytes_after_a_three_byte_prefix() {
    let header = MeshHeader {
        port: 8080,
        protocol: MeshProtocol::Http2,
        raced: false,
    };
    assert_eq!(
        header.encode(),
        [1, 0, 7, FIELD_PORT, 2, 0x1f, 0x90, FIELD_PROTOCOL, 1, 2]
    );
    let raced = MeshHeader {
        raced: true,
        ..header
    };
    assert_eq!(
        raced.encode(),
        [
            1,
            0,
            9,
            FIELD_PORT,
            2,
            0x1f,
            0x90,
            FIELD_PROTOCOL,
            1,
            2,
            FIELD_RACED,
            0
        ]
    );
}

#[tokio::test]
async fn reading_stops_at_the_end_of_the_header() {
    let header = MeshHeader {
        port: 3306,
        protocol: MeshProtocol::Opaque,
        raced: true,
    };
    let mut wire = header.encode();
    wire.extend_from_slice(b"payload");
    let mut io = &wire[..];
    let read = MeshHeader::read(&mut io, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(read, header);
    assert_eq!(io, b"payload");
}

#[test]
fn unknown_fields_are_skipped_in_any_position() {
    let wire = [
        1,
        0,
        16,
        9,
        3,
        b'a',
        b'b',
        b'c',
        FIELD_PROTOCOL,
        1,
        1,
        200,
        0,
        FIELD_PORT,
        2,
        0,
        80,
        77,
        0,
    ];
    assert_eq!(
        decode(&wire).unwrap(),
        MeshHeader {
            port: 80,
            protocol: MeshProtocol::Http1,
            raced: false,
        }
    );
    // One byte shorter, the last field's length byte falls outside the header.
    let mut short = wire;
    short[2] = 15;
    assert!(matches!(
        decode(&short),
        Err(HeaderError::NoFieldLength(77))
    ));
}

#[test]
fn every_malformed_header_is_a_typed_error() {
    let cases: &[(&[u8], &str)] = &[
        (&[1], "header-eof"),
        (&[1, 0], "header-eof"),
        (&[1, 0, 7, FIELD_PORT, 2], "header-eof"),
        (&[2, 0, 0], "header-version"),
        (&[0x16, 3, 1], "header-version"),
        (&[1, 0x02, 0x01], "header-too-long"),
        (&[1, 0xff, 0xff], "header-too-long"),
        (&[1, 0, 0], "header-malformed"),
        (&[1, 0, 3, FIELD_PROTOCOL, 1, 0], "header-malformed"),
        (&[1, 0, 4, FIELD_PORT, 2, 0, 80], "header-malformed"),
        (
            &[1, 0, 7, FIELD_PORT, 2, 0, 0, FIELD_PROTOCOL, 1, 0],
            "header-malformed",
        ),
        (
            &[1, 0, 7, FIELD_PORT, 2, 0, 80, FIELD_PROTOCOL, 1, 9],
            "header-malformed",
        ),
        (
            &[1, 0, 6, FIELD_PORT, 1, 80, FIELD_PROTOCOL, 1, 0],
            "header-malformed",
        ),
        (
            &[
                1,
                0,
                11,
                FIELD_PORT,
                2,
                0,
                80,
                FIELD_PORT,
                2,
                0,
                81,
                FIELD_PROTOCOL,
                1,
                0,
            ],
            "header-malformed",
        ),
        (&[1, 0, 2, 9, 5], "header-malformed"),
        (
            &[
                1,
                0,
                10,
                FIELD_PORT,
                2,
                0,
                80,
                FIELD_PROTOCOL,
                1,
                0,
                FIELD_RACED,
                1,
                1,
            ],
            "header-malformed",
        ),
        (
            &[
                1,
                0,
                11,
                FIELD_PORT,
                2,
                0,
                80,
                FIELD_PROTOCOL,
                1,
                0,
                FIELD_RACED,
                0,
                FIELD_RACED,
                0,
            ],
            "header-malformed",
        ),
    ];
    for (wire, reason) in cases {
        let error = decode(wire).expect_err(&format!("{wire:?}"));
        assert_eq!(error.reason(), *reason, "{wire:?}: {error}");
        assert!(HEADER_REASONS.contains(&error.reason()));
    }
}

#[test]
fn a_connection_closed_before_its_header_began_is_unused_not_malformed() {
    let error = decode(&[]).expect_err("no header");
    assert!(matches!(error, HeaderError::Unused), "{error}");
    assert!(!HEADER_REASONS.contains(&error.reason()));
}

#[tokio::test(start_paused = true)]
async fn a_header_that_never_completes_times_out() {
    let (mut client, mut server) = tokio::io::duplex(64);
    client.write_all(&[1, 0, 7, FIELD_PORT]).await.unwrap();
    let started = tokio::time::Instant::now();
    let error = MeshHeader::read(&mut server, Duration::from_secs(3))
        .await
        .unwrap_err();
    assert!(matches!(error, HeaderError::Timeout(_)), "{error}");
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    drop(client);
}

proptest! {
    #[test]
    fn every_header_reads_back_as_written(port in 1u16.., p in 0usize..3, raced: bool) {
        let header = MeshHeader { port, protocol: PROTOCOLS[p], raced };
        prop_assert_eq!(decode(&header.encode()).unwrap(), header);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_read_past_the_header(
        bytes in proptest::collection::vec(any::<u8>(), 0..700),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let mut io = &bytes[..];
            let result = MeshHeader::read(&mut io, Duration::from_secs(1)).await;
            let consumed = bytes.len() - io.len();
            prop_assert!(consumed <= 3 + MAX_HEADER_LEN);
            if let Ok(header) = result {
                prop_assert!(header.port != 0);
                prop_assert_eq!(consumed, 3 + usize::from(u16::from_be_bytes([bytes[1], bytes[2]])));
            }
            Ok(())
        })?;
    }
}
