//! RFC 7541 Appendix C: every example decoded, with the dynamic table the RFC lists
//! after each; and responses like C.5's encoded by our encoder and decoded back.

use bytes::BytesMut;
use http::{HeaderName, HeaderValue, StatusCode};

use super::*;
use crate::listener::http2::hpack::{Encoder, Name, Pseudo, StaticName};

/// A block; the fields it decodes to; the table after it, newest first with the sizes
/// the RFC prints; and the table's size.
type Step = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [(&'static str, &'static str, usize)],
    usize,
);

/// Decodes each block in turn on one decoder, checking its fields and then the table.
fn check_sequence(max_table_size: usize, steps: &[Step]) {
    let mut decoder = Decoder::new(max_table_size, LIST_LIMIT);
    for (i, (block, fields, entries, size)) in steps.iter().enumerate() {
        let decoded = decode_list(&mut decoder, &hex(block)).unwrap();
        assert_eq!(decoded, list(fields), "block {}", i + 1);
        let entries = entries
            .iter()
            .map(|&(n, v, s)| (n.to_owned(), v.to_owned(), s))
            .collect();
        assert_eq!(
            table(&decoder),
            (entries, *size),
            "table after block {}",
            i + 1
        );
    }
}

#[test]
fn decodes_c_2_1_a_literal_with_indexing() {
    check_sequence(
        4096,
        &[(
            "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
            &[("custom-key", "custom-header")],
            &[("custom-key", "custom-header", 55)],
            55,
        )],
    );
}

#[test]
fn decodes_c_2_2_a_literal_without_indexing_as_a_slice_of_the_block() {
    let mut decoder = Decoder::new(4096, LIST_LIMIT);
    let block = hex("040c 2f73 616d 706c 652f 7061 7468");
    let fields = decode_fields(&mut decoder, &block).unwrap();
    assert_eq!(
        fields.iter().map(pair).collect::<List>(),
        list(&[(":path", "/sample/path")])
    );
    assert_eq!(fields[0].name.pseudo(), Some(Pseudo::Path));
    assert!(!fields[0].never_indexed);
    assert_eq!(fields[0].value.as_ptr(), block[2..].as_ptr(), "not copied");
    assert_eq!(table(&decoder), (vec![], 0));
}

#[test]
fn decodes_c_2_3_a_never_indexed_literal() {
    let mut decoder = Decoder::new(4096, LIST_LIMIT);
    let block = hex("1008 7061 7373 776f 7264 0673 6563 7265 74");
    let fields = decode_fields(&mut decoder, &block).unwrap();
    assert_eq!(
        fields.iter().map(pair).collect::<List>(),
        list(&[("password", "secret")])
    );
    assert!(fields[0].never_indexed);
    assert_eq!(table(&decoder), (vec![], 0));
}

#[test]
fn decodes_c_2_4_an_indexed_field_to_a_static_name() {
    let mut decoder = Decoder::new(4096, LIST_LIMIT);
    let fields = decode_fields(&mut decoder, &hex("82")).unwrap();
    assert_eq!(
        fields.iter().map(pair).collect::<List>(),
        list(&[(":method", "GET")])
    );
    let Name::Static(name) = &fields[0].name else {
        panic!("{:?}", fields[0].name)
    };
    assert_eq!(
        (name.pseudo(), name.header_name()),
        (Some(Pseudo::Method), None)
    );
    assert_eq!(table(&decoder), (vec![], 0));
}

#[test]
fn a_literal_name_equals_the_static_name_it_spells() {
    let literal = Name::Literal(Bytes::from_static(b":path"));
    let fixed = Name::Static(StaticName::lookup(b":path").unwrap());
    assert_eq!(literal, fixed);
    assert_eq!((literal.pseudo(), literal.len()), (Some(Pseudo::Path), 5));
    let protocol = Name::Literal(Bytes::from_static(b":protocol"));
    assert_eq!(protocol.pseudo(), Some(Pseudo::Protocol));
    assert_eq!(Name::Literal(Bytes::from_static(b":other")).pseudo(), None);
    assert_eq!(Name::Literal(Bytes::from_static(b"path")).pseudo(), None);
}

