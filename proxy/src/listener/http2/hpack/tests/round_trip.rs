//! Encoder to decoder: random responses over several blocks, small tables that evict,
//! and table size changes between blocks.

use bytes::BytesMut;
use http::{HeaderName, HeaderValue, StatusCode};
use proptest::prelude::*;

use super::*;
use crate::listener::http2::hpack::Encoder;

/// Standard names (in the static table, with every indexing policy) and custom ones.
const NAMES: &[&str] = &[
    "content-type",
    "cache-control",
    "date",
    "server",
    "vary",
    "accept-encoding",
    "www-authenticate",
    "set-cookie",
    "authorization",
    "content-length",
    "etag",
    "location",
    "x-content-type-options",
    "x-request-id",
    "x-custom",
    "x-other",
];

const VALUES: &[&str] = &[
    "",
    "gzip",
    "gzip, deflate",
    "application/json",
    "private",
    "no-store",
];

const NEVER_INDEXED: &[&str] = &["set-cookie", "authorization"];

fn field() -> impl Strategy<Value = (HeaderName, HeaderValue)> {
    let name = prop_oneof![
        3 => prop::sample::select(NAMES).prop_map(HeaderName::from_static),
        1 => "[a-z][a-z0-9-]{0,20}".prop_map(|name| HeaderName::from_bytes(name.as_bytes()).unwrap()),
    ];
    let value = prop_oneof![
        3 => prop::sample::select(VALUES).prop_map(str::to_owned),
        3 => "[ -~]{0,40}",
        1 => "[ -~]{100,300}",
    ];
    (name, value, prop::bool::weighted(0.1)).prop_map(|(name, value, sensitive)| {
        let mut value = HeaderValue::from_str(&value).unwrap();
        value.set_sensitive(sensitive);
        (name, value)
    })
}

#[derive(Debug, Clone)]
struct Response {
    /// The peer's new SETTINGS_HEADER_TABLE_SIZE, sent before this response.
    table_size: Option<usize>,
    status: u16,
    fields: Vec<(HeaderName, HeaderValue)>,
}

fn response() -> impl Strategy<Value = Response> {
    let sizes = prop::sample::select(&[0usize, 64, 100, 256, 1024, 4096, 65536][..]);
    let statuses = prop::sample::select(&[200u16, 201, 204, 302, 304, 404, 418, 503][..]);
    (
        prop::option::weighted(0.2, sizes),
        statuses,
        prop::collection::vec(field(), 0..12),
    )
        .prop_map(|(table_size, status, fields)| Response {
            table_size,
            status,
            fields,
        })
}

fn entries(table: &crate::listener::http2::hpack::table::DynamicTable) -> Vec<(Vec<u8>, Vec<u8>)> {
    table
        .iter()
        .map(|e| (e.name.as_bytes().to_vec(), e.value.to_vec()))
        .collect()
}

proptest! {
    #[test]
    fn responses_decode_to_what_was_encoded_with_both_tables_alike(
        initial_size in prop::sample::select(&[64usize, 256, 4096][..]),
        responses in prop::collection::vec(response(), 1..8),
    ) {
        let mut encoder = Encoder::new();
        let mut decoder = Decoder::new(4096, LIST_LIMIT);
        // The peer's first SETTINGS.
        encoder.set_max_table_size(initial_size);
        decoder.set_max_table_size(initial_size);
        for response in responses {
            if let Some(size) = response.table_size {
                encoder.set_max_table_size(size);
                decoder.set_max_table_size(size);
            }
            let mut block = BytesMut::new();
            encoder.begin_block(&mut block);
            let status = StatusCode::from_u16(response.status).unwrap();
            encoder.encode_status(status, &mut block);
            for (name, value) in &response.fields {
                encoder.encode_field(name, value, &mut block);
            }
            let decoded = decode_fields(&mut decoder, &block.freeze()).unwrap();

            prop_assert_eq!(decoded.len(), response.fields.len() + 1);
            prop_assert_eq!(decoded[0].name.as_bytes(), b":status");
            prop_assert_eq!(&decoded[0].value[..], status.as_str().as_bytes());
            for (field, (name, value)) in decoded[1..].iter().zip(&response.fields) {
                prop_assert_eq!(field.name.as_bytes(), name.as_str().as_bytes());
                prop_assert_eq!(&field.value[..], value.as_bytes());
                let never = value.is_sensitive() || NEVER_INDEXED.contains(&name.as_str());
                prop_assert_eq!(field.never_indexed, never, "{:?}", name);
            }
            prop_assert_eq!(entries(encoder.table()), entries(decoder.table()));
            prop_assert_eq!(encoder.table().size(), decoder.table().size());
            prop_assert!(encoder.table().size() <= encoder.table().max_size());
        }
    }
}

#[test]
fn a_small_table_evicts_in_step_on_both_sides() {
    let mut encoder = Encoder::new();
    let mut decoder = Decoder::new(4096, LIST_LIMIT);
    encoder.set_max_table_size(100);
    decoder.set_max_table_size(100);
    for i in 0..20 {
        let mut block = BytesMut::new();
        encoder.begin_block(&mut block);
        let value = HeaderValue::from_str(&format!("value-{}", i % 3)).unwrap();
        encoder.encode_field(&HeaderName::from_static("x-custom"), &value, &mut block);
        let decoded = decode_list(&mut decoder, &block.freeze()).unwrap();
        assert_eq!(
            decoded,
            [("x-custom".to_owned(), format!("value-{}", i % 3))]
        );
        assert_eq!(entries(encoder.table()), entries(decoder.table()));
        assert!(decoder.table().size() <= 100);
    }
}