const REQUEST_1: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
];
const REQUEST_2: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
    ("cache-control", "no-cache"),
];
const REQUEST_3: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/index.html"),
    (":authority", "www.example.com"),
    ("custom-key", "custom-value"),
];
const REQUEST_TABLE_1: &[(&str, &str, usize)] = &[(":authority", "www.example.com", 57)];
const REQUEST_TABLE_2: &[(&str, &str, usize)] = &[
    ("cache-control", "no-cache", 53),
    (":authority", "www.example.com", 57),
];
const REQUEST_TABLE_3: &[(&str, &str, usize)] = &[
    ("custom-key", "custom-value", 54),
    ("cache-control", "no-cache", 53),
    (":authority", "www.example.com", 57),
];

#[test]
fn decodes_c_3_requests_without_huffman_coding() {
    check_sequence(
        4096,
        &[
            (
                "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                REQUEST_1,
                REQUEST_TABLE_1,
                57,
            ),
            (
                "8286 84be 5808 6e6f 2d63 6163 6865",
                REQUEST_2,
                REQUEST_TABLE_2,
                110,
            ),
            (
                "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
                REQUEST_3,
                REQUEST_TABLE_3,
                164,
            ),
        ],
    );
}

#[test]
fn decodes_c_4_requests_with_huffman_coding() {
    check_sequence(
        4096,
        &[
            (
                "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
                REQUEST_1,
                REQUEST_TABLE_1,
                57,
            ),
            (
                "8286 84be 5886 a8eb 1064 9cbf",
                REQUEST_2,
                REQUEST_TABLE_2,
                110,
            ),
            (
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
                REQUEST_3,
                REQUEST_TABLE_3,
                164,
            ),
        ],
    );
}

const DATE_1: &str = "Mon, 21 Oct 2013 20:13:21 GMT";
const DATE_2: &str = "Mon, 21 Oct 2013 20:13:22 GMT";
const LOCATION: &str = "https://www.example.com";
const COOKIE: &str = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";

const RESPONSE_1: &[(&str, &str)] = &[
    (":status", "302"),
    ("cache-control", "private"),
    ("date", DATE_1),
    ("location", LOCATION),
];
const RESPONSE_2: &[(&str, &str)] = &[
    (":status", "307"),
    ("cache-control", "private"),
    ("date", DATE_1),
    ("location", LOCATION),
];
const RESPONSE_3: &[(&str, &str)] = &[
    (":status", "200"),
    ("cache-control", "private"),
    ("date", DATE_2),
    ("location", LOCATION),
    ("content-encoding", "gzip"),
    ("set-cookie", COOKIE),
];
const RESPONSE_TABLE_1: &[(&str, &str, usize)] = &[
    ("location", LOCATION, 63),
    ("date", DATE_1, 65),
    ("cache-control", "private", 52),
    (":status", "302", 42),
];
const RESPONSE_TABLE_2: &[(&str, &str, usize)] = &[
    (":status", "307", 42),
    ("location", LOCATION, 63),
    ("date", DATE_1, 65),
    ("cache-control", "private", 52),
];
const RESPONSE_TABLE_3: &[(&str, &str, usize)] = &[
    ("set-cookie", COOKIE, 98),
    ("content-encoding", "gzip", 52),
    ("date", DATE_2, 65),
];

#[test]
fn decodes_c_5_responses_without_huffman_coding_evicting_as_the_rfc_does() {
    check_sequence(
        256,
        &[
            (
                "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
                 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
                 6c65 2e63 6f6d",
                RESPONSE_1,
                RESPONSE_TABLE_1,
                222,
            ),
            ("4803 3330 37c1 c0bf", RESPONSE_2, RESPONSE_TABLE_2, 222),
            (
                "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
                 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
                 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
                 3d31",
                RESPONSE_3,
                RESPONSE_TABLE_3,
                215,
            ),
        ],
    );
}

#[test]
fn decodes_c_6_responses_with_huffman_coding_evicting_as_the_rfc_does() {
    check_sequence(
        256,
        &[
            (
                "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
                 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
                RESPONSE_1,
                RESPONSE_TABLE_1,
                222,
            ),
            ("4883 640e ffc1 c0bf", RESPONSE_2, RESPONSE_TABLE_2, 222),
            (
                "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
                 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
                 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
                RESPONSE_3,
                RESPONSE_TABLE_3,
                215,
            ),
        ],
    );
}

#[test]
fn the_huffman_strings_of_a_block_share_one_buffer() {
    // C.6.1: four Huffman strings ("302", "private", the date, the location).
    let block = hex(
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
    );
    let fields = decode_fields(&mut Decoder::new(256, LIST_LIMIT), &block).unwrap();
    for pair in fields.windows(2) {
        let end = pair[0].value.as_ptr().wrapping_add(pair[0].value.len());
        assert_eq!(
            pair[1].value.as_ptr(),
            end,
            "{:?} follows {:?}",
            pair[1],
            pair[0]
        );
    }
}

#[test]
fn the_huffman_strings_of_later_blocks_reuse_the_scratch_buffer() {
    let mut decoder = Decoder::new(256, LIST_LIMIT);
    let first = hex(
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
    );
    let base = decode_fields(&mut decoder, &first).unwrap()[0]
        .value
        .as_ptr() as usize;
    let second = decode_fields(&mut decoder, &hex("4883 640e ffc1 c0bf")).unwrap();
    let status = second[0].value.as_ptr() as usize;
    assert!(
        (base..base + 1024).contains(&status),
        "{base:#x} {status:#x}"
    );
}

/// Encodes the C.5 responses with our encoder against a peer whose table is 256 bytes,
/// then decodes them back: the same lists, and both tables alike after every block.
#[test]
fn encodes_responses_like_c_5_and_decodes_them_back() {
    let mut encoder = Encoder::new();
    encoder.set_max_table_size(256);
    let mut decoder = Decoder::new(256, LIST_LIMIT);
    for response in [RESPONSE_1, RESPONSE_2, RESPONSE_3, RESPONSE_1, RESPONSE_3] {
        let mut block = BytesMut::new();
        encoder.begin_block(&mut block);
        let (status, fields) = response.split_first().unwrap();
        encoder.encode_status(
            StatusCode::from_bytes(status.1.as_bytes()).unwrap(),
            &mut block,
        );
        for &(name, value) in fields {
            let name = HeaderName::from_static(name);
            encoder.encode_field(&name, &HeaderValue::from_static(value), &mut block);
        }
        let decoded = decode_fields(&mut decoder, &block.freeze()).unwrap();
        assert_eq!(decoded.iter().map(pair).collect::<List>(), list(response));
        let set_cookie = decoded.iter().find(|f| f.name.as_bytes() == b"set-cookie");
        assert!(set_cookie.is_none_or(|f| f.never_indexed));
        let encoder_table: Vec<_> = encoder
            .table()
            .iter()
            .map(|e| (text(e.name.as_bytes()), text(&e.value), e.size()))
            .collect();
        assert_eq!((encoder_table, encoder.table().size()), table(&decoder));
        assert!(decoder.table().size() <= 256);
    }
}

#[test]
fn a_repeated_response_is_a_few_bytes() {
    let mut encoder = Encoder::new();
    let mut decoder = Decoder::new(4096, LIST_LIMIT);
    let fields = [
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
        ("server", "meshwork"),
        ("vary", "accept-encoding"),
    ];
    let mut sizes = Vec::new();
    for _ in 0..3 {
        let mut block = BytesMut::new();
        encoder.begin_block(&mut block);
        encoder.encode_status(StatusCode::CREATED, &mut block);
        for (name, value) in fields {
            let value = HeaderValue::from_static(value);
            encoder.encode_field(&HeaderName::from_static(name), &value, &mut block);
        }
        sizes.push(block.len());
        decode_fields(&mut decoder, &block.freeze()).unwrap();
    }
    assert_eq!(sizes[1..], [5, 5], "{sizes:?}: every field indexed");
}
